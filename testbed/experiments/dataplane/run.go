package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/testbed/demo"
	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
	"github.com/skyvisor/skyvisor/testbed/lab"
	"github.com/skyvisor/skyvisor/tunnels"
)

// The two clouds and their hosts: host i (0 or 1) is hostName(i) on site
// siteName(i), with MAC hostMAC(i) and address hostIP(i).
const (
	site1, site2 = "c1", "c2"
	host1, host2 = "h1", "h2"
	mac1, mac2   = "02:00:00:00:00:01", "02:00:00:00:00:02"
	ip1, ip2     = "10.0.0.1", "10.0.0.2"
)

func siteName(i int) string { return [2]string{site1, site2}[i] }
func hostName(i int) string { return [2]string{host1, host2}[i] }
func hostMAC(i int) string  { return [2]string{mac1, mac2}[i] }
func hostIP(i int) string   { return [2]string{ip1, ip2}[i] }

const (
	vmName = "vm1"
	// TenantName is the tenant of the virtualized mode.
	TenantName = "dp"
	// PlainTunID is the tunnel key the plain flows set.
	PlainTunID = 1
	iperfPort  = 5201
)

// LabSpec is the lab of point p: two sites with one VM each, host h1 on
// c1/vm1 (10.0.0.1) and h2 on c2/vm1 (10.0.0.2), tunnel type, WAN delay
// and WireGuard of p; the controller target is the default unix socket
// in the state directory (skyvisor listens there in the virtualized mode;
// in the plain mode nothing does and the bridges, fail_mode secure, keep
// their static flows).
func LabSpec(cfg Config, p Point) *lab.Spec {
	s := &lab.Spec{Name: "dataplane-" + strings.ReplaceAll(p.String(), " ", "-"), Prefix: cfg.Prefix, StateDir: cfg.StateDir,
		TunnelType: p.Tunnel, WireGuard: p.WireGuard, WAN: lab.WANSpec{DelayMS: p.DelayMS}}
	for i := range 2 {
		s.Sites = append(s.Sites, lab.SiteSpec{Name: siteName(i), VMs: lab.VMList{Count: 1}})
		s.Hosts = append(s.Hosts, lab.HostSpec{Name: hostName(i), Site: siteName(i), VM: vmName, MAC: hostMAC(i),
			IP: hostIP(i) + "/24", IfaceID: TenantName + "/" + hostName(i)})
	}
	return s
}

// TenantDoc is the tenants document of the virtualized mode: tenant "dp"
// with the learning app, one virtual switch "big", h1 on port 1 in c1 and
// h2 on port 2 in c2, with the lab hosts' MACs and IPs.
func TenantDoc() []byte {
	type host struct {
		Name   string `json:"name"`
		MAC    string `json:"mac"`
		IP     string `json:"ip"`
		Switch string `json:"switch"`
		Port   int    `json:"port"`
		Cloud  string `json:"cloud"`
	}
	var hs []host
	for i := range 2 {
		hs = append(hs, host{hostName(i), hostMAC(i), hostIP(i) + "/24", "big", i + 1, siteName(i)})
	}
	doc := map[string]any{"tenants": []any{map[string]any{
		"tenant": TenantName, "apps": []string{"learning"},
		"switches": []any{map[string]string{"name": "big"}}, "links": []any{}, "hosts": hs}}}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return b
}

// PlainFlows returns the OpenFlow 1.3 flow entries (ovs-ofctl syntax,
// table 0) of the plain mode at site i (0 or 1): on the VM bridge, host
// port <-> uplink patch port; on the gateway, the local host's MAC to the
// gateway's patch port towards the VM, the remote host's MAC to the
// tunnel port with tun_id PlainTunID. The same ports, patch ports and
// tunnel port as the virtualized mode, without MAC rewriting.
func PlainFlows(i, hostPort, gwPatch, tunnelPort int) (vm, gw []string) {
	vm, gw = DirectFlows(i, hostPort, gwPatch, tunnelPort)
	gw[1] = fmt.Sprintf("table=0,priority=100,dl_dst=%s,actions=set_field:%d->tun_id,output:%d", hostMAC(1-i), PlainTunID, tunnelPort)
	return vm, gw
}

