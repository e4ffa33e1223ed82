package pipeline

import (
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/tunnels"
)

// Tenant scale benchmarks (issue "Tenant virtual networks"; figures and
// method in docs/benchmarks.md, "Tenant scale"; the same fabric as
// testbed/experiments/scale, which `skyexp scale` runs).

// scaleFabric builds clouds sites of vms edge bridges each (gateway DPID
// 0x100·(c+1), edges after it), joined by a chain of tunnels, and nt
// tenants of nh hosts on ns virtual switches (a chain of links, hosts
// split evenly), learning app. Host k of the whole fabric goes to edge
// bridge k mod (clouds·vms), cloud-major, on the bridge's next port, so a
// 10-host tenant spans 10 bridges. Tenants reuse the same host MACs.
func scaleFabric(clouds, vms, nt, nh, ns int) (*Model, map[string]*View) {
	m := &Model{}
	var edges []DPID
	for c := 0; c < clouds; c++ {
		name := fmt.Sprintf("c%02d", c+1)
		if c > 0 {
			m.Tree.Tunnels = append(m.Tree.Tunnels, tunnels.Tunnel{A: fmt.Sprintf("c%02d", c), B: name, Cost: 1})
		}
		gw := DPID(0x100 * (c + 1))
		s := Site{Name: name, Gateway: Gateway{DPID: gw, Downlinks: map[DPID]uint32{}, Tunnels: map[string]uint32{}}}
		if c > 0 {
			s.Gateway.Tunnels[fmt.Sprintf("c%02d", c)] = 32768
		}
		if c < clouds-1 {
			s.Gateway.Tunnels[fmt.Sprintf("c%02d", c+2)] = 32769
		}
		for v := 0; v < vms; v++ {
			d := gw + DPID(v+1)
			s.Edges = append(s.Edges, EdgeBridge{DPID: d, Uplink: 65000})
			s.Gateway.Downlinks[d] = uint32(v + 1)
			edges = append(edges, d)
		}
		m.Sites = append(m.Sites, s)
	}
	next := map[DPID]uint32{}
	views := map[string]*View{}
	var ids addr.TenantAllocator
	k := 0
	per := (nh + ns - 1) / ns
	for ti := 0; ti < nt; ti++ {
		name := fmt.Sprintf("t%05d", ti+1)
		tp := &topology.Topology{Tenant: name, Apps: topology.DefaultApps()}
		for s := 1; s <= ns; s++ {
			tp.Switches = append(tp.Switches, topology.Switch{Name: fmt.Sprintf("s%d", s)})
			if s > 1 {
				tp.Links = append(tp.Links, topology.Link{A: topology.Endpoint{Switch: fmt.Sprintf("s%d", s-1), Port: 100001},
					B: topology.Endpoint{Switch: fmt.Sprintf("s%d", s), Port: 100000}})
			}
		}
		idx := map[string]addr.HostIndex{}
		for h := 0; h < nh; h++ {
			hn := fmt.Sprintf("h%d", h+1)
			tp.Hosts = append(tp.Hosts, topology.Host{Name: hn, MAC: addr.MACFromUint64(uint64(h + 1)).String(),
				Switch: fmt.Sprintf("s%d", h/per+1), Port: uint32(h%per + 1)})
			idx[hn] = addr.HostIndex(h + 1)
			e := edges[k%len(edges)]
			k++
			next[e]++
			m.Bindings = append(m.Bindings, Binding{Tenant: name, Host: hn, Bridge: e, Port: next[e]})
		}
		id, err := ids.Allocate()
		if err != nil {
			panic(err)
		}
		t := Tenant{ID: id, Topology: tp, Hosts: idx}
		v, err := NewView(t)
		if err != nil {
			panic(err)
		}
		views[name] = v
		m.Tenants = append(m.Tenants, t)
	}
	return m, views
}

