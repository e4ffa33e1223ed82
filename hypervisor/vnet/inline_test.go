package vnet

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// goid returns the calling goroutine's ID (from its stack header): how
// the tests tell an inline delivery from a queued one.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// inlineRecorder is a recorder that declares itself InlineSafe.
type inlineRecorder struct{ *recorder }

func (inlineRecorder) InlineSafe() bool { return true }

// inlineProbe records on which goroutine each packet-in is delivered and,
// in blocking mode, holds the delivery until released.
type inlineProbe struct {
	block   atomic.Bool
	entered chan uint64
	release chan struct{}
}

func newInlineProbe(rec *recorder) *inlineProbe {
	p := &inlineProbe{entered: make(chan uint64, 16), release: make(chan struct{}, 16)}
	rec.onPI = func(context.Context, controller.Switch, *controller.PacketIn) {
		p.entered <- goid()
		if p.block.Load() {
			<-p.release
		}
	}
	return p
}

// call runs PacketInFrom on a new goroutine, returns that goroutine's ID,
// and fails if PacketInFrom does not return within 2 s (a delivery that
// ran inline where it must have been queued, in blocking mode).
func (p *inlineProbe) call(t *testing.T, tn *Tenant, from controller.DPID, vdpid topology.DPID, inPort uint32) uint64 {
	t.Helper()
	type res struct {
		id uint64
		ok bool
	}
	done := make(chan res, 1)
	go func() {
		id := goid()
		done <- res{id, tn.PacketInFrom(from, vdpid, inPort, 0, 0, ethFrame(mac2, mac1))}
	}()
	select {
	case r := <-done:
		if !r.ok {
			t.Fatal("PacketInFrom: dropped")
		}
		return r.id
	case <-time.After(2 * time.Second):
		t.Fatal("PacketInFrom blocked: the packet-in ran inline where it must be queued")
		return 0
	}
}

// deliveredOn returns the goroutine ID of the next delivery.
func (p *inlineProbe) deliveredOn(t *testing.T) uint64 {
	t.Helper()
	select {
	case id := <-p.entered:
		return id
	case <-time.After(5 * time.Second):
		t.Fatal("packet-in not delivered")
		return 0
	}
}

