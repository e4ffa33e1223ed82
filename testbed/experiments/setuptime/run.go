package setuptime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/testbed/lab"
	"github.com/skyvisor/skyvisor/tunnels"
)

// probeVM is the VM bridge every probe host is plugged into.
const probeVM = "vm1"

// echoIDBase is the first ICMP echo identifier of a run's probe pairs.
const echoIDBase = 0x5000

// Run executes the experiment: for every N in cfg.Sites, every run and
// every mode (modes interleaved so that load changes hit both alike) it
// builds a fresh lab, measures (see the package documentation), tears the
// lab down with lab.Down and checks that nothing of it is left. It writes
// one progress line per run. Leftovers of an earlier crashed experiment with
// the same prefix and state directory are removed first. It stops at the
// first failed run and returns the results so far with the error.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("setuptime: %w", err)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckGone(cfg.Prefix, cfg.StateDir); err != nil {
		cfg.Logger.Info("removing leftovers of an earlier run", "leftovers", err)
		if err := lab.DownPrefix(ctx, cfg.StateDir, cfg.Prefix); err != nil {
			return nil, fmt.Errorf("setuptime: remove leftovers: %w", err)
		}
	}
	var out []Result
	for _, n := range cfg.Sites {
		for run := 1; run <= cfg.Runs; run++ {
			for _, mode := range cfg.Modes {
				r, err := RunOnce(ctx, cfg, n, mode, run)
				if err != nil {
					return out, fmt.Errorf("setuptime: sites=%d mode=%s run=%d: %w", n, mode, run, err)
				}
				out = append(out, r)
				fmt.Fprintf(cfg.Progress, "setuptime: sites=%d vms_total=%d mode=%s run=%d/%d tunnels=%d lab_up=%.0fms provision=%.0fms usable=%.0fms total=%.0fms txns=%d load1=%.2f\n",
					n, n*cfg.VMs, mode, run, cfg.Runs, r.Tunnels, r.LabUpMS, r.ProvisionMS(), r.TunnelsMS(), r.UsableMS, r.OVSDBTxns, r.Load1)
			}
		}
	}
	return out, nil
}

// LabSpec returns the lab of one run: n sites "s01".."sNN" with cfg.VMs
// VMs each, one probe host "p<i>" (ProbeMAC(i), ProbeIP(i)/24) on VM
// bridge vm1 of site i, no controller, the configured WAN delay and
// tunnel type.
func LabSpec(cfg Config, n int) *lab.Spec {
	s := &lab.Spec{Name: fmt.Sprintf("setuptime-%d", n), Prefix: cfg.Prefix, StateDir: cfg.StateDir,
		TunnelType: cfg.TunnelType, Controller: "none", WAN: lab.WANSpec{DelayMS: cfg.DelayMS}}
	for i := 1; i <= n; i++ {
		name := SiteName(i)
		s.Sites = append(s.Sites, lab.SiteSpec{Name: name, VMs: lab.VMList{Count: cfg.VMs}})
		s.Hosts = append(s.Hosts, lab.HostSpec{Name: ProbeHost(i), Site: name, VM: probeVM,
			MAC: ProbeMAC(i).String(), IP: ProbeIP(i).String() + "/24"})
	}
	return s
}

// SiteName is the name of site i (1-based): "s01".."s99", so that lexical
// order (which tunnels planning uses) is numeric order.
func SiteName(i int) string { return fmt.Sprintf("s%02d", i) }

// ProbeHost is the name of site i's probe host: "p<i>".
func ProbeHost(i int) string { return "p" + strconv.Itoa(i) }

