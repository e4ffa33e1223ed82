package tunnels

import (
	"cmp"
	"slices"
)

// Diff is the change from one plan to the next: tunnels to create and
// tunnels to tear down, each sorted by (A, B). A tunnel present in both
// plans (even with a changed cost) is not part of the diff.
type Diff struct {
	Add    []Tunnel
	Remove []Tunnel
}

// Len returns the number of changes, len(Add)+len(Remove).
func (d Diff) Len() int { return len(d.Add) + len(d.Remove) }

// Empty reports whether the diff changes nothing.
func (d Diff) Empty() bool { return d.Len() == 0 }

// Compare returns the diff that turns plan from into plan to.
func Compare(from, to Plan) Diff {
	var d Diff
	inFrom := make(map[Pair]bool, len(from.Tunnels))
	for _, t := range from.Tunnels {
		inFrom[MakePair(t.A, t.B)] = true
	}
	inTo := make(map[Pair]bool, len(to.Tunnels))
	for _, t := range to.Tunnels {
		inTo[MakePair(t.A, t.B)] = true
	}
	for _, t := range to.Tunnels {
		if !inFrom[MakePair(t.A, t.B)] {
			d.Add = append(d.Add, t)
		}
	}
	for _, t := range from.Tunnels {
		if !inTo[MakePair(t.A, t.B)] {
			d.Remove = append(d.Remove, t)
		}
	}
	sortTunnels(d.Add)
	sortTunnels(d.Remove)
	return d
}

// survivors returns, in Kruskal order (new cost, A, B), the edges of
// current that are still available in g: both sites present, pair in
// costs and not down.
func survivors(g *graph, current Plan) []edge {
	var out []edge
	for _, t := range current.Tunnels {
		i, okA := g.index[t.A]
		j, okB := g.index[t.B]
		if !okA || !okB {
			continue
		}
		if i > j {
			i, j = j, i
		}
		c, ok := g.cost[[2]int{i, j}]
		if !ok {
			continue
		}
		out = append(out, edge{i: i, j: j, cost: c})
	}
	slices.SortFunc(out, cmpEdge)
	return slices.CompactFunc(out, func(x, y edge) bool { return x.i == y.i && x.j == y.j })
}

// Replan repairs current into a spanning tree of sites with as few changes
// as possible (elasticity: a site added or removed, tunnels down).
//
// A current tunnel survives if both its sites are still in sites, its pair
// is still in costs and it is not marked in down. Replan:
//
//  1. keeps every surviving tunnel (if current holds a cycle, which a plan
//     from this package never does, the most expensive tunnel of each cycle
//     is dropped: surviving tunnels are taken in (cost, A, B) order);
//  2. removes every tunnel that did not survive;
//  3. reconnects the resulting forest with the cheapest available edges,
//     Kruskal-style over the components.
//
// Guarantees (docs/tunnels.md has the argument): the result is a spanning
// tree; it keeps the largest possible number of current tunnels, so the
// number of changes len(diff.Add)+len(diff.Remove) is the minimum over all
// spanning trees of the available graph; and among the spanning trees with
// that minimum number of changes it has the minimum total cost. It is not
// in general a minimum spanning tree: use Optimize for that. Typical cases:
// a new leaf site adds exactly its cheapest tunnel; a tunnel down is
// replaced by the cheapest edge reconnecting the two halves; a removed site
// of degree d loses its d tunnels and d-1 cheapest reconnecting tunnels are
// added.
//
// down marks site pairs that are unavailable (tunnel down, probe failed);
// keys are read in either order. Errors as for MST, including
// *DisconnectedError when the available pairs cannot connect every site; on
// error nothing is returned and nothing is meant to be applied.
// Complexity O(E log E + T log T) for E available pairs and T current
// tunnels.
func Replan(current Plan, sites []Site, costs Costs, down map[Pair]bool) (Plan, Diff, error) {
	g, err := buildGraph(sites, costs, canonicalDown(down))
	if err != nil {
		return Plan{}, Diff{}, err
	}
	uf := newUnionFind(len(g.names))
	next := Plan{Sites: g.names}
	for _, e := range survivors(g, current) {
		if uf.union(e.i, e.j) {
			next.Tunnels = append(next.Tunnels, g.tunnel(e))
		}
	}
	for _, e := range g.edges {
		if uf.sets <= 1 {
			break
		}
		if uf.union(e.i, e.j) {
			next.Tunnels = append(next.Tunnels, g.tunnel(e))
		}
	}
	if uf.sets > 1 {
		return Plan{}, Diff{}, disconnected(g, uf)
	}
	sortTunnels(next.Tunnels)
	return next, Compare(current, next), nil
}

// Optimize returns a true minimum spanning tree of the available graph
// (sites, costs minus down) and the diff from current to it.
//
// Among all minimum spanning trees it returns one that shares the most
// tunnels with current, hence needs the fewest changes: Kruskal orders the
// edges by (cost, not-in-current, A, B), and a greedy basis of a matroid is
// optimal for any such lexicographic weight. With no ties in cost the
// result equals MST(sites, costs without down). Use Optimize periodically
// or when costs drift (it may tear down healthy tunnels); use Replan on
// events that must be repaired at once. Errors as for Replan.
func Optimize(current Plan, sites []Site, costs Costs, down map[Pair]bool) (Plan, Diff, error) {
	g, err := buildGraph(sites, costs, canonicalDown(down))
	if err != nil {
		return Plan{}, Diff{}, err
	}
	keep := map[[2]int]bool{}
	for _, e := range survivors(g, current) {
		keep[[2]int{e.i, e.j}] = true
	}
	order := slices.Clone(g.edges)
	slices.SortStableFunc(order, func(x, y edge) int {
		if c := cmp.Compare(x.cost, y.cost); c != 0 {
			return c
		}
		kx, ky := keep[[2]int{x.i, x.j}], keep[[2]int{y.i, y.j}]
		switch {
		case kx && !ky:
			return -1
		case ky && !kx:
			return 1
		}
		return 0 // stable: (A, B) order from g.edges
	})
	next, err := kruskal(g, order)
	if err != nil {
		return Plan{}, Diff{}, err
	}
	return next, Compare(current, next), nil
}

func canonicalDown(down map[Pair]bool) map[Pair]bool {
	if len(down) == 0 {
		return nil
	}
	out := make(map[Pair]bool, len(down))
	for p, v := range down {
		if v {
			out[MakePair(p.A, p.B)] = true
		}
	}
	return out
}
