package controller

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/netrack/openflow/ofp"
)

// Switch is the handle apps use to act on one OpenFlow 1.3 switch without
// touching wire encoding. It has two implementations: *Session, a
// physical switch connected over OpenFlow, and the hypervisor's virtual
// switch, which translates what a tenant's app sends onto the physical
// switches (package hypervisor/vnet). All methods are safe for concurrent
// use. After Done is closed, sends fail with an error wrapping ErrClosed.
type Switch interface {
	// DPID is the datapath ID (spec 7.3.1, ofp_switch_features).
	DPID() DPID
	// NTables is n_tables of the features reply.
	NTables() uint8
	// Ports is a snapshot of the switch's ports (spec 7.2.1), by port
	// number; Port looks one up.
	Ports() []ofp.Port
	Port(no ofp.PortNo) (ofp.Port, bool)
	// Logger carries the switch's DPID in its attributes.
	Logger() *slog.Logger
	// Done is closed when the switch goes away.
	Done() <-chan struct{}
	// FlowMod, GroupMod, MeterMod and PacketOut queue OFPT_FLOW_MOD
	// (spec 7.3.4.1), OFPT_GROUP_MOD (7.3.4.2), OFPT_METER_MOD (7.3.4.4)
	// and OFPT_PACKET_OUT (7.3.7). Errors the switch reports later are
	// collected by the next Barrier or handed to the ErrorHandler apps.
	FlowMod(ctx context.Context, fm *ofp.FlowMod) error
	GroupMod(ctx context.Context, gm *ofp.GroupMod) error
	MeterMod(ctx context.Context, mm *ofp.MeterMod) error
	PacketOut(ctx context.Context, po *ofp.PacketOut) error
	// Barrier (spec 6.2, 7.3.8) waits until every message queued before
	// it was processed and returns their errors, joined.
	Barrier(ctx context.Context) error
	// FlowStats sends OFPMP_FLOW (spec 7.3.5.2) and returns every entry
	// of every reply part.
	FlowStats(ctx context.Context, req *ofp.FlowStatsRequest) ([]FlowStats, error)
	// PortDesc sends OFPMP_PORT_DESC (spec 7.3.5.7) and returns the
	// switch's ports as it reports them now (Ports is the snapshot kept
	// from port status).
	PortDesc(ctx context.Context) ([]ofp.Port, error)
	// GroupDesc sends OFPMP_GROUP_DESC (spec 7.3.5.10) and returns every
	// group with its buckets.
	GroupDesc(ctx context.Context) ([]GroupDesc, error)
	// MeterConfig sends OFPMP_METER_CONFIG for OFPM_ALL (spec 7.3.5.13)
	// and returns every meter with its bands.
	MeterConfig(ctx context.Context) ([]MeterConfig, error)
	// Multipart sends an OFPT_MULTIPART_REQUEST of type t (spec 7.3.5)
	// whose body is the ofp request body (e.g. *ofp.PortStatsRequest;
	// nil for types without one) and returns the bodies of all reply
	// parts concatenated, without their multipart headers, following
	// OFPMPF_REPLY_MORE; decode them with package ofwire or netrack's
	// ofp types. An OFPT_ERROR reply is returned as *OFPError. A switch
	// that cannot answer a type (a virtual switch) returns an error
	// wrapping errors.ErrUnsupported.
	Multipart(ctx context.Context, t ofp.MultipartType, body io.WriterTo) ([]byte, error)
	// String names the switch for logs.
	String() string
}

var _ Switch = (*Session)(nil)

// Chain is an ordered list of apps with their handler interfaces detected
// once. The Controller dispatches its sessions' events through one; other
// sources of switches (the hypervisor's virtual switches) use their own.
// Handlers run in the order the apps were given; a PacketInHandler
// returning Stop ends the walk; a panic in a handler is recovered and
// logged with the app name, the switch's DPID and the stack. Chain holds
// no per-switch state and is safe for concurrent use: callers serialize
// the events of one switch themselves.
type Chain struct {
	hooks hooks
}

