package learning

import (
	"encoding/binary"
	"io"

	"github.com/netrack/openflow/ofp"
)

// Hand-written OpenFlow 1.3 message bodies for the packet-in fast path: one
// allocation per message instead of netrack's reflection-based encoders. The
// bytes are identical to what netrack's ofp.FlowMod / ofp.PacketOut WriteTo
// produce for the same values (checked by the tests). Offsets follow the
// OpenFlow 1.3.5 spec, sections 7.3.4.2 (ofp_flow_mod), 7.2.2 (OXM),
// 7.2.4 (instructions), 7.2.5 (ofp_action_output) and 7.3.7 (ofp_packet_out);
// the 8-byte ofp_header is added by the session.

const (
	oxmClassBasic = 0x8000
	oxmInPort     = 0  // OFPXMT_OFB_IN_PORT
	oxmEthDst     = 3  // OFPXMT_OFB_ETH_DST
	instrApply    = 4  // OFPIT_APPLY_ACTIONS
	actionOutput  = 0  // OFPAT_OUTPUT
	flowModLen    = 88 // 40 fixed + 24 match + 24 apply-actions(output)
	packetOutHdr  = 32 // 16 fixed + 16 output action
)

// flowModBody is the body of an OFPT_FLOW_MOD adding
// "in_port=X,eth_dst=Y actions=output:Z" in table 0.
type flowModBody struct{ b [flowModLen]byte }

// WriteTo implements io.WriterTo.
func (f *flowModBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(f.b[:])
	return int64(n), err
}

// newFlowMod encodes the learned flow entry.
func newFlowMod(cookie uint64, idle, hard, prio uint16, inPort ofp.PortNo, dst []byte, out ofp.PortNo) *flowModBody {
	f := new(flowModBody)
	b := f.b[:]
	be := binary.BigEndian
	be.PutUint64(b[0:], cookie)
	// cookie_mask 0 (8..16), table_id 0 (16), command OFPFC_ADD 0 (17)
	be.PutUint16(b[18:], idle)
	be.PutUint16(b[20:], hard)
	be.PutUint16(b[22:], prio)
	be.PutUint32(b[24:], ofp.NoBuffer)
	be.PutUint32(b[28:], uint32(ofp.PortAny))
	be.PutUint32(b[32:], uint32(ofp.GroupAny))
	// flags 0 (36..38), pad (38..40)
	// ofp_match: type OFPMT_OXM, length 4 + 8 + 10 = 22, padded to 24.
	be.PutUint16(b[40:], uint16(ofp.MatchTypeXM))
	be.PutUint16(b[42:], 22)
	be.PutUint16(b[44:], oxmClassBasic)
	b[46], b[47] = oxmInPort<<1, 4
	be.PutUint32(b[48:], uint32(inPort))
	be.PutUint16(b[52:], oxmClassBasic)
	b[54], b[55] = oxmEthDst<<1, 6
	copy(b[56:62], dst)
	// 62..64 padding
	// OFPIT_APPLY_ACTIONS, len 8 + 16.
	be.PutUint16(b[64:], instrApply)
	be.PutUint16(b[66:], 24)
	putOutput(b[72:], out, 0)
	return f
}

// putOutput writes an ofp_action_output at b[0:16].
func putOutput(b []byte, port ofp.PortNo, maxLen uint16) {
	be := binary.BigEndian
	be.PutUint16(b[0:], actionOutput)
	be.PutUint16(b[2:], 16)
	be.PutUint32(b[4:], uint32(port))
	be.PutUint16(b[8:], maxLen)
	clear(b[10:16])
}

// packetOutBody is the body of an OFPT_PACKET_OUT with one output action and
// optional frame data.
type packetOutBody struct {
	hdr  [packetOutHdr]byte
	data []byte
}

// WriteTo implements io.WriterTo.
func (p *packetOutBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(p.hdr[:])
	if err != nil || len(p.data) == 0 {
		return int64(n), err
	}
	m, err := w.Write(p.data)
	return int64(n + m), err
}

// newPacketOut encodes a packet-out of buffer (or data when buffer is
// ofp.NoBuffer) received on inPort, output to out.
func newPacketOut(buffer uint32, inPort, out ofp.PortNo, data []byte) *packetOutBody {
	p := &packetOutBody{}
	be := binary.BigEndian
	be.PutUint32(p.hdr[0:], buffer)
	be.PutUint32(p.hdr[4:], uint32(inPort))
	be.PutUint16(p.hdr[8:], 16) // actions_len
	putOutput(p.hdr[16:], out, 0)
	if buffer == ofp.NoBuffer {
		p.data = data
	}
	return p
}
