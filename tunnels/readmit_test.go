package tunnels

import (
	"math"
	"math/rand"
	"reflect"
	"testing"
)

func TestReadmitRestoresCheaperTunnel(t *testing.T) {
	sites, costs := lineGraph() // MST a-b, b-c, c-d (1 each)
	mst, _ := MST(sites, costs)
	down := map[Pair]bool{MakePair("b", "c"): true}
	repaired, d, err := Replan(mst, sites, costs, down)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, Diff{Add: []Tunnel{{"b", "d", 3}}, Remove: []Tunnel{{"b", "c", 1}}}) {
		t.Fatalf("down: diff %+v", d)
	}
	// Still down: nothing comes back.
	same, d, err := Readmit(repaired, sites, costs, down, MakePair("c", "b"))
	if err != nil || !d.Empty() || !reflect.DeepEqual(same, repaired) {
		t.Fatalf("readmit while down: %v %+v %v", same, d, err)
	}
	// Up again: b~c replaces b~d, one in, one out, back to the MST.
	back, d, err := Readmit(repaired, sites, costs, nil, MakePair("c", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, Diff{Add: []Tunnel{{"b", "c", 1}}, Remove: []Tunnel{{"b", "d", 3}}}) || !reflect.DeepEqual(back, mst) {
		t.Fatalf("up: %v diff %+v", back, d)
	}
	// Already in the tree, or not cheaper than the path's worst tunnel:
	// no change.
	if _, d, _ := Readmit(mst, sites, costs, nil, MakePair("a", "b")); !d.Empty() {
		t.Fatalf("tree tunnel readmitted: %+v", d)
	}
	if _, d, _ := Readmit(mst, sites, costs, nil, MakePair("a", "d")); !d.Empty() {
		t.Fatalf("expensive pair readmitted: %+v", d)
	}
	// Unknown pair or site: plain Replan.
	if _, d, err := Readmit(mst, sites, costs, nil, MakePair("a", "zz")); err != nil || !d.Empty() {
		t.Fatalf("unknown site: %+v %v", d, err)
	}
	// A tie keeps the current tree.
	costs.Set("b", "d", 1)
	tie, _, _ := Replan(mst, sites, costs, down)
	if _, d, _ := Readmit(tie, sites, costs, nil, MakePair("b", "c")); !d.Empty() {
		t.Fatalf("tie: %+v", d)
	}
	// Errors as Replan.
	if _, _, err := Readmit(mst, sitesNamed("a", "a"), costs, nil, MakePair("a", "b")); err == nil {
		t.Fatal("duplicate site accepted")
	}
}

// TestReadmitProperty: on random graphs, a tree that lost a tunnel p
// (Replan with p down, or any minimum spanning tree without p) gets back
// a minimum spanning tree of the whole graph with Readmit(p), in at most
// one exchange that adds p.
func TestReadmitProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	checked := 0
	for iter := 0; iter < 400; iter++ {
		n := 2 + rng.Intn(7)
		sites, costs := randomGraph(rng, n, 1+rng.Intn(n*(n-1)/2), true)
		var pairs []Pair
		for p := range costs {
			pairs = append(pairs, MakePair(p.A, p.B))
		}
		p := pairs[rng.Intn(len(pairs))]
		down := map[Pair]bool{p: true}
		mst, err := MST(sites, costs)
		if err != nil {
			t.Fatal(err)
		}
		best := math.Inf(1)
		spanningTrees(sites, costs, nil, func(ts []Tunnel) { best = math.Min(best, totalOf(ts)) })
		starts := []Plan{}
		if r, _, err := Replan(mst, sites, costs, down); err == nil {
			starts = append(starts, r)
		}
		without := Costs{}
		for k, c := range costs {
			if MakePair(k.A, k.B) != p {
				without[k] = c
			}
		}
		if m, err := MST(sites, without); err == nil {
			starts = append(starts, m)
		}
		for _, cur := range starts {
			next, d, err := Readmit(cur, sites, costs, nil, p)
			if err != nil {
				t.Fatalf("iter %d: %v", iter, err)
			}
			if err := next.IsSpanningTree(); err != nil {
				t.Fatalf("iter %d: %v", iter, err)
			}
			if next.Total() != best {
				t.Fatalf("iter %d: total %v, minimum %v (cur %v, p %v, next %v)", iter, next.Total(), best, cur, p, next)
			}
			switch d.Len() {
			case 0:
			case 2:
				if len(d.Add) != 1 || d.Add[0].Pair() != p || len(d.Remove) != 1 {
					t.Fatalf("iter %d: diff %+v", iter, d)
				}
			default:
				t.Fatalf("iter %d: %d changes: %+v", iter, d.Len(), d)
			}
			checked++
		}
	}
	if checked < 300 {
		t.Fatalf("only %d cases checked", checked)
	}
}

func TestTreePath(t *testing.T) {
	sites, costs := lineGraph()
	mst, _ := MST(sites, costs)
	if got := treePath(mst, "a", "d"); len(got) != 3 {
		t.Fatalf("path a-d = %v", got)
	}
	if treePath(mst, "a", "a") != nil || treePath(mst, "a", "x") != nil {
		t.Fatal("degenerate paths")
	}
}
