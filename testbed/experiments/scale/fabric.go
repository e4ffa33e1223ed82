// Package scale measures how Skyvisor's controller copes with many tenants
// (issue "Tenant virtual networks", scale benchmark): it builds a synthetic
// infrastructure (clouds, each with a gateway and VM edge bridges, joined
// by a minimum spanning tree of tunnels) and synthetic tenants, then runs
// the controller's own code on them — topology validation, the bbolt store,
// pipeline compilation, the proactive learning entries and reconcile's
// diff — timing each phase and recording the flow entries per bridge, the
// Go heap and the store file size. No switch and no network is involved:
// the flow tables of the bridges are simulated by encoding the desired
// entries as an OpenFlow 1.3 flow-stats reply and decoding it again, as
// reconcile's own tests do. Method and figures: docs/benchmarks.md,
// "Tenant scale".
package scale

import (
	"fmt"
	"net/netip"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/tunnels"
)

// Config sizes a synthetic fabric and its tenants.
type Config struct {
	// Clouds is the number of sites (clouds), each with one gateway;
	// 1..250.
	Clouds int
	// VMsPerCloud is the number of VM edge bridges per cloud; 1..250.
	VMsPerCloud int
	// Tenants is the number of tenants; 0..16384 (addr's tenant ID space).
	Tenants int
	// HostsPerTenant is the number of hosts of every tenant; 1..1000.
	HostsPerTenant int
	// SwitchesPerTenant is the number of virtual switches of every tenant,
	// joined in a chain by virtual links, the hosts split evenly between
	// them; 1..HostsPerTenant.
	SwitchesPerTenant int
}

// DefaultConfig is the scale target on 8 clouds: 1,000 tenants of
// 10 hosts (2 linked virtual switches each), 8 clouds of 4 VMs (32 edge
// bridges, 8 gateways).
func DefaultConfig() Config {
	return Config{Clouds: 8, VMsPerCloud: 4, Tenants: 1000, HostsPerTenant: 10, SwitchesPerTenant: 2}
}

// Edges returns the number of edge bridges, Clouds × VMsPerCloud.
func (c Config) Edges() int { return c.Clouds * c.VMsPerCloud }

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.Clouds < 1 || c.Clouds > 250:
		return fmt.Errorf("scale: clouds %d out of range 1..250", c.Clouds)
	case c.VMsPerCloud < 1 || c.VMsPerCloud > 250:
		return fmt.Errorf("scale: VMs per cloud %d out of range 1..250", c.VMsPerCloud)
	case c.Tenants < 0 || c.Tenants > 16384:
		return fmt.Errorf("scale: tenants %d out of range 0..16384", c.Tenants)
	case c.HostsPerTenant < 1 || c.HostsPerTenant > 1000:
		return fmt.Errorf("scale: hosts per tenant %d out of range 1..1000", c.HostsPerTenant)
	case c.SwitchesPerTenant < 1 || c.SwitchesPerTenant > c.HostsPerTenant:
		return fmt.Errorf("scale: switches per tenant %d out of range 1..%d (hosts per tenant)", c.SwitchesPerTenant, c.HostsPerTenant)
	}
	return nil
}

// Uplink is the OpenFlow port number of every edge bridge's uplink (the
// patch port to its gateway); host ports are numbered from 1.
const Uplink = 65000

// Fabric is a synthetic infrastructure: pure data, deterministic for a
// given Config.
type Fabric struct {
	Config Config
	// Infra lists the clouds and their VMs, for topology.Validate.
	Infra topology.Infra
	// Sites are the clouds as the pipeline sees them: gateway DPID
	// 0x100·(c+1), edge bridge DPIDs 0x100·(c+1)+v+1 (v = 0..VMsPerCloud-1),
	// gateway downlink v+1 to edge v, tunnel ports numbered by
	// tunnels.AssignOFPorts.
	Sites []pipeline.Site
	// Tree is tunnels.MST over the clouds with cost |i-j| between cloud i
	// and cloud j (a chain: the worst diameter an MST can have).
	Tree tunnels.Plan
	// EdgeDPIDs are all edge bridges, cloud-major (cloud 0's VMs first).
	EdgeDPIDs []pipeline.DPID
	// next is the next free host port per edge bridge.
	next map[pipeline.DPID]uint32
	// placed counts the hosts placed so far (round-robin position).
	placed int
}

// CloudName returns the name of cloud c (0-based): "c01", "c02", …
func CloudName(c int) string { return fmt.Sprintf("c%02d", c+1) }

// VMName returns the name of VM v (0-based) of a cloud: "vm1", "vm2", …
func VMName(v int) string { return fmt.Sprintf("vm%d", v+1) }

// NewFabric builds the infrastructure of cfg (no tenants yet).
func NewFabric(cfg Config) (*Fabric, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Fabric{Config: cfg, Infra: topology.Infra{Clouds: map[string][]string{}}, next: map[pipeline.DPID]uint32{}}
	var sites []tunnels.Site
	costs := tunnels.Costs{}
	for c := 0; c < cfg.Clouds; c++ {
		sites = append(sites, tunnels.Site{Name: CloudName(c), Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(c + 1)})})
		for d := 0; d < c; d++ {
			costs.Set(CloudName(d), CloudName(c), float64(c-d))
		}
	}
	tree, err := tunnels.MST(sites, costs)
	if err != nil {
		return nil, fmt.Errorf("scale: tunnel tree: %w", err)
	}
	f.Tree = tree
	for c := 0; c < cfg.Clouds; c++ {
		name := CloudName(c)
		gw := pipeline.DPID(0x100 * (c + 1))
		site := pipeline.Site{Name: name, Gateway: pipeline.Gateway{DPID: gw, Downlinks: map[pipeline.DPID]uint32{}, Tunnels: map[string]uint32{}}}
		ports, err := tunnels.AssignOFPorts(tree.Peers(name), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("scale: cloud %s: tunnel ports: %w", name, err)
		}
		for peer, p := range ports {
			site.Gateway.Tunnels[peer] = uint32(p)
		}
		for v := 0; v < cfg.VMsPerCloud; v++ {
			d := gw + pipeline.DPID(v+1)
			site.Edges = append(site.Edges, pipeline.EdgeBridge{DPID: d, Uplink: Uplink})
			site.Gateway.Downlinks[d] = uint32(v + 1)
			f.EdgeDPIDs = append(f.EdgeDPIDs, d)
			f.Infra.Clouds[name] = append(f.Infra.Clouds[name], VMName(v))
			f.next[d] = 1
		}
		f.Sites = append(f.Sites, site)
	}
	return f, nil
}

