package reconcile

import (
	"fmt"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/tunnels"
)

// Tenant scale benchmarks of reconcile (docs/benchmarks.md, "Tenant
// scale"): 1,000 tenants of 10 hosts (one virtual switch, learning app)
// on 8 clouds x 4 VMs, hosts round-robin over the 32 edge bridges, as in
// testbed/experiments/scale.

// scaleBridges returns the desired entries of every bridge (Compile plus
// the learning app's eth_dst -> port and broadcast -> FLOOD entries) for
// nt tenants of nh hosts, plus, when extra > 0, one more tenant "big" of
// extra hosts.
func scaleBridges(tb testing.TB, nt, nh, extra int) map[pipeline.DPID][]pipeline.Entry {
	tb.Helper()
	const clouds, vms = 8, 4
	m := &pipeline.Model{}
	var edges []pipeline.DPID
	for c := 0; c < clouds; c++ {
		name := fmt.Sprintf("c%d", c)
		gw := pipeline.DPID(0x100 * (c + 1))
		s := pipeline.Site{Name: name, Gateway: pipeline.Gateway{DPID: gw, Downlinks: map[pipeline.DPID]uint32{}, Tunnels: map[string]uint32{}}}
		if c > 0 {
			m.Tree.Tunnels = append(m.Tree.Tunnels, tunnels.Tunnel{A: fmt.Sprintf("c%d", c-1), B: name, Cost: 1})
			s.Gateway.Tunnels[fmt.Sprintf("c%d", c-1)] = 32768
		}
		if c < clouds-1 {
			s.Gateway.Tunnels[fmt.Sprintf("c%d", c+1)] = 32769
		}
		for v := 0; v < vms; v++ {
			d := gw + pipeline.DPID(v+1)
			s.Edges = append(s.Edges, pipeline.EdgeBridge{DPID: d, Uplink: 65000})
			s.Gateway.Downlinks[d] = uint32(v + 1)
			edges = append(edges, d)
		}
		m.Sites = append(m.Sites, s)
	}
	next := map[pipeline.DPID]uint32{}
	k := 0
	var ids addr.TenantAllocator
	addTenant := func(name string, nh int) {
		tp := &topology.Topology{Tenant: name, Apps: topology.DefaultApps(), Switches: []topology.Switch{{Name: "s", DPID: 1}}}
		idx := map[string]addr.HostIndex{}
		for h := 0; h < nh; h++ {
			hn := fmt.Sprintf("h%d", h+1)
			tp.Hosts = append(tp.Hosts, topology.Host{Name: hn, MAC: addr.MACFromUint64(uint64(h + 1)).String(), Switch: "s", Port: uint32(h + 1)})
			idx[hn] = addr.HostIndex(h + 1)
			e := edges[k%len(edges)]
			k++
			next[e]++
			m.Bindings = append(m.Bindings, pipeline.Binding{Tenant: name, Host: hn, Bridge: e, Port: next[e]})
		}
		id, err := ids.Allocate()
		if err != nil {
			tb.Fatal(err)
		}
		m.Tenants = append(m.Tenants, pipeline.Tenant{ID: id, Topology: tp, Hosts: idx})
	}
	for ti := 0; ti < nt; ti++ {
		addTenant(fmt.Sprintf("t%05d", ti+1), nh)
	}
	if extra > 0 {
		addTenant("big", extra)
	}
	out, err := pipeline.Compile(m)
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range m.Tenants {
		v, err := pipeline.NewView(t)
		if err != nil {
			tb.Fatal(err)
		}
		bridges := pipeline.EdgeBridges(v, m.Bindings, 1)
		var fms []*ofp.FlowMod
		for _, h := range v.Hosts {
			fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 100, Cookie: 1, Buffer: ofp.NoBuffer,
				Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(h.MAC)}},
				Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(v.Ports[h.VPort-1].Port))}})
		}
		fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 50, Cookie: 2, Buffer: ofp.NoBuffer,
			Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(addr.Broadcast)}},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(ofp.PortFlood)))}})
		for _, fm := range fms {
			es, err := pipeline.AddEntries(v, 1, fm)
			if err != nil {
				tb.Fatal(err)
			}
			for _, b := range bridges {
				out[b] = append(out[b], es...)
			}
		}
	}
	return out
}

// BenchmarkScaleDiffInSync diffs the fullest edge bridge and the fullest
// gateway of the 1,000-tenant fabric against their own (in sync) flow
// tables, as reported through the flow-stats codec: the cost per bridge
// of a reconcile after a reconnect or an audit.
func BenchmarkScaleDiffInSync(b *testing.B) {
	all := scaleBridges(b, 1000, 10, 0)
	pick := func(gateway bool) pipeline.DPID {
		var best pipeline.DPID
		for d, es := range all {
			if (d&0xff == 0) == gateway && len(es) > len(all[best]) {
				best = d
			}
		}
		return best
	}
	for _, c := range []struct {
		name string
		dpid pipeline.DPID
	}{{"edge", pick(false)}, {"gateway", pick(true)}} {
		b.Run(c.name, func(b *testing.B) {
			desired := all[c.dpid]
			actual := asReported(b, desired)
			b.ReportAllocs()
			for b.Loop() {
				p, err := Diff(desired, actual, Options{})
				if err != nil || !p.Empty() {
					b.Fatalf("%d adds %d deletes %v", len(p.Add), len(p.Delete), err)
				}
			}
			b.ReportMetric(float64(len(desired)), "entries")
		})
	}
}

// BenchmarkScaleDiffApply is the reconcile part of applying a 100-host
// tenant (one virtual switch, hosts on every edge bridge of all 8
// clouds) on top of the 1,000 tenants: the diff of every bridge (all 40
// change) against its flow table before the apply. The controller-time
// target of the apply ("well under a second") includes this.
func BenchmarkScaleDiffApply(b *testing.B) {
	before := scaleBridges(b, 1000, 10, 0)
	after := scaleBridges(b, 1000, 10, 100)
	actual := map[pipeline.DPID][]ofwire.FlowStats{}
	for d, es := range before {
		actual[d] = asReported(b, es)
	}
	var adds int
	b.ReportAllocs()
	for b.Loop() {
		adds = 0
		for d, es := range after {
			p, err := Diff(es, actual[d], Options{})
			if err != nil || len(p.Delete) != 0 {
				b.Fatalf("%d deletes %v", len(p.Delete), err)
			}
			adds += len(p.Add)
		}
	}
	b.ReportMetric(float64(len(after)), "bridges")
	b.ReportMetric(float64(adds), "adds")
}
