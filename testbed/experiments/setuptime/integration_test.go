//go:build integration

package setuptime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
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
// this test process only ("skt7" + 2 digits of the PID).
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Prefix = fmt.Sprintf("skt7%02d", os.Getpid()%100)
	cfg.StateDir = filepath.Join(t.TempDir(), "lab")
	cfg.Timeout = 30 * time.Second
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
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
	if r.Tunnels != want {
		t.Errorf("%d sites %s: %d tunnels, want %d", r.Sites, r.Mode, r.Tunnels, want)
	}
	if r.Hosts != r.Sites*r.VMs || r.Pairs != r.Hosts*(r.Hosts-1)/2 {
		t.Errorf("%d sites %s: %d hosts, %d pairs", r.Sites, r.Mode, r.Hosts, r.Pairs)
	}
	// at least one OVSDB transaction per tunnel port (2 per tunnel) and per bridge
	if r.OVSDBTxns < uint64(2*want+r.Sites*(r.VMs+1)) {
		t.Errorf("%d sites %s: %d OVSDB transactions, want >= %d", r.Sites, r.Mode, r.OVSDBTxns, 2*want+r.Sites*(r.VMs+1))
	}
	if r.FlowAdds == 0 {
		t.Errorf("%d sites %s: the apply added no flow entry", r.Sites, r.Mode)
	}
	if r.LabUpMS <= 0 || r.SwitchesMS <= 0 || r.TunnelPortsMS <= 0 || r.TunnelPortsMS > r.TunnelsUsableMS || r.BoundMS <= 0 ||
		r.ApplyMS <= 0 || r.ReachableMS < r.ApplyMS {
		t.Errorf("%d sites %s: milestones out of order: %+v", r.Sites, r.Mode, r)
	}
}

// TestIntegrationSmallest runs the smallest cases end to end (2 and 3
// sites with 2 VMs each, both modes, one run each) on real OVS with
// Skyvisor in the process: tunnel counts (MST n-1, mesh n(n-1)/2), ordered
// milestones, one progress line per run, nothing of the lab left
// afterwards. Every run also checks, by the gateways' port counters, that
// every tunnel of the plan carried tenant packets both ways (RunOnce fails
// otherwise): for the mesh, that Skyvisor routes over the direct tunnels.
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
	if len(lines) != 4 || !strings.Contains(lines[3], "[4/4] sites=3 vms_total=6 mode=mesh run=1/1 tunnels=3 ") {
		t.Errorf("progress:\n%s", progress.String())
	}
	if err := CheckGone(cfg.Prefix, cfg.StateDir); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", lab.SiteNetns(cfg.Prefix, 1))); err == nil {
		t.Error("site namespace left")
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), cfg.Prefix+"-sky-*")); len(left) > 0 {
		t.Errorf("Skyvisor directories left: %v", left)
	}
}

// TestIntegrationWANDelay runs 2 sites (1 VM each) over the delay relay
// (5 ms one way): the tunnel probe and the pings each need at least one
// round trip (10 ms).
func TestIntegrationWANDelay(t *testing.T) {
	needLab(t)
	cfg := testConfig(t)
	cfg.DelayMS = 5
	cfg.VMs = 1
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := RunOnce(ctx, cfg, 2, ModeMST, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r)
	if got := r.ReachabilityMS(); got < 2*cfg.DelayMS {
		t.Errorf("reachable %.1f ms after the apply, want >= one RTT (%.0f ms): %+v", got, 2*cfg.DelayMS, r)
	}
	if got := r.TunnelsUsableMS - r.TunnelPortsMS; got < cfg.DelayMS {
		t.Errorf("tunnels usable %.1f ms after their ports, want >= one way (%.0f ms): %+v", got, cfg.DelayMS, r)
	}
	if err := CheckGone(cfg.Prefix, cfg.StateDir); err != nil {
		t.Error(err)
	}
}
