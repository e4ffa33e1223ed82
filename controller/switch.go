package controller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

// Switch is the handle apps use for one connected switch (one session).
// All methods are safe for concurrent use.
type Switch struct {
	dpid    DPID
	nTables uint8
	remote  net.Addr
	logger  *slog.Logger
	done    chan struct{}
}

// Reply is a message the switch sent in answer to a Request.
type Reply struct {
	Header of.Header // version, type, length, xid as received
	Body   []byte    // everything after the 8-byte header; owned by the caller
}

// DPID returns the datapath ID from the features reply.
func (s *Switch) DPID() DPID { return s.dpid }

// NTables returns n_tables from the features reply.
func (s *Switch) NTables() uint8 { return s.nTables }

// Ports returns a snapshot of the switch ports.
func (s *Switch) Ports() []ofp.Port { return nil }

// Port returns one port by number.
func (s *Switch) Port(no ofp.PortNo) (ofp.Port, bool) { return ofp.Port{}, false }

// RemoteAddr returns the switch's address.
func (s *Switch) RemoteAddr() net.Addr { return s.remote }

// Logger returns a logger tagged with the DPID and remote address.
func (s *Switch) Logger() *slog.Logger { return s.logger }

// Done is closed when the session ends.
func (s *Switch) Done() <-chan struct{} { return s.done }

// FlowMod queues an OFPT_FLOW_MOD.
func (s *Switch) FlowMod(ctx context.Context, fm *ofp.FlowMod) error { return errors.New("todo") }

// GroupMod queues an OFPT_GROUP_MOD.
func (s *Switch) GroupMod(ctx context.Context, gm *ofp.GroupMod) error { return errors.New("todo") }

// MeterMod queues an OFPT_METER_MOD.
func (s *Switch) MeterMod(ctx context.Context, mm *ofp.MeterMod) error { return errors.New("todo") }

// PacketOut queues an OFPT_PACKET_OUT.
func (s *Switch) PacketOut(ctx context.Context, po *ofp.PacketOut) error { return errors.New("todo") }

// Send queues any message.
func (s *Switch) Send(ctx context.Context, t of.Type, body io.WriterTo) (uint32, error) {
	return 0, errors.New("todo")
}

// Barrier waits for a barrier reply.
func (s *Switch) Barrier(ctx context.Context) error { return errors.New("todo") }

// Request sends a message and waits for the reply with the same xid.
func (s *Switch) Request(ctx context.Context, t of.Type, body io.WriterTo) (*Reply, error) {
	return nil, errors.New("todo")
}

// Multipart sends a multipart request and reassembles the reply.
func (s *Switch) Multipart(ctx context.Context, t ofp.MultipartType, body io.WriterTo) ([]byte, error) {
	return nil, errors.New("todo")
}

// FlowStats requests flow statistics.
func (s *Switch) FlowStats(ctx context.Context, req *ofp.FlowStatsRequest) ([]FlowStats, error) {
	return nil, errors.New("todo")
}

// GroupDesc requests group descriptions.
func (s *Switch) GroupDesc(ctx context.Context) ([]GroupDesc, error) { return nil, errors.New("todo") }

// MeterConfig requests meter configurations.
func (s *Switch) MeterConfig(ctx context.Context) ([]MeterConfig, error) {
	return nil, errors.New("todo")
}

// PortDesc requests port descriptions.
func (s *Switch) PortDesc(ctx context.Context) ([]ofp.Port, error) { return nil, errors.New("todo") }
