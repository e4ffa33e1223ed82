package topology

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Validate checks the meaning of a topology against the infrastructure and
// returns every problem at once as a *ValidationError (nil if there is none),
// paths rooted at "$". It checks names (syntax, uniqueness), that links and
// hosts name existing virtual switches, port ranges, that no switch port is
// used twice, self-links and duplicate links, host MACs (syntax, unicast, not
// all-zero, unique in the tenant), host IPs (address/prefix syntax, no
// loopback/multicast/unspecified address, unique per VLAN in the tenant),
// VLAN range, clouds and VMs (against infra, unless infra.Clouds is nil),
// virtual DPID collisions and the size limits. The rules are listed in
// docs/topology.md. Validate does not modify t.
func Validate(t *Topology, infra Infra) error {
	var errs errList
	validate(t, "$", infra, &errs)
	return errs.err()
}

// Load parses a document (one topology or {"tenants": [...]}, see
// ParseDocument) and validates every topology in it against infra, also
// checking that tenant names are unique in the document. All problems —
// syntax, shape and meaning — come back in one *ValidationError with paths
// rooted at the document; a semantic error at or below a path that already
// has a shape error is left out, as it would only repeat it. This is the
// entry point for the REST API and the CLI.
func Load(data []byte, infra Infra) ([]*Topology, error) {
	ts, roots, shape := parseDocument(data)
	var sem errList
	tenants := map[string]string{}
	for i, t := range ts {
		validate(t, roots[i], infra, &sem)
		if t.Tenant == "" {
			continue
		}
		if first, dup := tenants[t.Tenant]; dup {
			sem.add(roots[i]+".tenant", "duplicate tenant %q (also %s)", t.Tenant, first)
		} else {
			tenants[t.Tenant] = roots[i] + ".tenant"
		}
	}
	all := append(errList(nil), shape...)
	shapePaths := make(map[string]bool, len(shape))
	for _, s := range shape {
		shapePaths[s.Path] = true
	}
	for _, e := range sem {
		if !coveredBy(e.Path, shapePaths) {
			all = append(all, e)
		}
	}
	if err := all.err(); err != nil {
		return nil, err
	}
	return ts, nil
}

// coveredBy reports whether path, or a prefix of it that ends before a '.'
// or '[' (an enclosing object or array), is in paths: a semantic error under
// a value that already has a shape error is not reported twice. It costs
// O(len(path)) map lookups, so Load stays linear in the number of errors.
func coveredBy(path string, paths map[string]bool) bool {
	if paths[path] {
		return true
	}
	for i := 1; i < len(path); i++ {
		if (path[i] == '.' || path[i] == '[') && paths[path[:i]] {
			return true
		}
	}
	return false
}

