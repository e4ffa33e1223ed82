package vnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// Switch is one virtual switch of one tenant, as the tenant's apps see it:
// a controller.Switch whose DPID is the virtual DPID, whose ports are the
// virtual ports (the tenant's port numbers), with NTables =
// pipeline.NumTenantTables. What apps send is translated onto the physical
// edge bridges (see the package documentation).
type Switch struct {
	t     *Tenant
	dpid  controller.DPID
	name  string
	index uint16 // in the view the switch was created from (stable while it runs)
	log   *slog.Logger

	events    chan event
	done      chan struct{} // closed when the switch goes away
	exited    chan struct{} // closed when run returned
	closeOnce sync.Once

	// exec is held while an event is delivered to the apps, pending
	// counts the events queued and not yet delivered, ready is set once
	// SwitchUp returned: together they let deliverInline (inline.go) run
	// a packet-in on the caller's goroutine without breaking the switch's
	// event order.
	exec    sync.Mutex
	pending atomic.Int64
	ready   atomic.Bool

	// mu guards tab and orders what is sent to the bridges for it: a
	// flow-mod's table change and its physical flow-mods, a replay.
	mu  sync.Mutex
	tab flowTable // table.go
}

var _ controller.Switch = (*Switch)(nil)

// event is one queued app event; exactly one field is set.
type event struct {
	pi  *controller.PacketIn
	fr  *ofp.FlowRemoved
	ps  *controller.PortStatus
	err *controller.ErrorEvent
}

// run delivers the switch's events to the chain, one at a time: SwitchUp
// first, SwitchDown after Done is closed. Each delivery holds s.exec (see
// deliverInline).
func (s *Switch) run() {
	defer close(s.exited)
	ctx := s.t.ctx
	ch := s.t.chain
	s.exec.Lock()
	ch.SwitchUp(ctx, s)
	s.exec.Unlock()
	s.ready.Store(true)
	for {
		select {
		case <-s.done:
			s.exec.Lock()
			ch.SwitchDown(ctx, s)
			s.exec.Unlock()
			return
		case ev := <-s.events:
			s.exec.Lock()
			s.deliver(ctx, ev)
			s.exec.Unlock()
			s.pending.Add(-1)
		}
	}
}

// deliver hands one event to the chain (s.exec held).
func (s *Switch) deliver(ctx context.Context, ev event) {
	ch := s.t.chain
	switch {
	case ev.pi != nil:
		ch.PacketIn(ctx, s, ev.pi)
	case ev.fr != nil:
		ch.FlowRemoved(ctx, s, ev.fr)
	case ev.ps != nil:
		ch.PortStatus(ctx, s, ev.ps)
	case ev.err != nil:
		ch.SwitchError(ctx, s, ev.err)
	}
}

// enqueue queues ev without blocking; false when the queue is full or the
// switch is gone.
func (s *Switch) enqueue(ev event) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	s.pending.Add(1)
	select {
	case s.events <- ev:
		return true
	default:
		s.pending.Add(-1)
		s.t.dropped.Add(1)
		return false
	}
}

// DPID returns the virtual DPID.
func (s *Switch) DPID() controller.DPID { return s.dpid }

// Name returns the virtual switch's name in the topology.
func (s *Switch) Name() string { return s.name }

// NTables returns pipeline.NumTenantTables: the virtual tables 0..3.
func (s *Switch) NTables() uint8 { return pipeline.NumTenantTables }

// Ports returns the virtual ports by port number (a copy).
func (s *Switch) Ports() []ofp.Port {
	snap := s.current()
	if snap == nil {
		return nil
	}
	return append([]ofp.Port(nil), snap.ports[s.index-1]...)
}

// Port looks up virtual port no.
func (s *Switch) Port(no ofp.PortNo) (ofp.Port, bool) {
	snap := s.current()
	if snap == nil {
		return ofp.Port{}, false
	}
	for _, p := range snap.ports[s.index-1] {
		if p.PortNo == no {
			return p, true
		}
	}
	return ofp.Port{}, false
}

// Logger carries the tenant, the switch name and virtual DPID.
func (s *Switch) Logger() *slog.Logger { return s.log }

// Done is closed when the switch goes away (tenant deleted or its
// topology changed).
func (s *Switch) Done() <-chan struct{} { return s.done }

// String names the switch for logs: "tenant/switch (vdpid)".
func (s *Switch) String() string { return fmt.Sprintf("%s/%s (%s)", s.t.name, s.name, s.dpid) }

