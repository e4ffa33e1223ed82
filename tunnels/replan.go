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

// Readmit is Replan followed by one exchange that puts pair p (a tunnel
// that came back up) into the tree when that makes the tree cheaper: if
// p is available (both sites in sites, pair in costs, not in down) and not
// in the repaired tree, the most expensive tunnel on the tree path between
// p's sites (ties: the last in (cost, A, B) order) is replaced by p when it
// costs strictly more than p. A tie keeps the tree (fewer changes).
//
// When current is a spanning tree of the available graph without p (for
// example a minimum spanning tree repaired by Replan after p went down),
// the exchange is the only change: the diff is empty or exactly {Add: p,
// Remove: the replaced tunnel}, so traffic moves back in one step. If
// current was a minimum spanning tree of the graph without p, the result
// is a minimum spanning tree of the graph with p (the cycle property: the
// heaviest edge of the cycle p closes is not needed), so a tunnel that
// went down and came back is restored to the cheapest tree with the
// fewest changes. Errors as for Replan. Complexity O(E log E + T log T + n).
func Readmit(current Plan, sites []Site, costs Costs, down map[Pair]bool, p Pair) (Plan, Diff, error) {
	next, _, err := Replan(current, sites, costs, down)
	if err != nil {
		return Plan{}, Diff{}, err
	}
	p = MakePair(p.A, p.B)
	if next.Has(p.A, p.B) || canonicalDown(down)[p] || !slices.Contains(next.Sites, p.A) || !slices.Contains(next.Sites, p.B) {
		return next, Compare(current, next), nil
	}
	c, ok := costs.Get(p.A, p.B)
	if !ok {
		return next, Compare(current, next), nil
	}
	path := treePath(next, p.A, p.B)
	if len(path) == 0 {
		return next, Compare(current, next), nil // cannot happen in a spanning tree
	}
	worst := path[0]
	for _, t := range path[1:] {
		if t.Cost > worst.Cost || (t.Cost == worst.Cost && ComparePairs(t.Pair(), worst.Pair()) > 0) {
			worst = t
		}
	}
	if worst.Cost <= c {
		return next, Compare(current, next), nil
	}
	out := Plan{Sites: next.Sites}
	for _, t := range next.Tunnels {
		if t.Pair() != worst.Pair() {
			out.Tunnels = append(out.Tunnels, t)
		}
	}
	out.Tunnels = append(out.Tunnels, Tunnel{A: p.A, B: p.B, Cost: c})
	sortTunnels(out.Tunnels)
	return out, Compare(current, out), nil
}

// treePath returns the tunnels on the path from a to b in tree (nil if
// there is none, or a == b).
func treePath(tree Plan, a, b string) []Tunnel {
	type hop struct {
		from string
		via  Tunnel
	}
	adj := map[string][]Tunnel{}
	for _, t := range tree.Tunnels {
		adj[t.A] = append(adj[t.A], t)
		adj[t.B] = append(adj[t.B], t)
	}
	prev := map[string]hop{a: {}}
	queue := []string{a}
	for len(queue) > 0 && b != a {
		s := queue[0]
		queue = queue[1:]
		for _, t := range adj[s] {
			o := t.A
			if o == s {
				o = t.B
			}
			if _, seen := prev[o]; seen {
				continue
			}
			prev[o] = hop{from: s, via: t}
			queue = append(queue, o)
		}
	}
	if _, ok := prev[b]; !ok || a == b {
		return nil
	}
	var path []Tunnel
	for s := b; s != a; s = prev[s].from {
		path = append(path, prev[s].via)
	}
	return path
}