// isTenantName reports whether s is an RFC 1123 DNS label in lower case:
// [a-z0-9-], 1–63 characters, no leading or trailing '-'.
func isTenantName(s string) bool {
	if len(s) < 1 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isIdent reports whether s is an identifier as used for switch, host, app,
// cloud and VM names: 1–63 characters of [A-Za-z0-9_.-], starting with a
// letter or digit. No '/', which separates tenant and host in an iface-id.
func isIdent(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

const identRule = "1-63 characters of [A-Za-z0-9_.-], starting with a letter or digit"

type portKey struct {
	sw   string
	port uint32
}

func validate(t *Topology, root string, infra Infra, errs *errList) {
	if t == nil {
		errs.add(root, "no topology")
		return
	}
	// Tenant and apps.
	switch {
	case t.Tenant == "":
		errs.add(root+".tenant", "required")
	case !isTenantName(t.Tenant):
		errs.add(root+".tenant", "invalid tenant name %q: want a DNS label (1-63 characters of [a-z0-9-], not starting or ending with '-')", t.Tenant)
	}
	if len(t.Apps) > MaxApps {
		errs.add(root+".apps", "too many apps (%d > %d)", len(t.Apps), MaxApps)
	}
	apps := map[string]int{}
	for i, a := range t.Apps {
		p := fmt.Sprintf("%s.apps[%d]", root, i)
		if !isIdent(a) {
			errs.add(p, "invalid app name %q: want %s", a, identRule)
		} else if first, dup := apps[a]; dup {
			errs.add(p, "duplicate app %q (also %s.apps[%d])", a, root, first)
		} else if infra.Apps != nil && !slices.Contains(infra.Apps, a) {
			errs.add(p, "unknown app %q (known: %s)", a, strings.Join(infra.Apps, ", "))
		} else {
			apps[a] = i
		}
	}

	// Switches.
	if len(t.Switches) == 0 {
		errs.add(root+".switches", "at least one virtual switch is required")
	}
	if len(t.Switches) > MaxSwitches {
		errs.add(root+".switches", "too many virtual switches (%d > %d)", len(t.Switches), MaxSwitches)
	}
	switches := map[string]string{} // name -> path of its name
	dpids := map[DPID]string{}
	for i, s := range t.Switches {
		p := fmt.Sprintf("%s.switches[%d]", root, i)
		switch {
		case s.Name == "":
			errs.add(p+".name", "required")
		case !isIdent(s.Name):
			errs.add(p+".name", "invalid virtual switch name %q: want %s", s.Name, identRule)
		default:
			if first, dup := switches[s.Name]; dup {
				errs.add(p+".name", "duplicate virtual switch name %q (also %s)", s.Name, first)
			} else {
				switches[s.Name] = p + ".name"
			}
		}
		d := s.VirtualDPID()
		dp := p + ".dpid"
		if s.DPID == 0 {
			dp = p + ".name"
			if switches[s.Name] != p+".name" {
				continue // no name, or a duplicate name (already reported)
			}
		}
		if first, dup := dpids[d]; dup {
			errs.add(dp, "virtual DPID %v is also the DPID of %s", d, first)
		} else {
			dpids[d] = p
		}
	}

	used := map[portKey]string{} // switch port -> path of its first user
	usePort := func(sw string, port uint32, user, portPath string) {
		if _, ok := switches[sw]; !ok || port < MinPort || port > MaxPort {
			return // reported by checkAttach
		}
		k := portKey{sw, port}
		if first, dup := used[k]; dup {
			errs.add(portPath, "port %d of switch %q already used by %s", port, sw, first)
			return
		}
		used[k] = user
	}
	checkAttach := func(sw string, port uint32, path string) {
		switch {
		case sw == "":
			errs.add(path+".switch", "required")
		case switches[sw] == "":
			errs.add(path+".switch", "unknown virtual switch %q", sw)
		}
		if port < MinPort || port > MaxPort {
			errs.add(path+".port", "port %d out of range: must be %d..%d (OFPP_MAX)", port, MinPort, MaxPort)
		}
	}

	// Links.
	if len(t.Links) > MaxLinks {
		errs.add(root+".links", "too many links (%d > %d)", len(t.Links), MaxLinks)
	}
	links := map[[2]portKey]string{}
	for i, l := range t.Links {
		p := fmt.Sprintf("%s.links[%d]", root, i)
		checkAttach(l.A.Switch, l.A.Port, p+".a")
		checkAttach(l.B.Switch, l.B.Port, p+".b")
		if l.A.Switch != "" && l.A.Switch == l.B.Switch {
			errs.add(p, "self-link: both ends are on virtual switch %q", l.A.Switch)
			continue
		}
		a, b := portKey{l.A.Switch, l.A.Port}, portKey{l.B.Switch, l.B.Port}
		if b.sw < a.sw || b.sw == a.sw && b.port < a.port {
			a, b = b, a
		}
		if first, dup := links[[2]portKey{a, b}]; dup {
			errs.add(p, "duplicate link: same endpoints as %s", first)
			continue
		}
		links[[2]portKey{a, b}] = p
		usePort(l.A.Switch, l.A.Port, p+".a", p+".a.port")
		usePort(l.B.Switch, l.B.Port, p+".b", p+".b.port")
	}

	// Hosts.
	if len(t.Hosts) == 0 {
		errs.add(root+".hosts", "at least one host is required")
	}
	if len(t.Hosts) > MaxHosts {
		errs.add(root+".hosts", "too many hosts (%d > %d)", len(t.Hosts), MaxHosts)
	}
	names := map[string]string{}
	macs := map[string]string{}
	type ipKey struct {
		vlan uint16
		ip   netip.Addr
	}
	ips := map[ipKey]string{}
	for i, h := range t.Hosts {
		p := fmt.Sprintf("%s.hosts[%d]", root, i)
		switch {
		case h.Name == "":
			errs.add(p+".name", "required")
		case !isIdent(h.Name):
			errs.add(p+".name", "invalid host name %q: want %s", h.Name, identRule)
		default:
			if first, dup := names[h.Name]; dup {
				errs.add(p+".name", "duplicate host name %q (also %s)", h.Name, first)
			} else {
				names[h.Name] = p + ".name"
			}
		}

		if h.MAC == "" {
			errs.add(p+".mac", "required")
		} else if m, err := h.ParsedMAC(); err != nil {
			errs.add(p+".mac", "%v", err)
		} else if m.IsBroadcast() {
			errs.add(p+".mac", "MAC %v is the broadcast address; a host needs a unicast MAC", m)
		} else if m.IsMulticast() {
			errs.add(p+".mac", "MAC %v is a multicast address (I/G bit set); a host needs a unicast MAC", m)
		} else if m.IsZero() {
			errs.add(p+".mac", "MAC 00:00:00:00:00:00 is not a valid host address")
		} else if first, dup := macs[m.String()]; dup {
			errs.add(p+".mac", "duplicate MAC %v (also %s)", m, first)
		} else {
			macs[m.String()] = p + ".mac"
		}

		if h.IP == "" {
			errs.add(p+".ip", "required")
		} else if pfx, err := h.ParsedIP(); err != nil {
			errs.add(p+".ip", "invalid address %q: want an IP address with prefix length, e.g. 10.0.0.1/24", h.IP)
		} else if a := pfx.Addr(); a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
			errs.add(p+".ip", "address %v is unspecified, loopback or multicast; a host needs a unicast address", a)
		} else {
			k := ipKey{h.VLAN, a.Unmap()}
			if first, dup := ips[k]; dup {
				where := "untagged"
				if h.VLAN != 0 {
					where = fmt.Sprintf("in VLAN %d", h.VLAN)
				}
				errs.add(p+".ip", "duplicate IP address %v %s (also %s)", a, where, first)
			} else {
				ips[k] = p + ".ip"
			}
		}

		if h.VLAN > 4094 {
			errs.add(p+".vlan", "VLAN %d out of range: must be 1..4094 (0 or absent: untagged)", h.VLAN)
		}
		checkAttach(h.Switch, h.Port, p)
		usePort(h.Switch, h.Port, p, p+".port")

		switch {
		case h.Cloud == "":
			errs.add(p+".cloud", "required")
		case !isIdent(h.Cloud):
			errs.add(p+".cloud", "invalid cloud name %q: want %s", h.Cloud, identRule)
		case infra.Clouds != nil:
			vms, ok := infra.Clouds[h.Cloud]
			if !ok {
				errs.add(p+".cloud", "unknown cloud %q (known: %s)", h.Cloud, knownClouds(infra))
			} else if h.VM != "" && isIdent(h.VM) && !slices.Contains(vms, h.VM) {
				errs.add(p+".vm", "unknown VM %q in cloud %q", h.VM, h.Cloud)
			}
		}
		if h.VM != "" && !isIdent(h.VM) {
			errs.add(p+".vm", "invalid VM name %q: want %s", h.VM, identRule)
		}
	}
}

func knownClouds(infra Infra) string {
	names := make([]string, 0, len(infra.Clouds))
	for c := range infra.Clouds {
		names = append(names, c)
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
