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
func Compile(m *Model) (map[DPID][]Entry, error) {
	c, err := check(m)
	if err != nil {
		return nil, err
	}
	out := map[DPID][]Entry{}
	// Local bindings per edge bridge, in a deterministic order.
	type local struct {
		b    Binding
		v    *View
		host *HostInfo
	}
	locals := map[DPID][]local{}
	for _, b := range m.Bindings {
		v := c.views[b.Tenant]
		h, _ := v.HostByName(b.Host)
		locals[b.Bridge] = append(locals[b.Bridge], local{b, v, h})
	}
	for _, s := range m.Sites {
		for _, e := range s.Edges {
			ls := locals[e.DPID]
			slices.SortFunc(ls, func(a, b local) int {
				return cmp.Or(cmp.Compare(a.v.ID, b.v.ID), cmp.Compare(a.host.Index, b.host.Index))
			})
			var es []Entry
			add := func(x Entry) { es = append(es, x) }
			infra := InfraCookie(0, 0)
			// Table 0.
			add(Entry{Table: TableClassify, Priority: PrioLLDP, Cookie: infra, Match: []ofp.XM{EthType(lldpType)},
				Instructions: ofp.Instructions{Apply(Output(uint32(ofp.PortController)))}})
			add(Entry{Table: TableClassify, Priority: PrioLinkLocalDrop, Cookie: infra, Match: []ofp.XM{EthDstMasked(linkLocal, linkLocalMsk)}})
			add(Entry{Table: TableClassify, Priority: PrioMiss, Cookie: infra})
			tenantsHere := map[addr.TenantID]*View{}
			for _, l := range ls {
				t, h, p := l.v.ID, l.host, l.b.Port
				ck := InfraCookie(t, h.Index)
				fab := addr.FabricMAC(t, h.Index)
				sw := l.v.Ports[h.VPort-1].Switch
				tenantsHere[t] = l.v
				for _, group := range []bool{true, false} {
					match := []ofp.XM{InPort(p), EthSrc(h.MAC)}
					prio := PrioHostUnicast
					if group {
						match = append(match, EthDstMasked(groupBit, groupBit))
						prio = PrioHostGroup
					}
					add(Entry{Table: TableClassify, Priority: prio, Cookie: ck, Match: match,
						Instructions: ofp.Instructions{
							Apply(SetField(EthSrc(fab))),
							WriteMetadata(MetadataValue(t, h.VPort, sw, group), ^uint64(0)),
							Goto(TableDestCheck),
						}})
				}
				add(Entry{Table: TableClassify, Priority: PrioHostDrop, Cookie: ck, Match: []ofp.XM{InPort(p)}})
				add(Entry{Table: TableClassify, Priority: PrioFromUplink, Cookie: ck,
					Match:        []ofp.XM{InPort(e.Uplink), EthDstMasked(fab, addr.HostMask)},
					Instructions: ofp.Instructions{Goto(TableRestoreSrc)}})
				// Table 20: a local host is delivered here.
				add(Entry{Table: TableFabricOut, Priority: PrioHost, Cookie: ck,
					Match:        []ofp.XM{EthDstMasked(fab, addr.HostMask)},
					Instructions: ofp.Instructions{Goto(TableRestoreSrc)}})
				// Table 31: deliver, only frames whose source tenant (metadata) is t.
				md := Metadata(uint64(t)<<MetaTenantShift, MetaTenantMask)
				add(Entry{Table: TableDeliver, Priority: PrioHost, Cookie: ck,
					Match:        []ofp.XM{md, EthDst(fab)},
					Instructions: ofp.Instructions{Apply(SetField(EthDst(h.MAC)), Output(p))}})
				add(Entry{Table: TableDeliver, Priority: PrioHost, Cookie: ck,
					Match:        []ofp.XM{md, EthDst(addr.GroupMAC(t, h.Index))},
					Instructions: ofp.Instructions{Apply(SetField(EthDst(addr.Broadcast)), Output(p))}})
			}
			// Table 5: a group destination, or a unicast one that is the
			// own MAC of a host of the frame's tenant, goes on to the
			// tenant tables; anything else is dropped (docs/design.md:
			// passing it on could alias another tenant's address).
			add(Entry{Table: TableDestCheck, Priority: PrioHost, Cookie: infra, Match: []ofp.XM{EthDstMasked(groupBit, groupBit)},
				Instructions: ofp.Instructions{Goto(TableTenant)}})
			add(Entry{Table: TableDestCheck, Priority: PrioMiss, Cookie: infra})
			for _, v := range tenantsHere {
				md := Metadata(uint64(v.ID)<<MetaTenantShift, MetaTenantMask)
				for i := range v.Hosts {
					h := &v.Hosts[i]
					add(Entry{Table: TableDestCheck, Priority: PrioHost, Cookie: InfraCookie(v.ID, h.Index),
						Match: []ofp.XM{md, EthDst(h.MAC)}, Instructions: ofp.Instructions{Goto(TableTenant)}})
				}
			}
			for tt := TableTenant; tt < TableTenant+NumTenantTables; tt++ {
				add(Entry{Table: tt, Priority: PrioMiss, Cookie: infra,
					Instructions: ofp.Instructions{Apply(Output(uint32(ofp.PortController)))}})
			}
			add(Entry{Table: TableFabricOut, Priority: PrioMiss, Cookie: infra,
				Instructions: ofp.Instructions{Apply(Output(e.Uplink))}})
			// Table 30: restore the source of every host of every tenant
			// with a host here, and record the source's tenant.
			for _, v := range tenantsHere {
				for i := range v.Hosts {
					h := &v.Hosts[i]
					add(Entry{Table: TableRestoreSrc, Priority: PrioHost, Cookie: InfraCookie(v.ID, h.Index),
						Match: []ofp.XM{EthSrc(addr.FabricMAC(v.ID, h.Index))},
						Instructions: ofp.Instructions{
							Apply(SetField(EthSrc(h.MAC))),
							WriteMetadata(uint64(v.ID)<<MetaTenantShift, MetaTenantMask),
							Goto(TableDeliver),
						}})
				}
			}
			add(Entry{Table: TableRestoreSrc, Priority: PrioMiss, Cookie: infra})
			add(Entry{Table: TableDeliver, Priority: PrioMiss, Cookie: infra})
			out[e.DPID] = sortEntries(es)
		}
		// Gateway.
		g := s.Gateway
		var es []Entry
		add := func(x Entry) { es = append(es, x) }
		infra := InfraCookie(0, 0)
		add(Entry{Table: TableGatewayIngress, Priority: PrioLLDP, Cookie: infra, Match: []ofp.XM{EthType(lldpType)},
			Instructions: ofp.Instructions{Apply(Output(uint32(ofp.PortController)))}})
		add(Entry{Table: TableGatewayIngress, Priority: PrioMiss, Cookie: infra})
		add(Entry{Table: TableGatewayRoute, Priority: PrioMiss, Cookie: infra})
		for _, p := range sortedPorts(g.Downlinks) {
			add(Entry{Table: TableGatewayIngress, Priority: PrioHost, Cookie: infra, Match: []ofp.XM{InPort(p)},
				Instructions: ofp.Instructions{Goto(TableGatewayRoute)}})
		}
		tids := make([]addr.TenantID, 0, len(c.byID))
		for id := range c.byID {
			tids = append(tids, id)
		}
		slices.Sort(tids)
		peers := c.m.Tree.Peers(s.Name)
		for _, peer := range peers {
			tp := g.Tunnels[peer]
			add(Entry{Table: TableGatewayIngress, Priority: PrioTunnelDrop, Cookie: infra, Match: []ofp.XM{InPort(tp)}})
			for _, id := range tids {
				val, mask := addr.TenantMatch(id)
				add(Entry{Table: TableGatewayIngress, Priority: PrioHost, Cookie: InfraCookie(id, 0),
					Match:        []ofp.XM{InPort(tp), TunnelID(uint64(addr.TunnelKey(id))), EthSrcMasked(val, mask)},
					Instructions: ofp.Instructions{Goto(TableGatewayRoute)}})
			}
		}
		for _, b := range m.Bindings {
			v := c.views[b.Tenant]
			h, _ := v.HostByName(b.Host)
			where := c.edges[b.Bridge]
			match := []ofp.XM{EthDstMasked(addr.FabricMAC(v.ID, h.Index), addr.HostMask)}
			ck := InfraCookie(v.ID, h.Index)
			if where.site == s.Name {
				add(Entry{Table: TableGatewayRoute, Priority: PrioHost, Cookie: ck, Match: match,
					Instructions: ofp.Instructions{Apply(Output(g.Downlinks[b.Bridge]))}})
				continue
			}
			hop, ok := c.nextHop[s.Name][where.site]
			if !ok {
				continue // site not reachable through the tree: no route
			}
			add(Entry{Table: TableGatewayRoute, Priority: PrioHost, Cookie: ck, Match: match,
				Instructions: ofp.Instructions{Apply(SetField(TunnelID(uint64(addr.TunnelKey(v.ID)))), Output(g.Tunnels[hop]))}})
		}
		if _, dup := out[g.DPID]; dup {
			return nil, fmt.Errorf("pipeline: site %q: gateway DPID %s is also an edge bridge", s.Name, g.DPID)
		}
		out[g.DPID] = sortEntries(es)
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
