// Package topology defines the virtual topology a tenant submits to Skyvisor
// as JSON — its virtual switches, the virtual links between them, and its
// hosts with their own MAC and IP addresses, spread over clouds — and checks
// it. The format is documented in docs/topology.md and, as a JSON Schema
// (draft 2020-12), in docs/topology.schema.json.
//
// Entry points: Parse (one topology), ParseDocument (one topology or
// {"tenants": [...]}), Validate (semantic checks against the known
// infrastructure), and Load (ParseDocument + Validate, all errors at once).
// Every problem is reported as a FieldError naming its JSON path, e.g.
// `$.links[2].b.switch: unknown virtual switch "s9"`, collected in one
// *ValidationError.
//
// Tenant IDs and host indices are NOT part of the format: Skyvisor allocates
// them (see package hypervisor/addr and hypervisor/store).
package topology

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
)

// DefaultApps is the app list a topology gets when it names none: one
// learning switch per virtual switch. Returned fresh on each call.
func DefaultApps() []string { return []string{"learning"} }

// Limits on the size of one tenant topology. They bound the memory and the
// flow entries one submission can cost; larger topologies are rejected by
// Validate with an error naming the list.
const (
	MaxSwitches = 4096
	MaxLinks    = 16384
	MaxHosts    = 65536
	MaxApps     = 16
	// MaxDocumentSize is the largest JSON document Parse/ParseDocument accept, in bytes.
	MaxDocumentSize = 16 << 20
)

// Port number range for virtual ports: 1 to OFPP_MAX (0xffffff00), the
// highest physical port number in OpenFlow 1.3.5 §7.2.1 (enum ofp_port_no).
const (
	MinPort uint32 = 1
	MaxPort uint32 = 0xffffff00
)

// Topology is one tenant's virtual network as submitted (JSON, snake_case).
// Slices are never nil after Parse. The zero value is not valid.
type Topology struct {
	// Tenant is the tenant's name: a DNS label (RFC 1123: [a-z0-9-], 1–63
	// characters, no leading or trailing '-'). It keys the tenant in the store
	// and prefixes its iface-ids ("<tenant>/<host>").
	Tenant string `json:"tenant"`
	// Apps are the names of the tenant's network apps, run in order on its
	// virtual view. Parse fills DefaultApps() when the field is absent or
	// null; an explicit [] means "no apps" (the tenant runs none).
	Apps []string `json:"apps"`
	// Switches are the tenant's virtual switches. Their ports are defined
	// implicitly by the links and hosts that name them.
	Switches []Switch `json:"switches"`
	// Links are virtual links between two virtual switch ports.
	Links []Link `json:"links"`
	// Hosts are the tenant's end hosts (containers / nested VMs).
	Hosts []Host `json:"hosts"`
}

// Switch is a virtual switch. A virtual switch may span clouds: its hosts
// may sit in different clouds, and Skyvisor maps it onto every VM switch and
// gateway that carries them.
type Switch struct {
	// Name is unique within the tenant (identifier syntax, see docs/topology.md).
	Name string `json:"name"`
	// DPID is the virtual datapath ID the tenant's apps see. 0 (absent) means
	// "derive it": see VirtualDPID.
	DPID DPID `json:"dpid,omitempty"`
}

// VirtualDPID returns the switch's virtual DPID: DPID if set, otherwise
// DeriveDPID(Name).
func (s Switch) VirtualDPID() DPID {
	if s.DPID != 0 {
		return s.DPID
	}
	return DeriveDPID(s.Name)
}

// Link is a virtual link between two virtual switch ports.
type Link struct {
	A Endpoint `json:"a"`
	B Endpoint `json:"b"`
}

// Endpoint is one end of a virtual link: a virtual switch and the port number
// the tenant wants on it (MinPort..MaxPort).
type Endpoint struct {
	Switch string `json:"switch"`
	Port   uint32 `json:"port"`
}

// Host is a tenant end host, attached to one virtual switch port.
type Host struct {
	// Name is unique within the tenant; the host's OVS interface carries
	// external_ids:iface-id="<tenant>/<name>".
	Name string `json:"name"`
	// MAC is the host's own MAC address ("00:00:00:00:00:01"): unicast, not
	// all-zero, unique within the tenant; other tenants may reuse it.
	MAC string `json:"mac"`
	// IP is the host's own address with prefix length, IPv4 or IPv6
	// ("10.0.0.1/24"). Unique within the tenant per VLAN; other tenants may
	// reuse it.
	IP string `json:"ip"`
	// VLAN is the 802.1Q VLAN (1..4094) of the host's port in the tenant's
	// virtual network, as an access port: the host sends and receives
	// untagged frames, the tenant's virtual switch sees them tagged with this
	// VID. 0 (absent) means untagged.
	VLAN uint16 `json:"vlan,omitempty"`
	// Switch and Port are the virtual switch port the host attaches to.
	Switch string `json:"switch"`
	Port   uint32 `json:"port"`
	// Cloud is the site (cloud) the host runs in.
	Cloud string `json:"cloud"`
	// VM optionally pins the host to one VM of that cloud; empty lets
	// Skyvisor bind it wherever its iface-id appears in the cloud.
	VM string `json:"vm,omitempty"`
}