// current returns the tenant's snapshot if it still holds s, nil once s
// was replaced (the topology changed) or the tenant closed: a switch's
// index is only meaningful in the snapshots it belongs to.
func (s *Switch) current() *snapshot {
	snap := s.t.snap.Load()
	if snap == nil || int(s.index) > len(snap.switches) || snap.switches[s.index-1] != s {
		return nil
	}
	return snap
}

// live returns the current snapshot, or an error wrapping
// controller.ErrClosed once Done is closed or s was replaced.
func (s *Switch) live(what string) (*snapshot, error) {
	select {
	case <-s.done:
		return nil, fmt.Errorf("vnet: %s on %s: %w", what, s, controller.ErrClosed)
	default:
	}
	snap := s.current()
	if snap == nil {
		return nil, fmt.Errorf("vnet: %s on %s: switch replaced: %w", what, s, controller.ErrClosed)
	}
	return snap, nil
}

// refuse reports a translation error the way a switch reports OFPT_ERROR:
// an ErrorEvent to the ErrorHandler apps (asynchronously), and the error
// itself returned to the caller.
func (s *Switch) refuse(err error) error {
	var pe *pipeline.Error
	if errors.As(err, &pe) {
		s.enqueue(event{err: &controller.ErrorEvent{Type: pe.Type, Code: pe.Code, Data: []byte(pe.Msg)}})
	}
	return err
}

// FlowMod applies fm to the switch's flow table (table.go; OpenFlow
// 1.3.5 §6.4 for one switch) and sends its translation (pipeline.Translate,
// pipeline.AddEntries) to every connected edge bridge of the switch:
// OFPFC_ADD adds or replaces an entry, OFPFC_MODIFY(_STRICT) changes the
// instructions of the matching entries in place, OFPFC_DELETE(_STRICT)
// removes them (flowAdd, flowModify, flowDelete). A bridge that is not
// connected gets the switch's entries, after the deletes it missed, when
// it connects (Tenant.Replay). Translation errors are *pipeline.Error
// (also delivered to ErrorHandler apps).
func (s *Switch) FlowMod(ctx context.Context, fm *ofp.FlowMod) error {
	snap, err := s.live("flow-mod")
	if err != nil {
		return err
	}
	switch fm.Command {
	case ofp.FlowAdd:
		return s.flowAdd(ctx, snap, fm)
	case ofp.FlowModify, ofp.FlowModifyStrict:
		return s.flowModify(ctx, snap, fm)
	case ofp.FlowDelete, ofp.FlowDeleteStrict:
		return s.flowDelete(ctx, snap, fm)
	}
	_, err = pipeline.Translate(snap.view, topology.DPID(s.dpid), fm)
	return s.refuse(err)
}

// GroupMod is refused: tenant groups are not virtualized
// (OFPET_GROUP_MOD_FAILED / OFPGMFC_EPERM).
func (s *Switch) GroupMod(context.Context, *ofp.GroupMod) error {
	return s.refuse(&pipeline.Error{Type: ofp.ErrTypeGroupModFailed, Code: ofp.ErrCode(13), // OFPGMFC_EPERM (spec 7.4.4)
		Msg: "tenant groups are not virtualized"})
}

// MeterMod is refused: tenant meters are not virtualized
// (OFPET_METER_MOD_FAILED / OFPMMFC_UNKNOWN).
func (s *Switch) MeterMod(context.Context, *ofp.MeterMod) error {
	return s.refuse(&pipeline.Error{Type: ofp.ErrTypeMeterModFailed, Code: ofp.ErrCodeMeterModFailedUnknown,
		Msg: "tenant meters are not virtualized"})
}

// PacketOut sends po (spec 7.3.7). LLDP frames are virtualized (see the
// package documentation); every other frame is translated with
// pipeline.TranslatePacketOut and sent to the edge bridge it names.
// Errors: *pipeline.Error for what cannot be translated (also delivered
// to ErrorHandler apps), the bridge not connected, or its send error.
func (s *Switch) PacketOut(ctx context.Context, po *ofp.PacketOut) error {
	snap, err := s.live("packet-out")
	if err != nil {
		return err
	}
	if isLLDP(po.Data) {
		return s.lldpOut(ctx, snap, po)
	}
	bridge, ppo, err := pipeline.TranslatePacketOut(snap.view, snap.bindings, topology.DPID(s.dpid), po)
	if err != nil {
		return s.refuse(err)
	}
	psw := s.t.phys.Switch(bridge)
	if psw == nil {
		return fmt.Errorf("vnet: packet-out on %s: bridge %s is not connected", s, bridge)
	}
	return psw.PacketOut(ctx, ppo)
}

