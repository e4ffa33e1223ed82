package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/tunnels"
)

// This file is a small OpenFlow 1.3 pipeline simulator (the subset the
// compiled and translated entries use: in_port, metadata, eth_dst/src,
// eth_type and tun_id matches; apply-actions, write-metadata, goto; output,
// set_field, Nicira clone and resubmit) wired like a fabric (edge uplinks
// to gateway downlinks, gateway tunnel ports to peers). It checks the
// end-to-end semantics of Compile + AddEntries on random fabrics, which the
// real-OVS tests check only on fixed ones.

type simPkt struct {
	inPort     uint32
	dst, src   addr.MAC
	ethType    uint16
	metadata   uint64
	tunID      uint64
	controller bool
}

type delivery struct {
	bridge DPID
	port   uint32
	pkt    simPkt
}

type simFabric struct {
	t       *testing.T
	tables  map[DPID][]Entry
	uplink  map[DPID]uint32 // edge -> uplink port
	edgeGW  map[DPID]DPID   // edge -> gateway
	gwDown  map[DPID]map[uint32]DPID
	downOf  map[DPID]uint32 // edge -> gateway downlink port
	gwTun   map[DPID]map[uint32]DPID
	tunBack map[[2]DPID]uint32 // (gateway, peer gateway) -> port on gateway toward peer
	out     []delivery
	toCtl   int
	hops    int
}

func newSimFabric(t *testing.T, m *Model, tables map[DPID][]Entry) *simFabric {
	f := &simFabric{t: t, tables: tables, uplink: map[DPID]uint32{}, edgeGW: map[DPID]DPID{}, gwDown: map[DPID]map[uint32]DPID{},
		downOf: map[DPID]uint32{}, gwTun: map[DPID]map[uint32]DPID{}, tunBack: map[[2]DPID]uint32{}}
	gwOf := map[string]DPID{}
	for _, s := range m.Sites {
		gwOf[s.Name] = s.Gateway.DPID
	}
	for _, s := range m.Sites {
		g := s.Gateway.DPID
		f.gwDown[g] = map[uint32]DPID{}
		f.gwTun[g] = map[uint32]DPID{}
		for _, e := range s.Edges {
			f.uplink[e.DPID] = e.Uplink
			f.edgeGW[e.DPID] = g
			f.gwDown[g][s.Gateway.Downlinks[e.DPID]] = e.DPID
			f.downOf[e.DPID] = s.Gateway.Downlinks[e.DPID]
		}
		for peer, p := range s.Gateway.Tunnels {
			f.gwTun[g][p] = gwOf[peer]
			f.tunBack[[2]DPID{g, gwOf[peer]}] = p
		}
	}
	return f
}

func fieldBytes(p *simPkt, t ofp.XMType) []byte {
	switch t {
	case ofp.XMTypeInPort:
		return binary.BigEndian.AppendUint32(nil, p.inPort)
	case ofp.XMTypeMetadata:
		return binary.BigEndian.AppendUint64(nil, p.metadata)
	case ofp.XMTypeEthDst:
		return bytes.Clone(p.dst[:])
	case ofp.XMTypeEthSrc:
		return bytes.Clone(p.src[:])
	case ofp.XMTypeEthType:
		return binary.BigEndian.AppendUint16(nil, p.ethType)
	case ofp.XMTypeTunnelID:
		return binary.BigEndian.AppendUint64(nil, p.tunID)
	}
	return nil
}

func matches(p *simPkt, e *Entry) bool {
	for _, f := range e.Match {
		v := fieldBytes(p, f.Type)
		if v == nil || len(v) != len(f.Value) {
			return false
		}
		for i := range v {
			m := byte(0xff)
			if len(f.Mask) > 0 {
				m = f.Mask[i]
			}
			if v[i]&m != f.Value[i]&m {
				return false
			}
		}
	}
	return true
}

