// Package demo is Skyvisor's end-to-end demonstration (`make demo`,
// cmd/skydemo; docs/demo.md): a 3-cloud lab on real Open vSwitch
// (testbed/lab), the skyvisor daemon running the hypervisor over the lab's
// inventory, two tenants with identical MACs and IPs applied through the
// REST API with skyctl, then checks with assertions: every ordered pair of
// hosts inside each tenant pings across clouds; tcpdump in every host
// namespace sees no frame of one tenant at the other's hosts; a host that
// takes an unbound MAC, another host's MAC, the other tenant's fabric MAC
// or its own fabric MAC gets nothing through (captures in every other host
// namespace, the edge drop entry's counters). Run returns a Summary whose
// Failures list every unmet expectation.
package demo

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// Config is what the demo runs. Paths may be relative to the working
// directory (the repository root under `make demo`).
type Config struct {
	// LabFile is the lab (examples/labs/demo.json); Prefix and StateDir
	// override its prefix and state_dir when set.
	LabFile  string
	Prefix   string
	StateDir string
	// TenantsFile is the tenants document applied with skyctl
	// (examples/two-tenants.json).
	TenantsFile string
	// BinDir holds the skyvisor and skyctl binaries (`make build`: bin/).
	BinDir string
	// APIListen is skyvisor's REST API address (127.0.0.1:18080).
	APIListen string
	// Keep leaves the lab and skyvisor running after the checks.
	Keep bool
	// Timeout bounds each waiting step (switches, tenants, pings);
	// default 60 s.
	Timeout time.Duration
	// Out gets the progress lines, the skyctl output and the summary.
	Out io.Writer
}

// Defaults of Config.
const (
	DefaultLabFile     = "examples/labs/demo.json"
	DefaultTenantsFile = "examples/two-tenants.json"
	DefaultAPIListen   = "127.0.0.1:18080"
	DefaultTimeout     = 60 * time.Second
)

// Files the demo keeps in the lab's state directory (removed by Down).
const (
	PIDFile       = "skyvisor.pid"
	LogFile       = "skyvisor.log"
	TokenFile     = "api-token"
	InventoryFile = "inventory.json"
	DaemonDir     = "skyvisor" // skyvisor's --state-dir
)

// unboundMAC is the first MAC the spoof check gives a host: bound to no
// host.
const unboundMAC = "00:00:00:00:00:5f"

// run is one demo run's state.
type run struct {
	cfg   Config
	spec  *lab.Spec
	dir   string
	inv   *lab.Inventory
	hosts []Host
	// ids are the tenant IDs skyvisor assigned (after the apply).
	ids map[string]uint16
	sum *Summary
	out io.Writer
	cli *api.Client
	sv  *exec.Cmd
	// svExited is closed when skyvisor exits.
	svExited chan struct{}
	step     int
	steps    int
}

// LoadSpec reads cfg.LabFile with cfg.Prefix and cfg.StateDir applied
// (state_dir defaults to /tmp/skylab/<prefix>).
func LoadSpec(cfg Config) (*lab.Spec, error) {
	b, err := os.ReadFile(cfg.LabFile)
	if err != nil {
		return nil, fmt.Errorf("lab file: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("lab file %s: %w", cfg.LabFile, err)
	}
	if cfg.Prefix != "" {
		raw["prefix"] = cfg.Prefix
		delete(raw, "state_dir") // derived from the new prefix unless given
		delete(raw, "controller")
	}
	if cfg.StateDir != "" {
		raw["state_dir"] = cfg.StateDir
		delete(raw, "controller")
	}
	b, _ = json.Marshal(raw)
	spec, err := lab.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("lab file %s: %w", cfg.LabFile, err)
	}
	return spec, nil
}

