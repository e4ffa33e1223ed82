package demo

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/skyvisor/skyvisor/testbed/lab"
)

// Host is one tenant host of the demo: the tenant's view (Tenant, Name,
// MAC, IP from the tenants file) joined with the lab host carrying its
// iface-id "<tenant>/<name>".
type Host struct {
	Tenant, Name string
	// MAC is the tenant's MAC of the host (normalized, lower case); IP its
	// address without prefix length; Broadcast the directed broadcast
	// address of its IPv4 subnet ("10.0.0.255" for 10.0.0.1/24; "" for
	// IPv6).
	MAC, IP, Broadcast string
	// Lab is the lab host name ("t1-h1"); LabMAC the MAC the lab gave its
	// eth0 (the lab refuses one MAC on two hosts, so hosts of a second
	// tenant with the same MACs get a placeholder that the demo replaces
	// with MAC).
	Lab, LabMAC string
}

// tenantsDoc is the subset of a tenants file the demo needs.
type tenantsDoc struct {
	Tenants []struct {
		Tenant string `json:"tenant"`
		Hosts  []struct {
			Name string `json:"name"`
			MAC  string `json:"mac"`
			IP   string `json:"ip"`
		} `json:"hosts"`
	} `json:"tenants"`
}

// planHosts joins the tenants file doc ({"tenants": [...]}, the format of
// examples/two-tenants.json) with the lab's hosts by iface-id. Every
// tenant host must have an IP and exactly one lab host; a lab host whose
// iface-id names no tenant host is an error too (the demo would not check
// it). Hosts are sorted by tenant, then name.
func planHosts(doc []byte, labHosts []lab.HostInfo) ([]Host, error) {
	var d tenantsDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	if len(d.Tenants) == 0 {
		return nil, fmt.Errorf("tenants file: no tenants (want {\"tenants\": [...]})")
	}
	byID := map[string]lab.HostInfo{}
	for _, h := range labHosts {
		byID[h.IfaceID] = h
	}
	used := map[string]bool{}
	var out []Host
	for ti, t := range d.Tenants {
		for hi, h := range t.Hosts {
			where := fmt.Sprintf("tenants[%d].hosts[%d] (%s/%s)", ti, hi, t.Tenant, h.Name)
			mac, err := net.ParseMAC(h.MAC)
			if err != nil {
				return nil, fmt.Errorf("%s: mac: %w", where, err)
			}
			ip, subnet, err := net.ParseCIDR(h.IP)
			if err != nil {
				return nil, fmt.Errorf("%s: ip %q: want an address with prefix length", where, h.IP)
			}
			id := t.Tenant + "/" + h.Name
			lh, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("%s: no lab host has iface-id %q (check the lab file's hosts)", where, id)
			}
			used[id] = true
			out = append(out, Host{Tenant: t.Tenant, Name: h.Name, MAC: mac.String(), IP: ip.String(), Broadcast: broadcast(subnet),
				Lab: lh.Name, LabMAC: strings.ToLower(lh.MAC)})
		}
	}
	for _, h := range labHosts {
		if !used[h.IfaceID] {
			return nil, fmt.Errorf("lab host %s: iface-id %q names no host of the tenants file", h.Name, h.IfaceID)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// broadcast returns the directed broadcast address of an IPv4 subnet
// (RFC 919: host part all ones), or "" for IPv6.
func broadcast(n *net.IPNet) string {
	ip4 := n.IP.To4()
	if ip4 == nil || len(n.Mask) != net.IPv4len {
		return ""
	}
	b := make(net.IP, net.IPv4len)
	for i := range b {
		b[i] = ip4[i] | ^n.Mask[i]
	}
	return b.String()
}

// planPairs returns every ordered pair of distinct hosts within each
// tenant (n hosts: n*(n-1) pairs), in host order.
func planPairs(hosts []Host) []Pair {
	var out []Pair
	for _, a := range hosts {
		for _, b := range hosts {
			if a.Tenant == b.Tenant && a.Name != b.Name {
				out = append(out, Pair{Tenant: a.Tenant, From: a.Name, To: b.Name, FromLab: a.Lab, DstIP: b.IP})
			}
		}
	}
	return out
}

// tenants returns the tenant names of hosts, in order of appearance.
func tenants(hosts []Host) []string {
	var out []string
	for _, h := range hosts {
		if len(out) == 0 || out[len(out)-1] != h.Tenant {
			out = append(out, h.Tenant)
		}
	}
	return out
}

// countFrames counts the frame lines of tcpdump -e -nn output (each
// starts with a timestamp "hh:mm:ss.frac"); tcpdump's own messages
// ("listening on ...", "N packets captured") are not frames.
func countFrames(lines []string) int {
	n := 0
	for _, l := range lines {
		if isFrameLine(l) {
			n++
		}
	}
	return n
}

func isFrameLine(l string) bool {
	f, _, _ := strings.Cut(strings.TrimSpace(l), " ")
	if len(f) < 9 || f[2] != ':' || f[5] != ':' || f[8] != '.' {
		return false
	}
	for i, c := range f {
		if i == 2 || i == 5 || i == 8 {
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// unusedIP returns the address .200+k of ip's /24 ("10.0.0.1", 1 ->
// "10.0.0.201"), which no demo host has: pinging it makes only ARP
// broadcasts, and the address tells which tenant (k) asked.
func unusedIP(ip string, k int) string {
	p := strings.Split(ip, ".")
	if len(p) != 4 {
		return ip
	}
	return strings.Join(p[:3], ".") + "." + strconv.Itoa(200+k%50)
}

// wanFrame is one tenant frame seen inside a tunnel on the WAN.
type wanFrame struct {
	// VNI is the tunnel key (VXLAN VNI, Geneve VNI).
	VNI uint32
	// Src and Dst are the inner (fabric) MACs; Line is the inner frame as
	// tcpdump printed it.
	Src, Dst, Line string
	// BFD is true for the fabric's own liveness traffic: tunnel key 0
	// (addr.NoTenant) carrying a BFD control packet (UDP destination port
	// 3784, RFC 5881 §4), which OVS sends on every tunnel port with BFD
	// enabled. Such frames belong to no tenant.
	BFD bool
}

// bfdPort is the UDP destination port of single-hop BFD control packets
// (RFC 5881 §4), as tcpdump prints it after the destination address.
const bfdPort = ".3784: "

// parseWAN extracts the tunnelled frames from `tcpdump -i any -nn -e`
// output in the WAN namespace: an outer line with "VXLAN, ... vni N" or
// "Geneve, ... vni 0xN" followed by the inner frame's line
// ("02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype ..."); BFD marks the
// fabric's own BFD packets (key 0, UDP port 3784). Records whose
// outer line is the bridge forwarding the frame out of another port
// (" Out ") are skipped, so each frame counts once.
func parseWAN(lines []string) []wanFrame {
	var out []wanFrame
	for i := 0; i+1 < len(lines); i++ {
		outer := lines[i]
		j := strings.Index(outer, " vni ")
		if j < 0 || strings.Contains(outer, " Out ") {
			continue
		}
		f := strings.FieldsFunc(outer[j+5:], func(r rune) bool { return r == ',' || r == ' ' })
		if len(f) == 0 {
			continue
		}
		vni, err := strconv.ParseUint(f[0], 0, 32)
		if err != nil {
			continue
		}
		inner := strings.TrimSpace(lines[i+1])
		src, rest, ok := strings.Cut(inner, " > ")
		if !ok {
			continue
		}
		dst, _, _ := strings.Cut(rest, ",")
		if _, err := net.ParseMAC(src); err != nil {
			continue
		}
		_, payload, _ := strings.Cut(inner, ": ")
		_, udpDst, _ := strings.Cut(payload, " > ")
		bfd := vni == 0 && strings.Contains(inner, "IPv4") && strings.Contains(udpDst, bfdPort)
		out = append(out, wanFrame{VNI: uint32(vni), Src: src, Dst: dst, Line: inner, BFD: bfd})
		i++
	}
	return out
}

// fabricPrefix is the first 16 bits of the fabric MACs of tenant id, as
// "hh:hh" (the paper's MAC rewriting; docs/pipeline.md).
func fabricPrefix(id uint16) string {
	return fmt.Sprintf("%02x:%02x", id>>8, id&0xff)
}
