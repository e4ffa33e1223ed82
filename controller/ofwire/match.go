package ofwire

import (
	"fmt"

	"github.com/netrack/openflow/ofp"
)

// DecodeMatch decodes an ofp_match (spec 7.2.2) at the start of b and
// returns it with the number of bytes it occupies including padding.
// OXM values and masks alias b. Fields are appended to fields[:0], so a
// caller can supply backing storage. Errors: match length below 4 or past
// b, an OXM (spec 7.2.3.1) running past the match, or trailing bytes too
// short for an OXM header.
func DecodeMatch(b []byte, fields []ofp.XM) (ofp.Match, int, error) {
	if len(b) < 4 {
		return ofp.Match{}, 0, fmt.Errorf("ofwire: match header needs 4 bytes, have %d", len(b))
	}
	mtype, mlen := ofp.MatchType(u16(b)), int(u16(b[2:]))
	if mlen < 4 {
		return ofp.Match{}, 0, fmt.Errorf("ofwire: match length %d below 4", mlen)
	}
	total := mlen + pad8(mlen)
	if total > len(b) {
		return ofp.Match{}, 0, fmt.Errorf("ofwire: match length %d (padded %d) exceeds the %d bytes left", mlen, total, len(b))
	}
	fields = fields[:0]
	oxms := b[4:mlen]
	for len(oxms) > 0 {
		if len(oxms) < 4 {
			return ofp.Match{}, 0, fmt.Errorf("ofwire: %d trailing bytes in match, too short for an OXM header", len(oxms))
		}
		field, l := oxms[2], int(oxms[3])
		if 4+l > len(oxms) {
			return ofp.Match{}, 0, fmt.Errorf("ofwire: OXM class %#04x field %d length %d exceeds the %d bytes left in the match", u16(oxms), field>>1, l, len(oxms)-4)
		}
		xm := ofp.XM{Class: ofp.XMClass(u16(oxms)), Type: ofp.XMType(field >> 1)}
		v := oxms[4 : 4+l : 4+l]
		if field&1 == 1 {
			h := l / 2
			xm.Value, xm.Mask = ofp.XMValue(v[:h:h]), ofp.XMValue(v[h:2*h:2*h])
		} else {
			xm.Value = ofp.XMValue(v)
		}
		fields = append(fields, xm)
		oxms = oxms[4+l:]
	}
	return ofp.Match{Type: mtype, Fields: fields}, total, nil
}

// AppendXM appends one OXM TLV (spec 7.2.3.1) exactly as ofp.XM.WriteTo
// does: the has-mask bit is set when Mask is non-empty and the length is
// len(Value)+len(Mask).
func AppendXM(b []byte, xm *ofp.XM) []byte {
	field := uint8(xm.Type) << 1
	if len(xm.Mask) > 0 {
		field |= 1
	}
	b = appendU16(b, uint16(xm.Class))
	b = append(b, field, uint8(len(xm.Mask)+len(xm.Value)))
	b = append(b, xm.Value...)
	return append(b, xm.Mask...)
}

// AppendMatch appends an ofp_match (spec 7.2.2) byte-identical to
// ofp.Match.WriteTo: type, length (4 + OXMs), OXMs, zero padding to 8.
func AppendMatch(b []byte, m *ofp.Match) []byte {
	start := len(b)
	b = appendU16(b, uint16(m.Type))
	b = append(b, 0, 0)
	for i := range m.Fields {
		b = AppendXM(b, &m.Fields[i])
	}
	l := len(b) - start
	b[start+2], b[start+3] = byte(l>>8), byte(l)
	return appendZeros(b, pad8(l))
}