// soloTenant starts tenant "t" with one virtual switch s1 (DPID vs1)
// whose hosts h1 (port 1) and h2 (port 2) are both on bridge e1, and a
// switch s2 (vs2) with h3 on e1 and h4 on e3.
func soloTenant(t *testing.T, phys Physical, apps ...controller.App) *Tenant {
	t.Helper()
	tp := &topology.Topology{Tenant: "t", Apps: []string{"x"},
		Switches: []topology.Switch{{Name: "s1", DPID: vs1}, {Name: "s2", DPID: vs2}},
		Hosts: []topology.Host{
			{Name: "h1", MAC: mac1.String(), IP: "10.0.0.1/24", Switch: "s1", Port: 1, Cloud: "aws"},
			{Name: "h2", MAC: mac2.String(), IP: "10.0.0.2/24", Switch: "s1", Port: 2, Cloud: "aws"},
			{Name: "h3", MAC: "00:00:00:00:00:03", IP: "10.0.0.3/24", Switch: "s2", Port: 1, Cloud: "aws"},
			{Name: "h4", MAC: "00:00:00:00:00:04", IP: "10.0.0.4/24", Switch: "s2", Port: 2, Cloud: "gcp"},
		}}
	v, err := pipeline.NewView(pipeline.Tenant{ID: tID, Topology: tp,
		Hosts: map[string]addr.HostIndex{"h1": 1, "h2": 2, "h3": 3, "h4": 4}})
	if err != nil {
		t.Fatal(err)
	}
	bs := []pipeline.Binding{{Tenant: "t", Host: "h1", Bridge: e1, Port: 1}, {Tenant: "t", Host: "h2", Bridge: e1, Port: 2},
		{Tenant: "t", Host: "h3", Bridge: e1, Port: 3}, {Tenant: "t", Host: "h4", Bridge: e3, Port: 4}}
	tn, err := New(Config{Apps: apps, Physical: phys, Logger: slog.New(slog.DiscardHandler)}, State{View: v, Bindings: bs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tn.Close)
	snap := tn.snap.Load()
	for _, sw := range snap.switches { // SwitchUp returned
		for !sw.ready.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	if !slices.Equal(snap.bridges[0], []controller.DPID{e1}) || len(snap.bridges[1]) != 2 {
		t.Fatalf("edge bridges %v, want s1 on e1 only and s2 on two", snap.bridges)
	}
	return tn
}

func TestPacketInFromInline(t *testing.T) {
	rec := newRecorder("rec")
	probe := newInlineProbe(rec)
	tn := soloTenant(t, newFakePhys(e1, e3), inlineRecorder{rec})
	rec.next(t, "up")
	rec.next(t, "up")

	// Idle switch, its only bridge, InlineSafe apps: on the caller's goroutine.
	if caller := probe.call(t, tn, e1, vs1, 1); probe.deliveredOn(t) != caller {
		t.Error("packet-in from s1's only bridge on an idle switch was queued, want inline")
	}
	if ev := rec.next(t, "packet-in"); ev.pi.InPort != 1 || ev.sw.DPID() != controller.DPID(vs1) {
		t.Errorf("packet-in on %v port %d, want s1 port 1", ev.sw, ev.pi.InPort)
	}

	// From another bridge, or on a switch with two bridges: queued
	// (PacketInFrom returns while the app holds the delivery).
	probe.block.Store(true)
	for _, c := range []struct {
		from controller.DPID
		vs   topology.DPID
	}{{e3, vs1}, {e1, vs2}} {
		if caller := probe.call(t, tn, c.from, c.vs, 1); probe.deliveredOn(t) == caller {
			t.Errorf("packet-in from %v on %v ran inline", c.from, c.vs)
		}
		probe.release <- struct{}{}
		rec.next(t, "packet-in")
	}

	// While one is being delivered, one from s1's bridge queues behind it.
	if first := probe.call(t, tn, e3, vs1, 1); probe.deliveredOn(t) == first {
		t.Fatal("queued packet-in delivered on the caller's goroutine")
	}
	second := probe.call(t, tn, e1, vs1, 2) // must return: s1 is busy
	probe.release <- struct{}{}
	probe.release <- struct{}{}
	if probe.deliveredOn(t) == second {
		t.Error("packet-in that arrived while another was delivered ran inline")
	}
	if a, b := rec.next(t, "packet-in"), rec.next(t, "packet-in"); a.pi.InPort != 1 || b.pi.InPort != 2 {
		t.Errorf("delivered in-ports %d, %d; want 1 then 2 (arrival order)", a.pi.InPort, b.pi.InPort)
	}
	probe.block.Store(false)

	// Idle again: inline again.
	if caller := probe.call(t, tn, e1, vs1, 2); probe.deliveredOn(t) != caller {
		t.Error("packet-in on the idle switch again was queued")
	}
	rec.next(t, "packet-in")
	if d := tn.Dropped(); d != 0 {
		t.Errorf("Dropped() = %d", d)
	}
}

func TestPacketInFromQueuesForOtherApps(t *testing.T) {
	rec := newRecorder("rec") // not InlineSafe
	probe := newInlineProbe(rec)
	tn := soloTenant(t, newFakePhys(e1, e3), rec)
	rec.next(t, "up")
	probe.block.Store(true)
	if caller := probe.call(t, tn, e1, vs1, 1); probe.deliveredOn(t) == caller {
		t.Error("packet-in ran inline although an app is not InlineSafe")
	}
	probe.release <- struct{}{}
	rec.next(t, "packet-in")
}

// TestPacketInFromAfterClose: a closed tenant's switch takes nothing.
func TestPacketInFromAfterClose(t *testing.T) {
	rec := newRecorder("rec")
	tn := soloTenant(t, newFakePhys(e1, e3), inlineRecorder{rec})
	rec.next(t, "up")
	tn.Close()
	if tn.PacketInFrom(e1, vs1, 1, 0, 0, ethFrame(mac2, mac1)) {
		t.Error("PacketInFrom on a closed tenant reported delivery")
	}
	rec.none(t, "packet-in", 100*time.Millisecond)
}
