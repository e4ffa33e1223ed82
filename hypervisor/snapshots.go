package hypervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// This file wires package hypervisor/snapshot into the Hypervisor
// (docs/snapshot.md, "Snapshots in the hypervisor"): it resolves targets
// (a tenant's VM bridges with a tenant-cookie filter, or one switch),
// serves api.SnapshotService and makes restore and the reconciler agree:
//
//   - entries the hypervisor compiles itself are its desired state: a
//     snapshot entry identical to one is restored (or kept) and the
//     reconciler leaves it alone (it never touches identical entries); a
//     snapshot entry with the key of a compiled entry but other content,
//     and a hypervisor entry (infra cookie) it no longer compiles, are
//     skipped (listed in the result), since the reconciler would undo them;
//   - tenant-cookie entries it does not compile (a tenant app's entries)
//     are restored and adopted: the reconciler no longer sees them (they
//     are hidden from its flow-stats read, see reconcileView) as long as
//     they are on the switch unchanged and their tenant exists, so their
//     timeouts run out on the switch as they would have;
//   - entries of other owners (cookies the reconciler never owns) are
//     restored as they were.
//
// Counters cannot be written in OpenFlow: every restored entry that was
// (re)created after the snapshot gets the snapshot's counters as an
// offset, added whenever the hypervisor reports statistics (Flows, the
// next snapshot, countersView).

// restoreTimeout bounds one restore when the caller's context has no
// earlier deadline: OVSDB, the bridges' reconnection and the flow tables.
const restoreTimeout = 45 * time.Second

// snapshotState is the Hypervisor's snapshot bookkeeping (the zero value
// is ready): the counter offsets and adopted entries of the last restore
// onto each switch, kept in memory and in the store (restoreStateID, read
// on first use), so they survive a restart of Skyvisor.
type snapshotState struct {
	load    sync.Once // loadRestores
	mu      sync.Mutex
	records map[uint64]restoreRecord     // by DPID, as stored
	offsets map[uint64]*restoredOffsets  // by DPID, from the last restore onto it
	adopted map[uint64]map[string]string // DPID -> entry key -> canonical form
}

type restoredOffsets struct {
	o  *snapshot.Offsets
	at time.Time // when the restore installed the entries
}

// restoreSlack is how much older than the restore an entry may look and
// still be the one the restore installed (clock and barrier delays).
const restoreSlack = 2 * time.Second

// tenantCookies returns the cookie filter of tenant id: the hypervisor's
// entries tied to it (pipeline.InfraCookie(id, host)) and its apps'
// entries (pipeline.TenantCookie(id, ...)).
func tenantCookies(id addr.TenantID) func(uint64) bool {
	return func(c uint64) bool {
		if pipeline.IsInfraCookie(c) {
			return addr.TenantID(c>>32) == id
		}
		return addr.TenantID(c>>48) == id
	}
}

// ResolveSwitch finds a switch of the infrastructure by datapath ID (16
// hex digits, or "0x" and hex digits) or bridge name. Errors wrap
// api.ErrNotFound (no such switch) or api.ErrInvalid (a bridge name
// shared by several switches: use the DPID).
func (h *Hypervisor) ResolveSwitch(s string) (*infra.Switch, error) {
	inf := h.Infrastructure()
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("switch: empty: %w", api.ErrInvalid)
	}
	var dpid uint64
	if d, err := ovsdb.ParseDatapathID(s); err == nil {
		dpid = d
	} else if hx, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		if d, err := strconv.ParseUint(hx, 16, 64); err == nil && d != 0 {
			dpid = d
		}
	}
	if dpid != 0 {
		if sw := inf.SwitchByDPID(dpid); sw != nil {
			c := *sw
			return &c, nil
		}
		return nil, fmt.Errorf("switch %q: no switch with that datapath ID: %w", s, api.ErrNotFound)
	}
	var found []infra.Switch
	for _, sw := range inf.Switches {
		if sw.Bridge == s {
			found = append(found, sw)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("switch %q: no switch with that datapath ID or bridge name: %w", s, api.ErrNotFound)
	case 1:
		return &found[0], nil
	}
	var ds []string
	for _, sw := range found {
		ds = append(ds, ovsdb.FormatDatapathID(sw.DPID))
	}
	return nil, fmt.Errorf("switch %q: bridge name used by %d switches (datapath IDs %s): give the datapath ID: %w",
		s, len(found), strings.Join(ds, ", "), api.ErrInvalid)
}

