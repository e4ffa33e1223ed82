package hypervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// flowSwitch is a controller.Switch holding a flow table in memory with
// OpenFlow 1.3's semantics for what the hypervisor sends: ADD replaces an
// entry with the same table, priority and match (§6.4); DELETE_STRICT
// removes that entry if its cookie matches under the mask; DELETE removes
// every entry whose cookie matches under the mask (any table). FlowStats
// reports the table.
type flowSwitch struct {
	controllertest.NoMultipart // PortDesc, GroupDesc, MeterConfig, Multipart: unsupported

	dpid  controller.DPID
	done  chan struct{}
	mu    sync.Mutex
	table map[string]pipeline.Entry // by Key
	stats int                       // FlowStats calls
	mods  int                       // flow-mods received
}

func newFlowSwitch(d uint64) *flowSwitch {
	return &flowSwitch{dpid: controller.DPID(d), done: make(chan struct{}), table: map[string]pipeline.Entry{}}
}

func (f *flowSwitch) DPID() controller.DPID                           { return f.dpid }
func (f *flowSwitch) NTables() uint8                                  { return 254 }
func (f *flowSwitch) Ports() []ofp.Port                               { return nil }
func (f *flowSwitch) Port(ofp.PortNo) (ofp.Port, bool)                { return ofp.Port{}, false }
func (f *flowSwitch) Logger() *slog.Logger                            { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (f *flowSwitch) Done() <-chan struct{}                           { return f.done }
func (f *flowSwitch) String() string                                  { return fmt.Sprintf("flowSwitch %s", f.dpid) }
func (f *flowSwitch) GroupMod(context.Context, *ofp.GroupMod) error   { return nil }
func (f *flowSwitch) MeterMod(context.Context, *ofp.MeterMod) error   { return nil }
func (f *flowSwitch) PacketOut(context.Context, *ofp.PacketOut) error { return nil }
func (f *flowSwitch) Barrier(context.Context) error                   { return nil }

func (f *flowSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mods++
	e := pipeline.Entry{Table: uint8(fm.Table), Priority: fm.Priority, Match: fm.Match.Fields, Instructions: fm.Instructions,
		Cookie: fm.Cookie, IdleTimeout: fm.IdleTimeout, HardTimeout: fm.HardTimeout, Flags: fm.Flags}
	switch fm.Command {
	case ofp.FlowAdd:
		f.table[e.Key()] = e
	case ofp.FlowDeleteStrict:
		if have, ok := f.table[e.Key()]; ok && have.Cookie&fm.CookieMask == fm.Cookie&fm.CookieMask {
			delete(f.table, e.Key())
		}
	case ofp.FlowDelete:
		for k, have := range f.table {
			if have.Cookie&fm.CookieMask == fm.Cookie&fm.CookieMask && (fm.Table == ofp.TableAll || have.Table == uint8(fm.Table)) {
				delete(f.table, k)
			}
		}
	default:
		return fmt.Errorf("flowSwitch: flow-mod command %d not simulated", fm.Command)
	}
	return nil
}

func (f *flowSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats++
	out := make([]controller.FlowStats, 0, len(f.table))
	for _, e := range f.table {
		out = append(out, controller.FlowStats{Table: ofp.Table(e.Table), Priority: e.Priority, Cookie: e.Cookie,
			IdleTimeout: e.IdleTimeout, HardTimeout: e.HardTimeout, Flags: e.Flags,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: e.Match}, Instructions: e.Instructions})
	}
	return out, nil
}

// owned returns the switch's entries the hypervisor owns, as Key ->
// Canonical.
func (f *flowSwitch) owned(t *testing.T, h *Hypervisor) map[string]string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, e := range f.table {
		if h.ownsCookie(e.Cookie) {
			c, err := e.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			out[k] = c
		}
	}
	return out
}

// canonicalSet returns es as Key -> Canonical, failing on a duplicate key.
func canonicalSet(t *testing.T, es []pipeline.Entry) map[string]string {
	t.Helper()
	out := make(map[string]string, len(es))
	for i := range es {
		k, c, err := es[i].KeyCanonical()
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := out[k]; dup {
			t.Fatalf("duplicate desired entry %s", es[i].String())
		}
		out[k] = c
	}
	return out
}

// fullDesired recomputes the desired entries from scratch, as the
// hypervisor did before it compiled incrementally: pipeline.Compile of the
// whole model plus every learning tenant's learning entries.
func fullDesired(t *testing.T, h *Hypervisor) map[uint64][]pipeline.Entry {
	t.Helper()
	st, err := h.loadState("")
	if err != nil {
		t.Fatal(err)
	}
	comp, err := pipeline.Compile(st.model)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][]pipeline.Entry{}
	for d, es := range comp {
		out[uint64(d)] = es
	}
	for _, tn := range st.tenants {
		if !slices.Contains(st.topos[tn.Name].Apps, LearningApp) {
			continue
		}
		extra, err := learningEntries(st.views[tn.Name], st.model.Bindings)
		if err != nil {
			t.Fatal(err)
		}
		for d, es := range extra {
			out[d] = append(out[d], es...)
		}
	}
	return out
}

