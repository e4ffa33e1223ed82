package scale

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
)

// Options configure Run.
type Options struct {
	// Config sizes the fabric and its tenants.
	Config Config
	// Name labels the results (e.g. "8x4"); "" means "<clouds>x<vms>".
	Name string
	// ApplyHosts and ApplySwitches size the tenant applied on top of the
	// Config's tenants (default 100 hosts on 1 virtual switch,
	// spread round-robin over every edge bridge, so over every cloud);
	// ApplyRuns is how many times it is applied (default 10; each run
	// deletes it again afterwards, untimed). ApplyRuns < 0 skips it.
	ApplyHosts, ApplySwitches, ApplyRuns int
	// Dir holds the bbolt file; "" means a new temporary directory,
	// removed at the end.
	Dir string
	// Progress, if set, gets one line per phase.
	Progress io.Writer
	// SkipFull skips the full-recompute apply (Result.Apply); the real
	// hypervisor's apply (Result.Hypervisor) always runs unless
	// ApplyRuns < 0.
	SkipFull bool
}

// Result holds the figures of one Run. Durations are wall-clock
// milliseconds of the controller's code on one goroutine; heap figures
// are bytes of live Go heap after a forced GC (runtime.MemStats.HeapAlloc).
type Result struct {
	Name   string
	Config Config
	// Hosts is the number of bound hosts (Tenants × HostsPerTenant).
	Hosts int
	// Load1 is the 1-minute load average when the variant started; Commit
	// the commit of the code that measured (runinfo.Commit).
	Load1  float64
	Commit string

	// Build phases (all tenants at once).
	GenerateMS      float64 // synthetic fabric and tenants (not controller work)
	ValidateMS      float64 // topology.Validate against the clouds + pipeline.NewView, every tenant
	StoreTenantsMS  float64 // store.PutTenants of every tenant, one bbolt transaction (fsync on)
	StoreBindingsMS float64 // store.PutBinding of every host, one transaction each (fsync on)
	LoadMS          float64 // store.ListTenants + Bindings, topology parse, views, model
	CompileMS       float64 // pipeline.Compile
	LearningMS      float64 // learning entries of every tenant (LearningEntries)
	FingerprintMS   float64 // Fingerprint of every bridge
	DiffAllMS       float64 // reconcile.Diff of every bridge against its (in sync) table

	// Flow entries.
	Entries        int   // on all bridges
	Edge, Gateway  Stats // entries per edge bridge / per gateway
	TenantEntries  Stats // per edge bridge, tables 10-13 (translated learning entries)
	MaxEdgeBytes   int   // flow-stats reply body of the fullest edge bridge, bytes
	MaxGatewayByte int   // flow-stats reply body of the fullest gateway, bytes

	// Memory and disk.
	HeapBaseBytes    uint64 // live heap before building anything
	HeapStateBytes   uint64 // live heap with model and views loaded (before compiling)
	HeapDesiredBytes uint64 // live heap with model, views and every bridge's desired entries
	// HeapFingerprintBytes adds the fingerprints of every bridge, which
	// the hypervisor keeps beside the desired entries.
	HeapFingerprintBytes uint64
	StoreFileBytes       int64 // bbolt file size after storing tenants and bindings

	// Apply of one more tenant with the Config's tenants present, by a
	// full recompute of the whole fabric (the phases below, with the
	// exported API: what the hypervisor did before it compiled and
	// reconciled incrementally); nil with Options.SkipFull.
	Apply *ApplyResult
	// Hypervisor is the same apply by the real hypervisor
	// (RunHypervisor): what it does now.
	Hypervisor *HypervisorApply
}

// Stats summarizes a set of counts.
type Stats struct {
	N, Min, Median, Max int
	Mean                float64
}

// MakeStats summarizes xs (median: lower middle for an even count).
func MakeStats(xs []int) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	sum := 0
	for _, x := range s {
		sum += x
	}
	return Stats{N: len(s), Min: s[0], Median: s[(len(s)-1)/2], Max: s[len(s)-1], Mean: float64(sum) / float64(len(s))}
}

