package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// HypervisorApply is the controller time of the real hypervisor
// (hypervisor.Hypervisor, this tree's code) applying one more tenant on
// the fabric: ApplyTenant end to end — validation, store transaction
// (fsync on), desired-state computation, reconcile of the changed
// switches (flow-mods and barrier sent to in-memory switches), the status
// reply — and DeleteTenant of it again. Switches and OVSDB are in memory
// (MemSwitch, no network); everything else is production code.
type HypervisorApply struct {
	Hosts, Switches, Runs int
	// SetupMS is New (the first full computation of the desired state
	// from the store) plus Converge (tunnels) plus every switch's first
	// reconcile (SwitchUp: flow-table read, every entry added).
	SetupMS float64
	// HeapBytes is the live Go heap with the hypervisor set up, before
	// the switches connect (the switches' tables are not counted).
	HeapBytes uint64
	// Entries are the flow entries of all switches after setup; they
	// equal the phases' Entries (same fabric, same tenants).
	Entries int
	// ApplyMS, MinMS, MaxMS: median, min and max of ApplyTenant; DeleteMS
	// the median of DeleteTenant.
	ApplyMS, MinMS, MaxMS, DeleteMS float64
	// ApplyCPUMS and DeleteCPUMS are the medians of the process's CPU
	// time (user + system, every thread: the garbage collector's too,
	// getrusage(2) RUSAGE_SELF) over the same calls: on a loaded machine
	// the wall-clock figures include time spent waiting for a CPU, these
	// do not.
	ApplyCPUMS, DeleteCPUMS float64
	// AddedEntries and DeletedEntries are the flow-mods one apply sent
	// (adds, strict deletes); ChangedSwitches the switches it sent them
	// to; FlowStatsReads the flow-table reads during the applies (0: the
	// reconcile is incremental).
	AddedEntries, DeletedEntries, ChangedSwitches, FlowStatsReads int
	// AuditMS is one full reconcile of every switch afterwards (Resync:
	// flow-table read and diff, as the periodic audit does); AuditChanges
	// its adds + deletes (0: the incremental applies left every table
	// exactly as desired).
	AuditMS      float64
	AuditChanges int
}

// HypervisorInfra returns the fabric as the hypervisor's infrastructure: per cloud
// a site (OVSDB "unix:/nonexistent/<cloud>.sock", never dialed by
// RunHypervisor), its gateway "gw" and VM bridges "vm1"… with the
// Fabric's DPIDs and ports (uplink Uplink, gateway downlink v+1), and
// costs |i-j| so the hypervisor's tunnel tree is the Fabric's Tree.
func (f *Fabric) HypervisorInfra() *infra.Infra {
	inf := &infra.Infra{Name: "scale", Controller: infra.ControllerNone}
	for c, s := range f.Sites {
		site := infra.Site{Name: s.Name, OVSDB: fmt.Sprintf("unix:/nonexistent/%s.sock", s.Name),
			UnderlayIP: fmt.Sprintf("192.0.2.%d", c+1), GatewayBridge: "gw", GatewayDPID: uint64(s.Gateway.DPID)}
		gw := infra.Switch{Site: s.Name, Role: infra.RoleGateway, Bridge: "gw", DPID: uint64(s.Gateway.DPID)}
		for v, e := range s.Edges {
			vm := VMName(v)
			site.VMs = append(site.VMs, vm)
			gw.PatchPorts = append(gw.PatchPorts, infra.PatchPort{Name: "gw-" + vm, OFPort: int(s.Gateway.Downlinks[e.DPID]), Peer: vm + "-gw", PeerBridge: vm})
			inf.Switches = append(inf.Switches, infra.Switch{Site: s.Name, Role: infra.RoleVM, VM: vm, Bridge: vm, DPID: uint64(e.DPID),
				PatchPorts: []infra.PatchPort{{Name: vm + "-gw", OFPort: int(e.Uplink), Peer: "gw-" + vm, PeerBridge: "gw"}}})
		}
		inf.Switches = append(inf.Switches, gw)
		inf.Sites = append(inf.Sites, site)
		for d := 0; d < c; d++ {
			inf.Costs = append(inf.Costs, infra.Cost{A: CloudName(d), B: s.Name, RTTMS: float64(c - d)})
		}
	}
	return inf
}

