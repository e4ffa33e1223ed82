package ovstest

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// MininetLock is the lock file that serializes the Mininet runs of every
// test package (controller/integration, testbed/mininet): they all share
// the system Open vSwitch and Mininet's default names.
const MininetLock = "/run/lock/skyvisor-mininet.lock"

// LockMininet takes MininetLock (flock(2), exclusive) until t ends,
// waiting up to 5 minutes for another package's Mininet test; it fails t
// if the lock cannot be had by then.
func LockMininet(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(MininetLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", MininetLock, err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("lock %s (another Mininet test running?): %v", MininetLock, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
