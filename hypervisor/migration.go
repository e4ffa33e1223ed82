package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/hypervisor/vnet"
)

// Live migration of a VM bridge with its hosts to another cloud (package
// hypervisor/migrate runs the steps; this file is the hypervisor's side:
// planning from the infrastructure and bindings, admission of the moving
// hosts in the target cloud, waiting for bindings to be reconciled, and
// recording the new placement).

// migrationState is the Hypervisor's live-migration state; the zero value
// is ready.
type migrationState struct {
	mu sync.Mutex
	// admitted: iface-id -> site where a binding of that host is used
	// although its topology places it in another cloud (or pins another
	// VM): the hosts of a migration in progress.
	admitted map[string]string
	opt      migrate.Options
	mgr      *migrate.Manager
}

var _ api.MigrationService = (*Hypervisor)(nil)

// ConfigureMigrations sets the options of the migrations started through
// the REST API (StartMigration) and of the recovery of interrupted ones:
// the Mover that moves hosts (nil: the migration waits at the move step
// for the orchestrator to move each host, see Migration.Awaiting) and the
// per-host timeout. Call it before Run.
func (h *Hypervisor) ConfigureMigrations(opt migrate.Options) {
	h.migration.mu.Lock()
	defer h.migration.mu.Unlock()
	h.migration.opt = opt
	if h.migration.mgr != nil {
		h.migration.mgr.SetOptions(h.loggedOptions(opt))
	}
}

// loggedOptions adds logging of every progress event to opt.
func (h *Hypervisor) loggedOptions(opt migrate.Options) migrate.Options {
	log, progress := h.log, opt.Progress
	opt.Progress = func(e migrate.Event) {
		log.Info("hypervisor: migration", "step", e.Step, "status", e.Status, "took", e.Took, "detail", e.Detail)
		if progress != nil {
			progress(e)
		}
	}
	return opt
}

// admittedSites returns a copy of the admission map (for loadState).
func (h *Hypervisor) admittedSites() map[string]string {
	h.migration.mu.Lock()
	defer h.migration.mu.Unlock()
	if len(h.migration.admitted) == 0 {
		return nil
	}
	out := make(map[string]string, len(h.migration.admitted))
	for k, v := range h.migration.admitted {
		out[k] = v
	}
	return out
}

// Migrate runs one live migration synchronously (tests, experiments, the
// demo); the REST API uses StartMigration. opt.Mover moves the hosts. Like
// StartMigration it refuses (an error wrapping migrate.ErrBusy) when the
// source or target bridge is in another migration, and its record is
// stored (GET /v1/migrations lists it) with its write-ahead log, so a
// crash during it is recovered at the next start.
func (h *Hypervisor) Migrate(ctx context.Context, req migrate.Request, opt migrate.Options) (*migrate.Result, error) {
	return h.manager().Run(ctx, req, opt)
}

// manager returns the Manager of every migration (created on first use):
// records in the store (the last migrate.DefaultKeep finished ones kept),
// the options of ConfigureMigrations for StartMigration and recoveries.
func (h *Hypervisor) manager() *migrate.Manager {
	h.migration.mu.Lock()
	defer h.migration.mu.Unlock()
	if h.migration.mgr == nil {
		log := h.log
		h.migration.mgr = migrate.NewManager(migrationEnv{h}, h.loggedOptions(h.migration.opt),
			migrate.WithRecords(migrationRecords{h.store}, migrate.DefaultKeep),
			migrate.WithErrorLog(func(err error) { log.Warn("hypervisor: migration records", "err", err) }))
	}
	return h.migration.mgr
}

// recoverMigrations recovers, in the background under ctx, the migrations
// the store holds unfinished: the daemon died during them (Run calls it
// once at start; migrate.Manager.Recover).
func (h *Hypervisor) recoverMigrations(ctx context.Context) {
	ids, err := h.manager().Recover(ctx)
	if err != nil {
		h.log.Error("hypervisor: recover interrupted migrations", "err", err)
	}
	if len(ids) > 0 {
		h.log.Warn("hypervisor: recovering migrations interrupted by a restart", "ids", ids)
	}
}

