package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/tunnels"
)

// LearningApp is the tenant app name that gets proactive L2 entries.
const LearningApp = "learning"

// Cookies (low 48 bits, pipeline.TenantCookie adds the tenant ID) of the
// proactive learning entries.
const (
	cookieUnicast   = 0x6c6561726e01 // "learn" 01
	cookieBroadcast = 0x6c6561726e02 // "learn" 02
)

// state is one consistent reading of the desired state: the
// infrastructure, the tunnel tree as far as it is provisioned, the tenants
// and the bindings that place their hosts.
type state struct {
	inf      *infra.Infra
	plan     tunnels.Plan // as planned
	tree     tunnels.Plan // the planned tunnels whose ports exist on both gateways
	ports    map[string]map[string]uint32
	tenants  []*store.Tenant
	topos    map[string]*topology.Topology
	views    map[string]*pipeline.View
	bindings map[string]store.Binding // valid bindings in use, by iface-id
	// ignored are bindings of known tenants that cannot be used, with why.
	ignored   map[string]string
	model     *pipeline.Model
	connected map[uint64]*connInfo
	// admitted: hosts of a live migration in progress, by iface-id: the
	// site where their binding is used whatever cloud or VM their
	// topology names (migration.go).
	admitted map[string]string
}

type connInfo struct {
	addr  string
	ports int
}

// loadState reads the desired state; tenant exclude (if not "") is left
// out, as if already deleted.
func (h *Hypervisor) loadState(exclude string) (*state, error) {
	h.mu.Lock()
	st := &state{inf: h.inf.Clone(), plan: h.plan, ports: map[string]map[string]uint32{}, connected: map[uint64]*connInfo{}}
	for s, m := range h.tunnelPorts {
		c := make(map[string]uint32, len(m))
		for k, v := range m {
			c[k] = v
		}
		st.ports[s] = c
	}
	for d, sw := range h.switches {
		ci := &connInfo{ports: len(sw.Ports())}
		if ra, ok := sw.(interface{ RemoteAddr() net.Addr }); ok && ra.RemoteAddr() != nil {
			a := ra.RemoteAddr()
			ci.addr = a.String()
		}
		st.connected[d] = ci
	}
	h.mu.Unlock()

	st.admitted = h.admittedSites() // migration.go
	for _, t := range st.plan.Tunnels {
		if _, ok := st.ports[t.A][t.B]; !ok {
			continue
		}
		if _, ok := st.ports[t.B][t.A]; !ok {
			continue
		}
		st.tree.Tunnels = append(st.tree.Tunnels, t)
	}
	st.tree.Sites = st.plan.Sites

	tenants, err := h.store.ListTenants()
	if err != nil {
		return nil, storeErr(err)
	}
	binds, err := h.store.Bindings()
	if err != nil {
		return nil, storeErr(err)
	}
	st.topos = map[string]*topology.Topology{}
	st.views = map[string]*pipeline.View{}
	m := &pipeline.Model{Tree: st.tree, Mesh: h.cfg.TunnelMesh}
	for _, t := range tenants {
		if t.Name == exclude {
			continue
		}
		tp, err := t.Parse()
		if err != nil {
			return nil, err
		}
		pt := pipeline.Tenant{ID: t.ID, Topology: tp, Hosts: t.Hosts}
		v, err := pipeline.NewView(pt)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", t.Name, err)
		}
		st.tenants = append(st.tenants, t)
		st.topos[t.Name], st.views[t.Name] = tp, v
		m.Tenants = append(m.Tenants, pt)
	}
	for _, s := range st.inf.Sites {
		gw := st.inf.Gateway(s.Name)
		site := pipeline.Site{Name: s.Name, Gateway: pipeline.Gateway{DPID: pipeline.DPID(gw.DPID),
			Downlinks: map[pipeline.DPID]uint32{}, Tunnels: map[string]uint32{}}}
		for _, peer := range st.tree.Peers(s.Name) {
			site.Gateway.Tunnels[peer] = st.ports[s.Name][peer]
		}
		for _, vm := range st.inf.VMs(s.Name) {
			up, down, ok := st.inf.Uplink(vm)
			if !ok {
				continue
			}
			site.Gateway.Downlinks[pipeline.DPID(vm.DPID)] = down
			site.Edges = append(site.Edges, pipeline.EdgeBridge{DPID: pipeline.DPID(vm.DPID), Uplink: up})
		}
		m.Sites = append(m.Sites, site)
	}
	st.bindings, st.ignored = st.useBindings(binds)
	for _, id := range slices.Sorted(mapsKeys(st.bindings)) {
		b := st.bindings[id]
		tn, host, _ := topology.SplitIfaceID(id)
		m.Bindings = append(m.Bindings, pipeline.Binding{Tenant: tn, Host: host, Bridge: pipeline.DPID(b.DPID), Port: b.OFPort})
	}
	st.model = m
	return st, nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// useBindings keeps the bindings that place a known host of a known tenant
