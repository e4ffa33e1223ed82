package lab

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
)

// Names and numbers the lab derives from the prefix P, the site index i
// (1-based position in the lab file) and the VM index j (1-based position in
// the site's VM list). Everything is deterministic so that Down can find
// leftovers by name after a crash, and so that Skyvisor's tests can predict
// DPIDs. See docs/lab.md for the table.
const (
	// GatewayBridge is the name of every site's gateway bridge.
	GatewayBridge = "gw"
	// UnderlayBridge holds the WAN port and the site's public (underlay) address.
	UnderlayBridge = "br-phy"
	// WANPort is the site end of the site's WAN veth (a port of br-phy).
	WANPort = "wan0"
	// MgmtPort is the site end of the management veth (tcp controllers only).
	MgmtPort = "mgmt0"
	// HostIface is the interface name inside a host namespace.
	HostIface = "eth0"
	// EdgeLANPort is the edge end of the br-phy<->edge veth (WireGuard labs).
	EdgeLANPort = "lan0"
	// UplinkPort is the site end of that veth, a port of br-phy (WireGuard labs).
	UplinkPort = "uplink"
	// WGPort is WireGuard's UDP port in every edge.
	WGPort = 51820
	// VMUplinkOFPort is the ofport of the patch port "<vm>-gw" on every VM bridge.
	VMUplinkOFPort = 1
)

// SiteNetns is the namespace of site i: "<prefix>-s<i>".
func SiteNetns(prefix string, i int) string { return prefix + "-s" + strconv.Itoa(i) }

// WANNetns is the WAN namespace: "<prefix>-wan".
func WANNetns(prefix string) string { return prefix + "-wan" }

// MgmtNetns is the management namespace for tcp controllers: "<prefix>-mgmt".
func MgmtNetns(prefix string) string { return prefix + "-mgmt" }

// EdgeNetns is site i's VPN edge namespace (WireGuard labs only): "<prefix>-g<i>".
func EdgeNetns(prefix string, i int) string { return prefix + "-g" + strconv.Itoa(i) }

// WGIface is site i's WireGuard interface (in its edge namespace):
// "<prefix>-wg<i>". wireguard-go's UAPI sockets are host-wide
// (/var/run/wireguard/<iface>.sock), so the name carries the prefix.
func WGIface(prefix string, i int) string { return prefix + "-wg" + strconv.Itoa(i) }

// WGAddr is site i's address on the WireGuard network 172.30.0.0/24.
func WGAddr(i int) string { return "172.30.0." + strconv.Itoa(i) }

// TunnelEndpoint is site i's tunnel endpoint address: its public address,
// or in WireGuard labs 10.99.<i>.1 (br-phy, routed through the edge).
func TunnelEndpoint(s *Spec, i int) string {
	if s.WireGuard {
		return "10.99." + strconv.Itoa(i) + ".1"
	}
	return s.Sites[i-1].PublicIP
}

// EdgeLANAddr is the edge's address towards br-phy (WireGuard labs): 10.99.<i>.254.
func EdgeLANAddr(i int) string { return "10.99." + strconv.Itoa(i) + ".254" }

// EdgeLANMAC is the MAC of the edge's interface towards br-phy: 02:5d:00:00:ii:ii.
func EdgeLANMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x5d, 0, 0, byte(i >> 8), byte(i)}
}

// HostNetns is the namespace of a plugged host: "<prefix>-h-<host>".
func HostNetns(prefix, host string) string { return prefix + "-h-" + host }

// HostPort is the OVS port (site end of the host's veth) of a host: "h-<host>" (<= 15 chars).
func HostPort(host string) string { return "h-" + host }

// WANPeer is the WAN-namespace end of site i's WAN veth: "w-s<i>".
func WANPeer(i int) string { return "w-s" + strconv.Itoa(i) }

// MgmtPeer is the management-namespace end of site i's management veth: "m-s<i>".
func MgmtPeer(i int) string { return "m-s" + strconv.Itoa(i) }

// VMPatch is the patch port on VM bridge vm towards the gateway: "<vm>-gw" (ofport VMUplinkOFPort).
func VMPatch(vm string) string { return vm + "-gw" }

// GatewayPatch is the patch port on the gateway towards VM bridge vm: "gw-<vm>" (ofport = VM index).
func GatewayPatch(vm string) string { return "gw-" + vm }

// VMDPID is the datapath ID of VM j of site i: 0x0000_0000_0000_iijj style,
// i.e. i<<8 | j (site 1 VM 2 = 0x102). Sites 1..200, VMs 1..250.
func VMDPID(i, j int) uint64 { return uint64(i)<<8 | uint64(j) }

// GatewayDPID is the datapath ID of site i's gateway: i<<8 (VM index 0), e.g. 0x100.
func GatewayDPID(i int) uint64 { return uint64(i) << 8 }

// UnderlayMAC is the MAC of site i's br-phy (its public address's MAC): 02:5c:00:00:ii:ii.
func UnderlayMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x5c, 0, 0, byte(i >> 8), byte(i)}
}

// DPIDString formats a DPID as OVS stores it in other-config:datapath-id (16 hex digits).
func DPIDString(d uint64) string { return fmt.Sprintf("%016x", d) }

// siteDir is the OVS state directory of site i: <state>/s<i> with run, db, log, etc below.
func siteDir(stateDir string, i int) string { return filepath.Join(stateDir, "s"+strconv.Itoa(i)) }

// RunDir is the OVS_RUNDIR of site i (sockets, pid files, unixctl).
func RunDir(stateDir string, i int) string { return filepath.Join(siteDir(stateDir, i), "run") }

// OVSDBEndpoint is the OVSDB endpoint of site i: "unix:<state>/s<i>/run/db.sock".
func OVSDBEndpoint(stateDir string, i int) string {
	return "unix:" + filepath.Join(RunDir(stateDir, i), "db.sock")
}

// ovsEnv is the environment every ovs-* call for site i gets (never the system OVS).
func ovsEnv(stateDir string, i int) []string {
	d := siteDir(stateDir, i)
	return []string{
		"OVS_RUNDIR=" + filepath.Join(d, "run"),
		"OVS_DBDIR=" + filepath.Join(d, "db"),
		"OVS_LOGDIR=" + filepath.Join(d, "log"),
		"OVS_SYSCONFDIR=" + filepath.Join(d, "etc"),
	}
}
