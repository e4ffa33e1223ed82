package vnet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// readdScript runs flow-mods, counters, a bridge going away and coming
// back, and expiries on s1 of the fixture, and returns what an observer
// sees: the flow-mods each bridge received (encoded), the switch's flow
// stats after each step (durations left out) and the apps' flow-removed
// messages.
func readdScript(t *testing.T) string {
	t.Helper()
	phys := newTablePhys(e1, e3)
	rec := newRecorder("rec")
	tn := startTenant(t, phys, rec)
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	var log strings.Builder
	learned := func(idle uint16) *ofp.FlowMod { // controller/apps/learning's entry
		return &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 1, Cookie: ReactiveLearningCookie, IdleTimeout: idle,
			Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Flags: ofp.FlowFlagSendFlowRem,
			Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(1), pipeline.EthDst(mac2)}},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(10))}}
	}
	add := func(fm *ofp.FlowMod) {
		t.Helper()
		err := s1.FlowMod(ctx, fm)
		fmt.Fprintf(&log, "add: %v\n", err)
	}
	stats := func(step string) {
		t.Helper()
		got, err := s1.FlowStats(ctx, nil)
		fmt.Fprintf(&log, "%s: %d entries, %v\n", step, len(got), err)
		for _, g := range got {
			fmt.Fprintf(&log, "  t%d p%d c%#x idle%d f%d pk%d by%d %v\n", g.Table, g.Priority, g.Cookie, g.IdleTimeout, g.Flags,
				g.PacketCount, g.ByteCount, g.Match.Fields)
		}
	}
	add(learned(60))
	add(linkEntry(ofp.FlowFlagSendFlowRem))
	phys.sws[e1].count(3)
	add(learned(60)) // identical: starts over
	add(linkEntry(ofp.FlowFlagSendFlowRem))
	phys.sws[e1].count(2)
	phys.sws[e3].count(1)
	stats("re-added")
	phys.setUp(e3, false)
	add(learned(60))
	stats("e3 away")
	phys.setUp(e3, true)
	if err := tn.Replay(ctx, e3); err != nil {
		t.Fatal(err)
	}
	stats("e3 back")
	add(learned(30)) // not identical
	add(learned(30))
	bad := learned(30) // same key, but a field the translation refuses
	bad.Match.Fields = append(slices.Clone(bad.Match.Fields), pipeline.Metadata(0, 0))
	add(bad)
	bad = learned(30)
	bad.Buffer = 7
	add(bad)
	phys.sws[e1].count(4)
	stats("changed")
	for _, b := range []controller.DPID{e1, e3} {
		for _, fr := range phys.sws[b].expire() {
			tn.FlowRemoved(b, fr)
		}
	}
	var frs []string // in the order of the bridges' map iteration: sorted
	for range 2 {
		ev := rec.next(t, "flow-removed")
		frs = append(frs, fmt.Sprintf("flow-removed c%#x r%d pk%d by%d\n", ev.fr.Cookie, ev.fr.Reason, ev.fr.PacketCount, ev.fr.ByteCount))
	}
	slices.Sort(frs)
	log.WriteString(strings.Join(frs, ""))
	rec.none(t, "flow-removed", 20*time.Millisecond)
	stats("expired")
	for _, b := range []controller.DPID{e1, e3} {
		var sent []string // a replay sends in the table's map order: sorted
		for _, fm := range phys.sws[b].sentMods() {
			enc, err := ofwire.AppendFlowMod(nil, fm)
			sent = append(sent, fmt.Sprintf("%v: %x %v\n", b, enc, err))
		}
		slices.Sort(sent)
		log.WriteString(strings.Join(sent, ""))
	}
	return log.String()
}

// TestReaddIsFlowAdd checks that readd (flowAdd's fast path for an
// identical entry) is observably the same as the general path.
func TestReaddIsFlowAdd(t *testing.T) {
	fast := readdScript(t)
	noReadd = true
	defer func() { noReadd = false }()
	slow := readdScript(t)
	if fast != slow {
		t.Errorf("with readd:\n%s\nwithout:\n%s", fast, slow)
	}
	if !strings.Contains(fast, "add: <nil>") || strings.Count(fast, "flow-removed") != 2 {
		t.Errorf("script did not run as meant:\n%s", fast)
	}
}

// TestReaddKeepsTheEntry checks that an identical ADD takes the fast path
// (the table keeps its entry) and a different one does not.
func TestReaddKeepsTheEntry(t *testing.T) {
	tn := startTenant(t, newTablePhys(e1, e3), newRecorder("rec"))
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	if err := s1.FlowMod(ctx, linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	key := (&pipeline.Entry{Table: 1, Priority: 5, Match: linkEntry(0).Match.Fields}).Key()
	first := s1.tab.flows[key]
	if err := s1.FlowMod(ctx, linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	if s1.tab.flows[key] != first {
		t.Error("identical ADD replaced the table entry: readd not taken")
	}
	if err := s1.FlowMod(ctx, linkEntry(ofp.FlowFlagSendFlowRem)); err != nil {
		t.Fatal(err)
	}
	if s1.tab.flows[key] == first {
		t.Error("ADD with other flags kept the table entry")
	}
}
