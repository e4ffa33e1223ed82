package hypervisor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/hypervisor/vnet"
)

// Tenant apps (docs/design.md, "Tenant apps on a virtual view"): the
// "learning" app is realized natively by the hypervisor (proactive
// translated entries, desired.go); every other app of a tenant's list runs
// on the tenant's virtual switches in a vnet.Tenant, created, updated and
// closed here whenever the desired state is installed.

// tenantApps holds the running vnet runtimes.
type tenantApps struct {
	reg map[string]apps.Factory // vnet registry (Config.TenantApps)

	mu   sync.Mutex            // serializes update
	runs map[string]*tenantRun // by tenant name

	// byName and byID are copy-on-write snapshots of runs for the hot
	// paths (packet-in and flow-removed delivery, reconcile ownership).
	byName atomic.Pointer[map[string]*vnet.Tenant]
	byID   atomic.Pointer[map[addr.TenantID]*vnet.Tenant]

	// sessions caches connected edge bridges by DPID
	// (controller.DPID -> controller.Switch) for physical.Switch.
	sessions sync.Map

	holdMu  sync.Mutex
	holding map[uint64]int // DPID -> restores writing its flow table (holdReplays)
}

// holdReplays keeps the tenant apps' replays (vnet.Tenant.Replay, through
// vnet.Config.Hold) off the given switches until the returned function is
// called: a snapshot restore (snapshots.go) wants their flow tables clean
// of entries not in the snapshot, and afterwards holding exactly the
// snapshot's. Holds nest.
func (h *Hypervisor) holdReplays(sws []infra.Switch) (release func()) {
	ta := h.tapps
	ta.holdMu.Lock()
	if ta.holding == nil {
		ta.holding = map[uint64]int{}
	}
	for _, sw := range sws {
		ta.holding[sw.DPID]++
	}
	ta.holdMu.Unlock()
	return func() {
		ta.holdMu.Lock()
		defer ta.holdMu.Unlock()
		for _, sw := range sws {
			if ta.holding[sw.DPID]--; ta.holding[sw.DPID] <= 0 {
				delete(ta.holding, sw.DPID)
			}
		}
	}
}

// nativeCookie implements vnet.Config.Foreign: the cookies of the natively
// realized learning entries (desired.go) are the hypervisor's desired
// state, never a tenant app's, so a replay leaves them alone.
func nativeCookie(c uint64) bool {
	app := c & (1<<48 - 1)
	return app == cookieUnicast || app == cookieBroadcast
}

// replayHeld implements vnet.Config.Hold: whether a restore holds d.
func (h *Hypervisor) replayHeld(d controller.DPID) bool {
	ta := h.tapps
	ta.holdMu.Lock()
	defer ta.holdMu.Unlock()
	return ta.holding[uint64(d)] > 0
}

// tenantRun is one tenant's runtime and what it was built from.
type tenantRun struct {
	id    addr.TenantID
	names []string
	rt    *vnet.Tenant
}

// newTenantApps returns an empty set of runtimes over registry reg (nil:
// vnet.Builtin()).
func newTenantApps(reg map[string]apps.Factory) *tenantApps {
	if reg == nil {
		reg = vnet.Builtin()
	}
	ta := &tenantApps{reg: reg, runs: map[string]*tenantRun{}}
	ta.publish()
	return ta
}

// publish refreshes the hot-path snapshots (ta.mu held or not yet shared).
func (ta *tenantApps) publish() {
	byName := make(map[string]*vnet.Tenant, len(ta.runs))
	byID := make(map[addr.TenantID]*vnet.Tenant, len(ta.runs))
	for n, r := range ta.runs {
		byName[n], byID[r.id] = r.rt, r.rt
	}
	ta.byName.Store(&byName)
	ta.byID.Store(&byID)
}

// knownApps returns the app names a topology may list.
func (h *Hypervisor) knownApps() []string { return vnet.KnownApps(h.tapps.reg) }

// topologyInfra is the infrastructure topologies are validated against:
// the clouds and VMs, and the known tenant app names.
func (h *Hypervisor) topologyInfra() topology.Infra {
	ti := h.Infrastructure().Topology()
	ti.Apps = h.knownApps()
	return ti
}

// physical implements vnet.Physical over the connected sessions.
type physical struct{ h *Hypervisor }

// Switch returns the connected switch with datapath ID d, or nil. It is
// on the hot path of every tenant flow-mod and packet-out: sessions are
// cached outside h.mu and the cache entry is dropped once its session is
// done (disconnect or replacement by a newer session of the DPID). The
// switch is the session seen through countersView (snapshots.go): its
// flow-stats carry the counter offsets of a snapshot restore or of a
// migration's statistics merge (migration.go MergeStats), so the counters
// a tenant app reads continue across both; everything else is the
// session's own.
func (p physical) Switch(d controller.DPID) controller.Switch {
	if v, ok := p.h.tapps.sessions.Load(d); ok {
		sw := v.(controller.Switch)
		select {
		case <-sw.Done():
			p.h.tapps.sessions.CompareAndDelete(d, v)
		default:
			return sw
		}
	}
	p.h.mu.Lock()
	sw := p.h.switches[uint64(d)]
	p.h.mu.Unlock()
	if sw == nil {
		return nil
	}
	v := p.h.countersView(sw) // Done is the session's
	p.h.tapps.sessions.Store(d, v)
	return v
}

