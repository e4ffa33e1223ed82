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

	"github.com/skyvisor/skyvisor/testbed/experiments/controlplane"
)

// runControlplane runs the control-plane overhead experiment (package
// testbed/experiments/controlplane; docs/experiments.md, "Control-plane
// overhead"): ofbench in latency mode with one switch per virtual network
// and 5 hosts each against the bare learning switch, the same app on the
// hypervisor's virtual switches, ovs-testcontroller and os-ken. It prints a
// progress line per measurement, the summary table and the overheads, and
// writes the CSVs and the PNG. Exit status 1 when the experiment could not
// run or the bare or hypervisor arm has no successful measurement, 2 on
// bad flags.
func runControlplane(args []string, stdout, stderr io.Writer) int {
	f, err := controlplane.ParseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "skyexp controlplane:", err)
		return 2
	}
	cfg := f.Cfg
	cfg.Progress = stdout
	level := slog.LevelWarn
	if f.Verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	fmt.Fprintf(stdout, "controlplane: command: %s\n", f.CommandLine)
	fmt.Fprintf(stdout, "controlplane: networks=%s hosts=%d controllers=%s reps=%d, ofbench latency mode %d runs of %v after %d warmup: %d measurements, about %v on an idle machine\n",
		controlplane.JoinInts(cfg.Networks), cfg.Hosts, strings.Join(cfg.Arms, ","), cfg.Reps, cfg.Runs, cfg.Duration, cfg.Warmup,
		cfg.Measurements(), cfg.Estimate().Round(time.Second))
	if f.DryRun {
		return 0
	}
	if f.Report != "" {
		fh, err := os.Open(f.Report)
		if err != nil {
			fmt.Fprintln(stderr, "skyexp controlplane:", err)
			return 1
		}
		ms, err := controlplane.ReadMeasurements(fh)
		fh.Close()
		if err != nil {
			fmt.Fprintf(stderr, "skyexp controlplane: %s: %v\n", f.Report, err)
			return 1
		}
		f.Out = ""
		return controlplaneReport(f, ms, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	fmt.Fprintf(stdout, "controlplane: load average at start: %s\n", loadavg())
	ms, runErr := controlplane.Run(ctx, cfg)
	fmt.Fprintf(stdout, "controlplane: %d measurements in %v; load average at end: %s\n", len(ms), time.Since(start).Round(time.Second), loadavg())
	code := 0
	if len(ms) > 0 {
		code = controlplaneReport(f, ms, stdout, stderr)
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "skyexp controlplane:", runErr)
		return 1
	}
	return code
}

// controlplaneReport prints the table and overheads of ms and writes the
// files of f. It returns 1 if a file cannot be written or the bare or
// hypervisor arm (when measured) has no successful measurement.
func controlplaneReport(f *controlplane.Flags, ms []controlplane.Measurement, stdout, stderr io.Writer) int {
	ss := controlplane.Summarize(ms)
	ohs := controlplane.Overheads(ms, ss)
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "Median latency per request in ms (switches / answered packet-ins per s) and responses/s; overhead = Skyvisor - bare.")
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, controlplane.MarkdownTable(ss, ohs))
	fmt.Fprintln(stdout)
	for _, o := range ohs {
		fmt.Fprintf(stdout, "controlplane: networks=%d overhead %+.4f ms per request (%+.1f%%; paired runs %+.4f..%+.4f; rtt %+.4f): target < %.2f ms %s, paper < %.1f ms %s; controller CPU per request %.1f -> %.1f us (%+.1f us)\n",
			o.Networks, o.OverheadMS, o.OverheadPct, o.PairedMinMS, o.PairedMaxMS, o.RTTOverheadMS,
			controlplane.TargetOverheadMS, met(o.WithinTarget), controlplane.PaperOverheadMS, met(o.WithinPaper),
			o.BareCPUUS, o.HypervisorCPUUS, o.CPUOverheadUS)
	}
	code := 0
	for _, s := range ss {
		if s.Failed > 0 {
			fmt.Fprintf(stdout, "controlplane: networks=%d %s: %d of %d measurements failed: %s\n", s.Networks, s.Arm, s.Failed, s.Failed+s.Reps, s.FailReason)
		}
		if s.Reps == 0 && (s.Arm == controlplane.ArmBare || s.Arm == controlplane.ArmHypervisor) {
			code = 1
		}
	}
	reps := 0
	for _, s := range ss {
		reps = max(reps, s.Reps+s.Failed)
	}
	caption := fmt.Sprintf("median of %d", reps)
	files := []struct {
		path string
		fn   func(io.Writer) error
	}{
		{f.Out, func(w io.Writer) error { return controlplane.WriteMeasurements(w, ms) }},
		{f.SummaryOut, func(w io.Writer) error { return controlplane.WriteSummaries(w, ss, ohs) }},
		{f.PlotOut, func(w io.Writer) error { return controlplane.Plot(w, ss, ohs, caption) }},
	}
	for _, fl := range files {
		if fl.path == "" {
			continue
		}
		if err := writeFile(fl.path, fl.fn); err != nil {
			fmt.Fprintln(stderr, "skyexp controlplane:", err)
			return 1
		}
		fmt.Fprintf(stdout, "controlplane: wrote %s\n", fl.path)
	}
	return code
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// writeFile creates path (and its directory) and fills it with fn.
func writeFile(path string, fn func(io.Writer) error) error {
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
	return fh.Close()
}
