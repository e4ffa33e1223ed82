// Package infra describes the physical infrastructure Skyvisor manages: the
// clouds (sites) with their gateway bridge, the VM (edge) bridges and their
// uplinks to the gateway, the OVSDB endpoints that configure them, the
// tunnel encapsulation and costs between sites, and the OpenFlow controller
// target every bridge must use. It follows the physical model of Alaluna et
// al., "(Literally) above the clouds" (sections 3-4): every VM runs Open
// vSwitch, one gateway per cloud holds the inter-cloud tunnels.
//
// The JSON format (docs/infra.md) is deliberately a subset of the lab's
// inventory (`skylab status --json`, package testbed/lab): an inventory can
// be passed to Skyvisor as is (unknown fields are ignored), and a
// hand-written file for real clouds uses the same field names. Parse
// decodes and validates; every problem is reported with its JSON path
// ("sites[1].ovsdb: ...") in one *ValidationError.
package infra

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/tunnels"
)

// Switch roles.
const (
	RoleGateway = "gateway" // a site's gateway bridge (holds the tunnels)
	RoleVM      = "vm"      // a VM's (edge) bridge: tenant hosts plug in here
)

// ControllerNone as a controller target means "do not manage the bridges'
// controllers" (the lab writes it when it runs without a controller).
const ControllerNone = "none"

// MaxFileSize bounds the size of an infrastructure document Parse accepts
// (bytes).
const MaxFileSize = 16 << 20

// Infra is the whole physical infrastructure. Field names follow the lab
// inventory (testbed/lab.Inventory) so that an inventory decodes as an Infra.
type Infra struct {
	// Name is a free-form label.
	Name string `json:"name,omitempty"`
	// Controller is the OpenFlow controller target of every bridge
	// ("unix:/abs/path", "tcp:IP:PORT", "ssl:IP:PORT"), unless a site sets
	// its own ControllerTarget; "" or "none" leaves controllers unmanaged.
	Controller string `json:"controller,omitempty"`
	// TunnelType is the gateway tunnel encapsulation: "vxlan" (default),
	// "gre" or "geneve".
	TunnelType string `json:"tunnel_type,omitempty"`
	// WireGuard says the underlay between gateways is encrypted
	// (tunnels.Encap.Encrypted); sites then need an UnderlayIP distinct
	// from their PublicIP.
	WireGuard bool `json:"wireguard,omitempty"`
	// DatapathType is the OVS datapath of every bridge ("netdev" or
	// "system"); "" leaves it unmanaged. Not part of the lab inventory.
	DatapathType string `json:"datapath_type,omitempty"`
	// OVSDBTLS is the private key, certificate and CA certificate (PEM
	// paths, see ovsdb.TLSFiles) of every "ssl:" OVSDB endpoint whose site
	// has no ovsdb_tls of its own. Not part of the lab inventory.
	OVSDBTLS *ovsdb.TLSFiles `json:"ovsdb_tls,omitempty"`
	// Sites are the clouds.
	Sites []Site `json:"sites"`
	// Switches are the gateway and VM bridges of every site.
	Switches []Switch `json:"switches"`
	// Costs are optional tunnel costs per site pair (RTT in ms), each
	// configured (source "" or "configured") or measured (source
	// "measured": the lab inventory's costs[] when the lab file sets
	// wan.measure_rtt, or `skylab rtt`). See TunnelCosts for which wins.
	Costs []Cost `json:"costs,omitempty"`
	// WAN is the lab's WAN description; only its delays are read (RTT =
	// 2 × one-way delay) to derive default costs.
	WAN *WAN `json:"wan,omitempty"`
}

