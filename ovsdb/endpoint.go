package ovsdb

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// maxUnixPath is the longest path a unix socket address holds (sun_path is
// 108 bytes including the terminating NUL on Linux).
const maxUnixPath = 107

// Endpoint is a parsed OVSDB connection method in the syntax of ovsdb(7)
// "Active database connection methods" (the same as ovs-vsctl --db):
// "unix:FILE", "tcp:HOST:PORT" or "ssl:HOST:PORT" (IPv6 hosts in brackets,
// "tcp:[::1]:6640"). An ssl endpoint is TCP with TLS; its key, certificate
// and CA come from WithTLS (TLSFiles).
type Endpoint struct {
	Network string // "unix", "tcp" or "ssl"
	Address string // socket path (unix) or HOST:PORT (tcp, ssl)
}

// ParseEndpoint parses "unix:/abs/path", "tcp:HOST:PORT" or
// "ssl:HOST:PORT". A unix path must be absolute (libovsdb would silently
// replace a relative one by the system socket) and at most 107 bytes; a
// port must be 1-65535. Errors name the endpoint and the part at fault.
func ParseEndpoint(s string) (Endpoint, error) {
	network, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: want unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT", s)
	}
	switch network {
	case "unix":
		switch {
		case rest == "":
			return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: empty socket path", s)
		case !strings.HasPrefix(rest, "/"):
			return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: socket path %q is not absolute", s, rest)
		case len(rest) > maxUnixPath:
			return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: socket path is %d bytes, longer than %d", s, len(rest), maxUnixPath)
		case strings.ContainsRune(rest, 0):
			return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: socket path contains NUL", s)
		}
		return Endpoint{Network: "unix", Address: rest}, nil
	case "tcp", "ssl":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: %w", s, err)
		}
		if host == "" {
			return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: empty host", s)
		}
		if !validHost(host) {
			return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: host %q: want an IP address or a DNS name", s, host)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: port %q: want 1-65535", s, port)
		}
		return Endpoint{Network: network, Address: net.JoinHostPort(host, port)}, nil
	default:
		return Endpoint{}, fmt.Errorf("ovsdb: endpoint %q: unknown method %q, want unix, tcp or ssl", s, network)
	}
}

// validHost accepts IP addresses (no zone) and DNS names made of letters,
// digits, '-' and '.'.
func validHost(h string) bool {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Zone() == ""
	}
	if strings.Contains(h, "..") || strings.HasPrefix(h, ".") || strings.HasPrefix(h, "-") || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// String returns the endpoint in ovsdb(7) syntax.
func (e Endpoint) String() string { return e.Network + ":" + e.Address }

// libovsdbAddress returns the endpoint as libovsdb parses it (net/url): a
// unix path is escaped so that url.Parse gives it back unchanged.
func (e Endpoint) libovsdbAddress() string {
	if e.Network == "unix" {
		return (&url.URL{Scheme: "unix", Path: e.Address}).String()
	}
	return e.Network + ":" + e.Address
}

// IsSSL reports whether the endpoint is "ssl:HOST:PORT" (needs WithTLS).
func (e Endpoint) IsSSL() bool { return e.Network == "ssl" }
