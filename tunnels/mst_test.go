package tunnels

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMSTKnownGraph(t *testing.T) {
	// Classic 5-node example; the unique MST is a-b(1) b-c(2) c-e(3) d-e(4).
	sites := sitesNamed("a", "b", "c", "d", "e")
	costs := Costs{}
	costs.Set("a", "b", 1)
	costs.Set("b", "c", 2)
	costs.Set("c", "e", 3)
	costs.Set("d", "e", 4)
	costs.Set("a", "c", 5)
	costs.Set("b", "d", 6)
	costs.Set("a", "e", 7)
	costs.Set("c", "d", 8)
	p, err := MST(sites, costs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Tunnel{{"a", "b", 1}, {"b", "c", 2}, {"c", "e", 3}, {"d", "e", 4}}
	if !reflect.DeepEqual(p.Tunnels, want) {
		t.Fatalf("MST = %v, want %v", p.Tunnels, want)
	}
	if p.Total() != 10 || p.Len() != 4 {
		t.Fatalf("total %v len %d, want 10 and 4", p.Total(), p.Len())
	}
	if !p.Has("e", "c") || p.Has("a", "c") {
		t.Fatalf("Has: e~c should be in, a~c out: %v", p)
	}
	if got := p.Peers("c"); !reflect.DeepEqual(got, []string{"b", "e"}) {
		t.Fatalf("Peers(c) = %v", got)
	}
	if err := p.IsSpanningTree(); err != nil {
		t.Fatal(err)
	}
}

func TestMSTTieBreakByNames(t *testing.T) {
	// A 4-cycle with equal costs: edges in (A,B) order are a~b, a~d, b~c,
	// c~d, so Kruskal keeps the first three and drops c~d.
	sites := sitesNamed("d", "c", "b", "a") // input order must not matter
	costs := Costs{}
	costs.Set("a", "b", 1)
	costs.Set("b", "c", 1)
	costs.Set("c", "d", 1)
	costs.Set("d", "a", 1)
	p, err := MST(sites, costs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Tunnel{{"a", "b", 1}, {"a", "d", 1}, {"b", "c", 1}}
	if !reflect.DeepEqual(p.Tunnels, want) {
		t.Fatalf("MST = %v, want %v", p.Tunnels, want)
	}
	if !reflect.DeepEqual(p.Sites, []string{"a", "b", "c", "d"}) {
		t.Fatalf("Sites = %v, want sorted", p.Sites)
	}
}

func TestMSTDeterministicUnderInputOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for k := 0; k < 50; k++ {
		sites, costs := randomGraph(rng, 8, 20, true)
		p1, err := MST(sites, costs)
		if err != nil {
			t.Fatal(err)
		}
		// Reverse sites, and store the costs with keys in reversed order.
		rev := slices.Clone(sites)
		slices.Reverse(rev)
		flipped := Costs{}
		for p, c := range costs {
			flipped[Pair{A: p.B, B: p.A}] = c
		}
		p2, err := MST(rev, flipped)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("MST depends on input order:\n%v\n%v", p1, p2)
		}
	}
}

func TestMSTDisconnected(t *testing.T) {
	sites := sitesNamed("a", "b", "c", "d", "e")
	costs := Costs{}
	costs.Set("a", "b", 1)
	costs.Set("b", "c", 1)
	costs.Set("d", "e", 1)
	_, err := MST(sites, costs)
	var de *DisconnectedError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *DisconnectedError", err)
	}
	if !reflect.DeepEqual(de.Components, [][]string{{"a", "b", "c"}, {"d", "e"}}) {
		t.Fatalf("components = %v", de.Components)
	}
	if !reflect.DeepEqual(de.Unreachable(), []string{"d", "e"}) {
		t.Fatalf("unreachable = %v", de.Unreachable())
	}
	if !strings.Contains(err.Error(), "[d e] unreachable from [a b c]") {
		t.Fatalf("message does not name the sites: %v", err)
	}
	// An isolated site with no pairs at all.
	_, err = MST(sitesNamed("a", "b", "z"), Costs{{"a", "b"}: 1})
	if !errors.As(err, &de) || !reflect.DeepEqual(de.Unreachable(), []string{"z"}) {
		t.Fatalf("err = %v, want z unreachable", err)
	}
	if _, err := FullMesh(sites, costs); !errors.As(err, &de) {
		t.Fatalf("FullMesh err = %v, want *DisconnectedError", err)
	}
}