// Site is one cloud.
type Site struct {
	// Name is the site (cloud) name tenants use in "cloud"; 1..63 bytes of
	// [A-Za-z0-9._-] (tunnels.ValidateSiteName).
	Name string `json:"name"`
	// OVSDB is the endpoint of the ovsdb-server holding the site's gateway
	// ("unix:/abs/path", "tcp:HOST:PORT" or "ssl:HOST:PORT",
	// ovsdb.ParseEndpoint); also the default of the site's switches.
	OVSDB string `json:"ovsdb"`
	// OVSDBTLS, if set, is the key, certificate and CA of the site's ssl
	// endpoints (its own and its switches'), overriding Infra.OVSDBTLS.
	OVSDBTLS *ovsdb.TLSFiles `json:"ovsdb_tls,omitempty"`
	// UnderlayIP is the gateway's tunnel endpoint address (options:remote_ip
	// of its peers' tunnel ports).
	UnderlayIP string `json:"underlay_ip"`
	// PublicIP is the gateway's public address; "" means UnderlayIP.
	PublicIP string `json:"public_ip,omitempty"`
	// ControllerTarget overrides Infra.Controller for the site's bridges
	// (the lab gives each site a unix socket below its OVS run directory).
	ControllerTarget string `json:"controller_target,omitempty"`
	// GatewayBridge and GatewayDPID name the site's gateway switch; they must
	// match a Switches entry with role "gateway" (which may be omitted: it
	// is then implied, with the site's OVSDB endpoint).
	GatewayBridge string `json:"gateway_bridge"`
	GatewayDPID   uint64 `json:"gateway_dpid"`
	// VMs lists the site's VM names (optional; the VM switches are
	// authoritative).
	VMs []string `json:"vms,omitempty"`
}

// Switch is one OVS bridge Skyvisor controls: a gateway or a VM bridge.
type Switch struct {
	Site string `json:"site"`
	// Role is "gateway" or "vm".
	Role string `json:"role"`
	// VM is the VM name (role "vm" only), unique within the site.
	VM string `json:"vm,omitempty"`
	// Bridge is the OVS bridge name (unique per OVSDB endpoint).
	Bridge string `json:"bridge"`
	// DPID is the bridge's datapath ID (OpenFlow 1.3.5 §7.3.1); not 0,
	// unique in the infrastructure. Skyvisor sets it
	// (other_config:datapath-id).
	DPID uint64 `json:"dpid"`
	// OVSDB is the endpoint of the database holding the bridge; "" means
	// the site's.
	OVSDB string `json:"ovsdb,omitempty"`
	// PatchPorts link a VM bridge to its gateway: a VM has exactly one (its
	// uplink), whose PeerBridge is the site's gateway bridge; a gateway has
	// one per VM (its downlinks).
	PatchPorts []PatchPort `json:"patch_ports"`
}

// PatchPort is one end of a VM<->gateway link.
type PatchPort struct {
	Name string `json:"name"`
	// OFPort is the OpenFlow port number, 1..65279.
	OFPort int `json:"ofport"`
	// Peer is the port at the other end, on bridge PeerBridge.
	Peer       string `json:"peer"`
	PeerBridge string `json:"peer_bridge"`
}

// Cost is the cost of a direct tunnel between sites A and B.
type Cost struct {
	A string `json:"a"`
	B string `json:"b"`
	// RTTMS is the round-trip time in milliseconds (>= 0).
	RTTMS float64 `json:"rtt_ms"`
	// Source is CostConfigured ("" means configured) or CostMeasured.
	Source string `json:"source,omitempty"`
}

// Cost sources, in the order TunnelCosts prefers them (CostSource returns them).
const (
	CostConfigured = "configured" // a costs[] entry without source or with source "configured"
	CostMeasured   = "measured"   // a costs[] entry with source "measured" (lab: wan.measure_rtt)
	CostWAN        = "wan"        // 2 × the WAN's configured one-way delay of the pair (lab inventory)
	CostDefault    = "default"    // 1: nothing known about the pair
)

// WAN is the delay part of the lab inventory's WAN description.
type WAN struct {
	// DelayMS is the default one-way delay between sites (ms).
	DelayMS float64 `json:"delay_ms"`
	// Pairs override it per site pair.
	Pairs []WANPair `json:"pairs,omitempty"`
}

