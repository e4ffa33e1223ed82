// Command skyexp runs Skyvisor's evaluation experiments on the multi-site
// lab (package testbed/lab) and writes their figures to docs/results/.
//
// Usage:
//
//	skyexp setuptime [flags]
//
// setuptime measures Skyvisor's setup time: tunnel creation (Skyvisor
// starts until every gateway tunnel carries traffic) and state population
// (a tenant's topology submitted until every host pings every other), for
// a minimum spanning tree of tunnels and the full mesh, over a range of
// site counts (package testbed/experiments/setuptime; see
// docs/experiments.md). It prints one progress line per run, the medians
// and the growth fits, and writes the per-run CSV, the medians CSV and a
// PNG plot. Needs root and Open vSwitch (like skylab). Exit status 1 on a
// failed run, 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/testbed/experiments/setuptime"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

const usage = `usage:
  skyexp setuptime [flags]   setup time vs number of sites, MST vs full mesh (docs/experiments.md)
  skyexp dataplane [flags]   ping RTT and TCP throughput across clouds, virtualized vs not
  skyexp scale [flags]       tenants at scale: memory, flow entries per switch, apply time
  skyexp controlplane [flags] control-plane overhead: learning switch bare vs on the hypervisor, and peers
  skyexp migration [flags]   live migration time vs flows, hosts and WAN delay, packets lost
Run "skyexp EXPERIMENT -h" for the flags.
`

func main() {
	lab.MaybeRunRelay() // Up starts "<this binary> wan-relay ..." when --delay is set
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "setuptime":
		return runSetupTime(args[1:], stdout, stderr)
	case "dataplane":
		return runDataplane(args[1:], stdout, stderr)
	case "scale":
		return runScale(args[1:], stdout, stderr)
	case "controlplane":
		return runControlplane(args[1:], stdout, stderr)
	case "migration":
		return runMigration(args[1:], stdout, stderr) // migration.go
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "skyexp: unknown experiment %q\n%s", args[0], usage)
	return 2
}

// setupTimeFlags are the parsed flags of `skyexp setuptime`.
type setupTimeFlags struct {
	cfg                setuptime.Config
	out, medians, plot string
	verbose, dryRun    bool
	// commandLine is the command as typed (printed with the results)
	commandLine string
}

// fullSites and fullVMs are the --full sizes: the paper-ish range with up to 64 VMs.
var fullSites = []int{2, 4, 6, 8, 10, 12, 14, 16}

const (
	fullVMs  = 4
	fullRuns = 5
)

