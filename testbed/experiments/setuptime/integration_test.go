//go:build integration

package setuptime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// TestMain lets the test binary act as the lab's WAN delay relay (Up runs
// `<test binary> wan-relay ...` for labs with a delay).
func TestMain(m *testing.M) {
	lab.MaybeRunRelay()
	os.Exit(m.Run())
}

func needLab(t *testing.T) {
	t.Helper()
	if why := ovstest.Available(); why != "" {
		t.Skip("skipping: " + why)
	}
	for _, b := range []string{"ethtool", "ovs-ofctl", "ovs-appctl"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install openvswitch-switch ethtool)", b)
		}
	}
}

// testConfig returns a configuration with a prefix and state directory of
// this test process only ("skx" + 2 digits of the PID; never the
// experiment's own "skx").
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Prefix = fmt.Sprintf("skx%02d", os.Getpid()%100)
	cfg.StateDir = filepath.Join(t.TempDir(), "lab")
	cfg.UsableTimeout = 30 * time.Second
	t.Cleanup(func() {
		if CheckGone(cfg.Prefix, cfg.StateDir) != nil {
			_ = lab.DownPrefix(context.Background(), cfg.StateDir, cfg.Prefix)
		}
	})
	return cfg
}

func checkResult(t *testing.T, r Result) {
	t.Helper()
	want := TunnelCount(r.Mode, r.Sites)
	if r.Tunnels != want || r.ProbePairs != want {
		t.Errorf("%d sites %s: %d tunnels, %d probe pairs, want %d", r.Sites, r.Mode, r.Tunnels, r.ProbePairs, want)
	}
	// one transaction per tunnel port, two ports per tunnel
	if r.OVSDBTxns != uint64(2*want) {
		t.Errorf("%d sites %s: %d OVSDB transactions, want %d", r.Sites, r.Mode, r.OVSDBTxns, 2*want)
	}
	ts := []float64{0, r.LabUpMS, r.ConnectedMS, r.ProvisionedMS, r.FlowsMS, r.UsableMS}
	for k := 1; k < len(ts); k++ {
		if ts[k] < ts[k-1] || (k == 1 && ts[k] <= 0) {
			t.Errorf("%d sites %s: timestamps not monotonic: %v", r.Sites, r.Mode, ts)
			break
		}
	}
}

// TestIntegrationSmallest runs the smallest cases end to end (2 and 3
// sites, both modes, one run each) on real OVS: tunnel counts (MST n-1,
// mesh n(n-1)/2), transaction counts, monotonic timestamps, one progress
// line per run, nothing of the lab left afterwards. Every run also checks,
// by the gateways' port counters, that every tunnel carried packets both
// ways (RunOnce fails otherwise).
func TestIntegrationSmallest(t *testing.T) {
	needLab(t)
	cfg := testConfig(t)
	cfg.Sites, cfg.Runs = []int{2, 3}, 1
	var progress bytes.Buffer
	cfg.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("%d results: %+v", len(rs), rs)
	}
	for _, r := range rs {
		checkResult(t, r)
		t.Logf("%+v", r)
	}
	if rs[0].Sites != 2 || rs[0].Mode != ModeMST || rs[3].Sites != 3 || rs[3].Mode != ModeMesh || rs[3].Tunnels != 3 || rs[2].Tunnels != 2 {
		t.Errorf("order or counts: %+v", rs)
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], "sites=3 vms_total=3 mode=mesh run=1/1 tunnels=3 ") {
		t.Errorf("progress:\n%s", progress.String())
	}
	if err := CheckGone(cfg.Prefix, cfg.StateDir); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", lab.SiteNetns(cfg.Prefix, 1))); err == nil {
		t.Error("site namespace left")
	}
}

// TestIntegrationWANDelay runs 2 sites over the delay relay (5 ms one way):
// the probes' echo must take at least one round trip (10 ms) after the
// flows are installed.
func TestIntegrationWANDelay(t *testing.T) {
	needLab(t)
	cfg := testConfig(t)
	cfg.DelayMS = 5
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := RunOnce(ctx, cfg, 2, ModeMST, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r)
	if got := r.UsableMS - r.FlowsMS; got < 2*cfg.DelayMS {
		t.Errorf("usable %.1f ms after the flows, want >= one RTT (%.0f ms): %+v", got, 2*cfg.DelayMS, r)
	}
	if err := CheckGone(cfg.Prefix, cfg.StateDir); err != nil {
		t.Error(err)
	}
}
