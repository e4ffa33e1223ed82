package hypervisor

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
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
	// parseSigs are the digests of the stored records the topologies and
	// views were parsed from (tenantSig), by tenant name.
	parseSigs map[string][32]byte
	// parts and fps are the desired entries of every bridge (computeParts):
	// the fabric's own part first, then each tenant's, in tenant order;
	// fps are their fingerprints (partsFingerprint).
	parts map[uint64][]*reconcile.Part
	fps   map[uint64]string
	// flat are the entries of parts per bridge in one slice, onto which
	// the parts are rebased (reconcile.FlattenParts).
	flat map[uint64][]pipeline.Entry
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
	st.parseSigs = map[string][32]byte{}
	m := &pipeline.Model{Tree: st.tree, Mesh: h.cfg.TunnelMesh}
	parsed := h.inc.parsedTenants(tenants)
	for _, t := range tenants {
		if t.Name == exclude {
			continue
		}
		sig := tenantSig(t)
		var tp *topology.Topology
		var v *pipeline.View
		if p := parsed[t.Name]; p != nil && p.sig == sig {
			tp, v = p.topo, p.view
		} else {
			tp, err = t.Parse()
			if err != nil {
				return nil, err
			}
			v, err = pipeline.NewView(pipeline.Tenant{ID: t.ID, Topology: tp, Hosts: t.Hosts})
			if err != nil {
				return nil, fmt.Errorf("tenant %q: %w", t.Name, err)
			}
			h.inc.putParsed(t.Name, &parsedTenant{sig: sig, topo: tp, view: v})
		}
		st.tenants = append(st.tenants, t)
		st.topos[t.Name], st.views[t.Name], st.parseSigs[t.Name] = tp, v, sig
		m.Tenants = append(m.Tenants, pipeline.Tenant{ID: t.ID, Topology: tp, Hosts: t.Hosts})
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

// incState is what the desired-state computation keeps between pushes so
// that a push costs what changed, not the whole fabric (docs/benchmarks.md,
// "Tenant scale"): parsed topologies and views by tenant, the compiled
// parts of the fabric and of every tenant (each a pure function of its
// inputs, cached under a digest of them), and the parts every switch was
// last reconciled with, so a push diffs those instead of reading and
// re-encoding whole flow tables. The zero value is ready; mu guards it.
type incState struct {
	mu     sync.Mutex
	parsed map[string]*parsedTenant // by tenant name
	addrs  map[string]*cachedAddrs  // by tenant name
	// fabricSig is the digest of the fabric inputs fabric and infra were
	// compiled from (sites, tunnel tree and ports, mesh flag).
	fabricSig [32]byte
	fabric    *pipeline.Fabric
	infra     map[uint64]*reconcile.Part
	tenants   map[string]*compiledTenant // by tenant name, for fabricSig
	// flat is every bridge's entries as last flattened, with the parts
	// rebased onto them (the same pointers as in infra and tenants).
	flat map[uint64]reconcile.Flat
	// desired are the parts of every bridge as installed (h.desired is
	// their flattening); installed are the parts each connected switch was
	// last reconciled with on its current session (with h.synced).
	desired, installed map[uint64][]*reconcile.Part
}

// parsedTenant is a tenant record's parsed topology and view; sig is the
// record's tenantSig.
type parsedTenant struct {
	sig  [32]byte
	topo *topology.Topology
	view *pipeline.View
}

// compiledTenant is one tenant's entries per bridge (pipeline.Fabric.Tenant
// plus its learning entries); sig digests every input (partSig).
type compiledTenant struct {
	sig   [32]byte
	parts map[uint64]*reconcile.Part
}

// parsedTenants returns the cached parses of the tenants listed (a copy)
// and forgets the others.
func (c *incState) parsedTenants(ts []*store.Tenant) map[string]*parsedTenant {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*parsedTenant, len(ts))
	for _, t := range ts {
		if p := c.parsed[t.Name]; p != nil {
			out[t.Name] = p
		}
	}
	if len(out) < len(c.parsed) {
		c.parsed = maps.Clone(out)
	}
	for n := range c.addrs {
		if out[n] == nil {
			delete(c.addrs, n)
		}
	}
	return out
}

// addressMap returns t.AddressMap(), cached under the record's digest
// sig (it parses the topology again).
func (c *incState) addressMap(t *store.Tenant, sig [32]byte) (*addr.TenantMap, error) {
	c.mu.Lock()
	a := c.addrs[t.Name]
	c.mu.Unlock()
	if a != nil && a.sig == sig {
		return a.m, nil
	}
	m, err := t.AddressMap()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.addrs == nil {
		c.addrs = map[string]*cachedAddrs{}
	}
	c.addrs[t.Name] = &cachedAddrs{sig: sig, m: m}
	c.mu.Unlock()
	return m, nil
}

