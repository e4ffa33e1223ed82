package vnet

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// countSwitch is a physical switch that only counts (and signals
// packet-outs), so benchmarks measure vnet, not the fake.
type countSwitch struct {
	fakeSwitch
	flowMods atomic.Uint64
	outs     chan struct{}
}

func (c *countSwitch) FlowMod(context.Context, *ofp.FlowMod) error { c.flowMods.Add(1); return nil }
func (c *countSwitch) PacketOut(context.Context, *ofp.PacketOut) error {
	c.outs <- struct{}{}
	return nil
}

type countPhys map[controller.DPID]*countSwitch

func (p countPhys) Switch(d controller.DPID) controller.Switch {
	if s, ok := p[d]; ok {
		return s
	}
	return nil
}

// BenchmarkPacketInLearningFlowModPacketOut is one request of the
// control-plane overhead experiment inside vnet: a packet-in queued on
// virtual switch s1 (Tenant.PacketIn), the reactive learning app on the
// switch's goroutine, its flow-mod translated (pipeline.Translate, sent to
// the two edge bridges) and its packet-out translated
// (pipeline.TranslatePacketOut); the iteration ends when the physical
// packet-out is sent. Destination known, so every request installs an
// entry, as ofbench's new flows do.
func BenchmarkPacketInLearningFlowModPacketOut(b *testing.B) {
	phys := countPhys{e1: {outs: make(chan struct{}, 1)}, e3: {outs: make(chan struct{}, 1)}}
	built, err := apps.Build(Builtin(), []string{ReactiveLearning}, func(string) apps.Options {
		return apps.Options{Logger: slog.New(slog.DiscardHandler)}
	})
	if err != nil {
		b.Fatal(err)
	}
	tn, err := New(Config{Apps: built, Physical: phys, Logger: slog.New(slog.DiscardHandler)},
		State{View: fixtureView(b, tID, fixtureTopology()), Bindings: fixtureBindings()})
	if err != nil {
		b.Fatal(err)
	}
	defer tn.Close()
	// Teach the app h2 behind the link port 10 (the reply floods: drain).
	tn.PacketIn(vs1, 10, 0, 0, ethFrame(mac1, mac2))
	<-phys[e1].outs
	frame := ethFrame(mac2, mac1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if !tn.PacketIn(vs1, 1, 0, 0, frame) {
			b.Fatal("packet-in dropped")
		}
		<-phys[e1].outs
	}
	b.StopTimer()
	if n := phys[e1].flowMods.Load(); n < uint64(b.N) {
		b.Fatalf("%d flow-mods for %d packet-ins", n, b.N)
	}
}

// BenchmarkSwitchFlowModPacketOut is the translation part alone, called
// synchronously: one learning-style flow-mod (in_port, eth_dst ->
// output) and one packet-out on a virtual switch.
func BenchmarkSwitchFlowModPacketOut(b *testing.B) {
	phys := countPhys{e1: {outs: make(chan struct{}, 1)}, e3: {outs: make(chan struct{}, 1)}}
	tn, err := New(Config{Apps: []controller.App{newRecorder("rec")}, Physical: phys, Logger: slog.New(slog.DiscardHandler)},
		State{View: fixtureView(b, tID, fixtureTopology()), Bindings: fixtureBindings()})
	if err != nil {
		b.Fatal(err)
	}
	defer tn.Close()
	s1, _ := tn.Switch(vs1)
	ctx := context.Background()
	fm := &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 1, Cookie: ReactiveLearningCookie, IdleTimeout: 60, Buffer: ofp.NoBuffer,
		OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(1), pipeline.EthDst(mac2)}},
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(10))}}
	po := &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Actions: ofp.Actions{pipeline.Output(10)}, Data: ethFrame(mac2, mac1)}
	b.ReportAllocs()
	for b.Loop() {
		if err := s1.FlowMod(ctx, fm); err != nil {
			b.Fatal(err)
		}
		if err := s1.PacketOut(ctx, po); err != nil {
			b.Fatal(err)
		}
		<-phys[e1].outs
	}
}