// DirectFlows returns the flow entries of the direct mode at site i: as
// PlainFlows, but the remote host's MAC goes out of the gateway's direct
// WAN port (lab.DirectPort, OpenFlow port directPort) as it is, without
// a tunnel; frames from the other site come in on that port and match
// the local host's MAC.
func DirectFlows(i, hostPort, gwPatch, directPort int) (vm, gw []string) {
	vm = []string{
		fmt.Sprintf("table=0,priority=100,in_port=%d,actions=output:%d", hostPort, lab.VMUplinkOFPort),
		fmt.Sprintf("table=0,priority=100,in_port=%d,actions=output:%d", lab.VMUplinkOFPort, hostPort),
	}
	gw = []string{
		fmt.Sprintf("table=0,priority=100,dl_dst=%s,actions=output:%d", hostMAC(i), gwPatch),
		fmt.Sprintf("table=0,priority=100,dl_dst=%s,actions=output:%d", hostMAC(1-i), directPort),
	}
	return vm, gw
}

// runner is the state of one point's lab.
type runner struct {
	cfg     Config
	p       Point
	inv     *lab.Inventory
	tunPort [2]int // OpenFlow port of the tunnel on each gateway
	dirPort [2]int // OpenFlow port of lab.DirectPort on each gateway (0: no direct mode)
	docPath string
	step    func(string)
	// mode is the mode whose flows (or skyvisor, d) are in place ("" none);
	// mtu the hosts' MTU now.
	mode string
	d    *demo.Daemon
	mtu  int
}

// Run measures every point of cfg.Matrix() on its own lab, reps times
// every mode of cfg.Modes in the order of Order, and returns the
// measurements taken (also on error, with the first error). Every lab is
// torn down, also on failure; leftovers of an earlier run with the same
// prefix are removed first.
func Run(ctx context.Context, cfg Config) ([]Measurement, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, b := range []string{"skyvisor", "skyctl"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%s binary: %w (go build -o %s/ ./cmd/skyvisor ./cmd/skyctl)", b, err, cfg.BinDir)
		}
	}
	if err := demo.Down(ctx, cfg.Prefix, cfg.StateDir); err != nil {
		return nil, fmt.Errorf("clean up an earlier run: %w", err)
	}
	points := cfg.Matrix()
	total := len(points) * cfg.Reps * len(cfg.Modes)
	n := 0
	var out []Measurement
	for k, p := range points {
		r := &runner{cfg: cfg, p: p}
		r.step = func(s string) { fmt.Fprintf(cfg.Progress, "dataplane: [point %d/%d] %s: %s\n", k+1, len(points), p, s) }
		ms, err := r.point(ctx, func(m Measurement) {
			n++
			fmt.Fprintf(cfg.Progress, "dataplane: [%d/%d] %s rep %d %-11s rtt median %.3f ms (avg %.3f, %d/%d replies), %.1f Mbit/s (%d retr), load %.2f\n",
				n, total, p, m.Rep, m.Mode, m.RTTMedMS, m.RTTAvgMS, m.PingRecv, m.PingSent, m.Mbps, m.Retransmits, m.Load1)
		})
		out = append(out, ms...)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p, err)
		}
	}
	return out, nil
}

