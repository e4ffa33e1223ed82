//go:build integration

package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestartDaemons restarts one site's ovs-vswitchd and then its
// ovsdb-server in a 2-site lab: each gets a new PID that Status reports,
// the bridges and their DPIDs come back from the database, the tunnel
// neighbour cache is seeded again, br-phy has its underlay address (the underlay check passes) and after the
// ovsdb-server restart ovs-vswitchd has reconnected (a new port gets an
// OpenFlow port number). Then a crash: Kill (SIGKILL) and Start.
func TestRestartDaemons(t *testing.T) {
	needLab(t)
	dir := filepath.Join(t.TempDir(), "lab")
	s, err := Parse([]byte(fmt.Sprintf(`{"prefix":"skr%dl","state_dir":%q,"controller":"none",
		"sites":[{"name":"a","vms":1},{"name":"b","vms":1}]}`, os.Getpid()%100, dir)))
	if err != nil {
		t.Fatal(err)
	}
	inv := up(t, s)
	ctx := context.Background()
	for _, d := range []Daemon{VSwitchd, OVSDBServer} {
		old := inv.Sites[1].VSwitchdPID
		if d == OVSDBServer {
			old = inv.Sites[1].OVSDBServerPID
		}
		t0 := time.Now()
		pid, err := Restart(ctx, dir, "b", d)
		if err != nil {
			t.Fatalf("restart %s: %v", d, err)
		}
		t.Logf("%s of site b: pid %d -> %d in %v", d, old, pid, time.Since(t0))
		if pid == old || old == 0 {
			t.Errorf("%s: pid %d before, %d after", d, old, pid)
		}
		if alive(old) {
			t.Errorf("%s: old pid %d still alive", d, old)
		}
		inv, err = Status(dir)
		if err != nil {
			t.Fatal(err)
		}
		got := inv.Sites[1].VSwitchdPID
		if d == OVSDBServer {
			got = inv.Sites[1].OVSDBServerPID
		}
		if got != pid {
			t.Errorf("Status reports %s pid %d, Restart returned %d", d, got, pid)
		}
		if sw := inv.Switch("b", "vm1"); sw == nil || sw.DPID != VMDPID(2, 1) {
			t.Errorf("after %s restart: switch b/vm1 %+v", d, sw)
		}
		if out := siteCmd(t, dir, "b", "ip", "-br", "addr", "show", UnderlayBridge); !strings.Contains(out, inv.Sites[1].UnderlayCIDR) {
			t.Errorf("after %s restart: br-phy %q lacks %s", d, out, inv.Sites[1].UnderlayCIDR)
		}
		if d == VSwitchd {
			// the seeded tunnel neighbour cache is back (lost with the process)
			if out := siteCmd(t, dir, "b", "ovs-appctl", "tnl/neigh/show"); !strings.Contains(out, inv.Sites[0].UnderlayIP) ||
				!strings.Contains(out, inv.Sites[0].UnderlayMAC) {
				t.Errorf("tunnel neighbour cache after the restart lacks %s %s:\n%s", inv.Sites[0].UnderlayIP, inv.Sites[0].UnderlayMAC, out)
			}
		}
		if lines, err := CheckUnderlay(ctx, dir); err != nil {
			t.Errorf("after %s restart: %v %v", d, lines, err)
		}
	}
	// A crash: Kill (SIGKILL, pid file left behind), Status reports no
	// daemon, Start brings it back (over the stale pid file); a second
	// Start fails.
	// Both daemons at once: ovsdb-server starts without waiting for a
	// vswitchd that is not there.
	old := inv.Sites[1].VSwitchdPID
	if err := Kill(ctx, dir, "b", VSwitchd); err != nil {
		t.Fatal(err)
	}
	if alive(old) {
		t.Errorf("ovs-vswitchd %d alive after Kill", old)
	}
	if inv, err = Status(dir); err != nil || inv.Sites[1].VSwitchdPID != 0 {
		t.Fatalf("Status after Kill: pid %d, %v", inv.Sites[1].VSwitchdPID, err)
	}
	oldDB := inv.Sites[1].OVSDBServerPID
	if err := Kill(ctx, dir, "b", OVSDBServer); err != nil {
		t.Fatal(err)
	}
	if alive(oldDB) {
		t.Errorf("ovsdb-server %d alive after Kill", oldDB)
	}
	if _, err := Start(ctx, dir, "b", OVSDBServer); err != nil {
		t.Fatal(err)
	}
	pid, err := Start(ctx, dir, "b", VSwitchd)
	if err != nil || pid == 0 || pid == old {
		t.Fatalf("Start after Kill: pid %d (was %d), %v", pid, old, err)
	}
	if lines, err := CheckUnderlay(ctx, dir); err != nil {
		t.Errorf("after crash and start: %v %v", lines, err)
	}
	if _, err := Start(ctx, dir, "b", VSwitchd); err == nil {
		t.Error("a second Start of a running ovs-vswitchd succeeded")
	}
	// ovs-vswitchd is back on the new ovsdb-server: a new port gets an ofport.
	siteCmd(t, dir, "b", "ovs-vsctl", "--timeout=10", "add-port", "vm1", "skrp", "--", "set", "interface", "skrp", "type=internal")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := siteCmd(t, dir, "b", "ovs-vsctl", "get", "interface", "skrp", "ofport")
		if out != "[]" && out != "-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new port got no ofport after the ovsdb-server restart: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