func parseSetupTime(args []string, stderr io.Writer) (*setupTimeFlags, error) {
	f := &setupTimeFlags{cfg: setuptime.DefaultConfig()}
	fs := flag.NewFlagSet("skyexp setuptime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sites := fs.String("sites", joinInts(setuptime.DefaultSites()), "comma-separated site counts `N` (ascending, each 2..64)")
	fs.IntVar(&f.cfg.VMs, "vms", f.cfg.VMs, "VMs (OVS bridges, one tenant host each) per site; sites x vms <= 64")
	modes := fs.String("modes", "mst,mesh", "tunnel topologies: mst, mesh or both")
	fs.IntVar(&f.cfg.Runs, "runs", f.cfg.Runs, "runs per (sites, mode); the report uses the median")
	fs.Float64Var(&f.cfg.DelayMS, "delay", 0, "WAN one-way delay in `ms` (0: Linux bridge WAN; > 0: userspace delay relay)")
	fs.StringVar(&f.cfg.TunnelType, "tunnel", f.cfg.TunnelType, "tunnel type: vxlan, gre or geneve")
	fs.StringVar(&f.cfg.Prefix, "prefix", f.cfg.Prefix, "lab namespace prefix")
	fs.StringVar(&f.cfg.StateDir, "state-dir", f.cfg.StateDir, "lab state directory (removed after every run)")
	fs.DurationVar(&f.cfg.Interval, "interval", f.cfg.Interval, "shortest retransmission interval of a probe (ICMP echo per host pair, LLDP per tunnel direction)")
	fs.IntVar(&f.cfg.MaxPPS, "max-pps", f.cfg.MaxPPS, "bound on the probes sent per second (the interval grows with the number of pairs)")
	fs.DurationVar(&f.cfg.Timeout, "timeout", f.cfg.Timeout, "give up when a phase (tunnel creation, state population) takes longer")
	full := fs.Bool("full", false, fmt.Sprintf("paper-ish sizes: sites %s, %d VMs per site (64 VMs at 16 sites), %d runs (overrides --sites, --vms, --runs)",
		joinInts(fullSites), fullVMs, fullRuns))
	fs.StringVar(&f.out, "out", "docs/results/setuptime.csv", "per-run CSV `file` (\"\" = none)")
	fs.StringVar(&f.medians, "medians", "docs/results/setuptime-medians.csv", "medians CSV `file` (\"\" = none)")
	fs.StringVar(&f.plot, "plot", "docs/results/setuptime.png", "PNG plot `file` (\"\" = none)")
	fs.BoolVar(&f.verbose, "v", false, "log lab and OVSDB details to stderr")
	fs.BoolVar(&f.dryRun, "n", false, "print the configuration and the number of labs, run nothing")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if f.cfg.Sites, err = setuptime.ParseInts(*sites); err != nil {
		return nil, fmt.Errorf("--sites: %w", err)
	}
	if f.cfg.Modes, err = setuptime.ParseModes(*modes); err != nil {
		return nil, fmt.Errorf("--modes: %w", err)
	}
	if *full {
		f.cfg.Sites, f.cfg.VMs, f.cfg.Runs = fullSites, fullVMs, fullRuns
	}
	if err := f.cfg.Validate(); err != nil {
		return nil, err
	}
	f.commandLine = strings.TrimSpace("skyexp setuptime " + strings.Join(args, " "))
	return f, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func runSetupTime(args []string, stdout, stderr io.Writer) int {
	f, err := parseSetupTime(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "skyexp setuptime:", err)
			return 2
		}
		return 0
	}
	cfg := f.cfg
	cfg.Progress = stdout
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	labs := len(cfg.Sites) * len(cfg.Modes) * cfg.Runs
	fmt.Fprintf(stdout, "setuptime: command: %s\n", f.commandLine)
	fmt.Fprintf(stdout, "setuptime: sites=%s vms/site=%d modes=%s runs=%d delay=%gms tunnel=%s: %d labs\n",
		joinInts(cfg.Sites), cfg.VMs, strings.Join(cfg.Modes, ","), cfg.Runs, cfg.DelayMS, cfg.TunnelType, labs)
	if f.dryRun {
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	fmt.Fprintf(stdout, "setuptime: load average at start: %s\n", loadavg())
	results, runErr := setuptime.Run(ctx, cfg)
	fmt.Fprintf(stdout, "setuptime: %d runs in %v; load average at end: %s\n", len(results), time.Since(start).Round(time.Second), loadavg())
	if len(results) > 0 {
		if err := report(f, results, stdout); err != nil {
			fmt.Fprintln(stderr, "skyexp setuptime:", err)
			return 1
		}
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "skyexp setuptime:", runErr)
		return 1
	}
	return 0
}

// report prints the medians and fits and writes the files.
func report(f *setupTimeFlags, results []setuptime.Result, stdout io.Writer) error {
	meds := setuptime.Aggregate(results)
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, setuptime.MarkdownTable(meds))
	if an, err := setuptime.Analyze(meds); err == nil {
		fmt.Fprintln(stdout)
		for _, l := range an.Summary() {
			fmt.Fprintln(stdout, "setuptime:", l)
		}
	}
	write := func(path string, fn func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		fh, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := fn(fh); err != nil {
			fh.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := fh.Close(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "setuptime: wrote", path)
		return nil
	}
	if err := write(f.out, func(w io.Writer) error { return setuptime.WriteCSV(w, results) }); err != nil {
		return err
	}
	if err := write(f.medians, func(w io.Writer) error { return setuptime.WriteMediansCSV(w, meds) }); err != nil {
		return err
	}
	caption := fmt.Sprintf("median of %d runs, %d VM/site, %s", f.cfg.Runs, f.cfg.VMs, f.cfg.TunnelType)
	if f.cfg.DelayMS > 0 {
		caption += fmt.Sprintf(", WAN delay %g ms", f.cfg.DelayMS)
	}
	return write(f.plot, func(w io.Writer) error { return setuptime.Plot(w, meds, caption) })
}

// loadavg returns the three load averages of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(b))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}
