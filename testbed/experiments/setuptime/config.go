// Package setuptime measures Skyvisor's setup time on the multi-site lab
// (package testbed/lab), the "Setup time" experiment of Alaluna et al.,
// "(Literally) above the clouds: virtualizing the network over multiple
// clouds", section 4 and Figure 2: the time from a tenant's topology
// submission until every host reaches every other, split into tunnel
// creation and state population, for a minimum spanning tree of gateway
// tunnels (N-1 tunnels for N clouds) and for the full-mesh baseline
// (N(N-1)/2 tunnels), as the network grows.
//
// One run of (N sites, V VMs per site, mode) does, on a fresh lab:
//
//  1. lab.Up of N sites with V VMs each, no OpenFlow controller and no
//     tunnels, and one host per VM ("h<site>-<vm>") plugged with
//     external_ids:iface-id "st/<host>" (as `skylab plug` does). Timed as
//     lab_up_ms, which is not part of the setup time. Untimed: in every
//     host a permanent neighbour entry for every other host (so ARP, which
//     retries only once a second, does not quantize the reachability
//     times; with every host resolving every other at once, the broadcast
//     burst also swamps the MST's hub), and one raw ICMP socket per host.
//  2. Tunnel creation, timed from t_start: Skyvisor starts in this process
//     (hypervisor.New with the lab's inventory as infrastructure,
//     Config.TunnelMesh for the mesh, controller.New listening on a unix
//     socket that Skyvisor sets as every bridge's controller target). It
//     ensures every bridge over OVSDB, plans the tunnels and provisions them
//     (tunnels.Provisioner), every bridge connects over OpenFlow and is
//     reconciled. Milestones: t_switches (every bridge of the inventory
//     connected), t_tunnel_ports (every tunnel port of the plan in its
//     gateway's OpenFlow port list), t_tunnels_usable (an LLDP probe of
//     package controller/apps/discovery, sent as a packet-out on each tunnel
//     port, came back as a packet-in on the peer gateway's tunnel port, both
//     ways: the tunnel carries traffic through Skyvisor's gateway tables),
//     t_hosts_bound (every host's binding is in the store). The tunnel
//     creation phase is t_tunnels_usable.
//  3. State population, timed from t_submit: the tenant "st" (one virtual
//     switch, every host on it, the learning app) is applied over the REST
//     API (api.Client.Apply); apply_ms is the controller's part: the call
//     returns once the tenant is stored, compiled and its flow entries are
//     installed on every switch (reconcile ends with a barrier). Then every
//     unordered host pair pings (ICMP echo, all pairs in parallel,
//     the send rate bounded by Config.MaxPPS) until each pair got a reply:
//     t_reachable.
//  4. Untimed check: every tunnel port of the plan counted packets both ways
//     (ovs-ofctl dump-ports), i.e. tenant traffic crossed every tunnel.
//
// The setup time is tunnel creation + state population. Run executes the
// runs, Aggregate takes the medians, Analyze fits the growth, WriteCSV /
// WriteMediansCSV / Plot / MarkdownTable write the figures. cmd/skyexp is
// the command-line wrapper; docs/experiments.md reports the results.
package setuptime

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/testbed/lab"
)

// Modes of the tunnel topology.
const (
	// ModeMST joins the gateways with a minimum spanning tree (tunnels.MST): N-1 tunnels.
	ModeMST = "mst"
	// ModeMesh is the full-mesh baseline (tunnels.FullMesh, hypervisor
	// Config.TunnelMesh): N(N-1)/2 tunnels.
	ModeMesh = "mesh"
)

// Defaults of Config.
const (
	// DefaultPrefix names the lab's namespaces ("skx-s1", ...).
	DefaultPrefix = "skx"
	// DefaultStateDir holds the OVS state of the lab under test.
	DefaultStateDir = "/tmp/skx-lab"
	// DefaultRuns is the number of runs per (sites, mode).
	DefaultRuns = 3
	// DefaultVMs is the number of VMs (and hosts) per site.
	DefaultVMs = 2
	// DefaultInterval is the shortest ICMP echo (and tunnel probe)
	// retransmission interval per probe.
	DefaultInterval = 10 * time.Millisecond
	// DefaultMaxPPS bounds the probes sent per second over all pairs (or
	// tunnel directions): the retransmission interval grows to
	// pairs/MaxPPS when that is longer than Interval.
	DefaultMaxPPS = 5000
	// DefaultTimeout bounds each phase (tunnel creation, state population).
	DefaultTimeout = 60 * time.Second
	// MaxTotalVMs bounds sites x VMs per site (the lab issue's "up to 64 VMs").
	MaxTotalVMs = 64
	// MaxSites bounds the site count.
	MaxSites = 64
	// MaxVMs bounds the VMs per site (host addresses 10.0.<site>.<vm>).
	MaxVMs = 64
	// Tenant is the name of the tenant the experiment applies.
	Tenant = "st"
)

// DefaultSites are the site counts of the default (quick) experiment.
func DefaultSites() []int { return []int{2, 3, 4, 6, 8, 12, 16} }