// on a VM bridge of the host's cloud (and VM, if pinned) at a host port;
// of two bindings of the same bridge port the newer wins.
func (st *state) useBindings(all []store.Binding) (map[string]store.Binding, map[string]string) {
	use := map[string]store.Binding{}
	ignored := map[string]string{}
	slices.SortStableFunc(all, func(a, b store.Binding) int { return b.Updated.Compare(a.Updated) })
	taken := map[[2]uint64]bool{}
	for _, b := range all {
		tn, hn, ok := topology.SplitIfaceID(b.IfaceID)
		tp := st.topos[tn]
		if !ok || tp == nil {
			continue // a tenant not (yet) submitted
		}
		var host *topology.Host
		for i := range tp.Hosts {
			if tp.Hosts[i].Name == hn {
				host = &tp.Hosts[i]
			}
		}
		sw := st.inf.SwitchByDPID(uint64(b.DPID))
		var why string
		switch {
		case host == nil:
			why = "no such host in the topology"
		case sw == nil || sw.Role != infra.RoleVM:
			why = fmt.Sprintf("bridge %s is not a VM bridge of the infrastructure", b.DPID)
		case sw.Site != host.Cloud && st.admitted[b.IfaceID] != sw.Site: // admitted: a migrating host
			why = fmt.Sprintf("plugged in cloud %q, the topology says %q", sw.Site, host.Cloud)
		case host.VM != "" && host.VM != sw.VM && st.admitted[b.IfaceID] != sw.Site:
			why = fmt.Sprintf("plugged in VM %q, the topology pins VM %q", sw.VM, host.VM)
		case b.OFPort == 0:
			why = "no OpenFlow port number yet"
		}
		if why == "" {
			if up, _, _ := st.inf.Uplink(sw); up == b.OFPort {
				why = "port is the VM's uplink"
			}
		}
		k := [2]uint64{uint64(b.DPID), uint64(b.OFPort)}
		if why == "" && taken[k] {
			why = fmt.Sprintf("port %d of %s is bound to a newer iface-id", b.OFPort, b.DPID)
		}
		if why != "" {
			ignored[b.IfaceID] = why
			continue
		}
		taken[k] = true
		use[b.IfaceID] = b
	}
	return use, ignored
}

// compute returns the desired flow entries of every bridge (and the state
// they were computed from), leaving out tenant exclude.
func (h *Hypervisor) compute(exclude string) (map[uint64][]pipeline.Entry, *state, error) {
	st, err := h.loadState(exclude)
	if err != nil {
		return nil, nil, err
	}
	comp, err := pipeline.Compile(st.model)
	if err != nil {
		return nil, nil, fmt.Errorf("compile: %w", err)
	}
	out := make(map[uint64][]pipeline.Entry, len(comp))
	for d, es := range comp {
		out[uint64(d)] = es
	}
	for _, t := range st.tenants {
		if !slices.Contains(st.topos[t.Name].Apps, LearningApp) {
			continue
		}
		extra, err := learningEntries(st.views[t.Name], st.model.Bindings)
		if err != nil {
			return nil, nil, fmt.Errorf("tenant %q: learning entries: %w", t.Name, err)
		}
		for d, es := range extra {
			out[d] = append(out[d], es...)
		}
	}
	return out, st, nil
}

