package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Inventory describes a running lab: what Skyvisor needs to find every OVSDB
// endpoint, switch, gateway, tunnel and host. JSON field names are stable
// (snake_case); `skylab status --json` prints it.
type Inventory struct {
	// Name and Prefix come from the lab file.
	Name   string `json:"name,omitempty"`
	Prefix string `json:"prefix"`
	// StateDir holds the lab's OVS state and the state file.
	StateDir string `json:"state_dir"`
	// Phase is "building" while Up runs (or after it crashed) and "up" after.
	Phase string `json:"phase"`
	// Controller is the OpenFlow target set on every VM and gateway bridge ("none" = no controller).
	Controller string `json:"controller"`
	// MgmtNetns is the management namespace of a tcp controller ("" otherwise).
	MgmtNetns string `json:"mgmt_netns,omitempty"`
	// WireGuard reports an underlay encrypted by wireguard-go.
	WireGuard bool `json:"wireguard"`
	// TunnelType is the lab file's tunnel type (vxlan, gre, geneve), recorded for Skyvisor.
	TunnelType string `json:"tunnel_type"`
	// HostMTU is the MTU of plugged hosts' interfaces.
	HostMTU int `json:"host_mtu"`
	// WAN describes the network between the sites.
	WAN WANInfo `json:"wan"`
	// Sites, Switches (gateways and VMs), Tunnels and Hosts, in lab-file order.
	Sites    []SiteInfo   `json:"sites"`
	Switches []SwitchInfo `json:"switches"`
	Tunnels  []TunnelInfo `json:"tunnels"`
	Hosts    []HostInfo   `json:"hosts"`
	// Costs are the underlay round-trip times between every two gateways,
	// measured by Up when wan.measure_rtt is set (or by `skylab rtt`), with
	// source "measured"; absent otherwise. Skyvisor reads them as the
	// infrastructure's tunnel costs (docs/infra.md).
	Costs []Cost `json:"costs,omitempty"`
	// RTTDuration is how long the last RTT measurement took.
	RTTDuration time.Duration `json:"rtt_duration_ns,omitempty"`
	// UpDuration is how long Up took (0 while building).
	UpDuration time.Duration `json:"up_duration_ns,omitempty"`
}

// WANInfo describes the WAN namespace.
type WANInfo struct {
	// Netns is the WAN namespace.
	Netns string `json:"netns"`
	// Mode is "bridge" (Linux bridge br-wan) or "relay" (testbed/wan delay relay).
	Mode string `json:"mode"`
	// Subnet is the underlay subnet, e.g. 172.31.0.0/24.
	Subnet string `json:"subnet"`
	// DelayMS is the default one-way delay (ms); Pairs override it and
	// may set a rate limit per pair (relay).
	DelayMS float64    `json:"delay_ms"`
	Pairs   []PairSpec `json:"pairs,omitempty"`
	// RateMbit is the default per-site rate limit (0 = none).
	RateMbit float64 `json:"rate_mbit"`
	// LossPercent is the relay's random frame loss in percent.
	LossPercent float64 `json:"loss_percent,omitempty"`
	// RelayPID is the delay relay's process ID (0 in bridge mode or when it is not running).
	RelayPID int `json:"relay_pid,omitempty"`
}

// SiteInfo describes one cloud.
type SiteInfo struct {
	Name string `json:"name"`
	// Index is the site's 1-based position in the lab file (used in names, DPIDs).
	Index int `json:"index"`
	// Netns runs the site's ovsdb-server and ovs-vswitchd.
	Netns string `json:"netns"`
	// OVSDB is the site's OVSDB endpoint ("unix:/.../db.sock"), reachable from any namespace.
	OVSDB string `json:"ovsdb"`
	// RunDir is the site's OVS_RUNDIR (ovs-ofctl/ovs-appctl need it).
	RunDir string `json:"run_dir"`
	// UnderlayIP / UnderlayMAC are the site's public address (on br-phy) and its MAC;
	// tunnel endpoints use them. UnderlayCIDR adds the WAN prefix length.
	UnderlayIP   string `json:"underlay_ip"`
	UnderlayCIDR string `json:"underlay_cidr"`
	UnderlayMAC  string `json:"underlay_mac"`
	// PublicIP is the site's address on the WAN (= UnderlayIP unless WireGuard).
	PublicIP string `json:"public_ip"`
	// EdgeNetns and WGIface are the site's VPN edge namespace and WireGuard
	// interface (WireGuard labs only); UnderlayIP is then 10.99.<i>.1.
	EdgeNetns string `json:"edge_netns,omitempty"`
	WGIface   string `json:"wg_iface,omitempty"`
	// UnderlayBridge is the bridge holding the WAN (or uplink) port (br-phy).
	UnderlayBridge string `json:"underlay_bridge"`
	// ControllerTarget is the target OVS holds for the site's bridges (for a
	// unix: lab target, "unix:<run_dir>/controller.sock", a symlink to it:
	// ovs-vswitchd accepts unix sockets only below its run directory).
	ControllerTarget string `json:"controller_target"`
	// MgmtIP is the site's address in the management namespace (tcp controllers only).
	MgmtIP string `json:"mgmt_ip,omitempty"`
	// GatewayBridge is the gateway bridge ("gw") and GatewayDPID its datapath ID.
	GatewayBridge  string `json:"gateway_bridge"`
	GatewayDPID    uint64 `json:"gateway_dpid"`
	GatewayDPIDHex string `json:"gateway_dpid_hex"`
	// VMs are the site's VM names in order.
	VMs []string `json:"vms"`
	// OVSDBServerPID and VSwitchdPID are the site's OVS daemons (0 = not running).
	OVSDBServerPID int `json:"ovsdb_server_pid"`
	VSwitchdPID    int `json:"ovs_vswitchd_pid"`
	// RateMbit is the rate limit on the site's WAN link (0 = none).
	RateMbit float64 `json:"rate_mbit,omitempty"`
}

