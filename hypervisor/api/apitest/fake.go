// Package apitest provides Fake, an in-memory api.Service for tests of the
// REST handler, the client and cmd/skyctl. It does no validation of its own:
// set Err to make the next calls fail the way the core would.
package apitest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// UpdatedAt is the fixed time Fake stamps on every apply (2026-11-22T05:00:00Z),
// so outputs are reproducible.
func UpdatedAt() time.Time { return time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC) }

// Fake is an in-memory api.Service. It assigns tenant IDs from addr.FirstTenantID (512) in apply
// order, bumps a tenant's generation on every apply, and returns a fixed
// mapping (see MappingFor) and physical topology. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	tenants map[string]*fakeTenant
	nextID  addr.TenantID
	calls   []string

	// Err, when set, is returned by every method except Health.
	Err error
	// ApplyErr, when set, is returned by ApplyTenant and ApplyTenants.
	ApplyErr error
	// PanicMsg, when set, makes every method except Health panic with it.
	PanicMsg string
	// HealthValue is what Health returns.
	HealthValue api.Health
	// Physical is what PhysicalTopology returns.
	Physical api.PhysicalTopology
	// InfraValue is what Infra returns: by default the lab's sites "aws",
	// "gcp" and "azure", each with VMs "vm1" and "vm2".
	InfraValue topology.Infra
}

type fakeTenant struct {
	status api.TenantStatus
	topo   *topology.Topology
}

// New returns an empty Fake with a healthy status and a small physical
// topology: site "aws" with gateway 0x100 and VM switch 0x101, one tunnel.
func New() *Fake {
	return &Fake{
		tenants: map[string]*fakeTenant{},
		nextID:  addr.FirstTenantID,
		InfraValue: topology.Infra{Clouds: map[string][]string{
			"aws": {"vm1", "vm2"}, "gcp": {"vm1", "vm2"}, "azure": {"vm1", "vm2"}}},
		HealthValue: api.Health{Status: api.HealthOK, Version: "test", UptimeSeconds: 12.5},
		Physical: api.PhysicalTopology{
			Sites: []api.Site{{Name: "aws", Cloud: "aws", Gateway: 0x100, Endpoint: "172.31.0.1"}},
			Switches: []api.PhysicalSwitch{
				{DPID: 0x100, Site: "aws", Role: api.RoleGateway, Connected: true, Address: "127.0.0.1:40000", Ports: 3},
				{DPID: 0x101, Site: "aws", VM: "vm1", Role: api.RoleVM, Connected: false, Ports: 2},
			},
			Links: []api.PhysicalLink{{SrcDPID: 0x100, SrcPort: 1, DstDPID: 0x101, DstPort: 1}},
			Tunnels: []api.GatewayTunnel{
				{Name: "aws-azure", Type: "vxlan", A: "aws", B: "azure", LocalIP: "172.31.0.1", RemoteIP: "172.31.0.2", Key: 0, Up: true,
					InTree: true, BFD: &api.TunnelBFD{State: "up", Forwarding: true, Ends: []api.TunnelBFDEnd{
						{Site: "aws", State: "up", Forwarding: true, RemoteState: "up", FlapCount: 1},
						{Site: "azure", State: "up", Forwarding: true, RemoteState: "up", FlapCount: 1}}}},
				// routed around: BFD declared it down, its ports stay as a probe
				{Name: "aws-gcp", Type: "vxlan", A: "aws", B: "gcp", LocalIP: "172.31.0.1", RemoteIP: "172.31.0.3", Key: 0, Up: true,
					InTree: false, BFD: &api.TunnelBFD{State: "down", Diagnostic: "Control Detection Time Expired", Ends: []api.TunnelBFDEnd{
						{Site: "aws", State: "down", Diagnostic: "Control Detection Time Expired", RemoteState: "down", FlapCount: 2},
						{Site: "gcp", State: "down", Diagnostic: "Control Detection Time Expired", RemoteState: "down", FlapCount: 2}}}},
			},
		},
	}
}

// Calls returns the names of the Service methods called so far, in order.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Stored returns the topology last applied for name, or nil.
func (f *Fake) Stored(name string) *topology.Topology {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tenants[name]; ok {
		return t.topo
	}
	return nil
}

func (f *Fake) enter(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	if f.PanicMsg != "" {
		panic(f.PanicMsg)
	}
	return f.Err
}

func (f *Fake) apply(t *topology.Topology) api.TenantStatus {
	ft, ok := f.tenants[t.Tenant]
	if !ok {
		ft = &fakeTenant{status: api.TenantStatus{Tenant: t.Tenant, TenantID: f.nextID, State: api.TenantActive, CreatedAt: UpdatedAt()}}
		f.nextID++
		f.tenants[t.Tenant] = ft
	}
	ft.topo = t
	ft.status.Generation++
	ft.status.UpdatedAt = UpdatedAt()
	ft.status.Switches, ft.status.Links, ft.status.Hosts, ft.status.HostsBound = 2, 1, 1, 1
	return ft.status
}

