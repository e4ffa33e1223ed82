//go:build integration

package tunnels

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// vsctlTunnelPorts lists bridge's tunnel ports with ovs-vsctl, a reader
// independent of package ovsdb, to check what the Provisioner wrote.
func vsctlTunnelPorts(inst *ovstest.Instance, bridge string) ([]TunnelPort, error) {
	names, err := inst.Vsctl("list-ports", bridge)
	if err != nil {
		return nil, err
	}
	onBridge := map[string]bool{}
	for _, n := range strings.Fields(names) {
		onBridge[n] = true
	}
	out, err := inst.Vsctl("--format=json", "--columns=name,type,options,ofport_request,external_ids", "list", "Interface")
	if err != nil {
		return nil, err
	}
	var tbl struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &tbl); err != nil {
		return nil, fmt.Errorf("parse ovs-vsctl json: %w", err)
	}
	var ports []TunnelPort
	for _, row := range tbl.Data {
		var p TunnelPort
		if err := json.Unmarshal(row[0], &p.Name); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(row[1], &p.Type); err != nil {
			return nil, err
		}
		if !onBridge[p.Name] || !Type(p.Type).Valid() {
			continue
		}
		opts, err := ovsMap(row[2])
		if err != nil {
			return nil, err
		}
		p.RemoteIP, p.Key = opts["remote_ip"], opts["key"]
		_ = json.Unmarshal(row[3], &p.OFPort) // ["set",[]] when unset: stays 0
		if p.ExternalIDs, err = ovsMap(row[4]); err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// ovsMap decodes an OVSDB map in RFC 7047 JSON notation: ["map", [[k, v], ...]].
func ovsMap(raw json.RawMessage) (map[string]string, error) {
	var m []json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 2 {
		return nil, fmt.Errorf("not an OVSDB map: %s", raw)
	}
	var pairs [][2]string
	if err := json.Unmarshal(m[1], &pairs); err != nil {
		return nil, fmt.Errorf("not an OVSDB map: %s", raw)
	}
	out := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		out[kv[0]] = kv[1]
	}
	return out, nil
}

type labSite struct {
	inst   *ovstest.Instance
	vm     string        // host namespace of the VM
	vmIP   netip.Addr    // VM address on the tenant subnet
	underl netip.Addr    // br-phy address (tunnel endpoint)
	client *ovsdb.Client // GatewayPorts
	site   Site          // planning view
}

