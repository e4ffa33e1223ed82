package addr

import "fmt"

// TenantID is the 16-bit tenant identifier carried in the first two octets of
// every fabric MAC (the paper, §3). Only IDs for which IsValidTenantID holds are
// ever allocated: their high octet has the I/G bit clear (so fabric MACs are
// unicast) and the U/L bit set (so fabric MACs are locally administered and
// cannot collide with a vendor-assigned MAC). See docs/design.md, "Address layout".
type TenantID uint16

// HostIndex is the 32-bit host field that fills the last four octets of a
// fabric MAC. Its low 31 bits are the per-tenant host number, which Skyvisor
// allocates per (tenant, host name), lowest free first, and keeps stable for
// as long as the host stays in the tenant's topology; bit 31 is the group mark
// (GroupMark) that the pipeline sets on per-host copies of broadcast and
// multicast frames (docs/pipeline.md). Host number 0 is reserved (never
// allocated), so a zero HostIndex means "unset".
type HostIndex uint32

const (
	// NoTenant is tenant ID 0, reserved for the fabric itself
	// (infrastructure traffic, "no tenant"). It is not a valid tenant ID:
	// 00:00:xx:xx:xx:xx is universally administered.
	NoTenant TenantID = 0

	// FirstTenantID is the lowest valid tenant ID (0x0200: fabric MACs
	// 02:00:xx:xx:xx:xx); the allocator hands it out first.
	FirstTenantID TenantID = 0x0200

	// LastTenantID is the highest valid tenant ID (0xfeff: fabric MACs
	// fe:ff:xx:xx:xx:xx).
	LastTenantID TenantID = 0xfeff

	// NumTenantIDs is how many tenant IDs are valid: the 16-bit space is
	// 65,536 values; requiring the I/G bit clear halves it and requiring the
	// U/L bit set halves it again, leaving 64 × 256 = 16,384 (still four times
	// the 4,094 usable 802.1Q VLAN IDs).
	NumTenantIDs = 16384

	// NoHost is host index 0, reserved; never allocated.
	NoHost HostIndex = 0

	// MaxHostIndex is the highest allocatable host index (2^31 − 1): bit 31
	// is the group mark.
	MaxHostIndex HostIndex = 0x7fffffff

	// GroupMark is bit 31 of the host field. A fabric MAC FabricMAC(t,
	// h|GroupMark) addresses host h with a copy of a frame whose original
	// destination was a group (broadcast/multicast) address; the egress edge
	// delivers it with destination ff:ff:ff:ff:ff:ff (docs/design.md,
	// "Broadcast and multicast").
	GroupMark HostIndex = 0x80000000

	// prefixBitsMask selects the I/G and U/L bits of a tenant ID's high octet;
	// prefixBitsWant is the value they must have (I/G = 0, U/L = 1).
	prefixBitsMask = 0x03
	prefixBitsWant = 0x02
)

// HostMask is the OXM mask that matches one host's fabric MAC whether or not
// the group mark is set: ff:ff:7f:ff:ff:ff.
var HostMask = MAC{0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}

// TenantMask is the OXM mask that selects the tenant prefix of a MAC,
// ff:ff:00:00:00:00 (OpenFlow 1.3.5 §7.2.3.7, OXM_OF_ETH_SRC_W / OXM_OF_ETH_DST_W).
var TenantMask = MAC{0xff, 0xff, 0, 0, 0, 0}

// IsValidTenantID reports whether id may be allocated to a tenant: the I/G bit
// (0x0100) is clear and the U/L bit (0x0200) is set, i.e. (id>>8)&0x03 == 0x02.
// NoTenant (0) is never valid.
func IsValidTenantID(id TenantID) bool {
	return byte(id>>8)&prefixBitsMask == prefixBitsWant
}

// String returns the ID in decimal followed by its MAC prefix, e.g.
// "512(02:00)", which is what appears in logs and errors.
func (id TenantID) String() string {
	return fmt.Sprintf("%d(%02x:%02x)", uint16(id), byte(id>>8), byte(id))
}

