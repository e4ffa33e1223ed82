//go:build integration

package ofbench

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Ports of the peer controllers started here (ofbench's range is
// 17000-17099; 17090+ is reserved for tests).
const (
	itPortOVS   = 17090
	itPortOSKen = 17091
)

// startPeer runs a controller command, waits until port accepts TCP
// connections and kills it (by PID) when the test ends.
func startPeer(t *testing.T, port int, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", name, b)
			}
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before listening on %s: %v", name, addr, err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 20s: %v", name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// benchPeer runs both modes briefly and checks the figures are sane for a
// learning switch: flow-mods and packet-outs, one packet-in answered per
// packet-out, no switch lost.
func benchPeer(t *testing.T, port int) {
	for _, mode := range []Mode{ModeLatency, ModeThroughput} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Controller = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			cfg.Mode = mode
			cfg.Switches = 4
			cfg.MACs = 1000
			cfg.Runs = 2
			cfg.Duration = 300 * time.Millisecond
			cfg.Logf = t.Logf
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Switches != 4 || len(res.SwitchErrors) > 0 {
				t.Fatalf("%d switches, errors %v", res.Switches, res.SwitchErrors)
			}
			t.Log(res.Summary())
			// Totals over all runs: a loaded CI machine may stall a
			// process for a whole 300 ms run.
			all := totals(res)
			if all.FlowMods == 0 || all.PacketOuts == 0 || all.Answered == 0 {
				t.Errorf("%d flow-mods, %d packet-outs, %d answered; want all > 0", all.FlowMods, all.PacketOuts, all.Answered)
			}
			for i, n := range all.PerSwitch {
				if n == 0 {
					t.Errorf("switch %d got no response: %v", i+1, all.PerSwitch)
				}
			}
			// A learning switch answers a known destination with a flow-mod
			// and a packet-out.
			if r := float64(all.Responses()) / float64(all.Answered); r < 1.8 || r > 2.2 {
				t.Errorf("responses per answered packet-in %.2f, want 2", r)
			}
			if res.ControllerErrors != 0 {
				t.Errorf("controller sent %d errors", res.ControllerErrors)
			}
		})
	}
}

func TestIntegrationOVSTestController(t *testing.T) {
	bin, err := exec.LookPath("ovs-testcontroller")
	if err != nil {
		t.Skip("ovs-testcontroller not installed (Debian package openvswitch-testcontroller)")
	}
	ctl := filepath.Join(t.TempDir(), "ovs-testcontroller.ctl")
	startPeer(t, itPortOVS, bin, "-O", "OpenFlow13", "--unixctl="+ctl, "-vconsole:warn",
		"ptcp:"+strconv.Itoa(itPortOVS)+":127.0.0.1")
	benchPeer(t, itPortOVS)
}

func TestIntegrationOSKenLearningSwitch(t *testing.T) {
	bin, err := exec.LookPath("osken-manager")
	if err != nil {
		t.Skip("osken-manager not installed (Debian package python3-os-ken)")
	}
	_, self, _, _ := runtime.Caller(0)
	app := filepath.Join(filepath.Dir(self), "..", "peers", "osken_l2.py")
	if _, err := os.Stat(app); err != nil {
		t.Fatalf("peer app: %v", err)
	}
	startPeer(t, itPortOSKen, bin, "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port",
		strconv.Itoa(itPortOSKen), "--default-log-level", "30", app)
	benchPeer(t, itPortOSKen)
}