// IfaceID returns the OVS external_ids:iface-id of host h of tenant tenant:
// "<tenant>/<host>".
func IfaceID(tenant, host string) string { return tenant + "/" + host }

// SplitIfaceID is the inverse of IfaceID; ok is false if s has no '/' or an
// empty side.
func SplitIfaceID(s string) (tenant, host string, ok bool) {
	tenant, host, ok = strings.Cut(s, "/")
	return tenant, host, ok && tenant != "" && host != ""
}

// ParsedMAC parses h.MAC (see addr.ParseMAC); it does not check unicast-ness.
func (h Host) ParsedMAC() (addr.MAC, error) { return addr.ParseMAC(h.MAC) }

// ParsedIP parses h.IP as an address with prefix length (netip.ParsePrefix),
// keeping the host bits ("10.0.0.1/24" stays 10.0.0.1/24).
func (h Host) ParsedIP() (netip.Prefix, error) { return netip.ParsePrefix(h.IP) }

// Infra describes the infrastructure a topology is checked against: the
// known clouds (sites) and, for each, the names of its VMs. A nil Clouds map
// means "unknown": Validate then checks cloud and VM names only for syntax.
// A nil Apps likewise leaves app names checked only for syntax; otherwise
// Validate refuses an app name not in Apps (the tenant app registry of
// the hypervisor, see package hypervisor/vnet) at its "$.apps[i]" path.
type Infra struct {
	Clouds map[string][]string
	Apps   []string
}

// DPID is an OpenFlow datapath ID (64 bits; OpenFlow 1.3.5 §7.3.1: the low 48
// bits are a MAC address, the high 16 implementer-defined). In JSON it is a
// string: "00:00:00:00:00:00:00:01" (8 colon-separated octets, the form
// ovs-ofctl prints) or "0x1" (1–16 hex digits). JSON numbers are refused: they
// lose precision above 2^53.
type DPID uint64

// ParseDPID parses the two string forms described at DPID.
func ParseDPID(s string) (DPID, error) {
	if rest, ok := strings.CutPrefix(s, "0x"); ok {
		if len(rest) == 0 || len(rest) > 16 {
			return 0, fmt.Errorf("invalid DPID %q: want 0x followed by 1-16 hex digits", s)
		}
		v, err := strconv.ParseUint(rest, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid DPID %q: want 0x followed by 1-16 hex digits", s)
		}
		return DPID(v), nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 8 {
		return 0, fmt.Errorf("invalid DPID %q: want 8 colon-separated hex octets or 0x<hex>", s)
	}
	var v uint64
	for _, p := range parts {
		if len(p) != 2 {
			return 0, fmt.Errorf("invalid DPID %q: octet %q is not two hex digits", s, p)
		}
		o, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return 0, fmt.Errorf("invalid DPID %q: octet %q is not hex", s, p)
		}
		v = v<<8 | o
	}
	return DPID(v), nil
}

// String returns the colon form "00:00:00:00:00:00:00:01".
func (d DPID) String() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(d))
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7])
}

// MarshalText implements encoding.TextMarshaler (colon form).
func (d DPID) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (ParseDPID).
func (d *DPID) UnmarshalText(b []byte) error {
	v, err := ParseDPID(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// DeriveDPID returns the virtual DPID Skyvisor gives a switch whose topology
// entry has no dpid: high 16 bits 0, low 48 bits the first 6 octets of
// SHA-256("skyvisor/vdpid/" + name) with the I/G bit cleared and the U/L bit
// set, so the embedded MAC is a locally administered unicast address. It
// depends only on the switch name, so it is stable across resubmissions and
// restarts; Validate rejects the (unlikely) collisions.
func DeriveDPID(name string) DPID {
	sum := sha256.Sum256([]byte("skyvisor/vdpid/" + name))
	sum[0] = sum[0]&^0x01 | 0x02
	var v uint64
	for _, o := range sum[:6] {
		v = v<<8 | uint64(o)
	}
	return DPID(v)
}