// StartMigration implements api.MigrationService.
func (h *Hypervisor) StartMigration(_ context.Context, r api.MigrationRequest) (api.Migration, error) {
	req, err := h.migrationRequest(r)
	if err != nil {
		return api.Migration{}, err
	}
	h.mu.Lock()
	runCtx := h.runCtx
	h.mu.Unlock()
	if runCtx == nil {
		return api.Migration{}, fmt.Errorf("migrations: the hypervisor is not running: %w", api.ErrUnavailable)
	}
	mgr := h.manager()
	// The migration outlives the request: it runs under Run's context.
	m, err := mgr.Start(runCtx, req)
	if err != nil {
		return api.Migration{}, migrationErr(err)
	}
	return apiMigration(m), nil
}

// Migration implements api.MigrationService.
func (h *Hypervisor) Migration(_ context.Context, id string) (api.Migration, error) {
	m, err := h.manager().Get(id)
	if err != nil {
		return api.Migration{}, migrationErr(err)
	}
	return apiMigration(m), nil
}

// Migrations implements api.MigrationService.
func (h *Hypervisor) Migrations(context.Context) ([]api.Migration, error) {
	out := []api.Migration{}
	for _, m := range h.manager().List() {
		out = append(out, apiMigration(m))
	}
	return out, nil
}

// migrationRequest resolves the switch ("site/vm" or a DPID) and the
// injected failure of a REST request.
func (h *Hypervisor) migrationRequest(r api.MigrationRequest) (migrate.Request, error) {
	req := migrate.Request{To: r.To, VM: r.VM}
	if r.FailAfter != "" {
		st, err := migrate.ParseStep(r.FailAfter)
		if err != nil || st == migrate.StepCommit {
			return req, fmt.Errorf("fail_after %q: want a step before commit (%v): %w", r.FailAfter, migrate.Steps()[:len(migrate.Steps())-1], api.ErrInvalid)
		}
		req.FailAfter = st
	}
	inf := h.Infrastructure()
	if site, vm, ok := strings.Cut(r.Switch, "/"); ok {
		for _, sw := range inf.VMs(site) {
			if sw.VM == vm {
				req.Switch = sw.DPID
				return req, nil
			}
		}
		return req, fmt.Errorf("switch %q: no VM %q in cloud %q: %w", r.Switch, vm, site, api.ErrInvalid)
	}
	d, err := parseDPID(r.Switch)
	if err != nil {
		return req, fmt.Errorf("switch: %v: %w", err, api.ErrInvalid)
	}
	req.Switch = d
	return req, nil
}

// parseDPID accepts "0x101", "00:00:00:00:00:00:01:01" and 16 hex digits.
func parseDPID(s string) (uint64, error) {
	if len(s) == 16 && !strings.Contains(s, ":") {
		s = "0x" + s
	}
	d, err := topology.ParseDPID(s)
	return uint64(d), err
}

// migrationErr maps the migrate package's errors to the API's.
func migrationErr(err error) error {
	switch {
	case errors.Is(err, migrate.ErrInvalid):
		return fmt.Errorf("%w: %w", err, api.ErrInvalid)
	case errors.Is(err, migrate.ErrUnavailable):
		return fmt.Errorf("%w: %w", err, api.ErrUnavailable)
	case errors.Is(err, migrate.ErrBusy):
		return fmt.Errorf("%w: %w", err, api.ErrConflict)
	case errors.Is(err, migrate.ErrNotFound):
		return fmt.Errorf("%w: %w", err, api.ErrNotFound)
	}
	return err
}

