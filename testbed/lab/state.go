package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// stateFile is the lab state in the state directory; its presence also marks
// the directory as the lab's own (Down removes the directory only then).
const stateFile = "skylab.json"

// labState is persisted as <state_dir>/skylab.json.
type labState struct {
	Version int `json:"version"`
	// Phase is "building" until Up finished, then "up".
	Phase string `json:"phase"`
	// Spec is the validated lab file (defaults filled).
	Spec Spec `json:"spec"`
	// Hosts are the plugged hosts at their current place.
	Hosts []HostSpec `json:"hosts"`
	// UpNanos is how long Up took.
	UpNanos int64 `json:"up_nanos,omitempty"`
	// Costs are the measured RTTs between the gateways (wan.measure_rtt or
	// MeasureRTT), RTTNanos how long the last measurement took.
	Costs    []Cost `json:"costs,omitempty"`
	RTTNanos int64  `json:"rtt_nanos,omitempty"`
}

func statePath(dir string) string { return filepath.Join(dir, stateFile) }

func relayPidfile(dir string) string { return filepath.Join(dir, "wan-relay.pid") }

// loadState reads <dir>/skylab.json.
func loadState(dir string) (*labState, error) {
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no lab at %s (no %s): %w", dir, stateFile, err)
		}
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var st labState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse lab state %s: %w", statePath(dir), err)
	}
	return &st, nil
}

// save writes the state atomically (temp file + rename).
func (st *labState) save() error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	p := statePath(st.Spec.StateDir)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

// lockDir takes an exclusive flock on <dir>/skylab.lock so that Up, Plug,
// Unplug, Move and Down of one lab do not interleave. The returned function
// releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "skylab.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock lab: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock lab: %w", err)
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// readPID returns the PID in a pid file, 0 if absent or malformed.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 1 {
		return 0
	}
	return n
}

// mgmtAddr is site i's management address: host number i in the controller's /24.
func mgmtAddr(c Controller, i int) netip.Addr {
	a := c.Addr.Addr().As4()
	a[3] = byte(i)
	return netip.AddrFrom4(a)
}
