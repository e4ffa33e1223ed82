package pipeline

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// Edge bridge tables (docs/pipeline.md, "Edge (VM) bridge tables").
const (
	TableClassify   uint8 = 0  // classify and anti-spoofing
	TableDestCheck  uint8 = 5  // unicast destinations must be hosts of the frame's tenant
	TableTenant     uint8 = 10 // first tenant table: virtual table t is physical table TableTenant+t
	NumTenantTables uint8 = 4  // virtual tables 0..3
	TableFabricOut  uint8 = 20 // local host or uplink
	TableRestoreSrc uint8 = 30 // source restore and isolation check
	TableDeliver    uint8 = 31 // destination restore and output to the host
)

// Gateway tables (docs/pipeline.md, "Gateways").
const (
	TableGatewayIngress uint8 = 0 // tunnel key / source prefix check
	TableGatewayRoute   uint8 = 1 // by destination fabric MAC
)

// Priorities of the hypervisor's own entries.
const (
	PrioLLDP          uint16 = 1000 // eth_type 0x88cc -> controller
	PrioLinkLocalDrop uint16 = 900  // 01:80:c2:00:00:0x never forwarded
	PrioHostGroup     uint16 = 200  // host ingress, group destination
	PrioHostUnicast   uint16 = 190  // host ingress, unicast destination
	PrioFromUplink    uint16 = 150  // uplink to a local host
	PrioHostDrop      uint16 = 100  // anything else from a host port
	PrioHost          uint16 = 100  // per-host entries of tables 20, 30, 31 and gateway tables
	PrioTunnelDrop    uint16 = 50   // tunnel frame whose key and source prefix disagree
	PrioMiss          uint16 = 0    // table-miss
)

// InfraCookiePrefix is the top 16 bits of the cookie of every flow entry
// the hypervisor itself compiles: 0x5359 ("SY"). Its high octet 0x53 has
// (0x53 & 3) == 3, so it is never a valid tenant ID (valid ones need 2,
// addr.IsValidTenantID) and cannot be confused with a tenant app's entry,
// whose cookie carries its tenant ID in the top 16 bits.
const InfraCookiePrefix uint16 = 0x5359

// InfraCookie returns the cookie of a hypervisor entry tied to host h of
// tenant t (both 0 for entries tied to no host): 0x5359 ‖ t (16 bits) ‖ h
// (32 bits). A delete of cookie InfraCookie(t, h) with cookie mask ^0
// removes host h's entries; InfraCookie(t, 0) with mask 0xffffffff00000000
// removes every hypervisor entry tied to tenant t (per-host entries and the
// gateways' tunnel-ingress entries of t).
func InfraCookie(t addr.TenantID, h addr.HostIndex) uint64 {
	return uint64(InfraCookiePrefix)<<48 | uint64(t)<<32 | uint64(h)
}

// IsInfraCookie reports whether c is a hypervisor entry's cookie.
func IsInfraCookie(c uint64) bool { return uint16(c>>48) == InfraCookiePrefix }

// TenantCookie returns the physical cookie of a tenant app's entry: tenant
// ID in the top 16 bits, the app's cookie in the low 48.
func TenantCookie(t addr.TenantID, app uint64) uint64 {
	return uint64(t)<<48 | app&(1<<48-1)
}

// IsOwnedCookie reports whether an entry with cookie c belongs to Skyvisor:
// a hypervisor entry (InfraCookiePrefix) or a tenant app's entry (a valid
// tenant ID in the top 16 bits). Entries of other controller apps (e.g.
// discovery's 0x6c6c6470…) and of operators (cookie 0) are not.
func IsOwnedCookie(c uint64) bool {
	return IsInfraCookie(c) || addr.IsValidTenantID(addr.TenantID(c>>48))
}

// lldpType is the LLDP Ethertype (IEEE 802.1AB).
const lldpType = 0x88cc

var (
	groupBit     = addr.MAC{0x01, 0, 0, 0, 0, 0}
	linkLocal    = addr.MAC{0x01, 0x80, 0xc2, 0, 0, 0}
	linkLocalMsk = addr.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xf0}
)

