// Package lab builds and tears down a multi-cloud Open vSwitch lab on one
// Linux host: every cloud (site) is a network namespace with its own
// ovsdb-server and ovs-vswitchd (userspace datapath), every cloud VM is an
// OVS bridge with its own DPID, and every site has one gateway bridge "gw"
// that Skyvisor later joins to the other sites' gateways with tunnels. Sites
// share a WAN namespace (a Linux bridge, or the testbed/wan delay relay when a
// WAN delay is set). The lab installs no flows and runs no controller: it only
// points every VM and gateway bridge at the controller target of the lab file.
//
// The physical model follows Alaluna et al., "(Literally) above the clouds:
// virtualizing the network over multiple clouds" (sections 3-4): VMs run OVS,
// one gateway VM per cloud holds the inter-cloud tunnels. The lab file format
// is documented in docs/lab.md.
package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Limits and defaults of the lab file.
const (
	// DefaultPrefix is the name prefix of every namespace and state directory.
	DefaultPrefix = "skl"
	// DefaultStateRoot is the parent of the default state directory
	// (<DefaultStateRoot>/<prefix>).
	DefaultStateRoot = "/tmp/skylab"
	// DefaultUnderlay is the WAN subnet; site i (1-based) gets host address i.
	DefaultUnderlay = "172.31.0.0/24"
	// DefaultHostMTU leaves room for VXLAN/GRE/Geneve headers over a 1500-byte WAN.
	DefaultHostMTU = 1400
	// DefaultHostMTUWireGuard also leaves room for WireGuard (wg MTU 1420).
	DefaultHostMTUWireGuard = 1350
	// MaxSites bounds the site count (site index is one octet of the DPID and the underlay address).
	MaxSites = 200
	// MaxVMs bounds the VMs per site (VM index is one octet of the DPID).
	MaxVMs = 250
	// maxPrefixLen keeps "<prefix>-mgmt" style names short and readable.
	maxPrefixLen = 6
	// maxVMName keeps the patch port names "<vm>-gw" and "gw-<vm>" within
	// the 15-character Linux interface name limit (IFNAMSIZ-1).
	maxVMName = 12
	// maxHostName keeps the host's OVS port "h-<host>" within 15 characters.
	maxHostName = 13
)

// Tunnel types Skyvisor may provision between gateways (userspace OVS supports all three).
const (
	TunnelVXLAN  = "vxlan"
	TunnelGRE    = "gre"
	TunnelGeneve = "geneve"
)

// Spec is a lab file (JSON, snake_case field names; see docs/lab.md).
type Spec struct {
	// Name is a free-form label for reports.
	Name string `json:"name,omitempty"`
	// Prefix names every namespace ("<prefix>-s1", "<prefix>-wan", ...) and the
	// default state directory; [a-z][a-z0-9]{0,5}, default "skl".
	Prefix string `json:"prefix,omitempty"`
	// StateDir holds the OVS databases, sockets, logs, pid files and the lab
	// state; absolute; default /tmp/skylab/<prefix>. The --state-dir flag wins.
	StateDir string `json:"state_dir,omitempty"`
	// TunnelType is recorded for Skyvisor (vxlan, gre or geneve; default vxlan).
	TunnelType string `json:"tunnel_type,omitempty"`
	// WireGuard encrypts the underlay with wireguard-go: each site gets an
	// edge namespace "<prefix>-g<i>" holding the WAN port and a WireGuard
	// interface; the tunnel endpoint moves to 10.99.<i>.1 on br-phy, routed
	// through the edge (see docs/lab.md). Needs wireguard-go and wg.
	WireGuard bool `json:"wireguard,omitempty"`
	// Controller is the OpenFlow target set on every VM and gateway bridge:
	// "unix:/abs/path" (default unix:<state_dir>/openflow.sock), "tcp:IPv4:PORT"
	// (the lab creates a management namespace holding IPv4/24), or "none".
	Controller string `json:"controller,omitempty"`
	// HostMTU is the MTU of every plugged host's interface (default 1400).
	HostMTU int `json:"host_mtu,omitempty"`
	// Sites are the clouds, in order; site i (1-based) has index i.
	Sites []SiteSpec `json:"sites"`
	// WAN configures the network between the sites' gateways.
	WAN WANSpec `json:"wan"`
	// Hosts are plugged into VM bridges once the lab is up.
	Hosts []HostSpec `json:"hosts,omitempty"`
}

