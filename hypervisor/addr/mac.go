// Package addr implements Skyvisor's address virtualization: the MAC-prefix
// tenant isolation of the paper ("(Literally) above the clouds", Alaluna,
// Ramos, Neves, §3: "The first 16 bits of the MAC address are used as tenant
// ID"). Every frame inside the fabric carries the 16-bit tenant ID in the first
// two octets of its source MAC address (and of its destination MAC address when
// that is unicast); edge switches rewrite the tenant's own MAC addresses to
// fabric MACs on ingress and back on egress.
//
// The exact layout, the reserved values, and the rules for broadcast,
// multicast and ARP are written down in docs/design.md, section "Address
// layout". This package holds no global state; every allocator and map is a
// value owned by its caller.
package addr

import (
	"encoding/hex"
	"fmt"
	"net"
)

// MAC is an IEEE 802 48-bit MAC address (EUI-48) held as a value, octet 0
// first as on the wire. The zero value is the all-zero address 00:00:00:00:00:00.
// Using a comparable value type (instead of net.HardwareAddr) lets MACs be map
// keys and be rewritten without allocation.
type MAC [6]byte

// Broadcast is the Ethernet broadcast address ff:ff:ff:ff:ff:ff (IEEE 802-2014 §8.2).
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ParseMAC parses an EUI-48 address written as six two-digit hex octets
// separated by ':' or '-' ("02:00:00:00:00:01", "02-00-00-00-00-01"), upper or
// lower case. Other forms (EUI-64, dotted Cisco notation) are rejected with an
// error that quotes the input.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("invalid MAC address %q: want 6 hex octets like 02:00:00:00:00:01", s)
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return m, fmt.Errorf("invalid MAC address %q: octets must be separated by ':' or '-'", s)
	}
	for i := 0; i < 6; i++ {
		o := s[i*3 : i*3+2]
		if i < 5 && s[i*3+2] != sep {
			return MAC{}, fmt.Errorf("invalid MAC address %q: mixed or missing separators", s)
		}
		if _, err := hex.Decode(m[i:i+1], []byte(o)); err != nil {
			return MAC{}, fmt.Errorf("invalid MAC address %q: octet %d %q is not hex", s, i+1, o)
		}
	}
	return m, nil
}

// MustParseMAC is ParseMAC for constants in tests and examples; it panics on
// invalid input.
func MustParseMAC(s string) MAC {
	m, err := ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// MACFromHardwareAddr converts a net.HardwareAddr; it fails unless the address
// is exactly 6 octets long.
func MACFromHardwareAddr(hw net.HardwareAddr) (MAC, error) {
	var m MAC
	if len(hw) != 6 {
		return m, fmt.Errorf("MAC address %v has %d octets, want 6", hw, len(hw))
	}
	copy(m[:], hw)
	return m, nil
}

// MACFromUint64 returns the MAC whose 48 bits are the low 48 bits of v, most
// significant first (the OpenFlow/OVS numeric form). Higher bits are ignored.
func MACFromUint64(v uint64) MAC {
	return MAC{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// Uint64 returns the MAC as a 48-bit number, octet 0 most significant.
func (m MAC) Uint64() uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// String returns the canonical lower-case colon form, e.g. "02:00:00:00:00:01".
func (m MAC) String() string {
	const digits = "0123456789abcdef"
	var b [17]byte
	for i, o := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = digits[o>>4]
		b[i*3+1] = digits[o&0x0f]
	}
	return string(b[:])
}

// HardwareAddr returns a freshly allocated net.HardwareAddr copy of m.
func (m MAC) HardwareAddr() net.HardwareAddr {
	hw := make(net.HardwareAddr, 6)
	copy(hw, m[:])
	return hw
}

// MarshalText implements encoding.TextMarshaler (JSON strings use the colon form).
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseMAC's syntax.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// IsMulticast reports whether the I/G (individual/group) bit — the least
// significant bit of octet 0 — is set (IEEE 802-2014 §8.2). Broadcast is a
// multicast (group) address.
func (m MAC) IsMulticast() bool { return m[0]&0x01 != 0 }

// IsUnicast reports whether m is an individual address (I/G bit clear).
func (m MAC) IsUnicast() bool { return m[0]&0x01 == 0 }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsLocal reports whether the U/L (universal/local) bit — bit 1 of octet 0 —
// is set, i.e. the address is locally administered (IEEE 802-2014 §8.2).
func (m MAC) IsLocal() bool { return m[0]&0x02 != 0 }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// Masked returns m with every bit cleared where mask is 0 (m AND mask).
func (m MAC) Masked(mask MAC) MAC {
	for i := range m {
		m[i] &= mask[i]
	}
	return m
}

// Matches reports whether m matches the OXM masked value (value, mask): every
// bit set in mask must be equal in m and value (OpenFlow 1.3.5 §7.2.3.5,
// "a 0 bit in the mask means don't care"). value bits outside mask are ignored.
func (m MAC) Matches(value, mask MAC) bool {
	return m.Masked(mask) == value.Masked(mask)
}