// Compile returns every flow entry of every bridge of m (edge bridges and
// gateways), keyed by DPID, each list sorted by (table, priority desc,
// key). It fails, naming the field, if m is inconsistent (see Model).
//
// The result is Fabric.Infra plus Fabric.Tenant of every tenant with its
// bindings, merged and sorted: a caller that keeps the per-tenant parts
// can recompile only the tenants that changed and get the same entries.
func Compile(m *Model) (map[DPID][]Entry, error) {
	c, err := check(m)
	if err != nil {
		return nil, err
	}
	f := &Fabric{c: c}
	if err := f.checkGateways(); err != nil {
		return nil, err
	}
	out := f.Infra()
	byTenant := map[string][]Binding{}
	for _, b := range m.Bindings {
		byTenant[b.Tenant] = append(byTenant[b.Tenant], b)
	}
	for i := range m.Tenants {
		v := c.views[m.Tenants[i].Topology.Tenant]
		part, err := f.Tenant(v, byTenant[v.Name])
		if err != nil {
			return nil, err
		}
		for d, es := range part {
			out[d] = append(out[d], es...)
		}
	}
	for d, es := range out {
		out[d] = sortEntries(es)
	}
	return out, nil
}

// Fabric is the tenant-independent part of a Model (sites, gateways, edge
// bridges, tunnel tree), checked once. It compiles the hypervisor's own
// entries of every bridge (Infra) and, separately, the entries one tenant
// adds (Tenant), which depend only on the Fabric, the tenant's View and
// the tenant's bindings: a caller that keeps each tenant's part can
// recompile only the tenants that changed (the hypervisor does:
// docs/benchmarks.md, "Tenant scale"). Compile is
// Infra plus every tenant's part. A Fabric is immutable and safe for
// concurrent use.
type Fabric struct {
	c *checked
}

// NewFabric checks the sites, tree and mesh flag of m (Model's rules; its
// Tenants and Bindings are ignored) and returns the Fabric. Errors name
// the field at fault, as Compile's.
func NewFabric(m *Model) (*Fabric, error) {
	c, err := check(&Model{Sites: m.Sites, Tree: m.Tree, Mesh: m.Mesh})
	if err != nil {
		return nil, err
	}
	f := &Fabric{c: c}
	if err := f.checkGateways(); err != nil {
		return nil, err
	}
	return f, nil
}

// checkGateways fails if a gateway DPID is also an edge bridge of another
// site (check only sees the sites before the edge's).
func (f *Fabric) checkGateways() error {
	for _, s := range f.c.m.Sites {
		if _, dup := f.c.edges[s.Gateway.DPID]; dup {
			return fmt.Errorf("pipeline: site %q: gateway DPID %s is also an edge bridge", s.Name, s.Gateway.DPID)
		}
	}
	return nil
}

// Bridges returns the DPID of every bridge of the fabric: each site's
// edge bridges, then its gateway, in site order.
func (f *Fabric) Bridges() []DPID {
	var out []DPID
	for _, s := range f.c.m.Sites {
		for _, e := range s.Edges {
			out = append(out, e.DPID)
		}
		out = append(out, s.Gateway.DPID)
	}
	return out
}

