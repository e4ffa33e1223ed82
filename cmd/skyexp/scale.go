package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/testbed/experiments/scale"
)

// scaleFlags are the parsed flags of `skyexp scale`.
type scaleFlags struct {
	variants []scale.Options
	out      string
	dryRun   bool
}

func parseScale(args []string, stderr io.Writer) (*scaleFlags, error) {
	def := scale.DefaultConfig()
	fs := flag.NewFlagSet("skyexp scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clouds := fs.String("clouds", "8,16", "comma-separated cloud counts `N`: one variant each")
	vms := fs.Int("vms", def.VMsPerCloud, "VM edge bridges per cloud")
	tenants := fs.Int("tenants", def.Tenants, "tenants")
	hosts := fs.Int("hosts", def.HostsPerTenant, "hosts per tenant")
	switches := fs.String("switches", "1,2", "comma-separated virtual switches per tenant (joined in a chain of links): one variant each")
	applyHosts := fs.Int("apply-hosts", 100, "hosts of the tenant applied on top")
	applySwitches := fs.Int("apply-switches", 1, "virtual switches of the tenant applied on top")
	runs := fs.Int("runs", 5, "applies of that tenant; the report gives the median (< 0: skip)")
	out := fs.String("out", "docs/results/scale.csv", "CSV `file` (\"\" = none)")
	dry := fs.Bool("n", false, "print the configuration, run nothing")
	skipFull := fs.Bool("skip-full", false, "skip the full-recompute apply (the hypervisor's apply before it went incremental); the real hypervisor's apply always runs")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cs, err := parseIntList(*clouds)
	if err != nil {
		return nil, fmt.Errorf("--clouds: %w", err)
	}
	ss, err := parseIntList(*switches)
	if err != nil {
		return nil, fmt.Errorf("--switches: %w", err)
	}
	if *runs == 0 {
		return nil, errors.New("--runs: must be at least 1 (or negative to skip the apply)")
	}
	if *applyHosts < 1 || *applySwitches < 1 || *applySwitches > *applyHosts {
		return nil, fmt.Errorf("--apply-hosts %d, --apply-switches %d: want 1 <= switches <= hosts", *applyHosts, *applySwitches)
	}
	f := &scaleFlags{out: *out, dryRun: *dry}
	for _, c := range cs {
		for _, sw := range ss {
			cfg := scale.Config{Clouds: c, VMsPerCloud: *vms, Tenants: *tenants, HostsPerTenant: *hosts, SwitchesPerTenant: sw}
			if err := cfg.Validate(); err != nil {
				return nil, err
			}
			f.variants = append(f.variants, scale.Options{Config: cfg, Name: fmt.Sprintf("%dx%d-s%d", c, *vms, sw),
				ApplyHosts: *applyHosts, ApplySwitches: *applySwitches, ApplyRuns: *runs, SkipFull: *skipFull})
		}
	}
	return f, nil
}

// parseIntList parses "8,16".
func parseIntList(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(p), "%d", &n); err != nil || fmt.Sprint(n) != strings.TrimSpace(p) {
			return nil, fmt.Errorf("%q is not an integer", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// runScale runs the tenant scale experiment (package
// testbed/experiments/scale, docs/benchmarks.md "Tenant scale"): one
// progress line per phase, then a markdown table, and the CSV.
func runScale(args []string, stdout, stderr io.Writer) int {
	f, err := parseScale(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "skyexp scale:", err)
		return 2
	}
	fmt.Fprintf(stdout, "scale: command: %s\n", strings.TrimSpace("skyexp scale "+strings.Join(args, " ")))
	for _, v := range f.variants {
		c := v.Config
		fmt.Fprintf(stdout, "scale: variant %s: %d clouds x %d VMs, %d tenants x %d hosts (%d switches); apply %d hosts (%d switches) x %d runs\n",
			v.Name, c.Clouds, c.VMsPerCloud, c.Tenants, c.HostsPerTenant, c.SwitchesPerTenant, v.ApplyHosts, v.ApplySwitches, v.ApplyRuns)
	}
	if f.dryRun {
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "scale: %s, %d CPUs, GOMAXPROCS %d; load average at start: %s\n", runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), loadavg())
	start := time.Now()
	var results []*scale.Result
	var runErr error
	for _, v := range f.variants {
		v.Progress = stdout
		r, err := scale.Run(ctx, v)
		if r != nil {
			results = append(results, r)
		}
		if err != nil {
			runErr = err
			break
		}
	}
	fmt.Fprintf(stdout, "scale: done in %v; load average at end: %s\n\n", time.Since(start).Round(time.Millisecond), loadavg())
	if len(results) > 0 {
		fmt.Fprint(stdout, scale.MarkdownTable(results))
		if f.out != "" {
			if err := writeScaleCSV(f.out, results); err != nil {
				fmt.Fprintln(stderr, "skyexp scale:", err)
				return 1
			}
			fmt.Fprintln(stdout, "scale: wrote", f.out)
		}
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "skyexp scale:", runErr)
		return 1
	}
	return 0
}

func writeScaleCSV(path string, results []*scale.Result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := scale.WriteCSV(fh, results); err != nil {
		fh.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return fh.Close()
}
