package hypervisor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
)

const tA, tB addr.TenantID = 0x0a01, 0x0a05 // valid: high octet & 3 == 2

func TestTenantCookies(t *testing.T) {
	mine := tenantCookies(tA)
	for c, want := range map[uint64]bool{
		pipeline.InfraCookie(tA, 3):         true,
		pipeline.InfraCookie(tA, 0):         true,
		pipeline.TenantCookie(tA, 0xabc):    true,
		pipeline.InfraCookie(tB, 3):         false,
		pipeline.InfraCookie(0, 0):          false,
		pipeline.TenantCookie(tB, 0xabc):    false,
		0:                                   false,
		0x6c6c647000000000 /* discovery */ : false,
	} {
		if got := mine(c); got != want {
			t.Errorf("cookie %#x: %v, want %v", c, got, want)
		}
	}
}

func entry(table uint8, prio uint16, cookie uint64, port uint32, out uint32) pipeline.Entry {
	return pipeline.Entry{Table: table, Priority: prio, Cookie: cookie, Match: []ofp.XM{pipeline.InPort(port)},
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(out))}}
}

func stats(e pipeline.Entry, packets uint64, age time.Duration) ofwire.FlowStats {
	return ofwire.FlowStats{Table: ofp.Table(e.Table), Priority: e.Priority, Cookie: e.Cookie, PacketCount: packets, ByteCount: packets * 100, IdleTimeout: e.IdleTimeout, HardTimeout: e.HardTimeout,
		DurationSec: uint32(age / time.Second), Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: e.Match}, Instructions: e.Instructions}
}

func TestClassify(t *testing.T) {
	compiled := entry(0, 100, pipeline.InfraCookie(tA, 1), 1, 2)
	c, err := compiled.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	desired := map[string]string{compiled.Key(): c}
	live := map[addr.TenantID]bool{tA: true}
	for _, tc := range []struct {
		name string
		e    pipeline.Entry
		want flowClass
	}{
		{"identical to a compiled entry", compiled, flowCompiled},
		{"same key, other actions", entry(0, 100, pipeline.InfraCookie(tA, 1), 1, 3), flowSkip},
		{"hypervisor entry no longer compiled", entry(0, 100, pipeline.InfraCookie(tA, 2), 9, 2), flowSkip},
		{"tenant app entry", entry(10, 7, pipeline.TenantCookie(tA, 0xabc), 1, 2), flowAdopt},
		{"app entry of a deleted tenant", entry(10, 7, pipeline.TenantCookie(tB, 0xabc), 1, 2), flowSkip},
		{"operator entry", entry(40, 1, 0, 1, 2), flowForeign},
	} {
		got, why := classify(&tc.e, desired, live)
		if got != tc.want || (got == flowSkip) != (why != "") {
			t.Errorf("%s: class %d (%q), want %d", tc.name, got, why, tc.want)
		}
	}
}

// Offsets go to entries the restore installed (older than the restore),
// not to one re-created since; order and other entries are kept.
func TestRestoredCounters(t *testing.T) {
	h, _, _ := newTest(t)
	const dpid = 257
	a := entry(0, 100, pipeline.InfraCookie(tA, 1), 1, 2)
	b := entry(0, 90, pipeline.InfraCookie(tA, 1), 2, 1)
	other := entry(0, 80, pipeline.InfraCookie(tA, 1), 3, 1)
	fa, _ := snapshot.FlowFromEntry(a)
	fb, _ := snapshot.FlowFromEntry(b)
	fa.PacketCount, fa.ByteCount, fa.DurationSec = 10, 1000, 60
	fb.PacketCount, fb.ByteCount = 20, 2000
	var o snapshot.Offsets
	o.Add(&snapshot.SwitchState{DPID: "0000000000000101", Flows: []snapshot.Flow{fa, fb}})
	h.snaps.offsets = map[uint64]*restoredOffsets{dpid: {o: &o, at: time.Now().Add(-30 * time.Second)}}

	in := []ofwire.FlowStats{stats(other, 5, time.Hour), stats(a, 3, 30*time.Second), stats(b, 1, 5*time.Second)}
	out, restored := h.restoredCounters(dpid, in)
	if len(out) != 3 || out[0].Priority != 80 || out[1].Priority != 100 || out[2].Priority != 90 {
		t.Fatalf("order changed: %+v", out)
	}
	if out[0].PacketCount != 5 || restored[0] {
		t.Errorf("entry without offset: %d packets, restored %v", out[0].PacketCount, restored[0])
	}
	if out[1].PacketCount != 13 || out[1].ByteCount != 1300 || out[1].DurationSec != 90 || !restored[1] {
		t.Errorf("restored entry: %d packets, %d bytes, %d s, restored %v; want 13, 1300, 90, true",
			out[1].PacketCount, out[1].ByteCount, out[1].DurationSec, restored[1])
	}
	if out[2].PacketCount != 1 || restored[2] {
		t.Errorf("entry re-created after the restore: %d packets (restored %v), want 1 without offset", out[2].PacketCount, restored[2])
	}
	if in[1].PacketCount != 3 {
		t.Error("input modified")
	}
	if out, _ := h.restoredCounters(258, in); out[1].PacketCount != 3 {
		t.Error("offsets applied to another switch")
	}
}