// table runs one table lookup and the entry's instructions.
func (f *simFabric) table(br DPID, tid uint8, p simPkt, depth int) {
	if depth > 64 {
		f.t.Errorf("%s: resubmit depth exceeded", br)
		return
	}
	var best *Entry
	for i := range f.tables[br] {
		e := &f.tables[br][i]
		if e.Table != tid || !matches(&p, e) {
			continue
		}
		if best != nil && e.Priority == best.Priority {
			f.t.Errorf("%s table %d: two entries of priority %d match: %s and %s", br, tid, e.Priority, best.String(), e.String())
		}
		if best == nil || e.Priority > best.Priority {
			best = e
		}
	}
	if best == nil {
		return // OpenFlow 1.3 default table-miss: drop
	}
	var gotoT *uint8
	for _, in := range best.Instructions {
		if a, ok := in.(*ofp.InstructionApplyActions); ok {
			f.actions(br, a.Actions, &p, depth)
		}
	}
	for _, in := range best.Instructions {
		switch in := in.(type) {
		case *ofp.InstructionWriteMetadata:
			p.metadata = p.metadata&^in.MetadataMask | in.Metadata&in.MetadataMask
		case *ofp.InstructionGotoTable:
			t := uint8(in.Table)
			gotoT = &t
		}
	}
	if gotoT != nil {
		if *gotoT <= tid {
			f.t.Errorf("%s: goto %d from table %d", br, *gotoT, tid)
			return
		}
		f.table(br, *gotoT, p, depth)
	}
}

func (f *simFabric) actions(br DPID, acts ofp.Actions, p *simPkt, depth int) {
	for _, a := range acts {
		switch a := a.(type) {
		case *ofp.ActionOutput:
			if a.Port == ofp.PortController {
				f.toCtl++
				continue
			}
			f.emit(br, uint32(a.Port), *p)
		case *ofp.ActionSetField:
			v := a.Field.Value
			switch a.Field.Type {
			case ofp.XMTypeEthDst:
				p.dst = addr.MAC(v)
			case ofp.XMTypeEthSrc:
				p.src = addr.MAC(v)
			case ofp.XMTypeMetadata:
				p.metadata = binary.BigEndian.Uint64(v)
			case ofp.XMTypeTunnelID:
				p.tunID = binary.BigEndian.Uint64(v)
			default:
				f.t.Fatalf("simulator: set_field %s", a.Field.Type)
			}
		case *ofwire.ExperimenterAction:
			switch a.Subtype {
			case NXASTClone:
				nested, err := ofwire.DecodeActions(bytes.Clone(a.Raw[16:]))
				if err != nil {
					f.t.Fatal(err)
				}
				cp := *p
				f.actions(br, nested, &cp, depth+1)
			case NXASTResubmitTable:
				f.table(br, a.Raw[12], *p, depth+1)
			default:
				f.t.Fatalf("simulator: experimenter subtype %d", a.Subtype)
			}
		default:
			f.t.Fatalf("simulator: action %T", a)
		}
	}
}

// emit sends p out of port of bridge br: into the next bridge, or to a host.
func (f *simFabric) emit(br DPID, port uint32, p simPkt) {
	if port == p.inPort {
		return // OpenFlow: never out of the in-port implicitly
	}
	f.hops++
	if f.hops > 1000 {
		f.t.Fatalf("forwarding loop")
	}
	p.metadata = 0
	if up, ok := f.uplink[br]; ok {
		if port == up {
			p.inPort, p.tunID = f.downOf[br], 0
			f.table(f.edgeGW[br], 0, p, 0)
			return
		}
		f.out = append(f.out, delivery{br, port, p})
		return
	}
	if e, ok := f.gwDown[br][port]; ok {
		p.inPort, p.tunID = f.uplink[e], 0
		f.table(e, 0, p, 0)
		return
	}
	if peer, ok := f.gwTun[br][port]; ok {
		p.inPort = f.tunBack[[2]DPID{peer, br}]
		f.table(peer, 0, p, 0)
		return
	}
	f.t.Errorf("%s: output to unknown port %d", br, port)
}

func (f *simFabric) send(br DPID, port uint32, dst, src addr.MAC) []delivery {
	f.out, f.toCtl, f.hops = nil, 0, 0
	f.table(br, 0, simPkt{inPort: port, dst: dst, src: src, ethType: 0x0800}, 0)
	return f.out
}

