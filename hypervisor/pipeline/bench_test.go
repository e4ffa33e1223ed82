package pipeline

import (
	"fmt"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/tunnels"
)

// bigModel: 3 sites x 10 edge bridges, nt tenants of nh hosts each, one
// switch per tenant, hosts spread round-robin over all edges.
func bigModel(nt, nh int) *Model {
	m := &Model{Tree: tunnels.Plan{Tunnels: []tunnels.Tunnel{{A: "s0", B: "s1"}, {A: "s1", B: "s2"}}}}
	var edges []DPID
	for s := 0; s < 3; s++ {
		site := Site{Name: fmt.Sprintf("s%d", s), Gateway: Gateway{DPID: DPID(0x1000 + s), Downlinks: map[DPID]uint32{}, Tunnels: map[string]uint32{}}}
		for e := 0; e < 10; e++ {
			d := DPID(0x2000 + s*100 + e)
			site.Edges = append(site.Edges, EdgeBridge{DPID: d, Uplink: 1000})
			site.Gateway.Downlinks[d] = uint32(e + 1)
			edges = append(edges, d)
		}
		for _, p := range m.Tree.Peers(site.Name) {
			site.Gateway.Tunnels[p] = 32768 + uint32(len(site.Gateway.Tunnels))
		}
		m.Sites = append(m.Sites, site)
	}
	ports := map[DPID]uint32{}
	for ti := 0; ti < nt; ti++ {
		name := fmt.Sprintf("t%d", ti)
		tp := &topology.Topology{Tenant: name, Switches: []topology.Switch{{Name: "s", DPID: 1}}}
		idx := map[string]addr.HostIndex{}
		for h := 0; h < nh; h++ {
			hn := fmt.Sprintf("h%d", h)
			tp.Hosts = append(tp.Hosts, topology.Host{Name: hn, MAC: addr.MACFromUint64(uint64(0x0a0000000000 + h)).String(), Switch: "s", Port: uint32(h + 1)})
			idx[hn] = addr.HostIndex(h + 1)
			e := edges[(ti*nh+h)%len(edges)]
			ports[e]++
			m.Bindings = append(m.Bindings, Binding{Tenant: name, Host: hn, Bridge: e, Port: ports[e]})
		}
		m.Tenants = append(m.Tenants, Tenant{ID: addr.FirstTenantID + addr.TenantID(ti), Topology: tp, Hosts: idx})
	}
	return m
}

// BenchmarkCompile compiles a fabric of 30 edge bridges with 100 tenants
// of 20 hosts (2,000 hosts).
func BenchmarkCompile(b *testing.B) {
	m := bigModel(100, 20)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := Compile(m)
		if err != nil {
			b.Fatal(err)
		}
		n = 0
		for _, es := range out {
			n += len(es)
		}
	}
	b.ReportMetric(float64(n), "entries")
}

// BenchmarkTranslateFlood translates one broadcast->FLOOD flow-mod on a
// 20-port virtual switch (20 in-port variants x 2 copies).
func BenchmarkTranslateFlood(b *testing.B) {
	m := bigModel(1, 20)
	v, err := NewView(m.Tenants[0])
	if err != nil {
		b.Fatal(err)
	}
	fm := addFM(0, 50, 1, []ofp.XM{EthDst(addr.Broadcast)}, Apply(Output(uint32(ofp.PortFlood))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Translate(v, 1, fm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTranslateUnicast translates one eth_dst -> output flow-mod.
func BenchmarkTranslateUnicast(b *testing.B) {
	m := bigModel(1, 20)
	v, err := NewView(m.Tenants[0])
	if err != nil {
		b.Fatal(err)
	}
	fm := addFM(0, 100, 1, []ofp.XM{EthDst(v.Hosts[3].MAC)}, Apply(Output(4)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Translate(v, 1, fm); err != nil {
			b.Fatal(err)
		}
	}
}