// learningEntries compiles the proactive L2 forwarding of a tenant whose
// app is "learning": on every virtual switch, eth_dst = a host's own MAC
// -> output toward that host (its port, or the first virtual link on a
// shortest path to its switch), eth_dst = broadcast -> FLOOD. Entries go
// to every edge bridge running the switch (pipeline.EdgeBridges).
// Limitation: a virtual topology with a loop floods in circles, as a
// learning switch without spanning tree would.
func learningEntries(v *pipeline.View, binds []pipeline.Binding) (map[uint64][]pipeline.Entry, error) {
	// adjacency: switch index -> (neighbour switch index, local port number)
	type hop struct {
		to   uint16
		port uint32
	}
	adj := map[uint16][]hop{}
	for _, p := range v.Ports {
		if p.Peer != 0 {
			adj[p.Switch] = append(adj[p.Switch], hop{v.Ports[p.Peer-1].Switch, p.Port})
		}
	}
	out := map[uint64][]pipeline.Entry{}
	for _, sw := range v.Switches {
		bridges := pipeline.EdgeBridges(v, binds, sw.DPID)
		if len(bridges) == 0 {
			continue
		}
		// BFS: first-hop port from sw toward every reachable switch.
		first := map[uint16]uint32{sw.Index: 0}
		queue := []uint16{sw.Index}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			for _, e := range adj[s] {
				if _, seen := first[e.to]; seen {
					continue
				}
				if s == sw.Index {
					first[e.to] = e.port
				} else {
					first[e.to] = first[s]
				}
				queue = append(queue, e.to)
			}
		}
		var fms []*ofp.FlowMod
		for _, hst := range v.Hosts {
			hp := v.Ports[hst.VPort-1]
			port, ok := first[hp.Switch]
			if !ok {
				continue // not connected to sw
			}
			if hp.Switch == sw.Index {
				port = hp.Port
			}
			fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 100, Cookie: cookieUnicast, Buffer: ofp.NoBuffer,
				Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(hst.MAC)}},
				Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(port))}})
		}
		fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 50, Cookie: cookieBroadcast, Buffer: ofp.NoBuffer,
			Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(addr.Broadcast)}},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(ofp.PortFlood)))}})
		for _, fm := range fms {
			es, err := pipeline.AddEntries(v, sw.DPID, fm)
			if err != nil {
				return nil, fmt.Errorf("switch %s: %w", sw.Name, err)
			}
			for _, b := range bridges {
				out[uint64(b)] = append(out[uint64(b)], es...)
			}
		}
	}
	return out, nil
}

// fingerprint identifies a list of entries regardless of order.
func fingerprint(es []pipeline.Entry) (string, error) {
	cs := make([]string, len(es))
	for i := range es {
		c, err := es[i].Canonical()
		if err != nil {
			return "", err
		}
		cs[i] = c
	}
	slices.Sort(cs)
	return strings.Join(cs, "\n"), nil
}

// refresh recomputes the desired state and pushes it.
func (h *Hypervisor) refresh(ctx context.Context) error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	return h.pushLocked(ctx)
}

// pushLocked (applyMu held) recomputes the desired state and reconciles
// every connected switch whose desired entries changed since it was last
// reconciled.
func (h *Hypervisor) pushLocked(ctx context.Context) error {
	desired, st, err := h.compute("")
	if err != nil {
		return err
	}
	return h.install(ctx, desired, st)
}

