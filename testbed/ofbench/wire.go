package ofbench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

// OpenFlow 1.3 wire constants (OpenFlow 1.3.5 spec, section 7).
const (
	ofpVersion   = 0x04       // OFP_VERSION for 1.3
	ofpHeaderLen = 8          // struct ofp_header
	ofpNoBuffer  = 0xffffffff // OFP_NO_BUFFER

	// Offsets inside messages parsed on the hot path.
	flowModBufferIDOff   = 32 // ofp_flow_mod.buffer_id (section 7.3.4.1)
	packetOutBufferIDOff = 8  // ofp_packet_out.buffer_id (section 7.3.7)
	packetOutActLenOff   = 16 // ofp_packet_out.actions_len
	packetOutActionsOff  = 24 // first action of ofp_packet_out
)

// Packet-in layout (section 7.4.1): header, buffer_id, total_len, reason,
// table_id, cookie, match (OXM in_port, padded to 16 bytes), 2 pad bytes,
// then the Ethernet frame.
const (
	pinBufferIDOff = 8
	pinInPortOff   = 32 // value of the OXM in_port TLV
	pinDataOff     = 42
	frameLen       = 60 // minimum Ethernet frame without FCS

	// Inside the frame: Ethernet (14) + IPv4 (20) + UDP (8) + payload (18).
	frameDstOff   = 0
	frameSrcOff   = 6
	frameMagicOff = 42 // UDP payload: magic word, then sequence number
	frameSeqOff   = 46

	packetInLen = pinDataOff + frameLen
)

// frameMagic marks frames built by ofbench ("ofbn"), so a packet-out
// carrying some other frame is not mistaken for an answer.
const frameMagic = 0x6f66626e

// hostMAC writes the MAC address of host h of switch sw into dst[0:6]:
// 02:SS:SS:HH:HH:HH (locally administered, unicast).
func hostMAC(dst []byte, sw, h int) {
	dst[0] = 0x02
	dst[1] = byte(sw >> 8)
	dst[2] = byte(sw)
	dst[3] = byte(h >> 16)
	dst[4] = byte(h >> 8)
	dst[5] = byte(h)
}

// hostPort returns the switch port of host h (1..ports).
func hostPort(h, ports int) uint32 { return uint32(h%ports) + 1 }

// packetInTemplate returns an OF1.3 packet-in for switch sw with every field
// that never changes filled in; send patches xid, buffer_id, in_port, the
// two MACs and the sequence number.
func packetInTemplate(sw int) []byte {
	b := make([]byte, packetInLen)
	b[0] = ofpVersion
	b[1] = byte(of.TypePacketIn)
	binary.BigEndian.PutUint16(b[2:], packetInLen)
	binary.BigEndian.PutUint32(b[pinBufferIDOff:], ofpNoBuffer)
	binary.BigEndian.PutUint16(b[12:], frameLen) // total_len
	b[14] = 0                                    // reason OFPR_NO_MATCH
	b[15] = 0                                    // table_id
	// cookie b[16:24] = 0 (table-miss entry)
	binary.BigEndian.PutUint16(b[24:], 1)          // ofp_match.type = OFPMT_OXM
	binary.BigEndian.PutUint16(b[26:], 4+8)        // ofp_match.length (without padding)
	binary.BigEndian.PutUint32(b[28:], 0x80000004) // OXM_OF_IN_PORT, 4 bytes
	// b[32:36] in_port, b[36:40] match padding, b[40:42] pad

	f := b[pinDataOff:]
	binary.BigEndian.PutUint16(f[12:], 0x0800) // IPv4
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], frameLen-14) // total length
	ip[8] = 64                                      // TTL
	ip[9] = 17                                      // UDP
	copy(ip[12:16], []byte{10, byte(sw >> 8), byte(sw), 1})
	copy(ip[16:20], []byte{10, byte(sw >> 8), byte(sw), 2})
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 9) // discard
	binary.BigEndian.PutUint16(udp[4:], frameLen-34)
	// UDP checksum 0: none (RFC 768).
	binary.BigEndian.PutUint32(f[frameMagicOff:], frameMagic)
	return b
}

// ipChecksum is the RFC 1071 checksum of an IPv4 header whose checksum
// field is zero.
func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// frameSeq returns the sequence number of an ofbench frame, or false when
// data is not one.
func frameSeq(data []byte) (uint32, bool) {
	if len(data) < frameSeqOff+4 || binary.BigEndian.Uint32(data[frameMagicOff:]) != frameMagic {
		return 0, false
	}
	return binary.BigEndian.Uint32(data[frameSeqOff:]), true
}

