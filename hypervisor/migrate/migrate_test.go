package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// fakeSwitch is a flow table behind controller.Switch: ADD replaces by
// (table, priority, match), DELETE_STRICT removes by the same and cookie.
type fakeSwitch struct {
	controllertest.NoMultipart // PortDesc, GroupDesc, MeterConfig, Multipart: unsupported

	mu      sync.Mutex
	dpid    controller.DPID
	flows   map[string]controller.FlowStats
	dead    bool // every call fails (the OVS was killed)
	failAdd bool // flow-mods of ADD fail at the barrier
	mods    int
}

func newFakeSwitch(d uint64) *fakeSwitch {
	return &fakeSwitch{dpid: controller.DPID(d), flows: map[string]controller.FlowStats{}}
}

func (f *fakeSwitch) DPID() controller.DPID                         { return f.dpid }
func (f *fakeSwitch) NTables() uint8                                { return 254 }
func (f *fakeSwitch) Ports() []ofp.Port                             { return nil }
func (f *fakeSwitch) Port(ofp.PortNo) (ofp.Port, bool)              { return ofp.Port{}, false }
func (f *fakeSwitch) Logger() *slog.Logger                          { return slog.Default() }
func (f *fakeSwitch) Done() <-chan struct{}                         { return nil }
func (f *fakeSwitch) String() string                                { return fmt.Sprintf("fake %s", f.dpid) }
func (f *fakeSwitch) GroupMod(context.Context, *ofp.GroupMod) error { return nil }
func (f *fakeSwitch) MeterMod(context.Context, *ofp.MeterMod) error { return nil }
func (f *fakeSwitch) PacketOut(context.Context, *ofp.PacketOut) error {
	return nil
}

var errDead = errors.New("switch disconnected")

func (f *fakeSwitch) isDead() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dead
}

func key(table ofp.Table, prio uint16, m []ofp.XM) string {
	e := pipeline.Entry{Table: uint8(table), Priority: prio, Match: m}
	return e.Key()
}

func (f *fakeSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return errDead
	}
	f.mods++
	k := key(fm.Table, fm.Priority, fm.Match.Fields)
	switch fm.Command {
	case ofp.FlowAdd:
		if f.failAdd {
			return nil
		}
		old := f.flows[k]
		f.flows[k] = controller.FlowStats{Table: fm.Table, Priority: fm.Priority, Cookie: fm.Cookie,
			IdleTimeout: fm.IdleTimeout, HardTimeout: fm.HardTimeout, Flags: fm.Flags,
			Match: fm.Match, Instructions: fm.Instructions, PacketCount: old.PacketCount}
	case ofp.FlowDeleteStrict:
		if fs, ok := f.flows[k]; ok && fs.Cookie&fm.CookieMask == fm.Cookie&fm.CookieMask {
			delete(f.flows, k)
		}
	}
	return nil
}

func (f *fakeSwitch) Barrier(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return errDead
	}
	if f.failAdd {
		return errors.New("openflow error: bad action")
	}
	return nil
}

func (f *fakeSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return nil, errDead
	}
	var out []controller.FlowStats
	for _, fs := range f.flows {
		out = append(out, fs)
	}
	return out, nil
}

// table renders the flow table as sorted lines with cookie and timeouts.
func (f *fakeSwitch) table() string {
	fs, _ := func() ([]controller.FlowStats, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []controller.FlowStats
		for _, x := range f.flows {
			out = append(out, x)
		}
		return out, nil
	}()
	var lines []string
	for i := range fs {
		e := pipeline.FromFlowStats(&fs[i])
		lines = append(lines, fmt.Sprintf("%s idle=%d hard=%d", e.String(), e.IdleTimeout, e.HardTimeout))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (f *fakeSwitch) add(table uint8, prio uint16, cookie uint64, port uint32, idle, hard uint16) {
	fm := &ofp.FlowMod{Command: ofp.FlowAdd, Table: ofp.Table(table), Priority: prio, Cookie: cookie,
		IdleTimeout: idle, HardTimeout: hard,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(port)}},
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(port + 1))}}
	if err := f.FlowMod(context.Background(), fm); err != nil {
		panic(err)
	}
}

