package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestRestartRefusesForeignPID: a pid file naming a process that is not the
// lab's daemon (here the test itself: wrong name, no state dir in its
// command line) makes Restart and Kill fail without signalling anything.
func TestRestartRefusesForeignPID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	s, err := Parse([]byte(`{"prefix":"skrx","state_dir":"` + dir + `","sites":[{"name":"a","vms":1},{"name":"b","vms":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(RunDir(dir, 1), 0o755); err != nil {
		t.Fatal(err)
	}
	st := &labState{Version: 1, Phase: "up", Spec: *s}
	if err := st.save(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []Daemon{VSwitchd, OVSDBServer} {
		if err := os.WriteFile(daemonPidfile(dir, 1, d), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Restart(context.Background(), dir, "a", d)
		if !errors.Is(err, errNotOwned) {
			t.Errorf("Restart %s over a foreign pid: %v, want errNotOwned", d, err)
		}
		if err := Kill(context.Background(), dir, "a", d); !errors.Is(err, errNotOwned) {
			t.Errorf("Kill %s over a foreign pid: %v, want errNotOwned", d, err)
		}
	}
	if _, err := Restart(context.Background(), dir, "nope", VSwitchd); err == nil {
		t.Error("Restart of an unknown site succeeded")
	}
	if _, err := Restart(context.Background(), dir, "a", Daemon("ovn-controller")); err == nil {
		t.Error("Restart of an unknown daemon succeeded")
	}
}

// TestOwnedDaemonName: the test process is not a lab daemon; a missing
// process is an error other than errNotOwned.
func TestOwnedDaemonName(t *testing.T) {
	if err := ownedDaemon(os.Getpid(), "/nonexistent", VSwitchd); !errors.Is(err, errNotOwned) {
		t.Errorf("own process: %v", err)
	}
	if err := ownedDaemon(1<<30, "/x", VSwitchd); err == nil || errors.Is(err, errNotOwned) {
		t.Errorf("missing process: %v", err)
	}
}