// SwitchInfo describes one OpenFlow switch (a VM bridge or a gateway).
type SwitchInfo struct {
	Site string `json:"site"`
	// Role is "gateway" or "vm".
	Role string `json:"role"`
	// VM is the VM name ("" for a gateway); Bridge the OVS bridge name.
	VM     string `json:"vm,omitempty"`
	Bridge string `json:"bridge"`
	// DPID is the datapath ID read back from OVS (0 if unreadable); DPIDHex its 16 hex digits.
	DPID    uint64 `json:"dpid"`
	DPIDHex string `json:"dpid_hex"`
	// OVSDB is the endpoint of the site's database holding this bridge.
	OVSDB string `json:"ovsdb"`
	// PatchPorts are the bridge's patch ports (VM uplink or gateway downlinks).
	PatchPorts []PatchPort `json:"patch_ports"`
}

// PatchPort is one end of a VM<->gateway patch link.
type PatchPort struct {
	Name string `json:"name"`
	// OFPort is the OpenFlow port number (-1 if OVS has not assigned one).
	OFPort int `json:"ofport"`
	// Peer is the patch port at the other end, on PeerBridge.
	Peer       string `json:"peer"`
	PeerBridge string `json:"peer_bridge"`
}

// TunnelInfo is a tunnel port found on a gateway bridge (created by Skyvisor).
type TunnelInfo struct {
	Site   string `json:"site"`
	Bridge string `json:"bridge"`
	Port   string `json:"port"`
	// Type is the OVS interface type (vxlan, gre, geneve, ...).
	Type   string `json:"type"`
	OFPort int    `json:"ofport"`
	// RemoteIP, LocalIP and Key are the interface options of the same names.
	RemoteIP string `json:"remote_ip,omitempty"`
	LocalIP  string `json:"local_ip,omitempty"`
	Key      string `json:"key,omitempty"`
	// Options are all interface options.
	Options map[string]string `json:"options,omitempty"`
}

// HostInfo is a plugged host.
type HostInfo struct {
	Name string `json:"name"`
	// Netns is the host's namespace; Iface its interface there (eth0).
	Netns string `json:"netns"`
	Iface string `json:"iface"`
	// Site, VM and Bridge say where it is plugged.
	Site   string `json:"site"`
	VM     string `json:"vm"`
	Bridge string `json:"bridge"`
	MAC    string `json:"mac"`
	IP     string `json:"ip,omitempty"`
	// IfaceID is external_ids:iface-id of the OVS interface.
	IfaceID string `json:"iface_id"`
	// Port is the OVS port name; OFPort its number (-1 if unknown).
	Port   string `json:"port"`
	OFPort int    `json:"ofport"`
}

// Switch returns the switch with the given site and bridge, or nil.
func (inv *Inventory) Switch(site, bridge string) *SwitchInfo {
	for i := range inv.Switches {
		if inv.Switches[i].Site == site && inv.Switches[i].Bridge == bridge {
			return &inv.Switches[i]
		}
	}
	return nil
}

// Site returns the site with the given name, or nil.
func (inv *Inventory) Site(name string) *SiteInfo {
	for i := range inv.Sites {
		if inv.Sites[i].Name == name {
			return &inv.Sites[i]
		}
	}
	return nil
}

// Host returns the host with the given name, or nil.
func (inv *Inventory) Host(name string) *HostInfo {
	for i := range inv.Hosts {
		if inv.Hosts[i].Name == name {
			return &inv.Hosts[i]
		}
	}
	return nil
}