// ApplyResult is the controller time of applying one tenant of Hosts
// hosts on a fabric that already holds the Config's tenants, and whose
// bridges are in sync with them: validation, store, recomputation of the
// desired state (as the hypervisor does: whole fabric), fingerprints, and
// reconcile.Diff of every bridge whose desired entries changed against its
// flow table before the apply. Median, min and max over Runs runs; the
// phases are medians too (so they need not add up to TotalMS).
type ApplyResult struct {
	Hosts, Switches, Clouds, Runs int
	TotalMS, MinMS, MaxMS         float64
	CPUMS                         float64 // median process CPU time of the same span (user + system, all threads)
	ValidateMS, StoreMS, LoadMS   float64
	CompileMS, LearningMS         float64
	FingerprintMS, DiffMS         float64
	// ScopedDiffMS is NOT what the hypervisor does today: the median time
	// of reconcile.Diff on the changed bridges restricted to the applied
	// tenant's entries (cookie InfraCookie(t, ·) or TenantCookie(t, ·)) on
	// both sides, i.e. what an incremental, cookie-scoped reconcile would
	// cost. ScopedAdded is its adds (equal to AddedEntries when every
	// change is the tenant's own).
	ScopedDiffMS float64
	ScopedAdded  int
	// AffectedBridges are the bridges whose desired entries changed;
	// AddedEntries the adds of their reconcile plans (summed), Deleted the
	// deletes (0 expected).
	AffectedBridges, AddedEntries, DeletedEntries int
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// state is the desired state loaded from the store, as the hypervisor
// keeps it.
type state struct {
	model *pipeline.Model
	views map[string]*pipeline.View
}

// load reads every tenant and binding from st and builds the model the
// way the hypervisor's loadState does (bindings of unknown tenants or
// hosts are left out; sorted by iface-id).
func load(st *store.Store, f *Fabric) (*state, error) {
	tenants, err := st.ListTenants()
	if err != nil {
		return nil, err
	}
	binds, err := st.Bindings()
	if err != nil {
		return nil, err
	}
	s := &state{model: &pipeline.Model{Sites: f.Sites, Tree: f.Tree}, views: make(map[string]*pipeline.View, len(tenants))}
	for _, t := range tenants {
		tp, err := t.Parse()
		if err != nil {
			return nil, err
		}
		pt := pipeline.Tenant{ID: t.ID, Topology: tp, Hosts: t.Hosts}
		v, err := pipeline.NewView(pt)
		if err != nil {
			return nil, fmt.Errorf("tenant %q: %w", t.Name, err)
		}
		s.views[t.Name] = v
		s.model.Tenants = append(s.model.Tenants, pt)
	}
	for _, b := range binds { // sorted by iface-id
		tn, hn, ok := topology.SplitIfaceID(b.IfaceID)
		v := s.views[tn]
		if !ok || v == nil || b.OFPort == 0 {
			continue
		}
		if _, ok := v.HostByName(hn); !ok {
			continue
		}
		s.model.Bindings = append(s.model.Bindings, pipeline.Binding{Tenant: tn, Host: hn, Bridge: pipeline.DPID(b.DPID), Port: b.OFPort})
	}
	return s, nil
}

// validate checks ts as the hypervisor's apply does: topology.Validate
// against the clouds and VMs, and pipeline.NewView with provisional host
// indices (the pipeline's own limits).
func validate(ts []*topology.Topology, infra topology.Infra) error {
	for _, t := range ts {
		if err := topology.Validate(t, infra); err != nil {
			return err
		}
		hosts := make(map[string]addr.HostIndex, len(t.Hosts))
		for j, h := range t.Hosts {
			hosts[h.Name] = addr.HostIndex(j + 1)
		}
		if _, err := pipeline.NewView(pipeline.Tenant{ID: addr.FirstTenantID, Topology: t, Hosts: hosts}); err != nil {
			return fmt.Errorf("tenant %q: %w", t.Tenant, err)
		}
	}
	return nil
}

// putBindings stores where every host of ts is plugged in, one
// transaction per binding as the hypervisor's OVSDB watcher does.
func putBindings(st *store.Store, f *Fabric, ts []Tenant) error {
	for _, t := range ts {
		for _, b := range t.Bindings {
			e := slices.Index(f.EdgeDPIDs, b.Bridge)
			cloud, vm := e/f.Config.VMsPerCloud, e%f.Config.VMsPerCloud
			err := st.PutBinding(store.Binding{IfaceID: topology.IfaceID(b.Tenant, b.Host), Site: CloudName(cloud), VM: VMName(vm),
				Bridge: "br-int", DPID: topology.DPID(b.Bridge), PortName: fmt.Sprintf("p%d", b.Port), OFPort: b.Port})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// AsFlowStats returns what a switch holding exactly es reports in a
// flow-stats reply: es encoded with ofwire.AppendFlowStats and decoded
// with ofwire.DecodeFlowStats (the controller's own codec), and the size
// of the encoded reply body in bytes.
func AsFlowStats(es []pipeline.Entry) ([]ofwire.FlowStats, int, error) {
	var b []byte
	for i := range es {
		e := &es[i]
		fs := ofwire.FlowStats{Table: ofp.Table(e.Table), Priority: e.Priority, Cookie: e.Cookie, IdleTimeout: e.IdleTimeout,
			HardTimeout: e.HardTimeout, Flags: e.Flags, Match: e.FlowMod().Match, Instructions: e.Instructions}
		var err error
		if b, err = ofwire.AppendFlowStats(b, &fs); err != nil {
			return nil, 0, fmt.Errorf("entry %s: %w", e.String(), err)
		}
	}
	out, err := ofwire.DecodeFlowStats(b)
	if err != nil {
		return nil, 0, err
	}
	return out, len(b), nil
}

// Run builds the fabric and tenants of opt.Config, measures every phase
// and, unless opt.ApplyRuns < 0, the apply of one more tenant. It stops
// early when ctx is done.
func Run(ctx context.Context, opt Options) (*Result, error) {
	cfg := opt.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.ApplyHosts == 0 {
		opt.ApplyHosts = 100
	}
	if opt.ApplySwitches == 0 {
		opt.ApplySwitches = 1
	}
	if opt.ApplyRuns == 0 {
		opt.ApplyRuns = 10
	}
	if opt.Name == "" {
		opt.Name = fmt.Sprintf("%dx%d", cfg.Clouds, cfg.VMsPerCloud)
	}
	progress := func(format string, args ...any) {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "scale %s: "+format+"\n", append([]any{opt.Name}, args...)...)
		}
	}
	dir := opt.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "skyscale-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	r := &Result{Name: opt.Name, Config: cfg, Hosts: cfg.Tenants * cfg.HostsPerTenant, Load1: runinfo.Load1(), Commit: runinfo.Commit()}
	r.HeapBaseBytes = liveHeap()

	t0 := time.Now()
	f, err := NewFabric(cfg)
	if err != nil {
		return nil, err
	}
	tenants, err := f.Tenants()
	if err != nil {
		return nil, err
	}
	tops := make([]*topology.Topology, len(tenants))
	for i := range tenants {
		tops[i] = tenants[i].Topology
	}
	r.GenerateMS = ms(time.Since(t0))
	progress("generated %d clouds x %d VMs, %d tenants x %d hosts (%d switches each): %.1f ms",
		cfg.Clouds, cfg.VMsPerCloud, cfg.Tenants, cfg.HostsPerTenant, cfg.SwitchesPerTenant, r.GenerateMS)

	t0 = time.Now()
	if err := validate(tops, f.Infra); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	r.ValidateMS = ms(time.Since(t0))
	progress("validated %d tenants: %.1f ms", len(tops), r.ValidateMS)

	st, err := store.Open(filepath.Join(dir, "skyvisor.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	t0 = time.Now()
	if len(tops) > 0 {
		if _, err := st.PutTenants(tops); err != nil {
			return nil, err
		}
	}
	r.StoreTenantsMS = ms(time.Since(t0))
	progress("stored %d tenants (one transaction): %.1f ms", len(tops), r.StoreTenantsMS)
	t0 = time.Now()
	if err := putBindings(st, f, tenants); err != nil {
		return nil, err
	}
	r.StoreBindingsMS = ms(time.Since(t0))
	progress("stored %d bindings (one transaction each): %.1f ms", r.Hosts, r.StoreBindingsMS)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tenants, tops = nil, nil // the controller keeps only what it loads

	t0 = time.Now()
	s, err := load(st, f)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	r.LoadMS = ms(time.Since(t0))
	progress("loaded %d tenants and %d bindings from the store: %.1f ms", len(s.model.Tenants), len(s.model.Bindings), r.LoadMS)
	r.HeapStateBytes = liveHeap()

	t0 = time.Now()
	desired, err := pipeline.Compile(s.model)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	r.CompileMS = ms(time.Since(t0))
	progress("compiled the hypervisor's tables of %d bridges: %.1f ms", len(desired), r.CompileMS)
	t0 = time.Now()
	if err := AddLearning(desired, s.model, s.views); err != nil {
		return nil, err
	}
	r.LearningMS = ms(time.Since(t0))
	progress("translated the learning entries of %d tenants: %.1f ms", len(s.model.Tenants), r.LearningMS)
	r.HeapDesiredBytes = liveHeap()
	runtime.KeepAlive(s)
	t0 = time.Now()
	fps := make(map[pipeline.DPID]string, len(desired))
	for d, es := range desired {
		if fps[d], err = Fingerprint(es); err != nil {
			return nil, err
		}
	}
	r.FingerprintMS = ms(time.Since(t0))
	progress("fingerprinted %d bridges: %.1f ms", len(desired), r.FingerprintMS)
	r.HeapFingerprintBytes = liveHeap()
	runtime.KeepAlive(s)

	gateways := map[pipeline.DPID]bool{}
	for _, site := range f.Sites {
		gateways[site.Gateway.DPID] = true
	}
	var edgeN, gwN, tenN []int
	for d, es := range desired {
		r.Entries += len(es)
		if gateways[d] {
			gwN = append(gwN, len(es))
			continue
		}
		edgeN = append(edgeN, len(es))
		n := 0
		for i := range es {
			if es[i].Table >= pipeline.TableTenant && es[i].Table < pipeline.TableTenant+pipeline.NumTenantTables && es[i].Priority > 0 {
				n++
			}
		}
		tenN = append(tenN, n)
	}
	r.Edge, r.Gateway, r.TenantEntries = MakeStats(edgeN), MakeStats(gwN), MakeStats(tenN)
	progress("%d flow entries: per edge bridge min/median/max %d/%d/%d, per gateway %d/%d/%d",
		r.Entries, r.Edge.Min, r.Edge.Median, r.Edge.Max, r.Gateway.Min, r.Gateway.Median, r.Gateway.Max)
	progress("live Go heap: %.1f MiB at start, %.1f MiB with tenants loaded, %.1f MiB with every bridge's entries, %.1f MiB with their fingerprints",
		mib(r.HeapBaseBytes), mib(r.HeapStateBytes), mib(r.HeapDesiredBytes), mib(r.HeapFingerprintBytes))

	// The bridges' flow tables, in sync with desired.
	actual := make(map[pipeline.DPID][]ofwire.FlowStats, len(desired))
	for d, es := range desired {
		fs, n, err := AsFlowStats(es)
		if err != nil {
			return nil, fmt.Errorf("bridge %s: %w", d, err)
		}
		actual[d] = fs
		if gateways[d] {
			r.MaxGatewayByte = max(r.MaxGatewayByte, n)
		} else {
			r.MaxEdgeBytes = max(r.MaxEdgeBytes, n)
		}
	}
	t0 = time.Now()
	for d, es := range desired {
		p, err := reconcile.Diff(es, actual[d], reconcile.Options{})
		if err != nil {
			return nil, fmt.Errorf("bridge %s: %w", d, err)
		}
		if !p.Empty() {
			return nil, fmt.Errorf("bridge %s: in-sync table gives %d adds, %d deletes", d, len(p.Add), len(p.Delete))
		}
	}
	r.DiffAllMS = ms(time.Since(t0))
	progress("reconcile diff of all %d bridges (in sync, empty plans): %.1f ms", len(desired), r.DiffAllMS)
	if fi, err := os.Stat(st.Path()); err == nil {
		r.StoreFileBytes = fi.Size()
	}
	if opt.ApplyRuns < 0 {
		return r, nil
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	desired, s = nil, nil
	big, err := f.AddTenant("big", opt.ApplyHosts, opt.ApplySwitches)
	if err != nil {
		return r, err
	}
	// Its ports are plugged in already (OVSDB reports them before the
	// tenant is submitted); the store keeps such bindings.
	if err := putBindings(st, f, []Tenant{big}); err != nil {
		return r, err
	}
	if !opt.SkipFull {
		a, err := apply(ctx, opt, f, st, big, fps, actual, progress)
		if err != nil {
			return r, fmt.Errorf("apply: %w", err)
		}
		r.Apply = a
	}
	fps, actual = nil, nil
	hv, err := RunHypervisor(ctx, f, st, big, opt.ApplyRuns, progress)
	r.Hypervisor = hv
	if err != nil {
		return r, fmt.Errorf("hypervisor apply: %w", err)
	}
	return r, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// apply measures opt.ApplyRuns applies of one more tenant.
func apply(ctx context.Context, opt Options, f *Fabric, st *store.Store, big Tenant, fps map[pipeline.DPID]string,
	actual map[pipeline.DPID][]ofwire.FlowStats, progress func(string, ...any)) (*ApplyResult, error) {
	clouds := map[string]bool{}
	for _, h := range big.Topology.Hosts {
		clouds[h.Cloud] = true
	}
	a := &ApplyResult{Hosts: opt.ApplyHosts, Switches: opt.ApplySwitches, Clouds: len(clouds), Runs: opt.ApplyRuns}
	var total, cpu, val, sto, lo, co, le, fp, di, sd []float64
	for run := 0; run < opt.ApplyRuns; run++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		runtime.GC() // do not bill the previous run's garbage to this one
		c0, start := cpuTime(), time.Now()
		t0 := start
		// The REST layer parses the JSON; the hypervisor gets a topology.
		if err := validate([]*topology.Topology{big.Topology}, f.Infra); err != nil {
			return nil, err
		}
		val = append(val, ms(time.Since(t0)))
		t0 = time.Now()
		recs, err := st.PutTenants([]*topology.Topology{big.Topology})
		if err != nil {
			return nil, err
		}
		id := recs[0].ID
		sto = append(sto, ms(time.Since(t0)))
		t0 = time.Now()
		s, err := load(st, f)
		if err != nil {
			return nil, err
		}
		lo = append(lo, ms(time.Since(t0)))
		t0 = time.Now()
		desired, err := pipeline.Compile(s.model)
		if err != nil {
			return nil, err
		}
		co = append(co, ms(time.Since(t0)))
		t0 = time.Now()
		if err := AddLearning(desired, s.model, s.views); err != nil {
			return nil, err
		}
		le = append(le, ms(time.Since(t0)))
		t0 = time.Now()
		var changed []pipeline.DPID
		for d, es := range desired {
			x, err := Fingerprint(es)
			if err != nil {
				return nil, err
			}
			if x != fps[d] {
				changed = append(changed, d)
			}
		}
		fp = append(fp, ms(time.Since(t0)))
		t0 = time.Now()
		added, deleted := 0, 0
		for _, d := range changed {
			p, err := reconcile.Diff(desired[d], actual[d], reconcile.Options{})
			if err != nil {
				return nil, err
			}
			added += len(p.Add)
			deleted += len(p.Delete)
		}
		di = append(di, ms(time.Since(t0)))
		total = append(total, ms(time.Since(start)))
		cpu = append(cpu, ms(cpuTime()-c0))
		t0 = time.Now()
		scopedAdded := 0
		for _, d := range changed {
			p, err := reconcile.Diff(OfTenant(desired[d], id), OfTenantStats(actual[d], id), reconcile.Options{})
			if err != nil {
				return nil, err
			}
			scopedAdded += len(p.Add)
		}
		sd = append(sd, ms(time.Since(t0)))
		a.ScopedAdded = scopedAdded
		a.AffectedBridges, a.AddedEntries, a.DeletedEntries = len(changed), added, deleted
		progress("apply run %d/%d: %d-host tenant over %d clouds: %.1f ms (%d bridges changed, %d adds, %d deletes)",
			run+1, opt.ApplyRuns, a.Hosts, a.Clouds, total[len(total)-1], len(changed), added, deleted)
		if err := st.DeleteTenant(big.Topology.Tenant); err != nil {
			return nil, err
		}
	}
	med := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[(len(s)-1)/2]
	}
	a.TotalMS, a.MinMS, a.MaxMS, a.CPUMS = med(total), slices.Min(total), slices.Max(total), med(cpu)
	a.ValidateMS, a.StoreMS, a.LoadMS, a.CompileMS = med(val), med(sto), med(lo), med(co)
	a.LearningMS, a.FingerprintMS, a.DiffMS, a.ScopedDiffMS = med(le), med(fp), med(di), med(sd)
	progress("apply (full recompute): median %.1f ms of controller time (CPU %.1f ms) over %d runs (min %.1f, max %.1f); a diff scoped to the tenant's cookies would take %.1f ms",
		a.TotalMS, a.CPUMS, a.Runs, a.MinMS, a.MaxMS, a.ScopedDiffMS)
	return a, nil
}

// tenantOf returns the tenant an owned cookie belongs to: the tenant field
// of a hypervisor cookie (0 for shared entries), or the top 16 bits of a
// tenant app's cookie.
func tenantOf(c uint64) addr.TenantID {
	if pipeline.IsInfraCookie(c) {
		return addr.TenantID(c >> 32)
	}
	return addr.TenantID(c >> 48)
}

// OfTenant returns the entries of es that belong to tenant id by cookie
// (pipeline.InfraCookie(id, ·) or pipeline.TenantCookie(id, ·)).
func OfTenant(es []pipeline.Entry, id addr.TenantID) []pipeline.Entry {
	var out []pipeline.Entry
	for i := range es {
		if tenantOf(es[i].Cookie) == id {
			out = append(out, es[i])
		}
	}
	return out
}

// OfTenantStats is OfTenant for a flow table.
func OfTenantStats(fs []ofwire.FlowStats, id addr.TenantID) []ofwire.FlowStats {
	var out []ofwire.FlowStats
	for i := range fs {
		if tenantOf(fs[i].Cookie) == id {
			out = append(out, fs[i])
		}
	}
	return out
}
