// Package controlplane reproduces the control-plane overhead experiment of
// Alaluna et al., "(Literally) above the clouds: virtualizing the network
// over multiple clouds" (§4, Figure 3): cbench in latency mode with one
// switch per virtual network and 5 hosts each, for 1 to 64 virtual
// networks, against the bare learning switch and the same app running on
// top of the network hypervisor. The paper's virtualization layer added
// under 0.1 ms per request; Skyvisor's target is under 0.01 ms.
//
// Arms (one controller process each, started afresh per measurement):
//
//   - bare: `skyvisor --apps learning` (controller/apps/learning on the
//     physical switches), ofbench's plain switches with 5 MACs and 5 ports;
//   - hypervisor: `skyvisor --apps hypervisor` over a generated one-cloud
//     infrastructure with one edge bridge per virtual network, each
//     tenant running TenantApp (the same learning app on its virtual
//     switch through the hypervisor's virtual view); ofbench's fabric
//     mode (ofbench.Fabric) makes every emulated switch send the
//     packet-ins the edge pipeline would (Setup, FabricFor);
//   - ovs: ovs-testcontroller (C), plain switches;
//   - osken: os-ken with testbed/peers/osken_l2.py, the equivalent of
//     os-ken's simple_switch_13 (Debian ships no sample apps), plain
//     switches.
//
// Each measurement runs ofbench (a child process, pinned to one core while
// the controller is pinned to the other) in latency mode: one outstanding
// packet-in per switch. The latency per request is switches / answered
// packet-ins per second (the mean time a switch waits for its answer);
// ofbench's own mean round trip is recorded beside it. The overhead is
// latency(hypervisor) - latency(bare) at the same number of networks.
package controlplane

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"
)

// Arm names.
const (
	ArmBare       = "bare"
	ArmHypervisor = "hypervisor"
	ArmOVS        = "ovs"
	ArmOSKen      = "osken"
)

// AllArms returns every arm in report order.
func AllArms() []string { return []string{ArmBare, ArmHypervisor, ArmOVS, ArmOSKen} }

// Targets of the experiment, ms per request.
const (
	// PaperOverheadMS is the paper's bound on the virtualization layer's
	// added latency ("less than 0.1 ms").
	PaperOverheadMS = 0.1
	// TargetOverheadMS is Skyvisor's target.
	TargetOverheadMS = 0.01
)

// Default sizes (about 7 minutes on an idle 2-core machine).
const (
	DefaultHosts    = 5
	DefaultReps     = 3
	DefaultRuns     = 4
	DefaultWarmup   = 1
	DefaultDuration = 500 * time.Millisecond
	DefaultPortBase = 17100
	// DefaultTimeout bounds one measurement (controller start, handshakes,
	// every run): os-ken may be slow with many switches.
	DefaultTimeout = 60 * time.Second
)

// DefaultNetworks returns the default numbers of virtual networks.
func DefaultNetworks() []int { return []int{1, 2, 4, 8, 16, 32, 64} }

// FullNetworks returns the --full numbers of virtual networks.
func FullNetworks() []int { return []int{1, 2, 4, 8, 12, 16, 24, 32, 48, 64} }