// WANPair is the one-way delay between two sites (ms).
type WANPair struct {
	A       string  `json:"a"`
	B       string  `json:"b"`
	DelayMS float64 `json:"delay_ms"`
}

// FieldError is one problem with the JSON path of the offending value.
type FieldError struct {
	Path string // e.g. "switches[3].patch_ports[0].ofport"
	Msg  string
}

// Error implements error.
func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// ValidationError lists every problem of an infrastructure document.
type ValidationError struct {
	Errors []FieldError
}

// Error joins the problems.
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	return "invalid infrastructure: " + strings.Join(parts, "; ")
}

// Load reads and parses an infrastructure file (see Parse).
func Load(path string) (*Infra, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("infra: %w", err)
	}
	inf, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("infra: %s: %w", path, err)
	}
	return inf, nil
}

// Parse decodes an infrastructure document (JSON; fields it does not know,
// such as the rest of a lab inventory, are ignored), fills defaults (tunnel
// type vxlan, implied gateway switches, switch OVSDB endpoints) and
// validates it. Errors: a JSON syntax or type error, or a
// *ValidationError listing every problem with its path.
func Parse(data []byte) (*Infra, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("document is %d bytes, more than %d", len(data), MaxFileSize)
	}
	var inf Infra
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&inf); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, &ValidationError{Errors: []FieldError{{Path: te.Field, Msg: fmt.Sprintf("want %s, got JSON %s", te.Type, te.Value)}}}
		}
		return nil, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode: trailing data after the infrastructure object")
	}
	if err := inf.Validate(); err != nil {
		return nil, err
	}
	return &inf, nil
}