type statsSwitch struct {
	fs []ofwire.FlowStats
}

func (s *statsSwitch) FlowMod(context.Context, *ofp.FlowMod) error { return nil }
func (s *statsSwitch) Barrier(context.Context) error               { return nil }
func (s *statsSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]ofwire.FlowStats, error) {
	return append([]ofwire.FlowStats(nil), s.fs...), nil
}

// The reconciler does not see adopted entries while they are unchanged and
// their tenant exists; one gone from the switch is forgotten.
func TestReconcileViewHidesAdopted(t *testing.T) {
	h, _, _ := newTest(t)
	const dpid = 257
	app := entry(10, 7, pipeline.TenantCookie(tA, 0xabc), 1, 2)
	app.IdleTimeout = 600
	gone := entry(10, 8, pipeline.TenantCookie(tA, 0xabd), 1, 2)
	compiled := entry(0, 100, pipeline.InfraCookie(tA, 1), 1, 2)
	ca, _ := app.Canonical()
	cg, _ := gone.Canonical()
	h.snaps.adopted = map[uint64]map[string]string{dpid: {app.Key(): ca, gone.Key(): cg}}
	h.mu.Lock()
	h.views = map[addr.TenantID]*tenantView{tA: {}}
	h.mu.Unlock()

	sw := &statsSwitch{fs: []ofwire.FlowStats{stats(compiled, 1, time.Minute), stats(app, 0, time.Minute)}}
	if v := h.reconcileView(258, sw); v != sw {
		t.Error("a switch without adopted entries is wrapped")
	}
	v := h.reconcileView(dpid, sw)
	fs, err := v.FlowStats(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Cookie != compiled.Cookie {
		t.Errorf("reconciler sees %+v, want only the compiled entry", fs)
	}
	if _, ok := h.snaps.adopted[dpid][gone.Key()]; ok {
		t.Error("adopted entry no longer on the switch is still remembered")
	}
	// The same key with other content (e.g. the tenant's app replaced it)
	// is the reconciler's again.
	changed := app
	changed.IdleTimeout = 30
	sw.fs = []ofwire.FlowStats{stats(changed, 0, time.Minute)}
	if fs, _ := h.reconcileView(dpid, sw).FlowStats(context.Background(), nil); len(fs) != 1 {
		t.Errorf("changed entry hidden: %+v", fs)
	}
	// Tenant deleted: its adopted entries are the reconciler's to delete.
	sw.fs = []ofwire.FlowStats{stats(app, 0, time.Minute)}
	h.mu.Lock()
	h.views = map[addr.TenantID]*tenantView{}
	h.mu.Unlock()
	if fs, _ := h.reconcileView(dpid, sw).FlowStats(context.Background(), nil); len(fs) != 1 {
		t.Errorf("entry of a deleted tenant hidden: %+v", fs)
	}
}

func TestResolveSwitch(t *testing.T) {
	h, _, _ := newTest(t)
	for in, want := range map[string]uint64{"0000000000000101": 257, "0x102": 258, "web": 769, " 0x0300 ": 768} {
		sw, err := h.ResolveSwitch(in)
		if err != nil || sw.DPID != want {
			t.Errorf("%q: %+v %v, want DPID %d", in, sw, err, want)
		}
	}
	for in, want := range map[string]error{"": api.ErrInvalid, "gw": api.ErrInvalid, "vm1": api.ErrInvalid,
		"nope": api.ErrNotFound, "0000000000000999": api.ErrNotFound} {
		if _, err := h.ResolveSwitch(in); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", in, err, want)
		}
	}
}