func sameSet(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// randomTopology is tenant name with 1-6 hosts over the three clouds on 1
// or 2 linked virtual switches, MACs drawn from a small pool (so
// replacements change some and keep others), apps "learning" or none.
func randomTopology(r *rand.Rand, name string) *topology.Topology {
	tp := &topology.Topology{Tenant: name, Switches: []topology.Switch{{Name: "s1"}}, Links: []topology.Link{}}
	if r.IntN(4) > 0 {
		tp.Apps = []string{LearningApp}
	} else {
		tp.Apps = []string{}
	}
	two := r.IntN(2) == 0
	if two {
		tp.Switches = append(tp.Switches, topology.Switch{Name: "s2"})
		tp.Links = []topology.Link{{A: topology.Endpoint{Switch: "s1", Port: 100}, B: topology.Endpoint{Switch: "s2", Port: 100}}}
	}
	clouds := []string{"aws", "gcp", "azure"}
	for i, m := range r.Perm(8)[:1+r.IntN(6)] {
		sw := "s1"
		if two && i%2 == 1 {
			sw = "s2"
		}
		tp.Hosts = append(tp.Hosts, topology.Host{Name: fmt.Sprintf("h%d", i+1), MAC: fmt.Sprintf("00:00:00:00:00:%02x", m+1),
			IP: fmt.Sprintf("10.0.0.%d/24", m+1), Switch: sw, Port: uint32(i + 1), Cloud: clouds[r.IntN(3)]})
	}
	return tp
}

// TestIncrementalMatchesFull: over random sequences of tenant applies
// (new and replaced), deletes, host plugs, moves and unplugs, the desired
// state the hypervisor computes incrementally (cached per-tenant parts)
// equals a full recompute (pipeline.Compile + learning entries) on every
// bridge after every step, and every connected switch's owned flow table
// equals it — reached with incremental pushes only (no flow-table read
// after the first reconcile). Then drift made behind Skyvisor's back (an
// entry deleted, a stray owned entry added, an entry changed) is repaired
// by the audit's Resync and only by it.
func TestIncrementalMatchesFull(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { incrementalRun(t, seed) })
	}
}