// randomFabric: 3 sites in a chain (aws - gcp - azure), 2 edges each,
// 3 tenants with identical host MACs, 1-2 linked switches, 2-5 hosts each,
// about 80% of them bound somewhere.
func randomFabric(r *rand.Rand) *Model {
	names := []string{"aws", "gcp", "azure"}
	m := &Model{Tree: tunnels.Plan{Sites: names, Tunnels: []tunnels.Tunnel{{A: "aws", B: "gcp"}, {A: "azure", B: "gcp"}}}}
	var edges []DPID
	for i, n := range names {
		s := Site{Name: n, Gateway: Gateway{DPID: DPID(0x90 + i), Downlinks: map[DPID]uint32{}, Tunnels: map[string]uint32{}}}
		for j := 0; j < 2; j++ {
			d := DPID(0xe0 + 2*i + j)
			s.Edges = append(s.Edges, EdgeBridge{DPID: d, Uplink: 100})
			s.Gateway.Downlinks[d] = uint32(j + 1)
			edges = append(edges, d)
		}
		for k, p := range m.Tree.Peers(n) {
			s.Gateway.Tunnels[p] = uint32(32768 + k)
		}
		m.Sites = append(m.Sites, s)
	}
	next := map[DPID]uint32{}
	for ti := 0; ti < 3; ti++ {
		name := fmt.Sprintf("t%d", ti)
		nsw := 1 + r.IntN(2)
		tp := &topology.Topology{Tenant: name}
		for s := 0; s < nsw; s++ {
			tp.Switches = append(tp.Switches, topology.Switch{Name: fmt.Sprintf("s%d", s), DPID: topology.DPID(0x100 + s)})
		}
		if nsw == 2 {
			tp.Links = []topology.Link{{A: topology.Endpoint{Switch: "s0", Port: 100}, B: topology.Endpoint{Switch: "s1", Port: 100}}}
		}
		idx := map[string]addr.HostIndex{}
		nh := 2 + r.IntN(4)
		for h := 0; h < nh; h++ {
			hn := fmt.Sprintf("h%d", h)
			tp.Hosts = append(tp.Hosts, topology.Host{Name: hn, MAC: addr.MACFromUint64(uint64(h + 1)).String(),
				Switch: fmt.Sprintf("s%d", r.IntN(nsw)), Port: uint32(h + 1)})
			idx[hn] = addr.HostIndex(h + 1 + r.IntN(3)*100)
			if r.IntN(5) > 0 {
				e := edges[r.IntN(len(edges))]
				next[e]++
				m.Bindings = append(m.Bindings, Binding{Tenant: name, Host: hn, Bridge: e, Port: next[e]})
			}
		}
		m.Tenants = append(m.Tenants, Tenant{ID: addr.FirstTenantID + addr.TenantID(ti), Topology: tp, Hosts: idx})
	}
	return m
}

// l2App returns a proactive L2 app's flow-mods on switch sw: eth_dst of
// each host toward it (its port, or the link port), broadcast -> FLOOD,
// anything else -> FLOOD (priority 0, hub fallback).
func l2App(v *View, sw *VSwitch) []*ofp.FlowMod {
	var fms []*ofp.FlowMod
	for _, h := range v.Hosts {
		port := v.Ports[h.VPort-1]
		out := port.Port
		if port.Switch != sw.Index {
			for _, pi := range sw.Ports {
				if v.Ports[pi-1].Peer != 0 {
					out = v.Ports[pi-1].Port
				}
			}
		}
		fms = append(fms, addFM(0, 100, 1, []ofp.XM{EthDst(h.MAC)}, Apply(Output(out))))
	}
	fms = append(fms, addFM(0, 50, 2, []ofp.XM{EthDst(addr.Broadcast)}, Apply(Output(uint32(ofp.PortFlood)))))
	fms = append(fms, addFM(0, 0, 3, nil, Apply(Output(uint32(ofp.PortFlood)))))
	return fms
}

