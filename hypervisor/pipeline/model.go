// Package pipeline compiles Skyvisor's desired state (fabric inventory,
// tunnel tree, tenants and host bindings) into the OpenFlow 1.3 flow entries
// of every physical bridge, and translates tenant apps' flow-mods on virtual
// switches into flow-mods for the edge bridges. It does no I/O: package
// hypervisor/reconcile applies the result to switches.
//
// The pipeline (tables, metadata layout, cookies) is described in
// docs/pipeline.md; the address layout in docs/design.md and package
// hypervisor/addr.
package pipeline

import (
	"fmt"
	"slices"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/tunnels"
)

// DPID is a physical datapath ID (OpenFlow 1.3.5 §7.3.1).
type DPID = controller.DPID

// Model is the desired state of the whole fabric: pure data.
type Model struct {
	// Sites are the clouds, each with its gateway and edge (VM) bridges.
	Sites []Site
	// Tree is the tunnel plan joining the gateways (tunnels.MST or Replan):
	// only Tunnels is read. Frames between sites follow its unique path.
	Tree tunnels.Plan
	// Mesh allows cycles in Tree (a full mesh of tunnels, tunnels.FullMesh,
	// the paper's baseline): frames then take a path with the fewest
	// tunnels, the direct tunnel in a full mesh. Loop-free because every
	// hop gets one tunnel closer to the destination and gateways never
	// flood (broadcast is replicated at the edge).
	Mesh bool
	// Tenants are the tenants with their topologies and host indices.
	Tenants []Tenant
	// Bindings say where hosts are plugged in (from OVSDB iface-ids).
	// Hosts without a binding get no data-plane state.
	Bindings []Binding
}

// Site is one cloud: its gateway bridge and its edge (VM) bridges.
type Site struct {
	Name    string
	Gateway Gateway
	Edges   []EdgeBridge
}

// Gateway is a site's gateway bridge.
type Gateway struct {
	DPID DPID
	// Downlinks maps each edge bridge of the site (by DPID) to the
	// gateway's OpenFlow port number of the patch port leading to it.
	Downlinks map[DPID]uint32
	// Tunnels maps each peer site in the tunnel tree to the OpenFlow port
	// number of the tunnel port toward it (named tunnels.PortName(peer),
	// numbered by tunnels.AssignOFPorts).
	Tunnels map[string]uint32
}

// EdgeBridge is the OVS bridge of one VM: hosts plug into it, and its
// uplink (a patch port) leads to the site's gateway.
type EdgeBridge struct {
	DPID   DPID
	Uplink uint32 // OpenFlow port number of the uplink
}

// Tenant is one tenant's desired state.
type Tenant struct {
	ID       addr.TenantID
	Topology *topology.Topology
	// Hosts maps each host name of Topology to its allocated host index
	// (hypervisor/store, addr.HostAllocator).
	Hosts map[string]addr.HostIndex
}

// Binding places a tenant host on an edge bridge port (from the OVS
// Interface external_ids:iface-id "<tenant>/<host>").
type Binding struct {
	Tenant string // topology.Topology.Tenant
	Host   string // topology.Host.Name
	Bridge DPID   // edge bridge DPID
	Port   uint32 // OpenFlow port number of the host's interface
}

// bridgeInfo locates an edge bridge.
type bridgeInfo struct {
	site   string
	uplink uint32
}

// checked is a validated Model with lookup maps.
type checked struct {
	m       *Model
	edges   map[DPID]bridgeInfo
	views   map[string]*View // by tenant name
	byID    map[addr.TenantID]*View
	bound   map[string]Binding // by iface-id
	nextHop map[string]map[string]string
	sites   map[string]*Site
}