// cachedAddrs is a tenant's address map and the digest of the record it
// was built from.
type cachedAddrs struct {
	sig [32]byte
	m   *addr.TenantMap
}

func (c *incState) putParsed(name string, p *parsedTenant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parsed == nil {
		c.parsed = map[string]*parsedTenant{}
	}
	c.parsed[name] = p
}

// tenantSig digests everything of a stored tenant its topology and view
// depend on: name, tenant ID, the topology JSON as stored, host indices.
func tenantSig(t *store.Tenant) [32]byte {
	hs := sha256.New()
	var b []byte
	b = append(b, t.Name...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(t.ID))
	b = binary.BigEndian.AppendUint32(b, uint32(len(t.Topology)))
	hs.Write(b)
	hs.Write(t.Topology)
	b = b[:0]
	for _, n := range slices.Sorted(maps.Keys(t.Hosts)) {
		b = append(b, n...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(t.Hosts[n]))
	}
	hs.Write(b)
	return [32]byte(hs.Sum(nil))
}

// partSig digests the inputs of a tenant's compiled part: the record
// (tenantSig) and its bindings in use, in order. The fabric is not in it:
// a fabric change drops every part.
func partSig(rec [32]byte, binds []pipeline.Binding) [32]byte {
	b := make([]byte, 0, 32+len(binds)*24)
	b = append(b, rec[:]...)
	for _, x := range binds {
		b = append(b, x.Host...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(x.Bridge))
		b = binary.BigEndian.AppendUint32(b, x.Port)
	}
	return sha256.Sum256(b)
}

// fabricSig digests the tenant-independent inputs of the model.
func fabricSig(m *pipeline.Model) ([32]byte, error) {
	b, err := json.Marshal(struct {
		Sites []pipeline.Site
		Tree  []tunnels.Tunnel
		Mesh  bool
	}{m.Sites, m.Tree.Tunnels, m.Mesh})
	if err != nil {
		return [32]byte{}, fmt.Errorf("fabric digest: %w", err)
	}
	return sha256.Sum256(b), nil
}

// computeParts computes the desired state, leaving out tenant exclude: the
// state it read, with parts and fps set for every bridge of the fabric.
// Only tenants whose record or bindings changed since the last call (and
// all of them after a fabric change) are compiled again; the others' parts
// are reused as they are, digests included. The result is the entries of
// pipeline.Compile plus the learning entries (TestIncrementalMatchesFull).
func (h *Hypervisor) computeParts(exclude string) (*state, error) {
	st, err := h.loadState(exclude)
	if err != nil {
		return nil, err
	}
	fsig, err := fabricSig(st.model)
	if err != nil {
		return nil, err
	}
	c := &h.inc
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fabric == nil || c.fabricSig != fsig {
		f, err := pipeline.NewFabric(st.model)
		if err != nil {
			return nil, fmt.Errorf("compile: %w", err)
		}
		infra := map[uint64]*reconcile.Part{}
		for d, es := range f.Infra() {
			p, err := reconcile.NewPart(es)
			if err != nil {
				return nil, fmt.Errorf("compile: bridge %s: %w", d, err)
			}
			infra[uint64(d)] = p
		}
		c.fabricSig, c.fabric, c.infra, c.tenants, c.flat = fsig, f, infra, map[string]*compiledTenant{}, nil
	}
	byTenant := map[string][]pipeline.Binding{}
	for _, b := range st.model.Bindings {
		byTenant[b.Tenant] = append(byTenant[b.Tenant], b)
	}
	keep := make(map[string]*compiledTenant, len(st.tenants))
	for _, t := range st.tenants {
		sig := partSig(st.parseSigs[t.Name], byTenant[t.Name])
		ct := c.tenants[t.Name]
		if ct == nil || ct.sig != sig {
			ct, err = h.compileTenant(c.fabric, st, t, byTenant[t.Name])
			if err != nil {
				return nil, err
			}
			ct.sig = sig
		}
		keep[t.Name] = ct
	}
	if exclude == "" {
		c.tenants = keep
	} else {
		maps.Copy(c.tenants, keep) // the excluded tenant's part stays for the next push
	}
	st.parts = map[uint64][]*reconcile.Part{}
	st.fps = map[uint64]string{}
	st.flat = map[uint64][]pipeline.Entry{}
	flat := make(map[uint64]reconcile.Flat, len(c.flat))
	for _, d := range c.fabric.Bridges() {
		ps := []*reconcile.Part{c.infra[uint64(d)]}
		owners := []*compiledTenant{nil}
		for _, t := range st.tenants {
			if p := keep[t.Name].parts[uint64(d)]; p != nil {
				ps = append(ps, p)
				owners = append(owners, keep[t.Name])
			}
		}
		// The bridge's entries in one slice, held once: the parts are
		// rebased onto it (and replace the cached ones) unless they are
		// the ones flattened last time.
		fl, ok := c.flat[uint64(d)]
		if !ok || !slices.Equal(fl.Parts, ps) {
			fl = reconcile.FlattenParts(ps)
			for i, o := range owners {
				if o == nil {
					c.infra[uint64(d)] = fl.Parts[i]
				} else {
					o.parts[uint64(d)] = fl.Parts[i]
				}
			}
		}
		flat[uint64(d)] = fl
		st.parts[uint64(d)], st.flat[uint64(d)] = fl.Parts, fl.Entries
		st.fps[uint64(d)] = partsFingerprint(fl.Parts)
	}
	c.flat = flat
	return st, nil
}

