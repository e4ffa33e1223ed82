package tunnels

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"testing"
)

// line a-b-c-d with costs 1, plus expensive shortcuts.
func lineGraph() ([]Site, Costs) {
	costs := Costs{}
	costs.Set("a", "b", 1)
	costs.Set("b", "c", 1)
	costs.Set("c", "d", 1)
	costs.Set("a", "c", 5)
	costs.Set("b", "d", 3)
	costs.Set("a", "d", 9)
	return sitesNamed("a", "b", "c", "d"), costs
}

func TestReplanNoChange(t *testing.T) {
	sites, costs := lineGraph()
	cur, err := MST(sites, costs)
	if err != nil {
		t.Fatal(err)
	}
	next, d, err := Replan(cur, sites, costs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Empty() || !reflect.DeepEqual(next, cur) {
		t.Fatalf("replan of an MST changed it: %v diff %+v", next, d)
	}
}

func TestReplanSiteAddedLeaf(t *testing.T) {
	sites, costs := lineGraph()
	cur, _ := MST(sites, costs)
	costs.Set("e", "a", 4)
	costs.Set("e", "c", 2)
	costs.Set("e", "d", 7)
	next, d, err := Replan(cur, append(sites, sitesNamed("e")...), costs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, Diff{Add: []Tunnel{{"c", "e", 2}}}) {
		t.Fatalf("diff = %+v, want only c~e(2) added", d)
	}
	if err := next.IsSpanningTree(); err != nil {
		t.Fatal(err)
	}
}

func TestReplanSiteAddedInTheMiddle(t *testing.T) {
	// A new site x is cheap to everyone: the true MST is a star around x,
	// but Replan only adds x's cheapest edge; Optimize moves to the star.
	sites := sitesNamed("a", "b", "c")
	costs := Costs{}
	costs.Set("a", "b", 10)
	costs.Set("b", "c", 10)
	costs.Set("a", "c", 20)
	cur, _ := MST(sites, costs)
	costs.Set("x", "a", 1)
	costs.Set("x", "b", 2)
	costs.Set("x", "c", 3)
	all := append(sites, sitesNamed("x")...)
	next, d, err := Replan(cur, all, costs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, Diff{Add: []Tunnel{{"a", "x", 1}}}) || next.Total() != 21 {
		t.Fatalf("Replan: %v diff %+v", next, d)
	}
	opt, od, err := Optimize(cur, all, costs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opt.Total() != 6 || len(od.Add) != 3 || len(od.Remove) != 2 {
		t.Fatalf("Optimize: %v diff %+v, want the star a~x b~x c~x", opt, od)
	}
	// Optimize from the repaired plan also reaches the star.
	opt2, _, err := Optimize(next, all, costs, nil)
	if err != nil || !reflect.DeepEqual(opt2.Tunnels, opt.Tunnels) {
		t.Fatalf("Optimize(next) = %v, %v", opt2, err)
	}
}

func TestReplanSiteRemoved(t *testing.T) {
	// Star around hub h with leaves a, b, c; removing h must reconnect the
	// three leaves with the two cheapest leaf-leaf edges.
	sites := sitesNamed("h", "a", "b", "c")
	costs := Costs{}
	costs.Set("h", "a", 1)
	costs.Set("h", "b", 1)
	costs.Set("h", "c", 1)
	costs.Set("a", "b", 5)
	costs.Set("b", "c", 4)
	costs.Set("a", "c", 6)
	cur, _ := MST(sites, costs)
	next, d, err := Replan(cur, sitesNamed("a", "b", "c"), costs, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Diff{
		Add:    []Tunnel{{"a", "b", 5}, {"b", "c", 4}},
		Remove: []Tunnel{{"a", "h", 1}, {"b", "h", 1}, {"c", "h", 1}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("diff = %+v, want %+v", d, want)
	}
	if err := next.IsSpanningTree(); err != nil {
		t.Fatal(err)
	}
}

func TestReplanLinkDown(t *testing.T) {
	sites, costs := lineGraph()
	cur, _ := MST(sites, costs)
	down := map[Pair]bool{{"c", "b"}: true} // either key order
	next, d, err := Replan(cur, sites, costs, down)
	if err != nil {
		t.Fatal(err)
	}
	want := Diff{Add: []Tunnel{{"b", "d", 3}}, Remove: []Tunnel{{"b", "c", 1}}}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("diff = %+v, want %+v", d, want)
	}
	if next.Has("b", "c") {
		t.Fatal("down tunnel kept")
	}
	// The only link of a leaf goes down and no other pair exists: error
	// naming the leaf, nothing returned.
	costs2 := Costs{}
	costs2.Set("a", "b", 1)
	costs2.Set("b", "c", 1)
	cur2, _ := MST(sitesNamed("a", "b", "c"), costs2)
	_, _, err = Replan(cur2, sitesNamed("a", "b", "c"), costs2, map[Pair]bool{{"b", "c"}: true})
	var de *DisconnectedError
	if !errors.As(err, &de) || !reflect.DeepEqual(de.Unreachable(), []string{"c"}) {
		t.Fatalf("err = %v, want c unreachable", err)
	}
}

func TestReplanDropsCycleInCurrent(t *testing.T) {
	sites, costs := lineGraph()
	mesh, _ := FullMesh(sites, costs)
	next, d, err := Replan(mesh, sites, costs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.IsSpanningTree(); err != nil {
		t.Fatal(err)
	}
	if len(d.Add) != 0 || len(d.Remove) != 3 || next.Total() != 3 {
		t.Fatalf("from full mesh: %v diff %+v, want the cheap line and 3 removals", next, d)
	}
}

// checkMinimalChange asserts, by brute force over every spanning tree of
// the available graph, that next has the minimum number of changes from
// cur and, among trees with that many changes, the minimum cost.
func checkMinimalChange(t *testing.T, label string, cur, next Plan, d Diff, sites []Site, costs Costs, down map[Pair]bool) {
	t.Helper()
	if err := next.IsSpanningTree(); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if got := changes(next.Tunnels, cur); got != d.Len() {
		t.Fatalf("%s: diff has %d changes, plans differ by %d", label, d.Len(), got)
	}
	minCh := math.MaxInt
	bestCost := math.Inf(1)
	spanningTrees(sites, costs, down, func(tr []Tunnel) {
		c := changes(tr, cur)
		switch {
		case c < minCh:
			minCh, bestCost = c, totalOf(tr)
		case c == minCh:
			bestCost = min(bestCost, totalOf(tr))
		}
	})
	if d.Len() != minCh {
		t.Fatalf("%s: %d changes, brute-force minimum %d\ncur  %v\nnext %v", label, d.Len(), minCh, cur, next)
	}
	if next.Total() != bestCost {
		t.Fatalf("%s: cost %v, cheapest with %d changes is %v", label, next.Total(), minCh, bestCost)
	}
}

func TestReplanProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	checked := map[string]int{}
	for k := 0; k < 400; k++ {
		n := 2 + rng.Intn(7) // 2..8 sites before a possible addition
		sites, costs := randomGraph(rng, n, 12, true)
		cur, err := MST(sites, costs)
		if err != nil {
			t.Fatal(err)
		}
		scenario := []string{"add", "down", "remove", "mixed", "arbitrary"}[k%5]
		nextSites := sites
		var down map[Pair]bool
		switch scenario {
		case "add":
			nextSites = sitesNamed(siteNames(n + 1)...)
			newName := nextSites[n].Name
			deg := 1 + rng.Intn(3)
			for _, j := range rng.Perm(n)[:min(deg, n)] {
				costs.Set(newName, sites[j].Name, float64(1+rng.Intn(4)))
			}
		case "down":
			tun := cur.Tunnels[rng.Intn(len(cur.Tunnels))]
			down = map[Pair]bool{tun.Pair(): true}
		case "remove":
			drop := rng.Intn(n)
			nextSites = append(append([]Site{}, sites[:drop]...), sites[drop+1:]...)
		case "arbitrary":
			// current is any subset of the pairs, cycles and gaps included
			// (e.g. a full mesh being migrated to a tree).
			cur = Plan{Sites: cur.Sites}
			for p, c := range costs {
				if rng.Intn(2) == 0 {
					cur.Tunnels = append(cur.Tunnels, Tunnel{A: p.A, B: p.B, Cost: c})
				}
			}
			sortTunnels(cur.Tunnels)
		case "mixed":
			for p := range costs {
				if rng.Intn(4) == 0 {
					costs[p] = float64(1 + rng.Intn(4))
				}
			}
			down = map[Pair]bool{}
			for _, tun := range cur.Tunnels {
				if rng.Intn(3) == 0 {
					down[tun.Pair()] = true
				}
			}
		}
		next, d, err := Replan(cur, nextSites, costs, down)
		exists := false
		spanningTrees(nextSites, costs, down, func([]Tunnel) { exists = true })
		if !exists {
			var de *DisconnectedError
			if !errors.As(err, &de) {
				t.Fatalf("%s %d: no spanning tree but err = %v", scenario, k, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s %d: %v", scenario, k, err)
		}
		checkMinimalChange(t, scenario, cur, next, d, nextSites, costs, down)
		switch scenario {
		case "add":
			if len(d.Add) != 1 || len(d.Remove) != 0 {
				t.Fatalf("add %d: diff %+v, want exactly one tunnel added", k, d)
			}
		case "down":
			if len(d.Add) != 1 || len(d.Remove) != 1 {
				t.Fatalf("down %d: diff %+v, want one removed and one added", k, d)
			}
		}
		checked[scenario]++
	}
	for _, s := range []string{"add", "down", "remove", "mixed", "arbitrary"} {
		if checked[s] < 30 {
			t.Fatalf("scenario %s checked only %d times", s, checked[s])
		}
	}
}

// TestOptimizeProperty: Optimize returns a minimum spanning tree and,
// among minimum spanning trees, one with the fewest changes from current.
func TestOptimizeProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for k := 0; k < 300; k++ {
		n := 2 + rng.Intn(7)
		sites, costs := randomGraph(rng, n, 13, true)
		// A current plan that is a random (not minimum) spanning tree.
		var trees [][]Tunnel
		spanningTrees(sites, costs, nil, func(tr []Tunnel) { trees = append(trees, tr) })
		cur := Plan{Sites: siteNames(n), Tunnels: trees[rng.Intn(len(trees))]}
		for p := range costs {
			if rng.Intn(3) == 0 {
				costs[p] = float64(1 + rng.Intn(4))
			}
		}
		next, d, err := Optimize(cur, sites, costs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := next.IsSpanningTree(); err != nil {
			t.Fatal(err)
		}
		best := math.Inf(1)
		minCh := math.MaxInt
		spanningTrees(sites, costs, nil, func(tr []Tunnel) {
			c, ch := totalOf(tr), changes(tr, cur)
			switch {
			case c < best:
				best, minCh = c, ch
			case c == best:
				minCh = min(minCh, ch)
			}
		})
		if next.Total() != best {
			t.Fatalf("%d: Optimize total %v, minimum %v", k, next.Total(), best)
		}
		if d.Len() != minCh {
			t.Fatalf("%d: Optimize makes %d changes, an MST with %d exists\ncur %v\nnext %v", k, d.Len(), minCh, cur, next)
		}
	}
}

func TestCompare(t *testing.T) {
	a := Plan{Tunnels: []Tunnel{{"a", "b", 1}, {"b", "c", 1}}}
	b := Plan{Tunnels: []Tunnel{{"b", "c", 7}, {"a", "c", 2}}}
	d := Compare(a, b)
	want := Diff{Add: []Tunnel{{"a", "c", 2}}, Remove: []Tunnel{{"a", "b", 1}}}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("Compare = %+v, want %+v (cost change is not a change)", d, want)
	}
}
