// Command ofbench benchmarks an OpenFlow 1.3 controller the way cbench
// does: it emulates switches that send packet-ins of new flows and counts
// the controller's flow-mods and packet-outs per second. See package
// github.com/skyvisor/skyvisor/testbed/ofbench and docs/benchmarks.md.
//
// Usage:
//
//	ofbench [-c HOST:PORT] [-s SWITCHES] [-M MACS] [-m latency|throughput]
//	        [-d DURATION] [-n RUNS] [-w WARMUP] [-W WINDOW] [-b] [-v]
//	        [-fabric FILE]
//	ofbench -serve HOST:PORT [-serve-flowmod]
//
// It prints one line per run, then the summary line
//
//	ofbench: mode=latency switches=16 median=NNNN resp/s mean=... min=... max=...
//
// With -fabric FILE (JSON, ofbench.Fabric) the switches play a network
// hypervisor's edge bridges: DPIDs, ports, hosts and the packet-ins'
// table, metadata and addresses come from the file, and flow-mods with the
// file's ignored cookie (the hypervisor's own entries) are not counted;
// -s, -M and -p are then ignored.
//
// It exits 1 on error (unreachable controller, failed handshakes), 2 on
// bad flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/testbed/ofbench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg := ofbench.DefaultConfig()
	fs := flag.NewFlagSet("ofbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Controller, "c", cfg.Controller, "controller address `HOST:PORT`")
	fs.IntVar(&cfg.Switches, "s", cfg.Switches, "number of emulated switches")
	fs.IntVar(&cfg.MACs, "M", cfg.MACs, "host MAC addresses per switch")
	fs.IntVar(&cfg.Ports, "p", cfg.Ports, "ports per switch")
	mode := fs.String("m", string(cfg.Mode), "mode: latency (1 outstanding packet-in per switch) or throughput (window)")
	fs.Var((*msDuration)(&cfg.Duration), "d", "length of one run: a Go duration (1s, 500ms) or milliseconds (1000, as cbench -m)")
	fs.IntVar(&cfg.Runs, "n", cfg.Runs, "number of measured runs")
	fs.IntVar(&cfg.Warmup, "w", cfg.Warmup, "number of warmup runs (excluded from the summary)")
	fs.IntVar(&cfg.Window, "W", cfg.Window, "outstanding packet-ins per switch in throughput mode")
	fs.BoolVar(&cfg.Buffered, "b", cfg.Buffered, "send packet-ins with buffer ids (cbench style) instead of OFP_NO_BUFFER")
	fs.DurationVar(&cfg.Timeout, "t", cfg.Timeout, "give up on a packet-in unanswered for this long")
	fs.DurationVar(&cfg.ConnectInterval, "i", cfg.ConnectInterval, "pause between switch connects")
	fabric := fs.String("fabric", "", "emulate a network hypervisor's edge bridges described by the JSON `FILE` (ofbench.Fabric; -s, -M, -p ignored)")
	verbose := fs.Bool("v", false, "verbose: log handshakes, controller errors, timeouts to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of ofbench itself to `FILE` (go tool pprof)")
	serve := fs.String("serve", "", "instead of benchmarking, run the trivial responder controller on `HOST:PORT` (calibration peer)")
	flowMod := fs.Bool("serve-flowmod", false, "with -serve: send a flow-mod before each packet-out")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ofbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *serve != "" {
		return runResponder(*serve, *flowMod, stderr)
	}
	cfg.Mode = ofbench.Mode(*mode)
	if *fabric != "" {
		fab, err := ofbench.LoadFabric(*fabric)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		cfg.Fabric, cfg.Switches = fab, len(fab.Switches)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *verbose {
		l := log.New(stderr, "ofbench: ", log.Lmicroseconds)
		cfg.Logf = l.Printf
	}
	cfg.OnRun = func(rs ofbench.RunStats) { fmt.Fprintln(stdout, rs) }
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "ofbench: -cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "ofbench: -cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Fabric != nil {
		fmt.Fprintf(stdout, "ofbench: %s mode, %d fabric edge bridges from %s, %d runs of %v after %d warmup, controller %s\n",
			cfg.Mode, cfg.Switches, *fabric, cfg.Runs, cfg.Duration, cfg.Warmup, cfg.Controller)
	} else {
		fmt.Fprintf(stdout, "ofbench: %s mode, %d switches, %d MACs each, %d runs of %v after %d warmup, controller %s\n",
			cfg.Mode, cfg.Switches, cfg.MACs, cfg.Runs, cfg.Duration, cfg.Warmup, cfg.Controller)
	}
	res, err := ofbench.Run(ctx, cfg)
	for _, e := range res.SwitchErrors {
		fmt.Fprintf(stderr, "ofbench: %v\n", e)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		if len(res.Runs) > 0 {
			fmt.Fprintln(stdout, res.Summary())
		}
		return 1
	}
	fmt.Fprintln(stdout, res.Summary())
	return 0
}

// runResponder serves ofbench.Responder on addr until SIGINT/SIGTERM.
func runResponder(addr string, flowMod bool, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "ofbench: responder: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "ofbench: responder listening on %s\n", l.Addr())
	r := &ofbench.Responder{FlowMod: flowMod, Logf: log.New(stderr, "ofbench: ", log.Lmicroseconds).Printf}
	if err := r.Serve(ctx, l); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// msDuration is a flag value accepting a Go duration or a bare number of
// milliseconds (cbench's unit).
type msDuration time.Duration

func (d *msDuration) String() string { return time.Duration(*d).String() }

func (d *msDuration) Set(v string) error {
	p, err := time.ParseDuration(v)
	if ms, perr := strconv.ParseUint(v, 10, 32); perr == nil {
		p, err = time.Duration(ms)*time.Millisecond, nil
	}
	if err != nil {
		return fmt.Errorf("want a duration such as 1s or a number of milliseconds: %w", err)
	}
	if p <= 0 {
		return fmt.Errorf("duration %v: want > 0", p)
	}
	*d = msDuration(p)
	return nil
}