// tenantSwitches returns a tenant's ID and the VM bridges holding its bound
// hosts, sorted by DPID.
func (h *Hypervisor) tenantSwitches(name string) (addr.TenantID, []infra.Switch, error) {
	t, err := h.store.GetTenant(name)
	if err != nil {
		return 0, nil, fmt.Errorf("tenant %q: %w", name, storeErr(err))
	}
	binds, err := h.store.TenantBindings(name)
	if err != nil {
		return 0, nil, storeErr(err)
	}
	inf := h.Infrastructure()
	seen := map[uint64]bool{}
	var out []infra.Switch
	for _, b := range binds {
		d := uint64(b.DPID)
		sw := inf.SwitchByDPID(d)
		if sw == nil || sw.Role != infra.RoleVM || seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, *sw)
	}
	if len(out) == 0 {
		return 0, nil, fmt.Errorf("tenant %q has no host plugged into a VM bridge: nothing to snapshot: %w", name, api.ErrConflict)
	}
	slices.SortFunc(out, func(a, b infra.Switch) int { return compareU64(a.DPID, b.DPID) })
	return t.ID, out, nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// endpointOf is the OVSDB endpoint holding sw's bridge.
func endpointOf(inf *infra.Infra, sw *infra.Switch) string {
	if sw.OVSDB != "" {
		return sw.OVSDB
	}
	if s := inf.Site(sw.Site); s != nil {
		return s.OVSDB
	}
	return ""
}

// configs dials one snapshot.OVSDB per endpoint of switches; close closes
// them all.
func (h *Hypervisor) configs(ctx context.Context, switches []infra.Switch) (map[uint64]snapshot.Config, func(), error) {
	inf := h.Infrastructure()
	conns := map[string]*snapshot.OVSDB{}
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	out := map[uint64]snapshot.Config{}
	for i := range switches {
		sw := &switches[i]
		ep := endpointOf(inf, sw)
		c := conns[ep]
		if c == nil {
			tc, err := h.OVSDBTLSConfig(ep)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("site %s: %w: %w", sw.Site, err, api.ErrUnavailable)
			}
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			c, err = snapshot.DialOVSDB(dctx, ep, h.log, tc)
			cancel()
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("site %s: %w: %w", sw.Site, err, api.ErrUnavailable)
			}
			conns[ep] = c
		}
		out[sw.DPID] = c
	}
	return out, closeAll, nil
}

// statsView is a switch whose flow-stats reply is filtered (keep) and
// carries the restored counters (countersFor).
type statsView struct {
	snapshot.Switch
	keep     func(cookie uint64) bool
	counters func([]ofwire.FlowStats) []ofwire.FlowStats
}

func (v statsView) FlowStats(ctx context.Context, req *ofp.FlowStatsRequest) ([]ofwire.FlowStats, error) {
	fs, err := v.Switch.FlowStats(ctx, req)
	if err != nil {
		return nil, err
	}
	if v.keep != nil {
		fs = slices.DeleteFunc(fs, func(f ofwire.FlowStats) bool { return !v.keep(f.Cookie) })
	}
	if v.counters != nil {
		fs = v.counters(fs)
	}
	return fs, nil
}

// connected returns the session of dpid, or an error wrapping
// api.ErrUnavailable.
func (h *Hypervisor) connected(dpid uint64) (controller.Switch, error) {
	h.mu.Lock()
	sw := h.switches[dpid]
	h.mu.Unlock()
	if sw == nil {
		return nil, fmt.Errorf("switch %s is not connected: %w", pipeline.DPID(dpid), api.ErrUnavailable)
	}
	return sw, nil
}

// CreateSnapshot implements api.SnapshotService: it captures a tenant's
// VM bridges (only the entries with the tenant's cookies, see
// tenantCookies, and the bridges' whole OVSDB configuration) or one
// switch (every entry), with the counters the hypervisor reports (switch
// counters plus restored offsets), and stores the snapshot.
func (h *Hypervisor) CreateSnapshot(ctx context.Context, req api.SnapshotRequest) (snapshot.Info, error) {
	var (
		tenant   string
		keep     func(uint64) bool
		switches []infra.Switch
	)
	switch {
	case req.Tenant != "" && req.Switch != "":
		return snapshot.Info{}, fmt.Errorf("give either tenant or switch, not both: %w", api.ErrInvalid)
	case req.Tenant != "":
		id, sws, err := h.tenantSwitches(req.Tenant)
		if err != nil {
			return snapshot.Info{}, err
		}
		tenant, keep, switches = req.Tenant, tenantCookies(id), sws
	case req.Switch != "":
		sw, err := h.ResolveSwitch(req.Switch)
		if err != nil {
			return snapshot.Info{}, err
		}
		switches = []infra.Switch{*sw}
	default:
		return snapshot.Info{}, fmt.Errorf("give tenant or switch: %w", api.ErrInvalid)
	}
	cfgs, closeAll, err := h.configs(ctx, switches)
	if err != nil {
		return snapshot.Info{}, err
	}
	defer closeAll()
	targets := make([]snapshot.Target, 0, len(switches))
	for _, sw := range switches {
		targets = append(targets, snapshot.Target{Bridge: sw.Bridge, DPID: sw.DPID, Config: cfgs[sw.DPID],
			Connect: func(_ context.Context, dpid uint64) (snapshot.Switch, error) {
				s, err := h.connected(dpid)
				if err != nil {
					return nil, err
				}
				return statsView{Switch: s, keep: keep, counters: func(fs []ofwire.FlowStats) []ofwire.FlowStats {
					out, _ := h.restoredCounters(dpid, fs)
					return out
				}}, nil
			}})
	}
	snap, err := snapshot.Take(ctx, tenant, targets, time.Now())
	if err != nil {
		return snapshot.Info{}, err
	}
	b, err := snapshot.Encode(snap)
	if err != nil {
		return snapshot.Info{}, err
	}
	si, err := h.store.PutSnapshot(snap.ID, b)
	if err != nil {
		return snapshot.Info{}, storeErr(err)
	}
	return infoOf(snap, si), nil
}

