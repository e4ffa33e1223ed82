package controller

import (
	"fmt"
	"strconv"
	"strings"
)

// DPID is an OpenFlow datapath ID (OpenFlow 1.3.5 spec section 7.3.1,
// ofp_switch_features.datapath_id): the lower 48 bits are usually a MAC
// address, the upper 16 bits are implementer defined.
type DPID uint64

// String formats the DPID as eight colon-separated hex octets, most
// significant first, e.g. "00:00:00:00:00:00:00:01".
func (d DPID) String() string {
	const hexdigits = "0123456789abcdef"
	var b [23]byte
	for i := 0; i < 8; i++ {
		o := byte(d >> (56 - 8*uint(i)))
		b[i*3] = hexdigits[o>>4]
		b[i*3+1] = hexdigits[o&0x0f]
		if i < 7 {
			b[i*3+2] = ':'
		}
	}
	return string(b[:])
}

// ParseDPID parses a DPID written as eight colon-separated hex octets
// ("00:00:00:00:00:00:00:01"), as 16 hex digits with an optional "0x"
// prefix ("0000000000000001", "0x1") as printed by ovs-ofctl, or as a
// decimal number. It returns an error naming the input when it is none
// of those.
func ParseDPID(s string) (DPID, error) {
	if strings.Contains(s, ":") {
		parts := strings.Split(s, ":")
		if len(parts) != 8 {
			return 0, fmt.Errorf("parse DPID %q: want 8 colon-separated octets, got %d", s, len(parts))
		}
		var d uint64
		for _, p := range parts {
			if len(p) != 2 {
				return 0, fmt.Errorf("parse DPID %q: octet %q is not two hex digits", s, p)
			}
			o, err := strconv.ParseUint(p, 16, 8)
			if err != nil {
				return 0, fmt.Errorf("parse DPID %q: octet %q: %w", s, p, err)
			}
			d = d<<8 | o
		}
		return DPID(d), nil
	}
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		d, err := strconv.ParseUint(h, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse DPID %q: %w", s, err)
		}
		return DPID(d), nil
	}
	if len(s) == 16 {
		d, err := strconv.ParseUint(s, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse DPID %q: %w", s, err)
		}
		return DPID(d), nil
	}
	d, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse DPID %q: want xx:xx:xx:xx:xx:xx:xx:xx, 16 hex digits, 0xHEX or decimal: %w", s, err)
	}
	return DPID(d), nil
}