// fakeEnv places hosts and records calls.
type fakeEnv struct {
	mu       sync.Mutex
	src, dst *fakeSwitch
	plan     Plan
	where    map[string]uint64 // iface-id -> bridge
	admitted map[string]string
	commits  int
	calls    []string
	noBind   string // WaitBound of this iface-id never succeeds
	merged   []controller.FlowStats
}

const (
	tenantA = 0x0201
	tenantB = 0x0202
)

func newFakeEnv() *fakeEnv {
	src, dst := newFakeSwitch(0x101), newFakeSwitch(0x201)
	// hypervisor entries (not clonable), tenant app entries with and
	// without timeouts, and an entry of a tenant with no host here
	src.add(0, 200, 0x5359000000000001, 2, 0, 0)
	src.add(10, 100, uint64(tenantA)<<48|7, 3, 30, 0)
	src.add(10, 100, uint64(tenantA)<<48|8, 4, 0, 0)
	src.add(11, 90, uint64(tenantB)<<48|9, 5, 10, 60)
	src.add(10, 100, uint64(0x0203)<<48|9, 6, 10, 0)
	dst.add(0, 200, 0x5359000000000002, 9, 0, 0)
	e := &fakeEnv{src: src, dst: dst, where: map[string]uint64{}, admitted: map[string]string{}}
	e.plan = Plan{
		Source: Bridge{DPID: 0x101, Site: "aws", VM: "vm1", Bridge: "vm1"},
		Target: Bridge{DPID: 0x201, Site: "gcp", VM: "vm1", Bridge: "vm1"},
		Hosts: []Host{{IfaceID: "a/h1", Tenant: tenantA, Port: "h-a1", OFPort: 2},
			{IfaceID: "b/h1", Tenant: tenantB, Port: "h-b1", OFPort: 3}},
		Path: []string{"aws", "gcp"},
	}
	for _, h := range e.plan.Hosts {
		e.where[h.IfaceID] = 0x101
	}
	return e
}

func (e *fakeEnv) call(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, s)
}

func (e *fakeEnv) Plan(_ context.Context, req Request) (Plan, error) {
	e.call("plan")
	if req.To == "aws" {
		return Plan{}, fmt.Errorf("same cloud: %w", ErrInvalid)
	}
	return e.plan, nil
}

func (e *fakeEnv) Switch(d uint64) (controller.Switch, error) {
	switch d {
	case 0x101:
		return e.src, nil
	case 0x201:
		if e.dst.isDead() {
			return nil, fmt.Errorf("switch %x: %w", d, ErrUnavailable)
		}
		return e.dst, nil
	}
	return nil, fmt.Errorf("switch %x: %w", d, ErrUnavailable)
}

func (e *fakeEnv) Clonable(c uint64) bool { return !pipeline.IsInfraCookie(c) }

func (e *fakeEnv) Admit(hs []Host, site string) error {
	e.call("admit")
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range hs {
		e.admitted[h.IfaceID] = site
	}
	return nil
}

func (e *fakeEnv) Withdraw(hs []Host) {
	e.call("withdraw")
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range hs {
		delete(e.admitted, h.IfaceID)
	}
}

