// Package setuptime measures Skyvisor's setup time on the multi-site lab
// (package testbed/lab): the time from `skylab up` (lab.Up) until every
// tunnel between the cloud gateways carries traffic, for a minimum spanning
// tree of tunnels and for the full-mesh baseline, over a range of site
// counts. It reproduces the "Setup time" experiment of Alaluna et al.,
// "(Literally) above the clouds: virtualizing the network over multiple
// clouds", section 4 and Figure 2: the MST needs N-1 tunnels, so its setup
// time grows linearly with N; the full mesh needs N(N-1)/2, so its setup
// time grows quadratically.
//
// One run of (N sites, mode) does, on a fresh lab:
//
//  1. t0: lab.Up of N sites (VMs per site as configured, one probe host
//     plugged into each site's first VM bridge, no controller); t_lab_up
//     when Up returned (state population: namespaces, OVS instances,
//     bridges, patch ports, hosts).
//  2. Probe scaffolding, excluded from every timestamp (the clock is
//     paused): static ARP entries in the probe hosts, the VM-bridge flows
//     host <-> gateway uplink, one raw ICMP socket per probe host.
//  3. Provisioning through the real Skyvisor code path: ovsdb.Dial to every
//     site's OVSDB endpoint (t_ovsdb_connected), tunnels.MST or
//     tunnels.FullMesh over all sites with cost 1 per pair,
//     tunnels.Provisioner.Apply (t_tunnels_provisioned, when Apply returned:
//     every port is committed in OVSDB).
//  4. Forwarding: on each gateway bridge one OpenFlow 1.3 flow per probe
//     MAC (ovs-ofctl add-flows): the local probe's MAC to the VM patch port,
//     every other probe's MAC to the tunnel towards the next hop on the
//     plan's shortest path (full mesh: the direct tunnel; MST: along the
//     tree), tun_id 1 (t_flows_installed).
//  5. Usable: ICMP echo requests, repeated every Interval, over a set of
//     probe pairs that puts traffic on every tunnel of the plan with as many
//     pairs as tunnels: MST, the first site to every other (the union of
//     the tree paths from one root is the whole tree); full mesh, every
//     unordered pair (each pair's direct tunnel). t_usable when every pair
//     got its reply.
//
// Timestamps are cumulative milliseconds from t0 with step 2 removed, so
// t_lab_up <= t_ovsdb_connected <= t_tunnels_provisioned <=
// t_flows_installed <= t_usable. Run executes the runs, Aggregate takes the
// medians, Analyze fits the growth, WriteCSV / WriteMediansCSV / Plot /
// MarkdownTable write the figures. cmd/skyexp is the command-line wrapper;
// docs/experiments.md reports the results.
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
	// ModeMesh is the full-mesh baseline (tunnels.FullMesh): N(N-1)/2 tunnels.
	ModeMesh = "mesh"
)

// Defaults of Config.
const (
	// DefaultPrefix names the lab's namespaces ("skx-s1", ...).
	DefaultPrefix = "skx"
	// DefaultStateDir holds the OVS state of the lab under test.
	DefaultStateDir = "/tmp/skx-lab"
	// DefaultRuns is the number of runs per (sites, mode). Five runs of the
	// default sizes take about 2 minutes on a loaded 2-core machine.
	DefaultRuns = 5
	// DefaultInterval is the ICMP echo retransmission interval of a probe pair.
	DefaultInterval = 10 * time.Millisecond
	// DefaultUsableTimeout bounds the wait for all probe pairs to answer.
	DefaultUsableTimeout = 60 * time.Second
	// MaxTotalVMs bounds sites x VMs per site (the lab issue's "up to 64 VMs").
	MaxTotalVMs = 64
	// MaxSites bounds the site count (probe addresses 10.0.0.<site>, lab limit 200).
	MaxSites = 64
)

// DefaultSites are the site counts of the default (quick) experiment.
func DefaultSites() []int { return []int{2, 3, 4, 6, 8, 12, 16} }

// Config describes one experiment.
type Config struct {
	// Sites lists the site counts N (each 2..MaxSites, ascending, no repeats).
	Sites []int
	// VMs is the number of VMs (OVS bridges) per site, >= 1; Sites*VMs <= MaxTotalVMs for every N.
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
	// Interval is the echo retransmission interval per probe pair (> 0).
	Interval time.Duration
	// UsableTimeout bounds step 5 of a run (> 0).
	UsableTimeout time.Duration
	// Progress receives one line per run (nil = discard).
	Progress io.Writer
	// Logger receives details (nil = discard).
	Logger *slog.Logger
	// RelayCommand is passed to lab.UpWith (see lab.Options); empty = default.
	RelayCommand []string
}

// DefaultConfig returns the default experiment: DefaultSites, 1 VM per
// site, both modes, DefaultRuns runs, no WAN delay, VXLAN, prefix "skx".
func DefaultConfig() Config {
	return Config{
		Sites:         DefaultSites(),
		VMs:           1,
		Modes:         []string{ModeMST, ModeMesh},
		Runs:          DefaultRuns,
		TunnelType:    lab.TunnelVXLAN,
		Prefix:        DefaultPrefix,
		StateDir:      DefaultStateDir,
		Interval:      DefaultInterval,
		UsableTimeout: DefaultUsableTimeout,
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
	if c.VMs < 1 {
		bad("vms", "%d VMs per site, want >= 1", c.VMs)
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
	if c.UsableTimeout <= 0 {
		bad("usable-timeout", "%v, want > 0", c.UsableTimeout)
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