// check validates m. Errors name the field at fault.
func check(m *Model) (*checked, error) {
	c := &checked{m: m, edges: map[DPID]bridgeInfo{}, views: map[string]*View{}, byID: map[addr.TenantID]*View{},
		bound: map[string]Binding{}, sites: map[string]*Site{}}
	gws := map[DPID]string{}
	for i := range m.Sites {
		s := &m.Sites[i]
		if s.Name == "" {
			return nil, fmt.Errorf("pipeline: sites[%d]: empty name", i)
		}
		if _, dup := c.sites[s.Name]; dup {
			return nil, fmt.Errorf("pipeline: sites[%d]: duplicate site %q", i, s.Name)
		}
		c.sites[s.Name] = s
		if prev, dup := gws[s.Gateway.DPID]; dup {
			return nil, fmt.Errorf("pipeline: site %q: gateway DPID %s already used by site %q", s.Name, s.Gateway.DPID, prev)
		}
		gws[s.Gateway.DPID] = s.Name
		for j, e := range s.Edges {
			if _, dup := c.edges[e.DPID]; dup {
				return nil, fmt.Errorf("pipeline: site %q edges[%d]: duplicate edge DPID %s", s.Name, j, e.DPID)
			}
			if _, dup := gws[e.DPID]; dup {
				return nil, fmt.Errorf("pipeline: site %q edges[%d]: DPID %s is also a gateway", s.Name, j, e.DPID)
			}
			if e.Uplink == 0 || e.Uplink > uint32(maxPhysPort) {
				return nil, fmt.Errorf("pipeline: site %q edge %s: uplink port %d outside 1..%d", s.Name, e.DPID, e.Uplink, maxPhysPort)
			}
			if _, ok := s.Gateway.Downlinks[e.DPID]; !ok {
				return nil, fmt.Errorf("pipeline: site %q: gateway has no downlink to edge %s", s.Name, e.DPID)
			}
			c.edges[e.DPID] = bridgeInfo{site: s.Name, uplink: e.Uplink}
		}
	}
	for _, tn := range m.Tree.Tunnels {
		for _, name := range []string{tn.A, tn.B} {
			if _, ok := c.sites[name]; !ok {
				return nil, fmt.Errorf("pipeline: tree tunnel %s: unknown site %q", tn, name)
			}
		}
		for _, end := range [2][2]string{{tn.A, tn.B}, {tn.B, tn.A}} {
			s := c.sites[end[0]]
			if _, ok := s.Gateway.Tunnels[end[1]]; !ok {
				return nil, fmt.Errorf("pipeline: tree tunnel %s: gateway of %q has no tunnel port toward %q (%s)", tn, end[0], end[1], tunnels.PortName(end[1]))
			}
		}
	}
	nh, err := nextHops(m)
	if err != nil {
		return nil, err
	}
	c.nextHop = nh
	for i := range m.Tenants {
		v, err := NewView(m.Tenants[i])
		if err != nil {
			return nil, fmt.Errorf("pipeline: tenants[%d]: %w", i, err)
		}
		if _, dup := c.views[v.Name]; dup {
			return nil, fmt.Errorf("pipeline: tenants[%d]: duplicate tenant name %q", i, v.Name)
		}
		if _, dup := c.byID[v.ID]; dup {
			return nil, fmt.Errorf("pipeline: tenants[%d] (%q): duplicate tenant ID %v", i, v.Name, v.ID)
		}
		c.views[v.Name], c.byID[v.ID] = v, v
	}
	ports := map[DPID]map[uint32]string{}
	for i, b := range m.Bindings {
		id := topology.IfaceID(b.Tenant, b.Host)
		v, ok := c.views[b.Tenant]
		if !ok {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): unknown tenant %q", i, id, b.Tenant)
		}
		if _, ok := v.hostByName[b.Host]; !ok {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): tenant %q has no host %q", i, id, b.Tenant, b.Host)
		}
		e, ok := c.edges[b.Bridge]
		if !ok {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): unknown edge bridge %s", i, id, b.Bridge)
		}
		if b.Port == 0 || b.Port > uint32(maxPhysPort) || b.Port == e.uplink {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): port %d is not a host port of bridge %s", i, id, b.Port, b.Bridge)
		}
		if _, dup := c.bound[id]; dup {
			return nil, fmt.Errorf("pipeline: bindings[%d]: host %s bound twice", i, id)
		}
		if ports[b.Bridge] == nil {
			ports[b.Bridge] = map[uint32]string{}
		}
		if other, dup := ports[b.Bridge][b.Port]; dup {
			return nil, fmt.Errorf("pipeline: bindings[%d] (%s): port %d of bridge %s already bound to %s", i, id, b.Port, b.Bridge, other)
		}
		ports[b.Bridge][b.Port] = id
		c.bound[id] = b
	}
	return c, nil
}

// maxPhysPort is the highest OpenFlow port number OVS assigns (ofport_request
// range 1..65279, ovs-vswitchd.conf.db(5)).
const maxPhysPort = 65279

// nextHops returns, per site, the neighbour in the tunnel tree toward each
// other site reachable through it (BFS over Tree.Tunnels: a path with the
// fewest tunnels, ties to the lexically smallest neighbour). Unless m.Mesh,
// it fails if the tunnels contain a cycle (not a tree: paths would be
// ambiguous).
func nextHops(m *Model) (map[string]map[string]string, error) {
	adj := map[string][]string{}
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		return x
	}
	for _, t := range m.Tree.Tunnels {
		ra, rb := find(t.A), find(t.B)
		if ra == rb && !m.Mesh {
			return nil, fmt.Errorf("pipeline: tree: tunnel %s closes a cycle (the tunnel plan must be a tree)", t)
		}
		parent[ra] = rb
		adj[t.A] = append(adj[t.A], t.B)
		adj[t.B] = append(adj[t.B], t.A)
	}
	for _, n := range adj {
		slices.Sort(n)
	}
	out := map[string]map[string]string{}
	for _, s := range m.Sites {
		hop := map[string]string{}
		seen := map[string]bool{s.Name: true}
		type item struct{ site, first string }
		queue := []item{}
		for _, n := range adj[s.Name] {
			seen[n] = true
			queue = append(queue, item{n, n})
		}
		for len(queue) > 0 {
			it := queue[0]
			queue = queue[1:]
			hop[it.site] = it.first
			for _, n := range adj[it.site] {
				if !seen[n] {
					seen[n] = true
					queue = append(queue, item{n, it.first})
				}
			}
		}
		out[s.Name] = hop
	}
	return out, nil
}