// Infra returns the entries of every bridge that belong to no tenant
// (cookie InfraCookie(0, 0)): LLDP to the controller, link-local drop and
// the table-miss entries of the edge bridges; LLDP, downlink and tunnel
// ingress and table-miss entries of the gateways. Every bridge of the
// fabric has a list (unsorted).
func (f *Fabric) Infra() map[DPID][]Entry {
	out := map[DPID][]Entry{}
	infra := InfraCookie(0, 0)
	for _, s := range f.c.m.Sites {
		for _, e := range s.Edges {
			out[e.DPID] = []Entry{
				// Table 0.
				{Table: TableClassify, Priority: PrioLLDP, Cookie: infra, Match: []ofp.XM{EthType(lldpType)},
					Instructions: ofp.Instructions{Apply(Output(uint32(ofp.PortController)))}},
				{Table: TableClassify, Priority: PrioLinkLocalDrop, Cookie: infra, Match: []ofp.XM{EthDstMasked(linkLocal, linkLocalMsk)}},
				{Table: TableClassify, Priority: PrioMiss, Cookie: infra},
				// Table 5: a group destination goes on to the tenant
				// tables; a unicast one only if it is the own MAC of a
				// host of the frame's tenant (Tenant adds those); anything
				// else is dropped (docs/design.md: passing it on could
				// alias another tenant's address).
				{Table: TableDestCheck, Priority: PrioHost, Cookie: infra, Match: []ofp.XM{EthDstMasked(groupBit, groupBit)},
					Instructions: ofp.Instructions{Goto(TableTenant)}},
				{Table: TableDestCheck, Priority: PrioMiss, Cookie: infra},
			}
			for tt := TableTenant; tt < TableTenant+NumTenantTables; tt++ {
				out[e.DPID] = append(out[e.DPID], Entry{Table: tt, Priority: PrioMiss, Cookie: infra,
					Instructions: ofp.Instructions{Apply(Output(uint32(ofp.PortController)))}})
			}
			out[e.DPID] = append(out[e.DPID],
				Entry{Table: TableFabricOut, Priority: PrioMiss, Cookie: infra,
					Instructions: ofp.Instructions{Apply(Output(e.Uplink))}},
				Entry{Table: TableRestoreSrc, Priority: PrioMiss, Cookie: infra},
				Entry{Table: TableDeliver, Priority: PrioMiss, Cookie: infra})
		}
		// Gateway.
		g := s.Gateway
		es := []Entry{
			{Table: TableGatewayIngress, Priority: PrioLLDP, Cookie: infra, Match: []ofp.XM{EthType(lldpType)},
				Instructions: ofp.Instructions{Apply(Output(uint32(ofp.PortController)))}},
			{Table: TableGatewayIngress, Priority: PrioMiss, Cookie: infra},
			{Table: TableGatewayRoute, Priority: PrioMiss, Cookie: infra},
		}
		for _, p := range sortedPorts(g.Downlinks) {
			es = append(es, Entry{Table: TableGatewayIngress, Priority: PrioHost, Cookie: infra, Match: []ofp.XM{InPort(p)},
				Instructions: ofp.Instructions{Goto(TableGatewayRoute)}})
		}
		for _, peer := range f.c.m.Tree.Peers(s.Name) {
			es = append(es, Entry{Table: TableGatewayIngress, Priority: PrioTunnelDrop, Cookie: infra, Match: []ofp.XM{InPort(g.Tunnels[peer])}})
		}
		out[g.DPID] = es
	}
	return out
}

