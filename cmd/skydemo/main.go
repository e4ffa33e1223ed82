// Command skydemo is Skyvisor's demo (`make demo`; docs/demo.md): a 3-cloud
// lab on real Open vSwitch, skyvisor running the hypervisor, two tenants
// with identical MACs and IPs applied with skyctl, then checked: every pair
// inside each tenant pings across clouds, tcpdump shows no frame crossing
// tenants, a host spoofing an unbound MAC, another host's MAC or a fabric
// MAC (the other tenant's or its own) gets nothing through. Exit status 0 when every
// expectation held, 1 otherwise, 2 on a bad command line.
//
//	skydemo [--keep] [--prefix skd] [--state-dir DIR] [--lab FILE] [--tenants FILE] [--bin DIR] [--api-listen ADDR]
//	skydemo --down [--prefix skd] [--state-dir DIR]
//
// Run it as root from the repository root after `make build`.
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
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/testbed/demo"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("skydemo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	exe, _ := os.Executable()
	cfg := demo.Config{Out: stdout}
	fs.BoolVar(&cfg.Keep, "keep", false, "leave the lab and skyvisor running (stop them with --down)")
	down := fs.Bool("down", false, "stop a kept demo (skyvisor by its PID, the lab) and exit")
	fs.StringVar(&cfg.Prefix, "prefix", "skd", "lab prefix (namespaces <prefix>-*; state dir /tmp/skylab/<prefix>)")
	fs.StringVar(&cfg.StateDir, "state-dir", "", "lab state dir (default /tmp/skylab/<prefix>)")
	fs.StringVar(&cfg.LabFile, "lab", demo.DefaultLabFile, "lab file")
	fs.StringVar(&cfg.TenantsFile, "tenants", demo.DefaultTenantsFile, "tenants file applied with skyctl")
	binDir := filepath.Dir(exe)
	if _, err := os.Stat(filepath.Join(binDir, "skyvisor")); err != nil {
		binDir = "bin" // `go run ./cmd/skydemo` from the repository root
	}
	fs.StringVar(&cfg.BinDir, "bin", binDir, "directory of the skyvisor and skyctl binaries (default: skydemo's own, else bin)")
	fs.StringVar(&cfg.APIListen, "api-listen", demo.DefaultAPIListen, "skyvisor's REST API address")
	fs.DurationVar(&cfg.Timeout, "timeout", demo.DefaultTimeout, "bound of each waiting step")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "skydemo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "skydemo: needs root (network namespaces, Open vSwitch); try: sudo make demo")
		return 1
	}
	if *down {
		dir := cfg.StateDir
		if dir == "" {
			dir = filepath.Join(lab.DefaultStateRoot, cfg.Prefix)
		}
		if err := demo.Down(ctx, cfg.Prefix, dir); err != nil {
			fmt.Fprintln(stderr, "skydemo: down:", err)
			return 1
		}
		fmt.Fprintf(stdout, "demo %s stopped (%s removed)\n", cfg.Prefix, dir)
		return 0
	}
	t0 := time.Now()
	sum, err := demo.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "skydemo:", err)
		return 1
	}
	fmt.Fprintf(stdout, "demo took %s\n", time.Since(t0).Round(100*time.Millisecond))
	if !sum.OK() {
		return 1
	}
	return 0
}