func (e *fakeEnv) WaitBound(ctx context.Context, h Host, d uint64) error {
	for {
		e.mu.Lock()
		ok := e.where[h.IfaceID] == d && !(h.IfaceID == e.noBind && d == e.plan.Target.DPID)
		e.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (e *fakeEnv) Commit(context.Context, Plan) error {
	e.call("commit")
	e.mu.Lock()
	defer e.mu.Unlock()
	e.commits++
	e.admitted = map[string]string{}
	return nil
}

func (e *fakeEnv) MergeStats(target uint64, _ time.Time, c []controller.FlowStats) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if target == e.plan.Target.DPID {
		e.merged = append(e.merged, c...)
	}
}

func (e *fakeEnv) mover() Mover {
	return MoverFunc(func(_ context.Context, h Host, from, to Bridge) error {
		e.call("move " + h.IfaceID + " " + to.Site)
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.where[h.IfaceID] != from.DPID && e.where[h.IfaceID] != to.DPID {
			return fmt.Errorf("host %s is on neither bridge", h.IfaceID)
		}
		e.where[h.IfaceID] = to.DPID
		return nil
	})
}

func TestRunMigratesAndRestoresTimeouts(t *testing.T) {
	e := newFakeEnv()
	srcBefore := e.src.table()
	var events []Event
	var awaited []string
	res, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover(),
		Progress: func(ev Event) { events = append(events, ev) },
		Awaiting: func(h *Host, to Bridge) {
			if h != nil {
				awaited = append(awaited, h.IfaceID+">"+to.Site)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	var order []Step
	for _, s := range res.Steps {
		if s.Status != StatusDone {
			t.Errorf("step %s: %s", s.Step, s.Status)
		}
		order = append(order, s.Step)
	}
	if !slices.Equal(order, Steps()) {
		t.Errorf("steps %v, want %v", order, Steps())
	}
	// events: running then done for every step, in order
	var seen []string
	for _, ev := range events {
		if ev.Status != StatusRunning || ev.Took == 0 {
			seen = append(seen, string(ev.Step)+":"+string(ev.Status))
		}
	}
	var want []string
	for _, s := range Steps() {
		want = append(want, string(s)+":running", string(s)+":done")
	}
	if !slices.Equal(seen, want) {
		t.Errorf("events %v, want %v", seen, want)
	}
	if res.Cloned != 3 || res.Frozen != 2 {
		t.Errorf("cloned %d frozen %d, want 3 and 2", res.Cloned, res.Frozen)
	}
	if !slices.Equal(res.Moved, []string{"a/h1", "b/h1"}) || !slices.Equal(awaited, []string{"a/h1>gcp", "b/h1>gcp"}) {
		t.Errorf("moved %v awaited %v", res.Moved, awaited)
	}
	// the target holds the three tenant entries with their original
	// timeouts; the source only what is not clonable or of another tenant
	dst := e.dst.table()
	for _, w := range []string{"cookie=0x201000000000007 table=10 priority=100", "idle=30 hard=0",
		"cookie=0x202000000000009 table=11 priority=90", "idle=10 hard=60", "cookie=0x201000000000008"} {
		if !strings.Contains(dst, w) {
			t.Errorf("target lacks %q:\n%s", w, dst)
		}
	}
	src := e.src.table()
	if strings.Contains(src, "0x201000000000007") || strings.Contains(src, "0x202000000000009") ||
		!strings.Contains(src, "0x5359000000000001") || !strings.Contains(src, "0x203000000000009") {
		t.Errorf("source after retire:\n%s\nbefore:\n%s", src, srcBefore)
	}
	if strings.Contains(dst, "0x203000000000009") {
		t.Errorf("entry of a tenant without a moving host was cloned:\n%s", dst)
	}
	// the statistics merge got the source's three tenant entries with
	// their counters (the fake keeps packet counts across re-adds)
	if len(e.merged) != 3 {
		t.Errorf("merged counters of %d entries, want 3", len(e.merged))
	}
	if e.commits != 1 || e.where["a/h1"] != 0x201 || e.where["b/h1"] != 0x201 {
		t.Errorf("commits %d, hosts %v", e.commits, e.where)
	}
}

// TestRollbackAtEveryStep injects a failure after each step and checks
// that both flow tables, the hosts' places and the admission are as before.
func TestRollbackAtEveryStep(t *testing.T) {
	for _, step := range Steps()[:len(Steps())-1] { // a failure after commit is no failure
		t.Run(string(step), func(t *testing.T) {
			e := newFakeEnv()
			srcBefore, dstBefore := e.src.table(), e.dst.table()
			var rolled []Step
			res, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover(), FailAt: step,
				Progress: func(ev Event) {
					if ev.Status == StatusRolledBack {
						rolled = append(rolled, ev.Step)
					}
				}})
			if err == nil || !strings.Contains(err.Error(), "step "+string(step)) {
				t.Fatalf("err = %v, want a failure at step %s", err, step)
			}
			if !res.RolledBack {
				t.Errorf("not rolled back: %v", err)
			}
			if got := e.src.table(); got != srcBefore {
				t.Errorf("source after rollback:\n%s\nwant:\n%s", got, srcBefore)
			}
			if got := e.dst.table(); got != dstBefore {
				t.Errorf("target after rollback:\n%s\nwant:\n%s", got, dstBefore)
			}
			for id, d := range e.where {
				if d != 0x101 {
					t.Errorf("host %s left on %x", id, d)
				}
			}
			if len(e.admitted) != 0 || e.commits != 0 {
				t.Errorf("admitted %v commits %d", e.admitted, e.commits)
			}
			// undo runs newest first
			idx := func(s Step) int { return slices.Index(Steps(), s) }
			for i := 1; i < len(rolled); i++ {
				if idx(rolled[i]) > idx(rolled[i-1]) {
					t.Errorf("rollback order %v", rolled)
				}
			}
		})
	}
}

// TestRollbackWhenHostNeverBinds: the second host never shows up on the
// target (the orchestrator failed): the first is moved back.
func TestRollbackWhenHostNeverBinds(t *testing.T) {
	e := newFakeEnv()
	e.noBind = "b/h1"
	srcBefore := e.src.table()
	res, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"},
		Options{Mover: e.mover(), HostTimeout: 50 * time.Millisecond})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
	if !res.RolledBack || e.where["a/h1"] != 0x101 || e.where["b/h1"] != 0x101 || len(res.Moved) != 0 {
		t.Errorf("rolled back %v, hosts %v, moved %v", res.RolledBack, e.where, res.Moved)
	}
	if got := e.src.table(); got != srcBefore {
		t.Errorf("source:\n%s\nwant:\n%s", got, srcBefore)
	}
}

