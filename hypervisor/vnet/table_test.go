package vnet

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// tableBridge is a fake edge bridge that keeps a flow table: ADD
// (replace by key), MODIFY_STRICT (instructions, counters kept),
// DELETE(_STRICT) (cookie mask, table, strict key or covering match) and
// flow-stats (table and cookie filter), as Open vSwitch does; removals of
// entries with OFPFF_SEND_FLOW_REM are returned by takeRemoved.
type tableBridge struct {
	controllertest.NoMultipart // PortDesc, GroupDesc, MeterConfig, Multipart: unsupported

	dpid controller.DPID
	done chan struct{}

	mu       sync.Mutex
	entries  map[string]*controller.FlowStats // by physical key
	added    map[string]time.Time
	removed  []*ofp.FlowRemoved
	flowMods []*ofp.FlowMod
	statReqs int
	ops      []bridgeOp // flow-mods and barriers in order (replica_test.go)
}

// bridgeOp is one message a tableBridge got: a flow-mod or a barrier
// (fm nil), numbered across all bridges (opSeq).
type bridgeOp struct {
	seq int64
	fm  *ofp.FlowMod
}

// opSeq numbers the messages of every tableBridge.
var opSeq atomic.Int64

func newTableBridge(d controller.DPID) *tableBridge {
	return &tableBridge{dpid: d, done: make(chan struct{}), entries: map[string]*controller.FlowStats{}, added: map[string]time.Time{}}
}

func (f *tableBridge) DPID() controller.DPID                         { return f.dpid }
func (f *tableBridge) NTables() uint8                                { return 254 }
func (f *tableBridge) Ports() []ofp.Port                             { return nil }
func (f *tableBridge) Port(ofp.PortNo) (ofp.Port, bool)              { return ofp.Port{}, false }
func (f *tableBridge) Logger() *slog.Logger                          { return slog.Default() }
func (f *tableBridge) Done() <-chan struct{}                         { return f.done }
func (f *tableBridge) String() string                                { return fmt.Sprintf("table bridge %s", f.dpid) }
func (f *tableBridge) GroupMod(context.Context, *ofp.GroupMod) error { return nil }
func (f *tableBridge) MeterMod(context.Context, *ofp.MeterMod) error { return nil }
func (f *tableBridge) PacketOut(context.Context, *ofp.PacketOut) error {
	return nil
}
func (f *tableBridge) Barrier(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, bridgeOp{seq: opSeq.Add(1)})
	return nil
}

func physKey(table ofp.Table, prio uint16, m []ofp.XM) string {
	return (&pipeline.Entry{Table: uint8(table), Priority: prio, Match: m}).Key()
}

func (f *tableBridge) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flowMods = append(f.flowMods, fm)
	f.ops = append(f.ops, bridgeOp{seq: opSeq.Add(1), fm: fm})
	k := physKey(fm.Table, fm.Priority, fm.Match.Fields)
	switch fm.Command {
	case ofp.FlowAdd:
		ins, err := cloneInstructions(fm.Instructions)
		if err != nil {
			return err
		}
		m := make([]ofp.XM, len(fm.Match.Fields))
		for i, x := range fm.Match.Fields {
			m[i] = cloneXM(x)
		}
		f.entries[k] = &controller.FlowStats{Table: fm.Table, Priority: fm.Priority, IdleTimeout: fm.IdleTimeout,
			HardTimeout: fm.HardTimeout, Flags: fm.Flags, Cookie: fm.Cookie,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: m}, Instructions: ins}
		f.added[k] = time.Now()
	case ofp.FlowModifyStrict:
		if e := f.entries[k]; e != nil && (e.Cookie^fm.Cookie)&fm.CookieMask == 0 {
			ins, err := cloneInstructions(fm.Instructions)
			if err != nil {
				return err
			}
			e.Instructions = ins
			if fm.Flags&ofp.FlowFlagResetCounts != 0 {
				e.PacketCount, e.ByteCount = 0, 0
			}
		}
	case ofp.FlowDelete, ofp.FlowDeleteStrict:
		for ek, e := range f.entries {
			if fm.Table != ofp.TableAll && e.Table != fm.Table || (e.Cookie^fm.Cookie)&fm.CookieMask != 0 {
				continue
			}
			if fm.Command == ofp.FlowDeleteStrict && ek != k ||
				fm.Command == ofp.FlowDelete && !coversMatch(e.Match.Fields, fm.Match.Fields) {
				continue
			}
			f.removeLocked(ek, ofp.FlowReasonDelete)
		}
	default:
		return fmt.Errorf("fake: command %d", fm.Command)
	}
	return nil
}