// NewChain detects the handler interfaces of apps. It fails when an app is
// nil, two apps share a name, or an app implements no handler interface.
func NewChain(apps ...App) (*Chain, error) {
	ch := &Chain{}
	names := make(map[string]bool)
	for i, a := range apps {
		if a == nil {
			return nil, fmt.Errorf("controller: app %d is nil", i)
		}
		name := a.Name()
		if names[name] {
			return nil, fmt.Errorf("controller: two apps named %q", name)
		}
		names[name] = true
		found := false
		if h, ok := a.(SwitchUpHandler); ok {
			ch.hooks.up, found = append(ch.hooks.up, hook[SwitchUpHandler]{name, h}), true
		}
		if h, ok := a.(SwitchDownHandler); ok {
			ch.hooks.down, found = append(ch.hooks.down, hook[SwitchDownHandler]{name, h}), true
		}
		if h, ok := a.(PortStatusHandler); ok {
			ch.hooks.portStatus, found = append(ch.hooks.portStatus, hook[PortStatusHandler]{name, h}), true
		}
		if h, ok := a.(PacketInHandler); ok {
			ch.hooks.packetIn, found = append(ch.hooks.packetIn, hook[PacketInHandler]{name, h}), true
		}
		if h, ok := a.(FlowRemovedHandler); ok {
			ch.hooks.flowRemoved, found = append(ch.hooks.flowRemoved, hook[FlowRemovedHandler]{name, h}), true
		}
		if h, ok := a.(ErrorHandler); ok {
			ch.hooks.errs, found = append(ch.hooks.errs, hook[ErrorHandler]{name, h}), true
		}
		if !found {
			return nil, fmt.Errorf("controller: app %q implements no handler interface (SwitchUpHandler, PacketInHandler, ...)", name)
		}
	}
	return ch, nil
}

// recovered logs a handler panic; the caller goes on.
func recovered(sw Switch, app, handler string) {
	if r := recover(); r != nil {
		sw.Logger().Error("app handler panicked", "app", app, "handler", handler, "dpid", sw.DPID().String(),
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// SwitchUp runs the SwitchUpHandlers for sw.
func (ch *Chain) SwitchUp(ctx context.Context, sw Switch) {
	for _, k := range ch.hooks.up {
		func() {
			defer recovered(sw, k.name, "SwitchUp")
			k.h.SwitchUp(ctx, sw)
		}()
	}
}

// SwitchDown runs the SwitchDownHandlers for sw.
func (ch *Chain) SwitchDown(ctx context.Context, sw Switch) {
	for _, k := range ch.hooks.down {
		func() {
			defer recovered(sw, k.name, "SwitchDown")
			k.h.SwitchDown(ctx, sw)
		}()
	}
}

// PacketIn runs the PacketInHandlers for ev until one returns Stop, and
// returns Stop if one did.
func (ch *Chain) PacketIn(ctx context.Context, sw Switch, ev *PacketIn) Disposition {
	for _, k := range ch.hooks.packetIn {
		if ch.packetIn(ctx, k, sw, ev) == Stop {
			return Stop
		}
	}
	return Continue
}

func (ch *Chain) packetIn(ctx context.Context, k hook[PacketInHandler], sw Switch, ev *PacketIn) Disposition {
	defer recovered(sw, k.name, "PacketIn")
	return k.h.PacketIn(ctx, sw, ev)
}

// PortStatus runs the PortStatusHandlers for ev.
func (ch *Chain) PortStatus(ctx context.Context, sw Switch, ev *PortStatus) {
	for _, k := range ch.hooks.portStatus {
		func() {
			defer recovered(sw, k.name, "PortStatus")
			k.h.PortStatus(ctx, sw, ev)
		}()
	}
}

// FlowRemoved runs the FlowRemovedHandlers for ev.
func (ch *Chain) FlowRemoved(ctx context.Context, sw Switch, ev *ofp.FlowRemoved) {
	for _, k := range ch.hooks.flowRemoved {
		func() {
			defer recovered(sw, k.name, "FlowRemoved")
			k.h.FlowRemoved(ctx, sw, ev)
		}()
	}
}

// SwitchError runs the ErrorHandlers for ev, or logs a warning when no app
// handles errors.
func (ch *Chain) SwitchError(ctx context.Context, sw Switch, ev *ErrorEvent) {
	if len(ch.hooks.errs) == 0 {
		sw.Logger().Warn("unclaimed OpenFlow error from switch", "xid", ev.Xid, "type", ev.Type, "code", ev.Code,
			"text", ofp.Error{Type: ev.Type, Code: ev.Code}.String())
	}
	for _, k := range ch.hooks.errs {
		func() {
			defer recovered(sw, k.name, "SwitchError")
			k.h.SwitchError(ctx, sw, ev)
		}()
	}
}