func infoOf(snap *snapshot.Snapshot, si store.SnapshotInfo) snapshot.Info {
	in := snapshot.Info{ID: snap.ID, Time: snap.Time, Tenant: snap.Tenant, Size: si.Size, StoredAt: si.Time, Bridges: []string{}}
	for _, sw := range snap.Switches {
		in.Bridges = append(in.Bridges, sw.Bridge.Name)
		in.Flows += len(sw.Flows)
	}
	return in
}

// Snapshots implements api.SnapshotService: every stored snapshot's
// summary, oldest first.
func (h *Hypervisor) Snapshots(context.Context) ([]snapshot.Info, error) {
	out, err := (&snapshot.Service{Store: h.store}).List()
	if err != nil {
		return nil, storeErr(err)
	}
	return out, nil
}

// Snapshot implements api.SnapshotService: the stored snapshot id; the
// error wraps api.ErrNotFound when there is none.
func (h *Hypervisor) Snapshot(_ context.Context, id string) (*snapshot.Snapshot, error) {
	if !snapshot.ValidID(id) {
		return nil, fmt.Errorf("snapshot %q: %w", id, api.ErrNotFound)
	}
	s, err := (&snapshot.Service{Store: h.store}).Get(id)
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", id, storeErr(err))
	}
	return s, nil
}

// DeleteSnapshot implements api.SnapshotService; api.ErrNotFound when
// there is no such snapshot.
func (h *Hypervisor) DeleteSnapshot(_ context.Context, id string) error {
	if !snapshot.ValidID(id) {
		return fmt.Errorf("snapshot %q: %w", id, api.ErrNotFound)
	}
	if err := h.store.DeleteSnapshot(id); err != nil {
		return fmt.Errorf("snapshot %q: %w", id, storeErr(err))
	}
	return nil
}

// flowClass is what restore does with one snapshot entry.
type flowClass int

const (
	flowCompiled flowClass = iota // identical to a compiled entry: restore, reconciler agrees
	flowAdopt                     // a tenant app's entry: restore and adopt
	flowForeign                   // not the reconciler's: restore
	flowSkip                      // superseded or stale: not restored
)

// classify decides the fate of snapshot entry e on a switch whose compiled
// entries are desired (key -> canonical); tenants are the existing tenant
// IDs. why explains a skip.
func classify(e *pipeline.Entry, desired map[string]string, tenants map[addr.TenantID]bool) (flowClass, string) {
	c, err := e.Canonical()
	if err != nil {
		return flowSkip, err.Error()
	}
	if want, ok := desired[e.Key()]; ok {
		if want == c {
			return flowCompiled, ""
		}
		return flowSkip, "superseded: the hypervisor now compiles another entry with this table, priority and match"
	}
	switch {
	case pipeline.IsInfraCookie(e.Cookie):
		return flowSkip, "stale: a hypervisor entry it no longer compiles"
	case pipeline.IsOwnedCookie(e.Cookie):
		if !tenants[addr.TenantID(e.Cookie>>48)] {
			return flowSkip, fmt.Sprintf("tenant ID %s no longer exists", addr.TenantID(e.Cookie>>48))
		}
		return flowAdopt, ""
	}
	return flowForeign, ""
}