// ovsView is what the lab reads back from one site's OVSDB.
type ovsView struct {
	dpid   map[string]uint64            // bridge -> datapath ID
	ports  map[string][]string          // bridge -> interface names
	ofport map[string]int               // interface -> ofport
	itype  map[string]string            // interface -> type
	opts   map[string]map[string]string // interface -> options
}

// readOVS reads bridges, ports and interfaces of site i in one ovs-vsctl call.
func readOVS(ctx context.Context, stateDir string, i int) (*ovsView, error) {
	out, err := vsctl(ctx, stateDir, i, "--format=json",
		"--", "--columns=name,ports,datapath_id", "list", "Bridge",
		"--", "--columns=_uuid,interfaces", "list", "Port",
		"--", "--columns=_uuid,name,type,ofport,options", "list", "Interface")
	if err != nil {
		return nil, err
	}
	tables, err := parseVsctlJSON(out)
	if err != nil {
		return nil, err
	}
	if len(tables) != 3 {
		return nil, fmt.Errorf("ovs-vsctl returned %d tables, want 3", len(tables))
	}
	v := &ovsView{dpid: map[string]uint64{}, ports: map[string][]string{}, ofport: map[string]int{},
		itype: map[string]string{}, opts: map[string]map[string]string{}}
	ifName := map[string]string{}
	for _, r := range tables[2] {
		name := r.str("name")
		for _, u := range r.uuids("_uuid") {
			ifName[u] = name
		}
		v.ofport[name] = int(r.num("ofport"))
		v.itype[name] = r.str("type")
		v.opts[name] = r.smap("options")
	}
	portIfs := map[string][]string{}
	for _, r := range tables[1] {
		var names []string
		for _, u := range r.uuids("interfaces") {
			names = append(names, ifName[u])
		}
		for _, u := range r.uuids("_uuid") {
			portIfs[u] = names
		}
	}
	for _, r := range tables[0] {
		b := r.str("name")
		if d, err := strconv.ParseUint(r.str("datapath_id"), 16, 64); err == nil {
			v.dpid[b] = d
		}
		var ifs []string
		for _, u := range r.uuids("ports") {
			ifs = append(ifs, portIfs[u]...)
		}
		sort.Strings(ifs)
		v.ports[b] = ifs
	}
	return v, nil
}

// tunnelTypes are the interface types reported as tunnels.
var tunnelTypes = map[string]bool{"vxlan": true, "gre": true, "geneve": true, "stt": true, "lisp": true, "erspan": true, "ip6gre": true, "gtpu": true, "bareudp": true, "srv6": true}