// compileTenant compiles tenant t's entries on every bridge: the
// hypervisor's (pipeline.Fabric.Tenant) and, if its apps include
// "learning", the proactive learning entries.
func (h *Hypervisor) compileTenant(f *pipeline.Fabric, st *state, t *store.Tenant, binds []pipeline.Binding) (*compiledTenant, error) {
	v := st.views[t.Name]
	part, err := f.Tenant(v, binds)
	if err != nil {
		return nil, fmt.Errorf("compile: tenant %q: %w", t.Name, err)
	}
	out := make(map[uint64][]pipeline.Entry, len(part))
	for d, es := range part {
		out[uint64(d)] = es
	}
	if slices.Contains(st.topos[t.Name].Apps, LearningApp) {
		extra, err := learningEntries(v, binds)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: learning entries: %w", t.Name, err)
		}
		for d, es := range extra {
			out[d] = append(out[d], es...)
		}
	}
	ct := &compiledTenant{parts: make(map[uint64]*reconcile.Part, len(out))}
	for d, es := range out {
		p, err := reconcile.NewPart(es)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: bridge %s: %w", t.Name, pipeline.DPID(d), err)
		}
		ct.parts[d] = p
	}
	return ct, nil
}

// compute returns the desired flow entries of every bridge (and the state
// they were computed from), leaving out tenant exclude. The slices are
// shared with the hypervisor's desired state: do not modify them.
func (h *Hypervisor) compute(exclude string) (map[uint64][]pipeline.Entry, *state, error) {
	st, err := h.computeParts(exclude)
	if err != nil {
		return nil, nil, err
	}
	return st.flat, st, nil
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

// partsFingerprint is the fingerprint of a bridge's desired parts
// (reconcile.Fingerprint), as a string: 32 hex digits.
func partsFingerprint(ps []*reconcile.Part) string {
	d := reconcile.Fingerprint(ps)
	return fmt.Sprintf("%016x%016x", d.Hi, d.Lo)
}

// fingerprint identifies a list of entries regardless of order: equal to
// partsFingerprint of any split of es into parts.
func fingerprint(es []pipeline.Entry) (string, error) {
	p, err := reconcile.NewPart(es)
	if err != nil {
		return "", err
	}
	return partsFingerprint([]*reconcile.Part{p}), nil
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
	_, err := h.pushState(ctx)
	return err
}

// pushState (applyMu held) is pushLocked that also returns the state it
// pushed (nil if it could not be computed), so that a caller replying
// with the tenants' status needs no second read of the store.
func (h *Hypervisor) pushState(ctx context.Context) (*state, error) {
	st, err := h.computeParts("")
	if err != nil {
		return nil, err
	}
	return st, h.install(ctx, st.flat, st)
}

// install makes desired (with st's parts and fingerprints, computeParts)
// the desired state and reconciles the connected switches whose entries
// differ from what they were last reconciled with: incrementally
// (reconcile.DiffParts against the parts they were last reconciled with,
// no flow-table read) when such parts are known, else in full. When a
// tenant's app runtime went away, its apps' entries are owned again
// (ownsCookie) and only a full reconcile deletes them: every target is
// then reconciled in full.
func (h *Hypervisor) install(ctx context.Context, desired map[uint64][]pipeline.Entry, st *state) error {
	views := make(map[addr.TenantID]*tenantView, len(st.tenants))
	for _, t := range st.tenants {
		tm, err := h.inc.addressMap(t, st.parseSigs[t.Name])
		if err != nil {
			return err
		}
		views[t.ID] = &tenantView{view: st.views[t.Name], addrs: tm}
	}
	h.mu.Lock()
	h.desired, h.fingerprint, h.views = desired, st.fps, views
	h.inc.mu.Lock()
	h.inc.desired = st.parts
	h.inc.mu.Unlock()
	var targets []uint64
	for d := range h.switches {
		if _, known := desired[d]; known && h.synced[d] != st.fps[d] {
			targets = append(targets, d)
		}
	}
	h.mu.Unlock()
	before := *h.tapps.byID.Load()
	h.updateTenantApps(st) // tenantapps.go: before the reconcile, which asks ownsCookie
	after := *h.tapps.byID.Load()
	full := false
	for id := range before {
		if after[id] == nil {
			full = true
		}
	}
	_, err := h.syncAll(ctx, targets, full)
	return err
}

// syncAll reconciles the given switches in parallel (at most 8 at once),
// in full (reconcile.SyncTable) if full, else incrementally where possible
// (syncSwitchMode).
func (h *Hypervisor) syncAll(ctx context.Context, dpids []uint64, full bool) (map[uint64]reconcile.Plan, error) {
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
			plans[i], errs[i] = h.syncSwitchMode(ctx, d, full)
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
// entries, incrementally if it was reconciled before on this session
// (syncSwitchMode).
func (h *Hypervisor) syncSwitch(ctx context.Context, dpid uint64) (reconcile.Plan, error) {
	return h.syncSwitchMode(ctx, dpid, false)
}

// syncSwitchMode reconciles one connected switch. In full (full set, or
// the switch not reconciled yet on its session: SwitchUp and SwitchDown
// forget h.synced) it reads the flow table and sends the difference
// (reconcile.SyncTable), which also repairs drift. Otherwise it sends the
// difference between the parts the switch was last reconciled with and
// the desired ones (reconcile.DiffParts, then reconcile.Apply), trusting
// the switch to hold what it was sent: the audit (Resync) repairs drift.
// A failed incremental send forgets the switch's reconciled state, so the
// next push reconciles it in full.
func (h *Hypervisor) syncSwitchMode(ctx context.Context, dpid uint64, full bool) (reconcile.Plan, error) {
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
	sw, fp := h.switches[dpid], h.fingerprint[dpid]
	_, wasSynced := h.synced[dpid]
	h.inc.mu.Lock()
	parts, installed := h.inc.desired[dpid], h.inc.installed[dpid]
	h.inc.mu.Unlock()
	h.mu.Unlock()
	if sw == nil {
		return reconcile.Plan{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.SyncTimeout)
	defer cancel()
	t0 := time.Now()
	var p reconcile.Plan
	var err error
	incremental := !full && wasSynced && installed != nil
	if incremental {
		p, err = reconcile.DiffParts(installed, parts)
		if err == nil {
			err = reconcile.Apply(ctx, sw, p)
		}
	} else {
		p, err = reconcile.SyncTable(ctx, h.reconcileView(dpid, sw), parts, reconcile.Options{Owns: h.ownsCookie}) // reconcileView: snapshots.go
	}
	if err != nil {
		h.mu.Lock()
		if h.switches[dpid] == sw {
			delete(h.synced, dpid)
			h.inc.mu.Lock()
			delete(h.inc.installed, dpid)
			h.inc.mu.Unlock()
		}
		h.mu.Unlock()
		return p, fmt.Errorf("switch %s: %w", pipeline.DPID(dpid), err)
	}
	h.stats.syncs.Add(1)
	h.stats.added.Add(uint64(len(p.Add)))
	h.stats.deleted.Add(uint64(len(p.Delete)))
	h.mu.Lock()
	if h.switches[dpid] == sw {
		h.synced[dpid] = fp
		h.inc.mu.Lock()
		if h.inc.installed == nil {
			h.inc.installed = map[uint64][]*reconcile.Part{}
		}
		h.inc.installed[dpid] = parts
		h.inc.mu.Unlock()
	}
	h.mu.Unlock()
	if !p.Empty() {
		h.log.Info("hypervisor: reconciled switch", "dpid", pipeline.DPID(dpid), "added", len(p.Add), "deleted", len(p.Delete),
			"incremental", incremental, "took", time.Since(t0))
	}
	if !wasSynced {
		h.replayTenantApps(ctx, dpid) // tenantapps.go: the apps' entries, after the first reconcile of a session
	}
	return p, nil
}

// Resync reconciles every connected switch of the infrastructure now in
// full (flow-table read and diff, so drift is repaired), whatever was
// reconciled before, and returns each one's plan: on a converged fabric
// every plan is empty.
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
	return h.syncAll(ctx, ds, true)
}
