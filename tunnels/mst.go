package tunnels

import (
	"fmt"
	"slices"
	"strings"
)

// unionFind is a disjoint-set forest with path halving and union by size:
// near-constant amortized time per operation (inverse Ackermann).
type unionFind struct {
	parent []int
	size   []int
	sets   int
}

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]int, n), size: make([]int, n), sets: n}
	for i := range u.parent {
		u.parent[i] = i
		u.size[i] = 1
	}
	return u
}

func (u *unionFind) find(x int) int {
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

// union merges the sets of a and b and reports whether they were distinct.
func (u *unionFind) union(a, b int) bool {
	ra, rb := u.find(a), u.find(b)
	if ra == rb {
		return false
	}
	if u.size[ra] < u.size[rb] {
		ra, rb = rb, ra
	}
	u.parent[rb] = ra
	u.size[ra] += u.size[rb]
	u.sets--
	return true
}

// DisconnectedError is returned when the available site pairs do not
// connect every site, so no spanning tree exists.
type DisconnectedError struct {
	// Components are the connected components, each sorted by name; the
	// largest component comes first (ties: the one with the smallest
	// name), the rest follow by their smallest name.
	Components [][]string
}

// Unreachable returns the sorted names of the sites outside the first
// (largest) component.
func (e *DisconnectedError) Unreachable() []string {
	var out []string
	for _, c := range e.Components[1:] {
		out = append(out, c...)
	}
	slices.Sort(out)
	return out
}

func (e *DisconnectedError) Error() string {
	return fmt.Sprintf("tunnels: sites not connected, no spanning tree: %s unreachable from [%s] (%d components)",
		"["+strings.Join(e.Unreachable(), " ")+"]", strings.Join(e.Components[0], " "), len(e.Components))
}

func disconnected(g *graph, uf *unionFind) *DisconnectedError {
	byRoot := map[int][]string{}
	for i, n := range g.names {
		r := uf.find(i)
		byRoot[r] = append(byRoot[r], n) // names are sorted, so each list is too
	}
	comps := make([][]string, 0, len(byRoot))
	for _, c := range byRoot {
		comps = append(comps, c)
	}
	slices.SortFunc(comps, func(x, y []string) int { return strings.Compare(x[0], y[0]) })
	big := 0
	for i, c := range comps {
		if len(c) > len(comps[big]) {
			big = i
		}
	}
	comps[0], comps[big] = comps[big], comps[0]
	slices.SortFunc(comps[1:], func(x, y []string) int { return strings.Compare(x[0], y[0]) })
	return &DisconnectedError{Components: comps}
}

// MST returns a minimum spanning tree of tunnels over sites, using only
// the pairs present in costs (Kruskal's algorithm with a union-find).
//
// Ties are broken deterministically: edges are considered by cost, then by
// the canonical pair (A, B) in lexical order, so the same input always
// yields the same tree. Complexity O(E log E) for E available pairs.
//
// Errors: invalid or duplicate site names, invalid costs (see Costs), and
// *DisconnectedError when the pairs do not connect every site. Zero sites
// or one site give an empty plan.
func MST(sites []Site, costs Costs) (Plan, error) {
	g, err := buildGraph(sites, costs, nil)
	if err != nil {
		return Plan{}, err
	}
	return kruskal(g, g.edges)
}

// kruskal runs Kruskal over g with the edges in the given order.
func kruskal(g *graph, order []edge) (Plan, error) {
	uf := newUnionFind(len(g.names))
	p := Plan{Sites: g.names}
	for _, e := range order {
		if uf.sets <= 1 {
			break
		}
		if uf.union(e.i, e.j) {
			p.Tunnels = append(p.Tunnels, g.tunnel(e))
		}
	}
	if uf.sets > 1 {
		return Plan{}, disconnected(g, uf)
	}
	sortTunnels(p.Tunnels)
	return p, nil
}

// FullMesh returns the baseline topology with a tunnel for every available
// pair in costs: n(n-1)/2 tunnels when every pair is present. It fails like
// MST on invalid input or a disconnected graph.
func FullMesh(sites []Site, costs Costs) (Plan, error) {
	g, err := buildGraph(sites, costs, nil)
	if err != nil {
		return Plan{}, err
	}
	uf := newUnionFind(len(g.names))
	p := Plan{Sites: g.names}
	for _, e := range g.edges {
		uf.union(e.i, e.j)
		p.Tunnels = append(p.Tunnels, g.tunnel(e))
	}
	if uf.sets > 1 {
		return Plan{}, disconnected(g, uf)
	}
	sortTunnels(p.Tunnels)
	return p, nil
}
