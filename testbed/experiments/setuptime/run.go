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

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
	"github.com/skyvisor/skyvisor/testbed/lab"
	"github.com/skyvisor/skyvisor/tunnels"
)

// echoIDBase is the first ICMP echo identifier of a run's host pairs.
const echoIDBase = 0x5000

// pollInterval is the period of the milestone checks during tunnel creation.
const pollInterval = 2 * time.Millisecond

// Run executes the experiment: for every run, every N in cfg.Sites and
// every mode (sweeps of all sizes and modes one after the other, so that a
// change of the machine's load hits every size and mode alike instead of
// the largest) it builds a fresh lab, measures (see the package documentation), stops
// Skyvisor, tears the lab down with lab.Down and checks that nothing of it
// is left. It writes one progress line per run. Leftovers of an earlier
// crashed experiment with the same prefix and state directory are removed
// first. It stops at the first failed run and returns the results so far
// with the error.
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
	total := len(cfg.Sites) * cfg.Runs * len(cfg.Modes)
	for run := 1; run <= cfg.Runs; run++ {
		for _, n := range cfg.Sites {
			for _, mode := range cfg.Modes {
				r, err := RunOnce(ctx, cfg, n, mode, run)
				if err != nil {
					return out, fmt.Errorf("setuptime: sites=%d mode=%s run=%d: %w", n, mode, run, err)
				}
				out = append(out, r)
				fmt.Fprintf(cfg.Progress, "setuptime: [%d/%d] sites=%d vms_total=%d mode=%s run=%d/%d tunnels=%d lab_up=%.0fms tunnels_usable=%.0fms apply=%.0fms reachable=%.0fms setup=%.0fms flows=%d load1=%.2f\n",
					len(out), total, n, n*cfg.VMs, mode, run, cfg.Runs, r.Tunnels, r.LabUpMS, r.TunnelCreationMS(), r.ApplyMS,
					r.PopulationMS(), r.SetupMS(), r.FlowAdds, r.Load1)
			}
		}
	}
	return out, nil
}

// LabSpec returns the lab of one run: n sites "s01".."sNN" with cfg.VMs
// VMs each, host HostName(i, v) (HostMAC, HostIP) on VM v of site i with
// iface-id "<Tenant>/<host>", no controller (Skyvisor sets it), the
// configured WAN delay and tunnel type. The lab creates no tunnels.
func LabSpec(cfg Config, n int) *lab.Spec {
	s := &lab.Spec{Name: fmt.Sprintf("setuptime-%dx%d", n, cfg.VMs), Prefix: cfg.Prefix, StateDir: cfg.StateDir,
		TunnelType: cfg.TunnelType, Controller: "none", WAN: lab.WANSpec{DelayMS: cfg.DelayMS}}
	for i := 1; i <= n; i++ {
		name := SiteName(i)
		s.Sites = append(s.Sites, lab.SiteSpec{Name: name, VMs: lab.VMList{Count: cfg.VMs}})
		for v := 1; v <= cfg.VMs; v++ {
			h := HostName(i, v)
			s.Hosts = append(s.Hosts, lab.HostSpec{Name: h, Site: name, VM: VMName(v), MAC: HostMAC(i, v).String(),
				IP: fmt.Sprintf("%s/%d", HostIP(i, v), HostPrefixLen), IfaceID: Tenant + "/" + h})
		}
	}
	return s
}

// SiteName is the name of site i (1-based): "s01".."s99", so that lexical
// order (which tunnels planning uses) is numeric order.
func SiteName(i int) string { return fmt.Sprintf("s%02d", i) }