// Validate fills defaults and checks every field, returning a
// *ValidationError naming each problem's path. See the field docs for the
// rules; in short: unique site names, valid OVSDB endpoints and tunnel
// endpoint addresses of one IP version, one gateway per site whose DPID
// matches the site's, unique non-zero DPIDs, VMs with exactly one uplink to
// their site's gateway whose port numbers agree with the gateway's patch
// ports, costs naming known, distinct sites, and ovsdb_tls entries with
// all of key, cert and ca, the same for sites sharing an ssl endpoint
// (the files themselves are read by CheckOVSDBTLS).
func (inf *Infra) Validate() error {
	var errs []FieldError
	bad := func(path, format string, a ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, a...)})
	}
	if inf.TunnelType == "" {
		inf.TunnelType = string(tunnels.VXLAN)
	}
	if !tunnels.Type(inf.TunnelType).Valid() {
		bad("tunnel_type", "%q is not vxlan, gre or geneve", inf.TunnelType)
	}
	switch inf.DatapathType {
	case "", "netdev", "system":
	default:
		bad("datapath_type", "%q is not netdev or system", inf.DatapathType)
	}
	if inf.Controller != "" && inf.Controller != ControllerNone {
		if err := checkTarget(inf.Controller); err != nil {
			bad("controller", "%v", err)
		}
	}
	checkTLS := func(path string, f *ovsdb.TLSFiles) {
		if f == nil {
			return
		}
		for _, m := range f.Missing() {
			bad(path+"."+m, "required (PEM file path)")
		}
	}
	checkTLS("ovsdb_tls", inf.OVSDBTLS)
	if len(inf.Sites) == 0 {
		bad("sites", "at least one site is required")
	}
	sites := map[string]int{}
	ipv4 := map[bool]string{}
	for i := range inf.Sites {
		s := &inf.Sites[i]
		p := fmt.Sprintf("sites[%d]", i)
		if err := tunnels.ValidateSiteName(s.Name); err != nil {
			bad(p+".name", "%v", err)
		} else if j, dup := sites[s.Name]; dup {
			bad(p+".name", "duplicate site %q (also sites[%d])", s.Name, j)
		} else {
			sites[s.Name] = i
		}
		if _, err := ovsdb.ParseEndpoint(s.OVSDB); err != nil {
			bad(p+".ovsdb", "%v", err)
		}
		checkTLS(p+".ovsdb_tls", s.OVSDBTLS)
		if a, err := netip.ParseAddr(s.UnderlayIP); err != nil || a.Zone() != "" || a.IsUnspecified() {
			bad(p+".underlay_ip", "%q is not an IP address", s.UnderlayIP)
		} else {
			ipv4[a.Is4()] = s.Name
		}
		if s.PublicIP != "" {
			if a, err := netip.ParseAddr(s.PublicIP); err != nil || a.Zone() != "" || a.IsUnspecified() {
				bad(p+".public_ip", "%q is not an IP address", s.PublicIP)
			}
		}
		if inf.WireGuard && (s.PublicIP == "" || s.PublicIP == s.UnderlayIP) {
			bad(p+".underlay_ip", "with wireguard the tunnel endpoint must differ from the public IP %q", s.PublicIP)
		}
		if s.ControllerTarget != "" && s.ControllerTarget != ControllerNone {
			if err := checkTarget(s.ControllerTarget); err != nil {
				bad(p+".controller_target", "%v", err)
			}
		}
		if s.GatewayBridge == "" {
			bad(p+".gateway_bridge", "required")
		}
		if s.GatewayDPID == 0 {
			bad(p+".gateway_dpid", "required (not 0)")
		}
	}
	if len(ipv4) > 1 {
		bad("sites", "tunnel endpoints mix IPv4 (site %q) and IPv6 (site %q)", ipv4[true], ipv4[false])
	}

	// Implied gateway switches.
	hasGW := map[string]bool{}
	for _, sw := range inf.Switches {
		if sw.Role == RoleGateway {
			hasGW[sw.Site] = true
		}
	}
	for _, s := range inf.Sites {
		if !hasGW[s.Name] && s.Name != "" && s.GatewayBridge != "" {
			inf.Switches = append(inf.Switches, Switch{Site: s.Name, Role: RoleGateway, Bridge: s.GatewayBridge,
				DPID: s.GatewayDPID, OVSDB: s.OVSDB})
		}
	}

	dpids := map[uint64]string{}
	bridges := map[[2]string]string{} // (ovsdb, bridge) -> path
	gateways := map[string]int{}      // site -> switch index
	vms := map[[2]string]string{}     // (site, vm) -> path
	for i := range inf.Switches {
		sw := &inf.Switches[i]
		p := fmt.Sprintf("switches[%d]", i)
		si, ok := sites[sw.Site]
		if !ok {
			bad(p+".site", "unknown site %q", sw.Site)
			continue
		}
		site := &inf.Sites[si]
		if sw.OVSDB == "" {
			sw.OVSDB = site.OVSDB
		} else if _, err := ovsdb.ParseEndpoint(sw.OVSDB); err != nil {
			bad(p+".ovsdb", "%v", err)
		}
		if err := (ovsdb.BridgeSpec{Name: sw.Bridge}).Validate(); err != nil {
			bad(p+".bridge", "%v", err)
		} else if prev, dup := bridges[[2]string{sw.OVSDB, sw.Bridge}]; dup {
			bad(p+".bridge", "bridge %q of %s is also %s", sw.Bridge, sw.OVSDB, prev)
		} else {
			bridges[[2]string{sw.OVSDB, sw.Bridge}] = p
		}
		if sw.DPID == 0 {
			bad(p+".dpid", "required (not 0)")
		} else if prev, dup := dpids[sw.DPID]; dup {
			bad(p+".dpid", "DPID %#x is also %s", sw.DPID, prev)
		} else {
			dpids[sw.DPID] = p
		}
		for j, pp := range sw.PatchPorts {
			pj := fmt.Sprintf("%s.patch_ports[%d]", p, j)
			if pp.OFPort < 1 || pp.OFPort > 65279 {
				bad(pj+".ofport", "%d is not an OpenFlow port number 1..65279", pp.OFPort)
			}
			if pp.PeerBridge == "" {
				bad(pj+".peer_bridge", "required")
			}
		}
		switch sw.Role {
		case RoleGateway:
			if prev, dup := gateways[sw.Site]; dup {
				bad(p+".role", "site %q already has a gateway (switches[%d])", sw.Site, prev)
				continue
			}
			gateways[sw.Site] = i
			if sw.Bridge != site.GatewayBridge || sw.DPID != site.GatewayDPID {
				bad(p, "gateway %q (DPID %#x) disagrees with sites[%d] gateway_bridge %q, gateway_dpid %#x",
					sw.Bridge, sw.DPID, si, site.GatewayBridge, site.GatewayDPID)
			}
		case RoleVM:
			if sw.VM == "" {
				bad(p+".vm", "required for role vm")
			} else if prev, dup := vms[[2]string{sw.Site, sw.VM}]; dup {
				bad(p+".vm", "VM %q of site %q is also %s", sw.VM, sw.Site, prev)
			} else {
				vms[[2]string{sw.Site, sw.VM}] = p
			}
			if len(sw.PatchPorts) != 1 {
				bad(p+".patch_ports", "a VM bridge needs exactly one uplink patch port to its gateway, got %d", len(sw.PatchPorts))
			} else if pb := sw.PatchPorts[0].PeerBridge; pb != site.GatewayBridge {
				bad(p+".patch_ports[0].peer_bridge", "%q is not the gateway bridge %q of site %q", pb, site.GatewayBridge, sw.Site)
			}
		default:
			bad(p+".role", "%q is not gateway or vm", sw.Role)
		}
	}
	for _, s := range inf.Sites {
		if _, ok := gateways[s.Name]; !ok && s.Name != "" && s.GatewayBridge != "" {
			bad(fmt.Sprintf("sites[%d]", sites[s.Name]), "no gateway switch")
		}
	}
	// Every VM's uplink must meet a downlink of its gateway.
	if len(errs) == 0 {
		for i := range inf.Switches {
			sw := &inf.Switches[i]
			if sw.Role != RoleVM {
				continue
			}
			gw := &inf.Switches[gateways[sw.Site]]
			up := sw.PatchPorts[0]
			found := false
			for _, d := range gw.PatchPorts {
				if d.PeerBridge == sw.Bridge && (up.Peer == "" || d.Name == up.Peer) {
					found = true
				}
			}
			if !found {
				bad(fmt.Sprintf("switches[%d].patch_ports[0]", i), "gateway %q of site %q has no patch port toward bridge %q", gw.Bridge, sw.Site, sw.Bridge)
			}
		}
	}
	// One connection per endpoint: the sites sharing an ssl endpoint must
	// agree on its files.
	tlsOf := map[string]int{} // endpoint -> index of the first site giving its files
	for i, sw := range inf.Switches {
		si, ok := sites[sw.Site]
		if !ok || inf.Sites[si].OVSDBTLS == nil || !strings.HasPrefix(sw.OVSDB, "ssl:") {
			continue
		}
		j, seen := tlsOf[sw.OVSDB]
		if !seen {
			tlsOf[sw.OVSDB] = si
		} else if j != si && *inf.Sites[j].OVSDBTLS != *inf.Sites[si].OVSDBTLS {
			bad(fmt.Sprintf("sites[%d].ovsdb_tls", si), "differs from sites[%d].ovsdb_tls, which endpoint %s of switches[%d] also uses (one connection per endpoint)", j, sw.OVSDB, i)
		}
	}
	for i, c := range inf.Costs {
		p := fmt.Sprintf("costs[%d]", i)
		_, okA := sites[c.A]
		_, okB := sites[c.B]
		switch {
		case !okA:
			bad(p+".a", "unknown site %q", c.A)
		case !okB:
			bad(p+".b", "unknown site %q", c.B)
		case c.A == c.B:
			bad(p, "a site cannot tunnel to itself")
		}
		if !(c.RTTMS >= 0) || c.RTTMS > 1e9 {
			bad(p+".rtt_ms", "%v is not a number of milliseconds >= 0", c.RTTMS)
		}
		switch c.Source {
		case "", CostConfigured, CostMeasured:
		default:
			bad(p+".source", "%q is not configured or measured", c.Source)
		}
	}
	if inf.WAN != nil {
		for i, pr := range inf.WAN.Pairs {
			if pr.DelayMS < 0 {
				bad(fmt.Sprintf("wan.pairs[%d].delay_ms", i), "%v is negative", pr.DelayMS)
			}
		}
	}
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

