package tunnels

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// MaxSiteNameLen is the longest accepted site name, in bytes. Site names
// travel in OVSDB external_ids and (shortened) in interface names.
const MaxSiteNameLen = 63

// Site is one cloud: its name and the address of its gateway.
type Site struct {
	// Name identifies the site. 1..MaxSiteNameLen bytes from
	// [A-Za-z0-9._-]; unique within a plan.
	Name string
	// Gateway is the public (underlay) address of the cloud's gateway, the
	// address peers send tunnel packets to.
	Gateway netip.Addr
	// Endpoint, when valid, is the address tunnels terminate on if it
	// differs from Gateway: with an encrypted underlay the tunnel endpoint
	// sits behind the WireGuard edge (recipes: br-phy 10.99.i.1 behind
	// wg 172.30.0.i). The zero value means Gateway.
	Endpoint netip.Addr
}

// TunnelEndpoint returns the address a peer's tunnel port uses as
// options:remote_ip: Endpoint if set, else Gateway.
func (s Site) TunnelEndpoint() netip.Addr {
	if s.Endpoint.IsValid() {
		return s.Endpoint
	}
	return s.Gateway
}

// ValidateSiteName reports whether name is an acceptable site name
// (1..MaxSiteNameLen bytes of [A-Za-z0-9._-], not "." or "..").
func ValidateSiteName(name string) error {
	if name == "" {
		return fmt.Errorf("site name is empty")
	}
	if len(name) > MaxSiteNameLen {
		return fmt.Errorf("site name %q is %d bytes, longer than %d", name, len(name), MaxSiteNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("site name %q is reserved", name)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("site name %q: byte %q at offset %d is not in [A-Za-z0-9._-]", name, name[i], i)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Pair is an unordered pair of site names in canonical form: A < B
// lexically. Build one with [MakePair].
type Pair struct {
	A, B string
}

// MakePair returns the canonical Pair of sites a and b (the smaller name
// first).
func MakePair(a, b string) Pair {
	if b < a {
		a, b = b, a
	}
	return Pair{A: a, B: b}
}

// String formats the pair as "A~B".
func (p Pair) String() string { return p.A + "~" + p.B }

// Costs gives the cost of a direct tunnel for each unordered site pair:
// a measured RTT (in any fixed unit, e.g. milliseconds) or a configured
// weight. A pair that is absent means no direct tunnel is possible between
// the two sites. Keys need not be canonical: {b,a} is read as {a,b}; giving
// both orders with different costs is an error. Costs must be finite and
// >= 0. Pairs naming a site that is not being planned are ignored, so one
// Costs table can outlive a removed site.
type Costs map[Pair]float64

// Set records the cost of the pair {a, b} in canonical form.
func (c Costs) Set(a, b string, cost float64) { c[MakePair(a, b)] = cost }

// SetRTT records a measured round-trip time as the cost of {a, b}, in
// milliseconds (fractional), the unit the docs and tests use for RTTs.
func (c Costs) SetRTT(a, b string, rtt time.Duration) {
	c.Set(a, b, float64(rtt)/float64(time.Millisecond))
}

// Get returns the cost of the pair {a, b} in either key order and whether
// the pair is present.
func (c Costs) Get(a, b string) (float64, bool) {
	p := MakePair(a, b)
	if v, ok := c[p]; ok {
		return v, true
	}
	v, ok := c[Pair{A: p.B, B: p.A}]
	return v, ok
}

// Type is a tunnel encapsulation as named by the OVS Interface "type"
// column (ovs-vswitchd.conf.db(5)).
type Type string

// Tunnel types supported by Skyvisor gateways.
const (
	VXLAN  Type = "vxlan"  // RFC 7348, UDP port 4789
	GRE    Type = "gre"    // RFC 2784 + RFC 2890 key, transparent Ethernet bridging
	Geneve Type = "geneve" // RFC 8926, UDP port 6081
)

// Valid reports whether t is one of VXLAN, GRE, Geneve.
func (t Type) Valid() bool { return t == VXLAN || t == GRE || t == Geneve }

// Encap is how tunnels are built: the encapsulation and whether the
// underlay between gateways runs through WireGuard.
type Encap struct {
	Type Type
	// Encrypted means the tunnel packets travel inside WireGuard
	// (wireguard-go on the gateway edge); the tunnel port itself is
	// unchanged, only its MTU budget and remote address differ.
	Encrypted bool
}

// Tunnel is one planned tunnel between the gateways of sites A and B
// (A < B lexically) with its cost from Costs.
type Tunnel struct {
	A, B string
	Cost float64
}

// Pair returns the tunnel's canonical site pair.
func (t Tunnel) Pair() Pair { return Pair{A: t.A, B: t.B} }

// String formats the tunnel as "A~B(cost)".
func (t Tunnel) String() string { return fmt.Sprintf("%s~%s(%g)", t.A, t.B, t.Cost) }

// Plan is a tunnel topology over a set of sites: the sorted site names and
// the tunnels sorted by (A, B). MST, Replan and Optimize return spanning
// trees (len(Tunnels) == len(Sites)-1); FullMesh returns every possible pair.
type Plan struct {
	Sites   []string
	Tunnels []Tunnel
}

// Total returns the sum of the tunnels' costs.
func (p Plan) Total() float64 {
	var s float64
	for _, t := range p.Tunnels {
		s += t.Cost
	}
	return s
}

// Len returns the number of tunnels.
func (p Plan) Len() int { return len(p.Tunnels) }

// Has reports whether the plan holds a tunnel between sites a and b (in
// either order; the tunnels need not be sorted). O(len(Tunnels)).
func (p Plan) Has(a, b string) bool {
	q := MakePair(a, b)
	for _, t := range p.Tunnels {
		if MakePair(t.A, t.B) == q {
			return true
		}
	}
	return false
}

// Peers returns the sorted names of the sites that site has a tunnel to.
func (p Plan) Peers(site string) []string {
	var out []string
	for _, t := range p.Tunnels {
		switch site {
		case t.A:
			out = append(out, t.B)
		case t.B:
			out = append(out, t.A)
		}
	}
	slices.Sort(out)
	return out
}

// String formats the plan as "{A~B(c) ...} total=T".
func (p Plan) String() string {
	parts := make([]string, len(p.Tunnels))
	for i, t := range p.Tunnels {
		parts[i] = t.String()
	}
	return fmt.Sprintf("{%s} total=%g", strings.Join(parts, " "), p.Total())
}

// IsSpanningTree reports nil if the plan's tunnels form a spanning tree of
// its sites (n-1 tunnels, no cycle, all sites connected), else an error
// saying what is wrong.
func (p Plan) IsSpanningTree() error {
	idx := make(map[string]int, len(p.Sites))
	for i, s := range p.Sites {
		idx[s] = i
	}
	if len(p.Sites) == 0 {
		if len(p.Tunnels) != 0 {
			return fmt.Errorf("plan has %d tunnels but no sites", len(p.Tunnels))
		}
		return nil
	}
	if len(p.Tunnels) != len(p.Sites)-1 {
		return fmt.Errorf("plan has %d tunnels for %d sites, want %d", len(p.Tunnels), len(p.Sites), len(p.Sites)-1)
	}
	uf := newUnionFind(len(p.Sites))
	for _, t := range p.Tunnels {
		a, okA := idx[t.A]
		b, okB := idx[t.B]
		if !okA || !okB {
			return fmt.Errorf("tunnel %s names a site outside the plan", t)
		}
		if !uf.union(a, b) {
			return fmt.Errorf("tunnel %s closes a cycle", t)
		}
	}
	return nil
}

// ComparePairs orders pairs by site A, then site B (byte-wise): -1, 0 or
// +1, for slices.SortFunc. Plans, diffs and tunnel lists are kept in this
// order.
func ComparePairs(x, y Pair) int {
	if c := strings.Compare(x.A, y.A); c != 0 {
		return c
	}
	return strings.Compare(x.B, y.B)
}

func sortTunnels(ts []Tunnel) {
	slices.SortFunc(ts, func(x, y Tunnel) int { return ComparePairs(x.Pair(), y.Pair()) })
}

// edge is a candidate tunnel between site indices i < j of a graph.
type edge struct {
	i, j int
	cost float64
}

// graph is the validated planning input: sorted site names and the
// available edges sorted by (cost, i, j), which is (cost, A, B) because
// indices follow lexical order.
type graph struct {
	names []string
	index map[string]int
	edges []edge
	cost  map[[2]int]float64
}

func (g *graph) tunnel(e edge) Tunnel {
	return Tunnel{A: g.names[e.i], B: g.names[e.j], Cost: e.cost}
}

// buildGraph validates sites and costs and returns the graph of available
// edges (pairs in costs, not in down, both sites present).
func buildGraph(sites []Site, costs Costs, down map[Pair]bool) (*graph, error) {
	g := &graph{index: make(map[string]int, len(sites))}
	for i, s := range sites {
		if err := ValidateSiteName(s.Name); err != nil {
			return nil, fmt.Errorf("sites[%d]: %w", i, err)
		}
		if _, dup := g.index[s.Name]; dup {
			return nil, fmt.Errorf("sites[%d]: duplicate site name %q", i, s.Name)
		}
		g.index[s.Name] = -1
		g.names = append(g.names, s.Name)
	}
	slices.Sort(g.names)
	for i, n := range g.names {
		g.index[n] = i
	}
	g.cost = make(map[[2]int]float64, len(costs))
	for k, c := range costs {
		if k.A == k.B {
			return nil, fmt.Errorf("costs[%s]: a site cannot tunnel to itself", k)
		}
		if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
			return nil, fmt.Errorf("costs[%s]: cost %v is not a finite number >= 0", k, c)
		}
		i, okA := g.index[k.A]
		j, okB := g.index[k.B]
		if !okA || !okB {
			continue
		}
		if i > j {
			i, j = j, i
		}
		key := [2]int{i, j}
		if prev, dup := g.cost[key]; dup && prev != c {
			return nil, fmt.Errorf("costs[%s]: given in both orders with different costs %v and %v", k, prev, c)
		}
		g.cost[key] = c
	}
	for p, isDown := range down {
		if !isDown {
			continue
		}
		i, okA := g.index[p.A]
		j, okB := g.index[p.B]
		if !okA || !okB {
			continue
		}
		if i > j {
			i, j = j, i
		}
		delete(g.cost, [2]int{i, j})
	}
	g.edges = make([]edge, 0, len(g.cost))
	for k, c := range g.cost {
		g.edges = append(g.edges, edge{i: k[0], j: k[1], cost: c})
	}
	slices.SortFunc(g.edges, cmpEdge)
	return g, nil
}

// cmpEdge orders edges by (cost, i, j). Costs are validated (no NaN), so
// plain comparisons suffice.
func cmpEdge(x, y edge) int {
	switch {
	case x.cost < y.cost:
		return -1
	case x.cost > y.cost:
		return 1
	case x.i != y.i:
		return x.i - y.i
	}
	return x.j - y.j
}