// replayTenantApps gives edge bridge dpid, which just connected on a new
// session (and was reconciled), the entries the tenant apps installed on
// the virtual switches that span it (vnet.Tenant.Replay: after an
// ovs-vswitchd restart the bridge's flow table is empty, and a bridge
// that was away missed flow-mods). The reconcile leaves these entries
// alone (ownsCookie). Errors are logged.
func (h *Hypervisor) replayTenantApps(ctx context.Context, dpid uint64) {
	for name, rt := range *h.tapps.byName.Load() {
		if err := rt.Replay(ctx, controller.DPID(dpid)); err != nil {
			h.log.Warn("hypervisor: tenant apps: replay onto a connected bridge failed", "tenant", name,
				"dpid", pipeline.DPID(dpid), "err", err)
		}
	}
}

// updateTenantApps makes the running vnet runtimes match st: a tenant
// whose app list names apps other than "learning" gets a runtime (built
// from the registry), updated with its view and bindings on every later
// call; a runtime whose tenant is gone, changed its tenant ID or app list,
// or no longer lists such apps is closed (its apps see SwitchDown).
// Errors building a tenant's apps are logged and skip that tenant (the
// registry was checked at validation, so this means a failing factory).
func (h *Hypervisor) updateTenantApps(st *state) {
	ta := h.tapps
	ta.mu.Lock()
	defer ta.mu.Unlock()
	keep := map[string]bool{}
	for _, t := range st.tenants {
		names := vnet.ViewApps(st.topos[t.Name].Apps)
		if len(names) == 0 {
			continue
		}
		keep[t.Name] = true
		vs := vnet.State{View: st.views[t.Name], Bindings: st.model.Bindings, Moving: st.moving(t.Name)}
		if r := ta.runs[t.Name]; r != nil && r.id == t.ID && slices.Equal(r.names, names) {
			if err := r.rt.Update(vs); err != nil {
				h.log.Error("hypervisor: tenant apps: update", "tenant", t.Name, "err", err)
			}
			continue
		}
		if r := ta.runs[t.Name]; r != nil {
			r.rt.Close()
			delete(ta.runs, t.Name)
		}
		log := h.log.With("tenant", t.Name)
		built, err := apps.Build(ta.reg, names, func(name string) apps.Options {
			return apps.Options{Logger: log.With("app", name)}
		})
		if err == nil {
			var rt *vnet.Tenant
			rt, err = vnet.New(vnet.Config{Apps: built, Physical: physical{h}, Logger: log, Hold: h.replayHeld, Foreign: nativeCookie}, vs)
			if err == nil {
				ta.runs[t.Name] = &tenantRun{id: t.ID, names: names, rt: rt}
				h.log.Info("hypervisor: tenant apps started on the virtual view", "tenant", t.Name, "apps", names)
				continue
			}
		}
		h.log.Error("hypervisor: tenant apps not started", "tenant", t.Name, "apps", names, "err", err)
	}
	for n, r := range ta.runs {
		if !keep[n] {
			r.rt.Close()
			delete(ta.runs, n)
			h.log.Info("hypervisor: tenant apps stopped", "tenant", n)
		}
	}
	ta.publish()
}

// moving returns the hosts of tenant tn admitted for a live migration in
// st (migration.go), by name: vnet keeps their virtual ports as the apps
// saw them while they move (vnet.State.Moving), so the tenant's apps get
// no OFPT_PORT_STATUS for a move (docs/migration.md).
func (st *state) moving(tn string) []string {
	var out []string
	for id := range st.admitted {
		if t, hn, ok := topology.SplitIfaceID(id); ok && t == tn {
			out = append(out, hn)
		}
	}
	return out
}

// deliverTenantPacketIn hands a demultiplexed packet-in to the tenant's
// vnet runtime (if it runs apps on the virtual view) and to
// Config.TenantPacketIn (if set). Both share tp.Frame. It runs on the
// session event goroutine of the bridge that sent the packet-in: the
// runtime either queues it (never blocking) or, for apps that are
// InlineSafe on a virtual switch of that bridge alone, runs them at once
// as a bare app would run (vnet.Tenant.PacketInFrom).
func (h *Hypervisor) deliverTenantPacketIn(tp TenantPacketIn) {
	if rt := (*h.tapps.byName.Load())[tp.Tenant]; rt != nil {
		rt.PacketInFrom(controller.DPID(tp.PhysicalDPID), tp.VirtualDPID, tp.InPort, tp.Table, tp.Cookie, tp.Frame)
	}
	if h.cfg.TenantPacketIn != nil {
		h.cfg.TenantPacketIn(tp)
	}
}

