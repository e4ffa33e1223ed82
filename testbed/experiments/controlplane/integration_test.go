//go:build integration

package controlplane

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// itPortBase is the first loopback port of the integration test (the
// default run uses 17100-17103).
const itPortBase = 17180

// buildBinaries builds skyvisor and ofbench from this checkout into a
// temporary directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go toolchain not in PATH: cannot build skyvisor and ofbench")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/skyvisor", "./cmd/ofbench")
	cmd.Dir = filepath.Join("..", "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// TestQuickRun measures 1 and 2 virtual networks with every arm whose
// controller is installed, for a fraction of a second each, and checks that
// every measurement answered packet-ins without timeouts, with a flow-mod
// and a packet-out each (the hypervisor's own pipeline entries are not
// counted), and that the overheads and the plot can be computed.
func TestQuickRun(t *testing.T) {
	bin := buildBinaries(t)
	cfg := DefaultConfig()
	cfg.BinDir = bin
	cfg.Networks = []int{1, 2}
	cfg.Reps = 1
	cfg.Runs = 2
	cfg.Warmup = 1
	cfg.Duration = 200 * time.Millisecond
	cfg.PortBase = itPortBase
	cfg.Pin = false
	cfg.Timeout = 45 * time.Second
	cfg.WorkDir = t.TempDir()
	app, err := filepath.Abs(filepath.Join("..", "..", "peers", "osken_l2.py"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OSKenApp = app
	var progress bytes.Buffer
	cfg.Progress = &progress
	cfg.Arms = []string{ArmBare, ArmHypervisor}
	for _, p := range []struct{ arm, bin string }{{ArmOVS, "ovs-testcontroller"}, {ArmOSKen, "osken-manager"}} {
		if _, err := exec.LookPath(p.bin); err != nil {
			t.Logf("peer %s skipped: %s not installed", p.arm, p.bin)
			continue
		}
		cfg.Arms = append(cfg.Arms, p.arm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ms, err := Run(ctx, cfg)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if want := len(cfg.Arms) * 2; len(ms) != want {
		t.Fatalf("%d measurements, want %d", len(ms), want)
	}
	if got := strings.Count(progress.String(), "controlplane: ["); got != len(ms) {
		t.Errorf("%d progress lines, want one per measurement (%d)", got, len(ms))
	}
	for _, m := range ms {
		if !m.OK() {
			logs, _ := filepath.Glob(filepath.Join(cfg.WorkDir, "*", "*.log"))
			for _, l := range logs {
				if strings.Contains(l, m.Arm+"-n") {
					b, _ := os.ReadFile(l)
					t.Logf("%s:\n%s", l, b)
				}
			}
			t.Errorf("%s with %d networks failed: %s", m.Arm, m.Networks, m.Err)
			continue
		}
		if m.Switches != m.Networks || m.AnsweredPerSec <= 0 || m.LatencyMS <= 0 || m.Timeouts != 0 {
			t.Errorf("%s with %d networks: %+v", m.Arm, m.Networks, m)
		}
		// A learning switch answers each packet-in with a flow-mod and a
		// packet-out.
		if m.Arm != ArmOSKen && m.RespPerSec < 1.5*m.AnsweredPerSec {
			t.Errorf("%s with %d networks: %.0f responses/s for %.0f answered/s: want a flow-mod and a packet-out each", m.Arm, m.Networks, m.RespPerSec, m.AnsweredPerSec)
		}
	}
	ss := Summarize(ms)
	ohs := Overheads(ms, ss)
	if len(ohs) != 2 {
		t.Errorf("%d overheads, want 2 (both sizes)", len(ohs))
	}
	var buf bytes.Buffer
	if err := Plot(&buf, ss, ohs, "integration"); err != nil {
		t.Error(err)
	}
	t.Logf("\n%s", MarkdownTable(ss, ohs))
}
