//go:build integration

package demo

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the demo needs root (network namespaces, Open vSwitch)")
	}
	for _, b := range []string{"go", "ip", "ethtool", "ping", "tcpdump", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed (make deps)", b)
		}
	}
}

// buildBins builds skyvisor and skyctl into a temporary directory.
func buildBins(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/skyvisor", "./cmd/skyctl")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return dir
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDemo runs the demo end to end twice with prefix "skdt": first with
// Keep (skyvisor and the lab must still run afterwards), then again
// without, which must clean the kept demo up first (idempotent start) and
// tear everything down at the end. Both runs: every intra-tenant pair
// pings, zero frames cross tenants (with the control capture non-empty),
// the spoofed MAC gets nothing through.
func TestDemo(t *testing.T) {
	needRoot(t)
	bin := buildBins(t)
	prefix := "skdt"
	stateDir := filepath.Join(t.TempDir(), "lab")
	t.Cleanup(func() {
		if err := Down(context.Background(), prefix, stateDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	cfg := Config{LabFile: "../../examples/labs/demo.json", TenantsFile: "../../examples/two-tenants.json", BinDir: bin,
		Prefix: prefix, StateDir: stateDir, APIListen: freePort(t), Keep: true, Timeout: 45 * time.Second}
	check := func(name string, sum *Summary, out *bytes.Buffer) {
		t.Helper()
		if f := sum.Failures(); len(f) > 0 {
			t.Fatalf("%s: failures %q\n%s", name, f, out.String())
		}
		if len(sum.Pairs) != 12 {
			t.Errorf("%s: %d pairs, want 12", name, len(sum.Pairs))
		}
		for _, p := range sum.Pairs {
			if !p.OK {
				t.Errorf("%s: %+v", name, p)
			}
		}
		if len(sum.Isolation) != 2 {
			t.Errorf("%s: %d isolation checks, want 2", name, len(sum.Isolation))
		}
		for _, c := range sum.Isolation {
			if c.Leaked != 0 || c.Control == 0 || !c.WANChecked || c.WANFrames == 0 || c.WANForeign != 0 {
				t.Errorf("%s: isolation %+v", name, c)
			}
		}
		if sp := sum.Spoof; sp == nil || sp.PingOK || sp.Frames != 0 || !sp.Restored {
			t.Errorf("%s: spoof %+v", name, sp)
		}
		for _, want := range []string{"skyctl get tenants", "tenant2  513(02:01)  active", "aws~gcp", "PASS: every expectation held"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: output lacks %q", name, want)
			}
		}
	}

	var out bytes.Buffer
	cfg.Out = &out
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	check("kept run", sum, &out)
	pid := readPID(filepath.Join(stateDir, PIDFile))
	if pid == 0 || !alive(pid) {
		t.Fatalf("kept run: skyvisor pid %d not running", pid)
	}
	if left := ovstest.Leftovers(t, prefix, stateDir); len(left) == 0 {
		t.Fatal("kept run: nothing of the lab is left running")
	}
	if !strings.Contains(out.String(), "--down --prefix skdt") {
		t.Errorf("kept run: no stop instructions:\n%s", out.String())
	}

	out.Reset()
	cfg.Keep = false
	sum, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	check("second run", sum, &out)
	if alive(pid) {
		t.Errorf("the kept run's skyvisor (pid %d) survived the second run", pid)
	}
	if left := ovstest.Leftovers(t, prefix, stateDir); len(left) > 0 {
		t.Errorf("after teardown: %q", left)
	}
	if testing.Verbose() {
		t.Logf("second run:\n%s", out.String())
	}
}