// Config describes one experiment.
type Config struct {
	// Sites lists the site counts N (each 2..MaxSites, ascending, no repeats).
	Sites []int
	// VMs is the number of VMs (OVS bridges, one host each) per site,
	// 1..MaxVMs; Sites*VMs <= MaxTotalVMs for every N.
	VMs int
	// Modes are ModeMST and/or ModeMesh, in the order they run for each N.
	Modes []string
	// Runs is the number of runs per (N, mode), >= 1.
	Runs int
	// DelayMS is the WAN one-way delay in milliseconds (0 = Linux bridge WAN, no relay).
	DelayMS float64
	// TunnelType is vxlan, gre or geneve.
	TunnelType string
	// Prefix names the lab namespaces (lab.Spec.Prefix rules: [a-z][a-z0-9]{0,5}).
	Prefix string
	// StateDir is the lab state directory (absolute; removed after each run).
	StateDir string
	// Interval is the shortest retransmission interval of a probe (> 0).
	Interval time.Duration
	// MaxPPS bounds the probe rate over all probes (> 0).
	MaxPPS int
	// Timeout bounds each timed phase of a run (> 0).
	Timeout time.Duration
	// Progress receives one line per run (nil = discard).
	Progress io.Writer
	// Logger receives lab and Skyvisor details (nil = discard).
	Logger *slog.Logger
	// RelayCommand is passed to lab.UpWith (see lab.Options); empty = default.
	RelayCommand []string
}

// DefaultConfig returns the default experiment: DefaultSites, DefaultVMs
// VMs per site, both modes, DefaultRuns runs, no WAN delay, VXLAN, prefix
// "skx".
func DefaultConfig() Config {
	return Config{
		Sites:      DefaultSites(),
		VMs:        DefaultVMs,
		Modes:      []string{ModeMST, ModeMesh},
		Runs:       DefaultRuns,
		TunnelType: lab.TunnelVXLAN,
		Prefix:     DefaultPrefix,
		StateDir:   DefaultStateDir,
		Interval:   DefaultInterval,
		MaxPPS:     DefaultMaxPPS,
		Timeout:    DefaultTimeout,
	}
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)

// Validate checks the configuration and returns an error naming every
// field at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if len(c.Sites) == 0 {
		bad("sites", "no site count given")
	}
	for k, n := range c.Sites {
		if n < 2 || n > MaxSites {
			bad("sites", "%d is outside 2..%d", n, MaxSites)
		}
		if k > 0 && n <= c.Sites[k-1] {
			bad("sites", "%v must be ascending without repeats", c.Sites)
			break
		}
	}
	if c.VMs < 1 || c.VMs > MaxVMs {
		bad("vms", "%d VMs per site, want 1..%d", c.VMs, MaxVMs)
	} else if len(c.Sites) > 0 {
		if m := slices.Max(c.Sites); m*c.VMs > MaxTotalVMs {
			bad("vms", "%d sites x %d VMs = %d VMs, more than %d", m, c.VMs, m*c.VMs, MaxTotalVMs)
		}
	}
	if len(c.Modes) == 0 {
		bad("modes", "no mode given")
	}
	seen := map[string]bool{}
	for _, m := range c.Modes {
		if m != ModeMST && m != ModeMesh {
			bad("modes", "%q is not %s or %s", m, ModeMST, ModeMesh)
		}
		if seen[m] {
			bad("modes", "%q given twice", m)
		}
		seen[m] = true
	}
	if c.Runs < 1 {
		bad("runs", "%d, want >= 1", c.Runs)
	}
	if c.DelayMS < 0 || c.DelayMS > 10000 {
		bad("delay", "%v ms is outside 0..10000", c.DelayMS)
	}
	switch c.TunnelType {
	case lab.TunnelVXLAN, lab.TunnelGRE, lab.TunnelGeneve:
	default:
		bad("tunnel", "%q is not vxlan, gre or geneve", c.TunnelType)
	}
	if !prefixRE.MatchString(c.Prefix) {
		bad("prefix", "%q must match [a-z][a-z0-9]{0,5}", c.Prefix)
	}
	if !filepath.IsAbs(c.StateDir) || filepath.Clean(c.StateDir) != c.StateDir || strings.Count(c.StateDir, "/") < 2 {
		bad("state-dir", "%q must be an absolute, clean path below a top-level directory", c.StateDir)
	}
	if c.Interval <= 0 {
		bad("interval", "%v, want > 0", c.Interval)
	}
	if c.MaxPPS <= 0 {
		bad("max-pps", "%d, want > 0", c.MaxPPS)
	}
	if c.Timeout <= 0 {
		bad("timeout", "%v, want > 0", c.Timeout)
	}
	return errors.Join(errs...)
}

// ParseInts parses a comma-separated list of integers ("2,3,4"); errors
// name the bad element.
func ParseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseModes parses a comma-separated list of modes ("mst,mesh").
func ParseModes(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f != ModeMST && f != ModeMesh {
			return nil, fmt.Errorf("mode %q is not %s or %s", f, ModeMST, ModeMesh)
		}
		out = append(out, f)
	}
	return out, nil
}

// TunnelCount is the number of tunnels of mode over n sites: n-1 for the
// MST, n(n-1)/2 for the full mesh (0 for an unknown mode).
func TunnelCount(mode string, n int) int {
	switch mode {
	case ModeMST:
		return n - 1
	case ModeMesh:
		return n * (n - 1) / 2
	}
	return 0
}

// probeInterval is the retransmission interval of each of n probes:
// Interval, or longer so that n probes per interval stay within MaxPPS.
func (c *Config) probeInterval(n int) time.Duration {
	return max(c.Interval, time.Duration(n)*time.Second/time.Duration(c.MaxPPS))
}
