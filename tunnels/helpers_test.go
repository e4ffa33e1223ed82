package tunnels

import (
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
)

// sitesNamed builds sites with the given names and distinct IPv4 gateways
// in 198.51.100.0/24 (TEST-NET-2; never contacted).
func sitesNamed(names ...string) []Site {
	out := make([]Site, len(names))
	for i, n := range names {
		out[i] = Site{Name: n, Gateway: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})}
	}
	return out
}

func siteNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("s%d", i)
	}
	return out
}

// randomGraph returns n sites and a cost table with at most maxEdges pairs,
// connected when connected is true. Costs are small integers so ties are
// frequent.
func randomGraph(rng *rand.Rand, n, maxEdges int, connected bool) ([]Site, Costs) {
	names := siteNames(n)
	costs := Costs{}
	perm := rng.Perm(n)
	if connected {
		for k := 1; k < n; k++ {
			a, b := names[perm[k]], names[perm[rng.Intn(k)]]
			costs.Set(a, b, float64(1+rng.Intn(4)))
		}
	}
	all := [][2]int{}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			all = append(all, [2]int{i, j})
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, e := range all {
		if len(costs) >= maxEdges {
			break
		}
		if _, ok := costs.Get(names[e[0]], names[e[1]]); ok {
			continue
		}
		if rng.Intn(2) == 0 {
			costs.Set(names[e[0]], names[e[1]], float64(1+rng.Intn(4)))
		}
	}
	return sitesNamed(names...), costs
}

// spanningTrees enumerates every spanning tree of the graph (sites, costs
// minus down) by brute force over (n-1)-edge subsets and calls f with each.
func spanningTrees(sites []Site, costs Costs, down map[Pair]bool, f func([]Tunnel)) {
	var names []string
	for _, s := range sites {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	idx := map[string]int{}
	for i, n := range names {
		idx[n] = i
	}
	var edges []Tunnel
	for p, c := range costs {
		q := MakePair(p.A, p.B)
		_, okA := idx[q.A]
		_, okB := idx[q.B]
		if !okA || !okB || down[q] || down[Pair{A: q.B, B: q.A}] {
			continue
		}
		edges = append(edges, Tunnel{A: q.A, B: q.B, Cost: c})
	}
	sortTunnels(edges)
	n := len(names)
	if n == 0 {
		f(nil)
		return
	}
	chosen := make([]Tunnel, 0, n-1)
	var rec func(start int)
	rec = func(start int) {
		if len(chosen) == n-1 {
			uf := newUnionFind(n)
			for _, t := range chosen {
				if !uf.union(idx[t.A], idx[t.B]) {
					return
				}
			}
			f(slices.Clone(chosen))
			return
		}
		for k := start; k <= len(edges)-(n-1-len(chosen)); k++ {
			chosen = append(chosen, edges[k])
			rec(k + 1)
			chosen = chosen[:len(chosen)-1]
		}
	}
	rec(0)
}

func totalOf(ts []Tunnel) float64 {
	var s float64
	for _, t := range ts {
		s += t.Cost
	}
	return s
}

// changes counts |T Δ C| over site pairs.
func changes(tree []Tunnel, current Plan) int {
	in := map[Pair]bool{}
	for _, t := range current.Tunnels {
		in[t.Pair()] = true
	}
	n := 0
	for _, t := range tree {
		if in[t.Pair()] {
			delete(in, t.Pair())
		} else {
			n++
		}
	}
	return n + len(in)
}
