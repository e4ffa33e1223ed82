package scale

import (
	"bytes"
	"context"
	"encoding/csv"
	"reflect"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

func small() Config {
	return Config{Clouds: 3, VMsPerCloud: 2, Tenants: 5, HostsPerTenant: 4, SwitchesPerTenant: 2}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Clouds = 0 }, "clouds 0"},
		{func(c *Config) { c.VMsPerCloud = 251 }, "VMs per cloud 251"},
		{func(c *Config) { c.Tenants = 16385 }, "tenants 16385"},
		{func(c *Config) { c.HostsPerTenant = 0 }, "hosts per tenant 0"},
		{func(c *Config) { c.SwitchesPerTenant = 5 }, "switches per tenant 5"},
	} {
		cfg := small()
		c.mut(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", cfg, err, c.want)
		}
		if _, err := NewFabric(cfg); err == nil {
			t.Errorf("%+v: NewFabric accepted it", cfg)
		}
	}
}

func TestFabricTenantsValidAndCompile(t *testing.T) {
	f, err := NewFabric(small())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sites) != 3 || len(f.EdgeDPIDs) != 6 || len(f.Tree.Tunnels) != 2 {
		t.Fatalf("sites %d edges %d tunnels %v", len(f.Sites), len(f.EdgeDPIDs), f.Tree.Tunnels)
	}
	if err := f.Tree.IsSpanningTree(); err != nil {
		t.Fatal(err)
	}
	ts, err := f.Tenants()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 5 {
		t.Fatalf("%d tenants", len(ts))
	}
	var tops []*topology.Topology
	ports := map[[2]uint64]bool{}
	for _, tn := range ts {
		if err := topology.Validate(tn.Topology, f.Infra); err != nil {
			t.Fatalf("%s: %v", tn.Topology.Tenant, err)
		}
		if len(tn.Topology.Hosts) != 4 || len(tn.Topology.Switches) != 2 || len(tn.Topology.Links) != 1 || len(tn.Bindings) != 4 {
			t.Fatalf("%s: %+v", tn.Topology.Tenant, tn)
		}
		bridges := map[pipeline.DPID]bool{}
		for i, b := range tn.Bindings {
			k := [2]uint64{uint64(b.Bridge), uint64(b.Port)}
			if ports[k] {
				t.Fatalf("port %v bound twice", k)
			}
			ports[k] = true
			bridges[b.Bridge] = true
			h := tn.Topology.Hosts[i]
			e := -1
			for j, d := range f.EdgeDPIDs {
				if d == b.Bridge {
					e = j
				}
			}
			if h.Cloud != CloudName(e/2) || h.VM != VMName(e%2) {
				t.Fatalf("host %s in %s/%s but bound on edge %d", h.Name, h.Cloud, h.VM, e)
			}
		}
		if len(bridges) != 4 {
			t.Fatalf("%s: hosts on %d bridges, want 4 (round-robin)", tn.Topology.Tenant, len(bridges))
		}
		tops = append(tops, tn.Topology)
	}
	// The hypervisor's checks pass, and the model compiles.
	if err := validate(tops, f.Infra); err != nil {
		t.Fatal(err)
	}
	// Hosts beyond a bridge's port range are refused, not wrapped.
	f.next[f.EdgeDPIDs[f.placed%len(f.EdgeDPIDs)]] = Uplink
	if _, err := f.AddTenant("full", 1, 1); err == nil || !strings.Contains(err.Error(), "no free host port") {
		t.Fatalf("full bridge: %v", err)
	}
	if _, err := f.AddTenant("bad", 2, 3); err == nil {
		t.Fatal("3 switches for 2 hosts accepted")
	}
}

func TestFabricDeterministic(t *testing.T) {
	build := func() ([]Tenant, *Fabric) {
		f, err := NewFabric(small())
		if err != nil {
			t.Fatal(err)
		}
		ts, err := f.Tenants()
		if err != nil {
			t.Fatal(err)
		}
		return ts, f
	}
	a, fa := build()
	b, fb := build()
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(fa.Sites, fb.Sites) || !reflect.DeepEqual(fa.Tree, fb.Tree) {
		t.Fatal("two builds of the same config differ")
	}
}