func mustRun(t *testing.T, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// nsRun runs argv inside network namespace ns.
func nsRun(t *testing.T, ns string, argv ...string) {
	t.Helper()
	mustRun(t, append([]string{"ip", "netns", "exec", ns}, argv...)...)
}

// instRun runs argv in the OVS instance's namespace with its OVS_* env.
func instRun(t *testing.T, inst *ovstest.Instance, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := inst.Exec(ctx, argv[0], argv[1:]...); err != nil {
		t.Fatalf("%s: %v", inst.Name, err)
	}
}

// edgeNS creates network namespace name (removed at cleanup, after the
// processes registered later are killed: cleanups run last-in first-out).
func edgeNS(t *testing.T, name string) {
	t.Helper()
	_ = exec.Command("ip", "netns", "del", name).Run() // leftover of a crashed run
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	nsRun(t, name, "ip", "link", "set", "lo", "up")
}

// twoSites builds two sites joined by a 1500-byte veth "WAN". Each site has
// br-phy (NORMAL; the tunnel endpoint address) and br-int (tunnel ports and
// one VM 10.0.0.i). With wgMTU == 0, br-phy holds wan0 and 172.31.0.i
// (recipes: standard userspace tunnelling). With wgMTU > 0 the underlay is
// encrypted as in the recipes' --wg mode: an edge namespace per site holds
// wan0 (172.31.0.i) and a wireguard-go interface of MTU wgMTU
// (172.30.0.i); br-phy (10.99.i.1, the tunnel endpoint) reaches the other
// site's 10.99.k.0/24 through the edge.
func twoSites(t *testing.T, wgMTU int) [2]*labSite {
	t.Helper()
	if why := ovstest.Available(); why != "" {
		t.Skip(why)
	}
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("ping not found (apt-get install iputils-ping)")
	}
	if wgMTU > 0 {
		for _, c := range []string{"wireguard-go", "wg"} {
			if _, err := exec.LookPath(c); err != nil {
				t.Skipf("%s not found (apt-get install wireguard-go wireguard-tools)", c)
			}
		}
		if _, err := os.Stat("/dev/net/tun"); err != nil {
			t.Skip("/dev/net/tun missing: wireguard-go cannot run")
		}
	}
	sfx := fmt.Sprintf("%04x", os.Getpid()&0xffff)
	var s [2]*labSite
	for i := range s {
		inst := ovstest.Start(t, fmt.Sprintf("tnl%c%s", 'a'+i, sfx))
		s[i] = &labSite{
			inst:   inst,
			vm:     fmt.Sprintf("tnlv%c%s", 'a'+i, sfx),
			vmIP:   netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}),
			underl: netip.AddrFrom4([4]byte{172, 31, 0, byte(i + 1)}),
		}
		s[i].site = Site{Name: fmt.Sprintf("site%d", i+1), Gateway: s[i].underl}
		if wgMTU > 0 {
			s[i].site.Endpoint = netip.AddrFrom4([4]byte{10, 99, byte(i + 1), 1})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := ovsdb.Dial(ctx, inst.DBEndpoint(), ovsdb.WithLogger(slog.New(slog.DiscardHandler)))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		s[i].client = c
		inst.AddBridge(t, "br-phy")
		inst.AddBridge(t, "br-int")
		instRun(t, inst, "ovs-ofctl", "-O", "OpenFlow13", "add-flow", "br-phy", "actions=NORMAL")
	}
	if wgMTU == 0 {
		mustRun(t, "ip", "link", "add", "wan0", "netns", s[0].inst.NetNS, "type", "veth", "peer", "name", "wan0", "netns", s[1].inst.NetNS)
		for _, ls := range s {
			instRun(t, ls.inst, "ovs-vsctl", "--db="+ls.inst.DBEndpoint(), "add-port", "br-phy", "wan0")
			instRun(t, ls.inst, "ip", "link", "set", "wan0", "up")
			instRun(t, ls.inst, "ip", "addr", "add", ls.underl.String()+"/24", "dev", "br-phy")
			instRun(t, ls.inst, "ip", "link", "set", "br-phy", "up")
		}
	} else {
		wgSites(t, s, sfx, wgMTU)
	}
	for i, ls := range s {
		ls.inst.AddHost(t, ls.vm, "br-int", fmt.Sprintf("02:00:00:00:00:%02x", i+1), ls.vmIP.String()+"/24", nil)
	}
	return s
}

