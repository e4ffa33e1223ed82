package vnet

import (
	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// Inline delivery of packet-ins.
//
// A packet-in normally reaches the apps through the virtual switch's
// bounded queue and goroutine, so that the physical session's event loop
// that demultiplexed it never waits for a tenant app. That hand-over costs
// a goroutine wake-up per request, and the app's answers are then sent
// from a goroutine the session does not batch for: the flow-mod and the
// packet-out leave in separate writes, where a bare app's answers to a
// packet-in leave in one (controller.Session corks its writer while it
// dispatches). For a request/response app this is most of what the
// virtualization adds per packet-in (docs/benchmarks.md, "Hypervisor
// packet-in path").
//
// PacketInFrom therefore runs the apps at once, on the caller's goroutine,
// when doing so is indistinguishable from a bare app on that bridge:
//
//   - every app of the tenant is InlineSafe: short handlers that wait for
//     nothing but the sends they make (controller/apps/learning);
//   - the virtual switch has exactly one edge bridge and it is the one the
//     packet-in came from, so the apps' sends can only wait for that same
//     session's send queue, as a bare app's do (a virtual switch spanning
//     several bridges keeps the queue: a slow bridge must not stall
//     another bridge's event loop);
//   - the switch is idle: SwitchUp has returned, no event is queued and
//     none is being delivered (s.exec, s.pending), so the packet-in takes
//     its place in the switch's event order exactly as if queued (every
//     event the switch delivers is delivered under s.exec, one at a time;
//     an event queued while the packet-in runs waits for it; a packet-in
//     arriving while anything is queued or running is queued behind it).
//
// Anything else is queued as before, with the queue's bound and drops.

// InlineSafe is implemented by apps that may run on a physical session's
// event goroutine (see PacketInFrom): their handlers are short and wait
// for nothing but the sends they make.
type InlineSafe interface {
	InlineSafe() bool
}

// inlineApps reports whether every app of the tenant is InlineSafe.
func (t *Tenant) inlineApps() bool {
	for _, a := range t.apps {
		if x, ok := a.(InlineSafe); !ok || !x.InlineSafe() {
			return false
		}
	}
	return true
}

// PacketInFrom is PacketIn for a packet-in that edge bridge from sent
// (the caller runs on that bridge's session event goroutine, e.g. the
// hypervisor's PacketIn handler): the apps run on the calling goroutine
// when the conditions above hold, else the packet-in is queued as by
// PacketIn. It returns false if the switch is unknown or its queue is
// full (dropped, counted in Dropped).
func (t *Tenant) PacketInFrom(from controller.DPID, vdpid topology.DPID, inPort uint32, table uint8, cookie uint64, frame []byte) bool {
	s := t.snap.Load()
	if s == nil {
		return false
	}
	vs, ok := s.view.SwitchByDPID(vdpid)
	if !ok {
		return false
	}
	reason := ofp.PacketInReasonNoMatch
	if cookie != 0 {
		reason = ofp.PacketInReasonAction
	}
	sw := s.switches[vs.Index-1]
	ev := event{pi: newPacketIn(inPort, table, cookie, reason, frame)}
	if bs := s.bridges[vs.Index-1]; from != noBridge && len(bs) == 1 && bs[0] == from && t.inlineApps() && sw.deliverInline(ev) {
		return true
	}
	return sw.enqueue(ev)
}

// deliverInline delivers ev on the calling goroutine if the switch is
// idle (see above) and reports whether it did.
func (s *Switch) deliverInline(ev event) bool {
	if !s.ready.Load() || s.pending.Load() != 0 || !s.exec.TryLock() {
		return false
	}
	defer s.exec.Unlock()
	if s.pending.Load() != 0 { // queued after the first check: it goes first
		return false
	}
	select {
	case <-s.done:
		return false
	default:
	}
	s.deliver(s.t.ctx, ev)
	return true
}
