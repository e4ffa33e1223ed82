package ofwire

import (
	"fmt"

	"github.com/netrack/openflow/ofp"
)

// AppendFlowMod appends an ofp_flow_mod body (spec 7.3.4.1, without the
// ofp_header) byte-identical to ofp.FlowMod.WriteTo, without reflection
// or intermediate buffers.
func AppendFlowMod(b []byte, fm *ofp.FlowMod) ([]byte, error) {
	b = appendU64(b, fm.Cookie)
	b = appendU64(b, fm.CookieMask)
	b = append(b, byte(fm.Table), byte(fm.Command))
	b = appendU16(b, fm.IdleTimeout)
	b = appendU16(b, fm.HardTimeout)
	b = appendU16(b, fm.Priority)
	b = appendU32(b, fm.Buffer)
	b = appendU32(b, uint32(fm.OutPort))
	b = appendU32(b, uint32(fm.OutGroup))
	b = appendU16(b, uint16(fm.Flags))
	b = append(b, 0, 0)
	b = AppendMatch(b, &fm.Match)
	b, err := AppendInstructions(b, fm.Instructions)
	if err != nil {
		return b, fmt.Errorf("flow mod: %w", err)
	}
	return b, nil
}

// AppendPacketOut appends an ofp_packet_out body (spec 7.3.7, without
// the ofp_header) byte-identical to ofp.PacketOut.WriteTo.
func AppendPacketOut(b []byte, po *ofp.PacketOut) ([]byte, error) {
	b = appendU32(b, po.Buffer)
	b = appendU32(b, uint32(po.InPort))
	lenAt := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b, err := AppendActions(b, po.Actions)
	if err != nil {
		return b, fmt.Errorf("packet out: %w", err)
	}
	l := len(b) - lenAt - 8
	b[lenAt], b[lenAt+1] = byte(l>>8), byte(l)
	return append(b, po.Data...), nil
}

// AppendMultipartRequest appends an ofp_multipart_request header (spec
// 7.3.5: type, flags, 4 pad bytes); the caller appends the body.
func AppendMultipartRequest(b []byte, t ofp.MultipartType, flags uint16) []byte {
	b = appendU16(b, uint16(t))
	b = appendU16(b, flags)
	return append(b, 0, 0, 0, 0)
}

// MultipartReply is the header of an OFPT_MULTIPART_REPLY body (spec
// 7.3.5).
type MultipartReply struct {
	Type  ofp.MultipartType // OFPMP_* type
	Flags uint16            // OFPMPF_REPLY_MORE (1) when more parts follow
	Body  []byte            // the part's body, aliasing the input
}

// MultipartReplyMore is OFPMPF_REPLY_MORE (spec 7.3.5).
const MultipartReplyMore = 1

// DecodeMultipartReply splits an OFPT_MULTIPART_REPLY body.
func DecodeMultipartReply(body []byte) (MultipartReply, error) {
	if len(body) < 8 {
		return MultipartReply{}, fmt.Errorf("ofwire: multipart reply body of %d bytes, need 8", len(body))
	}
	return MultipartReply{Type: ofp.MultipartType(u16(body)), Flags: u16(body[2:]), Body: body[8:]}, nil
}

// ErrorMsg is a decoded OFPT_ERROR body (spec 7.4.4).
type ErrorMsg struct {
	Type ofp.ErrType // OFPET_*; 0xffff for experimenter errors
	Code ofp.ErrCode // code, or exp_type for experimenter errors
	Data []byte      // the rest (for experimenter errors starting with the experimenter ID), aliasing the input
}

// DecodeError decodes an OFPT_ERROR body.
func DecodeError(body []byte) (ErrorMsg, error) {
	if len(body) < 4 {
		return ErrorMsg{}, fmt.Errorf("ofwire: error body of %d bytes, need 4", len(body))
	}
	return ErrorMsg{Type: ofp.ErrType(u16(body)), Code: ofp.ErrCode(u16(body[2:])), Data: body[4:]}, nil
}

// AppendError appends a complete OFPT_ERROR message (spec 7.4.4).
func AppendError(b []byte, xid uint32, t ofp.ErrType, code ofp.ErrCode, data []byte) []byte {
	start := len(b)
	b = AppendHeader(b, 1, 0, xid)
	b = appendU16(b, uint16(t))
	b = appendU16(b, uint16(code))
	b = append(b, data...)
	l := len(b) - start
	if l > MaxMessageLen {
		b = b[:start+MaxMessageLen]
		l = MaxMessageLen
	}
	b[start+2], b[start+3] = byte(l>>8), byte(l)
	return b
}

// Features is a decoded OFPT_FEATURES_REPLY (spec 7.3.1).
type Features struct {
	DatapathID   uint64
	NumBuffers   uint32
	NumTables    uint8
	AuxiliaryID  uint8
	Capabilities ofp.Capability
}