// wgSites builds the encrypted underlay of twoSites.
func wgSites(t *testing.T, s [2]*labSite, sfx string, wgMTU int) {
	t.Helper()
	var gw, wgIf, pub [2]string
	keyDir := t.TempDir()
	for i, ls := range s {
		gw[i] = fmt.Sprintf("tnlg%c%s", 'a'+i, sfx)
		wgIf[i] = fmt.Sprintf("wgtnl%c%s", 'a'+i, sfx) // UAPI sockets are host-wide: unique name
		edgeNS(t, gw[i])
		nsRun(t, gw[i], "sysctl", "-qw", "net.ipv4.ip_forward=1")
		mustRun(t, "ip", "link", "add", "lan0", "netns", gw[i], "type", "veth", "peer", "name", "uplink", "netns", ls.inst.NetNS)
		nsRun(t, gw[i], "ethtool", "-K", "lan0", "tx", "off")
		instRun(t, ls.inst, "ethtool", "-K", "uplink", "tx", "off")
		ep := ls.site.Endpoint.As4()
		nsRun(t, gw[i], "ip", "addr", "add", fmt.Sprintf("10.99.%d.254/24", ep[2]), "dev", "lan0")
		nsRun(t, gw[i], "ip", "link", "set", "lan0", "up")
		instRun(t, ls.inst, "ip", "link", "set", "uplink", "up")
		instRun(t, ls.inst, "ovs-vsctl", "--db="+ls.inst.DBEndpoint(), "add-port", "br-phy", "uplink")
		instRun(t, ls.inst, "ip", "addr", "add", ls.site.Endpoint.String()+"/24", "dev", "br-phy")
		instRun(t, ls.inst, "ip", "link", "set", "br-phy", "up")
		instRun(t, ls.inst, "ip", "route", "add", "10.99.0.0/16", "via", fmt.Sprintf("10.99.%d.254", ep[2]))

		cmd := exec.Command("ip", "netns", "exec", gw[i], "wireguard-go", "-f", wgIf[i])
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		t.Cleanup(func() {
			_ = cmd.Process.Kill() // by PID: the wireguard-go we started
			_ = cmd.Wait()
			_ = os.Remove("/var/run/wireguard/" + wgIf[i] + ".sock")
		})
		deadline := time.Now().Add(10 * time.Second)
		for exec.Command("ip", "netns", "exec", gw[i], "ip", "link", "show", wgIf[i]).Run() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("wireguard-go (pid %d) did not create %s", pid, wgIf[i])
			}
			time.Sleep(50 * time.Millisecond)
		}
		key, err := exec.Command("wg", "genkey").Output()
		if err != nil {
			t.Fatal(err)
		}
		keyFile := fmt.Sprintf("%s/wg%d.key", keyDir, i)
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
		pc := exec.Command("wg", "pubkey")
		pc.Stdin = strings.NewReader(string(key))
		out, err := pc.Output()
		if err != nil {
			t.Fatal(err)
		}
		pub[i] = strings.TrimSpace(string(out))
		nsRun(t, gw[i], "wg", "set", wgIf[i], "listen-port", "51820", "private-key", keyFile)
		nsRun(t, gw[i], "ip", "addr", "add", fmt.Sprintf("172.30.0.%d/24", i+1), "dev", wgIf[i])
		nsRun(t, gw[i], "ip", "link", "set", wgIf[i], "mtu", strconv.Itoa(wgMTU), "up")
	}
	mustRun(t, "ip", "link", "add", "wan0", "netns", gw[0], "type", "veth", "peer", "name", "wan0", "netns", gw[1])
	for i, ls := range s {
		nsRun(t, gw[i], "ip", "addr", "add", ls.underl.String()+"/24", "dev", "wan0")
		nsRun(t, gw[i], "ip", "link", "set", "wan0", "up")
	}
	for i := range s {
		k := 1 - i
		ep := s[k].site.Endpoint.As4()
		peerNet := fmt.Sprintf("10.99.%d.0/24", ep[2])
		nsRun(t, gw[i], "wg", "set", wgIf[i], "peer", pub[k], "endpoint", s[k].underl.String()+":51820",
			"allowed-ips", fmt.Sprintf("172.30.0.%d/32,%s", k+1, peerNet))
		nsRun(t, gw[i], "ip", "route", "add", peerNet, "dev", wgIf[i])
	}
	// Handshake.
	deadline := time.Now().Add(15 * time.Second)
	for exec.Command("ip", "netns", "exec", gw[0], "ping", "-c1", "-W1", "172.30.0.2").Run() != nil {
		if time.Now().After(deadline) {
			t.Fatal("no WireGuard handshake between the edges")
		}
	}
}

