//go:build integration

package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// TestMain lets the test binary act as the lab's WAN delay relay.
func TestMain(m *testing.M) {
	lab.MaybeRunRelay()
	os.Exit(m.Run())
}

func needLab(t *testing.T) {
	t.Helper()
	if why := ovstest.Available(); why != "" {
		t.Skip("skipping: " + why)
	}
	for _, b := range []string{"go", "ethtool", "ping", "iperf3", "ovs-ofctl"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install openvswitch-switch ethtool iperf3)", b)
		}
	}
}

// buildBins builds skyvisor and skyctl into a temporary directory.
func buildBins(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/skyvisor", "./cmd/skyctl")
	build.Dir = "../../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// smallConfig is the smallest configuration (VXLAN, no WireGuard, one
// repetition of modes with 3 pings and 1 s of iperf3) at delay ms, on a
// prefix of its own.
func smallConfig(t *testing.T, bin string, delay float64, modes []string, progress *bytes.Buffer) Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := ln.Addr().String()
	ln.Close()

	cfg := DefaultConfig()
	cfg.Tunnels, cfg.DelaysMS, cfg.WireGuard, cfg.Modes = []string{"vxlan"}, []float64{delay}, WGNone, modes
	cfg.Reps, cfg.PingCount, cfg.IperfTime = 1, 3, time.Second
	cfg.Prefix = fmt.Sprintf("skqt%02d", os.Getpid()%100)
	cfg.StateDir = filepath.Join(t.TempDir(), "lab")
	cfg.BinDir, cfg.APIListen, cfg.Timeout = bin, api, 60*time.Second
	cfg.Progress = progress
	t.Cleanup(func() {
		if len(ovstest.Leftovers(t, cfg.Prefix, cfg.StateDir)) > 0 {
			_ = lab.DownPrefix(context.Background(), cfg.StateDir, cfg.Prefix)
		}
	})
	return cfg
}

// TestRunSmallest runs the smallest configuration end to end (VXLAN, no
// delay, no WireGuard, one direct, one plain and one virtualized
// measurement with 3 pings and 1 s of iperf3) and checks the figures, the
// MTU of each mode and the teardown.
func TestRunSmallest(t *testing.T) {
	needLab(t)
	var progress bytes.Buffer
	cfg := smallConfig(t, buildBins(t), 0, AllModes, &progress)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ms, err := Run(ctx, cfg)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Mode != ModeDirect || ms[1].Mode != ModePlain || ms[2].Mode != ModeVirtualized {
		t.Fatalf("measurements %+v", ms)
	}
	for _, m := range ms {
		if m.PingSent != 3 || m.PingRecv != 3 || m.RTTMedMS <= 0 || m.RTTMedMS > 50 || m.Mbps <= 1 || m.PathPackets < 3 {
			t.Errorf("%s: %+v", m.Mode, m)
		}
		want := lab.DefaultHostMTU
		if m.Mode == ModeDirect {
			want = DirectMTU
		}
		if m.HostMTU != want {
			t.Errorf("%s: host MTU %d, want %d", m.Mode, m.HostMTU, want)
		}
	}
	if n := strings.Count(progress.String(), "\n"); n < 5 {
		t.Errorf("%d progress lines, want a line per step", n)
	}
	if l := ovstest.Leftovers(t, cfg.Prefix, cfg.StateDir); len(l) > 0 {
		t.Errorf("left after Run: %v", l)
	}
}

// TestRunDirectThroughRelay runs the direct mode alone at a WAN delay of
// 5 ms: its frames cross the lab's delay relay (this test binary, TestMain)
// and the RTT shows both directions' delay.
func TestRunDirectThroughRelay(t *testing.T) {
	needLab(t)
	var progress bytes.Buffer
	cfg := smallConfig(t, t.TempDir(), 5, []string{ModeDirect}, &progress) // no skyvisor needed
	// Run checks that the binaries exist
	for _, b := range []string{"skyvisor", "skyctl"} {
		if err := os.WriteFile(filepath.Join(cfg.BinDir, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ms, err := Run(ctx, cfg)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Mode != ModeDirect || ms[0].HostMTU != DirectMTU || ms[0].PingRecv != 3 ||
		ms[0].RTTMedMS < 10 || ms[0].RTTMedMS > 60 || ms[0].Mbps <= 1 || ms[0].PathPackets < 3 {
		t.Fatalf("measurements %+v", ms)
	}
	if l := ovstest.Leftovers(t, cfg.Prefix, cfg.StateDir); len(l) > 0 {
		t.Errorf("left after Run: %v", l)
	}
}