// memOVSDB is an in-memory hypervisor.OVSDB: bridges accepted, tunnel
// ports kept (with the OpenFlow port requested), no interfaces (bindings
// are in the store already; RunHypervisor does not start Run, so nothing
// watches interfaces).
type memOVSDB struct {
	mu      sync.Mutex
	tunnels map[string]map[string]ovsdb.TunnelPort
}

func (m *memOVSDB) EnsureBridge(context.Context, ovsdb.BridgeSpec) error { return nil }

func (m *memOVSDB) EnsureTunnelPort(_ context.Context, bridge string, p ovsdb.TunnelPort) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tunnels[bridge] == nil {
		m.tunnels[bridge] = map[string]ovsdb.TunnelPort{}
	}
	m.tunnels[bridge][p.Name] = p
	return nil
}

func (m *memOVSDB) DeleteTunnelPort(_ context.Context, bridge, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tunnels[bridge], name)
	return nil
}

func (m *memOVSDB) TunnelPorts(_ context.Context, bridge string) ([]ovsdb.TunnelPort, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ovsdb.TunnelPort
	for _, n := range slices.Sorted(maps.Keys(m.tunnels[bridge])) {
		out = append(out, m.tunnels[bridge][n])
	}
	return out, nil
}

func (m *memOVSDB) Interfaces(context.Context, string) ([]ovsdb.Interface, error) { return nil, nil }

func (m *memOVSDB) WatchInterfaces(ctx context.Context, _ string) (<-chan ovsdb.InterfaceEvent, error) {
	ch := make(chan ovsdb.InterfaceEvent)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

func (m *memOVSDB) Connected() bool      { return true }
func (m *memOVSDB) Transactions() uint64 { return 0 }
func (m *memOVSDB) Close()               {}

// MemSwitch is an in-memory controller.Switch for the hypervisor: flow-mods
// are queued as they arrive (cheap, so the controller's time is what is
// measured) and applied to the table with OpenFlow 1.3's semantics (ADD
// replaces the entry with the same table, priority and match; strict
// delete removes it if the cookie matches under the mask) when the table
// is read (FlowStats, Table). Other messages are accepted and dropped.
type MemSwitch struct {
	dpid    controller.DPID
	done    chan struct{}
	mu      sync.Mutex
	pending []*ofp.FlowMod
	table   map[string]pipeline.Entry
	reads   int
	adds    int
	deletes int
}

// NewMemSwitch returns an empty switch with datapath ID dpid.
func NewMemSwitch(dpid uint64) *MemSwitch {
	return &MemSwitch{dpid: controller.DPID(dpid), done: make(chan struct{}), table: map[string]pipeline.Entry{}}
}

func (s *MemSwitch) DPID() controller.DPID                           { return s.dpid }
func (s *MemSwitch) NTables() uint8                                  { return 254 }
func (s *MemSwitch) Ports() []ofp.Port                               { return nil }
func (s *MemSwitch) Port(ofp.PortNo) (ofp.Port, bool)                { return ofp.Port{}, false }
func (s *MemSwitch) Logger() *slog.Logger                            { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (s *MemSwitch) Done() <-chan struct{}                           { return s.done }
func (s *MemSwitch) String() string                                  { return "mem " + s.dpid.String() }
func (s *MemSwitch) GroupMod(context.Context, *ofp.GroupMod) error   { return nil }
func (s *MemSwitch) MeterMod(context.Context, *ofp.MeterMod) error   { return nil }
func (s *MemSwitch) PacketOut(context.Context, *ofp.PacketOut) error { return nil }
func (s *MemSwitch) Barrier(context.Context) error                   { return nil }

// PortDesc, GroupDesc and MeterConfig report an empty switch; Multipart
// is not simulated (errors.ErrUnsupported).
func (s *MemSwitch) PortDesc(context.Context) ([]ofp.Port, error) { return nil, nil }
func (s *MemSwitch) GroupDesc(context.Context) ([]controller.GroupDesc, error) {
	return nil, nil
}
func (s *MemSwitch) MeterConfig(context.Context) ([]controller.MeterConfig, error) {
	return nil, nil
}
func (s *MemSwitch) Multipart(_ context.Context, t ofp.MultipartType, _ io.WriterTo) ([]byte, error) {
	return nil, fmt.Errorf("memswitch: multipart %s: %w", t, errors.ErrUnsupported)
}

// FlowMod queues fm; commands other than ADD and DELETE_STRICT fail.
func (s *MemSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	if fm.Command != ofp.FlowAdd && fm.Command != ofp.FlowDeleteStrict {
		return fmt.Errorf("memswitch: flow-mod command %d not simulated", fm.Command)
	}
	s.mu.Lock()
	s.pending = append(s.pending, fm)
	if fm.Command == ofp.FlowAdd {
		s.adds++
	} else {
		s.deletes++
	}
	s.mu.Unlock()
	return nil
}

// applyLocked applies the queued flow-mods (s.mu held).
func (s *MemSwitch) applyLocked() {
	for _, fm := range s.pending {
		e := pipeline.Entry{Table: uint8(fm.Table), Priority: fm.Priority, Match: fm.Match.Fields, Instructions: fm.Instructions,
			Cookie: fm.Cookie, IdleTimeout: fm.IdleTimeout, HardTimeout: fm.HardTimeout, Flags: fm.Flags}
		k := e.Key()
		if fm.Command == ofp.FlowAdd {
			s.table[k] = e
		} else if have, ok := s.table[k]; ok && have.Cookie&fm.CookieMask == fm.Cookie&fm.CookieMask {
			delete(s.table, k)
		}
	}
	s.pending = nil
}

// FlowStats reports the table (after the queued flow-mods).
func (s *MemSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	s.applyLocked()
	out := make([]controller.FlowStats, 0, len(s.table))
	for _, e := range s.table {
		out = append(out, controller.FlowStats{Table: ofp.Table(e.Table), Priority: e.Priority, Cookie: e.Cookie,
			IdleTimeout: e.IdleTimeout, HardTimeout: e.HardTimeout, Flags: e.Flags,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: e.Match}, Instructions: e.Instructions})
	}
	return out, nil
}

// Counts returns the flow-mods received (adds, strict deletes) and the
// flow-table reads so far.
func (s *MemSwitch) Counts() (adds, deletes, reads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adds, s.deletes, s.reads
}

// Len returns the number of entries in the table.
func (s *MemSwitch) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked()
	return len(s.table)
}

