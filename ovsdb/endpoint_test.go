package ovsdb

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	good := []struct{ in, network, addr string }{
		{"unix:/var/run/openvswitch/db.sock", "unix", "/var/run/openvswitch/db.sock"},
		{"unix:/tmp/a b%c?d#e", "unix", "/tmp/a b%c?d#e"},
		{"tcp:127.0.0.1:6640", "tcp", "127.0.0.1:6640"},
		{"tcp:[::1]:6640", "tcp", "[::1]:6640"},
		{"tcp:ovsdb.example:6640", "tcp", "ovsdb.example:6640"},
		{"ssl:192.0.2.7:6640", "ssl", "192.0.2.7:6640"},
		{"ssl:[2001:db8::7]:6640", "ssl", "[2001:db8::7]:6640"},
		{"ssl:ovsdb.cloud-a.example:6640", "ssl", "ovsdb.cloud-a.example:6640"},
	}
	for _, g := range good {
		ep, err := ParseEndpoint(g.in)
		if err != nil {
			t.Errorf("ParseEndpoint(%q): %v", g.in, err)
			continue
		}
		if ep.Network != g.network || ep.Address != g.addr {
			t.Errorf("ParseEndpoint(%q) = %+v", g.in, ep)
		}
		if ep.String() != g.in {
			t.Errorf("String() = %q, want %q", ep.String(), g.in)
		}
	}
	bad := []struct{ in, want string }{
		{"", "want unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT"},
		{"/var/run/db.sock", "want unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT"},
		{"unix:", "empty socket path"},
		{"unix:db.sock", `socket path "db.sock" is not absolute`},
		{"unix:/" + strings.Repeat("x", 107), "longer than 107"},
		{"tcp:127.0.0.1", "missing port"},
		{"tcp::6640", "empty host"},
		{"tcp:127.0.0.1:0", `port "0": want 1-65535`},
		{"tcp:127.0.0.1:65536", `port "65536"`},
		{"tcp:127.0.0.1:http", `port "http"`},
		{"ssl:127.0.0.1", "missing port"},
		{"ssl::6640", "empty host"},
		{"ssl:127.0.0.1:0", `port "0": want 1-65535`},
		{"ssl:/tmp/x.sock", "ssl"},
		{"ssl:[fe80::1%eth0]:6640", `host "fe80::1%eth0"`},
		{"punix:/tmp/x", `unknown method "punix"`},
		{"pssl:6640", `unknown method "pssl", want unix, tcp or ssl`},
		{"tcp:[#]:1", `host "#"`},
		{"tcp:[fe80::1%eth0]:6640", `host "fe80::1%eth0"`},
	}
	for _, b := range bad {
		_, err := ParseEndpoint(b.in)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ParseEndpoint(%q) = %v, want error containing %q", b.in, err, b.want)
		}
	}
}

// libovsdb parses endpoints with net/url and dials u.Path (unix) or
// u.Opaque (tcp): the address must come back unchanged.
func TestLibovsdbAddressRoundTrip(t *testing.T) {
	for _, in := range []string{"unix:/tmp/plain.sock", "unix:/tmp/a b%20c?d#e;f", "tcp:10.0.0.1:6640", "tcp:[fe80::1]:6640",
		"ssl:10.0.0.1:6640", "ssl:[2001:db8::1]:6640", "ssl:ovsdb.example:6640"} {
		checkLibovsdbAddress(t, in)
	}
}

func checkLibovsdbAddress(t *testing.T, in string) {
	t.Helper()
	ep, err := ParseEndpoint(in)
	if err != nil {
		return
	}
	u, err := url.Parse(ep.libovsdbAddress())
	if err != nil {
		t.Fatalf("%q: url.Parse(%q): %v", in, ep.libovsdbAddress(), err)
	}
	if u.Scheme != ep.Network {
		t.Fatalf("%q: scheme %q", in, u.Scheme)
	}
	got := u.Opaque
	if ep.Network == "unix" {
		got = u.Path
	}
	if got != ep.Address {
		t.Fatalf("%q: libovsdb would dial %q, want %q", in, got, ep.Address)
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"unix:/tmp/x.sock", "tcp:1.2.3.4:6640", "tcp:[::1]:1", "unix:/a%2Fb", "tcp:h:1:2", "ssl:h.example:6640"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := ParseEndpoint(s)
		if err != nil {
			return
		}
		again, err := ParseEndpoint(ep.String())
		if err != nil || again != ep {
			t.Fatalf("%q: reparse of %q = %+v, %v", s, ep.String(), again, err)
		}
		checkLibovsdbAddress(t, s)
	})
}