// point runs one point on a fresh lab and tears it down.
func (r *runner) point(ctx context.Context, report func(Measurement)) (out []Measurement, err error) {
	cfg := r.cfg
	t0 := time.Now()
	defer func() {
		dctx := context.WithoutCancel(ctx)
		if r.d != nil {
			if serr := r.d.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
			r.d = nil
		}
		if derr := demo.Down(dctx, cfg.Prefix, cfg.StateDir); derr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", derr))
		}
		r.step(fmt.Sprintf("lab down (point took %s)", time.Since(t0).Round(100*time.Millisecond)))
	}()
	direct := slices.Contains(cfg.Modes, ModeDirect)
	inv, err := lab.UpWith(ctx, LabSpec(cfg, r.p), lab.Options{RelayCommand: cfg.RelayCommand, Logger: cfg.Logger, DirectWAN: direct})
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	r.inv, r.mtu = inv, inv.HostMTU
	r.step(fmt.Sprintf("lab up in %s (host MTU %d; direct mode %d)", time.Since(t0).Round(time.Millisecond), inv.HostMTU, DirectMTU))
	if err := r.tunnels(ctx); err != nil {
		return nil, err
	}
	if direct {
		if err := r.directPorts(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.hostSetup(ctx); err != nil {
		return nil, err
	}
	r.docPath = filepath.Join(cfg.StateDir, "tenants.json")
	if err := os.WriteFile(r.docPath, TenantDoc(), 0o644); err != nil {
		return nil, err
	}
	sched := Order(cfg.Modes, cfg.Reps)
	// Warm-up (discarded) in the first mode: first echo reply, 1 s of
	// iperf3, so that the first measurement does not pay for cold caches.
	if err := r.switchTo(ctx, sched[0].Mode); err != nil {
		return out, fmt.Errorf("warm-up: %w", err)
	}
	if err := r.firstReply(ctx); err != nil {
		return out, fmt.Errorf("warm-up: %w", err)
	}
	if _, _, err := r.iperf(ctx, time.Second); err != nil {
		return out, fmt.Errorf("warm-up: %w", err)
	}
	for _, st := range sched {
		if err := r.switchTo(ctx, st.Mode); err != nil {
			return out, fmt.Errorf("%s rep %d: %w", st.Mode, st.Rep, err)
		}
		m, err := r.measure(ctx, st.Mode, st.Rep)
		if err != nil {
			return out, fmt.Errorf("%s rep %d: %w", st.Mode, st.Rep, err)
		}
		out = append(out, m)
		report(m)
	}
	return out, nil
}

// Step is one measurement of the schedule: mode and repetition.
type Step struct {
	Mode string
	Rep  int
}

// Order is the measurement schedule of reps repetitions of modes on one
// lab: repetition r (from 1) measures modes rotated right by r-1, so that
// no mode always goes first or last. For two modes that is ABBA (plain,
// virtualized; virtualized, plain; ...); for three (direct, plain,
// virtualized) a Latin square over every three repetitions (D P V, V D P,
// P V D: each mode once in each position), and the rotation to the right
// puts rep r's last mode first in rep r+1 once per square, so
// consecutive virtualized steps share one skyvisor process (two starts
// per square instead of three). With reps not a multiple of len(modes)
// the positions are balanced up to the last, partial square.
func Order(modes []string, reps int) []Step {
	n := len(modes)
	var out []Step
	for rep := 1; rep <= reps; rep++ {
		for k := range n {
			out = append(out, Step{modes[((k-(rep-1))%n+n)%n], rep})
		}
	}
	return out
}

// switchTo puts mode in place unless it is already: stops skyvisor if it
// runs, sets the hosts' MTU (DirectMTU for direct, the lab's otherwise),
// brings the gateways' direct WAN ports up only for the direct mode, then
// installs the static flows (direct, plain) or clears them and starts
// skyvisor with the tenant (virtualized).
func (r *runner) switchTo(ctx context.Context, mode string) error {
	if mode == r.mode {
		return nil
	}
	cfg := r.cfg
	if r.d != nil {
		if err := r.d.Stop(); err != nil {
			return err
		}
		r.d = nil
	}
	r.mode = ""
	mtu := r.inv.HostMTU
	if mode == ModeDirect {
		mtu = DirectMTU
	}
	if err := r.setMTU(ctx, mtu); err != nil {
		return err
	}
	if r.dirPort[0] > 0 {
		if err := r.directLink(ctx, mode == ModeDirect); err != nil {
			return err
		}
	}
	switch mode {
	case ModeDirect, ModePlain:
		if err := r.static(ctx, mode); err != nil {
			return fmt.Errorf("%s flows: %w", mode, err)
		}
	case ModeVirtualized:
		ts := time.Now()
		if err := r.clearFlows(ctx); err != nil {
			return err
		}
		d, err := demo.StartDaemon(ctx, r.inv, cfg.StateDir, demo.DaemonConfig{BinDir: cfg.BinDir, APIListen: cfg.APIListen, Timeout: cfg.Timeout})
		if err != nil {
			return err
		}
		r.d = d
		if err := d.WaitHealthy(ctx); err != nil {
			return err
		}
		if err := d.Apply(ctx, r.docPath, TenantDoc()); err != nil {
			return err
		}
		r.step(fmt.Sprintf("skyvisor pid %d healthy, tenant %s active in %s", d.PID(), TenantName, time.Since(ts).Round(time.Millisecond)))
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	r.mode = mode
	return nil
}

// setMTU sets the MTU of both hosts' interfaces and of their veth peers
// (the VM bridges' host ports), unless it is mtu already.
func (r *runner) setMTU(ctx context.Context, mtu int) error {
	if mtu == r.mtu {
		return nil
	}
	for i := range 2 {
		if _, err := r.host(ctx, hostName(i), "ip", "link", "set", "dev", lab.HostIface, "mtu", strconv.Itoa(mtu)); err != nil {
			return err
		}
		if _, err := r.site(ctx, siteName(i), "", "ip", "link", "set", "dev", lab.HostPort(hostName(i)), "mtu", strconv.Itoa(mtu)); err != nil {
			return err
		}
	}
	r.mtu = mtu
	return nil
}

// directPorts finds the OpenFlow port of lab.DirectPort on both gateways.
func (r *runner) directPorts(ctx context.Context) error {
	for i := range 2 {
		out, err := r.site(ctx, siteName(i), "", "ovs-vsctl", "get", "Interface", lab.DirectPort, "ofport")
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil || n <= 0 {
			return fmt.Errorf("site %s: %s has no OpenFlow port (%q)", siteName(i), lab.DirectPort, strings.TrimSpace(out))
		}
		r.dirPort[i] = n
	}
	return nil
}

// directLink sets the site end of both direct WAN veths up or down: up
// only in the direct mode, so that in the other modes nothing the WAN
// floods reaches a gateway (or skyvisor) through them.
func (r *runner) directLink(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	for i := range 2 {
		if _, err := r.site(ctx, siteName(i), "", "ip", "link", "set", "dev", lab.DirectPort, state); err != nil {
			return err
		}
	}
	return nil
}

// tunnels provisions the gateways' tunnel ports exactly as skyvisor does
// (infra from the lab inventory, tunnels.MST over its costs,
// tunnels.Provisioner with its encapsulation), so both modes use the same
// ports: skyvisor later finds them in place.
func (r *runner) tunnels(ctx context.Context) error {
	b, err := json.Marshal(r.inv)
	if err != nil {
		return err
	}
	inf, err := infra.Parse(b)
	if err != nil {
		return fmt.Errorf("inventory as infrastructure: %w", err)
	}
	plan, err := tunnels.MST(inf.TunnelSites(), inf.TunnelCosts())
	if err != nil {
		return err
	}
	gws := map[string]tunnels.Gateway{}
	for i := range 2 {
		c, err := ovsdb.Dial(ctx, r.inv.Sites[i].OVSDB, ovsdb.WithLogger(r.cfg.Logger))
		if err != nil {
			return fmt.Errorf("site %s: %w", siteName(i), err)
		}
		defer c.Close()
		gws[siteName(i)] = tunnels.Gateway{Bridge: inf.Gateway(siteName(i)).Bridge, Ports: c}
	}
	prov, err := tunnels.NewProvisioner(inf.TunnelSites(), gws, inf.Encap())
	if err != nil {
		return err
	}
	rep, err := prov.Apply(ctx, plan)
	if err != nil {
		return fmt.Errorf("provision tunnels: %w", err)
	}
	for i := range 2 {
		tp, ok := rep[siteName(i)].Ports[siteName(1-i)]
		if !ok || tp.OFPort <= 0 {
			return fmt.Errorf("site %s: no OpenFlow port for the tunnel to %s", siteName(i), siteName(1-i))
		}
		r.tunPort[i] = tp.OFPort
	}
	return nil
}

// hostSetup gives each host a static neighbour entry for the other (both
// modes: no ARP in the measurements) and checks TX checksum offload is off.
func (r *runner) hostSetup(ctx context.Context) error {
	for i := range 2 {
		if _, err := r.host(ctx, hostName(i), "ip", "neigh", "replace", hostIP(1-i), "lladdr", hostMAC(1-i), "dev", lab.HostIface, "nud", "permanent"); err != nil {
			return err
		}
		out, err := r.host(ctx, hostName(i), "ethtool", "-k", lab.HostIface)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "tx-checksumming: off") {
			if _, err := r.host(ctx, hostName(i), "ethtool", "-K", lab.HostIface, "tx", "off"); err != nil {
				return err
			}
		}
	}
	return nil
}

// bridges returns (site, bridge) of the four switches.
func bridges() [][2]string {
	return [][2]string{{siteName(0), vmName}, {siteName(0), lab.GatewayBridge}, {siteName(1), vmName}, {siteName(1), lab.GatewayBridge}}
}

// clearFlows deletes every flow entry of the four bridges.
func (r *runner) clearFlows(ctx context.Context) error {
	for _, b := range bridges() {
		if _, err := r.site(ctx, b[0], "", "ovs-ofctl", "-O", "OpenFlow13", "del-flows", b[1]); err != nil {
			return err
		}
	}
	return nil
}

// static replaces every flow entry with PlainFlows (mode plain) or
// DirectFlows (mode direct).
func (r *runner) static(ctx context.Context, mode string) error {
	if err := r.clearFlows(ctx); err != nil {
		return err
	}
	for i := range 2 {
		h := r.inv.Host(hostName(i))
		gwPatch := -1
		for _, p := range r.inv.Switch(siteName(i), lab.GatewayBridge).PatchPorts {
			if p.Name == lab.GatewayPatch(vmName) {
				gwPatch = p.OFPort
			}
		}
		if h == nil || h.OFPort <= 0 || gwPatch <= 0 {
			return fmt.Errorf("site %s: host or gateway patch port without OpenFlow port", siteName(i))
		}
		var vm, gw []string
		if mode == ModeDirect {
			if r.dirPort[i] <= 0 {
				return fmt.Errorf("site %s: no direct WAN port", siteName(i))
			}
			vm, gw = DirectFlows(i, h.OFPort, gwPatch, r.dirPort[i])
		} else {
			vm, gw = PlainFlows(i, h.OFPort, gwPatch, r.tunPort[i])
		}
		if _, err := r.site(ctx, siteName(i), strings.Join(vm, "\n")+"\n", "ovs-ofctl", "-O", "OpenFlow13", "add-flows", vmName, "-"); err != nil {
			return err
		}
		if _, err := r.site(ctx, siteName(i), strings.Join(gw, "\n")+"\n", "ovs-ofctl", "-O", "OpenFlow13", "add-flows", lab.GatewayBridge, "-"); err != nil {
			return err
		}
	}
	return nil
}

// measure waits for the first echo reply h1 -> h2, checks that the path
// carries a full-MTU packet (one echo of r.mtu bytes, don't fragment),
// warms up (3 echoes), then pings and runs iperf3 h1 -> h2.
func (r *runner) measure(ctx context.Context, mode string, rep int) (Measurement, error) {
	m := Measurement{Point: r.p, Mode: mode, Rep: rep}
	if err := r.firstReply(ctx); err != nil {
		return m, err
	}
	if _, err := r.host(ctx, hostName(0), "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", strconv.Itoa(r.mtu-28), hostIP(1)); err != nil {
		return m, fmt.Errorf("path does not carry %d-byte packets: %w", r.mtu, err)
	}
	m.HostMTU = r.mtu
	r.host(ctx, hostName(0), "ping", "-n", "-q", "-c", "3", "-i", "0.05", "-W", "1", hostIP(1))
	m.Load1, m.Commit = Load1(), runinfo.Commit()
	interval := strconv.FormatFloat(r.cfg.PingInterval.Seconds(), 'f', 3, 64)
	out, err := r.host(ctx, hostName(0), "ping", "-n", "-c", strconv.Itoa(r.cfg.PingCount), "-i", interval, "-W", "2", hostIP(1))
	sent, recv, rtts, perr := PingStats(out)
	if perr != nil {
		return m, fmt.Errorf("ping: %w (%v)", perr, err)
	}
	if len(rtts) == 0 {
		return m, fmt.Errorf("ping: no replies: %s", strings.TrimSpace(out))
	}
	m.PingSent, m.PingRecv = sent, recv
	m.RTTMedMS, m.RTTAvgMS = Median(rtts), Mean(rtts)
	m.RTTMinMS = rtts[0]
	for _, v := range rtts {
		m.RTTMinMS = min(m.RTTMinMS, v)
	}
	if m.Mbps, m.Retransmits, err = r.iperf(ctx, r.cfg.IperfTime); err != nil {
		return m, err
	}
	// Evidence that the measured traffic took the mode's path.
	switch mode {
	case ModePlain:
		m.PathPackets, err = r.flowPackets(ctx, siteName(0), lab.GatewayBridge, func(l string) bool {
			return strings.Contains(l, "dl_dst="+hostMAC(1)) && strings.Contains(l, "->tun_id")
		})
	case ModeDirect:
		m.PathPackets, err = r.flowPackets(ctx, siteName(0), lab.GatewayBridge, func(l string) bool {
			return strings.Contains(l, "dl_dst="+hostMAC(1)) && strings.Contains(l, "actions=output:"+strconv.Itoa(r.dirPort[0]))
		})
	default:
		m.PathPackets, err = r.flowPackets(ctx, siteName(0), vmName, func(l string) bool {
			return strings.Contains(l, "table=0,") && strings.Contains(l, "->eth_src")
		})
	}
	if err != nil {
		return m, err
	}
	if m.PathPackets < r.cfg.PingCount {
		return m, fmt.Errorf("only %d packets matched the %s path's flow entries at %s, want at least %d", m.PathPackets, mode, siteName(0), r.cfg.PingCount)
	}
	return m, nil
}

// flowPackets sums n_packets of the flow entries of bridge at site whose
// ovs-ofctl dump-flows line satisfies keep.
func (r *runner) flowPackets(ctx context.Context, site, bridge string, keep func(string) bool) (int, error) {
	out, err := r.site(ctx, site, "", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge)
	if err != nil {
		return 0, err
	}
	return SumPackets(out, keep), nil
}

// SumPackets sums the n_packets=N fields of the lines of an ovs-ofctl
// dump-flows output that satisfy keep.
func SumPackets(dump string, keep func(string) bool) int {
	n := 0
	for _, l := range strings.Split(dump, "\n") {
		if !keep(l) {
			continue
		}
		i := strings.Index(l, "n_packets=")
		if i < 0 {
			continue
		}
		v := l[i+len("n_packets="):]
		if j := strings.IndexAny(v, ", "); j >= 0 {
			v = v[:j]
		}
		if k, err := strconv.Atoi(v); err == nil {
			n += k
		}
	}
	return n
}

// firstReply pings h1 -> h2 (one echo, 1 s wait) until a reply comes or
// cfg.Timeout passes.
func (r *runner) firstReply(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.Timeout)
	for {
		_, err := r.host(ctx, hostName(0), "ping", "-n", "-c", "1", "-W", "1", hostIP(1))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no echo reply from %s within %s: %w", hostIP(1), r.cfg.Timeout, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// iperf runs an iperf3 server (one test) on h2 and the client on h1 for
// dur (whole seconds), single TCP stream; retries the client while the server
// is not listening yet. The server is ended by its PID.
func (r *runner) iperf(ctx context.Context, dur time.Duration) (float64, int, error) {
	srv, err := lab.HostCommand(ctx, r.cfg.StateDir, hostName(1), "iperf3", "-s", "-1", "-B", hostIP(1), "-p", strconv.Itoa(iperfPort))
	if err != nil {
		return 0, 0, err
	}
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return 0, 0, fmt.Errorf("iperf3 server: %w", err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	defer func() {
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}()
	secs := strconv.Itoa(int(dur / time.Second))
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		c, err := lab.HostCommand(ctx, r.cfg.StateDir, hostName(0), "iperf3", "-c", hostIP(1), "-p", strconv.Itoa(iperfPort),
			"-t", secs, "-J", "--connect-timeout", "3000")
		if err != nil {
			return 0, 0, err
		}
		out, _ := c.Output()
		mbps, retr, err := IperfResult(out)
		if err == nil {
			return mbps, retr, nil
		}
		last = err
		if !strings.Contains(err.Error(), "refused") {
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, 0, fmt.Errorf("iperf3 client: %w (server: %s)", last, strings.TrimSpace(srvOut.String()))
}

// host runs argv in lab host's namespace and returns its output.
func (r *runner) host(ctx context.Context, host string, argv ...string) (string, error) {
	c, err := lab.HostCommand(ctx, r.cfg.StateDir, host, argv...)
	if err != nil {
		return "", err
	}
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w: %s", host, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// site runs argv with OVS's environment of site, stdin as input.
func (r *runner) site(ctx context.Context, site, stdin string, argv ...string) (string, error) {
	c, err := lab.SiteCommand(ctx, r.cfg.StateDir, site, argv...)
	if err != nil {
		return "", err
	}
	c.Stdin = strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("site %s: %s: %w: %s", site, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Load1 returns the 1-minute load average from /proc/loadavg (-1 if
// unreadable); see runinfo.Load1.
func Load1() float64 { return runinfo.Load1() }