// Tenant returns the entries tenant v adds to the bridges of the fabric,
// given the tenant's bindings (every one must name v.Name): on each edge
// bridge with a host of v bound, the host's classify, fabric-out and
// deliver entries (cookie InfraCookie(v.ID, host)) and the destination
// check and source restore of every host of v; on every gateway, the
// tunnel-ingress entry of v per tunnel port (InfraCookie(v.ID, 0)) and a
// route per bound host. Lists are unsorted; bridges without entries of v
// are absent. Errors name the binding at fault: another tenant, an
// unknown host or edge bridge, a port that is not a host port, a host
// bound twice, two hosts on one port. It does not see other tenants'
// bindings: a port bound by two tenants is the caller's to refuse
// (Compile does).
func (f *Fabric) Tenant(v *View, binds []Binding) (map[DPID][]Entry, error) {
	c := f.c
	out := map[DPID][]Entry{}
	t := v.ID
	seen := map[string]bool{}
	ports := map[[2]uint64]string{}
	here := map[DPID]bool{}
	for i, b := range binds {
		if b.Tenant != v.Name {
			return nil, fmt.Errorf("pipeline: tenant %q: bindings[%d]: binding of tenant %q", v.Name, i, b.Tenant)
		}
		id := topology.IfaceID(b.Tenant, b.Host)
		h, ok := v.HostByName(b.Host)
		if !ok {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): tenant %q has no host %q", i, id, b.Tenant, b.Host)
		}
		ei, ok := c.edges[b.Bridge]
		if !ok {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): unknown edge bridge %s", i, id, b.Bridge)
		}
		if b.Port == 0 || b.Port > uint32(maxPhysPort) || b.Port == ei.uplink {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): port %d is not a host port of bridge %s", i, id, b.Port, b.Bridge)
		}
		if seen[b.Host] {
			return nil, fmt.Errorf("pipeline: bindings[%d]: host %s bound twice", i, id)
		}
		seen[b.Host] = true
		pk := [2]uint64{uint64(b.Bridge), uint64(b.Port)}
		if other, dup := ports[pk]; dup {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): port %d of bridge %s already bound to %s", i, id, b.Port, b.Bridge, other)
		}
		ports[pk] = id
		here[b.Bridge] = true
		p, fab, ck := b.Port, addr.FabricMAC(t, h.Index), InfraCookie(t, h.Index)
		sw := v.Ports[h.VPort-1].Switch
		es := out[b.Bridge]
		for _, group := range []bool{true, false} {
			match := []ofp.XM{InPort(p), EthSrc(h.MAC)}
			prio := PrioHostUnicast
			if group {
				match = append(match, EthDstMasked(groupBit, groupBit))
				prio = PrioHostGroup
			}
			es = append(es, Entry{Table: TableClassify, Priority: prio, Cookie: ck, Match: match,
				Instructions: ofp.Instructions{
					Apply(SetField(EthSrc(fab))),
					WriteMetadata(MetadataValue(t, h.VPort, sw, group), ^uint64(0)),
					Goto(TableDestCheck),
				}})
		}
		es = append(es, Entry{Table: TableClassify, Priority: PrioHostDrop, Cookie: ck, Match: []ofp.XM{InPort(p)}})
		es = append(es, Entry{Table: TableClassify, Priority: PrioFromUplink, Cookie: ck,
			Match:        []ofp.XM{InPort(ei.uplink), EthDstMasked(fab, addr.HostMask)},
			Instructions: ofp.Instructions{Goto(TableRestoreSrc)}})
		// Table 20: a local host is delivered here.
		es = append(es, Entry{Table: TableFabricOut, Priority: PrioHost, Cookie: ck,
			Match:        []ofp.XM{EthDstMasked(fab, addr.HostMask)},
			Instructions: ofp.Instructions{Goto(TableRestoreSrc)}})
		// Table 31: deliver, only frames whose source tenant (metadata) is t.
		md := Metadata(uint64(t)<<MetaTenantShift, MetaTenantMask)
		es = append(es, Entry{Table: TableDeliver, Priority: PrioHost, Cookie: ck,
			Match:        []ofp.XM{md, EthDst(fab)},
			Instructions: ofp.Instructions{Apply(SetField(EthDst(h.MAC)), Output(p))}})
		es = append(es, Entry{Table: TableDeliver, Priority: PrioHost, Cookie: ck,
			Match:        []ofp.XM{md, EthDst(addr.GroupMAC(t, h.Index))},
			Instructions: ofp.Instructions{Apply(SetField(EthDst(addr.Broadcast)), Output(p))}})
		out[b.Bridge] = es
	}
	// Tables 5 and 30 of every edge bridge with a host of t: a unicast
	// destination that is a host of t goes on to the tenant tables; the
	// source of every host of t is restored and t recorded as the
	// source's tenant.
	for d := range here {
		es := out[d]
		md := Metadata(uint64(t)<<MetaTenantShift, MetaTenantMask)
		for i := range v.Hosts {
			h := &v.Hosts[i]
			es = append(es, Entry{Table: TableDestCheck, Priority: PrioHost, Cookie: InfraCookie(t, h.Index),
				Match: []ofp.XM{md, EthDst(h.MAC)}, Instructions: ofp.Instructions{Goto(TableTenant)}})
		}
		for i := range v.Hosts {
			h := &v.Hosts[i]
			es = append(es, Entry{Table: TableRestoreSrc, Priority: PrioHost, Cookie: InfraCookie(t, h.Index),
				Match: []ofp.XM{EthSrc(addr.FabricMAC(t, h.Index))},
				Instructions: ofp.Instructions{
					Apply(SetField(EthSrc(h.MAC))),
					WriteMetadata(uint64(t)<<MetaTenantShift, MetaTenantMask),
					Goto(TableDeliver),
				}})
		}
		out[d] = es
	}
	// Gateways: tunnel ingress of t on every tunnel port, a route per
	// bound host.
	val, mask := addr.TenantMatch(t)
	for _, s := range c.m.Sites {
		g := s.Gateway
		es := out[g.DPID]
		for _, peer := range c.m.Tree.Peers(s.Name) {
			es = append(es, Entry{Table: TableGatewayIngress, Priority: PrioHost, Cookie: InfraCookie(t, 0),
				Match:        []ofp.XM{InPort(g.Tunnels[peer]), TunnelID(uint64(addr.TunnelKey(t))), EthSrcMasked(val, mask)},
				Instructions: ofp.Instructions{Goto(TableGatewayRoute)}})
		}
		for _, b := range binds {
			h, _ := v.HostByName(b.Host)
			where := c.edges[b.Bridge]
			match := []ofp.XM{EthDstMasked(addr.FabricMAC(t, h.Index), addr.HostMask)}
			ck := InfraCookie(t, h.Index)
			if where.site == s.Name {
				es = append(es, Entry{Table: TableGatewayRoute, Priority: PrioHost, Cookie: ck, Match: match,
					Instructions: ofp.Instructions{Apply(Output(g.Downlinks[b.Bridge]))}})
				continue
			}
			hop, ok := c.nextHop[s.Name][where.site]
			if !ok {
				continue // site not reachable through the tree: no route
			}
			es = append(es, Entry{Table: TableGatewayRoute, Priority: PrioHost, Cookie: ck, Match: match,
				Instructions: ofp.Instructions{Apply(SetField(TunnelID(uint64(addr.TunnelKey(t)))), Output(g.Tunnels[hop]))}})
		}
		if len(es) > 0 {
			out[g.DPID] = es
		}
	}
	return out, nil
}