// Run runs the demo: clean leftovers of an earlier run (only this prefix
// and state dir), lab up, skyvisor up, apply, pings, captures, spoof,
// summary; then tears everything down unless cfg.Keep. It returns the
// summary (also when a step fails: the failure is in Problems) and an
// error only when the demo could not run at all. The caller checks
// Summary.Failures.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.APIListen == "" {
		cfg.APIListen = DefaultAPIListen
	}
	spec, err := LoadSpec(cfg)
	if err != nil {
		return nil, err
	}
	for _, b := range []string{"skyvisor", "skyctl"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%s binary: %w (run `make build` first)", b, err)
		}
	}
	doc, err := os.ReadFile(cfg.TenantsFile)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	r := &run{cfg: cfg, spec: spec, dir: spec.StateDir, sum: &Summary{}, out: cfg.Out, steps: 6}
	r.progress("clean up leftovers of prefix %q (%s)", spec.Prefix, r.dir)
	if err := Down(ctx, spec.Prefix, r.dir); err != nil {
		return nil, fmt.Errorf("clean up an earlier demo: %w", err)
	}
	err = r.steps1to5(ctx, doc)
	if err != nil {
		r.sum.Problems = append(r.sum.Problems, err.Error())
		fmt.Fprintf(r.out, "   FAILED: %v\n", err)
		if r.sv != nil {
			fmt.Fprintf(r.out, "   skyvisor log (%s), last lines:\n%s", filepath.Join(r.dir, LogFile), indent(tail(filepath.Join(r.dir, LogFile), 15)))
		}
	}
	fmt.Fprintln(r.out)
	r.sum.WriteTable(r.out)
	fmt.Fprintln(r.out)
	if cfg.Keep {
		r.printKeep()
		return r.sum, nil
	}
	r.progress("tear down: skyvisor (pid %d), lab %s", r.pid(), r.dir)
	if !r.sum.OK() && r.sv != nil {
		// The state dir goes away: keep skyvisor's log for the post-mortem.
		keep := filepath.Join(os.TempDir(), fmt.Sprintf("skydemo-%s-skyvisor-%s.log", spec.Prefix, time.Now().UTC().Format("20060102T150405")))
		if b, err := os.ReadFile(filepath.Join(r.dir, LogFile)); err == nil && os.WriteFile(keep, b, 0o644) == nil {
			fmt.Fprintf(r.out, "   skyvisor's log kept in %s\n", keep)
		}
	}
	if err := Down(context.WithoutCancel(ctx), spec.Prefix, r.dir); err != nil {
		r.sum.Problems = append(r.sum.Problems, "teardown: "+err.Error())
		return r.sum, nil
	}
	fmt.Fprintln(r.out, "   done: no namespace, process or file of the demo is left")
	return r.sum, nil
}

func (r *run) pid() int {
	if r.sv != nil && r.sv.Process != nil {
		return r.sv.Process.Pid
	}
	return 0
}

func (r *run) progress(format string, args ...any) {
	r.step++
	fmt.Fprintf(r.out, "==> [%d/%d] %s\n", r.step, r.steps+1, fmt.Sprintf(format, args...))
}

func (r *run) steps1to5(ctx context.Context, doc []byte) error {
	// 1. The lab.
	r.progress("lab %q: %d clouds, %d hosts (prefix %s)", r.spec.Name, len(r.spec.Sites), len(r.spec.Hosts), r.spec.Prefix)
	t0 := time.Now()
	inv, err := lab.Up(ctx, r.spec)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	r.inv = inv
	r.sum.LabUp = time.Since(t0)
	var sites []string
	for _, s := range inv.Sites {
		sites = append(sites, fmt.Sprintf("%s (%s)", s.Name, strings.Join(s.VMs, ", ")))
	}
	fmt.Fprintf(r.out, "   up in %s: %d switches; sites %s; controller %s\n", round(r.sum.LabUp), len(inv.Switches), strings.Join(sites, ", "), inv.Controller)
	if r.hosts, err = planHosts(doc, inv.Hosts); err != nil {
		return err
	}
	for _, h := range r.hosts {
		if h.LabMAC != h.MAC {
			if err := r.hostRun(ctx, h.Lab, "ip", "link", "set", "dev", lab.HostIface, "address", h.MAC); err != nil {
				return fmt.Errorf("give %s its tenant MAC %s: %w", h.Lab, h.MAC, err)
			}
		}
	}
	for _, h := range r.hosts {
		ih := inv.Host(h.Lab)
		fmt.Fprintf(r.out, "   host %-6s on %-10s %s %-9s iface-id %s/%s\n", h.Lab, ih.Site+"/"+ih.VM, h.MAC, h.IP, h.Tenant, h.Name)
	}

	// 2. skyvisor.
	r.progress("skyvisor: hypervisor over the lab inventory, REST API on %s", r.cfg.APIListen)
	t0 = time.Now()
	if err := r.startSkyvisor(ctx); err != nil {
		return err
	}
	if err := r.waitHealthy(ctx); err != nil {
		return err
	}
	r.sum.DaemonUp = time.Since(t0)
	fmt.Fprintf(r.out, "   pid %d, log %s; all %d switches connected, tunnels up, in %s\n", r.pid(), filepath.Join(r.dir, LogFile), len(inv.Switches), round(r.sum.DaemonUp))

	// 3. Apply the tenants with skyctl.
	r.progress("apply %s with skyctl", r.cfg.TenantsFile)
	applied := time.Now()
	if err := r.skyctl(ctx, "apply", "-f", r.cfg.TenantsFile); err != nil {
		return err
	}
	if err := r.waitTenantsActive(ctx); err != nil {
		return err
	}
	list, err := r.cli.Tenants(ctx)
	if err != nil {
		return err
	}
	r.ids = map[string]uint16{}
	for _, t := range list {
		r.ids[t.Tenant] = uint16(t.TenantID)
	}
	fmt.Fprintln(r.out, "   $ skyctl get tenants")
	if err := r.skyctl(ctx, "get", "tenants"); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "   $ skyctl topology physical")
	if err := r.skyctl(ctx, "topology", "physical"); err != nil {
		return err
	}

	// 4. Pings inside each tenant, across clouds.
	r.sum.Pairs = planPairs(r.hosts)
	r.progress("ping every ordered pair inside each tenant (%d pairs, across clouds)", len(r.sum.Pairs))
	r.pingAll(ctx, applied)
	for _, p := range r.sum.Pairs {
		st := "ok"
		if !p.OK {
			st = "FAIL " + firstLine(p.Err)
		}
		fmt.Fprintf(r.out, "   %s %s -> %s (%s): %s after %s\n", p.Tenant, p.From, p.To, p.DstIP, st, round(p.After))
	}
	var last time.Duration
	for _, p := range r.sum.Pairs {
		if !p.OK {
			last = 0
			break
		}
		last = max(last, p.After)
	}
	r.sum.Setup = last

	// 5. Isolation: captures everywhere while one tenant talks; spoof.
	r.progress("isolation (same MACs and IPs in both tenants): tcpdump in all %d host namespaces while one tenant pings and ARPs; then spoofed source MACs", len(r.hosts))
	for _, tn := range tenants(r.hosts) {
		c, err := r.isolation(ctx, tn)
		if err != nil {
			return fmt.Errorf("isolation check of %s: %w", tn, err)
		}
		r.sum.Isolation = append(r.sum.Isolation, c)
		fmt.Fprintf(r.out, "   %s talks: %d frames at its own hosts, %d at other tenants' hosts\n", tn, c.Control, c.Leaked)
		if c.WANChecked {
			bfd := ""
			if c.WANBFD > 0 {
				bfd = fmt.Sprintf(" (besides %d BFD packets of the tunnels themselves, key 0)", c.WANBFD)
			}
			fmt.Fprintf(r.out, "     on the WAN: %d tunnelled frames%s, %d not with source MAC %s:* and key %d; e.g. %s\n",
				c.WANFrames, bfd, c.WANForeign, fabricPrefix(r.ids[tn]), r.ids[tn], c.WANSample)
		}
		for _, s := range c.Sample {
			fmt.Fprintf(r.out, "     leaked: %s\n", s)
		}
	}
	sps, err := r.spoofAll(ctx)
	r.sum.Spoofs = sps
	if err != nil {
		return fmt.Errorf("spoof check: %w", err)
	}
	return nil
}

