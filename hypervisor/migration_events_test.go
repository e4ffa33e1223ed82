package hypervisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/hypervisor/vnet"
)

// topoRecorder is a tenant app that records the topology events it gets
// on the virtual view (SwitchUp, SwitchDown, OFPT_PORT_STATUS): what a
// tenant's app would see of a live migration.
type topoRecorder struct {
	mu  sync.Mutex
	evs []string
}

func (r *topoRecorder) Name() string { return "topo-rec" }
func (r *topoRecorder) add(s string) {
	r.mu.Lock()
	r.evs = append(r.evs, s)
	r.mu.Unlock()
}
func (r *topoRecorder) SwitchUp(_ context.Context, sw controller.Switch) {
	r.add(fmt.Sprintf("up %v", sw.DPID()))
}
func (r *topoRecorder) SwitchDown(_ context.Context, sw controller.Switch) {
	r.add(fmt.Sprintf("down %v", sw.DPID()))
}
func (r *topoRecorder) PortStatus(_ context.Context, sw controller.Switch, ps *controller.PortStatus) {
	r.add(fmt.Sprintf("port-status %v port %d reason %v state %v", sw.DPID(), ps.Port.PortNo, ps.Reason, ps.Port.State))
}

// events returns the events so far.
func (r *topoRecorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// settle waits until the recorder's event count has not changed for
// 100 ms (the virtual switches deliver asynchronously) and returns them.
func (r *topoRecorder) settle() []string {
	n := -1
	for {
		time.Sleep(100 * time.Millisecond)
		evs := r.events()
		if len(evs) == n {
			return evs
		}
		n = len(evs)
	}
}

// newMigrationEventsTest: testInfra, tunnels converged, tenant1 of
// two-tenants.json running the recorder and the reactive learning app on
// its virtual view (switch "big"), h1 bound on aws/vm1 (0x101) port 5,
// recording sessions for the VM bridges. It waits for the recorder's
// SwitchUp.
func newMigrationEventsTest(t *testing.T) (*Hypervisor, *store.Store, *topoRecorder) {
	t.Helper()
	return newMigrationEventsTestWith(t, func(d uint64) controller.Switch {
		return &taSwitch{dpid: controller.DPID(d), done: make(chan struct{})}
	})
}

// newMigrationEventsTestWith is newMigrationEventsTest with the VM
// bridges' sessions made by mk.
func newMigrationEventsTestWith(t *testing.T, mk func(dpid uint64) controller.Switch) (*Hypervisor, *store.Store, *topoRecorder) {
	t.Helper()
	st, err := store.Open(t.TempDir()+"/skme.db", store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &topoRecorder{}
	reg := vnet.Builtin()
	reg["topo-rec"] = func(apps.Options) (controller.App, error) { return rec, nil }
	h, err := New(Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: (&fakeFabric{}).dial, TenantApps: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.closeTenantApps)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	for _, d := range []uint64{0x101, 0x102, 0x201} {
		h.switches[d] = mk(d)
	}
	h.mu.Unlock()
	if err := st.PutBinding(store.Binding{IfaceID: "tenant1/h1", Site: "aws", VM: "vm1", Bridge: "vm1", DPID: 0x101, PortName: "h-h1", OFPort: 5}); err != nil {
		t.Fatal(err)
	}
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	ts[0].Apps = []string{"topo-rec", vnet.ReactiveLearning}
	if _, err := h.ApplyTenants(ctx, ts); err != nil {
		t.Fatal(err)
	}
	if evs := rec.settle(); len(evs) != 1 || evs[0][:2] != "up" {
		t.Fatalf("events after apply: %q, want one SwitchUp", evs)
	}
	return h, st, rec
}

// bindOn is the lab's lab.Move as the hypervisor sees it: the host's
// interface leaves bridge from (its binding is dropped, the interface
// watch's refresh runs), then appears on bridge to (bound; Migrate's
// WaitBound refreshes). between runs while the host is bound nowhere.
func bindOn(h *Hypervisor, st *store.Store, between func(migrate.Host)) migrate.Mover {
	ports := map[uint64]uint32{0x101: 5, 0x201: 9}
	return migrate.MoverFunc(func(ctx context.Context, hst migrate.Host, from, to migrate.Bridge) error {
		if err := st.DeleteBinding(hst.IfaceID); err != nil {
			return err
		}
		if err := h.refresh(ctx); err != nil {
			return err
		}
		if between != nil {
			between(hst)
		}
		return st.PutBinding(store.Binding{IfaceID: hst.IfaceID, Site: to.Site, VM: to.VM, Bridge: to.Bridge,
			DPID: topology.DPID(to.DPID), PortName: hst.Port, OFPort: ports[to.DPID]})
	})
}

// portsOf returns the virtual ports of tenant1's switch "big" as its apps
// see them.
func portsOf(t *testing.T, h *Hypervisor) []ofp.Port {
	t.Helper()
	rt := h.TenantAppRuntime("tenant1")
	if rt == nil || len(rt.Switches()) != 1 {
		t.Fatal("tenant1 has no runtime with one virtual switch")
	}
	return rt.Switches()[0].Ports()
}

// TestMigrationTenantAppsSeeNoTopologyChange (issue 6, "the tenant's apps
// never see a topology change"): while a live migration moves h1 from
// aws/vm1 to gcp/vm1 — unbound on the source, then bound on the target —
// the tenant's apps get no SwitchUp, SwitchDown or OFPT_PORT_STATUS, and
// the virtual ports keep their numbers and states, also while h1 is
// bound nowhere; the same holds for a migration that rolls back after
// the host moved (it moves back). A host that is really gone after the
// migration ended is reported link-down once.
func TestMigrationTenantAppsSeeNoTopologyChange(t *testing.T) {
	h, st, rec := newMigrationEventsTest(t)
	ctx := ctxT(t)
	before := portsOf(t, h)
	if p := before[0]; p.PortNo != 1 || p.State != ofp.PortStateLive {
		t.Fatalf("h1's virtual port before the migration: %+v, want port 1 live", p)
	}
	var during [][]ofp.Port
	mover := bindOn(h, st, func(migrate.Host) { during = append(during, portsOf(t, h)) })

	res, err := h.Migrate(ctx, migrate.Request{Switch: 0x101, To: "gcp"}, migrate.Options{Mover: mover})
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if len(res.Moved) != 1 || len(during) != 1 {
		t.Fatalf("moved %v, %d moves", res.Moved, len(during))
	}
	if b, err := st.GetBinding("tenant1/h1"); err != nil || b.DPID != 0x201 {
		t.Fatalf("h1 after the migration: %+v %v, want bound on gcp/vm1", b, err)
	}
	if evs := rec.settle(); len(evs) != 1 {
		t.Errorf("the tenant's apps saw a topology change during the migration: %q", evs[1:])
	}
	if !slices.EqualFunc(during[0], before, portsEqual) {
		t.Errorf("virtual ports while h1 was bound nowhere:\n%+v\nwant\n%+v", during[0], before)
	}
	if after := portsOf(t, h); !slices.EqualFunc(after, before, portsEqual) {
		t.Errorf("virtual ports after the migration:\n%+v\nwant\n%+v", after, before)
	}

	// Back to aws, failing after the hosts moved: h1 moves to aws/vm1 and
	// back to gcp/vm1 in the rollback; still nothing.
	during = nil
	_, err = h.Migrate(ctx, migrate.Request{Switch: 0x201, To: "aws", VM: "vm1"}, migrate.Options{Mover: mover, FailAt: migrate.StepUnfreeze})
	if err == nil {
		t.Fatal("a migration failing after the unfreeze succeeded")
	}
	if b, err := st.GetBinding("tenant1/h1"); err != nil || b.DPID != 0x201 {
		t.Fatalf("h1 after the rollback: %+v %v, want bound on gcp/vm1", b, err)
	}
	if len(during) != 2 {
		t.Errorf("%d moves in a migration rolled back after the move, want 2", len(during))
	}
	if evs := rec.settle(); len(evs) != 1 {
		t.Errorf("the tenant's apps saw a topology change during a rolled-back migration: %q", evs[1:])
	}
	for i, ps := range during {
		if !slices.EqualFunc(ps, before, portsEqual) {
			t.Errorf("virtual ports during move %d of the rollback:\n%+v\nwant\n%+v", i, ps, before)
		}
	}

	// A real change is still reported: h1's interface goes away for good.
	if err := st.DeleteBinding("tenant1/h1"); err != nil {
		t.Fatal(err)
	}
	if err := h.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	evs := rec.settle()
	if len(evs) != 2 || evs[1] != fmt.Sprintf("port-status %v port 1 reason %v state %v", portsOfDPID(t, h), ofp.PortReasonModify, ofp.PortStateLinkDown) {
		t.Errorf("events after h1 went away: %q, want one link-down port-status", evs[1:])
	}
}

// portsEqual compares what an app sees of a port.
func portsEqual(a, b ofp.Port) bool {
	return a.PortNo == b.PortNo && a.State == b.State && a.Config == b.Config && a.Name == b.Name &&
		slices.Equal(a.HWAddr, b.HWAddr) && a.Curr == b.Curr && a.CurrSpeed == b.CurrSpeed
}

// portsOfDPID is the DPID of tenant1's virtual switch.
func portsOfDPID(t *testing.T, h *Hypervisor) controller.DPID {
	t.Helper()
	return h.TenantAppRuntime("tenant1").Switches()[0].DPID()
}

// dualSwitch is a VM bridge's session that keeps a flow table (ADD
// replaces by key, MODIFY_STRICT, DELETE_STRICT and DELETE by cookie mask,
// table and exact fields) and records every flow-mod and barrier in
// order, numbered across bridges (dualSeq): enough for the migration's
// freeze, clone and retire reads and for checking the dual write.
type dualSwitch struct {
	taSwitch
	entries map[string]*controller.FlowStats // by physical key
	ops     []dualOp
}

// dualOp is one message: a flow-mod, or a barrier (fm nil).
type dualOp struct {
	seq int64
	fm  *ofp.FlowMod
}

var dualSeq atomic.Int64

func newDualSwitch(d uint64) *dualSwitch {
	return &dualSwitch{taSwitch: taSwitch{dpid: controller.DPID(d), done: make(chan struct{})}, entries: map[string]*controller.FlowStats{}}
}

func dualKey(table ofp.Table, prio uint16, m []ofp.XM) string {
	return (&pipeline.Entry{Table: uint8(table), Priority: prio, Match: m}).Key()
}

func (s *dualSwitch) Barrier(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, dualOp{seq: dualSeq.Add(1)})
	return nil
}

func (s *dualSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, dualOp{seq: dualSeq.Add(1), fm: fm})
	k := dualKey(fm.Table, fm.Priority, fm.Match.Fields)
	switch fm.Command {
	case ofp.FlowAdd:
		e := pipeline.Entry{Table: uint8(fm.Table), Priority: fm.Priority, Match: fm.Match.Fields, Instructions: fm.Instructions,
			Cookie: fm.Cookie, IdleTimeout: fm.IdleTimeout, HardTimeout: fm.HardTimeout, Flags: fm.Flags}
		s.entries[k] = &controller.FlowStats{Table: fm.Table, Priority: e.Priority, Cookie: e.Cookie, IdleTimeout: e.IdleTimeout,
			HardTimeout: e.HardTimeout, Flags: e.Flags, Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: slices.Clone(e.Match)},
			Instructions: e.Instructions}
	case ofp.FlowModifyStrict:
		if e := s.entries[k]; e != nil && (e.Cookie^fm.Cookie)&fm.CookieMask == 0 {
			e.Instructions = fm.Instructions
		}
	case ofp.FlowDeleteStrict, ofp.FlowDelete:
		for ek, e := range s.entries {
			if fm.Table != ofp.TableAll && e.Table != fm.Table || (e.Cookie^fm.Cookie)&fm.CookieMask != 0 {
				continue
			}
			if fm.Command == ofp.FlowDeleteStrict && ek != k {
				continue
			}
			if fm.Command == ofp.FlowDelete && !slices.ContainsFunc(fm.Match.Fields, func(x ofp.XM) bool { return true }) {
				continue // an empty non-strict match: not sent by these tests' paths
			}
			if fm.Command == ofp.FlowDelete && !containsFields(e.Match.Fields, fm.Match.Fields) {
				continue
			}
			delete(s.entries, ek)
		}
	}
	return nil
}

