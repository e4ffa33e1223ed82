package controller

import (
	"fmt"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

// packetInFixedLen is the length of ofp_packet_in before its match.
const packetInFixedLen = 16

// decodePacketIn decodes an OFPT_PACKET_IN body (spec 7.4.1): buffer_id,
// total_len, reason, table_id, cookie, match, 2 pad bytes, frame. It is
// the hot path: one copy of the body (owned by the event; Data and the
// OXM values alias it) and one PacketIn allocation, with room for four
// OXMs inside the PacketIn. body itself is not retained.
func decodePacketIn(body []byte) (*PacketIn, error) {
	if len(body) < packetInFixedLen+8+2 {
		return nil, fmt.Errorf("packet-in body of %d bytes, need at least %d", len(body), packetInFixedLen+8+2)
	}
	own := make([]byte, len(body))
	copy(own, body)
	p := &PacketIn{
		BufferID: uint32(own[0])<<24 | uint32(own[1])<<16 | uint32(own[2])<<8 | uint32(own[3]),
		TotalLen: uint16(own[4])<<8 | uint16(own[5]),
		Reason:   ofp.PacketInReason(own[6]),
		TableID:  own[7],
	}
	for _, c := range own[8:16] {
		p.Cookie = p.Cookie<<8 | uint64(c)
	}
	m, n, err := ofwire.DecodeMatch(own[packetInFixedLen:], p.fields[:0])
	if err != nil {
		return nil, err
	}
	off := packetInFixedLen + n + 2
	if off > len(own) {
		return nil, fmt.Errorf("packet-in: match of %d bytes leaves no room for the 2 pad bytes", n)
	}
	p.Match = m
	p.Data = own[off:]
	for i := range m.Fields {
		f := &m.Fields[i]
		if f.Class == ofp.XMClassOpenflowBasic && f.Type == ofp.XMTypeInPort && len(f.Value) == 4 && f.Mask == nil {
			v := f.Value
			p.InPort = ofp.PortNo(uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3]))
			break
		}
	}
	return p, nil
}