// TestTargetDies: the target's OVS is gone (not connected) when the
// clone starts; the source's frozen timeouts are restored.
func TestTargetDies(t *testing.T) {
	e := newFakeEnv()
	srcBefore := e.src.table()
	e.dst.dead = true
	res, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover()})
	if err == nil || !strings.Contains(err.Error(), "step clone") {
		t.Fatalf("err = %v", err)
	}
	if got := e.src.table(); got != srcBefore {
		t.Errorf("source:\n%s\nwant:\n%s", got, srcBefore)
	}
	if !res.RolledBack || strings.Contains(err.Error(), "rollback incomplete") {
		t.Errorf("rolled back %v, err %v", res.RolledBack, err)
	}
}

// TestTargetGoneBeforeMove: the target disconnects after the clone (its
// OVS was killed): no host leaves the source, the clones' undo is skipped
// (they went with the target) and the rollback succeeds.
func TestTargetGoneBeforeMove(t *testing.T) {
	e := newFakeEnv()
	srcBefore := e.src.table()
	var detail string
	mv := e.mover()
	moved := 0
	_, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{
		Mover: MoverFunc(func(ctx context.Context, h Host, from, to Bridge) error {
			moved++
			return mv.MoveHost(ctx, h, from, to)
		}),
		Progress: func(ev Event) {
			if ev.Step == StepClone && ev.Status == StatusDone {
				e.dst.mu.Lock()
				e.dst.dead = true
				e.dst.mu.Unlock()
			}
			if ev.Step == StepClone && ev.Status == StatusRolledBack {
				detail = ev.Detail
			}
		}})
	if err == nil || !strings.Contains(err.Error(), "step move-hosts") || strings.Contains(err.Error(), "rollback incomplete") {
		t.Fatalf("err = %v", err)
	}
	if moved != 0 {
		t.Errorf("%d host moves attempted toward a dead target", moved)
	}
	if got := e.src.table(); got != srcBefore {
		t.Errorf("source:\n%s\nwant:\n%s", got, srcBefore)
	}
	if !strings.Contains(detail, "skipped") {
		t.Errorf("clone undo detail %q", detail)
	}
}