// RunOnce measures one run of (n sites, mode) on a fresh lab and tears it
// down (lab.Down, then CheckGone), also on failure.
func RunOnce(ctx context.Context, cfg Config, n int, mode string, run int) (res Result, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	spec := LabSpec(cfg, n)
	res = Result{Sites: n, VMs: cfg.VMs, Mode: mode, Run: run, TunnelType: cfg.TunnelType, DelayMS: cfg.DelayMS, Load1: load1()}

	var clients []*ovsdb.Client
	var conns []*icmpConn
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
		for _, c := range conns {
			if c != nil {
				c.c.Close()
			}
		}
		dctx := context.WithoutCancel(ctx)
		if derr := lab.Down(dctx, cfg.StateDir); derr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", derr))
		} else if gerr := waitGone(cfg.Prefix, cfg.StateDir, 5*time.Second); gerr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", gerr))
		}
	}()

	// 1. lab up
	t0 := time.Now()
	inv, err := lab.UpWith(ctx, spec, lab.Options{RelayCommand: cfg.RelayCommand, Logger: cfg.Logger})
	labUp := time.Since(t0)
	if err != nil {
		return res, err
	}
	res.LabUpMS = msOf(labUp)

	// 2. probe scaffolding (not timed)
	if conns, err = scaffold(ctx, cfg, inv, n); err != nil {
		return res, fmt.Errorf("probe scaffolding: %w", err)
	}

	// 3. provisioning through Skyvisor's ovsdb and tunnels packages
	tp := time.Now()
	at := func() float64 { return msOf(labUp + time.Since(tp)) }
	clients = make([]*ovsdb.Client, n)
	if err := parallel(n, func(k int) error {
		c, err := ovsdb.Dial(ctx, inv.Sites[k].OVSDB, ovsdb.WithLogger(cfg.Logger))
		clients[k] = c
		return err
	}); err != nil {
		return res, err
	}
	res.ConnectedMS = at()
	sites := make([]tunnels.Site, n)
	gws := map[string]tunnels.Gateway{}
	costs := tunnels.Costs{}
	names := make([]string, n)
	for k, si := range inv.Sites {
		a, err := netip.ParseAddr(si.UnderlayIP)
		if err != nil {
			return res, fmt.Errorf("site %s underlay address: %w", si.Name, err)
		}
		names[k] = si.Name
		sites[k] = tunnels.Site{Name: si.Name, Gateway: a}
		gws[si.Name] = tunnels.Gateway{Bridge: si.GatewayBridge, Ports: clients[k]}
		for j := 0; j < k; j++ {
			costs.Set(inv.Sites[j].Name, si.Name, 1)
		}
	}
	var plan tunnels.Plan
	if mode == ModeMST {
		plan, err = tunnels.MST(sites, costs)
	} else {
		plan, err = tunnels.FullMesh(sites, costs)
	}
	if err != nil {
		return res, err
	}
	prov, err := tunnels.NewProvisioner(sites, gws, tunnels.Encap{Type: tunnels.Type(cfg.TunnelType)})
	if err != nil {
		return res, err
	}
	rep, err := prov.Apply(ctx, plan)
	if err != nil {
		return res, err
	}
	res.ProvisionedMS = at()
	res.Tunnels = plan.Len()
	for _, c := range clients {
		res.OVSDBTxns += c.Transactions()
	}

	// 4. forwarding flows on every gateway
	next := NextHops(plan)
	if err := parallel(n, func(k int) error {
		sw := inv.Switch(names[k], lab.GatewayBridge)
		local := -1
		for _, p := range sw.PatchPorts {
			if p.Name == lab.GatewayPatch(probeVM) {
				local = p.OFPort
			}
		}
		if local <= 0 {
			return fmt.Errorf("site %s: gateway patch port %s has no OpenFlow port", names[k], lab.GatewayPatch(probeVM))
		}
		ports := map[string]int{}
		for peer, tp := range rep[names[k]].Ports {
			ports[peer] = tp.OFPort
		}
		flows, err := GatewayFlows(names, k+1, local, next, ports)
		if err != nil {
			return err
		}
		return addFlows(ctx, cfg.StateDir, names[k], lab.GatewayBridge, flows)
	}); err != nil {
		return res, err
	}
	res.FlowsMS = at()

	// 5. usable: every probe pair answers
	pairs, err := ProbePairs(plan, names)
	if err != nil {
		return res, err
	}
	res.ProbePairs = len(pairs)
	addrs := make([]netip.Addr, n)
	for k := range addrs {
		addrs[k] = ProbeIP(k + 1)
	}
	uctx, cancel := context.WithTimeout(ctx, cfg.UsableTimeout)
	defer cancel()
	if err := pingAll(uctx, conns, addrs, pairs, cfg.Interval, echoIDBase); err != nil {
		return res, err
	}
	res.UsableMS = at()

	// 6. check (not timed): every tunnel port of the plan carried packets both ways
	if err := parallel(n, func(k int) error {
		return checkTunnelTraffic(ctx, cfg.StateDir, names[k], rep[names[k]].Ports)
	}); err != nil {
		return res, err
	}
	return res, nil
}

