package dataplane

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Flags are the parsed flags of `skyexp dataplane`.
type Flags struct {
	Cfg Config
	// Out, SummaryOut and PlotOut are the per-measurement CSV, the summary
	// CSV and the PNG ("" = not written).
	Out, SummaryOut, PlotOut string
	// Report, if set, is a per-measurement CSV of an earlier run to
	// summarize again (no lab runs; Out is not written).
	Report string
	// Verbose logs the lab's details; DryRun prints the matrix only.
	Verbose, DryRun bool
	// CommandLine is the command as typed (printed with the results).
	CommandLine string
}

// Sizes of --full.
const (
	FullReps      = 5
	FullPings     = 50
	FullIperfTime = 10 * time.Second
)

// ParseFlags parses the arguments of `skyexp dataplane` (usage to
// stderr). Errors name the flag; flag.ErrHelp for -h.
func ParseFlags(args []string, stderr io.Writer) (*Flags, error) {
	f := &Flags{Cfg: DefaultConfig()}
	c := &f.Cfg
	fs := flag.NewFlagSet("skyexp dataplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tun := fs.String("tunnels", strings.Join(c.Tunnels, ","), "comma-separated tunnel types (vxlan, gre, geneve)")
	delays := fs.String("delays", "0,10,50", "comma-separated WAN one-way delays in `ms` (0: Linux bridge WAN; > 0: userspace delay relay)")
	fs.StringVar(&c.WireGuard, "wg", c.WireGuard, "points also run over wireguard-go: none, first (first tunnel at first delay) or all")
	modes := fs.String("modes", strings.Join(c.Modes, ","), "comma-separated modes measured at every point: direct (no tunnel), plain (tunnel, static flows), virtualized (skyvisor)")
	fs.IntVar(&c.Reps, "reps", c.Reps, "repetitions of every mode per point on the same lab, order rotated per repetition (ABBA for two modes, Latin square for three)")
	fs.IntVar(&c.PingCount, "pings", c.PingCount, "echo requests per measurement")
	fs.DurationVar(&c.PingInterval, "ping-interval", c.PingInterval, "interval between echo requests")
	fs.DurationVar(&c.IperfTime, "iperf-time", c.IperfTime, "iperf3 test duration (whole seconds)")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "lab namespace prefix")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "lab state directory (removed after every point)")
	fs.StringVar(&c.BinDir, "bin", c.BinDir, "directory with the skyvisor and skyctl binaries")
	fs.StringVar(&c.APIListen, "api-listen", c.APIListen, "skyvisor's REST API address")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound of every wait (skyvisor healthy, tenant active, first reply)")
	full := fs.Bool("full", false, fmt.Sprintf("full sizes: wireguard on every point (--wg all), %d reps, %d pings, %s of iperf3 (overrides those flags)",
		FullReps, FullPings, FullIperfTime))
	fs.StringVar(&f.Out, "out", "docs/results/dataplane.csv", "per-measurement CSV `file` (\"\" = none)")
	fs.StringVar(&f.SummaryOut, "summary", "docs/results/dataplane-summary.csv", "summary CSV `file` with the overheads (\"\" = none)")
	fs.StringVar(&f.PlotOut, "plot", "docs/results/dataplane.png", "PNG plot `file` (\"\" = none)")
	fs.StringVar(&f.Report, "report", "", "summarize the per-measurement CSV `file` of an earlier run again (table, overall figures, --summary, --plot); runs nothing")
	fs.BoolVar(&f.Verbose, "v", false, "log lab and OVSDB details to stderr")
	fs.BoolVar(&f.DryRun, "n", false, "print the configuration and the points, run nothing")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.Tunnels, err = ParseTunnels(*tun); err != nil {
		return nil, fmt.Errorf("--tunnels: %w", err)
	}
	if c.DelaysMS, err = ParseDelays(*delays); err != nil {
		return nil, fmt.Errorf("--delays: %w", err)
	}
	if c.Modes, err = ParseModes(*modes); err != nil {
		return nil, fmt.Errorf("--modes: %w", err)
	}
	if *full {
		c.WireGuard, c.Reps, c.PingCount, c.IperfTime = WGAll, FullReps, FullPings, FullIperfTime
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	f.CommandLine = strings.TrimSpace("skyexp dataplane " + strings.Join(args, " "))
	return f, nil
}

// Estimate is a rough duration of cfg on a 2-core machine at load 4:
// per measurement the pings, iperf3 and about 1 s of warm-up, checks and
// process starts, plus about 4 s per skyvisor start (Order; consecutive
// virtualized steps share one) and 5 s per lab (up, tunnels, the 1 s
// iperf3 warm-up, down).
func Estimate(cfg Config) time.Duration {
	pts := len(cfg.Matrix())
	per := time.Duration(cfg.PingCount)*cfg.PingInterval + cfg.IperfTime + time.Second
	sched := Order(cfg.Modes, cfg.Reps)
	starts, mode := 0, ""
	for _, st := range sched {
		if st.Mode == ModeVirtualized && mode != ModeVirtualized {
			starts++
		}
		mode = st.Mode
	}
	return time.Duration(pts) * (time.Duration(len(sched))*per + time.Duration(starts)*4*time.Second + 5*time.Second)
}
