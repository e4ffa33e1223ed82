package ofwire

import "fmt"

// HelloElemVersionBitmap is OFPHET_VERSIONBITMAP (spec 7.5.1).
const HelloElemVersionBitmap = 1

// Hello is a decoded OFPT_HELLO body (spec 7.5.1). netrack's decoder
// drops the version bitmap; this one keeps it.
type Hello struct {
	// Bitmap is the version bitmap element's bitmaps: bit v of word
	// v/32 is set when the sender supports ofp_header.version v. Nil when
	// the hello carries no bitmap element.
	Bitmap []uint32
}

// Supports reports whether the bitmap includes version v.
func (h Hello) Supports(v uint8) bool {
	w := int(v) / 32
	return w < len(h.Bitmap) && h.Bitmap[w]&(1<<(uint(v)%32)) != 0
}

// DecodeHello decodes the hello elements of an OFPT_HELLO body. Unknown
// element types are skipped as the spec requires. An element whose
// length is below 4 or runs past the body is an error.
func DecodeHello(body []byte) (Hello, error) {
	var h Hello
	for off := 0; len(body)-off >= 4; {
		t, l := u16(body[off:]), int(u16(body[off+2:]))
		if l < 4 || off+l > len(body) {
			return Hello{}, fmt.Errorf("ofwire: hello element type %d at offset %d: length %d outside 4..%d", t, off, l, len(body)-off)
		}
		if t == HelloElemVersionBitmap {
			words := (l - 4) / 4
			h.Bitmap = make([]uint32, words)
			for i := range words {
				h.Bitmap[i] = u32(body[off+4+4*i:])
			}
		}
		off += l + pad8(l)
	}
	return h, nil
}

// NegotiateVersion applies spec 6.3.1 for a controller that speaks only
// OpenFlow 1.3: with a version bitmap the peer must list 1.3; without
// one, the peer's header version must be at least 1.3 (the negotiated
// version is then the smaller one, 1.3). It returns nil on success or an
// error whose text is a suitable ASCII reason for OFPHFC_INCOMPATIBLE.
func NegotiateVersion(headerVersion uint8, body []byte) error {
	h, err := DecodeHello(body)
	if err != nil {
		return err
	}
	if h.Bitmap != nil {
		if h.Supports(Version13) {
			return nil
		}
		return fmt.Errorf("peer version bitmap %#x does not include OpenFlow 1.3 (0x04); controller supports only 1.3", h.Bitmap)
	}
	if headerVersion >= Version13 {
		return nil
	}
	return fmt.Errorf("peer hello version 0x%02x is below OpenFlow 1.3 (0x04); controller supports only 1.3", headerVersion)
}

// AppendHello appends a complete OFPT_HELLO message (header included)
// advertising OpenFlow 1.3 only, with a version bitmap element.
func AppendHello(b []byte, xid uint32) []byte {
	b = AppendHeader(b, 0, 16, xid)
	b = appendU16(b, HelloElemVersionBitmap)
	b = appendU16(b, 8)
	return appendU32(b, 1<<Version13)
}