// removeLocked removes entry k (f.mu held), recording its flow-removed.
func (f *tableBridge) removeLocked(k string, reason ofp.FlowRemovedReason) {
	e := f.entries[k]
	delete(f.entries, k)
	if e.Flags&ofp.FlowFlagSendFlowRem != 0 {
		d := time.Since(f.added[k])
		f.removed = append(f.removed, &ofp.FlowRemoved{Cookie: e.Cookie, Priority: e.Priority, Reason: reason,
			Table: e.Table, DurationSec: uint32(d / time.Second), DurationNSec: uint32(d % time.Second),
			IdleTimeout: e.IdleTimeout, HardTimeout: e.HardTimeout, PacketCount: e.PacketCount, ByteCount: e.ByteCount,
			Match: e.Match})
	}
}

func (f *tableBridge) FlowStats(_ context.Context, req *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statReqs++
	var out []controller.FlowStats
	for k, e := range f.entries {
		if req.Table != ofp.TableAll && e.Table != req.Table || (e.Cookie^req.Cookie)&req.CookieMask != 0 {
			continue
		}
		c := *e
		d := time.Since(f.added[k])
		c.DurationSec, c.DurationNSec = uint32(d/time.Second), uint32(d%time.Second)
		out = append(out, c)
	}
	return out, nil
}

// count adds packets (and 100 bytes each) to every entry.
func (f *tableBridge) count(packets uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.entries {
		e.PacketCount += packets
		e.ByteCount += 100 * packets
	}
}

// expire removes every entry (idle timeout) and returns their flow-removed.
func (f *tableBridge) expire() []*ofp.FlowRemoved {
	f.mu.Lock()
	for k := range f.entries {
		f.removeLocked(k, ofp.FlowReasonIdleTimeout)
	}
	f.mu.Unlock()
	return f.takeRemoved()
}

func (f *tableBridge) takeRemoved() []*ofp.FlowRemoved {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.removed
	f.removed = nil
	return r
}

// restart empties the table as an ovs-vswitchd restart does (no
// flow-removed).
func (f *tableBridge) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.entries)
	f.flowMods = nil
}

func (f *tableBridge) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

func (f *tableBridge) sentMods() []*ofp.FlowMod {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.flowMods)
}

// tablePhys is a set of tableBridges that connect and disconnect.
type tablePhys struct {
	mu  sync.Mutex
	sws map[controller.DPID]*tableBridge
	up  map[controller.DPID]bool
}

func newTablePhys(up ...controller.DPID) *tablePhys {
	p := &tablePhys{sws: map[controller.DPID]*tableBridge{e1: newTableBridge(e1), e3: newTableBridge(e3)}, up: map[controller.DPID]bool{}}
	for _, d := range up {
		p.up[d] = true
	}
	return p
}

func (p *tablePhys) Switch(d controller.DPID) controller.Switch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up[d] {
		return nil
	}
	return p.sws[d]
}

func (p *tablePhys) setUp(d controller.DPID, up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up[d] = up
}

// linkEntry is the app entry of the table tests on s1: eth_dst=h2 ->
// output:10 (a virtual link: one variant per in-port, one group copy).
func linkEntry(flags ofp.FlowModFlag) *ofp.FlowMod {
	return &ofp.FlowMod{Command: ofp.FlowAdd, Table: 1, Priority: 5, Cookie: 0x99, Buffer: ofp.NoBuffer,
		OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, IdleTimeout: 30, Flags: flags,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(mac2)}},
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(10))}}
}

