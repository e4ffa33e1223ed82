package hypervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// benchFabric stores tenants tenants of hosts hosts each (one virtual
// switch, learning app), spread over the 3 sites of the test infra, every
// host bound on its site's first VM bridge, and converges the fake fabric.
func benchFabric(b *testing.B, tenants, hosts int) *Hypervisor {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "skg.db"), store.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ff := &fakeFabric{}
	inf := testInfra(&testing.T{})
	h, err := New(Config{Infra: inf, Store: st, Logger: quietLogger(), Dial: ff.dial})
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Converge(context.Background()); err != nil {
		b.Fatal(err)
	}
	sites := []string{"aws", "gcp", "azure"}
	vmDPID := map[string]topology.DPID{"aws": 0x101, "gcp": 0x201, "azure": 0x301}
	vmName := map[string]string{"aws": "vm1", "gcp": "vm1", "azure": "web"}
	var ts []*topology.Topology
	port := map[string]uint32{}
	for i := 0; i < tenants; i++ {
		tp := &topology.Topology{Tenant: fmt.Sprintf("t%d", i), Apps: []string{LearningApp}, Switches: []topology.Switch{{Name: "s"}}, Links: []topology.Link{}}
		for j := 0; j < hosts; j++ {
			site := sites[j%3]
			tp.Hosts = append(tp.Hosts, topology.Host{Name: fmt.Sprintf("h%d", j), MAC: fmt.Sprintf("00:00:00:00:%02x:%02x", j>>8, j&0xff+1),
				IP: fmt.Sprintf("10.%d.%d.%d/8", i, j>>8, j&0xff+1), Switch: "s", Port: uint32(j + 1), Cloud: site})
			port[site]++
			err := st.PutBinding(store.Binding{IfaceID: topology.IfaceID(tp.Tenant, fmt.Sprintf("h%d", j)), Site: site, VM: vmName[site],
				Bridge: vmName[site], DPID: vmDPID[site], PortName: fmt.Sprintf("p%d", port[site]), OFPort: port[site] + 1})
			if err != nil {
				b.Fatal(err)
			}
		}
		ts = append(ts, tp)
	}
	if _, err := st.PutTenants(ts); err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkCompute measures one full recomputation of the desired state
// (store read, pipeline.Compile, proactive learning entries) and the
// fingerprints that decide which switches to reconcile, for 100 tenants of
// 9 hosts (900 bound hosts on 3 sites): the work done per binding change
// or tenant apply, before any switch I/O.
func BenchmarkCompute(b *testing.B) {
	h := benchFabric(b, 100, 9)
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		d, _, err := h.compute("")
		if err != nil {
			b.Fatal(err)
		}
		n = 0
		for _, es := range d {
			n += len(es)
			if _, err := fingerprint(es); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(n), "entries")
}