func TestSimulatedFabricIsolation(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		m := randomFabric(r)
		tables, err := Compile(m)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		views := map[string]*View{}
		for _, tn := range m.Tenants {
			v, err := NewView(tn)
			if err != nil {
				t.Fatal(err)
			}
			views[v.Name] = v
			for i := range v.Switches {
				sw := &v.Switches[i]
				for _, fm := range l2App(v, sw) {
					es, err := AddEntries(v, sw.DPID, fm)
					if err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
					for _, b := range EdgeBridges(v, m.Bindings, sw.DPID) {
						tables[b] = append(tables[b], es...)
					}
				}
			}
		}
		f := newSimFabric(t, m, tables)
		type where struct {
			tenant string
			host   *HostInfo
		}
		at := map[[2]uint64]where{}
		for _, b := range m.Bindings {
			h, _ := views[b.Tenant].HostByName(b.Host)
			at[[2]uint64{uint64(b.Bridge), uint64(b.Port)}] = where{b.Tenant, h}
		}
		for _, b := range m.Bindings {
			v := views[b.Tenant]
			self, _ := v.HostByName(b.Host)
			bound := func(h *HostInfo) bool {
				for _, o := range m.Bindings {
					if o.Tenant == v.Name && o.Host == h.Name {
						return true
					}
				}
				return false
			}
			check := func(what string, dst addr.MAC, out []delivery, want map[string]int) {
				got := map[string]int{}
				for _, d := range out {
					w, ok := at[[2]uint64{uint64(d.bridge), uint64(d.port)}]
					if !ok {
						t.Errorf("seed %d %s/%s %s: delivered to unbound port %s/%d", seed, b.Tenant, b.Host, what, d.bridge, d.port)
						continue
					}
					if w.tenant != b.Tenant {
						t.Errorf("seed %d %s/%s %s: delivered to %s/%s of another tenant", seed, b.Tenant, b.Host, what, w.tenant, w.host.Name)
						continue
					}
					if d.pkt.src != self.MAC {
						t.Errorf("seed %d %s/%s %s: delivered with source %v", seed, b.Tenant, b.Host, what, d.pkt.src)
					}
					if wd := dst; wd.IsUnicast() && d.pkt.dst != w.host.MAC || wd.IsMulticast() && d.pkt.dst != addr.Broadcast {
						t.Errorf("seed %d %s/%s %s: delivered to %s with destination %v", seed, b.Tenant, b.Host, what, w.host.Name, d.pkt.dst)
					}
					got[w.host.Name]++
				}
				for h, n := range want {
					if got[h] != n {
						t.Errorf("seed %d %s/%s %s: %s got %d copies, want %d", seed, b.Tenant, b.Host, what, h, got[h], n)
					}
				}
				for h, n := range got {
					if want[h] == 0 {
						t.Errorf("seed %d %s/%s %s: %s got %d unexpected copies", seed, b.Tenant, b.Host, what, h, n)
					}
				}
			}
			// Unicast to every other host of the tenant.
			for i := range v.Hosts {
				h := &v.Hosts[i]
				if h == self {
					continue
				}
				want := map[string]int{}
				if bound(h) {
					want[h.Name] = 1
				}
				check("unicast to "+h.Name, h.MAC, f.send(b.Bridge, b.Port, h.MAC, self.MAC), want)
			}
			// Broadcast reaches every other bound host once.
			want := map[string]int{}
			for i := range v.Hosts {
				if h := &v.Hosts[i]; h != self && bound(h) {
					want[h.Name] = 1
				}
			}
			check("broadcast", addr.Broadcast, f.send(b.Bridge, b.Port, addr.Broadcast, self.MAC), want)
			// Unknown unicast, other tenants' fabric MACs, spoofed sources:
			// nothing is delivered.
			none := map[string]int{}
			check("unknown unicast", addr.MAC{0, 0, 0, 0, 0, 0x77}, f.send(b.Bridge, b.Port, addr.MAC{0, 0, 0, 0, 0, 0x77}, self.MAC), none)
			for _, o := range m.Tenants {
				for _, hi := range o.Hosts {
					fab := addr.FabricMAC(o.ID, hi)
					check("to fabric MAC "+fab.String(), fab, f.send(b.Bridge, b.Port, fab, self.MAC), none)
					check("spoofed fabric source", addr.Broadcast, f.send(b.Bridge, b.Port, addr.Broadcast, fab), none)
				}
			}
			for i := range v.Hosts {
				if h := &v.Hosts[i]; h != self {
					check("spoofed source "+h.Name, addr.Broadcast, f.send(b.Bridge, b.Port, addr.Broadcast, h.MAC), none)
				}
			}
		}
		// Forged fabric frames (a compromised VM bridge or tunnel peer):
		// another tenant's source toward a host, from the edge's uplink; and
		// a frame whose tunnel key is not its source's tenant.
		for _, b := range m.Bindings {
			v := views[b.Tenant]
			h, _ := v.HostByName(b.Host)
			dst := addr.FabricMAC(v.ID, h.Index)
			for _, o := range m.Tenants {
				for _, hi := range o.Hosts {
					src := addr.FabricMAC(o.ID, hi)
					f.out, f.hops = nil, 0
					f.table(b.Bridge, 0, simPkt{inPort: f.uplink[b.Bridge], dst: dst, src: src}, 0)
					if o.ID != v.ID && len(f.out) != 0 {
						t.Errorf("seed %d: forged frame from %v to %s/%s delivered", seed, src, b.Tenant, b.Host)
					}
					if o.ID == v.ID && len(f.out) != 1 {
						t.Errorf("seed %d: fabric frame from %v to %s/%s: %d deliveries, want 1", seed, src, b.Tenant, b.Host, len(f.out))
					}
					for gw, ports := range f.gwTun {
						for port := range ports {
							f.out, f.hops = nil, 0
							f.table(gw, 0, simPkt{inPort: port, dst: dst, src: src, tunID: uint64(v.ID)}, 0)
							if o.ID != v.ID && len(f.out) != 0 {
								t.Errorf("seed %d: tunnel frame key %v source %v delivered", seed, v.ID, src)
							}
						}
					}
				}
			}
		}
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
}