// Infra implements api.Service.
func (f *Fake) Infra(context.Context) (topology.Infra, error) {
	if err := f.enter("Infra"); err != nil {
		return topology.Infra{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.InfraValue, nil
}

// ApplyTenant implements api.Service.
func (f *Fake) ApplyTenant(_ context.Context, t *topology.Topology) (api.TenantStatus, error) {
	if err := f.enter("ApplyTenant"); err != nil {
		return api.TenantStatus{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ApplyErr != nil {
		return api.TenantStatus{}, f.ApplyErr
	}
	return f.apply(t), nil
}

// ApplyTenants implements api.Service.
func (f *Fake) ApplyTenants(_ context.Context, ts []*topology.Topology) ([]api.TenantStatus, error) {
	if err := f.enter("ApplyTenants"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ApplyErr != nil {
		return nil, f.ApplyErr
	}
	out := make([]api.TenantStatus, 0, len(ts))
	for _, t := range ts {
		out = append(out, f.apply(t))
	}
	return out, nil
}

// DeleteTenant implements api.Service.
func (f *Fake) DeleteTenant(_ context.Context, name string) error {
	if err := f.enter("DeleteTenant"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tenants[name]; !ok {
		return fmt.Errorf("tenant %q: %w", name, api.ErrNotFound)
	}
	delete(f.tenants, name)
	return nil
}

// Tenants implements api.Service.
func (f *Fake) Tenants(context.Context) ([]api.TenantStatus, error) {
	if err := f.enter("Tenants"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]api.TenantStatus, 0, len(f.tenants))
	for _, t := range f.tenants {
		out = append(out, t.status)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out, nil
}

// Tenant implements api.Service.
func (f *Fake) Tenant(_ context.Context, name string) (api.TenantDetail, error) {
	if err := f.enter("Tenant"); err != nil {
		return api.TenantDetail{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tenants[name]
	if !ok {
		return api.TenantDetail{}, fmt.Errorf("tenant %q: %w", name, api.ErrNotFound)
	}
	return api.TenantDetail{TenantStatus: t.status, Topology: t.topo, Mapping: MappingFor(t.status.Tenant, t.status.TenantID)}, nil
}

// Mapping implements api.Service.
func (f *Fake) Mapping(_ context.Context, name string) (api.Mapping, error) {
	if err := f.enter("Mapping"); err != nil {
		return api.Mapping{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tenants[name]
	if !ok {
		return api.Mapping{}, fmt.Errorf("tenant %q: %w", name, api.ErrNotFound)
	}
	return MappingFor(t.status.Tenant, t.status.TenantID), nil
}

// PhysicalTopology implements api.Service.
func (f *Fake) PhysicalTopology(context.Context) (api.PhysicalTopology, error) {
	if err := f.enter("PhysicalTopology"); err != nil {
		return api.PhysicalTopology{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Physical, nil
}

// Health implements api.Service.
func (f *Fake) Health(context.Context) api.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Health")
	return f.HealthValue
}

// MappingFor is the fixed mapping Fake reports for every tenant: virtual
// switch s1 (virtual DPID 1) on VM switch 0x101 with host h1 on port 1, and
// port 2 over tunnel aws-azure towards s2; h1's fabric MAC carries id.
func MappingFor(tenant string, id addr.TenantID) api.Mapping {
	return api.Mapping{
		Tenant: tenant, TenantID: id,
		Switches: []api.SwitchMapping{{Name: "s1", VirtualDPID: 0x1, Site: "aws", Ports: []api.PortMapping{
			{VirtualPort: 1, Kind: api.PortLocal, PhysicalDPID: 0x101, PhysicalPort: 5, Peer: "host:h1"},
			{VirtualPort: 2, Kind: api.PortTunnel, PhysicalDPID: 0x100, PhysicalPort: 102, Tunnel: "aws-azure", Peer: "switch:s2:1"},
		}}},
		Links: []api.LinkMapping{{A: "s1:2", B: "s2:1",
			Path:    []api.Hop{{DPID: 0x101, InPort: 5, OutPort: 1}, {DPID: 0x100, InPort: 1, OutPort: 102}},
			Tunnels: []string{"aws-azure"}}},
		Hosts: []api.HostMapping{{Name: "h1", MAC: addr.MAC{0, 0, 0, 0, 0, 1},
			FabricMAC: addr.FabricMAC(id, 1), IP: "10.0.0.1/24",
			Switch: "s1", Port: 1, Site: "aws", IfaceID: tenant + "/h1", Binding: api.BindingBound,
			PhysicalDPID: 0x101, PhysicalPort: 5}},
	}
}

var _ api.Service = (*Fake)(nil)