// FlowRemoved implements controller.FlowRemovedHandler: an
// OFPT_FLOW_REMOVED (OpenFlow 1.3.5 §7.4.2) of a tenant app's translated
// entry (cookie = tenant ID ‖ app cookie) on edge bridge sw goes to that
// tenant's runtime (vnet.Tenant.FlowRemoved), which tells the apps once
// per virtual entry, when its last physical copy is gone. The counters of
// a copy that a snapshot restore or a migration installed get its counter
// offsets added (restoredCounters), as the flow-stats the apps read do.
func (h *Hypervisor) FlowRemoved(_ context.Context, sw controller.Switch, ev *ofp.FlowRemoved) {
	rt := (*h.tapps.byID.Load())[addr.TenantID(ev.Cookie>>48)]
	if rt == nil {
		return
	}
	fs := []ofwire.FlowStats{{Table: ev.Table, DurationSec: ev.DurationSec, DurationNSec: ev.DurationNSec,
		Priority: ev.Priority, IdleTimeout: ev.IdleTimeout, HardTimeout: ev.HardTimeout, Cookie: ev.Cookie,
		PacketCount: ev.PacketCount, ByteCount: ev.ByteCount, Match: ev.Match}}
	if out, restored := h.restoredCounters(uint64(sw.DPID()), fs); restored[0] {
		c := *ev
		c.PacketCount, c.ByteCount = out[0].PacketCount, out[0].ByteCount // the duration stays the copy's own
		ev = &c
	}
	rt.FlowRemoved(sw.DPID(), ev)
}

// ownsCookie is reconcile's ownership test: every Skyvisor cookie
// (pipeline.IsOwnedCookie) except the entries tenant apps installed
// through a running vnet runtime — those are the apps' state, not the
// desired state, and a reconcile must not delete them. The natively
// realized learning entries of such a tenant stay owned. Entries of a
// tenant whose runtime is gone (deleted tenant) are owned again, so the
// reconcile after a delete removes them.
func (h *Hypervisor) ownsCookie(c uint64) bool {
	if !pipeline.IsOwnedCookie(c) {
		return false
	}
	if pipeline.IsInfraCookie(c) {
		return true
	}
	if (*h.tapps.byID.Load())[addr.TenantID(c>>48)] == nil {
		return true
	}
	app := c & (1<<48 - 1)
	return app == cookieUnicast || app == cookieBroadcast
}

// TenantAppRuntime returns the running vnet runtime of tenant name, or
// nil when the tenant runs no app on the virtual view.
func (h *Hypervisor) TenantAppRuntime(name string) *vnet.Tenant {
	return (*h.tapps.byName.Load())[name]
}

// TenantLinks implements api.LinkService: the virtual links the tenant's
// discovery app (vnet.Discovery) has found, in the tenant's terms
// (virtual switch names and port numbers), one entry per direction.
// api.ErrNotFound without such a tenant; api.ErrInvalid when the tenant
// runs no discovery app.
func (h *Hypervisor) TenantLinks(ctx context.Context, name string) (api.TenantLinks, error) {
	if err := ctx.Err(); err != nil {
		return api.TenantLinks{}, err
	}
	if _, err := h.store.GetTenant(name); err != nil {
		return api.TenantLinks{}, storeErr(err)
	}
	rt := h.TenantAppRuntime(name)
	var d *discovery.App
	if rt != nil {
		for _, a := range rt.Apps() {
			if x, ok := a.(*discovery.App); ok {
				d = x
			}
		}
	}
	if d == nil {
		return api.TenantLinks{}, fmt.Errorf("tenant %q does not run the %q app: %w", name, vnet.Discovery, api.ErrInvalid)
	}
	names := map[uint64]string{}
	for _, sw := range rt.Switches() {
		names[uint64(sw.DPID())] = sw.Name()
	}
	out := api.TenantLinks{Tenant: name, Links: []api.TenantLink{}}
	for _, l := range d.Links() {
		out.Links = append(out.Links, api.TenantLink{
			Src: api.LinkEnd{Switch: names[l.Src.DPID], DPID: topology.DPID(l.Src.DPID).String(), Port: l.Src.Port},
			Dst: api.LinkEnd{Switch: names[l.Dst.DPID], DPID: topology.DPID(l.Dst.DPID).String(), Port: l.Dst.Port},
		})
	}
	return out, nil
}

// closeTenantApps stops every runtime (Run's end).
func (h *Hypervisor) closeTenantApps() {
	ta := h.tapps
	ta.mu.Lock()
	defer ta.mu.Unlock()
	for n, r := range ta.runs {
		r.rt.Close()
		delete(ta.runs, n)
	}
	ta.publish()
}

// Compile-time checks of the handlers tenant apps add.
var (
	_ controller.FlowRemovedHandler = (*Hypervisor)(nil)
	_ api.LinkService               = (*Hypervisor)(nil)
	_ vnet.Physical                 = physical{}
)