// containsFields reports whether every field of filter is in fields
// (same type, value and mask).
func containsFields(fields, filter []ofp.XM) bool {
	for _, f := range filter {
		if !slices.ContainsFunc(fields, func(x ofp.XM) bool {
			return x.Class == f.Class && x.Type == f.Type && string(x.Value) == string(f.Value) && string(x.Mask) == string(f.Mask)
		}) {
			return false
		}
	}
	return true
}

func (s *dualSwitch) FlowStats(_ context.Context, req *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []controller.FlowStats
	for _, e := range s.entries {
		if req != nil && (req.Table != ofp.TableAll && e.Table != req.Table || (e.Cookie^req.Cookie)&req.CookieMask != 0) {
			continue
		}
		out = append(out, *e)
	}
	return out, nil
}

// appEntries returns the keys of tenant id's app entries on s (not the
// hypervisor's, not the native learning ones).
func (s *dualSwitch) appEntries(id uint16) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, e := range s.entries {
		if uint16(e.Cookie>>48) == id && !nativeCookie(e.Cookie) {
			out = append(out, fmt.Sprintf("%x/%x", k, e.Cookie))
		}
	}
	slices.Sort(out)
	return out
}

// since returns the messages after sequence number seq.
func (s *dualSwitch) since(seq int64) []dualOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []dualOp
	for _, op := range s.ops {
		if op.seq > seq {
			out = append(out, op)
		}
	}
	return out
}