// StartHypervisor starts the real hypervisor over f with store st: New,
// Converge with in-memory OVSDB (tunnels provisioned; Run is not started,
// so no audit runs and no interface is watched), then one MemSwitch per
// bridge connected (SwitchUp: reconciled in full). heap is the live Go
// heap before the switches connect.
func StartHypervisor(ctx context.Context, f *Fabric, st *store.Store) (h *hypervisor.Hypervisor, sws map[uint64]*MemSwitch, heap uint64, err error) {
	h, err = hypervisor.New(hypervisor.Config{Infra: f.HypervisorInfra(), Store: st, AuditInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dial: func(context.Context, string) (hypervisor.OVSDB, error) {
			return &memOVSDB{tunnels: map[string]map[string]ovsdb.TunnelPort{}}, nil
		}})
	if err != nil {
		return nil, nil, 0, err
	}
	if err := h.Converge(ctx); err != nil {
		return nil, nil, 0, fmt.Errorf("converge: %w", err)
	}
	heap = liveHeap()
	sws = map[uint64]*MemSwitch{}
	for _, s := range h.Infrastructure().Switches {
		sw := NewMemSwitch(s.DPID)
		sws[s.DPID] = sw
		h.SwitchUp(ctx, sw)
	}
	return h, sws, heap, nil
}