// checkTunnelTraffic reads the port counters of site's gateway (ovs-ofctl
// dump-ports) until every tunnel port in ports (peer -> port) shows
// received and transmitted packets, for at most 3 s (the userspace
// datapath updates counters lazily).
func checkTunnelTraffic(ctx context.Context, stateDir, site string, ports map[string]tunnels.TunnelPort) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		cmd, err := lab.SiteCommand(ctx, stateDir, site, "ovs-ofctl", "-O", "OpenFlow13", "dump-ports", lab.GatewayBridge)
		if err != nil {
			return err
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("site %s: ovs-ofctl dump-ports: %w: %s", site, err, bytes.TrimSpace(out))
		}
		counts := ParseDumpPorts(string(out))
		var idle []string
		for _, p := range ports {
			c, ok := counts[strconv.Itoa(p.OFPort)]
			if !ok || c.RxPackets == 0 || c.TxPackets == 0 {
				idle = append(idle, fmt.Sprintf("%s (port %d: %+v)", p.Name, p.OFPort, c))
			}
		}
		if len(idle) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			slices.Sort(idle)
			return fmt.Errorf("site %s: tunnel ports without traffic both ways: %s", site, strings.Join(idle, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PortCounters are the packet counters of one port.
type PortCounters struct{ RxPackets, TxPackets uint64 }

var dumpPortRE = regexp.MustCompile(`port\s+"?([^\s:"]+)"?:\s+rx pkts=(\d+)[^\n]*\n\s+tx pkts=(\d+)`)

// ParseDumpPorts parses `ovs-ofctl dump-ports` output into counters by
// port number (or name, e.g. "LOCAL").
func ParseDumpPorts(out string) map[string]PortCounters {
	m := map[string]PortCounters{}
	for _, g := range dumpPortRE.FindAllStringSubmatch(out, -1) {
		rx, _ := strconv.ParseUint(g[2], 10, 64)
		tx, _ := strconv.ParseUint(g[3], 10, 64)
		m[g[1]] = PortCounters{RxPackets: rx, TxPackets: tx}
	}
	return m
}

// scaffold prepares the probes of a lab that is up: static ARP entries for
// every other probe in each probe host, the VM-bridge flows between the
// probe's port and the gateway uplink, and one raw ICMP socket per probe.
func scaffold(ctx context.Context, cfg Config, inv *lab.Inventory, n int) ([]*icmpConn, error) {
	conns := make([]*icmpConn, n)
	err := parallel(n, func(k int) error {
		i := k + 1
		h := inv.Host(ProbeHost(i))
		if h == nil || h.OFPort <= 0 {
			return fmt.Errorf("probe host %s missing or without OpenFlow port", ProbeHost(i))
		}
		var batch strings.Builder
		for j := 1; j <= n; j++ {
			if j != i {
				fmt.Fprintf(&batch, "neigh replace %s lladdr %s dev %s nud permanent\n", ProbeIP(j), ProbeMAC(j), lab.HostIface)
			}
		}
		if err := runStdin(ctx, batch.String(), nil, "ip", "-n", h.Netns, "-batch", "-"); err != nil {
			return fmt.Errorf("probe %s static ARP: %w", h.Name, err)
		}
		if err := addFlows(ctx, cfg.StateDir, h.Site, probeVM, []string{
			fmt.Sprintf("table=0,priority=100,in_port=%d,actions=output:%d", h.OFPort, lab.VMUplinkOFPort),
			fmt.Sprintf("table=0,priority=100,in_port=%d,actions=output:%d", lab.VMUplinkOFPort, h.OFPort),
		}); err != nil {
			return err
		}
		c, err := openICMP(h.Netns)
		conns[k] = c
		return err
	})
	if err != nil {
		for _, c := range conns {
			if c != nil {
				c.c.Close()
			}
		}
		return nil, err
	}
	return conns, nil
}

// addFlows adds OpenFlow 1.3 flows (ovs-ofctl syntax, one per line) to
// bridge of site in one ovs-ofctl call.
func addFlows(ctx context.Context, stateDir, site, bridge string, flows []string) error {
	cmd, err := lab.SiteCommand(ctx, stateDir, site, "ovs-ofctl", "-O", "OpenFlow13", "add-flows", bridge, "-")
	if err != nil {
		return err
	}
	cmd.Stdin = strings.NewReader(strings.Join(flows, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("site %s: ovs-ofctl add-flows %s: %w: %s", site, bridge, err, bytes.TrimSpace(out))
	}
	return nil
}

// runStdin runs argv with stdin and extra environment env.
func runStdin(ctx context.Context, stdin string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// CheckGone reports what is left of a lab with prefix and state
// directory: namespaces "<prefix>-*", the state directory, live processes
// whose command line names the state directory. nil when nothing is left.
func CheckGone(prefix, stateDir string) error {
	var left []string
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list namespaces: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			left = append(left, "namespace "+e.Name())
		}
	}
	if _, err := os.Stat(stateDir); err == nil {
		left = append(left, "state directory "+stateDir)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(stateDir+"/")) {
			continue
		}
		pid := strings.Split(p, "/")[2]
		if alive(pid) {
			left = append(left, "process "+pid+" ("+strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")+")")
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("lab %s at %s not gone: %s", prefix, stateDir, strings.Join(left, "; "))
	}
	return nil
}

// waitGone polls CheckGone until nothing is left or timeout passed.
func waitGone(prefix, stateDir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := CheckGone(prefix, stateDir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	k := bytes.LastIndexByte(b, ')')
	if k < 0 || k+2 >= len(b) {
		return false
	}
	return b[k+2] != 'Z' && b[k+2] != 'X'
}

// load1 returns the 1-minute load average from /proc/loadavg (-1 if unreadable).
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// parallel runs f(0..n-1) concurrently and joins the errors.
func parallel(n int, f func(int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = f(k)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