// RunOnce measures one run of (n sites, mode) on a fresh lab, then stops
// Skyvisor and tears the lab down (lab.Down, then CheckGone), also on
// failure.
func RunOnce(ctx context.Context, cfg Config, n int, mode string, run int) (res Result, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	spec := LabSpec(cfg, n)
	hosts := n * cfg.VMs
	res = Result{Sites: n, VMs: cfg.VMs, Mode: mode, Run: run, TunnelType: cfg.TunnelType, DelayMS: cfg.DelayMS,
		Hosts: hosts, Pairs: hosts * (hosts - 1) / 2, Load1: runinfo.Load1(), Commit: runinfo.Commit()}

	var sky *skyvisor
	var conns []*icmpConn
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.c.Close()
			}
		}
		if sky != nil {
			if serr := sky.stop(); serr != nil {
				err = errors.Join(err, fmt.Errorf("skyvisor: %w", serr))
			}
		}
		dctx := context.WithoutCancel(ctx)
		if derr := lab.Down(dctx, cfg.StateDir); derr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", derr))
		} else if gerr := waitGone(cfg.Prefix, cfg.StateDir, 5*time.Second); gerr != nil {
			err = errors.Join(err, fmt.Errorf("teardown: %w", gerr))
		}
	}()

	// 1. lab up, hosts plugged; untimed: the hosts' ICMP sockets
	t0 := time.Now()
	inv, err := lab.UpWith(ctx, spec, lab.Options{RelayCommand: cfg.RelayCommand, Logger: cfg.Logger})
	res.LabUpMS = msOf(time.Since(t0))
	if err != nil {
		return res, err
	}
	addrs := make([]netip.Addr, 0, hosts)
	netns := make([]string, 0, hosts)
	for i := 1; i <= n; i++ {
		for v := 1; v <= cfg.VMs; v++ {
			h := inv.Host(HostName(i, v))
			if h == nil {
				return res, fmt.Errorf("host %s missing from the inventory", HostName(i, v))
			}
			addrs = append(addrs, HostIP(i, v))
			netns = append(netns, h.Netns)
		}
	}
	conns = make([]*icmpConn, hosts)
	if err := parallel(hosts, func(k int) error {
		if err := staticARP(ctx, netns[k], k, n, cfg.VMs); err != nil {
			return err
		}
		c, err := openICMP(netns[k])
		conns[k] = c
		return err
	}); err != nil {
		return res, err
	}
	gateways := map[string]uint64{}
	var dpids []uint64
	for _, si := range inv.Sites {
		gateways[si.Name] = si.GatewayDPID
	}
	for _, sw := range inv.Switches {
		dpids = append(dpids, sw.DPID)
	}

	// 2. tunnel creation: Skyvisor starts, until every tunnel carries a probe both ways
	tStart := time.Now()
	since := func(t time.Time) float64 { return msOf(time.Since(t)) }
	if sky, err = startSkyvisor(ctx, inv, cfg.Prefix, mode == ModeMesh, cfg.Logger); err != nil {
		return res, fmt.Errorf("start skyvisor: %w", err)
	}
	want := TunnelCount(mode, n)
	tctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var st tunnelState
	nextProbe := time.Now()
	for res.SwitchesMS == 0 || res.TunnelPortsMS == 0 || res.TunnelsUsableMS == 0 || res.BoundMS == 0 {
		if res.SwitchesMS == 0 && sky.probe.connected(dpids) == len(dpids) {
			res.SwitchesMS = since(tStart)
		}
		if res.BoundMS == 0 {
			if bs, err := sky.st.Bindings(); err == nil && len(bs) == hosts {
				res.BoundMS = since(tStart)
			}
		}
		if plan := sky.h.Plan(); res.TunnelsUsableMS == 0 && plan.Len() == want && !time.Now().Before(nextProbe) {
			st = sky.probe.round(tctx, plan, gateways)
			if res.TunnelPortsMS == 0 && st.Ports == 2*want {
				res.TunnelPortsMS = since(tStart)
			}
			if st.Confirmed == 2*want {
				res.TunnelsUsableMS = since(tStart)
			}
			nextProbe = time.Now().Add(cfg.probeInterval(len(st.Pending)))
		}
		if err := sky.err(); err != nil {
			return res, err
		}
		select {
		case <-tctx.Done():
			return res, fmt.Errorf("tunnel creation: after %v: %d/%d switches connected, %d/%d hosts bound, plan %s, %s: %w",
				cfg.Timeout, sky.probe.connected(dpids), len(dpids), boundCount(sky), hosts, sky.h.Plan(), st, tctx.Err())
		case <-time.After(pollInterval):
		}
	}
	res.Tunnels = sky.h.Plan().Len()
	res.OVSDBTxns = sky.h.OVSDBTransactions()

	// 3. state population: the tenant's topology submitted, until every pair answered
	added := sky.h.SyncStats().Added
	doc := TenantDoc(n, cfg.VMs)
	pctx, pcancel := context.WithTimeout(ctx, cfg.Timeout)
	defer pcancel()
	tSubmit := time.Now()
	ar, err := sky.client.Apply(pctx, doc)
	res.ApplyMS = since(tSubmit)
	if err != nil {
		return res, fmt.Errorf("apply tenant: %w", err)
	}
	if len(ar.Tenants) != 1 || ar.Tenants[0].State != api.TenantActive {
		return res, fmt.Errorf("apply tenant: %+v, want tenant %s active", ar.Tenants, Tenant)
	}
	pairs := AllPairs(hosts)
	if err := pingAll(pctx, conns, addrs, pairs, cfg.probeInterval(len(pairs)), echoIDBase); err != nil {
		return res, fmt.Errorf("reachability: %w", err)
	}
	res.ReachableMS = since(tSubmit)
	res.FlowAdds = sky.h.SyncStats().Added - added

	// 4. check (untimed): every tunnel port of the plan carried tenant packets both ways
	plan := sky.h.Plan()
	return res, parallel(n, func(k int) error {
		site := inv.Sites[k].Name
		var names []string
		for _, peer := range plan.Peers(site) {
			names = append(names, tunnels.PortName(peer))
		}
		return checkTunnelTraffic(ctx, cfg.StateDir, site, names)
	})
}

