// Package daemontest runs the real skyvisor daemon in integration tests
// (Mininet runs of controller/integration and testbed/mininet): build it,
// start it with a log file, stop it by PID when the test ends, and read
// its discovery app's links from the debug endpoint.
package daemontest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller/apps/discovery"
)

// Build builds the command package pkg (an import path or a directory
// relative to the test's package) into dir and returns the binary's path.
// It fails t if go build fails.
func Build(t testing.TB, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	start := time.Now()
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	t.Logf("built %s in %v", filepath.Base(pkg), time.Since(start).Round(time.Millisecond))
	return bin
}

// Start runs bin with args until the test ends, its output in
// "skyvisor.log" next to bin (whose path it returns). At the end of the
// test it sends SIGTERM to that PID and fails t unless the process exits
// cleanly within 10 s (then SIGKILL); if t failed, the log's last 80
// lines are logged. The process also dies with the test binary
// (Pdeathsig).
func Start(t testing.TB, bin string, args ...string) string {
	t.Helper()
	logFile := filepath.Join(filepath.Dir(bin), "skyvisor.log")
	lf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); lf.Close() }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("skyvisor exited with %v after SIGTERM (want a clean exit)", err)
			}
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Errorf("skyvisor ignored SIGTERM for 10 s")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("skyvisor log:\n%s", lastLines(string(b), 80))
		}
	})
	return logFile
}

// Links fetches GET /debug/links from the daemon's debug endpoint at addr
// (HOST:PORT, --debug-addr): the discovery app's links.
func Links(addr string) ([]discovery.Link, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/debug/links")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /debug/links: %s", resp.Status)
	}
	var body struct {
		Links []discovery.Link `json:"links"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode /debug/links: %w", err)
	}
	return body.Links, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