// guardPhases checks that ops are the two guarded phases of vnet's dual
// write (hypervisor/vnet/replica.go): flow-mods sending to the controller
// only, a barrier, the update's flow-mods, a barrier. It returns the
// sequence numbers of the first barrier and of the first update.
func guardPhases(t *testing.T, name string, ops []dualOp) (guardBarrier, firstWrite int64) {
	t.Helper()
	var shape []string
	phase := 0
	for _, op := range ops {
		switch {
		case op.fm == nil:
			shape = append(shape, "barrier")
			if phase == 0 {
				guardBarrier = op.seq
			}
			phase++
		case phase == 0:
			shape = append(shape, "guard")
			if !toController(op.fm) {
				t.Errorf("%s: phase 1 flow-mod (command %d) does not send to the controller", name, op.fm.Command)
			}
		default:
			shape = append(shape, "write")
			if phase == 1 && firstWrite == 0 {
				firstWrite = op.seq
			}
		}
	}
	if phase != 2 || guardBarrier == 0 || firstWrite == 0 || ops[len(ops)-1].fm != nil {
		t.Fatalf("%s: messages %q, want guards, barrier, writes, barrier", name, shape)
	}
	return guardBarrier, firstWrite
}

// toController reports whether fm's only instruction applies one output
// to the controller.
func toController(fm *ofp.FlowMod) bool {
	if len(fm.Instructions) != 1 {
		return false
	}
	a, ok := fm.Instructions[0].(*ofp.InstructionApplyActions)
	if !ok || len(a.Actions) != 1 {
		return false
	}
	o, ok := a.Actions[0].(*ofp.ActionOutput)
	return ok && o.Port == ofp.PortController
}

