package controlplane

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Flags are the parsed flags of `skyexp controlplane`.
type Flags struct {
	Cfg Config
	// Out, SummaryOut and PlotOut are the per-measurement CSV, the summary
	// CSV and the PNG ("" = not written).
	Out, SummaryOut, PlotOut string
	// Report, if set, is a per-measurement CSV of an earlier run to
	// summarize again (nothing is measured; Out is not written).
	Report string
	// Verbose logs details to stderr; DryRun prints the plan only.
	Verbose, DryRun bool
	// CommandLine is the command as typed (printed with the results).
	CommandLine string
}

// Sizes of --full.
const (
	FullReps     = 5
	FullRuns     = 5
	FullDuration = time.Second
)

// ParseFlags parses the arguments of `skyexp controlplane` (usage to
// stderr). Errors name the flag; flag.ErrHelp for -h.
func ParseFlags(args []string, stderr io.Writer) (*Flags, error) {
	f := &Flags{Cfg: DefaultConfig()}
	c := &f.Cfg
	fs := flag.NewFlagSet("skyexp controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	networks := fs.String("networks", JoinInts(c.Networks), "comma-separated numbers of virtual networks `N` (= switches), ascending")
	fs.IntVar(&c.Hosts, "hosts", c.Hosts, "hosts (MACs) per virtual network")
	arms := fs.String("arms", strings.Join(c.Arms, ","), "controllers: bare (skyvisor --apps learning), hypervisor (the same app on Skyvisor's virtual switches), ovs (ovs-testcontroller), osken (os-ken learning switch)")
	fs.IntVar(&c.Reps, "reps", c.Reps, "measurements per (networks, controller), each with a fresh controller; medians reported")
	fs.IntVar(&c.Runs, "runs", c.Runs, "ofbench runs per measurement (-n)")
	fs.IntVar(&c.Warmup, "warmup", c.Warmup, "ofbench warmup runs per measurement (-w)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "length of one ofbench run (-d)")
	fs.StringVar(&c.BinDir, "bin", c.BinDir, "directory with the skyvisor and ofbench binaries")
	fs.StringVar(&c.OSKenApp, "osken-app", c.OSKenApp, "os-ken learning switch app")
	fs.IntVar(&c.PortBase, "port", c.PortBase, "first loopback TCP port (one per controller)")
	fs.StringVar(&c.WorkDir, "work-dir", "", "keep generated files and logs here (default: a temporary directory, removed)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound of one measurement (controller start, handshakes, runs)")
	noPin := fs.Bool("no-pin", false, "do not pin the controller to CPU 0 and ofbench to CPU 1")
	full := fs.Bool("full", false, fmt.Sprintf("larger sizes: networks %s, %d reps, %d runs of %v (overrides those flags)",
		JoinInts(FullNetworks()), FullReps, FullRuns, FullDuration))
	fs.StringVar(&f.Out, "out", "docs/results/controlplane.csv", "per-measurement CSV `file` (\"\" = none)")
	fs.StringVar(&f.SummaryOut, "summary", "docs/results/controlplane-summary.csv", "summary CSV `file` with the overheads (\"\" = none)")
	fs.StringVar(&f.PlotOut, "plot", "docs/results/controlplane.png", "PNG plot `file` (\"\" = none)")
	fs.StringVar(&f.Report, "report", "", "summarize the per-measurement CSV `file` of an earlier run again (table, --summary, --plot); measures nothing")
	fs.BoolVar(&f.Verbose, "v", false, "log details to stderr")
	fs.BoolVar(&f.DryRun, "n", false, "print the plan, measure nothing")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.Networks, err = ParseInts(*networks); err != nil {
		return nil, fmt.Errorf("--networks: %w", err)
	}
	if c.Arms, err = ParseArms(*arms); err != nil {
		return nil, fmt.Errorf("--arms: %w", err)
	}
	c.Pin = !*noPin
	if *full {
		c.Networks, c.Reps, c.Runs, c.Duration = FullNetworks(), FullReps, FullRuns, FullDuration
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	f.CommandLine = strings.TrimSpace("skyexp controlplane " + strings.Join(args, " "))
	return f, nil
}

// ParseInts parses "1,2,4": positive integers, comma-separated.
func ParseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// JoinInts is the inverse of ParseInts.
func JoinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// ParseArms parses "bare,hypervisor" into arms in AllArms order; "all"
// means every arm.
func ParseArms(s string) ([]string, error) {
	if strings.TrimSpace(s) == "all" {
		return AllArms(), nil
	}
	want := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if armIndex(p) == len(AllArms()) {
			return nil, fmt.Errorf("unknown controller %q (want %s or all)", p, strings.Join(AllArms(), ", "))
		}
		want[p] = true
	}
	var out []string
	for _, a := range AllArms() {
		if want[a] {
			out = append(out, a)
		}
	}
	return out, nil
}
