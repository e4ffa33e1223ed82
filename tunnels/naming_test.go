package tunnels

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

func TestPortNameShortAndHashed(t *testing.T) {
	cases := map[string]string{
		"s1":          "tun-s1",
		"aws-eu-1":    "tun-aws-eu-1",
		"abcdefghijk": "tun-abcdefghijk", // 11 bytes: exactly 15
	}
	for peer, want := range cases {
		if got := PortName(peer); got != want {
			t.Errorf("PortName(%q) = %q, want %q", peer, got, want)
		}
	}
	for _, peer := range []string{"abcdefghijkl", "a.b", "gcp.us-central1-a", strings.Repeat("z", 63)} {
		got := PortName(peer)
		if len(got) != MaxPortName || !strings.HasPrefix(got, PortPrefix) || strings.Count(got, ".") != 1 {
			t.Errorf("PortName(%q) = %q, want a 15-byte hashed name with one '.'", peer, got)
		}
		if got != PortName(peer) {
			t.Errorf("PortName(%q) not deterministic", peer)
		}
	}
	if got := PortName("a.b"); !strings.HasPrefix(got, "tun-a_b.") {
		t.Errorf("PortName(a.b) = %q, want prefix tun-a_b.", got)
	}
}

func TestPortNameLimitsAndUniqueness(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
	seen := map[string]string{}
	var peers []string
	for len(peers) < 20000 {
		n := 1 + rng.Intn(MaxSiteNameLen)
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		peer := string(b)
		if ValidateSiteName(peer) != nil {
			continue
		}
		if _, dup := seen[peer]; dup {
			continue
		}
		seen[peer] = ""
		peers = append(peers, peer)
	}
	// Also many names sharing a long prefix, the worst case for truncation.
	for i := 0; i < 5000; i++ {
		peers = append(peers, fmt.Sprintf("cloud-provider-region-%d", i))
	}
	owner := map[string]string{}
	for _, p := range peers {
		n := PortName(p)
		if len(n) > MaxPortName {
			t.Fatalf("PortName(%q) = %q is %d bytes", p, n, len(n))
		}
		for i := 0; i < len(n); i++ {
			if !nameByte(n[i]) {
				t.Fatalf("PortName(%q) = %q has byte %q", p, n, n[i])
			}
		}
		if o, dup := owner[n]; dup && o != p {
			t.Fatalf("PortName collision: %q and %q -> %q", o, p, n)
		}
		owner[n] = p
	}
	if _, err := PortNames(peers); err != nil {
		t.Fatal(err)
	}
}

func TestAssignOFPorts(t *testing.T) {
	// Find two peers with the same preferred number.
	pref := map[int]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		p := fmt.Sprintf("p%d", i)
		n := PreferredOFPort(p)
		if n < TunnelOFPortMin || n > TunnelOFPortMax {
			t.Fatalf("PreferredOFPort(%q) = %d out of range", p, n)
		}
		if q, ok := pref[n]; ok {
			a, b = min(p, q), max(p, q)
		}
		pref[n] = p
	}
	got, err := AssignOFPorts([]string{b, a}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := PreferredOFPort(a)
	next := want + 1
	if next > TunnelOFPortMax {
		next = TunnelOFPortMin
	}
	if got[a] != want || got[b] != next {
		t.Fatalf("collision %q/%q: got %v, want %q=%d %q=%d", a, b, got, a, want, b, next)
	}
	// b already exists on the preferred number: it keeps it, a probes.
	got, err = AssignOFPorts([]string{a, b}, map[string]int{b: want}, nil)
	if err != nil || got[b] != want || got[a] != next {
		t.Fatalf("stability: got %v err %v, want %q kept on %d", got, err, b, want)
	}
	// A number taken by an unmanaged port is never handed out, and an out
	// of range current number is replaced.
	got, err = AssignOFPorts([]string{a}, map[string]int{a: 7}, map[int]bool{want: true})
	if err != nil || got[a] != next {
		t.Fatalf("taken: got %v err %v, want %d", got, err, next)
	}
	// Many peers: all distinct and in range.
	var peers []string
	for i := 0; i < 3000; i++ {
		peers = append(peers, fmt.Sprintf("site-%d", i))
	}
	got, err = AssignOFPorts(peers, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	for _, n := range got {
		if used[n] || n < TunnelOFPortMin || n > TunnelOFPortMax {
			t.Fatalf("number %d duplicated or out of range", n)
		}
		used[n] = true
	}
	// Exhaustion is an error, not a hang.
	all := map[int]bool{}
	for n := TunnelOFPortMin; n <= TunnelOFPortMax; n++ {
		all[n] = true
	}
	if _, err := AssignOFPorts([]string{"x"}, nil, all); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("exhausted range: err = %v", err)
	}
}