// RestoreSnapshot implements api.SnapshotService: it restores the stored
// snapshot id onto the switches it was taken from (by DPID; the bridge is
// re-created on a fresh Open vSwitch with its ports, interfaces, queues
// and the hypervisor's current controller target), following the
// ownership rules at the top of this file, and records counter offsets.
// Errors: api.ErrNotFound (no such snapshot), api.ErrConflict (its tenant
// or a switch is gone, or the flow table holds conflicting entries),
// api.ErrUnavailable (OVSDB unreachable, a bridge did not connect); the
// result is returned also on error.
func (h *Hypervisor) RestoreSnapshot(ctx context.Context, id string) (api.RestoreResult, error) {
	t0 := time.Now()
	res := api.RestoreResult{ID: id, Switches: []snapshot.SwitchReport{}, Skipped: []api.SkippedFlow{}}
	snap, err := h.Snapshot(ctx, id)
	if err != nil {
		return res, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, restoreTimeout)
		defer cancel()
	}
	var tolerate func(uint64) bool
	if snap.Tenant != "" {
		t, err := h.store.GetTenant(snap.Tenant)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return res, fmt.Errorf("snapshot %s: tenant %q no longer exists: %w", id, snap.Tenant, api.ErrConflict)
			}
			return res, storeErr(err)
		}
		mine := tenantCookies(t.ID)
		tolerate = func(c uint64) bool { return !mine(c) }
	} else {
		tolerate = pipeline.IsOwnedCookie
	}
	tenants, err := h.store.ListTenants()
	if err != nil {
		return res, storeErr(err)
	}
	live := map[addr.TenantID]bool{}
	for _, t := range tenants {
		live[t.ID] = true
	}
	inf := h.Infrastructure()
	switches := make([]infra.Switch, 0, len(snap.Switches))
	for _, st := range snap.Switches {
		d, err := ovsdb.ParseDatapathID(st.DPID)
		if err != nil {
			return res, fmt.Errorf("snapshot %s: bridge %q: %w: %w", id, st.Bridge.Name, err, api.ErrConflict)
		}
		sw := inf.SwitchByDPID(d)
		if sw == nil {
			return res, fmt.Errorf("snapshot %s: switch %s (bridge %q) is no longer in the infrastructure: %w", id, st.DPID, st.Bridge.Name, api.ErrConflict)
		}
		switches = append(switches, *sw)
	}
	// Tenant apps' replays keep off these bridges until the restore is
	// done (tenantapps.go): their flow tables must be clean of entries not
	// in the snapshot, and then hold the snapshot's.
	defer h.holdReplays(switches)()

	cfgs, closeAll, err := h.configs(ctx, switches)
	if err != nil {
		return res, err
	}
	defer closeAll()

	// Phase 1, OVSDB: bridges, ports, interfaces, queues and the
	// controller, before any flow (a bridge's first controller flushes its
	// table). Re-created host interfaces become bindings again through the
	// hypervisor's interface watch; wait for them, so that the desired
	// state the flows are judged against places those hosts here.
	configChange := make([]string, len(switches))
	for i, sw := range switches {
		want := restoreWant(&snap.Switches[i].Bridge, h.controllerTarget(inf, &sw))
		plan, err := cfgs[sw.DPID].ApplyBridge(ctx, &want)
		configChange[i] = plan.String()
		if err != nil {
			res.Switches = append(res.Switches, snapshot.SwitchReport{Bridge: sw.Bridge, DPID: snap.Switches[i].DPID, Config: configChange[i]})
			return res, restoreErr(fmt.Errorf("snapshot %s: bridge %q: ovsdb: %w", id, sw.Bridge, err))
		}
	}
	h.waitBindings(ctx, snap, switches)

	// Phase 2, flows: no tenant apply, binding push or audit meanwhile, so
	// the desired state read below stays the one the reconciler enforces.
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	if err := h.pushLocked(ctx); err != nil {
		h.log.Warn("hypervisor: restore: push desired state", "err", err)
	}

	h.mu.Lock()
	desired := make(map[uint64]map[string]string, len(switches))
	for _, sw := range switches {
		m := map[string]string{}
		for i := range h.desired[sw.DPID] {
			e := &h.desired[sw.DPID][i]
			if c, err := e.Canonical(); err == nil {
				m[e.Key()] = c
			}
		}
		desired[sw.DPID] = m
	}
	h.mu.Unlock()

	// The snapshot as it will be restored, and the entries to adopt.
	work := *snap
	work.Switches = make([]snapshot.SwitchState, len(snap.Switches))
	adopt := map[uint64][]pipeline.Entry{}
	for i, st := range snap.Switches {
		d := switches[i].DPID
		st.Flows = nil
		for _, f := range snap.Switches[i].Flows {
			e, err := f.Entry()
			if err != nil {
				return res, fmt.Errorf("snapshot %s: bridge %q: flow %s: %w: %w", id, st.Bridge.Name, f.Name(), err, api.ErrConflict)
			}
			cl, why := classify(&e, desired[d], live)
			if cl == flowSkip {
				res.Skipped = append(res.Skipped, api.SkippedFlow{Bridge: st.Bridge.Name, DPID: st.DPID, Flow: f.Name(), Reason: why})
				continue
			}
			if cl == flowAdopt {
				adopt[d] = append(adopt[d], e)
			}
			st.Flows = append(st.Flows, f)
		}
		work.Switches[i] = st
	}

	// Each bridge's reconcile lock is taken once its session is up and
	// held until the offsets and adoptions are recorded.
	var (
		lmu    sync.Mutex
		locked = map[uint64]*sync.Mutex{}
	)
	defer func() {
		lmu.Lock()
		defer lmu.Unlock()
		for _, l := range locked {
			l.Unlock()
		}
	}()
	var rerr error
	for i, sw := range switches {
		tg := snapshot.Target{Bridge: sw.Bridge, DPID: sw.DPID, Config: cfgs[sw.DPID],
			Connect: func(ctx context.Context, dpid uint64) (snapshot.Switch, error) {
				s, err := h.waitConnected(ctx, dpid)
				if err != nil {
					return nil, err
				}
				lmu.Lock()
				defer lmu.Unlock()
				if locked[dpid] == nil {
					l := h.switchLock(dpid)
					l.Lock()
					locked[dpid] = l
				}
				return s, nil
			}}
		opts := snapshot.RestoreOptions{Tolerate: tolerate}
		// The controller is where the hypervisor says it is now (it may
		// have moved since the snapshot).
		if ct := h.controllerTarget(inf, &sw); ct != "" {
			opts.Controllers = []snapshot.ControllerConfig{{Target: ct, ConnectionMode: ovsdb.ConnectionModeOutOfBand}}
		}
		one := work
		one.Switches = work.Switches[i : i+1]
		rep, err := snapshot.Restore(ctx, &one, []snapshot.Target{tg}, opts)
		if rep != nil {
			for _, sr := range rep.Switches {
				if sr.Config == "no change" || sr.Config == "not applied" {
					sr.Config = configChange[i] // what phase 1 did
				}
				res.Switches = append(res.Switches, sr)
			}
		}
		if err != nil {
			rerr = err
			break
		}
		// Offsets and adoptions, read under the bridge's reconcile lock.
		n, err := h.recordRestore(ctx, sw.DPID, snap.Time, &work.Switches[i], adopt[sw.DPID])
		if err != nil {
			rerr = err
			break
		}
		res.CounterOffsets += n
		res.Adopted += len(adopt[sw.DPID])
	}
	res.TookMS = float64(time.Since(t0).Microseconds()) / 1000
	if rerr != nil {
		return res, restoreErr(rerr)
	}
	h.requestRefresh()
	h.log.Info("hypervisor: snapshot restored", "id", id, "switches", len(res.Switches), "skipped", len(res.Skipped),
		"adopted", res.Adopted, "counter_offsets", res.CounterOffsets, "took", time.Since(t0))
	return res, nil
}