// encode appends an OpenFlow 1.3 message of type t with transaction id xid
// and the wire form of body (nil for none) to dst.
func encode(dst []byte, t of.Type, xid uint32, body io.WriterTo) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write(make([]byte, ofpHeaderLen))
	if body != nil {
		if _, err := body.WriteTo(&buf); err != nil {
			return dst, fmt.Errorf("encode %v: %w", t, err)
		}
	}
	m := buf.Bytes()
	if len(m) > 0xffff {
		return dst, fmt.Errorf("encode %v: %d bytes exceed the 16-bit length", t, len(m))
	}
	m[0] = ofpVersion
	m[1] = byte(t)
	binary.BigEndian.PutUint16(m[2:], uint16(len(m)))
	binary.BigEndian.PutUint32(m[4:], xid)
	return append(dst, m...), nil
}

// rawBody is a message body given as bytes.
type rawBody []byte

// WriteTo writes the bytes to w.
func (r rawBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r)
	return int64(n), err
}

// bodies concatenates several bodies.
type bodies []io.WriterTo

// WriteTo writes each body in turn.
func (bs bodies) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for _, b := range bs {
		n, err := b.WriteTo(w)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// helloBody is our hello: OpenFlow 1.3 only (version bitmap 1<<4).
func helloBody() io.WriterTo {
	return &ofp.Hello{Elements: ofp.HelloElems{
		&ofp.HelloElemVersionBitmap{Bitmaps: []uint32{1 << ofpVersion}},
	}}
}

// helloAccepts reports whether a peer's hello (whole message) allows
// OpenFlow 1.3, following section 6.3.1: with a version bitmap element the
// bitmap decides; without one the peer supports every version up to the
// one in its header. netrack's decoder drops the bitmap, so this parses
// the elements by hand. Malformed elements are an error.
func helloAccepts(msg []byte) (bool, error) {
	body := msg[ofpHeaderLen:]
	for len(body) > 0 {
		if len(body) < 4 {
			return false, fmt.Errorf("hello element header truncated: %d bytes left", len(body))
		}
		typ := binary.BigEndian.Uint16(body)
		n := int(binary.BigEndian.Uint16(body[2:]))
		if n < 4 || n > len(body) {
			return false, fmt.Errorf("hello element type %d: length %d out of range (%d bytes left)", typ, n, len(body))
		}
		if typ == uint16(ofp.HelloElemTypeVersionBitmap) {
			bm := body[4:n]
			if len(bm) < 4 {
				return false, fmt.Errorf("hello version bitmap: %d bytes, want >= 4", len(bm))
			}
			return binary.BigEndian.Uint32(bm)&(1<<ofpVersion) != 0, nil
		}
		// Elements are padded to 8 bytes (section 7.5.1).
		padded := (n + 7) &^ 7
		if padded > len(body) {
			padded = len(body)
		}
		body = body[padded:]
	}
	return msg[0] >= ofpVersion, nil
}

// featuresBody is the features reply body of switch sw (section 7.3.1).
func featuresBody(dpid uint64, buffered bool) io.WriterTo {
	var nbuf uint32
	if buffered {
		nbuf = 1 << 16
	}
	return &ofp.SwitchFeatures{
		DatapathID:   dpid,
		NumBuffers:   nbuf,
		NumTables:    254,
		Capabilities: ofp.CapabilityFlowStats | ofp.CapabilityTableStats | ofp.CapabilityPortStats,
	}
}

// portDescBody is the port description multipart reply body (section
// 7.3.5.7): the given port numbers, named "ofb<switch>-p<port>".
func portDescBody(sw int, ports []uint32) io.WriterTo {
	bs := bodies{&ofp.MultipartReply{Type: ofp.MultipartTypePortDescription}}
	for _, p := range ports {
		mac := make(net.HardwareAddr, 6)
		mac[0] = 0x02
		mac[1] = 0xff
		mac[2] = byte(sw >> 8)
		mac[3] = byte(sw)
		mac[4] = byte(p >> 8)
		mac[5] = byte(p)
		bs = append(bs, &ofp.Port{
			PortNo:     ofp.PortNo(p),
			HWAddr:     mac,
			Name:       fmt.Sprintf("ofb%d-p%d", sw, p),
			State:      ofp.PortStateLive,
			Curr:       ofp.PortFeature10GbitFullDuplex | ofp.PortFeatureCopper,
			Advertised: ofp.PortFeature10GbitFullDuplex | ofp.PortFeatureCopper,
			Supported:  ofp.PortFeature10GbitFullDuplex | ofp.PortFeatureCopper,
			CurrSpeed:  10000000,
			MaxSpeed:   10000000,
		})
	}
	return bs
}

// errorBody is an OFPT_ERROR body echoing at most 64 bytes of the
// offending message (section 7.4.4).
func errorBody(t ofp.ErrType, c ofp.ErrCode, offending []byte) io.WriterTo {
	if len(offending) > 64 {
		offending = offending[:64]
	}
	return &ofp.Error{Type: t, Code: c, Data: append([]byte(nil), offending...)}
}