func outputs(t *testing.T, ins ofp.Instructions) []ofp.PortNo {
	t.Helper()
	var out []ofp.PortNo
	for _, in := range ins {
		if a, ok := in.(*ofp.InstructionApplyActions); ok {
			for _, x := range a.Actions {
				o, ok := x.(*ofp.ActionOutput)
				if !ok {
					t.Fatalf("action %T, want outputs only", x)
				}
				out = append(out, o.Port)
			}
		}
	}
	return out
}

func TestFlowStatsReportsTheInstalledEntry(t *testing.T) {
	phys := newTablePhys(e1, e3)
	tn := startTenant(t, phys, newRecorder("rec"))
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	if err := s1.FlowMod(ctx, linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	// s1 has ports 1 and 10: two in-port variants on each of two bridges.
	if n1, n3 := phys.sws[e1].len(), phys.sws[e3].len(); n1 != 2 || n3 != 2 {
		t.Fatalf("physical copies e1 %d e3 %d, want 2 and 2", n1, n3)
	}
	phys.sws[e1].count(3)
	phys.sws[e3].count(1)
	got, err := s1.FlowStats(ctx, &ofp.FlowStatsRequest{Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d virtual entries, want 1: %+v", len(got), got)
	}
	g := got[0]
	if g.Table != 1 || g.Priority != 5 || g.Cookie != 0x99 || g.IdleTimeout != 30 || g.Flags != 0 ||
		g.PacketCount != 2*3+2*1 || g.ByteCount != 800 {
		t.Errorf("entry %+v: want table 1, priority 5, cookie 0x99, idle 30, no flags, 8 packets, 800 bytes", g)
	}
	if len(g.Match.Fields) != 1 || g.Match.Fields[0].Type != ofp.XMTypeEthDst {
		t.Errorf("match %v, want eth_dst=h2", g.Match.Fields)
	}
	if o := outputs(t, g.Instructions); !slices.Equal(o, []ofp.PortNo{10}) {
		t.Errorf("outputs %v, want [10]", o)
	}
	// Filters: the cookie, a covering match, another table.
	for _, c := range []struct {
		req  ofp.FlowStatsRequest
		want int
	}{
		{ofp.FlowStatsRequest{Table: 1, Cookie: 0x99, CookieMask: 0xff}, 1},
		{ofp.FlowStatsRequest{Table: ofp.TableAll, Cookie: 0x98, CookieMask: 0xff}, 0},
		{ofp.FlowStatsRequest{Table: 0}, 0},
		{ofp.FlowStatsRequest{Table: ofp.TableAll, Match: ofp.Match{Fields: []ofp.XM{pipeline.EthDstMasked(mac2, addr.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0})}}}, 1},
		{ofp.FlowStatsRequest{Table: ofp.TableAll, Match: ofp.Match{Fields: []ofp.XM{pipeline.InPort(1)}}}, 0},
	} {
		c.req.OutPort, c.req.OutGroup = ofp.PortAny, ofp.GroupAny
		got, err := s1.FlowStats(ctx, &c.req)
		if err != nil || len(got) != c.want {
			t.Errorf("request %+v: %d entries, %v; want %d", c.req, len(got), err, c.want)
		}
	}
	// A bridge away: the entry is still the switch's.
	phys.setUp(e3, false)
	got, err = s1.FlowStats(ctx, nil)
	if err != nil || len(got) != 1 || got[0].PacketCount != 6 {
		t.Fatalf("with e3 away: %+v, %v; want the entry with e1's 6 packets", got, err)
	}
}

func TestFlowRemovedOncePerVirtualEntry(t *testing.T) {
	phys := newTablePhys(e1, e3)
	rec := newRecorder("rec")
	tn := startTenant(t, phys, rec)
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	if err := s1.FlowMod(ctx, linkEntry(ofp.FlowFlagSendFlowRem)); err != nil {
		t.Fatal(err)
	}
	phys.sws[e1].count(2)
	phys.sws[e3].count(5)
	frs := append(phys.sws[e1].expire(), phys.sws[e3].expire()...)
	if len(frs) != 4 {
		t.Fatalf("%d physical flow-removed, want 4 (2 variants x 2 bridges): copies carry OFPFF_SEND_FLOW_REM", len(frs))
	}
	for i, fr := range frs {
		b := e1
		if i >= 2 {
			b = e3
		}
		if !tn.FlowRemoved(b, fr) {
			t.Fatalf("flow-removed %d not accounted", i)
		}
		if i < 3 {
			rec.none(t, "flow-removed", 20*time.Millisecond)
		}
	}
	ev := rec.next(t, "flow-removed")
	if ev.sw != s1 || ev.fr.Cookie != 0x99 || ev.fr.Table != 1 || ev.fr.Priority != 5 || ev.fr.Reason != ofp.FlowReasonIdleTimeout ||
		ev.fr.PacketCount != 14 || ev.fr.ByteCount != 1400 || ev.fr.IdleTimeout != 30 || len(ev.fr.Match.Fields) != 1 {
		t.Fatalf("flow-removed %+v on %v: want one, cookie 0x99, table 1, idle timeout, 14 packets", ev.fr, ev.sw)
	}
	rec.none(t, "flow-removed", 20*time.Millisecond)
	if got, _ := s1.FlowStats(ctx, nil); len(got) != 0 {
		t.Errorf("expired entry still reported: %+v", got)
	}

	// Without OFPFF_SEND_FLOW_REM: no flow-removed, but the entry is gone.
	if err := s1.FlowMod(ctx, linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	for _, b := range []controller.DPID{e1, e3} {
		for _, fr := range phys.sws[b].expire() {
			tn.FlowRemoved(b, fr)
		}
	}
	rec.none(t, "flow-removed", 50*time.Millisecond)
	if got, _ := s1.FlowStats(ctx, nil); len(got) != 0 {
		t.Errorf("expired entry still reported: %+v", got)
	}
	if n := len(s1.tab.byPhys); n != 0 {
		t.Errorf("%d physical keys still tracked", n)
	}

	// The app deletes it: one flow-removed, reason delete.
	if err := s1.FlowMod(ctx, linkEntry(ofp.FlowFlagSendFlowRem)); err != nil {
		t.Fatal(err)
	}
	if err := s1.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowDelete, Table: ofp.TableAll, Buffer: ofp.NoBuffer,
		OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: ofp.Match{Type: ofp.MatchTypeXM}}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []controller.DPID{e1, e3} {
		for _, fr := range phys.sws[b].takeRemoved() {
			tn.FlowRemoved(b, fr)
		}
	}
	ev = rec.next(t, "flow-removed")
	if ev.fr.Reason != ofp.FlowReasonDelete || ev.fr.Cookie != 0x99 {
		t.Fatalf("flow-removed %+v, want reason delete", ev.fr)
	}
	rec.none(t, "flow-removed", 20*time.Millisecond)
}

func TestCopyDeletedByOthersKeepsTheEntry(t *testing.T) {
	phys := newTablePhys(e1, e3)
	rec := newRecorder("rec")
	tn := startTenant(t, phys, rec)
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	if err := s1.FlowMod(ctx, linkEntry(ofp.FlowFlagSendFlowRem)); err != nil {
		t.Fatal(err)
	}
	phys.sws[e1].count(2)
	phys.sws[e3].count(5)
	// Someone else (a migration retiring its source) deletes e3's copies.
	b3 := phys.sws[e3]
	if err := b3.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowDelete, Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny}); err != nil {
		t.Fatal(err)
	}
	for _, fr := range b3.takeRemoved() {
		tn.FlowRemoved(e3, fr)
	}
	for _, fr := range phys.sws[e1].takeRemoved() {
		tn.FlowRemoved(e1, fr)
	}
	rec.none(t, "flow-removed", 50*time.Millisecond)
	if got, _ := s1.FlowStats(ctx, nil); len(got) != 1 {
		t.Fatalf("entry gone after another owner's delete: %+v", got)
	}
	if err := tn.Replay(ctx, e3); err != nil {
		t.Fatal(err)
	}
	if b3.len() != 2 {
		t.Errorf("e3 holds %d entries after replay, want 2", b3.len())
	}
	// The deleted copies' counters are the deleter's to carry (a
	// migration's offsets): only e1's 2 x 2 packets remain.
	if got, err := s1.FlowStats(ctx, nil); err != nil || len(got) != 1 || got[0].PacketCount != 4 {
		t.Errorf("stats after another owner's delete: %+v, %v; want 4 packets", got, err)
	}
}

