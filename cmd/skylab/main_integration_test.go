//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/testbed/lab"
)

func TestMain(m *testing.M) {
	lab.MaybeRunRelay() // `up` below starts this test binary as the relay
	os.Exit(m.Run())
}

// TestCLILifecycle drives the whole CLI on a 2-site lab with a WAN delay:
// up, status --json, check, plug, exec, ovs, move, unplug, down.
func TestCLILifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the lab needs root")
	}
	for _, b := range []string{"ip", "ethtool", "ping", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed", b)
		}
	}
	prefix := fmt.Sprintf("c%d", os.Getpid()%100000)
	dir := filepath.Join(t.TempDir(), "lab")
	labFile := filepath.Join(t.TempDir(), "lab.json")
	spec := fmt.Sprintf(`{"name":"cli","prefix":%q,"sites":[{"name":"east","vms":2},{"name":"west","vms":1}],
		"wan":{"delay_ms":2},
		"hosts":[{"name":"h1","site":"east","vm":"vm1","mac":"02:00:00:00:01:01","ip":"10.0.0.1/24","iface_id":"t/h1"}]}`, prefix)
	if err := os.WriteFile(labFile, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	sky := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(args, &out, &errb); err != nil {
			t.Fatalf("skylab %v: %v\n%s%s", args, err, out.String(), errb.String())
		}
		return out.String()
	}
	t.Cleanup(func() { _ = lab.DownPrefix(t.Context(), dir, prefix) })

	if out := sky("up", labFile, "--state-dir", dir); !strings.Contains(out, "up in") {
		t.Fatalf("up output %q", out)
	}
	var inv lab.Inventory
	if err := json.Unmarshal([]byte(sky("status", "--state-dir", dir, "--json")), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.StateDir != dir || inv.WAN.Mode != "relay" || len(inv.Switches) != 5 || inv.Switch("east", "vm2").DPID != lab.VMDPID(1, 2) {
		t.Fatalf("inventory: %+v", inv)
	}
	if out := sky("status", "--state-dir", dir); !strings.Contains(out, "0000000000000102") {
		t.Fatalf("status table lacks vm2's DPID:\n%s", out)
	}
	if out := sky("check", "--state-dir", dir); strings.Count(out, ": ok") != 2 {
		t.Fatalf("check:\n%s", out)
	}
	sky("plug", "--state-dir", dir, "--site", "west", "--vm", "vm1", "--host", "h2", "--mac", "02:00:00:00:02:01", "--ip", "10.0.0.2/24", "--iface-id", "t/h2")
	if out := sky("exec", "--state-dir", dir, "h2", "--", "cat", "/sys/class/net/eth0/address"); strings.TrimSpace(out) != "02:00:00:00:02:01" {
		t.Fatalf("exec: %q", out)
	}
	if out := sky("ovs", "--state-dir", dir, "west", "--", "ovs-vsctl", "list-ports", "vm1"); !strings.Contains(out, "h-h2") {
		t.Fatalf("ovs list-ports: %q", out)
	}
	if out := sky("move", "h2", "--site", "east", "--vm", "vm2", "--state-dir", dir); !strings.Contains(out, "moved h2 to east/vm2") {
		t.Fatalf("move: %q", out)
	}
	if out := sky("ovs", "--state-dir", dir, "east", "--", "ovs-vsctl", "list-ports", "vm2"); !strings.Contains(out, "h-h2") {
		t.Fatalf("after move, east/vm2 ports: %q", out)
	}
	sky("unplug", "--state-dir", dir, "h2")
	var out, errb bytes.Buffer
	if err := run([]string{"exec", "--state-dir", dir, "h2", "--", "true"}, &out, &errb); err == nil {
		t.Fatal("exec in an unplugged host succeeded")
	}
	sky("down", "--state-dir", dir)
	if ents, _ := os.ReadDir("/run/netns"); true {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix+"-") {
				t.Errorf("namespace %s left after down", e.Name())
			}
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("state dir left after down")
	}
}
