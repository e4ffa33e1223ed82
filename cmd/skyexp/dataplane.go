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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/testbed/experiments/dataplane"
)

// runDataplane runs the data-plane overhead experiment (package
// testbed/experiments/dataplane; docs/experiments.md, "Data-plane
// overhead"): ping RTT and iperf3 TCP throughput between two clouds,
// virtualized by the hypervisor vs plain forwarding through the tunnels vs
// direct forwarding without tunnels, per tunnel type, WAN delay and
// WireGuard. It prints a progress line per measurement, the
// summary table, and writes the CSVs and the PNG. Exit status 1 on a
// failed run, 2 on bad flags.
func runDataplane(args []string, stdout, stderr io.Writer) int {
	f, err := dataplane.ParseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "skyexp dataplane:", err)
		return 2
	}
	cfg := f.Cfg
	cfg.Progress = stdout
	level := slog.LevelWarn
	if f.Verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	pts := cfg.Matrix()
	fmt.Fprintf(stdout, "dataplane: command: %s\n", f.CommandLine)
	fmt.Fprintf(stdout, "dataplane: %d points x %d reps x %d modes (%s) = %d measurements (%d pings every %v, iperf3 %v); about %v at load 4\n",
		len(pts), cfg.Reps, len(cfg.Modes), strings.Join(cfg.Modes, ", "), len(pts)*cfg.Reps*len(cfg.Modes), cfg.PingCount, cfg.PingInterval, cfg.IperfTime,
		dataplane.Estimate(cfg).Round(time.Second))
	if slices.Contains(cfg.Modes, dataplane.ModeDirect) {
		fmt.Fprintf(stdout, "dataplane: host MTU %d in the direct mode (no tunnel), the lab's (1400; 1350 with WireGuard) in the others\n", dataplane.DirectMTU)
	}
	for i, p := range pts {
		fmt.Fprintf(stdout, "dataplane:   point %d: %s\n", i+1, p)
	}
	if f.DryRun {
		return 0
	}
	if f.Report != "" {
		fh, err := os.Open(f.Report)
		if err != nil {
			fmt.Fprintln(stderr, "skyexp dataplane:", err)
			return 1
		}
		ms, err := dataplane.ReadMeasurements(fh)
		fh.Close()
		if err != nil {
			fmt.Fprintf(stderr, "skyexp dataplane: %s: %v\n", f.Report, err)
			return 1
		}
		f.Out = ""
		return dataplaneReport(f, ms, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	fmt.Fprintf(stdout, "dataplane: load average at start: %s\n", loadavg())
	ms, runErr := dataplane.Run(ctx, cfg)
	fmt.Fprintf(stdout, "dataplane: %d measurements in %v; load average at end: %s\n", len(ms), time.Since(start).Round(time.Second), loadavg())
	if len(ms) > 0 {
		if code := dataplaneReport(f, ms, stdout, stderr); code != 0 {
			return code
		}
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "skyexp dataplane:", runErr)
		return 1
	}
	return 0
}

// dataplaneReport prints the summary table and the pooled figures of ms
// and writes the files of f.
func dataplaneReport(f *dataplane.Flags, ms []dataplane.Measurement, stdout, stderr io.Writer) int {
	{
		ss := dataplane.Summarize(ms)
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, dataplane.MarkdownTable(ss))
		fmt.Fprintln(stdout)
		for _, l := range dataplane.Pool(ms, ss).Lines() {
			fmt.Fprintln(stdout, "dataplane:", l)
		}
		reps := 0
		for _, s := range ss {
			reps = max(reps, s.Reps)
		}
		caption := fmt.Sprintf("median of %d reps", reps)
		files := []struct {
			path string
			fn   func(io.Writer) error
		}{
			{f.Out, func(w io.Writer) error { return dataplane.WriteMeasurements(w, ms) }},
			{f.SummaryOut, func(w io.Writer) error { return dataplane.WriteSummaries(w, ss) }},
			{f.PlotOut, func(w io.Writer) error { return dataplane.Plot(w, ss, caption) }},
		}
		for _, fl := range files {
			if fl.path == "" {
				continue
			}
			if err := writeDataplaneFile(fl.path, fl.fn); err != nil {
				fmt.Fprintln(stderr, "skyexp dataplane:", err)
				return 1
			}
			fmt.Fprintf(stdout, "dataplane: wrote %s\n", fl.path)
		}
	}
	return 0
}

func writeDataplaneFile(path string, fn func(io.Writer) error) error {
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