// Barrier sends a barrier (spec 6.2) to every connected edge bridge of the
// switch and returns their errors, joined: once it returns, every
// flow-mod this switch translated before it was processed.
func (s *Switch) Barrier(ctx context.Context) error {
	snap, err := s.live("barrier")
	if err != nil {
		return err
	}
	bs := snap.bridges[s.index-1]
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		psw := s.t.phys.Switch(b)
		if psw == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := psw.Barrier(ctx); err != nil {
				errs[i] = fmt.Errorf("bridge %s: %w", b, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// isLLDP reports whether frame is an LLDP frame (ethertype 0x88cc, also
// behind one 802.1Q tag).
func isLLDP(frame []byte) bool {
	if len(frame) < 14 {
		return false
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	if et == 0x8100 && len(frame) >= 18 {
		et = binary.BigEndian.Uint16(frame[16:18])
	}
	return et == 0x88cc
}

// lldpOut virtualizes an LLDP packet-out: every output action names a
// port of the switch (or FLOOD/ALL: every port but the in-port); out of a
// link port the frame is handed back as a packet-in (OFPR_ACTION, table
// 0) on the peer virtual port; out of a host port it goes unchanged to the
// host's physical port (skipped when the host is not bound: the port is
// link-down). Actions other than output are refused
// (OFPET_BAD_ACTION/OFPBAC_BAD_TYPE).
func (s *Switch) lldpOut(ctx context.Context, snap *snapshot, po *ofp.PacketOut) error {
	v := snap.view
	vs := &v.Switches[s.index-1]
	var targets []uint16 // vport indices
	for _, a := range po.Actions {
		o, ok := a.(*ofp.ActionOutput)
		if !ok {
			return s.refuse(&pipeline.Error{Type: ofp.ErrTypeBadAction, Code: ofp.ErrCodeBadActionType,
				Msg: fmt.Sprintf("LLDP packet-out: only output actions are virtualized, got %T", a)})
		}
		switch {
		case o.Port == ofp.PortFlood || o.Port == ofp.PortAll:
			for _, pi := range vs.Ports {
				if ofp.PortNo(v.Ports[pi-1].Port) != po.InPort {
					targets = append(targets, pi)
				}
			}
		case o.Port <= ofp.PortMax:
			pi, ok := v.PortOf(vs.Index, uint32(o.Port))
			if !ok {
				return s.refuse(&pipeline.Error{Type: ofp.ErrTypeBadAction, Code: ofp.ErrCodeBadActionOutPort,
					Msg: fmt.Sprintf("LLDP packet-out: port %d is not a port of virtual switch %s", o.Port, s.dpid)})
			}
			targets = append(targets, pi)
		default:
			return s.refuse(&pipeline.Error{Type: ofp.ErrTypeBadAction, Code: ofp.ErrCodeBadActionOutPort,
				Msg: fmt.Sprintf("LLDP packet-out: output to %#x is not virtualized", uint32(o.Port))})
		}
	}
	var errs []error
	for _, pi := range targets {
		p := v.Ports[pi-1]
		switch {
		case p.Peer != 0:
			peer := v.Ports[p.Peer-1]
			frame := append([]byte(nil), po.Data...)
			if snap.switches[peer.Switch-1].enqueue(event{pi: newPacketIn(peer.Port, 0, 0, ofp.PacketInReasonAction, frame)}) {
				s.t.lldpLoop.Add(1)
			}
		case p.Host != nil:
			b, ok := snap.bound[pi]
			if !ok {
				continue // host not plugged in: the port is down
			}
			psw := s.t.phys.Switch(b.Bridge)
			if psw == nil {
				continue
			}
			out := &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: ofp.PortController,
				Actions: ofp.Actions{&ofp.ActionOutput{Port: ofp.PortNo(b.Port), MaxLen: ofp.ContentLenNoBuffer}}, Data: po.Data}
			if err := psw.PacketOut(ctx, out); err != nil {
				errs = append(errs, fmt.Errorf("bridge %s: %w", b.Bridge, err))
			}
		}
	}
	return errors.Join(errs...)
}