func sortedPorts(m map[DPID]uint32) []uint32 {
	var ps []uint32
	for _, p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// sortEntries orders entries by table, descending priority, then key.
func sortEntries(es []Entry) []Entry {
	type keyed struct {
		key string
		e   Entry
	}
	ks := make([]keyed, len(es))
	for i := range es {
		ks[i] = keyed{es[i].Key(), es[i]}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.e.Table, b.e.Table), cmp.Compare(b.e.Priority, a.e.Priority), cmp.Compare(a.key, b.key))
	})
	for i := range ks {
		es[i] = ks[i].e
	}
	return es
}

// EdgeBridges returns the edge bridges that must hold the translated flow
// entries of virtual switch vdpid of tenant: every bridge where a host is
// bound whose virtual switch is connected to vdpid through virtual links
// (the ingress edge runs the whole connected virtual network). Sorted.
func EdgeBridges(v *View, bindings []Binding, vdpid topology.DPID) []DPID {
	sw, ok := v.SwitchByDPID(vdpid)
	if !ok {
		return nil
	}
	// Connected component of sw through links.
	comp := map[uint16]bool{sw.Index: true}
	stack := []uint16{sw.Index}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, pi := range v.Switches[s-1].Ports {
			if peer := v.Ports[pi-1].Peer; peer != 0 {
				ps := v.Ports[peer-1].Switch
				if !comp[ps] {
					comp[ps] = true
					stack = append(stack, ps)
				}
			}
		}
	}
	var out []DPID
	for _, b := range bindings {
		if b.Tenant != v.Name {
			continue
		}
		h, ok := v.HostByName(b.Host)
		if !ok || !comp[v.Ports[h.VPort-1].Switch] {
			continue
		}
		out = append(out, b.Bridge)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
