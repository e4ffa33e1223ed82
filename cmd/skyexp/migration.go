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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/testbed/experiments/migration"
)

// runMigration is `skyexp migration`: live-migration time vs flows, hosts
// and WAN delay (package testbed/experiments/migration).
func runMigration(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("skyexp migration", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg migration.Config
	delays := fs.String("delays", "0,10,50", "WAN one-way delays (ms), comma-separated")
	flows := fs.String("flows", "0,100,1000", "tenant flow entries on the migrating bridge, comma-separated")
	hosts := fs.String("hosts", "1,2,4", "hosts on the migrating bridge, comma-separated (1..8, at most 8 values)")
	fs.IntVar(&cfg.Reps, "reps", 1, "round trips (aws -> gcp -> aws) per point")
	fs.IntVar(&cfg.PingCount, "pings", 300, "100 packets/s pings around each migration")
	fs.StringVar(&cfg.Prefix, "prefix", "skmx", "lab namespace prefix")
	out := fs.String("out", "docs/results/migration.csv", "per-migration CSV (\"\" for none)")
	sum := fs.String("summary", "docs/results/migration-summary.csv", "medians CSV (\"\" for none)")
	png := fs.String("plot", "docs/results/migration.png", "PNG plot (\"\" for none)")
	verbose := fs.Bool("v", false, "log Skyvisor at debug level to stderr")
	full := fs.Bool("full", false, "larger sizes: flows 0,100,1000,5000, hosts 1,2,4,8, 3 reps (unless given); about 40 min")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *full {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["flows"] {
			*flows = "0,100,1000,5000"
		}
		if !set["hosts"] {
			*hosts = "1,2,4,8"
		}
		if !set["reps"] {
			cfg.Reps = 3
		}
	}
	var err error
	for _, l := range []struct {
		name string
		s    string
		dst  *[]int
	}{{"delays", *delays, &cfg.DelaysMS}, {"flows", *flows, &cfg.Flows}, {"hosts", *hosts, &cfg.Hosts}} {
		if *l.dst, err = ints(l.s); err != nil {
			fmt.Fprintf(stderr, "skyexp migration: -%s: %v\n", l.name, err)
			return 2
		}
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "skyexp migration:", err)
		return 2
	}
	cfg.Progress = stdout
	level := slog.LevelError
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	fmt.Fprintf(stdout, "migration: command: skyexp migration %s\n", strings.Join(args, " "))
	fmt.Fprintf(stdout, "migration: delays %v ms, flows %v, hosts %v, %d rep(s): %d migrations; load average at start: %s\n",
		cfg.DelaysMS, cfg.Flows, cfg.Hosts, cfg.Reps, 2*len(cfg.DelaysMS)*len(cfg.Flows)*len(cfg.Hosts)*cfg.Reps, loadavg())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rows, runErr := migration.Run(ctx, cfg)
	fmt.Fprintf(stdout, "migration: %d migrations in %v; load average at end: %s\n", len(rows), time.Since(start).Round(time.Second), loadavg())
	ss := migration.Summarize(rows)
	migration.Table(stdout, ss)
	write := func(path string, f func(io.Writer) error) error {
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
		if err := f(fh); err != nil {
			fh.Close()
			return err
		}
		fmt.Fprintf(stdout, "migration: wrote %s\n", path)
		return fh.Close()
	}
	werr := errors.Join(
		write(*out, func(w io.Writer) error { return migration.WriteCSV(w, rows) }),
		write(*sum, func(w io.Writer) error { return migration.WriteSummaryCSV(w, ss) }),
	)
	if len(ss) > 0 {
		werr = errors.Join(werr, write(*png, func(w io.Writer) error { return migration.Plot(w, ss, "lab, userspace OVS") }))
	}
	if werr != nil {
		fmt.Fprintln(stderr, "skyexp migration:", werr)
		return 1
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "skyexp migration:", runErr)
		return 1
	}
	return 0
}

// ints parses "1,2,4".
func ints(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("%q: not a list of integers", s)
		}
		out = append(out, v)
	}
	return out, nil
}
