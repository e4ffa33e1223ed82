package vnet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// eR is the replica bridge of the replica tests (a migration's target).
const eR = controller.DPID(0xe5)

// phasesOf splits the messages bridge b got after sequence number since
// into the two guarded phases of replica.go: flow-mods, barrier,
// flow-mods, barrier; it fails on any other shape. It returns both
// phases' flow-mods and the sequence numbers of phase 1's barrier and of
// phase 2's first flow-mod.
func phasesOf(t *testing.T, name string, b *tableBridge, since int64) (guards, writes []*ofp.FlowMod, guardBarrier, firstWrite int64) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	phase := 0
	for _, op := range b.ops {
		if op.seq <= since {
			continue
		}
		switch {
		case op.fm == nil && phase < 2:
			if phase == 0 {
				guardBarrier = op.seq
			}
			phase++
		case op.fm != nil && phase == 0:
			guards = append(guards, op.fm)
		case op.fm != nil && phase == 1:
			if firstWrite == 0 {
				firstWrite = op.seq
			}
			writes = append(writes, op.fm)
		default:
			t.Fatalf("%s: message after the second barrier (flow-mod %v)", name, op.fm != nil)
		}
	}
	if phase != 2 || len(guards) == 0 || len(writes) == 0 {
		t.Fatalf("%s: %d guards, %d writes, %d barriers: want guards, barrier, writes, barrier", name, len(guards), len(writes), phase)
	}
	return guards, writes, guardBarrier, firstWrite
}

// isGuard reports whether fm sends its packets to the controller only.
func isGuard(t *testing.T, fm *ofp.FlowMod) bool {
	t.Helper()
	return insKey(t, fm.Instructions) == insKey(t, toController())
}

// insKey is the wire encoding of ins, for comparisons.
func insKey(t *testing.T, ins ofp.Instructions) string {
	t.Helper()
	b, err := ofwire.AppendInstructions(nil, ins)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// tenantEntries returns the tenant's entries of b, key -> instructions'
// outputs and cookie, for comparing two copies.
func tenantEntries(t *testing.T, b *tableBridge) map[string]string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]string{}
	for k, e := range b.entries {
		if uint16(e.Cookie>>48) == uint16(tID) {
			out[k] = fmt.Sprintf("%s/%x", insKey(t, e.Instructions), e.Cookie)
		}
	}
	return out
}

