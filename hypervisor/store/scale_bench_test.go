package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// Tenant scale benchmarks of the store (docs/benchmarks.md, "Tenant
// scale"): 1,000 tenants of 10 hosts (2 linked virtual switches) and
// their 10,000 bindings, fsync on (the daemon's setting).

// scaleTopologies returns nt tenants of nh hosts on 2 linked switches.
func scaleTopologies(nt, nh int) []*topology.Topology {
	var ts []*topology.Topology
	for i := 0; i < nt; i++ {
		tp := &topology.Topology{Tenant: fmt.Sprintf("t%05d", i+1), Apps: topology.DefaultApps(),
			Switches: []topology.Switch{{Name: "s1"}, {Name: "s2"}},
			Links:    []topology.Link{{A: topology.Endpoint{Switch: "s1", Port: 100001}, B: topology.Endpoint{Switch: "s2", Port: 100000}}}}
		for h := 0; h < nh; h++ {
			tp.Hosts = append(tp.Hosts, topology.Host{Name: fmt.Sprintf("h%d", h+1), MAC: addr.MACFromUint64(uint64(h + 1)).String(),
				IP: fmt.Sprintf("10.0.0.%d/16", h+1), Switch: fmt.Sprintf("s%d", h%2+1), Port: uint32(h + 1),
				Cloud: fmt.Sprintf("c%02d", h%8+1), VM: fmt.Sprintf("vm%d", h%4+1)})
		}
		ts = append(ts, tp)
	}
	return ts
}

func fileSize(b *testing.B, s *Store) float64 {
	fi, err := os.Stat(s.Path())
	if err != nil {
		b.Fatal(err)
	}
	return float64(fi.Size())
}

// BenchmarkScalePutTenants stores 1,000 tenants of 10 hosts in one
// transaction into an empty store (a fresh file each iteration), and
// reports the file size.
func BenchmarkScalePutTenants(b *testing.B) {
	ts := scaleTopologies(1000, 10)
	dir := b.TempDir()
	var size float64
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		s, err := Open(filepath.Join(dir, fmt.Sprintf("s%d.db", i)))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.PutTenants(ts); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		size = fileSize(b, s)
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(size, "file-bytes")
}

// scaleStore returns a store holding 1,000 tenants of 10 hosts and a
// binding for every host.
func scaleStore(b *testing.B) *Store {
	s, err := Open(filepath.Join(b.TempDir(), "scale.db"), WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ts := scaleTopologies(1000, 10)
	if _, err := s.PutTenants(ts); err != nil {
		b.Fatal(err)
	}
	for _, t := range ts {
		for j, h := range t.Hosts {
			if err := s.PutBinding(Binding{IfaceID: topology.IfaceID(t.Tenant, h.Name), Site: h.Cloud, VM: h.VM, Bridge: "br-int",
				DPID: topology.DPID(0x100 + j), PortName: "p" + h.Name, OFPort: uint32(j + 1)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s
}

// BenchmarkScaleLoad reads what the hypervisor reads on every
// recomputation: every tenant (with host indices), its topology parsed,
// and every binding, from a store of 1,000 tenants x 10 hosts.
func BenchmarkScaleLoad(b *testing.B) {
	s := scaleStore(b)
	b.ReportAllocs()
	for b.Loop() {
		ts, err := s.ListTenants()
		if err != nil || len(ts) != 1000 {
			b.Fatal(len(ts), err)
		}
		for _, t := range ts {
			if _, err := t.Parse(); err != nil {
				b.Fatal(err)
			}
		}
		bs, err := s.Bindings()
		if err != nil || len(bs) != 10000 {
			b.Fatal(len(bs), err)
		}
	}
	b.ReportMetric(fileSize(b, s), "file-bytes")
}

// BenchmarkScaleApplyOne stores one more tenant of 100 hosts (one
// transaction, fsync on) into a store holding 1,000 tenants x 10 hosts
// and deletes it again (untimed): the store part of an apply.
func BenchmarkScaleApplyOne(b *testing.B) {
	s := scaleStore(b)
	path := s.Path()
	s.Close()
	s, err := Open(path) // fsync on, as the daemon runs
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	big := scaleTopologies(1, 100)[0]
	big.Tenant = "big"
	for b.Loop() {
		if _, err := s.PutTenants([]*topology.Topology{big}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.DeleteTenant("big"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkScalePutBinding stores one binding (one transaction, fsync on)
// into a store holding 1,000 tenants x 10 hosts and their bindings: what
// each port plugged in costs.
func BenchmarkScalePutBinding(b *testing.B) {
	s := scaleStore(b)
	path := s.Path()
	s.Close()
	s, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	i := 0
	for b.Loop() {
		i++
		if err := s.PutBinding(Binding{IfaceID: fmt.Sprintf("t%05d/h%d", i%1000+1, i%10+1), Site: "c01", VM: "vm1", Bridge: "br-int",
			DPID: 0x101, PortName: fmt.Sprintf("p%d", i), OFPort: uint32(i%60000 + 1)}); err != nil {
			b.Fatal(err)
		}
	}
}
