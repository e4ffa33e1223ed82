package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/testbed/experiments/controlplane"
)

func TestControlplaneDryRunAndBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"controlplane", "-n", "--networks", "1,2", "--arms", "bare,hypervisor"}, &out, &errb); code != 0 {
		t.Fatalf("dry run: exit %d, stderr %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "networks=1,2 hosts=5 controllers=bare,hypervisor reps=3") || !strings.Contains(out.String(), "12 measurements") {
		t.Errorf("dry run output:\n%s", out.String())
	}
	errb.Reset()
	if code := run([]string{"controlplane", "--arms", "floodlight"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--arms") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errb.String())
	}
}

// TestControlplaneReport summarizes a CSV of an earlier run again and
// writes the summary CSV and the plot; a run whose hypervisor arm never
// succeeded exits 1.
func TestControlplaneReport(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	ms := []controlplane.Measurement{
		{Arm: controlplane.ArmBare, Networks: 1, Rep: 1, Switches: 1, AnsweredPerSec: 20000, RespPerSec: 40000, LatencyMS: 0.05, RTTMS: 0.05, Start: t0},
		{Arm: controlplane.ArmHypervisor, Networks: 1, Rep: 1, Switches: 1, AnsweredPerSec: 19000, RespPerSec: 38000, LatencyMS: 0.0526, RTTMS: 0.0526, Start: t0},
	}
	csvPath := filepath.Join(dir, "in.csv")
	if err := writeFile(csvPath, func(w io.Writer) error { return controlplane.WriteMeasurements(w, ms) }); err != nil {
		t.Fatal(err)
	}
	sum, png := filepath.Join(dir, "s.csv"), filepath.Join(dir, "p.png")
	var out, errb bytes.Buffer
	if code := run([]string{"controlplane", "--report", csvPath, "--summary", sum, "--plot", png}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "networks=1 overhead +0.0026 ms per request") || !strings.Contains(out.String(), "target < 0.01 ms met") {
		t.Errorf("output:\n%s", out.String())
	}
	for _, p := range []string{sum, png} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", p, err)
		}
	}
	ms[1].Err = "no packet-in was answered"
	if err := writeFile(csvPath, func(w io.Writer) error { return controlplane.WriteMeasurements(w, ms) }); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"controlplane", "--report", csvPath, "--summary", "", "--plot", ""}, &out, &errb); code != 1 {
		t.Errorf("failed hypervisor arm: exit %d, want 1:\n%s", code, out.String())
	}
}