func TestReplayOnReconnectAndRestart(t *testing.T) {
	phys := newTablePhys(e1) // e3 away
	tn := startTenant(t, phys, newRecorder("rec"))
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	if err := s1.FlowMod(ctx, linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	other := linkEntry(0)
	other.Priority, other.Cookie = 6, 0x7
	if err := s1.FlowMod(ctx, other); err != nil {
		t.Fatal(err)
	}
	b1, b3 := phys.sws[e1], phys.sws[e3]
	// e3 still holds a stale entry of cookie 0x7 (an earlier session);
	// the app deletes cookie 0x7 while e3 is away.
	stale := linkEntry(0)
	stale.Priority, stale.Cookie = 9, 0x7
	es, err := pipeline.Translate(tn.snap.Load().view, vs1, stale)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range es {
		_ = b3.FlowMod(ctx, f)
	}
	if err := s1.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowDelete, Table: ofp.TableAll, Cookie: 0x7, CookieMask: ^uint64(0) >> 16,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: ofp.Match{Type: ofp.MatchTypeXM}}); err != nil {
		t.Fatal(err)
	}
	if b1.len() != 2 || b3.len() != 2 {
		t.Fatalf("e1 %d entries (want 2), e3 %d (want its 2 stale ones)", b1.len(), b3.len())
	}
	phys.setUp(e3, true)
	if err := tn.Replay(ctx, e3); err != nil {
		t.Fatal(err)
	}
	if b3.len() != 2 {
		t.Fatalf("e3 holds %d entries after replay, want the 2 copies of the remaining entry", b3.len())
	}
	for _, e := range b3.entries {
		if e.Cookie != pipeline.TenantCookie(tID, 0x99) {
			t.Errorf("e3 holds cookie %#x, want only the app's 0x99", e.Cookie)
		}
	}
	// ovs-vswitchd restart of e1: its table is empty; the replay refills it.
	b1.count(4)
	b1.restart()
	if err := tn.Replay(ctx, e1); err != nil {
		t.Fatal(err)
	}
	if b1.len() != 2 {
		t.Fatalf("e1 holds %d entries after restart and replay, want 2", b1.len())
	}
	// A replay of a bridge that holds everything sends nothing and keeps
	// its counters.
	b1.count(1)
	n := len(b1.sentMods())
	if err := tn.Replay(ctx, e1); err != nil {
		t.Fatal(err)
	}
	if m := len(b1.sentMods()); m != n {
		t.Errorf("replay of an up-to-date bridge sent %d flow-mods", m-n)
	}
	got, err := s1.FlowStats(ctx, nil)
	if err != nil || len(got) != 1 || got[0].PacketCount != 2 {
		t.Fatalf("stats %+v, %v; want the entry with 2 packets (1 per copy on e1)", got, err)
	}
	if tn.Replays() != 3 {
		t.Errorf("%d replays, want 3", tn.Replays())
	}
	// A live migration's frozen clone (idle timeout 0 while hosts move) is
	// the entry: a replay leaves it to the migration's unfreeze.
	b1.mu.Lock()
	for _, e := range b1.entries {
		e.IdleTimeout = 0
	}
	b1.mu.Unlock()
	n = len(b1.sentMods())
	if err := tn.Replay(ctx, e1); err != nil {
		t.Fatal(err)
	}
	if m := len(b1.sentMods()); m != n {
		t.Errorf("replay over frozen clones sent %d flow-mods, want none", m-n)
	}
}

