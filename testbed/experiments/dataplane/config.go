// Package dataplane is the data-plane overhead experiment of Alaluna et
// al., "(Literally) above the clouds: virtualizing the network over
// multiple clouds" (§4, Figure 4): ping RTT and iperf3 TCP throughput
// between two hosts in different clouds (sites) of the lab
// (testbed/lab), in three modes on the same lab:
//
//   - virtualized: Skyvisor's hypervisor (MAC rewriting at the edge,
//     tenant pipeline, gateway tunnels);
//   - plain: not virtualized but tunnelled: the same tunnel ports, static
//     OpenFlow 1.3 flows that forward by destination MAC without
//     rewriting;
//   - direct: not virtualized, not tunnelled: static flows send the
//     hosts' frames out of a plain port of each gateway straight into the
//     lab's WAN (lab.Options.DirectWAN) through the same Linux bridge or
//     delay relay, host MTU 1500 (plain and virtualized: the lab's host
//     MTU, 1400, 1350 with WireGuard).
//
// virtualized vs direct is the paper's comparison (tunnels and pipeline),
// virtualized vs plain the pipeline alone, plain vs direct the tunnels
// alone; for every tunnel type (VXLAN, GRE, Geneve), WAN delay and with
// or without wireguard-go encrypting the underlay (the direct mode never
// is). The overheads are reported in percent. See docs/experiments.md,
// "Data-plane overhead".
package dataplane

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/testbed/lab"
)

// Modes of a measurement.
const (
	// ModeDirect is the not-virtualized, not-tunnelled baseline: static
	// flows to the gateways' direct WAN ports, host MTU DirectMTU.
	ModeDirect = "direct"
	// ModePlain is the not-virtualized tunnelled baseline: static flows to
	// the tunnel ports, no controller.
	ModePlain = "plain"
	// ModeVirtualized runs skyvisor with the hypervisor and one tenant.
	ModeVirtualized = "virtualized"
)

// AllModes are the modes in their default order (Config.Modes).
var AllModes = []string{ModeDirect, ModePlain, ModeVirtualized}

// DirectMTU is the hosts' MTU in the direct mode: what an Ethernet
// network without tunnels carries.
const DirectMTU = 1500

// Which points of the matrix also run with wireguard-go (Config.WireGuard).
const (
	// WGNone runs no point with WireGuard.
	WGNone = "none"
	// WGFirst adds WireGuard to the first tunnel type at the first delay only.
	WGFirst = "first"
	// WGAll runs every (tunnel, delay) point with and without WireGuard.
	WGAll = "all"
)

// Point is one configuration of the matrix: tunnel type, WAN one-way
// delay in milliseconds, WireGuard underlay on or off.
type Point struct {
	Tunnel    string
	DelayMS   float64
	WireGuard bool
}

