package vnet

import (
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// TestMovingHostKeepsItsPort: a host in State.Moving that is bound nowhere
// (between the source and the target bridge of a live migration) keeps
// its port's state, and no port-status reaches the apps, neither then nor
// when it is bound on another bridge; once it is no longer moving, a real
// change (the host is gone) is sent as one link-down port-status. A host
// that does not move still gets its port-status.
func TestMovingHostKeepsItsPort(t *testing.T) {
	rec := newRecorder("rec")
	tn := startTenant(t, newFakePhys(e1, e3), rec)
	v := fixtureView(t, tID, fixtureTopology())
	h2 := pipeline.Binding{Tenant: "t", Host: "h2", Bridge: e3, Port: 7}
	s1, _ := tn.Switch(vs1)
	port1 := func() ofp.Port {
		t.Helper()
		p, ok := s1.Port(1)
		if !ok {
			t.Fatal("s1 has no port 1")
		}
		return p
	}
	before := port1()
	if before.State != ofp.PortStateLive {
		t.Fatalf("h1's port before: %+v, want live", before)
	}
	steps := []struct {
		what  string
		binds []pipeline.Binding
	}{
		{"h1 left the source", []pipeline.Binding{h2}},
		{"h1 bound on the target", []pipeline.Binding{{Tenant: "t", Host: "h1", Bridge: e3, Port: 9}, h2}},
		{"h1 left the target (rollback)", []pipeline.Binding{h2}},
		{"h1 back on the source", fixtureBindings()},
	}
	for _, s := range steps {
		if err := tn.Update(State{View: v, Bindings: s.binds, Moving: []string{"h1"}}); err != nil {
			t.Fatal(err)
		}
		if p := port1(); p.State != before.State || p.PortNo != before.PortNo {
			t.Errorf("%s: h1's port %+v, want %+v", s.what, p, before)
		}
	}
	rec.none(t, "port-status", 100*time.Millisecond)

	// h1 leaves while moving; the migration ends without it: one link-down.
	if err := tn.Update(State{View: v, Bindings: []pipeline.Binding{h2}, Moving: []string{"h1", "nope"}}); err != nil {
		t.Fatal(err)
	}
	rec.none(t, "port-status", 50*time.Millisecond)
	if err := tn.Update(State{View: v, Bindings: []pipeline.Binding{h2}}); err != nil {
		t.Fatal(err)
	}
	ev := rec.next(t, "port-status")
	if ev.sw.DPID() != controller.DPID(vs1) || ev.ps.Port.PortNo != 1 || ev.ps.Port.State != ofp.PortStateLinkDown {
		t.Errorf("port-status %+v on %v, want s1 port 1 link down", ev.ps, ev.sw)
	}
	rec.none(t, "port-status", 50*time.Millisecond)
	// h2 (not moving) goes away while h1 moves: its port-status is sent.
	if err := tn.Update(State{View: v, Moving: []string{"h1"}}); err != nil {
		t.Fatal(err)
	}
	ev = rec.next(t, "port-status")
	if ev.sw.DPID() != controller.DPID(vs3) || ev.ps.Port.PortNo != 1 || ev.ps.Port.State != ofp.PortStateLinkDown {
		t.Errorf("port-status %+v on %v, want s3 port 1 link down", ev.ps, ev.sw)
	}
	rec.none(t, "down", 50*time.Millisecond)
}