func TestReplayDeletesWhatNoTableHolds(t *testing.T) {
	phys := newTablePhys(e1, e3)
	native := pipeline.TenantCookie(tID, 0x6c6561726e01)
	tn, err := New(Config{Apps: []controller.App{newRecorder("rec")}, Physical: phys, Logger: slog.New(slog.DiscardHandler),
		Foreign: func(c uint64) bool { return c == native }},
		State{View: fixtureView(t, tID, fixtureTopology()), Bindings: fixtureBindings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tn.Close)
	ctx := context.Background()
	b3 := phys.sws[e3]
	// On e3: an entry of an earlier run (cookie 0x55), the hypervisor's
	// native learning entry, another tenant's entry.
	earlier := linkEntry(0)
	earlier.Cookie, earlier.Priority = 0x55, 8
	es, err := pipeline.Translate(tn.snap.Load().view, vs1, earlier)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range es {
		_ = b3.FlowMod(ctx, f)
	}
	md := pipeline.Metadata(uint64(tID)<<48|1, pipeline.MetaTenantMask|pipeline.MetaSwitchMask)
	_ = b3.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd, Table: ofp.Table(pipeline.TableTenant), Priority: 100, Cookie: native,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{md, pipeline.EthDst(mac2)}}})
	_ = b3.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd, Table: ofp.Table(pipeline.TableTenant), Priority: 100, Cookie: 0x0204 << 48,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(mac2)}}})
	s1, _ := tn.Switch(vs1)
	if err := s1.FlowMod(ctx, linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	if n := b3.len(); n != len(es)+2+2 {
		t.Fatalf("e3 holds %d entries before the replay, want %d", n, len(es)+4)
	}
	if err := tn.Replay(ctx, e3); err != nil {
		t.Fatal(err)
	}
	b3.mu.Lock()
	var cookies []uint64
	for _, e := range b3.entries {
		cookies = append(cookies, e.Cookie)
	}
	b3.mu.Unlock()
	slices.Sort(cookies)
	app := pipeline.TenantCookie(tID, 0x99)
	if want := []uint64{app, app, native, 0x0204 << 48}; !slices.Equal(cookies, want) {
		t.Errorf("e3 after the replay holds cookies %x, want %x (the earlier run's entries deleted)", cookies, want)
	}
	if n := tn.ReplayDeleted(); n != uint64(len(es)) {
		t.Errorf("%d entries deleted by the replay, want %d", n, len(es))
	}
}