// SiteSpec is one cloud.
type SiteSpec struct {
	// Name is [a-z0-9][a-z0-9-]*, unique, at most 32 characters.
	Name string `json:"name"`
	// VMs is a count (VMs named vm1..vmN) or a list of names ([a-z0-9][a-z0-9-]*, at most 12 characters).
	VMs VMList `json:"vms"`
	// PublicIP is the site's underlay (public) address inside the WAN subnet; default host address = site index.
	PublicIP string `json:"public_ip,omitempty"`
	// RateMbit overrides wan.rate_mbit for this site's WAN link (0 = use the lab's).
	RateMbit float64 `json:"rate_mbit,omitempty"`
}

// VMList is the "vms" field: a JSON number n (names vm1..vmn) or an array of names.
type VMList struct {
	// Count is the number given as a JSON number (0 when Names was given).
	Count int
	// Names are the names given as a JSON array (nil when Count was given).
	Names []string
}

// UnmarshalJSON accepts a number or an array of strings.
func (v *VMList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		v.Count = 0
		return json.Unmarshal(b, &v.Names)
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a VM count or a list of VM names: %w", err)
	}
	v.Count, v.Names = n, nil
	return nil
}

// MarshalJSON writes the names if given, else the count.
func (v VMList) MarshalJSON() ([]byte, error) {
	if v.Names != nil {
		return json.Marshal(v.Names)
	}
	return json.Marshal(v.Count)
}

// List returns the VM names: Names, or vm1..vmCount.
func (v VMList) List() []string {
	if v.Names != nil {
		return append([]string(nil), v.Names...)
	}
	out := make([]string, 0, v.Count)
	for j := 1; j <= v.Count; j++ {
		out = append(out, "vm"+strconv.Itoa(j))
	}
	return out
}

// WANSpec configures the WAN namespace.
type WANSpec struct {
	// DelayMS is the one-way delay in milliseconds between every pair of sites
	// (RTT grows by 2*DelayMS). Any delay switches the WAN from a Linux bridge
	// to the testbed/wan relay (this kernel has no netem).
	DelayMS float64 `json:"delay_ms,omitempty"`
	// RateMbit limits each site's WAN link (tc tbf on the WAN side of its
	// veth, i.e. traffic towards the site), in Mbit/s; 0 = unlimited.
	RateMbit float64 `json:"rate_mbit,omitempty"`
	// Subnet is the underlay IPv4 subnet (default 172.31.0.0/24).
	Subnet string `json:"subnet,omitempty"`
	// Pairs override the one-way delay between two sites and may limit
	// their rate (both directions).
	Pairs []PairSpec `json:"pairs,omitempty"`
	// QueueFrames bounds each (ingress, egress) queue of the delay relay (default 4096 frames).
	QueueFrames int `json:"queue_frames,omitempty"`
	// LossPercent makes the relay drop that percentage of WAN frames at
	// random (0 <= x < 100; > 0 selects the relay like a delay does).
	LossPercent float64 `json:"loss_percent,omitempty"`
	// MeasureRTT makes Up ping between every two gateways once the lab is
	// up (5 echoes per pair, all pairs in parallel) and record the median
	// round-trip times in the inventory's costs[] (source "measured").
	MeasureRTT bool `json:"measure_rtt,omitempty"`
}

// PairSpec sets the delay and the rate between sites A and B.
type PairSpec struct {
	// A and B are site names.
	A string `json:"a"`
	B string `json:"b"`
	// DelayMS is the one-way delay in milliseconds, both directions. When
	// the key is absent from the lab file Validate sets it to wan.delay_ms.
	DelayMS float64 `json:"delay_ms"`
	// RateMbit limits the frames between the two sites to this many Mbit/s
	// in each direction (a token bucket per direction in the WAN relay; 0 =
	// no pair limit). Per-site limits (rate_mbit) apply as well.
	RateMbit float64 `json:"rate_mbit,omitempty"`
	// delayUnset records that the lab file had no delay_ms key.
	delayUnset bool
}