// checkTarget checks an OpenFlow controller target.
func checkTarget(t string) error {
	kind, rest, ok := strings.Cut(t, ":")
	if !ok || rest == "" {
		return fmt.Errorf("controller target %q: want unix:PATH, tcp:IP:PORT or ssl:IP:PORT", t)
	}
	switch kind {
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return fmt.Errorf("controller target %q: socket path is not absolute", t)
		}
	case "tcp", "ssl":
	default:
		return fmt.Errorf("controller target %q: want unix:PATH, tcp:IP:PORT or ssl:IP:PORT", t)
	}
	return nil
}

// OVSDBTLSFor returns a copy of the TLS files of an "ssl:" endpoint: the
// ovsdb_tls of the first site whose ovsdb is endpoint, else of the first
// site one of whose switches uses it, else the top-level ovsdb_tls; nil if
// none is set (the daemon's settings may then give them).
func (inf *Infra) OVSDBTLSFor(endpoint string) *ovsdb.TLSFiles {
	for _, s := range inf.Sites {
		if s.OVSDB == endpoint && s.OVSDBTLS != nil {
			return cloneTLS(s.OVSDBTLS)
		}
	}
	for _, sw := range inf.Switches {
		if sw.OVSDB != endpoint {
			continue
		}
		if s := inf.Site(sw.Site); s != nil && s.OVSDBTLS != nil {
			return cloneTLS(s.OVSDBTLS)
		}
	}
	if inf.OVSDBTLS != nil {
		return cloneTLS(inf.OVSDBTLS)
	}
	return nil
}

