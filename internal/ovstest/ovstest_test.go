//go:build integration

package ovstest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether pid is a running, non-zombie process.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// Field 3 (after "pid (comm)") is the state.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func ping(t *testing.T, from, to string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := HostExec(ctx, from, "ping", "-c", "1", "-W", "2", to); err != nil {
		// One retry: the first packet may go while ARP is still pending.
		if out2, err2 := HostExec(ctx, from, "ping", "-c", "1", "-W", "2", to); err2 != nil {
			t.Fatalf("ping %s -> %s: %v\n%s\n%s", from, to, err2, out, out2)
		}
	}
}

func TestInstanceLifecycle(t *testing.T) {
	if why := Available(); why != "" {
		t.Skip(why)
	}
	var inst *Instance
	var dbPID, vsPID int
	t.Run("use", func(t *testing.T) {
		inst = Start(t, "sko-ovst")
		dbPID, vsPID = inst.OVSDBPID(), inst.VswitchdPID()
		if !alive(dbPID) || !alive(vsPID) {
			t.Fatalf("daemons not running: ovsdb %d vswitchd %d", dbPID, vsPID)
		}
		if !strings.HasPrefix(inst.DBEndpoint(), "unix:/") {
			t.Fatalf("DBEndpoint = %q", inst.DBEndpoint())
		}
		inst.AddBridge(t, "sko-br0", "other_config:datapath-id=00000000000000a1")
		out, err := inst.Vsctl("get", "Bridge", "sko-br0", "datapath_type", "fail_mode", "protocols")
		if err != nil {
			t.Fatal(err)
		}
		if want := "netdev\nsecure\n[OpenFlow13]"; out != want {
			t.Fatalf("bridge settings = %q, want %q", out, want)
		}
		// OpenFlow works through the instance's .mgmt socket.
		if _, err := inst.Ofctl("-O", "OpenFlow13", "add-flow", "sko-br0", "priority=0,actions=NORMAL"); err != nil {
			t.Fatal(err)
		}
		out, err = inst.Ofctl("-O", "OpenFlow13", "show", "sko-br0")
		if err != nil || !strings.Contains(out, "dpid:00000000000000a1") {
			t.Fatalf("ofctl show: %v\n%s", err, out)
		}
		if out, err := inst.Appctl("version"); err != nil || !strings.Contains(out, "ovs-vswitchd") {
			t.Fatalf("appctl version: %v %q", err, out)
		}

		inst.AddHost(t, "sko-h1", "sko-br0", "02:00:00:00:00:01", "10.9.0.1/24", map[string]string{"iface-id": "vm1", "attached-mac": "02:00:00:00:00:01"})
		inst.AddHost(t, "sko-h2", "sko-br0", "02:00:00:00:00:02", "10.9.0.2/24", nil)
		out, err = inst.Vsctl("get", "Interface", "sko-h1", "external_ids:iface-id")
		if err != nil || out != `vm1` {
			t.Fatalf("iface-id = %q, %v", out, err)
		}
		ping(t, "sko-h1", "10.9.0.2")

		// The host interface is a veth whose peer lives in the instance namespace.
		if _, err := inst.Exec(context.Background(), "ip", "link", "show", "sko-h1"); err != nil {
			t.Fatal(err)
		}

		inst.RestartVswitchd(t)
		if inst.VswitchdPID() == vsPID || !alive(inst.VswitchdPID()) {
			t.Fatalf("vswitchd not restarted")
		}
		if alive(vsPID) {
			t.Fatalf("old vswitchd %d still running", vsPID)
		}
		vsPID = inst.VswitchdPID()
		// Flows are gone after a restart; reinstall and the hosts talk again.
		if _, err := inst.Ofctl("-O", "OpenFlow13", "add-flow", "sko-br0", "priority=0,actions=NORMAL"); err != nil {
			t.Fatal(err)
		}
		ping(t, "sko-h2", "10.9.0.1")

		inst.RestartOVSDB(t)
		if inst.OVSDBPID() == dbPID || alive(dbPID) {
			t.Fatalf("ovsdb-server not restarted")
		}
		dbPID = inst.OVSDBPID()
		out, err = inst.Vsctl("get", "Interface", "sko-h1", "external_ids:iface-id")
		if err != nil || out != `vm1` {
			t.Fatalf("after ovsdb restart: iface-id = %q, %v", out, err)
		}
		// vswitchd reconnects to the restarted server and applies changes.
		inst.AddBridge(t, "sko-br1")
		if _, err := inst.Ofctl("-O", "OpenFlow13", "show", "sko-br1"); err != nil {
			t.Fatal(err)
		}
	})
	if inst == nil {
		t.Fatal("instance not created")
	}
	// Cleanup of the subtest removed daemons and namespaces.
	for _, pid := range []int{dbPID, vsPID} {
		if alive(pid) {
			t.Errorf("pid %d still alive after cleanup", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, ns := range []string{"sko-ovst", "sko-h1", "sko-h2"} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			t.Errorf("namespace %s still exists after cleanup", ns)
		}
	}
}

// A long test name makes t.TempDir() too long for unix socket paths; the
// instance then keeps its state in a shorter directory.
func TestLongTestNameStateDir(t *testing.T) {
	if why := Available(); why != "" {
		t.Skip(why)
	}
	t.Run(strings.Repeat("a_rather_long_subtest_name_", 4), func(t *testing.T) {
		inst := Start(t, "sko-long")
		if len(inst.DBSock) > 100 || len(inst.VswitchdCtl()) > 100 {
			t.Fatalf("socket paths too long: %s, %s", inst.DBSock, inst.VswitchdCtl())
		}
		inst.AddBridge(t, "sko-long-br")
		if _, err := inst.Ofctl("-O", "OpenFlow13", "show", "sko-long-br"); err != nil {
			t.Fatal(err)
		}
	})
}