// UnmarshalJSON decodes a pair, noting whether delay_ms was given. Unknown
// keys are errors.
func (p *PairSpec) UnmarshalJSON(b []byte) error {
	var aux struct {
		A        string   `json:"a"`
		B        string   `json:"b"`
		DelayMS  *float64 `json:"delay_ms"`
		RateMbit float64  `json:"rate_mbit"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("wan.pairs[].%s: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("wan.pairs[]: %w", err)
	}
	*p = PairSpec{A: aux.A, B: aux.B, RateMbit: aux.RateMbit, delayUnset: aux.DelayMS == nil}
	if aux.DelayMS != nil {
		p.DelayMS = *aux.DelayMS
	}
	return nil
}

// HostSpec is a host (tenant container / nested VM) plugged into a VM's bridge.
type HostSpec struct {
	// Name is [a-z0-9][a-z0-9-]*, at most 13 characters; the host's namespace
	// is "<prefix>-h-<name>", its OVS port "h-<name>".
	Name string `json:"name"`
	// Site and VM name the bridge the host is plugged into.
	Site string `json:"site"`
	VM   string `json:"vm"`
	// MAC is the host's unicast MAC address (aa:bb:cc:dd:ee:ff).
	MAC string `json:"mac"`
	// IP is the host's IPv4 address with prefix length (10.0.0.1/24); optional.
	IP string `json:"ip,omitempty"`
	// IfaceID is written to the OVS interface as external_ids:iface-id (default: the host name).
	IfaceID string `json:"iface_id,omitempty"`
}

// ValidationError lists every problem of a lab file, each naming its JSON path.
type ValidationError struct {
	Problems []string
}

// Error joins the problems, one per line.
func (e *ValidationError) Error() string {
	return "invalid lab file: " + strings.Join(e.Problems, "; ")
}

var (
	prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

// reservedBridge are names a VM may not take within its site.
var reservedBridge = map[string]bool{"gw": true, "br-phy": true, "wan0": true, "mgmt0": true, "lo": true}

// Load reads and validates a lab file. Unknown fields are errors.
func Load(path string) (*Spec, error) { return LoadStateDir(path, "") }

// LoadStateDir is Load with the state directory overridden (when stateDir
// != "") before defaults are derived from it (the default controller socket).
func LoadStateDir(path, stateDir string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lab file: %w", err)
	}
	s, err := decode(b)
	if err == nil {
		if stateDir != "" {
			s.StateDir = stateDir
		}
		err = s.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a lab file (see Validate); unknown fields are errors.
func Parse(b []byte) (*Spec, error) {
	s, err := decode(b)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func decode(b []byte) (*Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, &ValidationError{Problems: []string{fmt.Sprintf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)}}
		}
		return nil, &ValidationError{Problems: []string{err.Error()}}
	}
	if dec.More() {
		return nil, &ValidationError{Problems: []string{"trailing data after the lab object"}}
	}
	return &s, nil
}

// Validate fills defaults (prefix, state dir, tunnel type, controller, MTU,
// subnet, queue size, VM names, public IPs, iface IDs) and checks every
// field. It returns a *ValidationError naming the JSON path of each problem
// ("sites[1].vms[0]: ..."); on error the spec may be partly defaulted.
func (s *Spec) Validate() error {
	var p []string
	bad := func(path, format string, a ...any) { p = append(p, path+": "+fmt.Sprintf(format, a...)) }

	if s.Prefix == "" {
		s.Prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(s.Prefix) {
		bad("prefix", "%q must match [a-z][a-z0-9]{0,5}", s.Prefix)
	}
	if s.StateDir == "" {
		s.StateDir = filepath.Join(DefaultStateRoot, s.Prefix)
	}
	if err := checkStateDir(s.StateDir); err != nil {
		bad("state_dir", "%v", err)
	}
	if s.TunnelType == "" {
		s.TunnelType = TunnelVXLAN
	}
	switch s.TunnelType {
	case TunnelVXLAN, TunnelGRE, TunnelGeneve:
	default:
		bad("tunnel_type", "%q is not vxlan, gre or geneve", s.TunnelType)
	}
	if s.HostMTU == 0 {
		s.HostMTU = DefaultHostMTU
		if s.WireGuard {
			s.HostMTU = DefaultHostMTUWireGuard
		}
	}
	if s.HostMTU < 576 || s.HostMTU > 9000 {
		bad("host_mtu", "%d is outside 576..9000", s.HostMTU)
	}

	// sites
	if len(s.Sites) == 0 {
		bad("sites", "at least one site is required")
	}
	if len(s.Sites) > MaxSites {
		bad("sites", "%d sites, at most %d", len(s.Sites), MaxSites)
	}
	if s.WAN.Subnet == "" {
		s.WAN.Subnet = DefaultUnderlay
	}
	subnet, err := netip.ParsePrefix(s.WAN.Subnet)
	if err != nil || !subnet.Addr().Is4() || subnet.Bits() > 24 || subnet.Masked() != subnet {
		bad("wan.subnet", "%q must be an IPv4 network address with a prefix length of at most 24", s.WAN.Subnet)
		subnet = netip.Prefix{}
	}
	siteIdx := map[string]int{}
	publicSeen := map[netip.Addr]string{}
	for i := range s.Sites {
		st := &s.Sites[i]
		path := fmt.Sprintf("sites[%d]", i)
		if !nameRE.MatchString(st.Name) || len(st.Name) > 32 {
			bad(path+".name", "%q must match [a-z0-9][a-z0-9-]* and have at most 32 characters", st.Name)
		} else if _, dup := siteIdx[st.Name]; dup {
			bad(path+".name", "duplicate site name %q", st.Name)
		} else {
			siteIdx[st.Name] = i + 1
		}
		switch {
		case st.VMs.Names == nil && (st.VMs.Count < 1 || st.VMs.Count > MaxVMs):
			bad(path+".vms", "count %d is outside 1..%d", st.VMs.Count, MaxVMs)
		case st.VMs.Names != nil && (len(st.VMs.Names) < 1 || len(st.VMs.Names) > MaxVMs):
			bad(path+".vms", "%d names, want 1..%d", len(st.VMs.Names), MaxVMs)
		}
		vmSeen := map[string]bool{}
		for j, vm := range st.VMs.Names {
			vpath := fmt.Sprintf("%s.vms[%d]", path, j)
			switch {
			case !nameRE.MatchString(vm) || len(vm) > maxVMName:
				bad(vpath, "%q must match [a-z0-9][a-z0-9-]* and have at most %d characters", vm, maxVMName)
			case reservedBridge[vm]:
				bad(vpath, "%q is reserved in a site", vm)
			case vmSeen[vm]:
				bad(vpath, "duplicate VM name %q", vm)
			}
			vmSeen[vm] = true
		}
		if st.RateMbit < 0 {
			bad(path+".rate_mbit", "%v must not be negative", st.RateMbit)
		}
		if subnet.IsValid() {
			if st.PublicIP == "" {
				a, ok := nthAddr(subnet, i+1)
				if !ok {
					bad(path+".public_ip", "no default address: site %d does not fit in %s", i+1, subnet)
					continue
				}
				st.PublicIP = a.String()
			}
			a, err := netip.ParseAddr(st.PublicIP)
			switch {
			case err != nil || !a.Is4():
				bad(path+".public_ip", "%q is not an IPv4 address", st.PublicIP)
			case !subnet.Contains(a) || a == subnet.Addr() || a == lastAddr(subnet):
				bad(path+".public_ip", "%s is not a host address of wan.subnet %s", a, subnet)
			case publicSeen[a] != "":
				bad(path+".public_ip", "%s is also %s's address", a, publicSeen[a])
			default:
				publicSeen[a] = path
			}
		}
	}

	// wan
	if s.WAN.DelayMS < 0 || s.WAN.DelayMS > 10000 {
		bad("wan.delay_ms", "%v is outside 0..10000", s.WAN.DelayMS)
	}
	if s.WAN.RateMbit < 0 {
		bad("wan.rate_mbit", "%v must not be negative", s.WAN.RateMbit)
	}
	if s.WAN.LossPercent < 0 || s.WAN.LossPercent >= 100 {
		bad("wan.loss_percent", "%v is outside 0..<100", s.WAN.LossPercent)
	}
	if s.WAN.QueueFrames == 0 {
		s.WAN.QueueFrames = 4096
	}
	if s.WAN.QueueFrames < 1 || s.WAN.QueueFrames > 1<<20 {
		bad("wan.queue_frames", "%d is outside 1..%d", s.WAN.QueueFrames, 1<<20)
	}
	pairSeen := map[[2]string]bool{}
	for k, pr := range s.WAN.Pairs {
		path := fmt.Sprintf("wan.pairs[%d]", k)
		if _, ok := siteIdx[pr.A]; !ok {
			bad(path+".a", "unknown site %q", pr.A)
		}
		if _, ok := siteIdx[pr.B]; !ok {
			bad(path+".b", "unknown site %q", pr.B)
		}
		if pr.A == pr.B {
			bad(path, "a and b are the same site %q", pr.A)
		}
		key := [2]string{pr.A, pr.B}
		if pr.B < pr.A {
			key = [2]string{pr.B, pr.A}
		}
		if pairSeen[key] {
			bad(path, "pair %s-%s given twice", pr.A, pr.B)
		}
		pairSeen[key] = true
		if pr.delayUnset {
			s.WAN.Pairs[k].DelayMS, s.WAN.Pairs[k].delayUnset = s.WAN.DelayMS, false
			pr.DelayMS = s.WAN.DelayMS
		}
		if pr.DelayMS < 0 || pr.DelayMS > 10000 {
			bad(path+".delay_ms", "%v is outside 0..10000", pr.DelayMS)
		}
		if !(pr.RateMbit >= 0) || pr.RateMbit > 1e6 {
			bad(path+".rate_mbit", "%v is outside 0..1000000", pr.RateMbit)
		}
	}

	// controller
	if s.Controller == "" {
		s.Controller = "unix:" + filepath.Join(s.StateDir, "openflow.sock")
	}
	if _, err := ParseController(s.Controller, len(s.Sites)); err != nil {
		bad("controller", "%v", err)
	}

	// hosts
	hostSeen := map[string]bool{}
	macSeen := map[string]string{}
	for k := range s.Hosts {
		h := &s.Hosts[k]
		path := fmt.Sprintf("hosts[%d]", k)
		for _, e := range h.check(s) {
			bad(path+"."+e.field, "%s", e.msg)
		}
		if hostSeen[h.Name] {
			bad(path+".name", "duplicate host name %q", h.Name)
		}
		hostSeen[h.Name] = true
		if m, err := net.ParseMAC(h.MAC); err == nil {
			if prev := macSeen[m.String()]; prev != "" {
				bad(path+".mac", "%s is also %s's MAC", m, prev)
			}
			macSeen[m.String()] = path
		}
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

type fieldErr struct{ field, msg string }

// check validates one host against the (validated) spec and fills IfaceID.
func (h *HostSpec) check(s *Spec) []fieldErr {
	var out []fieldErr
	bad := func(f, format string, a ...any) { out = append(out, fieldErr{f, fmt.Sprintf(format, a...)}) }
	if !nameRE.MatchString(h.Name) || len(h.Name) > maxHostName {
		bad("name", "%q must match [a-z0-9][a-z0-9-]* and have at most %d characters", h.Name, maxHostName)
	}
	site := s.site(h.Site)
	if site == nil {
		bad("site", "unknown site %q", h.Site)
	} else if !contains(site.VMs.List(), h.VM) {
		bad("vm", "site %q has no VM %q", h.Site, h.VM)
	}
	m, err := net.ParseMAC(h.MAC)
	switch {
	case err != nil || len(m) != 6:
		bad("mac", "%q is not a MAC address like 02:00:00:00:01:01", h.MAC)
	case m[0]&1 == 1:
		bad("mac", "%s is a multicast address", m)
	case bytes.Equal(m, make(net.HardwareAddr, 6)):
		bad("mac", "%s is the zero address", m)
	default:
		h.MAC = m.String()
	}
	if h.IP != "" {
		pfx, err := netip.ParsePrefix(h.IP)
		if err != nil || !pfx.Addr().Is4() {
			bad("ip", "%q is not an IPv4 address with prefix length like 10.0.0.1/24", h.IP)
		} else if pfx.Addr() == pfx.Masked().Addr() && pfx.Bits() < 31 {
			bad("ip", "%s is a network address", pfx)
		}
	}
	if h.IfaceID == "" {
		h.IfaceID = h.Name
	}
	if len(h.IfaceID) > 255 || strings.ContainsAny(h.IfaceID, "\"\\ \t\n") {
		bad("iface_id", "%q must be at most 255 characters without spaces, quotes or backslashes", h.IfaceID)
	}
	return out
}

// CheckHost validates a host against a validated spec (used by Plug), filling
// IfaceID and normalizing MAC. Errors name the host's fields.
func (s *Spec) CheckHost(h *HostSpec) error {
	var p []string
	for _, e := range h.check(s) {
		p = append(p, "host."+e.field+": "+e.msg)
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

func (s *Spec) site(name string) *SiteSpec {
	for i := range s.Sites {
		if s.Sites[i].Name == name {
			return &s.Sites[i]
		}
	}
	return nil
}

func (s *Spec) siteIndex(name string) int {
	for i := range s.Sites {
		if s.Sites[i].Name == name {
			return i + 1
		}
	}
	return 0
}

// UsesRelay reports whether the WAN needs the delay relay (any delay, loss
// or pair rate set).
func (s *Spec) UsesRelay() bool {
	if s.WAN.DelayMS > 0 || s.WAN.LossPercent > 0 {
		return true
	}
	for _, p := range s.WAN.Pairs {
		if p.DelayMS > 0 || p.RateMbit > 0 {
			return true
		}
	}
	return false
}

// Controller is a parsed controller target.
type Controller struct {
	// Kind is "unix", "tcp" or "none".
	Kind string
	// Target is the OVS target string ("unix:/path", "tcp:IP:PORT"), empty for none.
	Target string
	// Path is the socket path of a unix target.
	Path string
	// Addr is the controller address of a tcp target; the management namespace holds Addr/24.
	Addr netip.AddrPort
}

// ParseController parses a controller target of a lab with nSites sites.
// tcp targets need an IPv4 address that is not loopback, whose /24 leaves the
// host numbers 1..nSites free for the sites' management interfaces.
func ParseController(t string, nSites int) (Controller, error) {
	switch {
	case t == "none":
		return Controller{Kind: "none"}, nil
	case strings.HasPrefix(t, "unix:"):
		p := strings.TrimPrefix(t, "unix:")
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return Controller{}, fmt.Errorf("%q: unix socket path must be absolute and clean", t)
		}
		if len(p) > 107 {
			return Controller{}, fmt.Errorf("%q: unix socket path longer than 107 bytes", t)
		}
		return Controller{Kind: "unix", Target: t, Path: p}, nil
	case strings.HasPrefix(t, "tcp:"):
		ap, err := netip.ParseAddrPort(strings.TrimPrefix(t, "tcp:"))
		if err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
			return Controller{}, fmt.Errorf("%q: want tcp:IPv4:PORT", t)
		}
		a := ap.Addr()
		if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
			return Controller{}, fmt.Errorf("%q: a site namespace cannot reach %s; use a unix: target for a controller in the root namespace", t, a)
		}
		last := int(a.As4()[3])
		if last == 0 || last == 255 || last <= nSites {
			return Controller{}, fmt.Errorf("%q: host number %d of the management /24 must be above the site count %d (sites take .1..%d) and below 255", t, last, nSites, nSites)
		}
		return Controller{Kind: "tcp", Target: t, Addr: ap}, nil
	}
	return Controller{}, fmt.Errorf("%q: want unix:/path, tcp:IPv4:PORT or none", t)
}

func checkStateDir(d string) error {
	if !filepath.IsAbs(d) || filepath.Clean(d) != d {
		return fmt.Errorf("%q must be an absolute, clean path", d)
	}
	if strings.Count(d, "/") < 2 {
		return fmt.Errorf("%q is too close to / (the directory is removed by down)", d)
	}
	// unix socket paths under it must fit in sun_path (108 bytes)
	if len(d)+len("/s200/run/ovs-vswitchd.12345678.ctl") > 107 {
		return fmt.Errorf("%q is too long for unix socket paths below it", d)
	}
	return nil
}

func nthAddr(p netip.Prefix, n int) (netip.Addr, bool) {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	size := uint32(1) << (32 - p.Bits())
	if n <= 0 || uint32(n) >= size-1 {
		return netip.Addr{}, false
	}
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (uint32(1) << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