// FabricMAC returns the fabric MAC of host index h of tenant t:
// octets 0–1 = t (big-endian), octets 2–5 = h (big-endian).
// The result is a unicast, locally administered MAC exactly when
// IsValidTenantID(t); FabricMAC does not check (it sits on hot paths), callers
// use allocated IDs only.
func FabricMAC(t TenantID, h HostIndex) MAC {
	return MAC{byte(t >> 8), byte(t), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}
}

// Split is the inverse of FabricMAC: it returns octets 0–1 as a TenantID and
// octets 2–5 as a HostIndex. It does not check validity; see TenantOf.
func Split(m MAC) (TenantID, HostIndex) {
	return TenantID(m[0])<<8 | TenantID(m[1]),
		HostIndex(m[2])<<24 | HostIndex(m[3])<<16 | HostIndex(m[4])<<8 | HostIndex(m[5])
}

// TenantOf returns the tenant a fabric MAC belongs to. ok is false when m is a
// group (multicast/broadcast) address or its prefix is not a valid tenant ID.
// For frames in the fabric, apply it to the SOURCE MAC: that one always
// carries the prefix (docs/design.md, "Broadcast and multicast").
func TenantOf(m MAC) (t TenantID, ok bool) {
	t, _ = Split(m)
	return t, IsValidTenantID(t) // a valid prefix implies I/G = 0 (unicast)
}

// IsFabricMAC reports whether m is a fabric MAC: valid tenant prefix and a
// non-reserved host number (the group mark may be set).
func IsFabricMAC(m MAC) bool {
	t, h := Split(m)
	return IsValidTenantID(t) && h&^GroupMark != NoHost
}

// GroupMAC returns the destination fabric MAC of host h's copy of a group
// (broadcast/multicast) frame of tenant t: FabricMAC(t, h|GroupMark).
func GroupMAC(t TenantID, h HostIndex) MAC { return FabricMAC(t, h|GroupMark) }

// IsGroupMarked reports whether the group mark (bit 31 of the host field,
// i.e. bit 0x80 of octet 2) is set in m.
func IsGroupMarked(m MAC) bool { return m[2]&0x80 != 0 }

// TenantMatch returns the OXM value/mask pair that matches every MAC of
// tenant t, for OXM_OF_ETH_SRC_W or OXM_OF_ETH_DST_W: value = t ‖ 00000000,
// mask = ff:ff:00:00:00:00. In OVS syntax: dl_src=<value>/ff:ff:00:00:00:00.
func TenantMatch(t TenantID) (value, mask MAC) {
	return FabricMAC(t, 0), TenantMask
}

// TunnelKey returns the tunnel key (VXLAN/Geneve VNI, 24 bits; GRE key, 32
// bits) that carries tenant t's frames on inter-cloud tunnels: the tenant ID
// itself, zero-extended. The source-MAC prefix already identifies the tenant;
// the key is defence in depth and lets a gateway demultiplex before looking at
// the inner frame. Key 0 (NoTenant) is for fabric-internal traffic.
func TunnelKey(t TenantID) uint32 { return uint32(t) }

// TenantFromTunnelKey is the inverse of TunnelKey; ok is false when key does
// not hold a valid tenant ID.
func TenantFromTunnelKey(key uint64) (TenantID, bool) {
	if key > 0xffff {
		return 0, false
	}
	t := TenantID(key)
	return t, IsValidTenantID(t)
}

// IsLinkLocalGroup reports whether m is one of the IEEE 802.1Q reserved
// link-local group addresses 01:80:c2:00:00:00–0f (STP, LACP, 802.1X, LLDP,
// …). Bridges never forward these (IEEE 802.1Q-2018 §8.6.3); Skyvisor drops
// them at the edge, except LLDP, which the hypervisor intercepts for topology
// virtualization.
func IsLinkLocalGroup(m MAC) bool {
	return m[0] == 0x01 && m[1] == 0x80 && m[2] == 0xc2 && m[3] == 0 && m[4] == 0 && m[5]&0xf0 == 0
}