// TestLearningCounts pins the number of entries the learning app costs,
// so that a change of the translation shows up here before in the
// figures: one switch of 4 hosts: 4 unicast entries + the broadcast FLOOD
// expanded into one variant per in-port (4); two linked switches of 2
// hosts each: per switch 2 local + 2 remote (via the link, expanded per
// in-port: 3 ports) x 3 + FLOOD 3 = 11.
func TestLearningCounts(t *testing.T) {
	for _, c := range []struct {
		switches, want int
	}{{1, 8}, {2, 22}} {
		cfg := Config{Clouds: 1, VMsPerCloud: 1, Tenants: 1, HostsPerTenant: 4, SwitchesPerTenant: c.switches}
		f, err := NewFabric(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := f.Tenants()
		if err != nil {
			t.Fatal(err)
		}
		m, views, err := f.Model(ts)
		if err != nil {
			t.Fatal(err)
		}
		es, err := LearningEntries(views[ts[0].Topology.Tenant], m.Bindings)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(es[f.EdgeDPIDs[0]]); n != c.want {
			t.Errorf("%d switches: %d learning entries, want %d", c.switches, n, c.want)
		}
		d, err := Desired(m, views)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != 2 {
			t.Fatalf("%d bridges", len(d))
		}
	}
}

func TestRunSmall(t *testing.T) {
	var progress bytes.Buffer
	r, err := Run(context.Background(), Options{Config: small(), ApplyHosts: 6, ApplySwitches: 2, ApplyRuns: 2, Dir: t.TempDir(), Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "3x2" || r.Hosts != 20 || r.Edge.N != 6 || r.Gateway.N != 3 || r.Entries == 0 || r.StoreFileBytes == 0 {
		t.Fatalf("%+v", r)
	}
	if r.Edge.Min > r.Edge.Median || r.Edge.Median > r.Edge.Max || r.TenantEntries.Max > r.Edge.Max {
		t.Fatalf("stats out of order: %+v %+v", r.Edge, r.TenantEntries)
	}
	if r.HeapDesiredBytes == 0 || r.MaxEdgeBytes == 0 {
		t.Fatalf("%+v", r)
	}
	a := r.Apply
	if a == nil || a.Runs != 2 || a.Clouds != 3 || a.AffectedBridges == 0 || a.AddedEntries == 0 || a.DeletedEntries != 0 || a.MinMS > a.TotalMS || a.TotalMS > a.MaxMS ||
		a.ScopedAdded != a.AddedEntries {
		t.Fatalf("apply: %+v", a)
	}
	// The real hypervisor holds the same entries as the phases computed,
	// sends the same adds, incrementally, and leaves every switch in sync.
	hv := r.Hypervisor
	if hv == nil || hv.Runs != 2 || hv.Entries != r.Entries || hv.AddedEntries != a.AddedEntries || hv.DeletedEntries != 0 ||
		hv.ChangedSwitches != a.AffectedBridges || hv.FlowStatsReads != 0 || hv.AuditChanges != 0 || hv.MinMS > hv.ApplyMS || hv.ApplyMS > hv.MaxMS {
		t.Fatalf("hypervisor apply: %+v (phases: %d entries, apply %+v)", hv, r.Entries, a)
	}
	for _, want := range []string{"scale 3x2: validated 5 tenants", "stored 20 bindings", "apply run 2/2: 6-host tenant over 3 clouds",
		"hypervisor run 2/2: ApplyTenant"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	if _, err := Run(context.Background(), Options{Config: Config{}}); err == nil {
		t.Fatal("zero config accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{Config: small(), Dir: t.TempDir()}); err == nil {
		t.Fatal("cancelled context: no error")
	}
}

func TestMakeStats(t *testing.T) {
	if s := MakeStats([]int{5, 1, 3, 2}); s != (Stats{N: 4, Min: 1, Median: 2, Max: 5, Mean: 2.75}) {
		t.Fatalf("%+v", s)
	}
	if s := MakeStats(nil); s != (Stats{}) {
		t.Fatalf("%+v", s)
	}
}

func TestWriteCSV(t *testing.T) {
	r := &Result{Name: "8x4-s1", Config: DefaultConfig(), Hosts: 10000, CompileMS: 12.5, Entries: 42, Load1: 4.25, Commit: "abc1234",
		Edge: Stats{Min: 1, Median: 2, Max: 3}, Apply: &ApplyResult{Hosts: 100, TotalMS: 0.25}}
	var b bytes.Buffer
	if err := WriteCSV(&b, []*Result{r, {Name: "x", Config: small()}}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(recs[0], csvHeader) {
		t.Fatalf("header %v", recs[0])
	}
	if len(recs) != 1+len(r.Rows())+len((&Result{}).Rows()) {
		t.Fatalf("%d records", len(recs))
	}
	find := func(variant, metric string) []string {
		for _, rec := range recs[1:] {
			if rec[0] == variant && rec[6] == metric {
				return rec
			}
		}
		t.Fatalf("no %s %s", variant, metric)
		return nil
	}
	if got := find("8x4-s1", "compile_ms"); !reflect.DeepEqual(got, []string{"8x4-s1", "8", "4", "1000", "10", "2", "compile_ms", "12.5", "ms", "4.25", "abc1234"}) {
		t.Fatalf("%v", got)
	}
	if got := find("8x4-s1", "apply_total_median_ms"); got[7] != "0.25" {
		t.Fatalf("%v", got)
	}
	if got := find("8x4-s1", "edge_entries_max"); got[7] != "3" || got[8] != "entries" {
		t.Fatalf("%v", got)
	}
	for _, rec := range recs[1:] {
		if rec[0] == "x" && strings.HasPrefix(rec[6], "apply_") {
			t.Fatalf("variant without apply has %v", rec)
		}
	}
}

func TestOfTenant(t *testing.T) {
	const id = addr.TenantID(0x0201)
	es := []pipeline.Entry{
		{Cookie: pipeline.InfraCookie(0, 0)},
		{Cookie: pipeline.InfraCookie(id, 3)},
		{Cookie: pipeline.InfraCookie(id, 0)},
		{Cookie: pipeline.InfraCookie(0x0200, 3)},
		{Cookie: pipeline.TenantCookie(id, 0x42)},
		{Cookie: pipeline.TenantCookie(0x0200, 0x42)},
		{Cookie: 0},
	}
	got := OfTenant(es, id)
	if len(got) != 3 || got[0].Cookie != es[1].Cookie || got[1].Cookie != es[2].Cookie || got[2].Cookie != es[4].Cookie {
		t.Fatalf("%+v", got)
	}
	fs, _, err := AsFlowStats(es)
	if err != nil {
		t.Fatal(err)
	}
	if got := OfTenantStats(fs, id); len(got) != 3 || got[2].Cookie != es[4].Cookie {
		t.Fatalf("%+v", got)
	}
}