// RunHypervisor measures the real hypervisor on st, which holds f's
// tenants and bindings (and the bindings of big, plugged before it is
// submitted): New, Converge with in-memory OVSDB, every switch connected
// (MemSwitch) and reconciled, then runs applies of big with
// ApplyTenant, each followed by DeleteTenant, and one full audit
// (Resync). It fails if an apply leaves a switch different from its
// desired state (the audit finds changes) or reads a flow table.
func RunHypervisor(ctx context.Context, f *Fabric, st *store.Store, big Tenant, runs int, progress func(string, ...any)) (*HypervisorApply, error) {
	r := &HypervisorApply{Hosts: len(big.Topology.Hosts), Switches: len(big.Topology.Switches), Runs: runs}
	runtime.GC()
	t0 := time.Now()
	h, sws, heap, err := StartHypervisor(ctx, f, st)
	if err != nil {
		return nil, err
	}
	r.SetupMS, r.HeapBytes = ms(time.Since(t0)), heap
	for _, sw := range sws {
		r.Entries += sw.Len()
	}
	progress("hypervisor: set up in %.1f ms (New, Converge, %d switches reconciled: %d entries); live heap %.1f MiB before the switches",
		r.SetupMS, len(sws), r.Entries, mib(r.HeapBytes))
	counts := func() (a, d, rd int) {
		for _, sw := range sws {
			x, y, z := sw.Counts()
			a, d, rd = a+x, d+y, rd+z
		}
		return
	}
	perSwitch := func() map[uint64]int {
		out := map[uint64]int{}
		for d, sw := range sws {
			x, y, _ := sw.Counts()
			out[d] = x + y
		}
		return out
	}
	var applies, deletes, applyCPU, deleteCPU []float64
	for run := 0; run < runs; run++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		runtime.GC()
		a0, d0, r0 := counts()
		before := perSwitch()
		c0, t0 := cpuTime(), time.Now()
		if _, err := h.ApplyTenant(ctx, big.Topology); err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
		applies = append(applies, ms(time.Since(t0)))
		applyCPU = append(applyCPU, ms(cpuTime()-c0))
		a1, d1, r1 := counts()
		changed := 0
		for d, n := range perSwitch() {
			if n != before[d] {
				changed++
			}
		}
		r.AddedEntries, r.DeletedEntries, r.ChangedSwitches = a1-a0, d1-d0, changed
		r.FlowStatsReads += r1 - r0
		runtime.GC()
		c0, t0 = cpuTime(), time.Now()
		if err := h.DeleteTenant(ctx, big.Topology.Tenant); err != nil {
			return nil, fmt.Errorf("delete: %w", err)
		}
		deletes = append(deletes, ms(time.Since(t0)))
		deleteCPU = append(deleteCPU, ms(cpuTime()-c0))
		_, _, r2 := counts()
		r.FlowStatsReads += r2 - r1
		progress("hypervisor run %d/%d: ApplyTenant %.1f ms (CPU %.1f ms; %d adds, %d deletes on %d switches), DeleteTenant %.1f ms (CPU %.1f ms)",
			run+1, runs, applies[len(applies)-1], applyCPU[len(applyCPU)-1], r.AddedEntries, r.DeletedEntries, changed,
			deletes[len(deletes)-1], deleteCPU[len(deleteCPU)-1])
	}
	// Leave the tenant applied for the audit, so it checks an applied state.
	if _, err := h.ApplyTenant(ctx, big.Topology); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	t0 = time.Now()
	plans, err := h.Resync(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	r.AuditMS = ms(time.Since(t0))
	for _, p := range plans {
		r.AuditChanges += len(p.Add) + len(p.Delete)
	}
	if err := h.DeleteTenant(ctx, big.Topology.Tenant); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	if len(applies) > 0 {
		med := func(xs []float64) float64 {
			s := slices.Clone(xs)
			slices.Sort(s)
			return s[(len(s)-1)/2]
		}
		r.ApplyMS, r.MinMS, r.MaxMS, r.DeleteMS = med(applies), slices.Min(applies), slices.Max(applies), med(deletes)
		r.ApplyCPUMS, r.DeleteCPUMS = med(applyCPU), med(deleteCPU)
	}
	progress("hypervisor: ApplyTenant median %.1f ms (min %.1f, max %.1f; CPU %.1f ms) over %d runs, DeleteTenant %.1f ms (CPU %.1f ms); audit (full reconcile of %d switches) %.1f ms, %d changes; %d flow-table reads during applies",
		r.ApplyMS, r.MinMS, r.MaxMS, r.ApplyCPUMS, runs, r.DeleteMS, r.DeleteCPUMS, len(plans), r.AuditMS, r.AuditChanges, r.FlowStatsReads)
	if r.AuditChanges != 0 {
		return r, fmt.Errorf("hypervisor: the audit after the applies changed %d entries: incremental applies left switches out of sync", r.AuditChanges)
	}
	if r.FlowStatsReads != 0 {
		return r, fmt.Errorf("hypervisor: %d flow-table reads during applies: the reconcile was not incremental", r.FlowStatsReads)
	}
	return r, nil
}

var _ reconcile.SyncSwitch = (*MemSwitch)(nil)

// cpuTime is the CPU time (user + system) the process has used so far
// (getrusage(2), RUSAGE_SELF); 0 if unavailable.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
