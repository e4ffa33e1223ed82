package controlplane

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/testbed/ofbench"
)

// Names and numbers of the synthetic fabric the hypervisor arm runs on:
// one cloud, one gateway, one VM (edge bridge) per virtual network. They
// are only names: nothing is created in any network namespace.
const (
	// Site is the one cloud of the fabric.
	Site = "cp"
	// GatewayDPID is the gateway's datapath ID (it never connects: the
	// tenants' traffic never leaves the edge bridges in this benchmark).
	GatewayDPID = 0xc0000
	// EdgeDPIDBase + i is the DPID of the edge bridge of network i (1-based).
	EdgeDPIDBase = 0xc0000
	// UplinkPort is every edge bridge's uplink port (patch to the gateway).
	UplinkPort = 100
	// TenantApp is the tenant app every virtual network runs: the reactive
	// L2 learning switch (controller/apps/learning) on the tenant's virtual
	// switch, through the hypervisor's virtual view.
	TenantApp = "learning-reactive"
	// VSwitch is the name of every tenant's one virtual switch.
	VSwitch = "s1"
)

// TenantName is the name of virtual network i (1-based): "cp1", "cp2", ...
func TenantName(i int) string { return fmt.Sprintf("cp%d", i) }

// VMName is the VM (edge bridge) of virtual network i.
func VMName(i int) string { return fmt.Sprintf("vm%d", i) }

// BridgeName is the OVS bridge name of the edge bridge of network i.
func BridgeName(i int) string { return fmt.Sprintf("br-vm%d", i) }

// HostPort is the physical port (on its edge bridge) of the j-th host
// (0-based) of a network's topology; it is also the virtual port number.
func HostPort(j int) uint32 { return uint32(j + 1) }

// HostMAC is the own MAC of host h (1-based) of every tenant: tenants
// reuse the same addresses (00:00:00:00:01:0h), as the paper's isolation
// allows.
func HostMAC(h int) addr.MAC { return addr.MAC{0, 0, 0, 0, 1, byte(h)} }

// Fabric is the generated input of the hypervisor arm.
type Fabric struct {
	// Networks is the number of virtual networks, Hosts the hosts of each.
	Networks, Hosts int
	// InfraFile is the infrastructure file (infra.Load) and StateDir the
	// hypervisor's state directory holding the store with the tenants and
	// their bindings.
	InfraFile, StateDir string
	// ConfigFile is the skyvisor configuration file of the hypervisor arm
	// (retry and audit intervals, see Setup).
	ConfigFile string
	// OfbenchFile is the ofbench fabric description (ofbench -fabric) and
	// Bench the same in memory.
	OfbenchFile string
	Bench       *ofbench.Fabric
	// Tenants are the stored tenants (IDs and host indices), in network
	// order.
	Tenants []*store.Tenant
}

// Topology returns virtual network i's topology: one virtual switch VSwitch
// with hosts h1..hHosts on ports 1..Hosts, in cloud Site pinned to VM
// VMName(i), running TenantApp.
func Topology(i, hosts int) *topology.Topology {
	t := &topology.Topology{Tenant: TenantName(i), Apps: []string{TenantApp},
		Switches: []topology.Switch{{Name: VSwitch}}, Links: []topology.Link{}}
	for h := 1; h <= hosts; h++ {
		t.Hosts = append(t.Hosts, topology.Host{Name: fmt.Sprintf("h%d", h), MAC: HostMAC(h).String(),
			IP: fmt.Sprintf("10.0.0.%d/24", h), Switch: VSwitch, Port: HostPort(h - 1), Cloud: Site, VM: VMName(i)})
	}
	return t
}

// Infra returns the infrastructure of n networks: site Site with gateway
// "gw" (GatewayDPID) and VMs vm1..vmN, each with bridge BridgeName(i)
// (EdgeDPIDBase+i) whose uplink is port UplinkPort. Every OVSDB endpoint
// is ovsdbEndpoint, which nothing serves: the hypervisor's OVSDB side
// (bridges, tunnels, interface watching) fails and retries while its
// OpenFlow side serves the emulated edge bridges, whose host bindings
// come from the store instead of OVSDB.
func Infra(n int, ovsdbEndpoint string) *infra.Infra {
	inf := &infra.Infra{Name: fmt.Sprintf("controlplane-%d", n),
		Sites: []infra.Site{{Name: Site, OVSDB: ovsdbEndpoint, UnderlayIP: "192.0.2.1", GatewayBridge: "gw", GatewayDPID: GatewayDPID}}}
	gw := infra.Switch{Site: Site, Role: infra.RoleGateway, Bridge: "gw", DPID: GatewayDPID}
	for i := 1; i <= n; i++ {
		gw.PatchPorts = append(gw.PatchPorts, infra.PatchPort{Name: fmt.Sprintf("gw-vm%d", i), OFPort: i,
			Peer: fmt.Sprintf("vm%d-gw", i), PeerBridge: BridgeName(i)})
	}
	inf.Switches = append(inf.Switches, gw)
	for i := 1; i <= n; i++ {
		inf.Sites[0].VMs = append(inf.Sites[0].VMs, VMName(i))
		inf.Switches = append(inf.Switches, infra.Switch{Site: Site, Role: infra.RoleVM, VM: VMName(i), Bridge: BridgeName(i),
			DPID: EdgeDPIDBase + uint64(i), PatchPorts: []infra.PatchPort{{Name: fmt.Sprintf("vm%d-gw", i), OFPort: UplinkPort,
				Peer: fmt.Sprintf("gw-vm%d", i), PeerBridge: "gw"}}})
	}
	return inf
}