// Snapshot requests that cannot be served fail before touching OVSDB.
func TestCreateSnapshotErrors(t *testing.T) {
	h, _, _ := newTest(t)
	ctx := context.Background()
	for _, tc := range []struct {
		req  api.SnapshotRequest
		want error
	}{
		{api.SnapshotRequest{}, api.ErrInvalid},
		{api.SnapshotRequest{Tenant: "a", Switch: "web"}, api.ErrInvalid},
		{api.SnapshotRequest{Tenant: "nobody"}, api.ErrNotFound},
		{api.SnapshotRequest{Switch: "nope"}, api.ErrNotFound},
	} {
		if _, err := h.CreateSnapshot(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.req, err, tc.want)
		}
	}
	for _, id := range []string{"snap-20261122T080000Z-00000000", "../etc"} {
		if _, err := h.Snapshot(ctx, id); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("show %q: %v", id, err)
		}
		if err := h.DeleteSnapshot(ctx, id); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("delete %q: %v", id, err)
		}
		if _, err := h.RestoreSnapshot(ctx, id); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("restore %q: %v", id, err)
		}
	}
	if l, err := h.Snapshots(ctx); err != nil || len(l) != 0 {
		t.Errorf("list: %v %v", l, err)
	}
}

// The offsets and adopted entries of a restore survive a restart of
// Skyvisor (a new Hypervisor over the same store), and the bookkeeping is
// never listed as a snapshot.
func TestRestoreBookkeepingSurvivesRestart(t *testing.T) {
	h, st, ff := newTest(t)
	const dpid = 257
	a := entry(0, 100, pipeline.InfraCookie(tA, 1), 1, 2)
	app := entry(10, 7, pipeline.TenantCookie(tA, 0xabc), 1, 2)
	app.HardTimeout = 900
	fa, _ := snapshot.FlowFromEntry(a)
	fa.PacketCount, fa.ByteCount = 10, 1000
	fapp, _ := snapshot.FlowFromEntry(app)
	if n := h.remember(dpid, restoreRecord{DPID: "0000000000000101", At: time.Now().Add(-30 * time.Second),
		Offsets: []snapshot.Flow{fa}, Adopted: []snapshot.Flow{fapp}}); n != 1 {
		t.Fatalf("remember: %d offsets, want 1", n)
	}

	h2, err := New(Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: ff.dial})
	if err != nil {
		t.Fatal(err)
	}
	out, restored := h2.restoredCounters(dpid, []ofwire.FlowStats{stats(a, 3, 30*time.Second)})
	if out[0].PacketCount != 13 || !restored[0] {
		t.Errorf("after restart: %d packets (restored %v), want 13", out[0].PacketCount, restored[0])
	}
	h2.mu.Lock()
	h2.views = map[addr.TenantID]*tenantView{tA: {}}
	h2.mu.Unlock()
	sw := &statsSwitch{fs: []ofwire.FlowStats{stats(app, 0, time.Minute)}}
	if fs, _ := h2.reconcileView(dpid, sw).FlowStats(context.Background(), nil); len(fs) != 0 {
		t.Errorf("adopted entry visible to the reconciler after restart: %+v", fs)
	}
	if l, err := h2.Snapshots(context.Background()); err != nil || len(l) != 0 {
		t.Errorf("snapshots listed: %+v %v", l, err)
	}
	if _, err := h2.Snapshot(context.Background(), restoreStateID); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("bookkeeping served as a snapshot: %v", err)
	}
}