// restoreWant is the OVSDB configuration a restore applies: the captured
// one with the datapath ID pinned (other_config:datapath-id) and the
// hypervisor's current controller target (out-of-band), as
// snapshot.Restore applies it with RestoreOptions.Controllers.
func restoreWant(bc *snapshot.BridgeConfig, controller string) snapshot.BridgeConfig {
	want := *bc
	want.OtherConfig = map[string]string{}
	for k, v := range bc.OtherConfig {
		want.OtherConfig[k] = v
	}
	if bc.DatapathID != "" {
		want.OtherConfig["datapath-id"] = bc.DatapathID
	}
	if controller != "" {
		want.Controllers = []snapshot.ControllerConfig{{Target: controller, ConnectionMode: ovsdb.ConnectionModeOutOfBand}}
	}
	return want
}

// bindingWait bounds how long a restore waits for re-created host
// interfaces to be bound again.
const bindingWait = 15 * time.Second

// waitBindings waits (at most bindingWait) until every host interface of
// the snapshot (external_ids:iface-id of an existing tenant) that is not
// bound elsewhere is bound to its captured bridge and port again.
func (h *Hypervisor) waitBindings(ctx context.Context, snap *snapshot.Snapshot, switches []infra.Switch) {
	type want struct {
		id     string
		dpid   uint64
		ofport uint32
	}
	var wants []want
	for i, st := range snap.Switches {
		for _, p := range st.Bridge.Ports {
			for _, in := range p.Interfaces {
				id := in.ExternalIDs["iface-id"]
				tn, _, ok := topology.SplitIfaceID(id)
				if !ok || in.OFPort <= 0 {
					continue
				}
				if _, err := h.store.GetTenant(tn); err != nil {
					continue
				}
				wants = append(wants, want{id, switches[i].DPID, uint32(in.OFPort)})
			}
		}
	}
	deadline := time.Now().Add(bindingWait)
	for _, w := range wants {
		for {
			b, err := h.store.GetBinding(w.id)
			if err == nil && (uint64(b.DPID) != w.dpid || b.OFPort == w.ofport) {
				break // bound here again, or bound elsewhere (moved): nothing to wait for
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				h.log.Warn("hypervisor: restore: host not bound again in time", "iface_id", w.id, "dpid", pipeline.DPID(w.dpid))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// restoreErr maps a restore failure to an API error kind.
func restoreErr(err error) error {
	switch {
	case errors.Is(err, api.ErrUnavailable), errors.Is(err, api.ErrConflict):
		return err
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %w", err, api.ErrUnavailable)
	}
	return fmt.Errorf("%w: %w", err, api.ErrConflict)
}

// controllerTarget is the controller target the hypervisor gives sw's
// bridge now (bridgeSpec).
func (h *Hypervisor) controllerTarget(inf *infra.Infra, sw *infra.Switch) string {
	spec := h.bridgeSpec(inf, sw)
	if len(spec.Controllers) == 0 {
		return ""
	}
	return spec.Controllers[0]
}

// waitConnected polls for dpid's session until ctx ends.
func (h *Hypervisor) waitConnected(ctx context.Context, dpid uint64) (controller.Switch, error) {
	for {
		if s, err := h.connected(dpid); err == nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("switch %s did not connect to the controller: %w: %w", pipeline.DPID(dpid), ctx.Err(), api.ErrUnavailable)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// switchLock returns the lock syncSwitch takes for dpid.
func (h *Hypervisor) switchLock(dpid uint64) *sync.Mutex {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.swLocks[dpid]
	if l == nil {
		l = &sync.Mutex{}
		h.swLocks[dpid] = l
	}
	return l
}

// recordRestore (dpid's reconcile lock held) reads the restored table and
// records the counter offsets of the restored entries that were created
// after the snapshot (an entry older than the snapshot already counts
// what the snapshot counted) and the adopted entries. It returns the
// number of offsets.
func (h *Hypervisor) recordRestore(ctx context.Context, dpid uint64, taken time.Time, st *snapshot.SwitchState, adopt []pipeline.Entry) (int, error) {
	sw, err := h.connected(dpid)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	fs, err := sw.FlowStats(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("switch %s: read restored table: %w", pipeline.DPID(dpid), err)
	}
	age := map[string]time.Duration{}
	for i := range fs {
		e := pipeline.FromFlowStats(&fs[i])
		age[e.Key()+"/"+strconv.FormatUint(e.Cookie, 16)] = fs[i].Duration()
	}
	fresh := *st
	fresh.Flows = nil
	for _, f := range st.Flows {
		e, err := f.Entry()
		if err != nil {
			continue
		}
		if a, ok := age[e.Key()+"/"+strconv.FormatUint(e.Cookie, 16)]; ok && a < now.Sub(taken) {
			fresh.Flows = append(fresh.Flows, f)
		}
	}
	var adopted []snapshot.Flow
	for i := range adopt {
		if f, err := snapshot.FlowFromEntry(adopt[i]); err == nil {
			adopted = append(adopted, f)
		}
	}
	return h.remember(dpid, restoreRecord{DPID: st.DPID, At: now, Offsets: fresh.Flows, Adopted: adopted}), nil
}

// restoreStateID is the store key (in the snapshot buckets; not a valid
// snapshot ID, so never listed or served) of the restores' bookkeeping:
// counter offsets and adopted entries survive a restart of Skyvisor.
const restoreStateID = "hypervisor-restore-state"

// restoreRecord is what the last restore onto one switch left: the
// counters of the entries it installed (offsets) and the entries it
// adopted (merged over restores), as snapshot flows.
type restoreRecord struct {
	DPID    string          `json:"dpid"`
	At      time.Time       `json:"at"`
	Offsets []snapshot.Flow `json:"offsets"`
	Adopted []snapshot.Flow `json:"adopted"`
}

// remember installs rec as dpid's restore bookkeeping (adopted entries
// merged with earlier ones), stores all records, and returns the number
// of counter offsets.
func (h *Hypervisor) remember(dpid uint64, rec restoreRecord) int {
	h.snaps.load.Do(h.loadRestores)
	h.snaps.mu.Lock()
	defer h.snaps.mu.Unlock()
	if old, ok := h.snaps.records[dpid]; ok {
		seen := map[string]bool{}
		for _, f := range rec.Adopted {
			seen[flowKeyOf(&f)] = true
		}
		for _, f := range old.Adopted {
			if !seen[flowKeyOf(&f)] {
				rec.Adopted = append(rec.Adopted, f)
			}
		}
	}
	n := h.applyRecordLocked(dpid, rec)
	b, err := json.Marshal(h.snaps.records)
	if err == nil {
		_, err = h.store.PutSnapshot(restoreStateID, b)
	}
	if err != nil {
		h.log.Warn("hypervisor: restore bookkeeping not stored (counters of restored entries restart at the next Skyvisor restart)", "err", err)
	}
	return n
}

func flowKeyOf(f *snapshot.Flow) string {
	e, err := f.Entry()
	if err != nil {
		return ""
	}
	return e.Key()
}

// applyRecordLocked (snaps.mu held) makes rec the in-memory state of dpid
// and returns the number of offsets.
func (h *Hypervisor) applyRecordLocked(dpid uint64, rec restoreRecord) int {
	if h.snaps.records == nil {
		h.snaps.records = map[uint64]restoreRecord{}
		h.snaps.offsets = map[uint64]*restoredOffsets{}
		h.snaps.adopted = map[uint64]map[string]string{}
	}
	h.snaps.records[dpid] = rec
	var o snapshot.Offsets
	o.Add(&snapshot.SwitchState{DPID: rec.DPID, Flows: rec.Offsets})
	h.snaps.offsets[dpid] = &restoredOffsets{o: &o, at: rec.At}
	m := map[string]string{}
	for i := range rec.Adopted {
		e, err := rec.Adopted[i].Entry()
		if err != nil {
			continue
		}
		if c, err := e.Canonical(); err == nil {
			m[e.Key()] = c
		}
	}
	h.snaps.adopted[dpid] = m
	return o.Len()
}

// loadRestores reads the stored restore bookkeeping once (a missing or
// unreadable record leaves it empty, logged).
func (h *Hypervisor) loadRestores() {
	st, err := h.store.GetSnapshot(restoreStateID)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	var recs map[uint64]restoreRecord
	if err == nil {
		err = json.Unmarshal(st.Data, &recs)
	}
	if err != nil {
		h.log.Warn("hypervisor: restore bookkeeping unreadable; counters of restored entries start from the switches' values", "err", err)
		return
	}
	h.snaps.mu.Lock()
	defer h.snaps.mu.Unlock()
	for d, rec := range recs {
		h.applyRecordLocked(d, rec)
	}
}

// restoredCounters returns fs (a flow-stats reply of dpid) with the
// snapshot counters added to the entries the last restore onto dpid
// installed and that still exist (an entry re-created since the restore
// starts from zero again: its duration is shorter than the time since the
// restore), in the same order; restored[i] tells whether entry i got an
// offset.
func (h *Hypervisor) restoredCounters(dpid uint64, fs []ofwire.FlowStats) (out []ofwire.FlowStats, restored []bool) {
	restored = make([]bool, len(fs))
	h.snaps.load.Do(h.loadRestores)
	h.snaps.mu.Lock()
	ro := h.snaps.offsets[dpid]
	h.snaps.mu.Unlock()
	if ro == nil || ro.o.Len() == 0 {
		return fs, restored
	}
	since := time.Since(ro.at) - restoreSlack
	out = ro.o.Apply(dpid, fs)
	for i := range out {
		if fs[i].Duration() < since {
			out[i] = fs[i] // re-created after the restore
			continue
		}
		restored[i] = out[i].PacketCount != fs[i].PacketCount || out[i].ByteCount != fs[i].ByteCount ||
			out[i].Duration() != fs[i].Duration()
	}
	return out, restored
}

// countersView returns sw with FlowStats carrying the restored counters
// (restoredCounters: a restore's or a migration's offsets): the statistics
// a tenant should see after a restore or a migration. The tenant apps'
// sessions are seen through it (tenantapps.go, physical.Switch).
func (h *Hypervisor) countersView(sw controller.Switch) controller.Switch {
	return counterSwitch{Switch: sw, h: h}
}

type counterSwitch struct {
	controller.Switch
	h *Hypervisor
}

func (c counterSwitch) FlowStats(ctx context.Context, req *ofp.FlowStatsRequest) ([]ofwire.FlowStats, error) {
	fs, err := c.Switch.FlowStats(ctx, req)
	if err != nil {
		return nil, err
	}
	out, _ := c.h.restoredCounters(uint64(c.DPID()), fs)
	return out, nil
}

// Multipart passes the request to the session; an OFPMP_FLOW reply
// (spec 7.3.5.2) is decoded and re-encoded with the restored counters, as
// FlowStats gives them.
func (c counterSwitch) Multipart(ctx context.Context, t ofp.MultipartType, body io.WriterTo) ([]byte, error) {
	b, err := c.Switch.Multipart(ctx, t, body)
	if err != nil || t != ofp.MultipartTypeFlow {
		return b, err
	}
	fs, err := ofwire.DecodeFlowStats(b)
	if err != nil {
		return nil, fmt.Errorf("hypervisor: flow stats reply from %s: %w", c.DPID(), err)
	}
	out, _ := c.h.restoredCounters(uint64(c.DPID()), fs)
	var re []byte
	for i := range out {
		if re, err = ofwire.AppendFlowStats(re, &out[i]); err != nil {
			return nil, fmt.Errorf("hypervisor: flow stats of %s: encode entry %d: %w", c.DPID(), i, err)
		}
	}
	return re, nil
}

// reconcileView returns the switch the reconciler of dpid should read:
// sw itself, or, when a restore adopted entries there, sw with those
// entries hidden from its flow-stats reply while they are unchanged on the
// switch and their tenant exists (so the reconciler neither deletes nor
// re-adds them). Adopted entries no longer on the switch (expired,
// deleted) are forgotten.
func (h *Hypervisor) reconcileView(dpid uint64, sw reconcile.SyncSwitch) reconcile.SyncSwitch {
	h.snaps.load.Do(h.loadRestores)
	h.snaps.mu.Lock()
	n := len(h.snaps.adopted[dpid])
	h.snaps.mu.Unlock()
	if n == 0 {
		return sw
	}
	return adoptedView{SyncSwitch: sw, h: h, dpid: dpid}
}

type adoptedView struct {
	reconcile.SyncSwitch
	h    *Hypervisor
	dpid uint64
}

func (v adoptedView) FlowStats(ctx context.Context, req *ofp.FlowStatsRequest) ([]ofwire.FlowStats, error) {
	fs, err := v.SyncSwitch.FlowStats(ctx, req)
	if err != nil {
		return nil, err
	}
	v.h.mu.Lock()
	live := map[addr.TenantID]bool{}
	for id := range v.h.views {
		live[id] = true
	}
	v.h.mu.Unlock()
	v.h.snaps.mu.Lock()
	defer v.h.snaps.mu.Unlock()
	adopted := v.h.snaps.adopted[v.dpid]
	seen := map[string]bool{}
	out := fs[:0:0]
	for i := range fs {
		e := pipeline.FromFlowStats(&fs[i])
		k := e.Key()
		if want, ok := adopted[k]; ok && live[addr.TenantID(e.Cookie>>48)] {
			if c, err := e.Canonical(); err == nil && c == want {
				seen[k] = true
				continue
			}
		}
		out = append(out, fs[i])
	}
	if req == nil || (req.Table == ofp.TableAll && len(req.Match.Fields) == 0) {
		for k := range adopted {
			if !seen[k] {
				delete(adopted, k)
			}
		}
	}
	return out, nil
}

// Flows implements api.SnapshotService: the flow table of a switch
// (DPID or bridge name) as the hypervisor reports it, with restored
// counters (snapshot counters added to the entries a restore installed,
// CountersRestored set); tenant, if not "", keeps only that tenant's
// entries (tenantCookies).
func (h *Hypervisor) Flows(ctx context.Context, switchRef, tenant string) (api.FlowList, error) {
	sw, err := h.ResolveSwitch(switchRef)
	if err != nil {
		return api.FlowList{}, err
	}
	var keep func(uint64) bool
	if tenant != "" {
		t, err := h.store.GetTenant(tenant)
		if err != nil {
			return api.FlowList{}, fmt.Errorf("tenant %q: %w", tenant, storeErr(err))
		}
		keep = tenantCookies(t.ID)
	}
	s, err := h.connected(sw.DPID)
	if err != nil {
		return api.FlowList{}, err
	}
	raw, err := s.FlowStats(ctx, nil)
	if err != nil {
		return api.FlowList{}, fmt.Errorf("switch %s: flow stats: %w: %w", pipeline.DPID(sw.DPID), err, api.ErrUnavailable)
	}
	if keep != nil {
		raw = slices.DeleteFunc(raw, func(f ofwire.FlowStats) bool { return !keep(f.Cookie) })
	}
	adj, restored := h.restoredCounters(sw.DPID, raw)
	out := api.FlowList{Switch: sw.Bridge, DPID: ovsdb.FormatDatapathID(sw.DPID), Tenant: tenant, Flows: make([]api.FlowStat, 0, len(adj))}
	for i := range adj {
		f, err := snapshot.FlowFromStats(&adj[i])
		if err != nil {
			return api.FlowList{}, fmt.Errorf("switch %s: flow %d: %w", pipeline.DPID(sw.DPID), i, err)
		}
		out.Flows = append(out.Flows, api.FlowStat{Flow: f, CountersRestored: restored[i]})
	}
	slices.SortStableFunc(out.Flows, func(a, b api.FlowStat) int {
		if a.Table != b.Table {
			return int(a.Table) - int(b.Table)
		}
		return int(b.Priority) - int(a.Priority)
	})
	return out, nil
}

var _ api.SnapshotService = (*Hypervisor)(nil)