// TestMigrationDualWriteFromTheClone (issue 6: "flow updates to the cloned
// switch are applied to both copies and serialized with barriers"): a
// flow-mod that tenant1's reactive app issues after the clone step, before
// any host moved, lands on the source (aws/vm1) and the target (gcp/vm1)
// in two phases, a to-controller guard on both, a barrier on both, then
// the entry on both, a barrier on both, no entry written before both
// guards were acknowledged; an entry deleted then is deleted from both.
// The retire step's catch-up then has nothing to do, and the target holds
// the app's entries. A migration rolled back after the connect step (the
// replica set, an app entry added meanwhile) leaves the target without
// any of tenant1's app entries and the source with all of them.
func TestMigrationDualWriteFromTheClone(t *testing.T) {
	sws := map[uint64]*dualSwitch{}
	h, st, _ := newMigrationEventsTestWith(t, func(d uint64) controller.Switch {
		sws[d] = newDualSwitch(d)
		return sws[d]
	})
	ctx := ctxT(t)
	src, dst := sws[0x101], sws[0x201]
	rt := h.TenantAppRuntime("tenant1")
	big := rt.Switches()[0]
	var id uint16
	for tid, r := range *h.tapps.byID.Load() {
		if r == rt {
			id = uint16(tid)
		}
	}
	entry := func(cookie uint64, port uint32) *ofp.FlowMod {
		return &ofp.FlowMod{Command: ofp.FlowAdd, Table: 0, Priority: 10, Cookie: cookie, Buffer: ofp.NoBuffer,
			OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, IdleTimeout: 30,
			Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(addr.MustParseMAC(fmt.Sprintf("00:00:00:00:00:%02x", port)))}},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(port))}}
	}
	// Before the migration: an entry toward h2 (cloned, then deleted
	// during the migration).
	if err := big.FlowMod(ctx, entry(0x21, 2)); err != nil {
		t.Fatal(err)
	}
	before := src.appEntries(id) // with the reactive app's own entries
	var mark int64
	afterClone := func(e migrate.Event) {
		if e.Step != migrate.StepClone || e.Status != migrate.StatusDone {
			return
		}
		if len(dst.appEntries(id)) == 0 {
			t.Error("the clone put none of tenant1's app entries on the target")
		}
		mark = dualSeq.Load()
		if err := big.FlowMod(ctx, entry(0x31, 3)); err != nil { // toward h3: new
			t.Error(err)
		}
		for name, s := range map[string]*dualSwitch{"source": src, "target": dst} {
			gb, fw := guardPhases(t, "add on the "+name, s.since(mark))
			other := dst
			if s == dst {
				other = src
			}
			if ob, _ := guardPhases(t, "add", other.since(mark)); fw < ob || fw < gb {
				t.Errorf("add: an entry was written on the %s (message %d) before both copies acknowledged their guards (%d, %d)", name, fw, gb, ob)
			}
		}
		mark = dualSeq.Load()
		del := entry(0x21, 2)
		del.Command, del.CookieMask = ofp.FlowDeleteStrict, ^uint64(0)
		if err := big.FlowMod(ctx, del); err != nil {
			t.Error(err)
		}
		guardPhases(t, "delete on the source", src.since(mark))
		guardPhases(t, "delete on the target", dst.since(mark))
		if s, d := src.appEntries(id), dst.appEntries(id); !slices.Equal(s, d) {
			t.Errorf("after the updates the copies differ:\nsource %q\ntarget %q", s, d)
		}
	}
	res, err := h.Migrate(ctx, migrate.Request{Switch: 0x101, To: "gcp"}, migrate.Options{Mover: bindOn(h, st, nil), Progress: afterClone})
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if mark == 0 {
		t.Fatal("no clone-done event")
	}
	for _, s := range res.Steps {
		if s.Step == migrate.StepRetire && !strings.HasPrefix(s.Detail, "catch-up: 0 entries added to and 0 deleted from the target") {
			t.Errorf("retire: %q, want an empty catch-up (the dual write kept the target up to date)", s.Detail)
		}
	}
	cookieIs := func(c uint64) func(string) bool {
		return func(k string) bool {
			return strings.HasSuffix(k, fmt.Sprintf("/%x", pipeline.TenantCookie(addr.TenantID(id), c)))
		}
	}
	if got := dst.appEntries(id); len(got) != len(before) || !slices.ContainsFunc(got, cookieIs(0x31)) || slices.ContainsFunc(got, cookieIs(0x21)) {
		t.Errorf("target's app entries after the migration: %q, want the source's before it %q with the one added during it, without the one deleted", got, before)
	}
	if got := src.appEntries(id); len(got) != 0 {
		t.Errorf("source's app entries after the migration: %q, want none", got)
	}
	if len(rt.Replicas()) != 0 {
		t.Errorf("replica left after the commit: %v", rt.Replicas())
	}

	// Back to aws/vm1, failing after connect: the replica (aws/vm1 now)
	// gets an entry during the migration, and loses it with the rollback.
	mark = 0
	onSrc := dst.appEntries(id)
	addDuring := func(e migrate.Event) {
		if e.Step == migrate.StepClone && e.Status == migrate.StatusDone {
			mark = 1
			if err := big.FlowMod(ctx, entry(0x41, 1)); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := h.Migrate(ctx, migrate.Request{Switch: 0x201, To: "aws", VM: "vm1"},
		migrate.Options{Mover: bindOn(h, st, nil), Progress: addDuring, FailAt: migrate.StepConnect}); err == nil {
		t.Fatal("a migration failing after connect succeeded")
	}
	if mark == 0 {
		t.Fatal("no clone-done event")
	}
	if got := src.appEntries(id); len(got) != 0 {
		t.Errorf("the rolled-back target (aws/vm1) still holds tenant1's app entries %q", got)
	}
	if got := dst.appEntries(id); len(got) != len(onSrc)+1 {
		t.Errorf("the source (gcp/vm1) holds %q after the rollback, want %d entries (%q and the one added during the migration)", got, len(onSrc)+1, onSrc)
	}
	if len(rt.Replicas()) != 0 {
		t.Errorf("replica left after the rollback: %v", rt.Replicas())
	}
}
