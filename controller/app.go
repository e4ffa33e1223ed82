package controller

import (
	"context"
	"fmt"

	"github.com/netrack/openflow/ofp"
)

// App is a controller application. Besides Name it may implement any of
// the handler interfaces below (SwitchUpHandler, PacketInHandler, ...);
// the Controller detects them once, in New. Apps are called in the order
// they were passed to New, on the event goroutine of the switch the
// event belongs to: one slow app slows only that switch. A panic in a
// handler is recovered and logged (app name, DPID, stack); the session
// goes on.
type App interface {
	// Name identifies the app in logs.
	Name() string
}

// SwitchUpHandler is called once per session after the hello exchange,
// the features reply and the port description multipart reply
// (OpenFlow 1.3.5 spec section 6.3.3 "Connection Setup").
type SwitchUpHandler interface {
	SwitchUp(ctx context.Context, sw Switch)
}

// SwitchDownHandler is called once when a session that reached SwitchUp
// ends (disconnect, dead peer, malformed message, replacement by a newer
// session with the same DPID, or controller shutdown). sw.Done() is
// already closed and sends on sw fail.
type SwitchDownHandler interface {
	SwitchDown(ctx context.Context, sw Switch)
}

// PortStatusHandler receives OFPT_PORT_STATUS (spec 7.4.3). The switch's
// port snapshot (Switch.Ports) is already updated when it is called.
type PortStatusHandler interface {
	PortStatus(ctx context.Context, sw Switch, ev *PortStatus)
}

// PacketInHandler receives OFPT_PACKET_IN (spec 7.4.1). Returning Stop
// hides the packet-in from apps registered after this one.
type PacketInHandler interface {
	PacketIn(ctx context.Context, sw Switch, ev *PacketIn) Disposition
}

// FlowRemovedHandler receives OFPT_FLOW_REMOVED (spec 7.4.2).
type FlowRemovedHandler interface {
	FlowRemoved(ctx context.Context, sw Switch, ev *ofp.FlowRemoved)
}

// ErrorHandler receives OFPT_ERROR messages (spec 7.4.4) that no waiting
// Request, Multipart or Barrier claimed.
type ErrorHandler interface {
	SwitchError(ctx context.Context, sw Switch, ev *ErrorEvent)
}

// Disposition tells the controller whether later apps see a packet-in.
type Disposition int

const (
	// Continue passes the packet-in on to the next app.
	Continue Disposition = iota
	// Stop consumes the packet-in: later apps do not see it.
	Stop
)

// PacketIn is a decoded OFPT_PACKET_IN (OpenFlow 1.3.5 spec section
// 7.4.1, struct ofp_packet_in).
type PacketIn struct {
	BufferID uint32             // buffer_id; ofp.NoBuffer (0xffffffff) when the frame is not buffered
	TotalLen uint16             // total_len: full length of the frame, Data may be shorter
	Reason   ofp.PacketInReason // reason: no match, action, invalid TTL
	TableID  uint8              // table_id the packet was looked up in
	Cookie   uint64             // cookie of the flow entry that sent the packet
	Match    ofp.Match          // OXM pipeline fields (in_port, metadata, tunnel...); values alias the event's own buffer
	InPort   ofp.PortNo         // OXM in_port, for convenience (0 when absent)
	Data     []byte             // the Ethernet frame; owned by the event, apps may keep it

	fields [4]ofp.XM // backing store for Match.Fields: no allocation for up to 4 OXMs
}

// PortStatus is a decoded OFPT_PORT_STATUS (spec 7.4.3).
type PortStatus struct {
	Reason ofp.PortReason // add, delete, modify
	Port   ofp.Port       // the port's description after the change; Name without NUL padding
}

// ErrorEvent is an OFPT_ERROR (spec 7.4.4) that no request claimed.
type ErrorEvent struct {
	Xid  uint32      // xid of the message that caused the error
	Type ofp.ErrType // error type (OFPET_*)
	Code ofp.ErrCode // error code within Type
	Data []byte      // usually the first 64 bytes of the failed message
}

// OFPError is the error returned by Request, Multipart, Barrier and the
// typed stats calls when the switch answers with OFPT_ERROR (spec 7.4.4).
type OFPError struct {
	Xid  uint32      // xid of the failed message
	Type ofp.ErrType // error type (OFPET_*)
	Code ofp.ErrCode // error code within Type
	Data []byte      // usually the first 64 bytes of the failed message
}

// Error implements error.
func (e *OFPError) Error() string {
	return fmt.Sprintf("openflow error xid=%d type=%s code=%d (%s)", e.Xid, e.Type, e.Code,
		ofp.Error{Type: e.Type, Code: e.Code}.String())
}