func TestMSTTrivialAndInvalidInput(t *testing.T) {
	for _, n := range []int{0, 1} {
		p, err := MST(sitesNamed(siteNames(n)...), nil)
		if err != nil || p.Len() != 0 || len(p.Sites) != n {
			t.Fatalf("%d sites: plan %v err %v", n, p, err)
		}
	}
	bad := []struct {
		name  string
		sites []Site
		costs Costs
		want  string
	}{
		{"empty name", sitesNamed("a", ""), nil, "sites[1]"},
		{"bad byte", sitesNamed("a", "b/c"), nil, `byte '/'`},
		{"long name", sitesNamed(strings.Repeat("x", 64)), nil, "longer than 63"},
		{"duplicate", sitesNamed("a", "a"), nil, `duplicate site name "a"`},
		{"self pair", sitesNamed("a", "b"), Costs{{"a", "a"}: 1}, "itself"},
		{"negative", sitesNamed("a", "b"), Costs{{"a", "b"}: -1}, "finite number >= 0"},
		{"NaN", sitesNamed("a", "b"), Costs{{"a", "b"}: math.NaN()}, "finite"},
		{"Inf", sitesNamed("a", "b"), Costs{{"a", "b"}: math.Inf(1)}, "finite"},
		{"conflict", sitesNamed("a", "b"), Costs{{"a", "b"}: 1, {"b", "a"}: 2}, "both orders"},
	}
	for _, tc := range bad {
		_, err := MST(tc.sites, tc.costs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	// Same cost in both orders is fine; pairs naming unknown sites are ignored.
	p, err := MST(sitesNamed("a", "b"), Costs{{"a", "b"}: 3, {"b", "a"}: 3, {"a", "gone"}: 1})
	if err != nil || !reflect.DeepEqual(p.Tunnels, []Tunnel{{"a", "b", 3}}) {
		t.Fatalf("plan %v err %v", p, err)
	}
}

func TestFullMeshCounts(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 9, 16} {
		names := siteNames(n)
		costs := Costs{}
		for i := range names {
			for j := i + 1; j < n; j++ {
				costs.Set(names[i], names[j], float64(i+j))
			}
		}
		p, err := FullMesh(sitesNamed(names...), costs)
		if err != nil {
			t.Fatal(err)
		}
		if p.Len() != n*(n-1)/2 {
			t.Fatalf("n=%d: full mesh has %d tunnels, want %d", n, p.Len(), n*(n-1)/2)
		}
		m, err := MST(sitesNamed(names...), costs)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && m.Len() != n-1 {
			t.Fatalf("n=%d: MST has %d tunnels, want %d", n, m.Len(), n-1)
		}
	}
}

// TestMSTProperty checks, on many random small graphs, that MST returns a
// spanning tree whose total equals the brute-force minimum over every
// spanning tree, and that it fails exactly when the graph is disconnected.
func TestMSTProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for k := 0; k < 400; k++ {
		n := 1 + rng.Intn(9)
		sites, costs := randomGraph(rng, n, 14, rng.Intn(5) != 0)
		best := math.Inf(1)
		count := 0
		spanningTrees(sites, costs, nil, func(tr []Tunnel) {
			count++
			best = min(best, totalOf(tr))
		})
		p, err := MST(sites, costs)
		if count == 0 {
			var de *DisconnectedError
			if !errors.As(err, &de) {
				t.Fatalf("graph %d: no spanning tree exists but MST err = %v (plan %v)", k, err, p)
			}
			continue
		}
		if err != nil {
			t.Fatalf("graph %d: %v", k, err)
		}
		if err := p.IsSpanningTree(); err != nil {
			t.Fatalf("graph %d: %v", k, err)
		}
		if p.Total() != best {
			t.Fatalf("graph %d: MST total %v, brute-force minimum %v (%v)", k, p.Total(), best, p)
		}
	}
}

func TestIsSpanningTreeRejects(t *testing.T) {
	p := Plan{Sites: []string{"a", "b", "c"}, Tunnels: []Tunnel{{"a", "b", 1}, {"a", "b", 1}}}
	if err := p.IsSpanningTree(); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("duplicate edge: %v", err)
	}
	p = Plan{Sites: []string{"a", "b"}, Tunnels: nil}
	if err := p.IsSpanningTree(); err == nil {
		t.Fatal("missing tunnel accepted")
	}
	p = Plan{Sites: []string{"a", "b"}, Tunnels: []Tunnel{{"a", "x", 1}}}
	if err := p.IsSpanningTree(); err == nil {
		t.Fatal("unknown site accepted")
	}
}

func TestCostsHelpers(t *testing.T) {
	c := Costs{}
	c.SetRTT("b", "a", 21500*time.Microsecond)
	if v, ok := c.Get("a", "b"); !ok || v != 21.5 {
		t.Fatalf("SetRTT/Get = %v %v, want 21.5 ms", v, ok)
	}
	c[Pair{A: "z", B: "y"}] = 3 // non-canonical key written directly
	if v, ok := c.Get("y", "z"); !ok || v != 3 {
		t.Fatalf("Get of a non-canonical key = %v %v", v, ok)
	}
	p := Plan{Tunnels: []Tunnel{{"c", "d", 1}, {"a", "b", 1}}} // unsorted
	if !p.Has("b", "a") || !p.Has("d", "c") || p.Has("a", "c") {
		t.Fatal("Has on an unsorted plan")
	}
}