func apiBridge(b migrate.Bridge) api.MigrationBridge {
	return api.MigrationBridge{DPID: fmt.Sprintf("%016x", b.DPID), Site: b.Site, VM: b.VM, Bridge: b.Bridge}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// apiMigration converts a migrate.Migration for the REST API.
func apiMigration(m migrate.Migration) api.Migration {
	out := api.Migration{ID: m.ID, State: string(m.State), Recovery: string(m.Recovery), Cloned: m.Cloned, Frozen: m.Frozen, Moved: m.Moved,
		Error: m.Error, Started: m.Started, Finished: m.Finished, Hosts: []api.MigrationHost{}, Path: []string{},
		Steps: []api.MigrationStep{}, Events: []api.MigrationEvent{}}
	if m.Plan != nil {
		out.Source, out.Target = apiBridge(m.Plan.Source), apiBridge(m.Plan.Target)
		for _, hst := range m.Plan.Hosts {
			out.Hosts = append(out.Hosts, api.MigrationHost{IfaceID: hst.IfaceID, Port: hst.Port})
		}
		out.Path = append(out.Path, m.Plan.Path...)
	}
	for _, s := range m.Steps {
		out.Steps = append(out.Steps, api.MigrationStep{Step: string(s.Step), Status: string(s.Status), TookMS: ms(s.Took), Detail: s.Detail})
	}
	for _, e := range m.Events {
		out.Events = append(out.Events, api.MigrationEvent{Time: e.Time, Step: string(e.Step), Status: string(e.Status),
			TookMS: ms(e.Took), Detail: e.Detail})
	}
	if m.Awaiting != nil {
		out.Awaiting = &api.MigrationHost{IfaceID: m.Awaiting.IfaceID, Port: m.Awaiting.Port}
	}
	if m.AwaitingTo != nil {
		b := apiBridge(*m.AwaitingTo)
		out.AwaitingTo = &b
	}
	return out
}

// migrationEnv is the Hypervisor as a migrate.Env.
type migrationEnv struct{ h *Hypervisor }

// Plan implements migrate.Env: the source must be a connected VM bridge
// with bound hosts; the target is req.VM of cloud req.To or the
// connected VM bridge there with the fewest bound hosts (ties: lowest
// DPID); the two clouds must be joined by provisioned gateway tunnels.
func (e migrationEnv) Plan(_ context.Context, req migrate.Request) (migrate.Plan, error) {
	h := e.h
	st, err := h.loadState("")
	if err != nil {
		return migrate.Plan{}, err
	}
	inf := st.inf
	src := inf.SwitchByDPID(req.Switch)
	if src == nil || src.Role != infra.RoleVM {
		return migrate.Plan{}, fmt.Errorf("switch %016x is not a VM bridge of the infrastructure: %w", req.Switch, migrate.ErrInvalid)
	}
	if inf.Site(req.To) == nil {
		return migrate.Plan{}, fmt.Errorf("unknown cloud %q: %w", req.To, migrate.ErrInvalid)
	}
	if src.Site == req.To {
		return migrate.Plan{}, fmt.Errorf("switch %s/%s is already in cloud %q: %w", src.Site, src.VM, req.To, migrate.ErrInvalid)
	}
	if _, ok := st.connected[src.DPID]; !ok {
		return migrate.Plan{}, fmt.Errorf("source %s/%s is not connected: %w", src.Site, src.VM, migrate.ErrUnavailable)
	}
	ids := map[string]addr.TenantID{}
	for _, t := range st.tenants {
		ids[t.Name] = t.ID
	}
	count := map[uint64]int{}
	var hosts []migrate.Host
	for _, id := range slices.Sorted(mapsKeys(st.bindings)) {
		b := st.bindings[id]
		count[uint64(b.DPID)]++
		if uint64(b.DPID) != src.DPID {
			continue
		}
		tn, _, _ := topology.SplitIfaceID(id)
		hosts = append(hosts, migrate.Host{IfaceID: id, Tenant: uint16(ids[tn]), Port: b.PortName, OFPort: b.OFPort})
	}
	if len(hosts) == 0 {
		return migrate.Plan{}, fmt.Errorf("switch %s/%s carries no bound tenant host: %w", src.Site, src.VM, migrate.ErrInvalid)
	}
	var target *infra.Switch
	for _, vm := range inf.VMs(req.To) {
		if req.VM != "" && vm.VM != req.VM {
			continue
		}
		if _, ok := st.connected[vm.DPID]; !ok {
			continue
		}
		if target == nil || count[vm.DPID] < count[target.DPID] || count[vm.DPID] == count[target.DPID] && vm.DPID < target.DPID {
			target = vm
		}
	}
	if target == nil {
		what := "no connected VM bridge"
		if req.VM != "" {
			what = fmt.Sprintf("no connected VM %q", req.VM)
		}
		err := migrate.ErrUnavailable
		if req.VM != "" && !slices.ContainsFunc(inf.VMs(req.To), func(s *infra.Switch) bool { return s.VM == req.VM }) {
			what, err = fmt.Sprintf("no VM %q", req.VM), migrate.ErrInvalid
		}
		return migrate.Plan{}, fmt.Errorf("cloud %q: %s: %w", req.To, what, err)
	}
	path := treePath(st.tree, src.Site, req.To)
	if len(path) < 2 {
		return migrate.Plan{}, fmt.Errorf("clouds %q and %q are not joined by provisioned gateway tunnels: %w", src.Site, req.To, migrate.ErrUnavailable)
	}
	return migrate.Plan{
		Source: migrate.Bridge{DPID: src.DPID, Site: src.Site, VM: src.VM, Bridge: src.Bridge},
		Target: migrate.Bridge{DPID: target.DPID, Site: target.Site, VM: target.VM, Bridge: target.Bridge},
		Hosts:  hosts, Path: path,
	}, nil
}

// Switch implements migrate.Env.
func (e migrationEnv) Switch(dpid uint64) (controller.Switch, error) {
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	sw := e.h.switches[dpid]
	if sw == nil {
		return nil, fmt.Errorf("switch %016x is not connected: %w", dpid, migrate.ErrUnavailable)
	}
	return sw, nil
}

// Clonable implements migrate.Env: a tenant's entry that the reconcile
// does not own (a tenant app's entry through the virtual view). The
// hypervisor's own entries, and the tenant entries it compiles itself
// (native learning), are derived for the target from the bindings.
func (e migrationEnv) Clonable(c uint64) bool {
	return pipeline.IsOwnedCookie(c) && !pipeline.IsInfraCookie(c) && !e.h.ownsCookie(c)
}

var _ migrate.Replicator = migrationEnv{}

// Replicate implements migrate.Replicator: the target bridge becomes a
// replica of the source in every tenant app runtime
// (vnet.Tenant.Replicate), so from the clone step on every flow-mod of
// the tenants' apps on a virtual switch running on the source also goes to
// the target, in two guarded, barrier-acknowledged phases (vnet
// replica.go, docs/migration.md "Dual write"). The natively realized
// learning entries and the hypervisor's own entries are not concerned:
// they are compiled from the bindings (desired.go) for every bridge a
// host is bound on, so the target gets them when each host binds there.
// Errors of the runtimes' replays are joined.
func (e migrationEnv) Replicate(ctx context.Context, p migrate.Plan) error {
	var errs []error
	for name, rt := range e.runtimes(p) {
		if err := rt.Replicate(ctx, controller.DPID(p.Source.DPID), controller.DPID(p.Target.DPID)); err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// runtimes returns the app runtimes of the tenants of p's hosts, by
// tenant name (tenants that run no app on the virtual view have none).
func (e migrationEnv) runtimes(p migrate.Plan) map[string]*vnet.Tenant {
	byID := *e.h.tapps.byID.Load()
	out := map[string]*vnet.Tenant{}
	for _, hst := range p.Hosts {
		if rt := byID[addr.TenantID(hst.Tenant)]; rt != nil {
			out[rt.Name()] = rt
		}
	}
	return out
}

// Unreplicate implements migrate.Replicator (vnet.Tenant.Unreplicate,
// pruning the target's tenant-app entries no virtual switch spanning it
// accounts for when rollback is set).
func (e migrationEnv) Unreplicate(ctx context.Context, p migrate.Plan, rollback bool) error {
	var errs []error
	for name, rt := range e.runtimes(p) {
		if err := rt.Unreplicate(ctx, controller.DPID(p.Target.DPID), rollback); err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Admit implements migrate.Env.
func (e migrationEnv) Admit(hosts []migrate.Host, site string) error {
	m := &e.h.migration
	m.mu.Lock()
	if m.admitted == nil {
		m.admitted = map[string]string{}
	}
	for _, hst := range hosts {
		m.admitted[hst.IfaceID] = site
	}
	m.mu.Unlock()
	e.h.requestRefresh()
	return nil
}

// Withdraw implements migrate.Env.
func (e migrationEnv) Withdraw(hosts []migrate.Host) {
	m := &e.h.migration
	m.mu.Lock()
	for _, hst := range hosts {
		delete(m.admitted, hst.IfaceID)
	}
	m.mu.Unlock()
	e.h.requestRefresh()
}

// WaitBound implements migrate.Env: once h's binding is stored on dpid
// and in use (its cloud admitted), one refresh recomputes the desired
// state and reconciles every switch whose entries changed (the target,
// the gateways, the source), so when it returns the fabric forwards to
// the host's new place.
func (e migrationEnv) WaitBound(ctx context.Context, hst migrate.Host, dpid uint64) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := e.bound(hst.IfaceID, dpid)
		if err != nil {
			return err
		}
		if ok {
			if err := e.h.refresh(ctx); err != nil {
				return fmt.Errorf("host %s bound on %016x: reconcile: %w", hst.IfaceID, dpid, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("host %s not bound on %016x: %w", hst.IfaceID, dpid, ctx.Err())
		case <-tick.C:
		}
	}
}

// bound reports whether iface-id id is bound on dpid and the binding is
// in use.
func (e migrationEnv) bound(id string, dpid uint64) (bool, error) {
	b, err := e.h.store.GetBinding(id)
	if err != nil || uint64(b.DPID) != dpid {
		return false, nil
	}
	st, err := e.h.loadState("")
	if err != nil {
		return false, err
	}
	ub, ok := st.bindings[id]
	return ok && uint64(ub.DPID) == dpid, nil
}

// MergeStats implements migrate.Env with the snapshot restore's counter
// offsets (snapshots.go): the source's last counters of the cloned entries
// become offsets of the target's same entries, added wherever the
// hypervisor reports restored counters; offsets the target had from an
// earlier restore or migration are kept (a newer one of the same entry
// wins).
func (e migrationEnv) MergeStats(target uint64, at time.Time, counters []controller.FlowStats) {
	h := e.h
	var flows []snapshot.Flow
	seen := map[string]bool{}
	for i := range counters {
		f, err := snapshot.FlowFromStats(&counters[i])
		if err != nil {
			continue
		}
		flows = append(flows, f)
		seen[flowKeyOf(&f)+fmt.Sprintf("/%x", f.Cookie)] = true
	}
	h.snaps.load.Do(h.loadRestores)
	h.snaps.mu.Lock()
	old, ok := h.snaps.records[target]
	h.snaps.mu.Unlock()
	if ok {
		for _, f := range old.Offsets {
			if !seen[flowKeyOf(&f)+fmt.Sprintf("/%x", f.Cookie)] {
				flows = append(flows, f)
			}
		}
	}
	n := h.remember(target, restoreRecord{DPID: fmt.Sprintf("%016x", target), At: at, Offsets: flows, Adopted: nil})
	h.log.Info("hypervisor: migration: source counters carried over as offsets", "dpid", pipeline.DPID(target), "entries", n)
}

// Placed implements migrate.Env: every host of p is placed in p's target
// cloud by its tenant's stored topology (Commit took effect).
func (e migrationEnv) Placed(_ context.Context, p migrate.Plan) (bool, error) {
	for _, hst := range p.Hosts {
		tn, hn, _ := topology.SplitIfaceID(hst.IfaceID)
		rec, err := e.h.store.GetTenant(tn)
		if err != nil {
			return false, fmt.Errorf("tenant %q: %w", tn, storeErr(err))
		}
		tp, err := rec.Parse()
		if err != nil {
			return false, fmt.Errorf("tenant %q: %w", tn, err)
		}
		i := slices.IndexFunc(tp.Hosts, func(x topology.Host) bool { return x.Name == hn })
		if i < 0 || tp.Hosts[i].Cloud != p.Target.Site {
			return false, nil
		}
	}
	return true, nil
}

// BoundOn implements migrate.Env: the DPID of the host's stored binding
// (the bridge its interface was last seen on in OVSDB), 0 if none.
func (e migrationEnv) BoundOn(hst migrate.Host) uint64 {
	b, err := e.h.store.GetBinding(hst.IfaceID)
	if err != nil {
		return 0
	}
	return uint64(b.DPID)
}

// Commit implements migrate.Env: every moved host's topology now places it
// in the target's cloud (and VM, when it pinned one), all tenants in one
// store transaction; the virtual topology (switches, links, ports,
// DPIDs) is unchanged, so the tenant's apps see no change. Then the
// admission is withdrawn.
func (e migrationEnv) Commit(ctx context.Context, p migrate.Plan) error {
	h := e.h
	byTenant := map[string][]string{}
	var order []string
	for _, hst := range p.Hosts {
		tn, hn, _ := topology.SplitIfaceID(hst.IfaceID)
		if _, ok := byTenant[tn]; !ok {
			order = append(order, tn)
		}
		byTenant[tn] = append(byTenant[tn], hn)
	}
	var tps []*topology.Topology
	for _, tn := range order {
		rec, err := h.store.GetTenant(tn)
		if err != nil {
			return fmt.Errorf("tenant %q: %w", tn, storeErr(err))
		}
		tp, err := rec.Parse()
		if err != nil {
			return fmt.Errorf("tenant %q: %w", tn, err)
		}
		for i := range tp.Hosts {
			if slices.Contains(byTenant[tn], tp.Hosts[i].Name) {
				tp.Hosts[i].Cloud = p.Target.Site
				if tp.Hosts[i].VM != "" {
					tp.Hosts[i].VM = p.Target.VM
				}
			}
		}
		tps = append(tps, tp)
	}
	if _, err := h.ApplyTenants(ctx, tps); err != nil {
		return fmt.Errorf("record the new placement: %w", err)
	}
	e.Withdraw(p.Hosts)
	return nil
}