func TestReplayHeld(t *testing.T) {
	phys := newTablePhys(e1) // e3 away
	var held atomic.Bool
	held.Store(true)
	tn, err := New(Config{Apps: []controller.App{newRecorder("rec")}, Physical: phys, Logger: slog.New(slog.DiscardHandler),
		Hold: func(b controller.DPID) bool { return b == e3 && held.Load() }},
		State{View: fixtureView(t, tID, fixtureTopology()), Bindings: fixtureBindings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tn.Close)
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	if err := s1.FlowMod(ctx, linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	if err := s1.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowDelete, Table: ofp.TableAll, Cookie: 0x7, CookieMask: ^uint64(0) >> 16,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: ofp.Match{Type: ofp.MatchTypeXM}}); err != nil {
		t.Fatal(err)
	}
	phys.setUp(e3, true)
	b3 := phys.sws[e3]
	if err := tn.Replay(ctx, e3); err != nil || len(b3.sentMods()) != 0 || tn.Replays() != 0 {
		t.Fatalf("replay of a held bridge: %v, %d flow-mods sent, %d replays; want nothing", err, len(b3.sentMods()), tn.Replays())
	}
	held.Store(false)
	if err := tn.Replay(ctx, e3); err != nil {
		t.Fatal(err)
	}
	mods := b3.sentMods()
	if len(mods) != 3 || mods[0].Command != ofp.FlowDelete || b3.len() != 2 {
		t.Fatalf("replay once released: %d flow-mods (want the kept delete, then 2 adds), %d entries", len(mods), b3.len())
	}
}

