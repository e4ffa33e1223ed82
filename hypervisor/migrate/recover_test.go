package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// Placed implements Env: the fake's Commit took effect.
func (e *fakeEnv) Placed(context.Context, Plan) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.commits > 0, nil
}

// BoundOn implements Env.
func (e *fakeEnv) BoundOn(h Host) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.where[h.IfaceID]
}

// memRecords is Records in memory; every value goes through JSON (as in
// the bbolt store), so nothing is shared with the Manager.
type memRecords struct {
	mu   sync.Mutex
	recs map[string][]byte
	logs map[string][][]byte
	puts int
}

func newMemRecords() *memRecords {
	return &memRecords{recs: map[string][]byte{}, logs: map[string][][]byte{}}
}

func (r *memRecords) Put(m Migration) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs[m.ID] = b
	r.puts++
	return nil
}

func (r *memRecords) Get(id string) (Migration, error) {
	r.mu.Lock()
	b, ok := r.recs[id]
	r.mu.Unlock()
	if !ok {
		return Migration{}, fmt.Errorf("record %q: %w", id, ErrNotFound)
	}
	var m Migration
	err := json.Unmarshal(b, &m)
	return m, err
}

func (r *memRecords) List() ([]Migration, error) {
	r.mu.Lock()
	ids := slices.Collect(maps.Keys(r.recs))
	r.mu.Unlock()
	var out []Migration
	for _, id := range ids {
		m, err := r.Get(id)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (r *memRecords) Append(id string, e LogEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.recs[id]; !ok {
		return fmt.Errorf("log of %q: %w", id, ErrNotFound)
	}
	r.logs[id] = append(r.logs[id], b)
	return nil
}

func (r *memRecords) Log(id string) ([]LogEntry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LogEntry
	for _, b := range r.logs[id] {
		var e LogEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (r *memRecords) DropLog(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.logs, id)
	return nil
}

func (r *memRecords) Prune(keep int) error {
	all, err := r.List()
	if err != nil {
		return err
	}
	var final []Migration
	for _, m := range all {
		if m.State.Final() {
			final = append(final, m)
		}
	}
	slices.SortFunc(final, func(a, b Migration) int { return a.Started.Compare(b.Started) })
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(final) > keep {
		delete(r.recs, final[0].ID)
		delete(r.logs, final[0].ID)
		final = final[1:]
	}
	return nil
}

func TestWireEntriesRoundTrip(t *testing.T) {
	e := newFakeEnv()
	fs, _ := e.src.FlowStats(context.Background(), nil)
	var es []pipeline.Entry
	for i := range fs {
		es = append(es, pipeline.FromFlowStats(&fs[i]))
	}
	w, err := EncodeEntries(es)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var back []WireEntry
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEntries(back)
	if err != nil || len(got) != len(es) {
		t.Fatalf("decode: %d entries, %v", len(got), err)
	}
	for i := range es {
		if got[i].String() != es[i].String() || got[i].IdleTimeout != es[i].IdleTimeout || got[i].HardTimeout != es[i].HardTimeout ||
			got[i].Cookie != es[i].Cookie || got[i].Flags != es[i].Flags {
			t.Errorf("entry %d: %s idle %d hard %d, want %s idle %d hard %d", i, got[i].String(), got[i].IdleTimeout,
				got[i].HardTimeout, es[i].String(), es[i].IdleTimeout, es[i].HardTimeout)
		}
	}
	back[0].Match = back[0].Match[:3]
	if _, err := DecodeEntries(back); err == nil {
		t.Error("a truncated match decoded")
	}
}

// TestRunWritesLog: the write-ahead log names every change, before it is
// made; a log that cannot be written fails the step before the change.
func TestRunWritesLog(t *testing.T) {
	e := newFakeEnv()
	var got []string
	_, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover(),
		Log: func(le LogEntry) error {
			s := string(le.Step)
			switch {
			case le.Host != "":
				s += " " + le.Host
			case le.Step == StepFreeze:
				s += fmt.Sprintf(" %d", len(le.Entries))
			case le.Step == StepRetire:
				s += fmt.Sprintf(" +%d -%d retired %d", len(le.Added), len(le.Dropped), len(le.Retired))
			}
			got = append(got, s)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"freeze 3", "clone", "connect", "move-hosts a/h1", "move-hosts b/h1", "retire +0 -0 retired 3", "commit"}
	if !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
	e = newFakeEnv()
	before := e.src.table()
	res, err := Run(context.Background(), e, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover(),
		Log: func(le LogEntry) error {
			if le.Step == StepFreeze {
				return errors.New("disk full")
			}
			return nil
		}})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !res.RolledBack || e.src.table() != before {
		t.Errorf("unloggable freeze: %v, rolled back %v, source:\n%s", err, res.RolledBack, e.src.table())
	}
}

// crashPoint is where a test abandons a Manager's migration: right after
// a step finished (its "done" event), or inside a step right after its
// write-ahead log entry (before the change it announces).
type crashPoint struct {
	name  string
	after Step   // the step's done event blocks
	log   string // the log entry "step" or "step host" blocks
}

func crashPoints() []crashPoint {
	var out []crashPoint
	for _, s := range Steps() {
		out = append(out, crashPoint{name: "after-" + string(s), after: s})
	}
	for _, l := range []string{"freeze", "clone", "connect", "move-hosts a/h1", "move-hosts b/h1", "retire", "commit"} {
		out = append(out, crashPoint{name: "logged-" + strings.ReplaceAll(l, " ", "-"), log: l})
	}
	return out
}

// startAndAbandon starts a migration on a Manager over recs and blocks it
// for good at cp (a "crash": the Manager is abandoned, its goroutine never
// runs again while the test looks). It returns the migration's ID.
func startAndAbandon(t *testing.T, e *fakeEnv, recs Records, cp crashPoint) string {
	t.Helper()
	stuck, hang := make(chan struct{}), make(chan struct{})
	block := func() {
		close(stuck)
		<-hang
		runtime.Goexit()
	}
	var once sync.Once
	m1 := NewManager(e, Options{Mover: e.mover(),
		Progress: func(ev Event) {
			if cp.after != "" && ev.Step == cp.after && ev.Status == StatusDone {
				once.Do(block)
			}
		},
		Log: func(le LogEntry) error {
			s := string(le.Step)
			if le.Host != "" {
				s += " " + le.Host
			}
			if cp.log == s {
				once.Do(block)
			}
			return nil
		}}, WithRecords(recs, 0))
	mg, err := m1.Start(context.Background(), Request{Switch: 0x101, To: "gcp"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck:
	case <-time.After(10 * time.Second):
		t.Fatalf("migration did not reach %s", cp.name)
	}
	t.Cleanup(func() { close(hang) })
	return mg.ID
}

// TestRecoverAfterCrash abandons a Manager at every step (between steps
// and inside them, after the write-ahead entry) and recovers with a new
// Manager on the same records: before the commit took effect everything
// is rolled back (both flow tables as before, timeouts included, hosts
// back on the source, no admission); after it the migration is completed.
// The record ends interrupted, with the outcome and the interrupted step.
func TestRecoverAfterCrash(t *testing.T) {
	for _, cp := range crashPoints() {
		t.Run(cp.name, func(t *testing.T) {
			e := newFakeEnv()
			srcBefore, dstBefore := e.src.table(), e.dst.table()
			recs := newMemRecords()
			id := startAndAbandon(t, e, recs, cp)
			if rec, err := recs.Get(id); err != nil || rec.State != StatusRunning {
				t.Fatalf("stored record at the crash: %+v %v", rec, err)
			}
			var events []Event
			m2 := NewManager(e, Options{Mover: e.mover(), HostTimeout: 5 * time.Second,
				Progress: func(ev Event) { events = append(events, ev) }}, WithRecords(recs, 0))
			ids, err := m2.Recover(context.Background())
			if err != nil || !slices.Equal(ids, []string{id}) {
				t.Fatalf("Recover: %v %v", ids, err)
			}
			m2.Wait()
			rec, err := m2.Get(id)
			if err != nil || rec.State != StatusInterrupted || rec.Finished == nil {
				t.Fatalf("record after recovery: %+v %v", rec, err)
			}
			if len(events) == 0 || events[0].Status != StatusInterrupted {
				t.Errorf("first recovery event: %+v", events)
			}
			completed := cp.after == StepCommit
			if completed {
				if rec.Recovery != StatusDone || !strings.Contains(rec.Error, "completed on restart") ||
					e.where["a/h1"] != 0x201 || e.where["b/h1"] != 0x201 || len(e.admitted) != 0 || len(rec.Moved) != 2 {
					t.Errorf("completion: %+v, hosts %v, admitted %v", rec, e.where, e.admitted)
				}
				return
			}
			if rec.Recovery != StatusRolledBack || !strings.Contains(rec.Error, "skyvisor stopped during step") ||
				!strings.Contains(rec.Error, "rolled back on restart") {
				t.Errorf("recovery %q error %q", rec.Recovery, rec.Error)
			}
			if got := e.src.table(); got != srcBefore {
				t.Errorf("source after recovery:\n%s\nwant:\n%s", got, srcBefore)
			}
			if got := e.dst.table(); got != dstBefore {
				t.Errorf("target after recovery:\n%s\nwant:\n%s", got, dstBefore)
			}
			for id, d := range e.where {
				if d != 0x101 {
					t.Errorf("host %s left on %x", id, d)
				}
			}
			if len(e.admitted) != 0 || e.commits != 0 {
				t.Errorf("admitted %v commits %d", e.admitted, e.commits)
			}
			if lg, _ := recs.Log(id); len(lg) != 0 {
				t.Errorf("log kept after the recovery: %d entries", len(lg))
			}
			// a second recovery (another restart) finds nothing to do
			if ids, err := NewManager(e, Options{}, WithRecords(recs, 0)).Recover(context.Background()); len(ids) != 0 || err != nil {
				t.Errorf("second Recover: %v %v", ids, err)
			}
		})
	}
}

// TestRecoverWithOrchestrator: without a Mover the recovery asks the
// orchestrator (Awaiting, shown in the record) to move a host back.
func TestRecoverWithOrchestrator(t *testing.T) {
	e := newFakeEnv()
	recs := newMemRecords()
	id := startAndAbandon(t, e, recs, crashPoint{name: "after-move", after: StepMove})
	mv := e.mover()
	var awaited []string
	var m2 *Manager
	m2 = NewManager(e, Options{HostTimeout: 5 * time.Second, Awaiting: func(h *Host, to Bridge) {
		if h == nil {
			return
		}
		if rec, _ := m2.Get(id); rec.State != StatusRecovering || rec.AwaitingTo == nil || rec.AwaitingTo.DPID != 0x101 {
			t.Errorf("while awaiting: state %s awaiting_to %+v", rec.State, rec.AwaitingTo)
		}
		awaited = append(awaited, h.IfaceID)
		go mv.MoveHost(context.Background(), *h, e.plan.Target, to) //nolint:errcheck
	}}, WithRecords(recs, 0))
	if _, err := m2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	m2.Wait()
	rec, _ := m2.Get(id)
	if rec.Recovery != StatusRolledBack || !slices.Equal(awaited, []string{"b/h1", "a/h1"}) || e.where["a/h1"] != 0x101 {
		t.Errorf("recovery %s, awaited %v, hosts %v: %s", rec.Recovery, awaited, e.where, rec.Error)
	}
}

// TestRecoverFailure: a source that never reconnects cannot get its
// entries back: the record says the rollback failed and why.
func TestRecoverFailure(t *testing.T) {
	e := newFakeEnv()
	recs := newMemRecords()
	id := startAndAbandon(t, e, recs, crashPoint{name: "after-retire", after: StepRetire})
	gone := &goneSourceEnv{fakeEnv: e}
	m2 := NewManager(gone, Options{Mover: e.mover(), HostTimeout: 200 * time.Millisecond}, WithRecords(recs, 0))
	if _, err := m2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	m2.Wait()
	rec, _ := m2.Get(id)
	if rec.State != StatusInterrupted || rec.Recovery != StatusRollbackFailed || !strings.Contains(rec.Error, "rollback on restart incomplete") {
		t.Errorf("record: state %s recovery %s error %q", rec.State, rec.Recovery, rec.Error)
	}
	if lg, _ := recs.Log(id); len(lg) != 0 {
		t.Errorf("log kept: %d", len(lg))
	}
}

// goneSourceEnv is fakeEnv with the source never connected.
type goneSourceEnv struct{ *fakeEnv }

func (g *goneSourceEnv) Switch(d uint64) (controller.Switch, error) {
	if d == 0x101 {
		return nil, fmt.Errorf("switch %x: %w", d, ErrUnavailable)
	}
	return g.fakeEnv.Switch(d)
}

// TestManagerRecords: records are stored at the start, at each event and
// at the end; a new Manager on the same records lists and gets them; the
// log goes when the migration ends; only the newest keep finished records
// stay.
func TestManagerRecords(t *testing.T) {
	e := newFakeEnv()
	recs := newMemRecords()
	m := NewManager(e, Options{Mover: e.mover()}, WithRecords(recs, 2))
	var ids []string
	for i := range 3 {
		// there and back: gcp, then aws
		req := Request{Switch: 0x101, To: "gcp"}
		if i%2 == 1 {
			req = Request{Switch: 0x201, To: "aws2"}
			e.plan.Source, e.plan.Target = e.plan.Target, e.plan.Source
		}
		mg, err := m.Start(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		m.Wait()
		ids = append(ids, mg.ID)
		time.Sleep(2 * time.Millisecond) // distinct start times
	}
	if recs.puts < 3*(2+2*len(Steps())) {
		t.Errorf("%d record writes for 3 migrations", recs.puts)
	}
	m2 := NewManager(e, Options{}, WithRecords(recs, 2))
	l := m2.List()
	if len(l) != 2 || l[0].ID != ids[1] || l[1].ID != ids[2] {
		t.Fatalf("list after restart: %d records, want %v", len(l), ids[1:])
	}
	got, err := m2.Get(ids[2])
	if err != nil || got.State != StatusDone || len(got.Steps) != len(Steps()) || got.Plan == nil || len(got.Moved) != 2 ||
		got.Finished == nil || len(got.Events) == 0 {
		t.Errorf("get after restart: %+v %v", got, err)
	}
	if _, err := m2.Get(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("pruned record: %v", err)
	}
	for _, id := range ids {
		if lg, _ := recs.Log(id); len(lg) != 0 {
			t.Errorf("log of finished %s kept", id)
		}
	}
	if ids, err := m2.Recover(context.Background()); len(ids) != 0 || err != nil {
		t.Errorf("recover with nothing to do: %v %v", ids, err)
	}
}

// TestManagerRunBusy: the synchronous Run obeys the busy rule of Start
// and is recorded like it.
func TestManagerRunBusy(t *testing.T) {
	e := newFakeEnv()
	recs := newMemRecords()
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	mv := e.mover()
	m := NewManager(e, Options{Mover: MoverFunc(func(ctx context.Context, h Host, from, to Bridge) error {
		entered <- struct{}{}
		<-release
		return mv.MoveHost(ctx, h, from, to)
	})}, WithRecords(recs, 0))
	if _, err := m.Start(context.Background(), Request{Switch: 0x101, To: "gcp"}); err != nil {
		t.Fatal(err)
	}
	<-entered
	before := e.src.table()
	_, err := m.Run(context.Background(), Request{Switch: 0x101, To: "gcp"}, Options{Mover: mv})
	if !errors.Is(err, ErrBusy) {
		t.Errorf("Run while Start runs: %v", err)
	}
	if e.src.table() != before {
		t.Error("a refused Run changed the source")
	}
	close(release)
	m.Wait()
	// now free: Run migrates back and is recorded
	e.plan.Source, e.plan.Target = e.plan.Target, e.plan.Source
	res, err := m.Run(context.Background(), Request{Switch: 0x201, To: "aws2"}, Options{Mover: mv})
	if err != nil || len(res.Moved) != 2 {
		t.Fatalf("Run: %+v %v", res, err)
	}
	if l := m.List(); len(l) != 2 || l[1].State != StatusDone {
		t.Errorf("list: %+v", l)
	}
	if _, err := m.Run(context.Background(), Request{Switch: 0x201, To: "aws"}, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad request: %v", err)
	}
}