func ofportOf(t *testing.T, inst *ovstest.Instance, iface string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := inst.Vsctl("get", "Interface", iface, "ofport")
		if err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(out)); err == nil && n > 0 {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no ofport for %s: %q %v", inst.Name, iface, out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping sends one ICMP echo of payload size bytes with DF set from the VM
// of s to dst and reports whether a reply came back.
func ping(s *labSite, dst netip.Addr, size int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ovstest.HostExec(ctx, s.vm, "ping", "-c", "1", "-W", "1", "-M", "do", "-s", strconv.Itoa(size), dst.String())
	return err == nil
}

func setVMMTU(t *testing.T, s *labSite, mtu int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ovstest.HostExec(ctx, s.vm, "ip", "link", "set", "eth0", "mtu", strconv.Itoa(mtu)); err != nil {
		t.Fatal(err)
	}
}

// provisionPair provisions the plan's single tunnel with the Provisioner
// over package ovsdb, checks it with ovs-vsctl and that a second Apply
// sends no transaction, and installs the VM<->tunnel flows (tenant 5 in
// tun_id) on both br-int.
func provisionPair(t *testing.T, s [2]*labSite, enc Encap) {
	t.Helper()
	ctx := context.Background()
	sites := []Site{s[0].site, s[1].site}
	gws := map[string]Gateway{}
	for _, ls := range s {
		gws[ls.site.Name] = Gateway{Bridge: "br-int", Ports: ls.client}
	}
	plan, err := MST(sites, Costs{MakePair("site1", "site2"): 1})
	if err != nil {
		t.Fatal(err)
	}
	prov, err := NewProvisioner(sites, gws, enc)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := prov.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	txns := s[0].client.Transactions() + s[1].client.Transactions()
	if rep2, err := prov.Apply(ctx, plan); err != nil || rep2.Changes() != 0 {
		t.Fatalf("second apply against real OVS: %d changes, err %v", rep2.Changes(), err)
	}
	if got := s[0].client.Transactions() + s[1].client.Transactions(); got != txns {
		t.Fatalf("second apply sent %d OVSDB transactions, want 0", got-txns)
	}
	for i, ls := range s {
		peer := s[1-i].site
		want := rep[ls.site.Name].Ports[peer.Name]
		// Read back with ovs-vsctl, independently of package ovsdb.
		got, err := vsctlTunnelPorts(ls.inst, "br-int")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Name != want.Name || got[0].Type != string(enc.Type) || got[0].Key != "flow" ||
			got[0].RemoteIP != peer.TunnelEndpoint().String() || got[0].OFPort != want.OFPort ||
			got[0].ExternalIDs[ExternalIDTunnel] != peer.Name || got[0].ExternalIDs[ExternalIDSite] != ls.site.Name {
			t.Fatalf("%s: ovs-vsctl reads %+v, want %+v", ls.site.Name, got, want)
		}
		if of := ofportOf(t, ls.inst, want.Name); of != want.OFPort {
			t.Fatalf("%s: %s has ofport %d, requested %d", ls.site.Name, want.Name, of, want.OFPort)
		}
		vmPort := ofportOf(t, ls.inst, ls.vm)
		flows := fmt.Sprintf("table=0,priority=10,in_port=%d,actions=set_field:5->tun_id,output:%d\n"+
			"table=0,priority=10,in_port=%d,tun_id=5,actions=output:%d\n", vmPort, want.OFPort, want.OFPort, vmPort)
		f := t.TempDir() + "/flows"
		if err := os.WriteFile(f, []byte(flows), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ls.inst.Ofctl("-O", "OpenFlow13", "replace-flows", "br-int", f); err != nil {
			t.Fatal(err)
		}
		// Warm the underlay neighbour cache (recipes: the first packet is
		// otherwise lost while OVS resolves the next hop).
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _ = ls.inst.Exec(wctx, "ping", "-c", "1", "-W", "1", peer.TunnelEndpoint().String())
		cancel()
	}
}

// probeExactMTU sets both VMs' MTU one above exact and checks that a DF
// packet of exactly `exact` bytes crosses and one of exact+1 does not.
func probeExactMTU(t *testing.T, s [2]*labSite, exact int, what string) {
	t.Helper()
	for _, ls := range s {
		setVMMTU(t, ls, exact+1)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !ping(s[0], s[1].vmIP, 56) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no connectivity across the tunnel", what)
		}
	}
	if !ping(s[0], s[1].vmIP, exact-28) {
		t.Fatalf("%s: DF ping of IP size %d lost", what, exact)
	}
	if ping(s[0], s[1].vmIP, exact-28+1) {
		t.Fatalf("%s: DF ping of IP size %d crossed: the arithmetic undercounts", what, exact+1)
	}
	t.Logf("%s: largest untagged IP packet crossing = %d (verified), %d dropped", what, exact, exact+1)
}

// TestIntegrationProvisionAndMTU provisions the tunnel between two real OVS
// gateways with the Provisioner over package ovsdb for each tunnel type,
// reads the ports back with ovs-vsctl, checks idempotence against real
// OVSDB (no transaction on the second Apply), and measures the largest DF
// ping that crosses a 1500-byte WAN: it must be exactly OverlayMTU + VLANTag
// for untagged frames (the VLAN budget is the only slack), and one byte more
// must not cross. Clear then removes the managed ports only.
func TestIntegrationProvisionAndMTU(t *testing.T) {
	s := twoSites(t, 0)
	for _, typ := range []Type{VXLAN, GRE, Geneve} {
		t.Run(string(typ), func(t *testing.T) {
			provisionPair(t, s, Encap{Type: typ})
			probeExactMTU(t, s, OverlayMTU(1500, typ, false, false)+VLANTag, fmt.Sprintf("%s OverlayMTU(1500)=%d", typ, OverlayMTU(1500, typ, false, false)))
		})
	}
	gws := map[string]Gateway{}
	for _, ls := range s {
		gws[ls.site.Name] = Gateway{Bridge: "br-int", Ports: ls.client}
	}
	prov, err := NewProvisioner([]Site{s[0].site, s[1].site}, gws, Encap{Type: VXLAN})
	if err != nil {
		t.Fatal(err)
	}
	for _, ls := range s {
		if _, err := prov.Clear(context.Background(), ls.site.Name); err != nil {
			t.Fatal(err)
		}
		ports, err := vsctlTunnelPorts(ls.inst, "br-int")
		if err != nil || len(ports) != 0 {
			t.Fatalf("%s after Clear: %v %v", ls.site.Name, ports, err)
		}
		if out, _ := ls.inst.Vsctl("list-ports", "br-int"); strings.TrimSpace(out) != ls.vm {
			t.Fatalf("%s: ports after Clear: %q, want only %s", ls.site.Name, out, ls.vm)
		}
	}
}

// TestIntegrationMTUOverWireGuard checks the encrypted rows: with the
// underlay through wireguard-go on a 1500-byte IPv4 WAN and the wg
// interface at 1500-60 = 1440, the largest untagged packet crossing is
// OverlayMTU(1500, t, true, false) + VLANTag; with wg at its default 1420,
// OverlayMTU(1420, t, false, false) + VLANTag.
func TestIntegrationMTUOverWireGuard(t *testing.T) {
	s := twoSites(t, 1500-IPv4Header-UDPHeader-WireGuardHeader)
	for _, typ := range []Type{VXLAN, GRE, Geneve} {
		t.Run(string(typ), func(t *testing.T) {
			provisionPair(t, s, Encap{Type: typ, Encrypted: true})
			m := OverlayMTU(1500, typ, true, false)
			probeExactMTU(t, s, m+VLANTag, fmt.Sprintf("%s+wg(1440) OverlayMTU(1500,encrypted)=%d", typ, m))
		})
	}
	t.Run("wg1420", func(t *testing.T) {
		for i := range s {
			gw := fmt.Sprintf("tnlg%c%04x", 'a'+i, os.Getpid()&0xffff)
			wgIf := fmt.Sprintf("wgtnl%c%04x", 'a'+i, os.Getpid()&0xffff)
			nsRun(t, gw, "ip", "link", "set", wgIf, "mtu", "1420")
		}
		m := OverlayMTU(1420, VXLAN, false, false)
		probeExactMTU(t, s, m+VLANTag, fmt.Sprintf("vxlan+wg(1420) OverlayMTU(1420)=%d", m))
	})
}

// TestIntegrationReplanOnRealOVS runs the elasticity cycle against four
// real OVS gateways through package ovsdb: MST, a tunnel down (Replan +
// ApplyDiff), a site leaving (Replan + ApplyDiff + Clear), and checks after
// each step, reading with ovs-vsctl, that every gateway holds exactly its
// plan's tunnel ports and that a full re-Apply sends no transaction.
func TestIntegrationReplanOnRealOVS(t *testing.T) {
	if why := ovstest.Available(); why != "" {
		t.Skip(why)
	}
	ctx := context.Background()
	sfx := fmt.Sprintf("%04x", os.Getpid()&0xffff)
	names := []string{"aws-eu", "azure-us", "gcp-asia", "on-prem.lisbon"}
	insts := map[string]*ovstest.Instance{}
	clients := map[string]*ovsdb.Client{}
	var sites []Site
	gws := map[string]Gateway{}
	for i, n := range names {
		inst := ovstest.Start(t, fmt.Sprintf("tnlr%d%s", i, sfx))
		inst.AddBridge(t, "br-int")
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		c, err := ovsdb.Dial(dctx, inst.DBEndpoint(), ovsdb.WithLogger(slog.New(slog.DiscardHandler)))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		insts[n], clients[n] = inst, c
		sites = append(sites, Site{Name: n, Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})})
		gws[n] = Gateway{Bridge: "br-int", Ports: c}
	}
	costs := Costs{}
	costs.Set("aws-eu", "azure-us", 80)
	costs.Set("aws-eu", "gcp-asia", 150)
	costs.Set("aws-eu", "on-prem.lisbon", 20)
	costs.Set("azure-us", "gcp-asia", 120)
	costs.Set("azure-us", "on-prem.lisbon", 90)
	costs.Set("gcp-asia", "on-prem.lisbon", 170)
	prov, err := NewProvisioner(sites, gws, Encap{Type: Geneve})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, plan Plan) {
		t.Helper()
		for _, n := range plan.Sites {
			ports, err := vsctlTunnelPorts(insts[n], "br-int")
			if err != nil {
				t.Fatal(err)
			}
			var peers []string
			for _, p := range ports {
				if p.Name != PortName(p.ExternalIDs[ExternalIDTunnel]) {
					t.Fatalf("%s: %s: port %s for peer %q", step, n, p.Name, p.ExternalIDs[ExternalIDTunnel])
				}
				peers = append(peers, p.ExternalIDs[ExternalIDTunnel])
			}
			slices.Sort(peers)
			if want := plan.Peers(n); !slices.Equal(peers, want) {
				t.Fatalf("%s: %s has tunnels to %v, plan wants %v", step, n, peers, want)
			}
		}
		before := uint64(0)
		for _, c := range clients {
			before += c.Transactions()
		}
		if _, err := prov.Apply(ctx, plan); err != nil {
			t.Fatal(err)
		}
		after := uint64(0)
		for _, c := range clients {
			after += c.Transactions()
		}
		if after != before {
			t.Fatalf("%s: re-apply sent %d transactions", step, after-before)
		}
	}
	plan, err := MST(sites, costs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	check("mst", plan)

	next, d, err := Replan(plan, sites, costs, map[Pair]bool{MakePair("aws-eu", "azure-us"): true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 2 {
		t.Fatalf("link down: diff %+v", d)
	}
	if _, err := prov.ApplyDiff(ctx, next, d); err != nil {
		t.Fatal(err)
	}
	check("link down", next)

	var rest []Site
	for _, s := range sites {
		if s.Name != "on-prem.lisbon" {
			rest = append(rest, s)
		}
	}
	next2, d2, err := Replan(next, rest, costs, map[Pair]bool{MakePair("aws-eu", "azure-us"): true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.ApplyDiff(ctx, next2, d2); err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Clear(ctx, "on-prem.lisbon"); err != nil {
		t.Fatal(err)
	}
	check("site removed", next2)
	if ports, err := vsctlTunnelPorts(insts["on-prem.lisbon"], "br-int"); err != nil || len(ports) != 0 {
		t.Fatalf("removed site keeps %v (%v)", ports, err)
	}
	t.Logf("mst %v\nlink down %v (diff %+v)\nsite removed %v (diff %+v)", plan, next, d, next2, d2)
}
