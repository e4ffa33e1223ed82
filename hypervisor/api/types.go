package api

import (
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// DPID is an OpenFlow datapath ID (OpenFlow 1.3.5 section 7.3.1). It is
// topology.DPID: on the wire a JSON string, "00:00:00:00:00:00:01:01" (the
// form ovs-ofctl prints; responses always use it) or "0x101".
type DPID = topology.DPID

// TenantState is the life-cycle state of a tenant as the core reports it.
type TenantState string

// Tenant states.
const (
	// TenantPending: stored and given a tenant ID, not yet (fully) mapped
	// onto the physical network (e.g. a switch it needs is not connected).
	TenantPending TenantState = "pending"
	// TenantActive: every virtual switch and link is mapped and installed.
	TenantActive TenantState = "active"
	// TenantDegraded: mapped, but some part is down (see Message).
	TenantDegraded TenantState = "degraded"
	// TenantFailed: the core could not map the tenant (see Message).
	TenantFailed TenantState = "failed"
)

// TenantStatus is one tenant's summary: GET /v1/tenants lists them; PUT and
// POST return them for the tenants they applied.
type TenantStatus struct {
	// Tenant is the tenant's unique name (the topology's "tenant").
	Tenant string `json:"tenant"`
	// TenantID is the 16-bit tenant ID written into the first 16 bits of
	// every fabric MAC of this tenant (the paper, section III; layout in
	// package addr), a JSON number (512 is MAC prefix 02:00). Never 0.
	TenantID addr.TenantID `json:"tenant_id"`
	// Generation counts the applies that changed this tenant's topology,
	// starting at 1; applying an identical topology leaves it unchanged
	// (store.Tenant.Generation).
	Generation uint64 `json:"generation"`
	// State is the tenant's life-cycle state; Message says why when it is
	// not active.
	State   TenantState `json:"state"`
	Message string      `json:"message,omitempty"`
	// Switches, Links and Hosts count the virtual elements of the topology;
	// HostsBound counts hosts whose port binding (external_ids:iface-id) has
	// been seen on a physical switch.
	Switches   int `json:"switches"`
	Links      int `json:"links"`
	Hosts      int `json:"hosts"`
	HostsBound int `json:"hosts_bound"`
	// CreatedAt and UpdatedAt are when the tenant was created and its
	// topology last changed (UTC, RFC 3339).
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TenantDetail is GET /v1/tenants/{name}: the status, the stored topology
// exactly as applied, and how it maps onto the physical network.
type TenantDetail struct {
	TenantStatus
	Topology *topology.Topology `json:"topology"`
	Mapping  Mapping            `json:"mapping"`
}

// Mapping is GET /v1/tenants/{name}/mapping: how one tenant's virtual network
// sits on the physical one.
type Mapping struct {
	Tenant   string          `json:"tenant"`
	TenantID addr.TenantID   `json:"tenant_id"`
	Switches []SwitchMapping `json:"switches"`
	Links    []LinkMapping   `json:"links"`
	Hosts    []HostMapping   `json:"hosts"`
}

// SwitchMapping maps one virtual switch: the DPID the tenant's apps see and,
// per virtual port, where that port really is.
type SwitchMapping struct {
	Name string `json:"name"`
	// VirtualDPID is the datapath ID presented to the tenant's apps.
	VirtualDPID DPID `json:"virtual_dpid"`
	// Site is the site (cloud) the virtual switch is placed in.
	Site  string        `json:"site"`
	Ports []PortMapping `json:"ports"`
}

// PortKind says what a virtual port is realised by.
type PortKind string

// Port kinds.
const (
	// PortLocal: a port of a physical switch (PhysicalDPID, PhysicalPort).
	PortLocal PortKind = "local"
	// PortTunnel: an inter-site tunnel port (Tunnel names it) on the
	// physical switch PhysicalDPID, port PhysicalPort.
	PortTunnel PortKind = "tunnel"
	// PortUnmapped: not yet mapped (e.g. the host is not bound).
	PortUnmapped PortKind = "unmapped"
)

// PortMapping maps one virtual port (OpenFlow port number as the tenant sees
// it) to a physical switch port or a tunnel.
type PortMapping struct {
	VirtualPort  uint32   `json:"virtual_port"`
	Kind         PortKind `json:"kind"`
	PhysicalDPID DPID     `json:"physical_dpid,omitempty"`
	PhysicalPort uint32   `json:"physical_port,omitempty"`
	// Tunnel is the tunnel's name when Kind is "tunnel".
	Tunnel string `json:"tunnel,omitempty"`
	// Peer says what the port connects to in the virtual topology:
	// "host:<name>" or "switch:<name>:<port>".
	Peer string `json:"peer,omitempty"`
}

// LinkMapping maps one virtual link to the physical path that carries it.
type LinkMapping struct {
	// A and B are the link's ends, "<switch>:<port>" in virtual terms.
	A string `json:"a"`
	B string `json:"b"`
	// Path lists the physical hops, in order from A to B.
	Path []Hop `json:"path"`
	// Tunnels names the inter-site tunnels on the path, in order.
	Tunnels []string `json:"tunnels,omitempty"`
}

// Hop is one physical switch on a path: in at InPort, out at OutPort.
type Hop struct {
	DPID    DPID   `json:"dpid"`
	InPort  uint32 `json:"in_port"`
	OutPort uint32 `json:"out_port"`
}

// BindingState says whether a host's port has been found on a physical
// switch (by its OVSDB external_ids:iface-id "<tenant>/<host>").
type BindingState string

// Binding states.
const (
	BindingBound   BindingState = "bound"
	BindingUnbound BindingState = "unbound"
)

// HostMapping maps one tenant host: its own addresses, its fabric MAC (tenant
// ID in the first 16 bits) and where it is plugged in.
type HostMapping struct {
	Name string `json:"name"`
	// MAC is the host's own MAC (what the tenant configured); FabricMAC is
	// the MAC it carries inside the fabric (addr.FabricMAC: tenant ID then
	// host index). Both "aa:bb:cc:dd:ee:ff" on the wire.
	MAC       addr.MAC `json:"mac"`
	FabricMAC addr.MAC `json:"fabric_mac"`
	// IP is the host's own address with prefix length ("10.0.0.1/24").
	IP string `json:"ip,omitempty"`
	// Switch and Port are the virtual attachment point.
	Switch string `json:"switch"`
	Port   uint32 `json:"port"`
	Site   string `json:"site"`
	// IfaceID is the OVSDB external_ids:iface-id that binds the host.
	IfaceID string       `json:"iface_id"`
	Binding BindingState `json:"binding"`
	// PhysicalDPID and PhysicalPort are set when Binding is "bound".
	PhysicalDPID DPID   `json:"physical_dpid,omitempty"`
	PhysicalPort uint32 `json:"physical_port,omitempty"`
}

// PhysicalTopology is GET /v1/topology/physical: what the hypervisor knows of
// the physical network.
type PhysicalTopology struct {
	Sites    []Site           `json:"sites"`
	Switches []PhysicalSwitch `json:"switches"`
	// Links are switch-to-switch links discovered by LLDP inside sites.
	Links []PhysicalLink `json:"links"`
	// Tunnels are the gateway-to-gateway tunnels (a minimum spanning tree
	// of the sites, or a full mesh if so configured).
	Tunnels []GatewayTunnel `json:"tunnels"`
}

// Site is one cloud site (a cloud region or an on-premise cluster).
type Site struct {
	Name  string `json:"name"`
	Cloud string `json:"cloud,omitempty"`
	// Gateway is the DPID of the site's gateway switch (0 if unknown).
	Gateway DPID `json:"gateway,omitempty"`
	// Endpoint is the gateway's public tunnel endpoint address.
	Endpoint string `json:"endpoint,omitempty"`
}

// SwitchRole is what a physical switch is for.
type SwitchRole string

// Switch roles.
const (
	RoleVM      SwitchRole = "vm"
	RoleGateway SwitchRole = "gateway"
)

// PhysicalSwitch is one Open vSwitch bridge Skyvisor controls.
type PhysicalSwitch struct {
	DPID DPID       `json:"dpid"`
	Site string     `json:"site"`
	VM   string     `json:"vm,omitempty"`
	Role SwitchRole `json:"role"`
	// Connected is true while an OpenFlow session is up; Address is the
	// switch's remote address ("ip:port") when connected.
	Connected bool   `json:"connected"`
	Address   string `json:"address,omitempty"`
	// Ports is the number of ports the switch reported (OFPMP_PORT_DESC).
	Ports int `json:"ports"`
}

// PhysicalLink is one direction-free link between two switch ports.
type PhysicalLink struct {
	SrcDPID DPID   `json:"src_dpid"`
	SrcPort uint32 `json:"src_port"`
	DstDPID DPID   `json:"dst_dpid"`
	DstPort uint32 `json:"dst_port"`
}

// GatewayTunnel is one tunnel between two sites' gateways.
type GatewayTunnel struct {
	Name string `json:"name"`
	// Type is "vxlan", "gre" or "geneve".
	Type string `json:"type"`
	A    string `json:"a"`
	B    string `json:"b"`
	// LocalIP and RemoteIP are the underlay endpoints as seen from A.
	LocalIP  string `json:"local_ip,omitempty"`
	RemoteIP string `json:"remote_ip,omitempty"`
	// Key is the tunnel key / VNI; 0 means flow-based (key=flow).
	Key uint32 `json:"key"`
	// Up is true when the tunnel's ports exist on both gateways.
	Up bool `json:"up"`
	// InTree is true for a tunnel of the current tree (or of the full
	// mesh) that carries traffic; false for a tunnel BFD declared down
	// and the hypervisor routed around: its ports stay on both gateways
	// as a probe, BFD running, until it is up again and readmitted.
	InTree bool `json:"in_tree"`
	// BFD is the tunnel's BFD state (RFC 5880 as ovs-vswitchd reports it
	// in bfd_status); absent when liveness is disabled or neither port
	// has been seen yet.
	BFD *TunnelBFD `json:"bfd,omitempty"`
}

// TunnelBFD is the BFD state of one gateway tunnel: a summary and the
// report of each end's port.
type TunnelBFD struct {
	// State is "up" when both ends are up and forwarding; otherwise the
	// state of the first end (A, then B) that is not: "down", "init",
	// "admin_down", "up" (up but not forwarding), or "" when that end
	// reports nothing yet.
	State string `json:"state"`
	// Forwarding is true when both ends are up and forwarding.
	Forwarding bool `json:"forwarding"`
	// Diagnostic is that end's reason for its last state change (RFC 5880
	// section 4.1, as ovs-vswitchd names it, e.g. "Control Detection Time
	// Expired"); "" when up or when there is none.
	Diagnostic string `json:"diagnostic,omitempty"`
	// Ends are the two ports' own reports, A's end first.
	Ends []TunnelBFDEnd `json:"ends"`
}

// TunnelBFDEnd is what ovs-vswitchd reports of the BFD session of one
// tunnel port (Interface bfd_status).
type TunnelBFDEnd struct {
	// Site is the site whose gateway holds the port.
	Site string `json:"site"`
	// State is the local session state ("" when not reported: no port,
	// or BFD not running yet).
	State      string `json:"state"`
	Forwarding bool   `json:"forwarding"`
	// Diagnostic is the local reason for the last state change ("" for
	// none).
	Diagnostic string `json:"diagnostic,omitempty"`
	// RemoteState is the peer's state as it last signalled it.
	RemoteState string `json:"remote_state,omitempty"`
	// FlapCount counts the changes of forwarding since the session
	// started.
	FlapCount uint64 `json:"flap_count"`
}

// HealthStatus is the overall health of the daemon.
type HealthStatus string

// Health states. GET /v1/health answers 200 for ok and degraded, 503 for
// unavailable.
const (
	HealthOK          HealthStatus = "ok"
	HealthDegraded    HealthStatus = "degraded"
	HealthUnavailable HealthStatus = "unavailable"
)

// Health is GET /v1/health.
type Health struct {
	Status  HealthStatus `json:"status"`
	Version string       `json:"version,omitempty"`
	// UptimeSeconds is the time since the daemon started, in seconds.
	UptimeSeconds float64       `json:"uptime_seconds"`
	Checks        []HealthCheck `json:"checks,omitempty"`
}

// HealthCheck is one component's health ("store", "controller", ...).
type HealthCheck struct {
	Name    string       `json:"name"`
	Status  HealthStatus `json:"status"`
	Message string       `json:"message,omitempty"`
}

// ApplyResult is the response of POST /v1/tenants: the status of every
// tenant applied, in the order of the request.
type ApplyResult struct {
	Tenants []TenantStatus `json:"tenants"`
}

// TenantList is the response of GET /v1/tenants, sorted by name.
type TenantList struct {
	Tenants []TenantStatus `json:"tenants"`
}

// ErrorResponse is the body of every error response.
type ErrorResponse struct {
	// Error is a one-line, human-readable message.
	Error string `json:"error"`
	// Details lists field-level problems (validation), each with the JSON
	// path of the offending value ("$.hosts[1].cloud").
	Details []ErrorDetail `json:"details,omitempty"`
	// RequestID matches the server's access log line for this request.
	RequestID string `json:"request_id,omitempty"`
}

// ErrorDetail is one field-level problem.
type ErrorDetail struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}
