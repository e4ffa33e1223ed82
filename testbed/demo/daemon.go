package demo

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/testbed/lab"
)

// Daemon is a skyvisor process running the hypervisor over a lab, started
// the way the demo starts it (step 2 of Run): the lab inventory written to
// InventoryFile in the lab's state directory, a fresh API token in
// TokenFile, skyvisor's log in LogFile, its PID in PIDFile. Other
// experiments (testbed/experiments/dataplane) use it to run the demo's
// building blocks on their own lab.
type Daemon struct {
	r *run
}

// DaemonConfig says where the daemon's binaries are and how to reach it.
type DaemonConfig struct {
	// BinDir holds the skyvisor and skyctl binaries.
	BinDir string
	// APIListen is the REST API address (e.g. 127.0.0.1:18080).
	APIListen string
	// Timeout bounds each wait (health, tenants active); default 60 s.
	Timeout time.Duration
	// Out gets the command line and skyctl's output (nil: discarded).
	Out io.Writer
}

// StartDaemon starts skyvisor (--apps hypervisor) over inv, whose files go
// to inv's state directory stateDir, and returns without waiting; call
// WaitHealthy next. Errors: inventory/token files not writable, binary
// missing.
func StartDaemon(ctx context.Context, inv *lab.Inventory, stateDir string, cfg DaemonConfig) (*Daemon, error) {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	r := &run{cfg: Config{BinDir: cfg.BinDir, APIListen: cfg.APIListen, Timeout: cfg.Timeout, Out: cfg.Out},
		dir: stateDir, inv: inv, sum: &Summary{}, out: cfg.Out}
	if err := r.startSkyvisor(ctx); err != nil {
		return nil, err
	}
	return &Daemon{r: r}, nil
}

// PID is skyvisor's process ID.
func (d *Daemon) PID() int { return d.r.pid() }

// WaitHealthy polls /v1/health until every switch, OVSDB endpoint and the
// tunnels are ok; error on timeout or when skyvisor exits.
func (d *Daemon) WaitHealthy(ctx context.Context) error { return d.r.waitHealthy(ctx) }

// Apply applies the tenants file at path (format of
// examples/two-tenants.json) with skyctl and waits until every tenant is
// active with all its hosts bound. doc is the file's content, used to
// join its hosts with the lab's (as the demo does).
func (d *Daemon) Apply(ctx context.Context, path string, doc []byte) error {
	hosts, err := planHosts(doc, d.r.inv.Hosts)
	if err != nil {
		return err
	}
	d.r.hosts = hosts
	d.r.cfg.TenantsFile = path
	if err := d.r.skyctl(ctx, "apply", "-f", path); err != nil {
		return err
	}
	return d.r.waitTenantsActive(ctx)
}

// Stop ends skyvisor (SIGTERM, SIGKILL after 5 s) and waits until it is
// gone. The switches keep their flow entries (fail_mode secure) and the
// gateways their tunnel ports.
func (d *Daemon) Stop() error {
	if err := killDaemon(d.r.pid(), d.r.dir); err != nil {
		return err
	}
	if d.r.svExited != nil {
		select {
		case <-d.r.svExited:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("skyvisor pid %d: not reaped after 5 s", d.r.pid())
		}
	}
	return nil
}

// LogPath is skyvisor's log file (LogFile in the state directory; each
// StartDaemon truncates it).
func (d *Daemon) LogPath() string { return filepath.Join(d.r.dir, LogFile) }

// Signal sends sig to skyvisor (SIGTERM: a clean stop; SIGKILL: a crash)
// and waits up to wait for it to exit. It returns the exit state as the
// os package words it ("exit status 0", "signal: killed"). Unlike Stop it
// never escalates: a process still running after wait is an error. The
// switches keep their flow entries (fail_mode secure).
func (d *Daemon) Signal(sig syscall.Signal, wait time.Duration) (string, error) {
	if d.r.sv == nil || d.r.sv.Process == nil || d.r.svExited == nil {
		return "", fmt.Errorf("skyvisor: not started")
	}
	if err := d.r.sv.Process.Signal(sig); err != nil {
		return "", fmt.Errorf("skyvisor pid %d: send %v: %w", d.r.pid(), sig, err)
	}
	select {
	case <-d.r.svExited:
		return d.r.sv.ProcessState.String(), nil
	case <-time.After(wait):
		return "", fmt.Errorf("skyvisor pid %d: still running %s after %v", d.r.pid(), wait, sig)
	}
}
