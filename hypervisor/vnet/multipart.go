package vnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

// Multipart requests (OpenFlow 1.3.5 spec 7.3.5) on a virtual switch:
// what a tenant's switch has is answered from the virtual view (port
// description, flow stats); what is not virtualized (groups, meters, the
// other statistics) fails with an error wrapping errors.ErrUnsupported.

// PortDesc answers OFPMP_PORT_DESC (spec 7.3.5.7) with the virtual ports,
// as Ports does. It fails with an error wrapping controller.ErrClosed
// once the switch is gone.
func (s *Switch) PortDesc(ctx context.Context) ([]ofp.Port, error) {
	snap, err := s.live("port desc")
	if err != nil {
		return nil, err
	}
	return append([]ofp.Port(nil), snap.ports[s.index-1]...), nil
}

// GroupDesc fails with an error wrapping errors.ErrUnsupported: tenant
// groups are not virtualized (GroupMod is refused).
func (s *Switch) GroupDesc(ctx context.Context) ([]controller.GroupDesc, error) {
	if _, err := s.live("group desc"); err != nil {
		return nil, err
	}
	return nil, s.unsupported("group desc (tenant groups are not virtualized)")
}

// MeterConfig fails with an error wrapping errors.ErrUnsupported: tenant
// meters are not virtualized (MeterMod is refused).
func (s *Switch) MeterConfig(ctx context.Context) ([]controller.MeterConfig, error) {
	if _, err := s.live("meter config"); err != nil {
		return nil, err
	}
	return nil, s.unsupported("meter config (tenant meters are not virtualized)")
}

// Multipart answers OFPMP_PORT_DESC (PortDesc, each port encoded as
// ofp_port) and OFPMP_FLOW (FlowStats with body, an *ofp.FlowStatsRequest
// or its encoding, nil for all flows; entries encoded as ofp_flow_stats)
// with the reply body bytes a switch would send. Every other type fails
// with an error wrapping errors.ErrUnsupported.
func (s *Switch) Multipart(ctx context.Context, t ofp.MultipartType, body io.WriterTo) ([]byte, error) {
	if _, err := s.live(fmt.Sprintf("multipart %s", t)); err != nil {
		return nil, err
	}
	switch t {
	case ofp.MultipartTypePortDescription:
		ports, err := s.PortDesc(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(ports)*ofwire.PortLen)
		for i := range ports {
			out = ofwire.AppendPort(out, &ports[i])
		}
		return out, nil
	case ofp.MultipartTypeFlow:
		req, err := flowStatsRequest(body)
		if err != nil {
			return nil, fmt.Errorf("vnet: multipart %s on %s: %w", t, s, err)
		}
		fs, err := s.FlowStats(ctx, req)
		if err != nil {
			return nil, err
		}
		var out []byte
		for i := range fs {
			if out, err = ofwire.AppendFlowStats(out, &fs[i]); err != nil {
				return nil, fmt.Errorf("vnet: multipart %s on %s: encode entry %d: %w", t, s, i, err)
			}
		}
		return out, nil
	}
	return nil, s.unsupported(fmt.Sprintf("multipart %s", t))
}

// unsupported is the error of a request the virtual switch cannot answer.
func (s *Switch) unsupported(what string) error {
	return fmt.Errorf("vnet: %s on %s: %w", what, s, errors.ErrUnsupported)
}

// flowStatsRequest returns body as a flow stats request: nil (all flows),
// an *ofp.FlowStatsRequest, or any encoding of ofp_flow_stats_request
// (spec 7.3.5.2).
func flowStatsRequest(body io.WriterTo) (*ofp.FlowStatsRequest, error) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case *ofp.FlowStatsRequest:
		return b, nil
	}
	raw, err := ofwire.AppendWriterTo(nil, body)
	if err != nil {
		return nil, fmt.Errorf("encode request body (%T): %w", body, err)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	var req ofp.FlowStatsRequest
	if _, err := req.ReadFrom(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("decode flow stats request of %d bytes: %w", len(raw), err)
	}
	return &req, nil
}