func TestRefusedCloneRollsBack(t *testing.T) {
	e := newFakeEnv()
	srcBefore := e.src.table()
	e.dst.failAdd = true
	_, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover()})
	if err == nil || !strings.Contains(err.Error(), "bad action") {
		t.Fatalf("err = %v", err)
	}
	if got := e.src.table(); got != srcBefore {
		t.Errorf("source:\n%s\nwant:\n%s", got, srcBefore)
	}
}

func TestPlanErrorChangesNothing(t *testing.T) {
	e := newFakeEnv()
	_, err := Run(context.Background(), e, Request{Switch: 0x101, To: "aws"}, Options{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if e.src.mods != 5 || e.dst.mods != 1 {
		t.Errorf("flow-mods sent: %d %d", e.src.mods, e.dst.mods)
	}
}

// TestWithoutMover: the orchestrator moves the hosts (here: a goroutine
// reacting to Awaiting).
func TestWithoutMover(t *testing.T) {
	e := newFakeEnv()
	mv := e.mover()
	orchestrator := func(h *Host, to Bridge) {
		if h == nil {
			return
		}
		from := e.plan.Source
		if to.DPID == from.DPID {
			from = e.plan.Target
		}
		go mv.MoveHost(context.Background(), *h, from, to) //nolint:errcheck
	}
	res, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{Awaiting: orchestrator})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Moved) != 2 {
		t.Errorf("moved %v", res.Moved)
	}
	// a rollback after the hosts moved asks the orchestrator to move them
	// back to the source
	e = newFakeEnv()
	mv = e.mover()
	res, err = Run(context.Background(), e, Request{Switch: 0x101, To: "gcp", FailAfter: StepRetire}, Options{Awaiting: orchestrator})
	if err == nil || !res.RolledBack || e.where["a/h1"] != 0x101 || e.where["b/h1"] != 0x101 {
		t.Errorf("rollback with an orchestrator: %v, rolled back %v, hosts %v", err, res.RolledBack, e.where)
	}
}

func TestManager(t *testing.T) {
	e := newFakeEnv()
	mv := e.mover()
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	m := NewManager(e, Options{Mover: MoverFunc(func(ctx context.Context, h Host, from, to Bridge) error {
		entered <- struct{}{}
		<-release // the first host's move waits for the test
		return mv.MoveHost(ctx, h, from, to)
	})})
	mg, err := m.Start(context.Background(), Request{Switch: 0x101, To: "gcp"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mg.ID, "mig-") || mg.State != StatusRunning || mg.Plan == nil {
		t.Errorf("start: %+v", mg)
	}
	<-entered
	if got, _ := m.Get(mg.ID); got.Awaiting == nil || got.Awaiting.IfaceID != "a/h1" || got.AwaitingTo == nil || got.AwaitingTo.Site != "gcp" {
		t.Errorf("while moving: awaiting %+v to %+v", got.Awaiting, got.AwaitingTo)
	}
	if _, err := m.Start(context.Background(), Request{Switch: 0x101, To: "gcp"}); !errors.Is(err, ErrBusy) {
		t.Errorf("second start while the first runs: %v", err)
	}
	close(release)
	m.Wait()
	got, err := m.Get(mg.ID)
	if err != nil || got.State != StatusDone || len(got.Steps) != len(Steps()) || got.Awaiting != nil {
		t.Errorf("get: %+v %v", got, err)
	}
	if _, err := m.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	if _, err := m.Start(context.Background(), Request{Switch: 0x101, To: "aws"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad request: %v", err)
	}
	if l := m.List(); len(l) != 1 {
		t.Errorf("list: %d", len(l))
	}
}

func TestMerge(t *testing.T) {
	m := func(port uint32, cookie, pk uint64, sec uint32) controller.FlowStats {
		return controller.FlowStats{Table: 10, Priority: 5, Cookie: cookie, PacketCount: pk, ByteCount: pk * 100, DurationSec: sec,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(port)}}}
	}
	a := []controller.FlowStats{m(1, 7, 10, 50), m(2, 7, 1, 5)}
	b := []controller.FlowStats{m(1, 7, 3, 2), m(3, 7, 4, 1), m(2, 8, 1, 1)}
	out := Merge(a, b)
	if len(out) != 4 {
		t.Fatalf("merged %d entries, want 4", len(out))
	}
	if out[0].PacketCount != 13 || out[0].ByteCount != 1300 || out[0].DurationSec != 50 {
		t.Errorf("merged entry: %+v", out[0])
	}
	if out[1].PacketCount != 1 || out[2].PacketCount != 4 || out[3].Cookie != 8 {
		t.Errorf("others: %+v", out[1:])
	}
	if a[0].PacketCount != 10 || b[0].PacketCount != 3 {
		t.Error("inputs modified")
	}
}