// TestReplicaDualWriteGuarded (issue 6, LIME §4): once eR is a replica of
// e1 (a migration's target after its clone step), an app's add, modify
// and delete on s1 (which runs on e1) go to both copies in two phases:
// first a "to controller" guard at each affected key on both, a barrier on
// both, then the update on both, a barrier on both; no update is written
// anywhere before both guards are acknowledged, and FlowMod returns after
// both final barriers (e3, the other edge bridge of s1, is guarded
// alike: every copy of the switch is). Replicate's replay
// claims the clone as it is; Unreplicate with prune leaves eR without the
// tenant's entries, and s1's flow-mods go to e1 alone again, in one phase.
func TestReplicaDualWriteGuarded(t *testing.T) {
	phys := newTablePhys(e1, e3, eR)
	phys.sws[eR] = newTableBridge(eR)
	rec := newRecorder("rec")
	tn := startTenant(t, phys, rec)
	ctx := context.Background()
	b1, b3, bR := phys.sws[e1], phys.sws[e3], phys.sws[eR]
	s1, _ := tn.Switch(vs1)
	if err := s1.FlowMod(ctx, linkEntry(ofp.FlowFlagSendFlowRem)); err != nil {
		t.Fatal(err)
	}
	// The migration's clone: e1's tenant entries copied to eR, timeouts 0.
	stats, err := b1.FlowStats(ctx, &ofp.FlowStatsRequest{Table: ofp.TableAll})
	if err != nil {
		t.Fatal(err)
	}
	for i := range stats {
		e := pipeline.FromFlowStats(&stats[i])
		e.IdleTimeout, e.HardTimeout = 0, 0
		_ = bR.FlowMod(ctx, e.FlowMod())
	}
	cloned := len(bR.sentMods())
	if err := tn.Replicate(ctx, e1, eR); err != nil {
		t.Fatal(err)
	}
	if n := len(bR.sentMods()); n != cloned {
		t.Errorf("Replicate's replay sent %d flow-mods to the replica, want none (the clone is claimed)", n-cloned)
	}
	snap := tn.snap.Load()
	for i := range snap.bridges { // the virtual path of a host runs at its bridge: every switch spans e1 and e3
		if !slices.Equal(snap.bridges[i], []pipeline.DPID{e1, e3, eR}) || !snap.replicated[i] {
			t.Fatalf("edge bridges %v replicated %v, want every switch on e1, e3 and e1's replica eR", snap.bridges, snap.replicated)
		}
	}
	if got := tn.Replicas(); got[eR] != e1 || len(got) != 1 {
		t.Errorf("replicas %v", got)
	}

	// check: fm on s1 reaches every copy as guards (ADD or MODIFY_STRICT
	// to the controller, no timeouts), a barrier, the writes (ADD or
	// DELETE_STRICT, never a modify: the ADD replaces the guard), a
	// barrier; every guarded key is written in phase 2.
	check := func(what string, fm *ofp.FlowMod) {
		t.Helper()
		mark := opSeq.Load()
		if err := s1.FlowMod(ctx, fm); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var lastGuardBarrier, firstWrite int64
		for _, c := range []struct {
			name string
			b    *tableBridge
		}{{"e1", b1}, {"e3", b3}, {"eR", bR}} {
			guards, writes, gb, fw := phasesOf(t, what+" on "+c.name, c.b, mark)
			lastGuardBarrier = max(lastGuardBarrier, gb)
			if firstWrite == 0 || fw < firstWrite {
				firstWrite = fw
			}
			for _, g := range guards {
				if g.Command != ofp.FlowAdd && g.Command != ofp.FlowModifyStrict || !isGuard(t, g) || g.IdleTimeout != 0 || g.HardTimeout != 0 {
					t.Errorf("%s on %s: guard command %d, want an add or strict modify to the controller without timeouts", what, c.name, g.Command)
				}
			}
			var gk, wk []string
			for _, g := range guards {
				gk = append(gk, physKey(g.Table, g.Priority, g.Match.Fields))
			}
			for _, w := range writes {
				switch {
				case w.Command == ofp.FlowAdd && !isGuard(t, w) || w.Command == ofp.FlowDeleteStrict:
					wk = append(wk, physKey(w.Table, w.Priority, w.Match.Fields))
				case w.Command != ofp.FlowDelete:
					t.Errorf("%s on %s: write command %d", what, c.name, w.Command)
				}
			}
			for _, k := range gk {
				if !slices.Contains(wk, k) {
					t.Errorf("%s on %s: guard at %q is not followed by the update at that key", what, c.name, k)
				}
			}
		}
		if firstWrite < lastGuardBarrier {
			t.Errorf("%s: an update was written (message %d) before both copies acknowledged their guards (message %d)", what, firstWrite, lastGuardBarrier)
		}
		if a, b := tenantEntries(t, b1), tenantEntries(t, bR); !maps.Equal(a, b) {
			t.Errorf("%s: the copies differ:\ne1 %q\neR %q", what, a, b)
		}
	}

	// A reactive app's add after the clone, before any host moved: h1's
	// port (a host output), then the linkEntry's key replaced (ADD).
	add := &ofp.FlowMod{Command: ofp.FlowAdd, Table: 1, Priority: 7, Cookie: 0x77, Buffer: ofp.NoBuffer, IdleTimeout: 10,
		Flags: ofp.FlowFlagSendFlowRem, Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(mac1)}},
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(1))}}
	check("add", add)
	mod := *add
	mod.Command = ofp.FlowModifyStrict
	mod.Instructions = ofp.Instructions{pipeline.Apply(pipeline.Output(10))}
	check("modify", &mod) // new variants added, the host port's deleted
	del := *add
	del.Command, del.Instructions, del.OutPort, del.OutGroup = ofp.FlowDeleteStrict, nil, ofp.PortAny, ofp.GroupAny
	for _, b := range []*tableBridge{b1, b3, bR} {
		b.takeRemoved() // the modify's deleted variants
	}
	check("delete", &del)
	// The guard kept the entry's cookie and flags: the deleted copies'
	// flow-removed messages are the entry's, and the app gets one.
	n := 0
	for _, b := range []*tableBridge{b1, b3, bR} {
		for _, fr := range b.takeRemoved() {
			if tn.FlowRemoved(b.dpid, fr) {
				n++
			}
		}
	}
	if n == 0 {
		t.Error("no flow-removed of the deleted entry's copies was accounted")
	}
	if fr := rec.next(t, "flow-removed").fr; fr.Cookie != 0x77 || fr.Reason != ofp.FlowReasonDelete {
		t.Errorf("flow-removed cookie %#x reason %v, want the deleted entry's", fr.Cookie, fr.Reason)
	}
	rec.none(t, "flow-removed", 100*time.Millisecond)
	for _, b := range []*tableBridge{b1, bR} {
		for _, e := range tenantEntries(t, b) {
			if strings.HasPrefix(e, insKey(t, toController())+"/") {
				t.Errorf("a guard is left on %s", b.dpid)
			}
		}
	}
	before := len(tenantEntries(t, b1))

	// Rollback: the replica goes, and with it the tenant's entries on eR.
	if err := tn.Unreplicate(ctx, eR, true); err != nil {
		t.Fatal(err)
	}
	if n := len(tenantEntries(t, bR)); n != 0 {
		t.Errorf("eR holds %d tenant entries after the replica was dropped, want 0", n)
	}
	if n := len(tenantEntries(t, b1)); n != before {
		t.Errorf("e1 holds %d tenant entries after the replica was dropped, want %d", n, before)
	}
	snap = tn.snap.Load()
	if !slices.Equal(snap.bridges[0], []pipeline.DPID{e1, e3}) || snap.replicated[0] || len(tn.Replicas()) != 0 {
		t.Errorf("after Unreplicate: s1 on %v replicated %v", snap.bridges[0], snap.replicated[0])
	}
	mark, nR := opSeq.Load(), len(bR.sentMods())
	if err := s1.FlowMod(ctx, add); err != nil {
		t.Fatal(err)
	}
	b1.mu.Lock()
	for _, op := range b1.ops {
		if op.seq > mark && (op.fm == nil || isGuard(t, op.fm)) {
			t.Errorf("a flow-mod without a replica is guarded or followed by a barrier")
		}
	}
	b1.mu.Unlock()
	if len(bR.sentMods()) != nR {
		t.Error("the dropped replica still gets flow-mods")
	}
}