// String is "vxlan delay=10ms wg=off".
func (p Point) String() string {
	return fmt.Sprintf("%s delay=%gms wg=%s", p.Tunnel, p.DelayMS, onOff(p.WireGuard))
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// Config is one run of the experiment.
type Config struct {
	// Tunnels are the tunnel types (vxlan, gre, geneve), in order.
	Tunnels []string
	// DelaysMS are the WAN one-way delays in ms (0: Linux bridge WAN; > 0:
	// the userspace delay relay of testbed/wan).
	DelaysMS []float64
	// WireGuard says which points also run over wireguard-go: WGNone,
	// WGFirst (default) or WGAll.
	WireGuard string
	// Modes are the modes measured at every point (a subset of AllModes,
	// in that order or another: Order rotates them).
	Modes []string
	// Reps is the number of repetitions of every mode per point, on the
	// same lab, in the rotated order of Order (ABBA for two modes, a Latin
	// square for three).
	Reps int
	// PingCount echo requests every PingInterval per measurement.
	PingCount    int
	PingInterval time.Duration
	// IperfTime is the duration of the single-stream iperf3 TCP test.
	IperfTime time.Duration
	// Prefix and StateDir are the lab's (removed after every point).
	Prefix, StateDir string
	// BinDir holds the skyvisor and skyctl binaries; APIListen is
	// skyvisor's REST API address.
	BinDir, APIListen string
	// Timeout bounds every wait (skyvisor healthy, tenant active, first
	// echo reply).
	Timeout time.Duration
	// RelayCommand runs the WAN delay relay (lab.Options.RelayCommand).
	RelayCommand []string
	// Progress gets one line per step (nil: discarded); Logger the lab's
	// and OVSDB's logs (nil: discarded).
	Progress io.Writer
	Logger   *slog.Logger
}

// Defaults of Config.
const (
	DefaultPrefix    = "skq"
	DefaultAPIListen = "127.0.0.1:18471"
)

// DefaultConfig is the default run: 3 tunnel types x delays 0, 10, 50 ms,
// WireGuard on the first tunnel type at delay 0, the three modes, 3
// repetitions, 20 pings at 50 ms, 3 s of iperf3.
func DefaultConfig() Config {
	return Config{
		Tunnels:      []string{lab.TunnelVXLAN, lab.TunnelGRE, lab.TunnelGeneve},
		DelaysMS:     []float64{0, 10, 50},
		WireGuard:    WGFirst,
		Modes:        slices.Clone(AllModes),
		Reps:         3,
		PingCount:    20,
		PingInterval: 50 * time.Millisecond,
		IperfTime:    3 * time.Second,
		Prefix:       DefaultPrefix,
		StateDir:     lab.DefaultStateRoot + "/" + DefaultPrefix,
		BinDir:       "bin",
		APIListen:    DefaultAPIListen,
		Timeout:      60 * time.Second,
	}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if len(c.Tunnels) == 0 {
		return fmt.Errorf("tunnels: want at least one of vxlan, gre, geneve")
	}
	for _, t := range c.Tunnels {
		if t != lab.TunnelVXLAN && t != lab.TunnelGRE && t != lab.TunnelGeneve {
			return fmt.Errorf("tunnels: %q is not vxlan, gre or geneve", t)
		}
	}
	if len(c.DelaysMS) == 0 {
		return fmt.Errorf("delays: want at least one delay")
	}
	for _, d := range c.DelaysMS {
		if d < 0 || d > 1000 {
			return fmt.Errorf("delays: %g ms out of range 0..1000", d)
		}
	}
	if c.WireGuard != WGNone && c.WireGuard != WGFirst && c.WireGuard != WGAll {
		return fmt.Errorf("wireguard: %q is not none, first or all", c.WireGuard)
	}
	if err := checkModes(c.Modes); err != nil {
		return fmt.Errorf("modes: %w", err)
	}
	if c.Reps < 1 || c.Reps > 100 {
		return fmt.Errorf("reps: %d out of range 1..100", c.Reps)
	}
	if c.PingCount < 1 || c.PingCount > 10000 {
		return fmt.Errorf("pings: %d out of range 1..10000", c.PingCount)
	}
	if c.PingInterval < 10*time.Millisecond {
		return fmt.Errorf("ping interval: %v below 10ms", c.PingInterval)
	}
	if c.IperfTime < time.Second || c.IperfTime%time.Second != 0 {
		return fmt.Errorf("iperf time: %v: want whole seconds, at least 1s", c.IperfTime)
	}
	if c.Prefix == "" || c.StateDir == "" {
		return fmt.Errorf("prefix and state dir must be set")
	}
	if c.APIListen == "" {
		return fmt.Errorf("api listen address must be set")
	}
	return nil
}

// Matrix returns the points of c in run order: for every tunnel type, for
// every delay, WireGuard off, then (per c.WireGuard) on.
func (c Config) Matrix() []Point {
	var out []Point
	for ti, t := range c.Tunnels {
		for di, d := range c.DelaysMS {
			out = append(out, Point{Tunnel: t, DelayMS: d})
			if c.WireGuard == WGAll || (c.WireGuard == WGFirst && ti == 0 && di == 0) {
				out = append(out, Point{Tunnel: t, DelayMS: d, WireGuard: true})
			}
		}
	}
	return out
}

// ParseTunnels parses "vxlan,gre,geneve" (no duplicates).
func ParseTunnels(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f != lab.TunnelVXLAN && f != lab.TunnelGRE && f != lab.TunnelGeneve {
			return nil, fmt.Errorf("%q is not vxlan, gre or geneve", f)
		}
		if slices.Contains(out, f) {
			return nil, fmt.Errorf("%q given twice", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// ParseModes parses "direct,plain,virtualized" (a non-empty subset of
// AllModes, no duplicates; the order is the first repetition's).
func ParseModes(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(f))
	}
	if err := checkModes(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkModes(ms []string) error {
	if len(ms) == 0 {
		return fmt.Errorf("want at least one of %s", strings.Join(AllModes, ", "))
	}
	for k, m := range ms {
		if !slices.Contains(AllModes, m) {
			return fmt.Errorf("%q is not one of %s", m, strings.Join(AllModes, ", "))
		}
		if slices.Contains(ms[:k], m) {
			return fmt.Errorf("%q given twice", m)
		}
	}
	return nil
}

// ParseDelays parses "0,10,50" (ms, no duplicates, each 0..1000).
func ParseDelays(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		d, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number of ms", f)
		}
		if d < 0 || d > 1000 {
			return nil, fmt.Errorf("%g ms out of range 0..1000", d)
		}
		if slices.Contains(out, d) {
			return nil, fmt.Errorf("%g given twice", d)
		}
		out = append(out, d)
	}
	return out, nil
}