// Setup writes the hypervisor arm's input for n networks of hosts hosts
// each into dir (created): the infrastructure file, a state directory
// whose store holds the n tenants and one binding per host (host hk of
// network i on port k of edge bridge i, as OVSDB would report it), a
// skyvisor configuration file that keeps the hypervisor's OVSDB retries
// and audits out of the measurement (retry after an hour, no audit), and
// the ofbench fabric description: edge bridge i sends the packet-ins its
// pipeline would (FabricFor).
func Setup(dir string, n, hosts int) (*Fabric, error) {
	if n < 1 || hosts < 2 {
		return nil, fmt.Errorf("controlplane: setup: %d networks of %d hosts: want >= 1 and >= 2", n, hosts)
	}
	f := &Fabric{Networks: n, Hosts: hosts, InfraFile: filepath.Join(dir, "infra.json"), StateDir: filepath.Join(dir, "state"),
		ConfigFile: filepath.Join(dir, "skyvisor.yaml"), OfbenchFile: filepath.Join(dir, "fabric.json")}
	if err := os.MkdirAll(f.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("controlplane: setup: %w", err)
	}
	inf := Infra(n, "unix:"+filepath.Join(dir, "no-ovsdb.sock"))
	if err := inf.Validate(); err != nil {
		return nil, fmt.Errorf("controlplane: setup: generated infrastructure: %w", err)
	}
	if err := writeJSON(f.InfraFile, inf); err != nil {
		return nil, err
	}
	cfg := "hypervisor:\n  retry_interval: 1h\n  audit_interval: -1s\n"
	if err := os.WriteFile(f.ConfigFile, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("controlplane: setup: %w", err)
	}
	st, err := store.Open(filepath.Join(f.StateDir, hypervisor.StoreFile), store.WithNoSync())
	if err != nil {
		return nil, fmt.Errorf("controlplane: setup: %w", err)
	}
	defer st.Close()
	var tps []*topology.Topology
	for i := 1; i <= n; i++ {
		tps = append(tps, Topology(i, hosts))
	}
	if f.Tenants, err = st.PutTenants(tps); err != nil {
		return nil, fmt.Errorf("controlplane: setup: %w", err)
	}
	for i := 1; i <= n; i++ {
		for h := 1; h <= hosts; h++ {
			b := store.Binding{IfaceID: topology.IfaceID(TenantName(i), fmt.Sprintf("h%d", h)), Site: Site, VM: VMName(i),
				Bridge: BridgeName(i), DPID: topology.DPID(EdgeDPIDBase + uint64(i)), PortName: fmt.Sprintf("vm%d-h%d", i, h), OFPort: HostPort(h - 1)}
			if err := st.PutBinding(b); err != nil {
				return nil, fmt.Errorf("controlplane: setup: %w", err)
			}
		}
	}
	if f.Bench, err = FabricFor(f.Tenants); err != nil {
		return nil, err
	}
	if err := writeJSON(f.OfbenchFile, f.Bench); err != nil {
		return nil, err
	}
	return f, nil
}

// FabricFor returns the ofbench fabric of stored tenants: tenant i's hosts
// sit on edge bridge EdgeDPIDBase+i+1, host hk on port k (the ports are
// 1..hosts and UplinkPort). Every packet-in comes from the first tenant
// table (pipeline.TableTenant) with the hypervisor's table-miss cookie
// (pipeline.InfraCookie(0, 0)) and carries the metadata of the sending
// host's virtual port (pipeline.MetadataValue: tenant, vport index,
// unicast, switch index); its source MAC is the sender's fabric MAC (the
// classify table rewrote it) and its destination the receiver's own MAC
// (docs/pipeline.md, "Packet-in and packet-out"). Flow-mods with the
// hypervisor's cookie prefix (pipeline.InfraCookiePrefix) are its own
// pipeline entries, not responses.
func FabricFor(tenants []*store.Tenant) (*ofbench.Fabric, error) {
	fab := &ofbench.Fabric{Table: pipeline.TableTenant, Cookie: pipeline.InfraCookie(0, 0),
		IgnoreCookieMask: 0xffff << 48, IgnoreCookieValue: uint64(pipeline.InfraCookiePrefix) << 48}
	for i, t := range tenants {
		tp, err := t.Parse()
		if err != nil {
			return nil, err
		}
		v, err := pipeline.NewView(pipeline.Tenant{ID: t.ID, Topology: tp, Hosts: t.Hosts})
		if err != nil {
			return nil, fmt.Errorf("controlplane: tenant %s: %w", t.Name, err)
		}
		sw := ofbench.FabricSwitch{DPID: EdgeDPIDBase + uint64(i+1)}
		for j, h := range tp.Hosts {
			hi, ok := v.HostByName(h.Name)
			if !ok {
				return nil, fmt.Errorf("controlplane: tenant %s: host %s not in the view", t.Name, h.Name)
			}
			port := v.Ports[hi.VPort-1]
			sw.Ports = append(sw.Ports, HostPort(j))
			sw.Hosts = append(sw.Hosts, ofbench.FabricHost{
				Port:     HostPort(j),
				Metadata: pipeline.MetadataValue(t.ID, hi.VPort, port.Switch, false),
				SrcMAC:   addr.FabricMAC(t.ID, hi.Index).String(),
				DstMAC:   hi.MAC.String(),
			})
		}
		sw.Ports = append(sw.Ports, UplinkPort)
		fab.Switches = append(fab.Switches, sw)
	}
	if err := fab.Validate(); err != nil {
		return nil, fmt.Errorf("controlplane: generated fabric: %w", err)
	}
	return fab, nil
}

// writeJSON writes v as indented JSON to path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("controlplane: %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	return nil
}