// TestCatchUp: while hosts move, the tenant's app adds an entry and
// deletes a cloned one on the source only (before the target ran its
// virtual switch): the retire step copies the new entry to the target
// (with its own timeout after unfreeze) and deletes the stale clone.
func TestCatchUp(t *testing.T) {
	e := newFakeEnv()
	var detail string
	res, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover(),
		Progress: func(ev Event) {
			if ev.Step == StepClone && ev.Status == StatusDone {
				e.src.add(12, 50, uint64(tenantA)<<48|0x99, 7, 45, 0) // new, with an idle timeout
				del := &ofp.FlowMod{Command: ofp.FlowDeleteStrict, Table: 10, Priority: 100, Cookie: uint64(tenantA)<<48 | 8,
					CookieMask: ^uint64(0), Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(4)}}}
				if err := e.src.FlowMod(context.Background(), del); err != nil {
					t.Error(err)
				}
			}
			if ev.Step == StepRetire && ev.Status == StatusDone {
				detail = ev.Detail
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	dst := e.dst.table()
	if !strings.Contains(dst, "cookie=0x201000000000099 table=12 priority=50") || !strings.Contains(dst, "idle=45") {
		t.Errorf("new entry not caught up:\n%s", dst)
	}
	if strings.Contains(dst, "0x201000000000008") {
		t.Errorf("entry deleted on the source during the migration is still on the target:\n%s", dst)
	}
	if !strings.Contains(detail, "1 entries added to and 1 deleted from the target") || res.Cloned != 3 {
		t.Errorf("retire: %q, cloned %d", detail, res.Cloned)
	}
	if src := e.src.table(); strings.Contains(src, "0x201000000000099") {
		t.Errorf("source keeps the new entry:\n%s", src)
	}
}

// TestFailAfterCommitIgnored: commit is the point of no return; the stats
// merge happens only there.
func TestFailAfterCommitIgnored(t *testing.T) {
	e := newFakeEnv()
	res, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp", FailAfter: StepCommit}, Options{Mover: e.mover()})
	if err != nil || res.RolledBack || e.commits != 1 || len(e.merged) != 3 {
		t.Errorf("err %v, rolled back %v, commits %d, merged %d", err, res.RolledBack, e.commits, len(e.merged))
	}
	e = newFakeEnv()
	if _, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp", FailAfter: StepUnfreeze}, Options{Mover: e.mover()}); err == nil {
		t.Fatal("no failure injected")
	}
	if len(e.merged) != 0 {
		t.Errorf("counters merged by a rolled-back migration: %d", len(e.merged))
	}
}