func TestReplayToJoiningBridge(t *testing.T) {
	phys := newTablePhys(e1, e3)
	tn, err := New(Config{Apps: []controller.App{newRecorder("rec")}, Physical: phys, Logger: slog.New(slog.DiscardHandler)},
		State{View: fixtureView(t, tID, fixtureTopology()), Bindings: fixtureBindings()[:1]}) // h2 not bound: only e1
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tn.Close)
	s1, _ := tn.Switch(vs1)
	if err := s1.FlowMod(context.Background(), linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	if phys.sws[e3].len() != 0 {
		t.Fatal("e3 got entries before a host of the tenant is there")
	}
	if err := tn.Update(State{View: fixtureView(t, tID, fixtureTopology()), Bindings: fixtureBindings()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for phys.sws[e3].len() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := phys.sws[e3].len(); n != 2 {
		t.Fatalf("e3 holds %d entries after h2 was bound there, want 2", n)
	}
}

func TestModifyInPlace(t *testing.T) {
	phys := newTablePhys(e1, e3)
	tn := startTenant(t, phys, newRecorder("rec"))
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	add := linkEntry(0)
	add.Instructions = ofp.Instructions{pipeline.Apply(pipeline.Output(1))} // to host h1: one entry, no variants
	if err := s1.FlowMod(ctx, add); err != nil {
		t.Fatal(err)
	}
	if phys.sws[e1].len() != 1 {
		t.Fatalf("e1 holds %d entries, want 1", phys.sws[e1].len())
	}
	phys.sws[e1].count(3)
	mod := linkEntry(0)
	mod.Command, mod.Cookie, mod.IdleTimeout = ofp.FlowModifyStrict, 0, 0
	mod.Instructions = ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(ofp.PortController)))}
	if err := s1.FlowMod(ctx, mod); err != nil {
		t.Fatal(err)
	}
	got, err := s1.FlowStats(ctx, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("stats %+v, %v", got, err)
	}
	g := got[0]
	if o := outputs(t, g.Instructions); !slices.Equal(o, []ofp.PortNo{ofp.PortController}) || g.PacketCount != 3 || g.Cookie != 0x99 || g.IdleTimeout != 30 {
		t.Errorf("after modify: outputs %v, %d packets, cookie %#x, idle %d; want [CONTROLLER], 3 (kept), 0x99, 30", o, g.PacketCount, g.Cookie, g.IdleTimeout)
	}
	// Modify to a virtual link: the in-port variants are added, the copy
	// without an in-port is deleted.
	mod.Instructions = ofp.Instructions{pipeline.Apply(pipeline.Output(10))}
	if err := s1.FlowMod(ctx, mod); err != nil {
		t.Fatal(err)
	}
	if n := phys.sws[e1].len(); n != 2 {
		t.Fatalf("e1 holds %d entries, want the 2 in-port variants", n)
	}
	got, _ = s1.FlowStats(ctx, nil)
	if len(got) != 1 || !slices.Equal(outputs(t, got[0].Instructions), []ofp.PortNo{10}) {
		t.Fatalf("after modify to a link: %+v", got)
	}
	// A modify that matches nothing adds (as before the table existed).
	mod.Match.Fields = []ofp.XM{pipeline.EthDst(mac1)}
	if err := s1.FlowMod(ctx, mod); err != nil {
		t.Fatal(err)
	}
	if got, _ = s1.FlowStats(ctx, nil); len(got) != 2 {
		t.Errorf("%d entries after a modify that matched nothing, want 2", len(got))
	}
}