// learningFlowMods are the flow-mods of the hypervisor's proactive
// learning app on virtual switch sw (hypervisor/desired.go,
// learningEntries): eth_dst = each reachable host's MAC -> its port or
// the first link toward its switch, broadcast -> FLOOD.
func learningFlowMods(v *View, sw *VSwitch) []*ofp.FlowMod {
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
	first := map[uint16]uint32{sw.Index: 0}
	queue := []uint16{sw.Index}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, e := range adj[s] {
			if _, seen := first[e.to]; !seen {
				first[e.to] = first[s]
				if s == sw.Index {
					first[e.to] = e.port
				}
				queue = append(queue, e.to)
			}
		}
	}
	var fms []*ofp.FlowMod
	for _, h := range v.Hosts {
		hp := v.Ports[h.VPort-1]
		port, ok := first[hp.Switch]
		if !ok {
			continue
		}
		if hp.Switch == sw.Index {
			port = hp.Port
		}
		fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 100, Cookie: 1, Buffer: ofp.NoBuffer,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{EthDst(h.MAC)}}, Instructions: ofp.Instructions{Apply(Output(port))}})
	}
	return append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 50, Cookie: 2, Buffer: ofp.NoBuffer,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{EthDst(addr.Broadcast)}},
		Instructions: ofp.Instructions{Apply(Output(uint32(ofp.PortFlood)))}})
}

// scaleDesired is what the hypervisor installs: Compile plus every
// tenant's learning entries on the edge bridges running its switches.
func scaleDesired(tb testing.TB, m *Model, views map[string]*View) map[DPID][]Entry {
	out, err := Compile(m)
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range m.Tenants {
		v := views[t.Topology.Tenant]
		for i := range v.Switches {
			sw := &v.Switches[i]
			bridges := EdgeBridges(v, m.Bindings, sw.DPID)
			for _, fm := range learningFlowMods(v, sw) {
				es, err := AddEntries(v, sw.DPID, fm)
				if err != nil {
					tb.Fatal(err)
				}
				for _, b := range bridges {
					out[b] = append(out[b], es...)
				}
			}
		}
	}
	return out
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// reportPerSwitch reports the median and maximum entries of the edge
// bridges (DPID low byte != 0) and of the gateways.
func reportPerSwitch(b *testing.B, out map[DPID][]Entry) {
	var edge, gw []int
	total := 0
	for d, es := range out {
		total += len(es)
		if d&0xff == 0 {
			gw = append(gw, len(es))
		} else {
			edge = append(edge, len(es))
		}
	}
	slices.Sort(edge)
	slices.Sort(gw)
	b.ReportMetric(float64(total), "entries")
	b.ReportMetric(float64(edge[(len(edge)-1)/2]), "entries/edge-median")
	b.ReportMetric(float64(edge[len(edge)-1]), "entries/edge-max")
	b.ReportMetric(float64(gw[len(gw)-1]), "entries/gateway-max")
}

// BenchmarkScaleCompile measures pipeline.Compile (the hypervisor's own
// tables of every bridge) for 1,000 tenants of 10 hosts on 8 clouds x 4
// VMs and 16 x 4.
func BenchmarkScaleCompile(b *testing.B) {
	for _, clouds := range []int{8, 16} {
		b.Run(fmt.Sprintf("clouds=%d", clouds), func(b *testing.B) {
			m, _ := scaleFabric(clouds, 4, 1000, 10, 1)
			b.ReportAllocs()
			var out map[DPID][]Entry
			for b.Loop() {
				var err error
				if out, err = Compile(m); err != nil {
					b.Fatal(err)
				}
			}
			reportPerSwitch(b, out)
		})
	}
}

// BenchmarkScaleDesired measures the whole desired state the hypervisor
// computes (Compile + the learning app's translated entries) for 1,000
// tenants of 10 hosts on 8 x 4 and 16 x 4, tenants of 1 and of 2 linked
// virtual switches; it reports the entries per bridge and the live heap
// the desired entries take (heap-bytes, after GC).
func BenchmarkScaleDesired(b *testing.B) {
	for _, clouds := range []int{8, 16} {
		for _, ns := range []int{1, 2} {
			b.Run(fmt.Sprintf("clouds=%d/switches=%d", clouds, ns), func(b *testing.B) {
				m, views := scaleFabric(clouds, 4, 1000, 10, ns)
				before := liveHeap()
				out := scaleDesired(b, m, views)
				heap := int64(liveHeap()) - int64(before)
				runtime.KeepAlive(out)
				out = nil
				b.ReportAllocs()
				for b.Loop() {
					out = scaleDesired(b, m, views)
				}
				reportPerSwitch(b, out)
				b.ReportMetric(float64(heap), "heap-bytes")
			})
		}
	}
}