// staticARP gives host k (index in site-major order) of n sites with vms
// VMs each a permanent neighbour entry for every other host, so the
// reachability probe does not depend on ARP (see the package
// documentation).
func staticARP(ctx context.Context, ns string, k, n, vms int) error {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		for v := 1; v <= vms; v++ {
			if (i-1)*vms+v-1 != k {
				fmt.Fprintf(&b, "neigh replace %s lladdr %s dev %s nud permanent\n", HostIP(i, v), HostMAC(i, v), lab.HostIface)
			}
		}
	}
	cmd := exec.CommandContext(ctx, "ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: static neighbour entries: %w: %s", ns, err, bytes.TrimSpace(out))
	}
	return nil
}

// boundCount returns the number of bindings in sky's store (-1 on error).
func boundCount(sky *skyvisor) int {
	bs, err := sky.st.Bindings()
	if err != nil {
		return -1
	}
	return len(bs)
}

// checkTunnelTraffic reads the port counters of site's gateway (ovs-ofctl
// dump-ports) until every port in names shows received and transmitted
// packets, for at most 3 s (the userspace datapath updates counters
// lazily).
func checkTunnelTraffic(ctx context.Context, stateDir, site string, names []string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		cmd, err := lab.SiteCommand(ctx, stateDir, site, "ovs-ofctl", "--names", "-O", "OpenFlow13", "dump-ports", lab.GatewayBridge)
		if err != nil {
			return err
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("site %s: ovs-ofctl dump-ports: %w: %s", site, err, bytes.TrimSpace(out))
		}
		counts := ParseDumpPorts(string(out))
		var idle []string
		for _, name := range names {
			c, ok := counts[name]
			if !ok || c.RxPackets == 0 || c.TxPackets == 0 {
				idle = append(idle, fmt.Sprintf("%s (%+v)", name, c))
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