// Config is one experiment.
type Config struct {
	// Networks are the numbers of virtual networks (= emulated switches),
	// ascending, each 1..MaxNetworks.
	Networks []int
	// Hosts is the number of hosts (MACs) per network, 2..250.
	Hosts int
	// Arms are the controllers to measure (AllArms order is kept).
	Arms []string
	// Reps is the number of measurements per (networks, arm); each starts
	// a fresh controller. The report takes medians.
	Reps int
	// Runs, Warmup and Duration are ofbench's -n, -w and -d of each
	// measurement.
	Runs, Warmup int
	Duration     time.Duration
	// BinDir holds the skyvisor and ofbench binaries (make build: bin).
	BinDir string
	// OSKenApp is the os-ken learning switch app (testbed/peers/osken_l2.py).
	OSKenApp string
	// PortBase is the first TCP port on 127.0.0.1; arm i uses PortBase+i.
	PortBase int
	// WorkDir holds each measurement's generated files and logs; "" means a
	// fresh temporary directory, removed afterwards.
	WorkDir string
	// Timeout bounds one measurement.
	Timeout time.Duration
	// Pin runs the controller on CPU 0 and ofbench on CPU 1 (taskset) when
	// the machine has at least 2 CPUs.
	Pin bool
	// Progress, if set, receives one line per measurement.
	Progress io.Writer
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// MaxNetworks bounds Config.Networks (the hypervisor arm's store and the
// emulated switches).
const MaxNetworks = 1024

// DefaultConfig returns the default experiment.
func DefaultConfig() Config {
	return Config{Networks: DefaultNetworks(), Hosts: DefaultHosts, Arms: AllArms(), Reps: DefaultReps, Runs: DefaultRuns,
		Warmup: DefaultWarmup, Duration: DefaultDuration, BinDir: "bin", OSKenApp: "testbed/peers/osken_l2.py",
		PortBase: DefaultPortBase, Timeout: DefaultTimeout, Pin: true}
}

// Validate reports every bad field, naming it.
func (c Config) Validate() error {
	var errs []error
	if len(c.Networks) == 0 {
		errs = append(errs, errors.New("networks: none"))
	}
	for i, n := range c.Networks {
		if n < 1 || n > MaxNetworks {
			errs = append(errs, fmt.Errorf("networks[%d]: %d out of range 1..%d", i, n, MaxNetworks))
		}
		if i > 0 && n <= c.Networks[i-1] {
			errs = append(errs, fmt.Errorf("networks[%d]: %d not above %d (want ascending, no repeats)", i, n, c.Networks[i-1]))
		}
	}
	if c.Hosts < 2 || c.Hosts > 250 {
		errs = append(errs, fmt.Errorf("hosts: %d out of range 2..250", c.Hosts))
	}
	if len(c.Arms) == 0 {
		errs = append(errs, errors.New("arms: none"))
	}
	for i, a := range c.Arms {
		if !slices.Contains(AllArms(), a) {
			errs = append(errs, fmt.Errorf("arms[%d]: unknown arm %q (want %v)", i, a, AllArms()))
		} else if slices.Index(c.Arms, a) != i {
			errs = append(errs, fmt.Errorf("arms[%d]: %q twice", i, a))
		}
	}
	if c.Reps < 1 {
		errs = append(errs, fmt.Errorf("reps: %d, want >= 1", c.Reps))
	}
	if c.Runs < 1 {
		errs = append(errs, fmt.Errorf("runs: %d, want >= 1", c.Runs))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup: %d, want >= 0", c.Warmup))
	}
	if c.Duration < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("duration: %v, want >= 10ms", c.Duration))
	}
	if c.PortBase < 1024 || c.PortBase+len(AllArms()) > 65535 {
		errs = append(errs, fmt.Errorf("port base: %d out of range", c.PortBase))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: %v, want > 0", c.Timeout))
	}
	if c.BinDir == "" {
		errs = append(errs, errors.New("bin dir: empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("controlplane: invalid config: %w", err)
	}
	return nil
}

// Measurements returns how many measurements c makes.
func (c Config) Measurements() int { return len(c.Networks) * len(c.Arms) * c.Reps }

// Estimate is the expected duration of c on an idle machine: per
// measurement the ofbench runs plus about 1.5 s of process start,
// handshakes and stop (3 s for os-ken, whose start is slow); skipped
// measurements (ovs-testcontroller above 16 switches) cost nothing.
func (c Config) Estimate() time.Duration {
	per := time.Duration(c.Runs+c.Warmup) * c.Duration
	var total time.Duration
	for _, a := range c.Arms {
		fixed := 1500 * time.Millisecond
		if a == ArmOSKen {
			fixed = 3 * time.Second
		}
		for _, n := range c.Networks {
			if a == ArmOVS && n > OVSTestControllerMaxSwitches {
				continue // skipped
			}
			total += time.Duration(c.Reps) * (per + fixed)
		}
	}
	return total
}