// inventory builds the Inventory from the state and, unless offline, live OVS reads.
func inventory(ctx context.Context, st *labState) (*Inventory, error) {
	s := &st.Spec
	ctl, _ := ParseController(s.Controller, len(s.Sites))
	inv := &Inventory{
		Name: s.Name, Prefix: s.Prefix, StateDir: s.StateDir, Phase: st.Phase,
		Controller: s.Controller, TunnelType: s.TunnelType, HostMTU: s.HostMTU, WireGuard: s.WireGuard,
		WAN: WANInfo{Netns: WANNetns(s.Prefix), Mode: "bridge", Subnet: s.WAN.Subnet, DelayMS: s.WAN.DelayMS,
			Pairs: s.WAN.Pairs, RateMbit: s.WAN.RateMbit, LossPercent: s.WAN.LossPercent},
		Sites: []SiteInfo{}, Switches: []SwitchInfo{}, Tunnels: []TunnelInfo{}, Hosts: []HostInfo{},
		UpDuration: time.Duration(st.UpNanos), Costs: st.Costs, RTTDuration: time.Duration(st.RTTNanos),
	}
	if s.UsesRelay() {
		inv.WAN.Mode = "relay"
		inv.WAN.RelayPID = livePID(relayPidfile(s.StateDir), s.StateDir+"/")
	}
	if ctl.Kind == "tcp" {
		inv.MgmtNetns = MgmtNetns(s.Prefix)
	}
	bits := strings.SplitN(s.WAN.Subnet, "/", 2)
	views := make([]*ovsView, len(s.Sites)+1)
	readErrs := make([]error, len(s.Sites)+1)
	_ = parallel(len(s.Sites), func(idx int) error {
		views[idx+1], readErrs[idx+1] = readOVS(ctx, s.StateDir, idx+1)
		return nil
	})
	var errs []string
	for idx, site := range s.Sites {
		i := idx + 1
		v := views[i]
		if err := readErrs[i]; err != nil {
			errs = append(errs, fmt.Sprintf("site %s: %v", site.Name, err))
			v = &ovsView{}
			views[i] = v
		}
		si := SiteInfo{
			Name: site.Name, Index: i, Netns: SiteNetns(s.Prefix, i), OVSDB: OVSDBEndpoint(s.StateDir, i),
			RunDir: RunDir(s.StateDir, i), UnderlayIP: TunnelEndpoint(s, i), PublicIP: site.PublicIP,
			UnderlayCIDR: TunnelEndpoint(s, i) + "/" + bits[len(bits)-1],
			UnderlayMAC:  UnderlayMAC(i).String(), UnderlayBridge: UnderlayBridge,
			GatewayBridge: GatewayBridge, GatewayDPID: v.dpid[GatewayBridge], VMs: site.VMs.List(),
			RateMbit: siteRate(s, idx), ControllerTarget: SiteControllerTarget(s.StateDir, i, s.Controller),
		}
		si.GatewayDPIDHex = DPIDString(si.GatewayDPID)
		si.OVSDBServerPID = livePID(filepath.Join(si.RunDir, "ovsdb-server.pid"), s.StateDir+"/")
		si.VSwitchdPID = livePID(filepath.Join(si.RunDir, "ovs-vswitchd.pid"), s.StateDir+"/")
		if s.WireGuard {
			si.UnderlayCIDR = si.UnderlayIP + "/24"
			si.EdgeNetns, si.WGIface = EdgeNetns(s.Prefix, i), WGIface(s.Prefix, i)
		}
		if ctl.Kind == "tcp" {
			si.MgmtIP = mgmtAddr(ctl, i).String()
		}
		inv.Sites = append(inv.Sites, si)

		gwSw := SwitchInfo{Site: site.Name, Role: "gateway", Bridge: GatewayBridge, DPID: v.dpid[GatewayBridge],
			DPIDHex: DPIDString(v.dpid[GatewayBridge]), OVSDB: si.OVSDB, PatchPorts: []PatchPort{}}
		for _, vm := range si.VMs {
			gwSw.PatchPorts = append(gwSw.PatchPorts, PatchPort{Name: GatewayPatch(vm), OFPort: ofp(v, GatewayPatch(vm)),
				Peer: VMPatch(vm), PeerBridge: vm})
		}
		inv.Switches = append(inv.Switches, gwSw)
		for _, vm := range si.VMs {
			inv.Switches = append(inv.Switches, SwitchInfo{Site: site.Name, Role: "vm", VM: vm, Bridge: vm,
				DPID: v.dpid[vm], DPIDHex: DPIDString(v.dpid[vm]), OVSDB: si.OVSDB,
				PatchPorts: []PatchPort{{Name: VMPatch(vm), OFPort: ofp(v, VMPatch(vm)), Peer: GatewayPatch(vm), PeerBridge: GatewayBridge}}})
		}
		for _, name := range v.ports[GatewayBridge] {
			if !tunnelTypes[v.itype[name]] {
				continue
			}
			o := v.opts[name]
			inv.Tunnels = append(inv.Tunnels, TunnelInfo{Site: site.Name, Bridge: GatewayBridge, Port: name,
				Type: v.itype[name], OFPort: v.ofport[name], RemoteIP: o["remote_ip"], LocalIP: o["local_ip"],
				Key: o["key"], Options: o})
		}
	}
	for _, h := range st.Hosts {
		i := s.siteIndex(h.Site)
		hi := HostInfo{Name: h.Name, Netns: HostNetns(s.Prefix, h.Name), Iface: HostIface, Site: h.Site, VM: h.VM,
			Bridge: h.VM, MAC: h.MAC, IP: h.IP, IfaceID: h.IfaceID, Port: HostPort(h.Name), OFPort: -1}
		if i > 0 && views[i] != nil {
			hi.OFPort = ofp(views[i], hi.Port)
		}
		inv.Hosts = append(inv.Hosts, hi)
	}
	if len(errs) > 0 {
		return inv, fmt.Errorf("read OVS state: %s", strings.Join(errs, "; "))
	}
	return inv, nil
}

func ofp(v *ovsView, iface string) int {
	if n, ok := v.ofport[iface]; ok {
		return n
	}
	return -1
}

func siteRate(s *Spec, idx int) float64 {
	if r := s.Sites[idx].RateMbit; r > 0 {
		return r
	}
	return s.WAN.RateMbit
}

// livePID returns the PID in pidfile if that process runs and its command
// line contains marker, else 0.
func livePID(pidfile, marker string) int {
	pid := readPID(pidfile)
	if pid == 0 || !alive(pid) {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(b, []byte(marker)) {
		return 0
	}
	return pid
}
