package ovstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLeftovers(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: ip (iproute2) not installed")
	}
	prefix := fmt.Sprintf("skz%d", os.Getpid()%10000)
	stateDir := filepath.Join(t.TempDir(), "lab")
	if got := Leftovers(t, prefix, stateDir); len(got) != 0 {
		t.Fatalf("nothing started: Leftovers = %q, want none", got)
	}

	if err := os.Mkdir(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A process whose command line names a path below the state dir.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("skipping: no sleep command")
	}
	cmd := &exec.Cmd{Path: sleep, Args: []string{filepath.Join(stateDir, "daemon"), "60"}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	want := []string{"state dir " + stateDir, fmt.Sprintf("process /proc/%d/cmdline: %s/daemon 60 ", cmd.Process.Pid, stateDir)}
	ns := prefix + "-lo"
	if os.Geteuid() == 0 {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		want = append(want, "netns "+ns)
	}
	got := Leftovers(t, prefix, stateDir)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("Leftovers = %q, missing %q", got, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Leftovers = %q, want exactly %q", got, want)
	}

	// Another prefix and another state dir see none of it.
	other := Leftovers(t, prefix+"x", stateDir+"x")
	for _, o := range other {
		if strings.Contains(o, stateDir+"/") || strings.HasPrefix(o, "netns "+prefix+"-") {
			t.Errorf("Leftovers of another prefix and dir = %q, want none of %q", other, want)
		}
	}
}
