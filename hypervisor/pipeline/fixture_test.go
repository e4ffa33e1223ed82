package pipeline

import (
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/tunnels"
)

// Test fabric: two sites; aws has edges 0xe1 and 0xe2, gcp has 0xe3.
// Gateways 0x91 (aws) and 0x92 (gcp), joined by one tunnel.
const (
	e1, e2, e3 DPID = 0xe1, 0xe2, 0xe3
	g1, g2     DPID = 0x91, 0x92
	uplink          = 100
	tunToGCP        = 32801
	tunToAWS        = 32802
	t1ID            = addr.TenantID(0x0200)
	t2ID            = addr.TenantID(0x0201)
)

// Virtual DPIDs of the tenants' switches.
const (
	vsA topology.DPID = 0xa1 // t1's only switch
	vsB topology.DPID = 0xb1 // t2's first switch
	vsC topology.DPID = 0xb2 // t2's second switch, linked to vsB
)

// tenantTopologies returns two tenants with IDENTICAL host MACs and IPs.
// t1: one switch "a" with h1..h3 on ports 1..3.
// t2: switch "b" with h1 (port 1), h2 (port 2) and a link port 10 to
// switch "c", which has h3 on port 1 (link port 10).
func tenantTopologies() (*topology.Topology, *topology.Topology) {
	host := func(name, sw string, port uint32, n int) topology.Host {
		return topology.Host{Name: name, MAC: []string{"", "00:00:00:00:00:01", "00:00:00:00:00:02", "00:00:00:00:00:03"}[n],
			IP: []string{"", "10.0.0.1/24", "10.0.0.2/24", "10.0.0.3/24"}[n], Switch: sw, Port: port, Cloud: "aws"}
	}
	a := &topology.Topology{Tenant: "t1", Apps: []string{}, Switches: []topology.Switch{{Name: "a", DPID: vsA}},
		Hosts: []topology.Host{host("h1", "a", 1, 1), host("h2", "a", 2, 2), host("h3", "a", 3, 3)}}
	b := &topology.Topology{Tenant: "t2", Apps: []string{},
		Switches: []topology.Switch{{Name: "b", DPID: vsB}, {Name: "c", DPID: vsC}},
		Links:    []topology.Link{{A: topology.Endpoint{Switch: "b", Port: 10}, B: topology.Endpoint{Switch: "c", Port: 10}}},
		Hosts:    []topology.Host{host("h1", "b", 1, 1), host("h2", "b", 2, 2), host("h3", "c", 1, 3)}}
	return a, b
}

func hostIndices() map[string]addr.HostIndex {
	return map[string]addr.HostIndex{"h1": 1, "h2": 2, "h3": 3}
}

// testModel: t1 h1,h2 on e1 (ports 1,2), h3 on e3 (gcp, port 1);
// t2 h1 on e1 (port 3), h2 on e2 (port 1), h3 on e2 (port 2).
func testModel() *Model {
	a, b := tenantTopologies()
	return &Model{
		Sites: []Site{
			{Name: "aws", Gateway: Gateway{DPID: g1, Downlinks: map[DPID]uint32{e1: 1, e2: 2}, Tunnels: map[string]uint32{"gcp": tunToGCP}},
				Edges: []EdgeBridge{{DPID: e1, Uplink: uplink}, {DPID: e2, Uplink: uplink}}},
			{Name: "gcp", Gateway: Gateway{DPID: g2, Downlinks: map[DPID]uint32{e3: 1}, Tunnels: map[string]uint32{"aws": tunToAWS}},
				Edges: []EdgeBridge{{DPID: e3, Uplink: uplink}}},
		},
		Tree: tunnels.Plan{Sites: []string{"aws", "gcp"}, Tunnels: []tunnels.Tunnel{{A: "aws", B: "gcp", Cost: 1}}},
		Tenants: []Tenant{
			{ID: t1ID, Topology: a, Hosts: hostIndices()},
			{ID: t2ID, Topology: b, Hosts: hostIndices()},
		},
		Bindings: []Binding{
			{Tenant: "t1", Host: "h1", Bridge: e1, Port: 1},
			{Tenant: "t1", Host: "h2", Bridge: e1, Port: 2},
			{Tenant: "t1", Host: "h3", Bridge: e3, Port: 1},
			{Tenant: "t2", Host: "h1", Bridge: e1, Port: 3},
			{Tenant: "t2", Host: "h2", Bridge: e2, Port: 1},
			{Tenant: "t2", Host: "h3", Bridge: e2, Port: 2},
		},
	}
}
