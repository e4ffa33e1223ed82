package ovstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Leftovers lists what a lab or demo run with namespace prefix prefix and
// state directory stateDir left behind, for tests that check a teardown:
// network namespaces named "<prefix>-…" ("netns NAME"), processes whose
// command line names a path below stateDir ("process /proc/PID/cmdline:
// ARGS"), and stateDir itself ("state dir DIR"). Empty means clean. It
// fails the test when `ip netns list` cannot run.
func Leftovers(t testing.TB, prefix, stateDir string) []string {
	t.Helper()
	var out []string
	ns, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, l := range strings.Split(string(ns), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			out = append(out, "netns "+f[0])
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), stateDir+"/") {
			out = append(out, fmt.Sprintf("process %s: %s", p, strings.ReplaceAll(string(b), "\x00", " ")))
		}
	}
	if _, err := os.Stat(stateDir); err == nil {
		out = append(out, "state dir "+stateDir)
	}
	return out
}
