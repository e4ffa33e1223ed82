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

// TestRunSmallest runs the smallest configuration end to end (VXLAN, no
// delay, no WireGuard, one plain and one virtualized measurement with 3
// pings and 1 s of iperf3) and checks the figures and the teardown.
func TestRunSmallest(t *testing.T) {
	needLab(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/skyvisor", "./cmd/skyctl")
	build.Dir = "../../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := ln.Addr().String()
	ln.Close()

	cfg := DefaultConfig()
	cfg.Tunnels, cfg.DelaysMS, cfg.WireGuard = []string{"vxlan"}, []float64{0}, WGNone
	cfg.Reps, cfg.PingCount, cfg.IperfTime = 1, 3, time.Second
	cfg.Prefix = fmt.Sprintf("skqt%02d", os.Getpid()%100)
	cfg.StateDir = filepath.Join(t.TempDir(), "lab")
	cfg.BinDir, cfg.APIListen, cfg.Timeout = bin, api, 60*time.Second
	var progress bytes.Buffer
	cfg.Progress = &progress
	t.Cleanup(func() {
		if len(ovstest.Leftovers(t, cfg.Prefix, cfg.StateDir)) > 0 {
			_ = lab.DownPrefix(context.Background(), cfg.StateDir, cfg.Prefix)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ms, err := Run(ctx, cfg)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Mode != ModePlain || ms[1].Mode != ModeVirtualized {
		t.Fatalf("measurements %+v", ms)
	}
	for _, m := range ms {
		if m.PingSent != 3 || m.PingRecv != 3 || m.RTTMedMS <= 0 || m.RTTMedMS > 50 || m.Mbps <= 1 || m.PathPackets < 3 {
			t.Errorf("%s: %+v", m.Mode, m)
		}
	}
	if n := strings.Count(progress.String(), "\n"); n < 4 {
		t.Errorf("%d progress lines, want a line per step", n)
	}
	if l := ovstest.Leftovers(t, cfg.Prefix, cfg.StateDir); len(l) > 0 {
		t.Errorf("left after Run: %v", l)
	}
}