// Tenant is one synthetic tenant: its topology and where its hosts are
// plugged in.
type Tenant struct {
	Topology *topology.Topology
	Bindings []pipeline.Binding
}

// TenantName returns the name of tenant i: "t00001", … ("big" tenants
// use their own names).
func TenantName(i int) string { return fmt.Sprintf("t%05d", i+1) }

// AddTenant builds a tenant called name with hosts hosts on switches
// virtual switches (chain s1 — s2 — …, link ports 100000 and 100001),
// and places its hosts: host k goes to the next edge bridge in a round-robin over all
// edge bridges (cloud-major order), on the bridge's next free port, so
// consecutive hosts sit on different bridges and a 10-host tenant on 32
// bridges spans 10 bridges in 3 clouds. Hosts are pinned to their VM.
// Every tenant reuses the same host MACs (00:00:00:00:HH:HH) and IPs
// (10.0.HH.HH/16): tenants' address spaces overlap, as they may.
// Deterministic: the same sequence of calls gives the same tenants.
func (f *Fabric) AddTenant(name string, hosts, switches int) (Tenant, error) {
	if hosts < 1 || hosts > 0xfffe || switches < 1 || switches > hosts {
		return Tenant{}, fmt.Errorf("scale: tenant %s: %d hosts on %d switches: want 1 <= switches <= hosts <= 65534", name, hosts, switches)
	}
	tp := &topology.Topology{Tenant: name, Apps: topology.DefaultApps(), Links: []topology.Link{}}
	for s := 0; s < switches; s++ {
		tp.Switches = append(tp.Switches, topology.Switch{Name: fmt.Sprintf("s%d", s+1)})
		if s > 0 {
			tp.Links = append(tp.Links, topology.Link{
				A: topology.Endpoint{Switch: fmt.Sprintf("s%d", s), Port: 100001},
				B: topology.Endpoint{Switch: fmt.Sprintf("s%d", s+1), Port: 100000}})
		}
	}
	var t Tenant
	per := (hosts + switches - 1) / switches
	for k := 0; k < hosts; k++ {
		e := f.placed % len(f.EdgeDPIDs)
		f.placed++
		d := f.EdgeDPIDs[e]
		cloud, vm := e/f.Config.VMsPerCloud, e%f.Config.VMsPerCloud
		port := f.next[d]
		if port >= Uplink {
			return Tenant{}, fmt.Errorf("scale: edge bridge %s has no free host port left", d)
		}
		f.next[d]++
		hn := fmt.Sprintf("h%d", k+1)
		tp.Hosts = append(tp.Hosts, topology.Host{
			Name: hn, MAC: addr.MACFromUint64(uint64(k + 1)).String(),
			IP:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte((k + 1) >> 8), byte(k + 1)}), 16).String(),
			Switch: fmt.Sprintf("s%d", k/per+1), Port: uint32(k%per + 1), Cloud: CloudName(cloud), VM: VMName(vm)})
		t.Bindings = append(t.Bindings, pipeline.Binding{Tenant: name, Host: hn, Bridge: d, Port: port})
	}
	t.Topology = tp
	return t, nil
}

// Tenants builds the Config's Tenants tenants (TenantName(0) …) with
// AddTenant.
func (f *Fabric) Tenants() ([]Tenant, error) {
	out := make([]Tenant, 0, f.Config.Tenants)
	for i := 0; i < f.Config.Tenants; i++ {
		t, err := f.AddTenant(TenantName(i), f.Config.HostsPerTenant, f.Config.SwitchesPerTenant)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Model returns the pipeline model of f with tenants ts, without the
// store: tenant IDs allocated lowest first (addr.TenantAllocator) and host
// indices 1, 2, … in topology order, as the store allocates them for new
// tenants; and every tenant's view by name.
func (f *Fabric) Model(ts []Tenant) (*pipeline.Model, map[string]*pipeline.View, error) {
	m := &pipeline.Model{Sites: f.Sites, Tree: f.Tree}
	views := make(map[string]*pipeline.View, len(ts))
	var ids addr.TenantAllocator
	for _, t := range ts {
		id, err := ids.Allocate()
		if err != nil {
			return nil, nil, fmt.Errorf("scale: tenant %s: %w", t.Topology.Tenant, err)
		}
		hosts := make(map[string]addr.HostIndex, len(t.Topology.Hosts))
		for i, h := range t.Topology.Hosts {
			hosts[h.Name] = addr.HostIndex(i + 1)
		}
		pt := pipeline.Tenant{ID: id, Topology: t.Topology, Hosts: hosts}
		v, err := pipeline.NewView(pt)
		if err != nil {
			return nil, nil, fmt.Errorf("scale: %w", err)
		}
		views[v.Name] = v
		m.Tenants = append(m.Tenants, pt)
		m.Bindings = append(m.Bindings, t.Bindings...)
	}
	return m, views, nil
}