// CheckOVSDBTLS checks what Validate cannot without the file system and
// the daemon's settings: every "ssl:" endpoint (of a site or a switch)
// must have TLS files — its site's ovsdb_tls, the top-level one or
// fallback (the daemon's, may be nil; not loaded here) — and every
// ovsdb_tls of the document must load (ovsdb.TLSFiles.Load: files
// readable, PEM certificates, a key matching the certificate). Every
// problem is reported with its JSON path in a *ValidationError, e.g.
// `sites[1].ovsdb_tls.cert: "/etc/skyvisor/cert.pem": open
// /etc/skyvisor/cert.pem: no such file or directory`. Call it on a
// validated Infra.
func (inf *Infra) CheckOVSDBTLS(fallback *ovsdb.TLSFiles) error {
	var errs []FieldError
	load := func(path string, f *ovsdb.TLSFiles) {
		if f == nil {
			return
		}
		if _, err := f.Load(); err != nil {
			var fe *ovsdb.TLSFileError
			if errors.As(err, &fe) {
				if fe.File != "" {
					errs = append(errs, FieldError{Path: path + "." + fe.Field, Msg: fmt.Sprintf("%q: %v", fe.File, fe.Err)})
				} else {
					errs = append(errs, FieldError{Path: path + "." + fe.Field, Msg: fe.Err.Error()})
				}
				return
			}
			errs = append(errs, FieldError{Path: path, Msg: err.Error()})
		}
	}
	load("ovsdb_tls", inf.OVSDBTLS)
	hasTLS := func(s *Site) bool { return s.OVSDBTLS != nil || inf.OVSDBTLS != nil || fallback != nil }
	const how = "needs ovsdb_tls {key, cert, ca} on its site or at the top level, or the daemon's --ovsdb-tls-key, --ovsdb-tls-cert and --ovsdb-tls-ca"
	for i := range inf.Sites {
		s := &inf.Sites[i]
		p := fmt.Sprintf("sites[%d]", i)
		load(p+".ovsdb_tls", s.OVSDBTLS)
		if strings.HasPrefix(s.OVSDB, "ssl:") && !hasTLS(s) {
			errs = append(errs, FieldError{Path: p + ".ovsdb", Msg: fmt.Sprintf("ssl endpoint %q %s", s.OVSDB, how)})
		}
	}
	for i, sw := range inf.Switches {
		s := inf.Site(sw.Site)
		if s == nil || sw.OVSDB == s.OVSDB || !strings.HasPrefix(sw.OVSDB, "ssl:") || hasTLS(s) {
			continue
		}
		errs = append(errs, FieldError{Path: fmt.Sprintf("switches[%d].ovsdb", i), Msg: fmt.Sprintf("ssl endpoint %q %s", sw.OVSDB, how)})
	}
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

// Site returns the named site, or nil.
func (inf *Infra) Site(name string) *Site {
	for i := range inf.Sites {
		if inf.Sites[i].Name == name {
			return &inf.Sites[i]
		}
	}
	return nil
}

// Gateway returns the gateway switch of site, or nil.
func (inf *Infra) Gateway(site string) *Switch {
	for i := range inf.Switches {
		if inf.Switches[i].Site == site && inf.Switches[i].Role == RoleGateway {
			return &inf.Switches[i]
		}
	}
	return nil
}

// SwitchByDPID returns the switch with datapath ID dpid, or nil.
func (inf *Infra) SwitchByDPID(dpid uint64) *Switch {
	for i := range inf.Switches {
		if inf.Switches[i].DPID == dpid {
			return &inf.Switches[i]
		}
	}
	return nil
}

// VMs returns the VM switches of site, in document order.
func (inf *Infra) VMs(site string) []*Switch {
	var out []*Switch
	for i := range inf.Switches {
		if inf.Switches[i].Site == site && inf.Switches[i].Role == RoleVM {
			out = append(out, &inf.Switches[i])
		}
	}
	return out
}

// Uplink returns the VM switch's uplink port number and the gateway's
// port number toward it (its downlink). ok is false for a gateway or a VM
// without a matching gateway patch port (Validate rules that out).
func (inf *Infra) Uplink(vm *Switch) (uplink, downlink uint32, ok bool) {
	if vm.Role != RoleVM || len(vm.PatchPorts) != 1 {
		return 0, 0, false
	}
	gw := inf.Gateway(vm.Site)
	if gw == nil {
		return 0, 0, false
	}
	up := vm.PatchPorts[0]
	for _, d := range gw.PatchPorts {
		if d.PeerBridge == vm.Bridge && (up.Peer == "" || d.Name == up.Peer) {
			return uint32(up.OFPort), uint32(d.OFPort), true
		}
	}
	return 0, 0, false
}

// ControllerTarget returns the controller target of site's bridges: the
// site's own, else Infra.Controller; "" when unmanaged ("none").
func (inf *Infra) ControllerTarget(site string) string {
	t := inf.Controller
	if s := inf.Site(site); s != nil && s.ControllerTarget != "" {
		t = s.ControllerTarget
	}
	if t == ControllerNone {
		return ""
	}
	return t
}

// TunnelSites returns the sites as package tunnels sees them: gateway
// address PublicIP (or UnderlayIP) and tunnel endpoint UnderlayIP.
func (inf *Infra) TunnelSites() []tunnels.Site {
	out := make([]tunnels.Site, 0, len(inf.Sites))
	for _, s := range inf.Sites {
		ts := tunnels.Site{Name: s.Name}
		ts.Endpoint, _ = netip.ParseAddr(s.UnderlayIP)
		ts.Gateway = ts.Endpoint
		if s.PublicIP != "" {
			ts.Gateway, _ = netip.ParseAddr(s.PublicIP)
		}
		out = append(out, ts)
	}
	return out
}

// Encap returns the tunnel encapsulation.
func (inf *Infra) Encap() tunnels.Encap {
	return tunnels.Encap{Type: tunnels.Type(inf.TunnelType), Encrypted: inf.WireGuard}
}

// TunnelCosts returns the cost of every site pair (every pair is possible),
// taking for each pair the first of (see CostSource):
//  1. a configured costs[] entry (source "" or "configured"; the last one
//     listed for the pair),
//  2. a measured costs[] entry (source "measured"; the last one listed),
//  3. the WAN's round-trip time, 2 × the one-way delay of the pair (or of
//     the WAN's default), when WAN is given and that delay is > 0,
//  4. 1.
func (inf *Infra) TunnelCosts() tunnels.Costs {
	c := tunnels.Costs{}
	for i, a := range inf.Sites {
		for _, b := range inf.Sites[i+1:] {
			v, _ := inf.cost(a.Name, b.Name)
			c.Set(a.Name, b.Name, v)
		}
	}
	return c
}

// CostSource returns which source TunnelCosts takes the cost of {a, b}
// from: CostConfigured, CostMeasured, CostWAN or CostDefault.
func (inf *Infra) CostSource(a, b string) string {
	_, src := inf.cost(a, b)
	return src
}

// cost returns the cost of {a, b} and its source (see TunnelCosts).
func (inf *Infra) cost(a, b string) (float64, string) {
	pair := tunnels.MakePair(a, b)
	var measured *Cost
	for i := len(inf.Costs) - 1; i >= 0; i-- {
		x := &inf.Costs[i]
		if tunnels.MakePair(x.A, x.B) != pair {
			continue
		}
		if x.Source == CostMeasured {
			if measured == nil {
				measured = x
			}
			continue
		}
		return x.RTTMS, CostConfigured
	}
	if measured != nil {
		return measured.RTTMS, CostMeasured
	}
	if inf.WAN != nil {
		d := inf.WAN.DelayMS
		for _, p := range inf.WAN.Pairs {
			if tunnels.MakePair(p.A, p.B) == pair {
				d = p.DelayMS
			}
		}
		if d > 0 {
			return 2 * d, CostWAN
		}
	}
	return 1, CostDefault
}

// Topology returns the infrastructure as tenant topologies are validated
// against it (topology.Validate): every site with its VM names, sorted.
func (inf *Infra) Topology() topology.Infra {
	clouds := make(map[string][]string, len(inf.Sites))
	for _, s := range inf.Sites {
		vms := []string{}
		for _, sw := range inf.VMs(s.Name) {
			vms = append(vms, sw.VM)
		}
		slices.Sort(vms)
		clouds[s.Name] = vms
	}
	return topology.Infra{Clouds: clouds}
}

// Clone returns a deep copy of inf.
func (inf *Infra) Clone() *Infra {
	out := *inf
	out.OVSDBTLS = cloneTLS(inf.OVSDBTLS)
	out.Sites = make([]Site, len(inf.Sites))
	for i, s := range inf.Sites {
		s.VMs = slices.Clone(s.VMs)
		s.OVSDBTLS = cloneTLS(s.OVSDBTLS)
		out.Sites[i] = s
	}
	out.Switches = make([]Switch, len(inf.Switches))
	for i, sw := range inf.Switches {
		sw.PatchPorts = slices.Clone(sw.PatchPorts)
		out.Switches[i] = sw
	}
	out.Costs = slices.Clone(inf.Costs)
	if inf.WAN != nil {
		w := *inf.WAN
		w.Pairs = slices.Clone(w.Pairs)
		out.WAN = &w
	}
	return &out
}

// cloneTLS copies f (nil stays nil).
func cloneTLS(f *ovsdb.TLSFiles) *ovsdb.TLSFiles {
	if f == nil {
		return nil
	}
	c := *f
	return &c
}
