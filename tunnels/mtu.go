package tunnels

import "fmt"

// Header sizes in bytes used by the MTU arithmetic.
const (
	IPv4Header      = 20 // RFC 791, no options
	IPv6Header      = 40 // RFC 8200, no extension headers
	UDPHeader       = 8  // RFC 768
	VXLANHeader     = 8  // RFC 7348 §5
	GeneveHeader    = 8  // RFC 8926 §3.4, base header without options
	GREHeader       = 4  // RFC 2784: flags/version + protocol type
	GREKey          = 4  // RFC 2890 key field (present: options:key=flow)
	EthernetHeader  = 14 // inner frame: dst MAC, src MAC, EtherType (no FCS inside tunnels)
	VLANTag         = 4  // IEEE 802.1Q tag a tenant frame may carry
	WireGuardHeader = 32 // WireGuard data message: type 4 + receiver 4 + counter 8, Poly1305 tag 16
)

// GeneveOptionBytes is the Geneve option space Skyvisor uses: none (the
// tenant ID travels in the 24-bit VNI via tun_id). A deployment that adds
// tun_metadata TLVs must subtract 4 bytes per option header plus its data.
const GeneveOptionBytes = 0

// Overhead is the per-packet byte cost between a tenant's IP packet (the
// VM's MTU) and the underlay MTU, field by field. Sum with Total.
type Overhead struct {
	// WireGuard is the encrypted underlay's cost: its outer IP header
	// (20 or 40), UDP 8 and WireGuard 32, that is 60 (IPv4) or 80 (IPv6);
	// 0 when not encrypted. WireGuard pads the plaintext to 16 bytes only up
	// to the interface MTU, so padding costs nothing here.
	WireGuard int
	// OuterIP is the tunnel's own outer IP header: 20 (IPv4) or 40 (IPv6).
	// OVS's userspace ip6gre adds no encapsulation-limit option (Linux
	// kernel ip6gre adds 8 bytes; NetFed's 48-byte IPv6 figure includes it).
	OuterIP int
	// UDP is 8 for VXLAN and Geneve, 0 for GRE.
	UDP int
	// Encap is the encapsulation header: VXLAN 8, Geneve 8 +
	// GeneveOptionBytes, GRE 4 + 4 (key present because options:key=flow;
	// no checksum or sequence number).
	Encap int
	// InnerEthernet is the tenant frame's Ethernet header, 14.
	InnerEthernet int
	// VLAN is 4: tenants may send 802.1Q-tagged frames through the fabric,
	// so the budget always reserves one tag (decision: one MTU for every
	// tenant, whether or not it uses VLANs).
	VLAN int
}

// Total returns the sum of all fields.
func (o Overhead) Total() int {
	return o.WireGuard + o.OuterIP + o.UDP + o.Encap + o.InnerEthernet + o.VLAN
}

// EncapOverhead returns the overhead of tunnel type t, with the underlay
// through WireGuard when encrypted, and IPv6 outer headers (both the
// tunnel's and WireGuard's) when ipv6. Error for an unknown type.
//
//	type    outer IPv4  outer IPv6  +WireGuard IPv4  +WireGuard IPv6
//	vxlan   54          74          114              154
//	geneve  54          74          114              154
//	gre     46          66          106              146
//
// (each includes inner Ethernet 14 and one VLAN tag 4).
func EncapOverhead(t Type, encrypted, ipv6 bool) (Overhead, error) {
	o := Overhead{OuterIP: IPv4Header, InnerEthernet: EthernetHeader, VLAN: VLANTag}
	if ipv6 {
		o.OuterIP = IPv6Header
	}
	switch t {
	case VXLAN:
		o.UDP, o.Encap = UDPHeader, VXLANHeader
	case Geneve:
		o.UDP, o.Encap = UDPHeader, GeneveHeader+GeneveOptionBytes
	case GRE:
		o.Encap = GREHeader + GREKey
	default:
		return Overhead{}, fmt.Errorf("tunnels: unknown tunnel type %q (want vxlan, gre or geneve)", t)
	}
	if encrypted {
		o.WireGuard = o.OuterIP + UDPHeader + WireGuardHeader
	}
	return o, nil
}

// MinOverlayMTU is the smallest useful overlay MTU: IPv4's minimum
// (RFC 791, 68 bytes). Tenants running IPv6 need 1280 (RFC 8200 §5).
const MinOverlayMTU = 68

// OverlayMTU returns the largest IP MTU a tenant VM interface can use so
// that its packets cross a tunnel of type t without fragmentation, given
// the underlay (WAN) MTU in bytes:
//
//	OverlayMTU = underlayMTU - [WireGuard 60|80 if encrypted]
//	           - outer IP 20|40 - UDP 8 (vxlan, geneve) - encap (VXLAN 8,
//	             Geneve 8, GRE 4+4 key) - inner Ethernet 14 - VLAN tag 4
//
// For a 1500-byte IPv4 WAN: vxlan/geneve 1446, gre 1454; through WireGuard
// 1386 (vxlan/geneve) and 1394 (gre). If the WireGuard interface's MTU is
// pinned (wireguard-go defaults to 1420, which assumes an IPv6 outer
// header), pass that MTU with encrypted=false: OverlayMTU(1420, VXLAN,
// false, false) = 1366. The lab uses 1400 and 1350 (recipes), below these
// maxima. ipv6 selects IPv6 for every outer header. It returns 0 for an
// unknown type or when the result would be below MinOverlayMTU.
func OverlayMTU(underlayMTU int, t Type, encrypted bool, ipv6 bool) int {
	o, err := EncapOverhead(t, encrypted, ipv6)
	if err != nil {
		return 0
	}
	m := underlayMTU - o.Total()
	if m < MinOverlayMTU {
		return 0
	}
	return m
}