// DecodeFeatures decodes an OFPT_FEATURES_REPLY body (24 bytes).
func DecodeFeatures(body []byte) (Features, error) {
	if len(body) < 24 {
		return Features{}, fmt.Errorf("ofwire: features reply body of %d bytes, need 24", len(body))
	}
	return Features{
		DatapathID: u64(body), NumBuffers: u32(body[8:]), NumTables: body[12],
		AuxiliaryID: body[13], Capabilities: ofp.Capability(u32(body[16:])),
	}, nil
}

// flowRemovedFixedLen is the length of ofp_flow_removed before its match.
const flowRemovedFixedLen = 40

// DecodeFlowRemoved decodes an OFPT_FLOW_REMOVED body (spec 7.4.2).
// Match values alias body.
func DecodeFlowRemoved(body []byte) (*ofp.FlowRemoved, error) {
	if len(body) < flowRemovedFixedLen+4 {
		return nil, fmt.Errorf("ofwire: flow removed body of %d bytes, need at least %d", len(body), flowRemovedFixedLen+4)
	}
	fr := &ofp.FlowRemoved{
		Cookie: u64(body), Priority: u16(body[8:]), Reason: ofp.FlowRemovedReason(body[10]),
		Table: ofp.Table(body[11]), DurationSec: u32(body[12:]), DurationNSec: u32(body[16:]),
		IdleTimeout: u16(body[20:]), HardTimeout: u16(body[22:]),
		PacketCount: u64(body[24:]), ByteCount: u64(body[32:]),
	}
	m, _, err := DecodeMatch(body[flowRemovedFixedLen:], nil)
	if err != nil {
		return nil, fmt.Errorf("flow removed: %w", err)
	}
	fr.Match = m
	return fr, nil
}

// PortLen is the length of struct ofp_port (spec 7.2.1).
const PortLen = 64

// DecodePort decodes one ofp_port (spec 7.2.1) from the first 64 bytes
// of b. Unlike netrack it strips the NUL padding from the name.
func DecodePort(b []byte) (ofp.Port, error) {
	if len(b) < PortLen {
		return ofp.Port{}, fmt.Errorf("ofwire: port of %d bytes, need %d", len(b), PortLen)
	}
	name := b[16:32]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	hw := make([]byte, 6)
	copy(hw, b[8:14])
	return ofp.Port{
		PortNo: ofp.PortNo(u32(b)), HWAddr: hw, Name: string(name),
		Config: ofp.PortConfig(u32(b[32:])), State: ofp.PortState(u32(b[36:])),
		Curr: ofp.PortFeature(u32(b[40:])), Advertised: ofp.PortFeature(u32(b[44:])),
		Supported: ofp.PortFeature(u32(b[48:])), Peer: ofp.PortFeature(u32(b[52:])),
		CurrSpeed: u32(b[56:]), MaxSpeed: u32(b[60:]),
	}, nil
}

// DecodePorts decodes an OFPMP_PORT_DESC reply body (spec 7.3.5.7): a
// whole number of ofp_port structures.
func DecodePorts(b []byte) ([]ofp.Port, error) {
	if len(b)%PortLen != 0 {
		return nil, fmt.Errorf("ofwire: port description body of %d bytes is not a multiple of %d", len(b), PortLen)
	}
	ports := make([]ofp.Port, 0, len(b)/PortLen)
	for off := 0; off < len(b); off += PortLen {
		p, err := DecodePort(b[off:])
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// AppendPort appends p as one 64-byte ofp_port (spec 7.2.1), the element
// of an OFPMP_PORT_DESC reply body: a missing or short hw_addr is padded
// with zeros, a name longer than 15 bytes is cut so a NUL ends it.
func AppendPort(b []byte, p *ofp.Port) []byte {
	b = appendU32(b, uint32(p.PortNo))
	b = appendZeros(b, 4)
	var hw [6]byte
	copy(hw[:], p.HWAddr)
	b = append(b, hw[:]...)
	b = appendZeros(b, 2)
	var name [16]byte
	copy(name[:15], p.Name)
	b = append(b, name[:]...)
	for _, v := range []uint32{uint32(p.Config), uint32(p.State), uint32(p.Curr), uint32(p.Advertised),
		uint32(p.Supported), uint32(p.Peer), p.CurrSpeed, p.MaxSpeed} {
		b = appendU32(b, v)
	}
	return b
}

// DecodePortStatus decodes an OFPT_PORT_STATUS body (spec 7.4.3): reason,
// 7 pad bytes, ofp_port.
func DecodePortStatus(body []byte) (ofp.PortReason, ofp.Port, error) {
	if len(body) < 8+PortLen {
		return 0, ofp.Port{}, fmt.Errorf("ofwire: port status body of %d bytes, need %d", len(body), 8+PortLen)
	}
	p, err := DecodePort(body[8:])
	return ofp.PortReason(body[0]), p, err
}