// install makes desired the desired state and reconciles the connected
// switches whose entries differ from what they were last reconciled with.
func (h *Hypervisor) install(ctx context.Context, desired map[uint64][]pipeline.Entry, st *state) error {
	fps := make(map[uint64]string, len(desired))
	for d, es := range desired {
		fp, err := fingerprint(es)
		if err != nil {
			return fmt.Errorf("switch %s: %w", pipeline.DPID(d), err)
		}
		fps[d] = fp
	}
	views := make(map[addr.TenantID]*tenantView, len(st.tenants))
	for _, t := range st.tenants {
		tm, err := t.AddressMap()
		if err != nil {
			return err
		}
		views[t.ID] = &tenantView{view: st.views[t.Name], addrs: tm}
	}
	h.mu.Lock()
	h.desired, h.fingerprint, h.views = desired, fps, views
	var targets []uint64
	for d := range h.switches {
		if _, known := desired[d]; known && h.synced[d] != fps[d] {
			targets = append(targets, d)
		}
	}
	h.mu.Unlock()
	h.updateTenantApps(st) // tenantapps.go: before the reconcile, which asks ownsCookie
	_, err := h.syncAll(ctx, targets)
	return err
}

// syncAll reconciles the given switches in parallel (at most 8 at once).
func (h *Hypervisor) syncAll(ctx context.Context, dpids []uint64) (map[uint64]reconcile.Plan, error) {
	slices.Sort(dpids)
	plans := make([]reconcile.Plan, len(dpids))
	errs := make([]error, len(dpids))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, d := range dpids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			plans[i], errs[i] = h.syncSwitch(ctx, d)
		}()
	}
	wg.Wait()
	out := make(map[uint64]reconcile.Plan, len(dpids))
	for i, d := range dpids {
		if errs[i] == nil {
			out[d] = plans[i]
		}
	}
	return out, errors.Join(errs...)
}

// syncSwitch reconciles one connected switch's flow table with its desired
// entries (reconcile.Sync: flow-stats, then only the difference).
func (h *Hypervisor) syncSwitch(ctx context.Context, dpid uint64) (reconcile.Plan, error) {
	h.mu.Lock()
	l := h.swLocks[dpid]
	if l == nil {
		l = &sync.Mutex{}
		h.swLocks[dpid] = l
	}
	h.mu.Unlock()
	l.Lock()
	defer l.Unlock()
	h.mu.Lock()
	sw, es, fp := h.switches[dpid], h.desired[dpid], h.fingerprint[dpid]
	h.mu.Unlock()
	if sw == nil {
		return reconcile.Plan{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.SyncTimeout)
	defer cancel()
	t0 := time.Now()
	p, err := reconcile.Sync(ctx, h.reconcileView(dpid, sw), es, reconcile.Options{Owns: h.ownsCookie}) // reconcileView: snapshots.go
	if err != nil {
		return p, fmt.Errorf("switch %s: %w", pipeline.DPID(dpid), err)
	}
	h.stats.syncs.Add(1)
	h.stats.added.Add(uint64(len(p.Add)))
	h.stats.deleted.Add(uint64(len(p.Delete)))
	h.mu.Lock()
	if h.switches[dpid] == sw {
		h.synced[dpid] = fp
	}
	h.mu.Unlock()
	if !p.Empty() {
		h.log.Info("hypervisor: reconciled switch", "dpid", pipeline.DPID(dpid), "added", len(p.Add), "deleted", len(p.Delete), "took", time.Since(t0))
	}
	return p, nil
}

// Resync reconciles every connected switch of the infrastructure now,
// whatever was reconciled before, and returns each one's plan: on a
// converged fabric every plan is empty.
func (h *Hypervisor) Resync(ctx context.Context) (map[uint64]reconcile.Plan, error) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	h.mu.Lock()
	var ds []uint64
	for d := range h.switches {
		if _, ok := h.desired[d]; ok {
			ds = append(ds, d)
		}
	}
	h.mu.Unlock()
	return h.syncAll(ctx, ds)
}
