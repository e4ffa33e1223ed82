package pipeline

import (
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/tunnels"
)

// meshModel is a model of the named sites (no bridges: nextHops reads the
// site names and Tree only) joined by the given tunnels.
func meshModel(mesh bool, sites []string, ts ...tunnels.Tunnel) *Model {
	m := &Model{Mesh: mesh, Tree: tunnels.Plan{Sites: sites, Tunnels: ts}}
	for _, s := range sites {
		m.Sites = append(m.Sites, Site{Name: s})
	}
	return m
}

// TestNextHopsMesh: a full mesh is refused as a tree, and with Mesh every
// site reaches every other over the direct tunnel.
func TestNextHopsMesh(t *testing.T) {
	sites := []string{"a", "b", "c", "d"}
	var ts []tunnels.Tunnel
	for i := range sites {
		for j := i + 1; j < len(sites); j++ {
			ts = append(ts, tunnels.Tunnel{A: sites[i], B: sites[j]})
		}
	}
	if _, err := nextHops(meshModel(false, sites, ts...)); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("full mesh as a tree: %v, want a cycle error", err)
	}
	nh, err := nextHops(meshModel(true, sites, ts...))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sites {
		for _, d := range sites {
			if s == d {
				if _, ok := nh[s][d]; ok {
					t.Errorf("%s has a next hop to itself", s)
				}
				continue
			}
			if nh[s][d] != d {
				t.Errorf("next hop %s -> %s = %q, want the direct tunnel", s, d, nh[s][d])
			}
		}
	}
}

// TestNextHopsRing: on a cycle that is not a full mesh, Mesh routes over
// a path with the fewest tunnels (ties to the lexically smallest
// neighbour), so every hop gets closer to the destination.
func TestNextHopsRing(t *testing.T) {
	sites := []string{"a", "b", "c", "d"}
	ring := []tunnels.Tunnel{{A: "a", B: "b"}, {A: "b", B: "c"}, {A: "c", B: "d"}, {A: "a", B: "d"}}
	nh, err := nextHops(meshModel(true, sites, ring...))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ s, d, want string }{
		{"a", "b", "b"}, {"a", "d", "d"}, {"a", "c", "b"}, {"b", "d", "a"}, {"c", "a", "b"}, {"d", "b", "a"},
	} {
		if got := nh[c.s][c.d]; got != c.want {
			t.Errorf("next hop %s -> %s = %q, want %q", c.s, c.d, got, c.want)
		}
	}
}