func incrementalRun(t *testing.T, seed uint64) {
	h, st, _ := newTest(t)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	inf := h.Infrastructure()
	sws := map[uint64]*flowSwitch{}
	var vms []infra.Switch
	for _, s := range inf.Switches {
		f := newFlowSwitch(s.DPID)
		sws[s.DPID] = f
		h.SwitchUp(ctx, f)
		if s.Role == infra.RoleVM {
			vms = append(vms, s)
		}
	}
	r := rand.New(rand.NewPCG(seed, 7))
	names := []string{"ta", "tb", "tc", "td"}
	topos := map[string]*topology.Topology{}
	statsAfterUp := map[uint64]int{}
	for d, f := range sws {
		statsAfterUp[d] = f.stats
	}
	nextPort := uint32(10)
	check := func(step int, what string) {
		t.Helper()
		full := fullDesired(t, h)
		h.mu.Lock()
		inc := h.desired
		h.mu.Unlock()
		if len(inc) != len(full) {
			t.Fatalf("step %d (%s): desired state of %d bridges, full recompute %d", step, what, len(inc), len(full))
		}
		for d, es := range full {
			want := canonicalSet(t, es)
			if got := canonicalSet(t, inc[d]); !sameSet(got, want) {
				t.Fatalf("step %d (%s): bridge %s: incremental desired state has %d entries, full recompute %d (or they differ)",
					step, what, pipeline.DPID(d), len(got), len(want))
			}
			if got := sws[d].owned(t, h); !sameSet(got, want) {
				t.Fatalf("step %d (%s): bridge %s: switch holds %d owned entries, desired %d (or they differ)",
					step, what, pipeline.DPID(d), len(got), len(want))
			}
			if fp, _ := fingerprint(es); fp != h.fingerprint[d] {
				t.Fatalf("step %d (%s): bridge %s: fingerprint differs from the full recompute's", step, what, pipeline.DPID(d))
			}
		}
	}
	for step := 0; step < 40; step++ {
		var what string
		switch op := r.IntN(10); {
		case op < 4: // apply a new or replaced tenant
			n := names[r.IntN(len(names))]
			tp := randomTopology(r, n)
			what = fmt.Sprintf("apply %s (%d hosts)", n, len(tp.Hosts))
			if _, err := h.ApplyTenant(ctx, tp); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			topos[n] = tp
		case op < 5: // delete a tenant
			n := names[r.IntN(len(names))]
			what = "delete " + n
			if topos[n] == nil {
				continue
			}
			if err := h.DeleteTenant(ctx, n); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
			delete(topos, n)
		case op < 9: // plug (or move) a host: a binding, as the OVSDB watcher writes it
			n := names[r.IntN(len(names))]
			hn := fmt.Sprintf("h%d", 1+r.IntN(6))
			vm := vms[r.IntN(len(vms))]
			if tp := topos[n]; tp != nil && r.IntN(3) > 0 {
				// mostly in the host's own cloud, so the binding is used
				i := r.IntN(len(tp.Hosts))
				hn = tp.Hosts[i].Name
				for _, v := range vms {
					if v.Site == tp.Hosts[i].Cloud && r.IntN(2) == 0 {
						vm = v
					}
				}
			}
			nextPort++
			what = fmt.Sprintf("plug %s/%s on %s port %d", n, hn, vm.VM, nextPort)
			err := st.PutBinding(store.Binding{IfaceID: topology.IfaceID(n, hn), Site: vm.Site, VM: vm.VM, Bridge: vm.Bridge,
				DPID: topology.DPID(vm.DPID), PortName: fmt.Sprintf("p%d", nextPort), OFPort: nextPort})
			if err != nil {
				t.Fatal(err)
			}
			if err := h.refresh(ctx); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
		default: // unplug
			bs, err := st.Bindings()
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) == 0 {
				continue
			}
			b := bs[r.IntN(len(bs))]
			what = "unplug " + b.IfaceID
			if err := st.DeleteBinding(b.IfaceID); err != nil {
				t.Fatal(err)
			}
			if err := h.refresh(ctx); err != nil {
				t.Fatalf("step %d: %s: %v", step, what, err)
			}
		}
		check(step, what)
	}
	for d, f := range sws {
		if f.stats != statsAfterUp[d] {
			t.Errorf("bridge %s: flow table read %d times after connecting: pushes were not incremental", pipeline.DPID(d), f.stats-statsAfterUp[d])
		}
	}

	// Drift on the busiest edge bridge: one desired entry deleted, one
	// changed, one stray owned entry added behind Skyvisor's back.
	var busy *flowSwitch
	for _, v := range vms {
		if f := sws[v.DPID]; busy == nil || len(f.table) > len(busy.table) {
			busy = f
		}
	}
	h.mu.Lock()
	want := canonicalSet(t, h.desired[uint64(busy.dpid)])
	h.mu.Unlock()
	busy.mu.Lock()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k, e := range busy.table {
			if h.ownsCookie(e.Cookie) && !yield(k) {
				return
			}
		}
	})
	delete(busy.table, keys[0])
	changed := busy.table[keys[1]]
	changed.Instructions = ofp.Instructions{pipeline.Apply(pipeline.Output(4242))}
	busy.table[keys[1]] = changed
	stray := pipeline.Entry{Table: pipeline.TableDeliver, Priority: 7, Cookie: pipeline.InfraCookie(0x2ff, 9),
		Match: []ofp.XM{pipeline.EthDst(mustMAC(t, "00:00:00:00:42:42"))}}
	busy.table[stray.Key()] = stray
	busy.mu.Unlock()
	if got := busy.owned(t, h); sameSet(got, want) {
		t.Fatal("drift not made")
	}
	// A push with nothing changed does not see it (it trusts what it sent)...
	if err := h.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := busy.owned(t, h); sameSet(got, want) {
		t.Fatal("a push without changes read the flow table: the audit is the only full reconcile expected")
	}
	// ...the audit's Resync repairs it.
	plans, err := h.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := plans[uint64(busy.dpid)]; len(p.Add) != 2 || len(p.Delete) != 1 {
		t.Errorf("audit plan for %s: %d adds, %d deletes; want 2 adds (deleted, changed), 1 delete (stray)", busy.dpid, len(p.Add), len(p.Delete))
	}
	if got := busy.owned(t, h); !sameSet(got, want) {
		t.Fatal("drift not repaired by Resync")
	}
	for d, p := range plans {
		if d != uint64(busy.dpid) && !p.Empty() {
			t.Errorf("audit changed %s, which had no drift: %d adds, %d deletes", pipeline.DPID(d), len(p.Add), len(p.Delete))
		}
	}
}

// TestReconnectReconcilesInFull: a switch that reconnects (SwitchDown,
// then SwitchUp with a new session) gets its flow table read and
// repaired, not an incremental push.
func TestReconnectReconcilesInFull(t *testing.T) {
	h, st, _ := newTest(t)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ApplyTenants(ctx, loadTenants(t, h, "../examples/two-tenants.json")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutBinding(store.Binding{IfaceID: "tenant1/h1", Site: "aws", VM: "vm1", Bridge: "vm1", DPID: 0x101, PortName: "p", OFPort: 5}); err != nil {
		t.Fatal(err)
	}
	f := newFlowSwitch(0x101)
	h.SwitchUp(ctx, f)
	if err := h.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	want := canonicalSet(t, h.desired[0x101])
	h.mu.Unlock()
	if got := f.owned(t, h); !sameSet(got, want) {
		t.Fatal("switch not reconciled on connect")
	}
	// Lost while disconnected: the new session starts from an empty table.
	h.SwitchDown(ctx, f)
	g := newFlowSwitch(0x101)
	h.SwitchUp(ctx, g)
	if g.stats != 1 {
		t.Errorf("flow table read %d times on reconnect, want 1", g.stats)
	}
	if got := g.owned(t, h); !sameSet(got, want) {
		t.Fatal("reconnected switch not reconciled in full")
	}
}