func TestFlowStatsOfUnknownEntryMapsInstructionsBack(t *testing.T) {
	phys := newFakePhys(e1, e3)
	tn := startTenant(t, phys, newRecorder("rec"))
	s2, _ := tn.Switch(vs2)
	// An entry of s2 the table does not know (an earlier run's): in_port
	// 10 (the link to s1), eth_src rewritten to h1, FLOOD (to h3's port 1
	// and the link port 11), then virtual table 2.
	fm := &ofp.FlowMod{Command: ofp.FlowAdd, Table: 1, Priority: 7, Cookie: 0x31, Buffer: ofp.NoBuffer,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(10)}},
		Instructions: ofp.Instructions{
			pipeline.Apply(pipeline.SetField(pipeline.EthSrc(mac1)), pipeline.Output(uint32(ofp.PortFlood))),
			pipeline.Goto(2)}}
	phy, err := pipeline.Translate(tn.snap.Load().view, vs2, fm)
	if err != nil {
		t.Fatal(err)
	}
	var stats []controller.FlowStats
	for _, p := range phy { // both group copies
		stats = append(stats, controller.FlowStats{Table: p.Table, Priority: p.Priority, Cookie: p.Cookie, Match: p.Match,
			Instructions: p.Instructions, PacketCount: 1})
	}
	phys.sws[e1].stats = stats
	got, err := s2.FlowStats(context.Background(), nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("stats %+v, %v; want one entry", got, err)
	}
	g := got[0]
	if g.Table != 1 || g.Priority != 7 || g.Cookie != 0x31 || g.PacketCount != uint64(len(phy)) {
		t.Errorf("entry %+v", g)
	}
	if len(g.Instructions) != 2 {
		t.Fatalf("instructions %v, want apply-actions and goto", g.Instructions)
	}
	apply, ok1 := g.Instructions[0].(*ofp.InstructionApplyActions)
	gt, ok2 := g.Instructions[1].(*ofp.InstructionGotoTable)
	if !ok1 || !ok2 || gt.Table != 2 || len(apply.Actions) != 3 {
		t.Fatalf("instructions %#v, want apply(set_field, output, output), goto_table:2", g.Instructions)
	}
	sf, ok := apply.Actions[0].(*ofp.ActionSetField)
	if !ok || !bytes.Equal(sf.Field.Value, mac1[:]) {
		t.Errorf("first action %#v, want set_field eth_src=%v (the host's own MAC)", apply.Actions[0], mac1)
	}
	var outs []ofp.PortNo
	for _, a := range apply.Actions[1:] {
		if o, ok := a.(*ofp.ActionOutput); ok {
			outs = append(outs, o.Port)
		}
	}
	if slices.Sort(outs); !slices.Equal(outs, []ofp.PortNo{1, 11}) {
		t.Errorf("outputs %v, want [1 11] (the FLOOD from port 10, as virtual ports)", outs)
	}
}

func TestAddReplacingVariantsDeletesStaleCopies(t *testing.T) {
	phys := newTablePhys(e1, e3)
	tn := startTenant(t, phys, newRecorder("rec"))
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	if err := s1.FlowMod(ctx, linkEntry(0)); err != nil { // 2 in-port variants
		t.Fatal(err)
	}
	add := linkEntry(0)
	add.Instructions = ofp.Instructions{pipeline.Apply(pipeline.Output(1))} // 1 entry
	if err := s1.FlowMod(ctx, add); err != nil {
		t.Fatal(err)
	}
	for _, b := range []controller.DPID{e1, e3} {
		if n := phys.sws[b].len(); n != 1 {
			t.Errorf("bridge %v holds %d entries after the replacing ADD, want 1", b, n)
		}
		for _, fr := range phys.sws[b].takeRemoved() {
			tn.FlowRemoved(b, fr)
		}
	}
	got, _ := s1.FlowStats(ctx, nil)
	if len(got) != 1 || !slices.Equal(outputs(t, got[0].Instructions), []ofp.PortNo{1}) {
		t.Fatalf("after replacing ADD: %+v", got)
	}
}