// startSkyvisor writes the inventory and a fresh token and starts
// bin/skyvisor in its own process group, logging to LogFile; its PID goes
// to PIDFile.
func (r *run) startSkyvisor(ctx context.Context) error {
	invJSON, err := json.MarshalIndent(r.inv, "", "  ")
	if err != nil {
		return err
	}
	invFile := filepath.Join(r.dir, InventoryFile)
	if err := os.WriteFile(invFile, invJSON, 0o644); err != nil {
		return err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	tokFile := filepath.Join(r.dir, TokenFile)
	if err := os.WriteFile(tokFile, []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(r.dir, LogFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	bin, _ := filepath.Abs(filepath.Join(r.cfg.BinDir, "skyvisor"))
	args := []string{"--apps", "hypervisor", "--infra", invFile, "--listen", r.inv.Controller,
		"--state-dir", filepath.Join(r.dir, DaemonDir), "--api-listen", r.cfg.APIListen, "--api-token-file", tokFile}
	fmt.Fprintf(r.out, "   $ %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches only the demo, which tears down
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start skyvisor: %w", err)
	}
	r.sv = cmd
	if err := os.WriteFile(filepath.Join(r.dir, PIDFile), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	r.svExited = exited
	c, err := api.NewClient("http://"+r.cfg.APIListen, strings.TrimSpace(hex.EncodeToString(tok)), &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	r.cli = c
	return nil
}

// waitHealthy polls /v1/health until it is ok (every switch connected over
// OpenFlow, every OVSDB endpoint, the tunnels provisioned).
func (r *run) waitHealthy(ctx context.Context) error {
	var last string
	err := r.poll(ctx, func() bool {
		h, err := r.cli.Health(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		last = ""
		for _, c := range h.Checks {
			if c.Status != api.HealthOK {
				last += fmt.Sprintf("%s: %s %s; ", c.Name, c.Status, c.Message)
			}
		}
		return h.Status == api.HealthOK
	})
	if err != nil {
		return fmt.Errorf("skyvisor not healthy: %w (last: %s)", err, last)
	}
	return nil
}

// waitTenantsActive polls until every tenant of the hosts is active with
// all its hosts bound.
func (r *run) waitTenantsActive(ctx context.Context) error {
	var last string
	err := r.poll(ctx, func() bool {
		list, err := r.cli.Tenants(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		active := map[string]bool{}
		last = ""
		for _, t := range list {
			active[t.Tenant] = t.State == api.TenantActive && t.HostsBound == t.Hosts
			last += fmt.Sprintf("%s %s %d/%d bound; ", t.Tenant, t.State, t.HostsBound, t.Hosts)
		}
		for _, tn := range tenants(r.hosts) {
			if !active[tn] {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("tenants not active: %w (last: %s)", err, last)
	}
	return nil
}

// poll calls cond every 100 ms until it holds, skyvisor exits, ctx ends
// or cfg.Timeout passes.
func (r *run) poll(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(r.cfg.Timeout)
	for !cond() {
		if r.svExited != nil {
			select {
			case <-r.svExited:
				return fmt.Errorf("skyvisor exited (%v)", r.sv.ProcessState)
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", r.cfg.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// skyctl runs bin/skyctl against the demo's API with the token file,
// printing its output indented.
func (r *run) skyctl(ctx context.Context, args ...string) error {
	bin := filepath.Join(r.cfg.BinDir, "skyctl")
	full := append([]string{"--server", "http://" + r.cfg.APIListen, "--token-file", filepath.Join(r.dir, TokenFile)}, args...)
	out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	fmt.Fprint(r.out, indent(string(out)))
	if err != nil {
		return fmt.Errorf("skyctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// hostRun runs argv in lab host's namespace.
func (r *run) hostRun(ctx context.Context, host string, argv ...string) error {
	c, err := lab.HostCommand(ctx, r.dir, host, argv...)
	if err != nil {
		return err
	}
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %s: %w: %s", host, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// pingAll pings every pair in parallel (one echo, 1 s wait, repeated)
// until each got a reply or the timeout passed; After is measured from
// applied.
func (r *run) pingAll(ctx context.Context, applied time.Time) {
	var wg sync.WaitGroup
	for i := range r.sum.Pairs {
		wg.Add(1)
		go func(p *Pair) {
			defer wg.Done()
			deadline := time.Now().Add(r.cfg.Timeout)
			for ctx.Err() == nil {
				err := r.hostRun(ctx, p.FromLab, "ping", "-n", "-c", "1", "-W", "1", p.DstIP)
				if err == nil {
					p.OK, p.After, p.Err = true, time.Since(applied), ""
					return
				}
				p.Err = err.Error()
				if time.Now().After(deadline) {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}(&r.sum.Pairs[i])
	}
	wg.Wait()
}

// quiesce flushes every host's neighbour cache: an unanswered ARP
// (an address nobody has, or a spoofed source) leaves an INCOMPLETE entry
// that the kernel keeps re-asking for about 3 s after ping exits; flushing
// stops that, so the next capture sees only the traffic it provokes.
func (r *run) quiesce(ctx context.Context) {
	for _, h := range r.hosts {
		_ = r.hostRun(ctx, h.Lab, "ip", "neigh", "flush", "dev", lab.HostIface)
	}
	time.Sleep(100 * time.Millisecond)
}

// capture is tcpdump running in one host's namespace, printing the ARP and
// ICMP frames the host receives.
type capture struct {
	host  string
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

// startCapture starts tcpdump on host's eth0 (inbound ARP and ICMP,
// link-level headers) and returns once it listens.
func (r *run) startCapture(ctx context.Context, host string) (*capture, error) {
	c, err := lab.HostCommand(ctx, r.dir, host, "tcpdump", "-i", lab.HostIface, "-Q", "in", "-nn", "-e", "-l", "arp or icmp")
	if err != nil {
		return nil, err
	}
	return startTcpdump(host, c)
}

// wanFilter is the tcpdump filter of the lab's tunnels on the WAN, or ""
// when the demo cannot look inside them (GRE: tcpdump does not decode the
// inner frame with the key; the delay relay: no bridge to capture on).
func (r *run) wanFilter() string {
	if r.inv.WAN.Mode != "bridge" {
		return ""
	}
	switch r.inv.TunnelType {
	case "vxlan":
		return "udp port 4789"
	case "geneve":
		return "udp port 6081"
	}
	return ""
}

// startWANCapture starts tcpdump on every port of the WAN namespace.
func (r *run) startWANCapture(ctx context.Context) (*capture, error) {
	c := exec.CommandContext(ctx, "ip", "netns", "exec", r.inv.WAN.Netns, "tcpdump", "-i", "any", "-nn", "-e", "-l", r.wanFilter())
	return startTcpdump("wan", c)
}

// startTcpdump starts c (a tcpdump) and returns once it listens.
func startTcpdump(host string, c *exec.Cmd) (*capture, error) {
	stdout, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := c.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("tcpdump in %s: %w", host, err)
	}
	cp := &capture{host: host, cmd: c, done: make(chan struct{})}
	go func() {
		defer close(cp.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			cp.mu.Lock()
			cp.lines = append(cp.lines, sc.Text())
			cp.mu.Unlock()
		}
	}()
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var got []string
		for sc.Scan() {
			got = append(got, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				ready <- nil
				io.Copy(io.Discard, stderr)
				return
			}
		}
		ready <- fmt.Errorf("tcpdump in %s did not start: %s", host, strings.Join(got, "; "))
	}()
	select {
	case err := <-ready:
		if err != nil {
			c.Process.Kill()
			c.Wait()
			return nil, err
		}
	case <-time.After(10 * time.Second):
		c.Process.Kill()
		c.Wait()
		return nil, fmt.Errorf("tcpdump in %s: not listening after 10 s", host)
	}
	return cp, nil
}

// stop ends tcpdump (SIGINT flushes it) and returns the frame lines.
func (cp *capture) stop() []string {
	var out []string
	for _, l := range cp.stopRaw() {
		if isFrameLine(l) {
			out = append(out, l)
		}
	}
	return out
}

// stopRaw ends tcpdump and returns every line it printed.
func (cp *capture) stopRaw() []string {
	cp.cmd.Process.Signal(os.Interrupt)
	select {
	case <-cp.done:
	case <-time.After(5 * time.Second):
		cp.cmd.Process.Kill()
		<-cp.done
	}
	cp.cmd.Wait()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.lines...)
}

// captureAll starts tcpdump on every lab host in hosts.
func (r *run) captureAll(ctx context.Context, hosts []Host) (map[string]*capture, error) {
	caps := map[string]*capture{}
	for _, h := range hosts {
		c, err := r.startCapture(ctx, h.Lab)
		if err != nil {
			for _, c := range caps {
				c.stop()
			}
			return nil, err
		}
		caps[h.Lab] = c
	}
	// The kernel starts delivering to the socket slightly after tcpdump
	// prints "listening"; give it a moment so the first frames count.
	time.Sleep(200 * time.Millisecond)
	return caps, nil
}

// isolation captures on every host while tenant tn's hosts flush their
// ARP caches, ping each other (3 echoes each pair) and ARP for an address
// nobody has (broadcasts); the other tenants stay silent.
func (r *run) isolation(ctx context.Context, tn string) (Capture, error) {
	c := Capture{Sender: tn, LeakedAt: map[string]int{}}
	r.quiesce(ctx)
	var wan *capture
	if r.wanFilter() != "" {
		var err error
		if wan, err = r.startWANCapture(ctx); err != nil {
			return c, err
		}
	}
	caps, err := r.captureAll(ctx, r.hosts)
	if err != nil {
		if wan != nil {
			wan.stop()
		}
		return c, err
	}
	var wg sync.WaitGroup
	for _, h := range r.hosts {
		if h.Tenant != tn {
			continue
		}
		_ = r.hostRun(ctx, h.Lab, "ip", "neigh", "flush", "dev", lab.HostIface)
		for _, d := range r.hosts {
			if d.Tenant != tn {
				continue
			}
			dst := d.IP
			if d.Name == h.Name {
				dst = unusedIP(d.IP, slices.Index(tenants(r.hosts), tn)) // nobody: ARP broadcasts only
			}
			wg.Add(1)
			go func(from, dst string) {
				defer wg.Done()
				_ = r.hostRun(ctx, from, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", dst)
			}(h.Lab, dst)
		}
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // frames in flight
	if wan != nil {
		c.WANChecked = true
		id := r.ids[tn]
		for _, f := range parseWAN(wan.stopRaw()) {
			if f.BFD {
				c.WANBFD++ // the fabric's tunnel liveness, no tenant's frame
				continue
			}
			c.WANFrames++
			if !strings.HasPrefix(f.Src, fabricPrefix(id)+":") || f.VNI != uint32(id) {
				c.WANForeign++
				if c.WANForeignSample == "" {
					c.WANForeignSample = fmt.Sprintf("key %d: %s", f.VNI, f.Line)
				}
			} else if c.WANSample == "" {
				c.WANSample = fmt.Sprintf("key %d: %s", f.VNI, f.Line)
			}
		}
	}
	for _, h := range r.hosts {
		frames := caps[h.Lab].stop()
		if h.Tenant == tn {
			c.Control += len(frames)
			continue
		}
		if len(frames) > 0 {
			c.Leaked += len(frames)
			c.LeakedAt[h.Lab] = len(frames)
			for _, f := range frames {
				if len(c.Sample) < 3 {
					c.Sample = append(c.Sample, h.Lab+": "+f)
				}
			}
		}
	}
	return c, nil
}

// spoofCase is one MAC the spoof check gives the spoofing host.
type spoofCase struct {
	name, mac string
}

// spoofPlan picks the spoofing host (the last host of the first tenant),
// its target (the tenant's first host) and the MACs it tries: one bound to
// no host; another host's MAC (a host of its own tenant other than the
// target, whose MAC is also that of the other tenant's host of the same
// name: both tenants use identical addresses); the fabric MAC of the
// other tenant's host with the spoofer's name; the spoofer's own fabric
// MAC. Fabric MACs are addr.FabricMAC of the tenant ID the API reports
// and the host index of GET /v1/tenants/{name}/mapping, cross-checked
// against the fabric MAC the mapping gives.
func (r *run) spoofPlan(ctx context.Context) (src, dst Host, cases []spoofCase, err error) {
	tns := tenants(r.hosts)
	tn := tns[0]
	var mine []Host
	for _, h := range r.hosts {
		if h.Tenant == tn {
			mine = append(mine, h)
		}
	}
	if len(mine) < 2 {
		return src, dst, nil, fmt.Errorf("tenant %s has %d hosts, want 2 or more", tn, len(mine))
	}
	src, dst = mine[len(mine)-1], mine[0]
	cases = append(cases, spoofCase{"unbound MAC", unboundMAC})

	victim := dst
	if len(mine) > 2 {
		victim = mine[1]
	}
	same := []string{victim.Lab}
	for _, h := range r.hosts {
		if h.MAC == victim.MAC && h.Lab != victim.Lab {
			same = append(same, h.Lab)
		}
	}
	cases = append(cases, spoofCase{"MAC of " + strings.Join(same, " = "), victim.MAC})

	fabric := func(tenant, host string) (string, error) {
		m, err := r.cli.Mapping(ctx, tenant)
		if err != nil {
			return "", fmt.Errorf("mapping of %s: %w", tenant, err)
		}
		if uint16(m.TenantID) != r.ids[tenant] {
			return "", fmt.Errorf("mapping of %s: tenant ID %d, the tenant list says %d", tenant, m.TenantID, r.ids[tenant])
		}
		for _, hm := range m.Hosts {
			if hm.Name != host {
				continue
			}
			_, idx := addr.Split(hm.FabricMAC)
			mac := addr.FabricMAC(addr.TenantID(r.ids[tenant]), idx)
			if mac != hm.FabricMAC {
				return "", fmt.Errorf("mapping of %s/%s: fabric MAC %s, addr.FabricMAC(%d, %d) = %s", tenant, host, hm.FabricMAC, r.ids[tenant], idx, mac)
			}
			return mac.String(), nil
		}
		return "", fmt.Errorf("mapping of %s: no host %q", tenant, host)
	}
	if len(tns) > 1 {
		other := tns[1]
		twin := ""
		for _, h := range r.hosts {
			if h.Tenant == other && (twin == "" || h.Name == src.Name) {
				twin = h.Name
			}
		}
		mac, err := fabric(other, twin)
		if err != nil {
			return src, dst, nil, err
		}
		cases = append(cases, spoofCase{fmt.Sprintf("fabric MAC of %s/%s", other, twin), mac})
	}
	mac, err := fabric(tn, src.Name)
	if err != nil {
		return src, dst, nil, err
	}
	cases = append(cases, spoofCase{fmt.Sprintf("own fabric MAC, %s/%s", tn, src.Name), mac})
	return src, dst, cases, nil
}

// spoofAll runs every case of spoofPlan, printing one line each.
func (r *run) spoofAll(ctx context.Context) ([]Spoof, error) {
	src, dst, cases, err := r.spoofPlan(ctx)
	if err != nil {
		return nil, err
	}
	var out []Spoof
	for i, c := range cases {
		sp, err := r.spoof(ctx, src, dst, c)
		if err != nil {
			return out, fmt.Errorf("%s as %s (%s): %w", src.Lab, c.mac, c.name, err)
		}
		out = append(out, *sp)
		got := "no reply"
		if sp.PingOK {
			got = "GOT A REPLY"
		}
		edge := fmt.Sprintf("%d/%d sent frames counted by the drop entries of %s", sp.EdgeDropped, sp.Sent, sp.EdgePort)
		if sp.EdgeErr != "" {
			edge = "edge counters: " + sp.EdgeErr
		}
		fmt.Fprintf(r.out, "   spoof %d/%d: %s as %s (%s) -> %s: %s, %d frames at the other hosts, %s; own MAC back: pings=%v\n",
			i+1, len(cases), sp.Host, sp.MAC, sp.Case, sp.Target, got, sp.Frames, edge, sp.Restored)
		for _, l := range sp.Sample {
			fmt.Fprintf(r.out, "     leaked: %s\n", l)
		}
	}
	return out, nil
}

// spoof gives src the MAC of c, then, with tcpdump in every other host's
// namespace, sends ARP requests for dst (ping with an empty neighbour
// cache), ICMP echo requests to dst with the spoofed source (a static
// neighbour entry for dst), and a broadcast ping of the subnet. No reply
// may come back, no other host may receive anything, and the drop entries
// of src's port in table 0 of its VM bridge must count every frame src
// sent. Then src gets its own MAC back and must ping dst again.
func (r *run) spoof(ctx context.Context, src, dst Host, c spoofCase) (*Spoof, error) {
	sp := &Spoof{Case: c.name, Host: src.Lab, MAC: c.mac, Target: dst.Lab + " (" + dst.IP + ")", FramesAt: map[string]int{}}
	var others []Host
	for _, h := range r.hosts {
		if h.Lab != src.Lab {
			others = append(others, h)
		}
	}
	ih := r.inv.Host(src.Lab)
	if ih == nil {
		return nil, fmt.Errorf("lab host %s not in the inventory", src.Lab)
	}
	if err := r.hostRun(ctx, src.Lab, "ip", "link", "set", "dev", lab.HostIface, "address", c.mac); err != nil {
		return nil, err
	}
	restore := func() error {
		bg := context.WithoutCancel(ctx)
		_ = r.hostRun(bg, src.Lab, "ip", "neigh", "del", dst.IP, "dev", lab.HostIface)
		return r.hostRun(bg, src.Lab, "ip", "link", "set", "dev", lab.HostIface, "address", src.MAC)
	}
	r.quiesce(ctx)
	caps, err := r.captureAll(ctx, others)
	if err != nil {
		restore()
		return nil, err
	}
	tx0, errTx := r.txPackets(ctx, src.Lab)
	drop0, port, errDrop := r.edgeDrops(ctx, ih)
	sp.EdgePort = port

	// ARP requests (broadcast) with the spoofed sender.
	_ = r.hostRun(ctx, src.Lab, "ip", "neigh", "flush", "dev", lab.HostIface)
	sp.PingOK = r.hostRun(ctx, src.Lab, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", dst.IP) == nil
	// ICMP echo requests (unicast to dst's MAC) with the spoofed source.
	if err := r.hostRun(ctx, src.Lab, "ip", "neigh", "replace", dst.IP, "lladdr", dst.MAC, "dev", lab.HostIface, "nud", "permanent"); err != nil {
		restore()
		for _, h := range others {
			caps[h.Lab].stop()
		}
		return nil, err
	}
	if r.hostRun(ctx, src.Lab, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", dst.IP) == nil {
		sp.PingOK = true
	}
	// A broadcast ping (IPv4 to ff:ff:ff:ff:ff:ff); hosts ignore broadcast
	// echoes by default, so only the captures tell.
	if src.Broadcast != "" {
		_ = r.hostRun(ctx, src.Lab, "ping", "-n", "-b", "-c", "2", "-i", "0.2", "-W", "1", src.Broadcast)
	}
	time.Sleep(300 * time.Millisecond) // frames in flight
	for _, h := range others {
		frames := caps[h.Lab].stop()
		if len(frames) > 0 {
			sp.Frames += len(frames)
			sp.FramesAt[h.Lab] = len(frames)
			for _, f := range frames {
				if len(sp.Sample) < 3 {
					sp.Sample = append(sp.Sample, h.Lab+": "+f)
				}
			}
		}
	}
	tx1, err := r.txPackets(ctx, src.Lab)
	switch {
	case errTx != nil:
		sp.EdgeErr = errTx.Error()
	case err != nil:
		sp.EdgeErr = err.Error()
	case errDrop != nil:
		sp.EdgeErr = errDrop.Error()
	default:
		sp.Sent = tx1 - tx0
		// OVS updates flow statistics from its datapath flows about twice a
		// second: wait until they cover what was sent (or 5 s passed).
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			drop1, _, err := r.edgeDrops(ctx, ih)
			if err != nil {
				sp.EdgeErr = err.Error()
				break
			}
			sp.EdgeDropped = drop1 - drop0
			if sp.EdgeDropped >= sp.Sent || time.Now().After(deadline) {
				break
			}
		}
	}

	if err := restore(); err != nil {
		return nil, err
	}
	_ = r.hostRun(ctx, src.Lab, "ip", "neigh", "flush", "dev", lab.HostIface)
	deadline := time.Now().Add(r.cfg.Timeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if r.hostRun(ctx, src.Lab, "ping", "-n", "-c", "1", "-W", "1", dst.IP) == nil {
			sp.Restored = true
			break
		}
	}
	return sp, nil
}

// txPackets reads host's eth0 transmit counter
// (/sys/class/net/eth0/statistics/tx_packets, frames).
func (r *run) txPackets(ctx context.Context, host string) (int, error) {
	c, err := lab.HostCommand(ctx, r.dir, host, "cat", "/sys/class/net/"+lab.HostIface+"/statistics/tx_packets")
	if err != nil {
		return 0, err
	}
	out, err := c.Output()
	if err != nil {
		return 0, fmt.Errorf("%s: tx_packets: %w", host, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("%s: tx_packets %q: %w", host, out, err)
	}
	return n, nil
}

// edgeDrops sums n_packets of the drop entries (no actions) for h's port in
// table 0 of its VM bridge (`ovs-ofctl -O OpenFlow13 dump-flows BRIDGE
// table=0,in_port=P`: the entries whose match includes in_port=P; the
// pipeline's anti-spoofing entry is `in_port=P` alone, priority 100,
// docs/pipeline.md). port names it ("azure/web port 2").
func (r *run) edgeDrops(ctx context.Context, h *lab.HostInfo) (n int, port string, err error) {
	ofport := h.OFPort
	if ofport <= 0 {
		c, err := lab.SiteCommand(ctx, r.dir, h.Site, "ovs-vsctl", "get", "Interface", h.Port, "ofport")
		if err != nil {
			return 0, "", err
		}
		out, err := c.Output()
		if err != nil {
			return 0, "", fmt.Errorf("ofport of %s: %w", h.Port, err)
		}
		if ofport, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil || ofport <= 0 {
			return 0, "", fmt.Errorf("ofport of %s: %q", h.Port, out)
		}
	}
	port = fmt.Sprintf("%s/%s port %d", h.Site, h.Bridge, ofport)
	c, err := lab.SiteCommand(ctx, r.dir, h.Site, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", h.Bridge, fmt.Sprintf("table=0,in_port=%d", ofport))
	if err != nil {
		return 0, port, err
	}
	out, err := c.Output()
	if err != nil {
		return 0, port, fmt.Errorf("dump-flows %s: %w", port, err)
	}
	n, found := dropPackets(string(out))
	if !found {
		return 0, port, fmt.Errorf("no drop entry for %s in table 0:\n%s", port, out)
	}
	return n, port, nil
}

// dropPackets sums n_packets of the entries of ovs-ofctl dump-flows output
// whose actions are "drop"; found is false when there is none.
func dropPackets(dump string) (n int, found bool) {
	for _, l := range strings.Split(dump, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasSuffix(l, " actions=drop") {
			continue
		}
		for _, f := range strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' }) {
			if v, ok := strings.CutPrefix(f, "n_packets="); ok {
				if k, err := strconv.Atoi(v); err == nil {
					n += k
					found = true
				}
			}
		}
	}
	return n, found
}

func (r *run) printKeep() {
	api := "http://" + r.cfg.APIListen
	fmt.Fprintf(r.out, `The lab and skyvisor (pid %d) keep running (--keep). Try:
  export SKYCTL_SERVER=%s SKYCTL_TOKEN_FILE=%s
  bin/skyctl get tenants
  bin/skyctl describe tenant tenant2
  bin/skyctl topology physical
  bin/skylab status --state-dir %s
  bin/skylab exec --state-dir %s t1-h1 -- ping -c 3 10.0.0.3
  bin/skylab ovs --state-dir %s aws -- ovs-ofctl -O OpenFlow13 dump-flows gw
  less %s
Stop everything: bin/skydemo --down --prefix %s   (or: kill %d; bin/skylab down --state-dir %s)
`, r.pid(), api, filepath.Join(r.dir, TokenFile), r.dir, r.dir, r.dir, filepath.Join(r.dir, LogFile), r.spec.Prefix, r.pid(), r.dir)
}

// Down stops the skyvisor of the demo at stateDir (the PID in PIDFile, only
// if its command line still names stateDir) and removes the lab (lab.Down
// with prefix as fallback: namespaces of the prefix, the state dir). It is
// idempotent and touches nothing else.
func Down(ctx context.Context, prefix, stateDir string) error {
	var errs []error
	if pid := readPID(filepath.Join(stateDir, PIDFile)); pid > 0 {
		if err := killDaemon(pid, stateDir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := lab.DownPrefix(ctx, stateDir, prefix); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// killDaemon ends pid (SIGTERM, then SIGKILL after 5 s) if its command line
// is skyvisor's naming stateDir; a dead or reused PID is left alone.
func killDaemon(pid int, stateDir string) error {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil // gone
	}
	cl := string(cmdline)
	if !strings.Contains(cl, "skyvisor") || !strings.Contains(cl, stateDir+"/") {
		return nil // reused PID
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !alive(pid) {
			return nil
		}
	}
	_ = p.Signal(syscall.SIGKILL)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !alive(pid) {
			return nil
		}
	}
	return fmt.Errorf("skyvisor pid %d did not exit", pid)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "     " + strings.ReplaceAll(s, "\n", "\n     ") + "\n"
}

// tail returns the last n lines of file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
