package ofbench

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Mode selects how many packet-ins each emulated switch keeps outstanding.
type Mode string

const (
	// ModeLatency keeps one packet-in outstanding per switch (cbench's
	// default mode): the next is sent only after the previous was answered.
	ModeLatency Mode = "latency"
	// ModeThroughput keeps up to Config.Window packet-ins outstanding per
	// switch (cbench -t, with a bounded window instead of "as fast as the
	// socket takes").
	ModeThroughput Mode = "throughput"
)

// Defaults used by DefaultConfig and by Run for zero-valued fields.
const (
	DefaultController       = "127.0.0.1:6653"
	DefaultSwitches         = 16
	DefaultMACs             = 100000 // cbench's default (-M 100000)
	DefaultPorts            = 4
	DefaultDuration         = time.Second // cbench's default (-m 1000)
	DefaultRuns             = 10
	DefaultWarmup           = 1
	DefaultWindow           = 64
	DefaultConnectInterval  = 5 * time.Millisecond
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultStartDelay       = 100 * time.Millisecond
	DefaultTimeout          = time.Second
)

// Limits of the emulation (the MAC layout is 02:SS:SS:HH:HH:HH, S = switch
// index, H = host index).
const (
	MaxSwitches = 1 << 16
	MaxMACs     = 1 << 24
	MaxPorts    = 255
	MaxWindow   = 1 << 16
)

// Config describes one benchmark. Zero-valued fields take the defaults
// above, except Warmup (0 means no warmup run) and the booleans.
type Config struct {
	// Controller is the controller's TCP address, "host:port".
	Controller string
	// Switches is the number of emulated switches (one TCP connection
	// each), 1..MaxSwitches.
	Switches int
	// MACs is the number of host MAC addresses per switch, 2..MaxMACs.
	// Packet-in k of a switch has source host k mod MACs and destination
	// host (k-1) mod MACs, i.e. the previous source, which a learning
	// switch has just learned on another port: every packet-in but the
	// first is a new flow towards a known destination.
	MACs int
	// Ports is the number of switch ports, 2..MaxPorts, reported in the
	// port description; host h sits on port h mod Ports + 1.
	Ports int
	// Mode is ModeLatency or ModeThroughput.
	Mode Mode
	// Duration is the length of one run (measurement period).
	Duration time.Duration
	// Runs is the number of measured runs (>= 1).
	Runs int
	// Warmup is the number of runs before the measured ones whose figures
	// are reported but excluded from the summary (>= 0).
	Warmup int
	// Window is the number of outstanding packet-ins per switch in
	// throughput mode, 1..MaxWindow (ignored in latency mode, which uses 1).
	Window int
	// Buffered sends packet-ins with buffer ids (as cbench does) instead of
	// OFP_NO_BUFFER; the full frame is sent in both cases.
	Buffered bool
	// ConnectInterval paces the TCP connects of successive switches
	// (ovs-testcontroller listens with a backlog of 10).
	ConnectInterval time.Duration
	// HandshakeTimeout bounds each switch's handshake: from connect until
	// it has sent its features reply.
	HandshakeTimeout time.Duration
	// StartDelay is waited after the last handshake before the first
	// packet-in, so the controller can finish its own setup (table-miss
	// flow, port description).
	StartDelay time.Duration
	// Timeout is how long a packet-in may stay unanswered before its window
	// slot is reclaimed and counted as a timeout; slots are reclaimed only
	// after the controller has sent no flow-mod or packet-out for as long.
	Timeout time.Duration
	// Fabric, if set, makes the switches emulate a network hypervisor's
	// edge bridges (see Fabric): their DPIDs, ports, hosts and packet-ins
	// come from it, and MACs and Ports are ignored. Switches must then be
	// 0 (taken from the fabric) or len(Fabric.Switches).
	Fabric *Fabric
	// Logf, if set, receives verbose progress and diagnostics (handshake
	// steps, controller errors, unknown messages, timeouts). It may be
	// called from several goroutines at once.
	Logf func(format string, args ...any)
	// OnRun, if set, is called after each run, warmup runs included, from
	// the goroutine that called Run.
	OnRun func(RunStats)
}

