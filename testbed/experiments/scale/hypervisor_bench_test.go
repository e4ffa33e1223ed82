package scale

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// BenchmarkHypervisorApply: the real hypervisor (StartHypervisor) holds
// 1,000 tenants of 10 hosts (1 virtual switch) on 8 clouds x 4 VMs; each
// iteration is ApplyTenant of a 100-host tenant plugged into all 32 edge
// bridges (DeleteTenant after it, untimed). The store does not fsync
// (setup speed); docs/benchmarks.md "Tenant scale" has the fsync'd
// figures from skyexp scale. heap-MiB is the live heap with the
// hypervisor's desired state, before the switches connect.
func BenchmarkHypervisorApply(b *testing.B) {
	ctx := context.Background()
	f, err := NewFabric(Config{Clouds: 8, VMsPerCloud: 4, Tenants: 1000, HostsPerTenant: 10, SwitchesPerTenant: 1})
	if err != nil {
		b.Fatal(err)
	}
	ts, err := f.Tenants()
	if err != nil {
		b.Fatal(err)
	}
	big, err := f.AddTenant("big", 100, 1)
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(filepath.Join(b.TempDir(), "skyvisor.db"), store.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tops := make([]*topology.Topology, len(ts))
	for i := range ts {
		tops[i] = ts[i].Topology
	}
	if _, err := st.PutTenants(tops); err != nil {
		b.Fatal(err)
	}
	if err := putBindings(st, f, append(ts, big)); err != nil {
		b.Fatal(err)
	}
	h, _, heap, err := StartHypervisor(ctx, f, st)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var cpu time.Duration
	n := 0
	b.ResetTimer()
	for b.Loop() {
		c0 := cpuTime()
		if _, err := h.ApplyTenant(ctx, big.Topology); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		n++
		b.StopTimer()
		if err := h.DeleteTenant(ctx, "big"); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu-ms/op")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
}
