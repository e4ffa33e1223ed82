//go:build integration

package mininet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller/apps/discovery"

	"github.com/skyvisor/skyvisor/internal/daemontest"
	"github.com/skyvisor/skyvisor/internal/ovstest"
)

// mininetPrereqs skips t unless it runs as root with Mininet for
// /usr/bin/python3, the given binaries and a running system Open vSwitch.
// It returns the Python interpreter.
func mininetPrereqs(t *testing.T, bins ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: Mininet needs root")
	}
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import mininet.net").Run() != nil {
		t.Skip("skipping: Mininet is not installed for /usr/bin/python3 (apt-get install mininet)")
	}
	for _, b := range append([]string{"ovs-vsctl", "ethtool", "go"}, bins...) {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed", b)
		}
	}
	if err := exec.Command("ovs-vsctl", "--timeout=3", "show").Run(); err != nil {
		t.Skip("skipping: the system Open vSwitch is not running (Mininet uses it)")
	}
	return py
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bridgeCleanup registers a cleanup that removes the bridges named like
// the script's with prefix (only ours) if net.stop() left any, failing
// the test if it did.
func bridgeCleanup(t *testing.T, prefix string) {
	t.Helper()
	re := regexp.MustCompile(`^` + prefix + `[0-9]+(g|v[0-9]+)$`)
	t.Cleanup(func() {
		out, _ := exec.Command("ovs-vsctl", "--timeout=5", "list-br").Output()
		for _, br := range strings.Fields(string(out)) {
			if re.MatchString(br) {
				t.Errorf("bridge %s left in the system OVS; removing it", br)
				_ = exec.Command("ovs-vsctl", "--timeout=5", "--if-exists", "del-br", br).Run()
			}
		}
	})
}

// TestTwoCloudsWithSkyvisor runs skyvisor_clouds.py (2 clouds x 2 VM
// switches x 1 host, the Go WAN relay at 5 ms one way between the
// gateways) with the skyvisor daemon built from this tree as the remote
// controller, `skyvisor --apps learning,discovery`: pingAll must lose
// nothing, and GET /debug/links (--debug-addr) must report exactly the
// switch-to-switch links of the script's topology (the script writes them
// with --links-out: every VM switch to its gateway and the two gateways
// to each other across the WAN node, one link per direction, 10 in all)
// while the script holds the network up (--hold-file). It takes the
// Mininet lock and uses its own bridge prefix and free ports; net.stop()
// must leave none of its bridges behind.
func TestTwoCloudsWithSkyvisor(t *testing.T) {
	py := mininetPrereqs(t)
	ovstest.LockMininet(t)
	dir := t.TempDir()
	skyvisor := daemontest.Build(t, dir, "../../cmd/skyvisor")
	skylab := daemontest.Build(t, dir, "../../cmd/skylab")
	ofPort, debugPort := freePort(t), freePort(t)
	debugAddr := fmt.Sprintf("127.0.0.1:%d", debugPort)
	daemontest.Start(t, skyvisor, "--listen", fmt.Sprintf("127.0.0.1:%d", ofPort), "--apps", "learning,discovery",
		"--debug-addr", debugAddr, "--discovery-probe-interval", "500ms", "--discovery-link-timeout", "3s")
	if err := waitFor(15*time.Second, func() error { _, err := daemontest.Links(debugAddr); return err }); err != nil {
		t.Fatalf("skyvisor debug endpoint: %v", err)
	}

	prefix := "sv" + string(rune('a'+os.Getpid()%26)) + string(rune('a'+os.Getpid()/26%26))
	bridgeCleanup(t, prefix)
	linksFile, holdFile := filepath.Join(dir, "links.json"), filepath.Join(dir, "hold")
	const clouds, vms = 2, 2
	cmd := exec.Command(py, "skyvisor_clouds.py", "--clouds", strconv.Itoa(clouds), "--vms", strconv.Itoa(vms), "--hosts", "1",
		"--prefix", prefix, "--controller-port", strconv.Itoa(ofPort), "--relay-delay", "5", "--skylab", skylab,
		"--ping", "--wait", "20", "--links-out", linksFile, "--hold-file", holdFile, "--hold-timeout", "90")
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	finished := false
	t.Cleanup(func() {
		os.Remove(holdFile) // let the script stop the network itself
		if !finished {
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				// SIGINT: Mininet's finally still runs net.stop().
				_ = cmd.Process.Signal(os.Interrupt)
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
			}
		}
		if t.Failed() {
			t.Logf("skyvisor_clouds.py output:\n%s", out.String())
		}
	})

	// The script creates the hold file after pingAll.
	for {
		if _, err := os.Stat(holdFile); err == nil {
			break
		}
		select {
		case err := <-done:
			finished = true
			t.Fatalf("skyvisor_clouds.py exited before holding the network (%v)", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 4*time.Minute {
			t.Fatal("skyvisor_clouds.py did not finish pingAll within 4 minutes")
		}
	}
	t.Logf("start + pingAll took %v", time.Since(start).Round(time.Millisecond))

	b, err := os.ReadFile(linksFile)
	if err != nil {
		t.Fatalf("--links-out: %v", err)
	}
	var want struct {
		Links []discovery.Link `json:"links"`
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("--links-out %s: %v", linksFile, err)
	}
	if n := 2 * (clouds*vms + 1); len(want.Links) != n {
		t.Fatalf("the script lists %d links, want %d (2 per VM switch uplink and 2 across the WAN): %v", len(want.Links), n, want.Links)
	}
	var got []discovery.Link
	if err := waitFor(15*time.Second, func() error {
		got, err = daemontest.Links(debugAddr)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want.Links) {
			return fmt.Errorf("links %v\nwant %v", got, want.Links)
		}
		return nil
	}); err != nil {
		t.Fatalf("discovered links: %v", err)
	}
	t.Logf("links (%d): %v", len(got), got)

	if err := os.Remove(holdFile); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-done:
		finished = true
	case <-time.After(90 * time.Second):
		t.Fatal("skyvisor_clouds.py did not stop the network within 90 s of the release")
	}
	t.Logf("%s", tail(out.String(), 14))
	if err != nil {
		t.Fatalf("skyvisor_clouds.py: %v", err)
	}
	if !strings.Contains(out.String(), "Results: 0% dropped") {
		t.Fatalf("pingAll lost packets")
	}
	t.Logf("whole run took %v", time.Since(start).Round(time.Millisecond))
}

// waitFor polls f every 100 ms until it returns nil or timeout passes,
// returning its last error.
func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// safeBuffer is a bytes.Buffer safe for a writing child process and a
// reading test.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