// DefaultConfig returns a Config with every default filled in, including
// Warmup = DefaultWarmup.
func DefaultConfig() Config {
	return Config{
		Controller:       DefaultController,
		Switches:         DefaultSwitches,
		MACs:             DefaultMACs,
		Ports:            DefaultPorts,
		Mode:             ModeLatency,
		Duration:         DefaultDuration,
		Runs:             DefaultRuns,
		Warmup:           DefaultWarmup,
		Window:           DefaultWindow,
		ConnectInterval:  DefaultConnectInterval,
		HandshakeTimeout: DefaultHandshakeTimeout,
		StartDelay:       DefaultStartDelay,
		Timeout:          DefaultTimeout,
	}
}

// withDefaults fills zero-valued fields (Warmup and booleans excepted).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Controller == "" {
		c.Controller = d.Controller
	}
	if c.Switches == 0 {
		c.Switches = d.Switches
		if c.Fabric != nil {
			c.Switches = len(c.Fabric.Switches)
		}
	}
	if c.MACs == 0 {
		c.MACs = d.MACs
	}
	if c.Ports == 0 {
		c.Ports = d.Ports
	}
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Duration == 0 {
		c.Duration = d.Duration
	}
	if c.Runs == 0 {
		c.Runs = d.Runs
	}
	if c.Window == 0 {
		c.Window = d.Window
	}
	if c.ConnectInterval == 0 {
		c.ConnectInterval = d.ConnectInterval
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.StartDelay == 0 {
		c.StartDelay = d.StartDelay
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	return c
}

// Validate reports the first field of c that is out of range, naming it.
// Zero values are valid where Run applies a default.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, _, err := net.SplitHostPort(c.Controller); err != nil {
		errs = append(errs, fmt.Errorf("controller %q: want host:port: %w", c.Controller, err))
	}
	if c.Switches < 1 || c.Switches > MaxSwitches {
		errs = append(errs, fmt.Errorf("switches %d: want 1..%d", c.Switches, MaxSwitches))
	}
	if c.MACs < 2 || c.MACs > MaxMACs {
		errs = append(errs, fmt.Errorf("macs %d: want 2..%d", c.MACs, MaxMACs))
	}
	if c.Ports < 2 || c.Ports > MaxPorts {
		errs = append(errs, fmt.Errorf("ports %d: want 2..%d", c.Ports, MaxPorts))
	}
	if c.Mode != ModeLatency && c.Mode != ModeThroughput {
		errs = append(errs, fmt.Errorf("mode %q: want %q or %q", c.Mode, ModeLatency, ModeThroughput))
	}
	if c.Duration < time.Millisecond {
		errs = append(errs, fmt.Errorf("duration %v: want >= 1ms", c.Duration))
	}
	if c.Runs < 1 {
		errs = append(errs, fmt.Errorf("runs %d: want >= 1", c.Runs))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup %d: want >= 0", c.Warmup))
	}
	if c.Window < 1 || c.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("window %d: want 1..%d", c.Window, MaxWindow))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"connect interval", c.ConnectInterval},
		{"handshake timeout", c.HandshakeTimeout},
		{"start delay", c.StartDelay},
		{"timeout", c.Timeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v: want >= 0", d.name, d.v))
		}
	}
	if c.Fabric != nil {
		if err := c.Fabric.Validate(); err != nil {
			errs = append(errs, err)
		} else if c.Switches != len(c.Fabric.Switches) {
			errs = append(errs, fmt.Errorf("switches %d: the fabric has %d", c.Switches, len(c.Fabric.Switches)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ofbench: invalid config: %w", err)
	}
	return nil
}

// window returns the number of outstanding packet-ins per switch.
func (c Config) window() int {
	if c.Mode == ModeLatency {
		return 1
	}
	return c.Window
}
