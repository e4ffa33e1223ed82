package reconcile

import (
	"fmt"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// BenchmarkDiffInSync diffs one edge bridge with 500 hosts bound (about
// 4,000 entries) against its own reported table: the steady-state cost of
// a reconcile after reconnect.
func BenchmarkDiffInSync(b *testing.B) {
	m := &pipeline.Model{Sites: []pipeline.Site{{Name: "a", Gateway: pipeline.Gateway{DPID: 1, Downlinks: map[pipeline.DPID]uint32{2: 1}},
		Edges: []pipeline.EdgeBridge{{DPID: 2, Uplink: 60000}}}}}
	for ti := 0; ti < 10; ti++ {
		name := fmt.Sprintf("t%d", ti)
		tp := &topology.Topology{Tenant: name, Switches: []topology.Switch{{Name: "s", DPID: 1}}}
		idx := map[string]addr.HostIndex{}
		for h := 0; h < 50; h++ {
			hn := fmt.Sprintf("h%d", h)
			tp.Hosts = append(tp.Hosts, topology.Host{Name: hn, MAC: addr.MACFromUint64(uint64(0x0a0000000000 + h)).String(), Switch: "s", Port: uint32(h + 1)})
			idx[hn] = addr.HostIndex(h + 1)
			m.Bindings = append(m.Bindings, pipeline.Binding{Tenant: name, Host: hn, Bridge: 2, Port: uint32(ti*50 + h + 1)})
		}
		m.Tenants = append(m.Tenants, pipeline.Tenant{ID: addr.FirstTenantID + addr.TenantID(ti), Topology: tp, Hosts: idx})
	}
	out, err := pipeline.Compile(m)
	if err != nil {
		b.Fatal(err)
	}
	desired := out[2]
	actual := asReported(b, desired)
	b.ReportMetric(float64(len(desired)), "entries")
	b.ReportAllocs()
	for b.Loop() {
		p, err := Diff(desired, actual, Options{})
		if err != nil || !p.Empty() {
			b.Fatalf("%v %v", p, err)
		}
	}
}
