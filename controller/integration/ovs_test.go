//go:build integration

package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/controller/apps/learning"
	"github.com/skyvisor/skyvisor/internal/ovstest"
)

// ofport returns the OpenFlow port number OVS gave interface name.
func ofport(t *testing.T, inst *ovstest.Instance, name string) uint32 {
	t.Helper()
	var n uint64
	eventually(t, 10*time.Second, "ofport of "+name, func() error {
		out, err := inst.Vsctl("get", "Interface", name, "ofport")
		if err != nil {
			return err
		}
		n, err = strconv.ParseUint(strings.TrimSpace(out), 10, 32)
		if err == nil && (n == 0 || n >= 0xffff) {
			err = fmt.Errorf("ofport %d not assigned yet", n)
		}
		return err
	})
	return uint32(n)
}

// parseMAC packs "aa:bb:cc:dd:ee:ff" into a learning.MAC.
func parseMAC(s string) learning.MAC {
	var m learning.MAC
	for _, h := range strings.Split(s, ":") {
		v, _ := strconv.ParseUint(h, 16, 8)
		m = m<<8 | learning.MAC(v)
	}
	return m
}

// ping checks that host reaches ip (retrying for up to 10 s: the first
// packets go through the controller).
func ping(t *testing.T, host, ip string) {
	t.Helper()
	eventually(t, 10*time.Second, host+" ping "+ip, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := ovstest.HostExec(ctx, host, "ping", "-c", "1", "-W", "1", ip)
		return err
	})
}

// TestLearningSwitchOVS runs the learning app against a real OVS 3.1
// userspace bridge with two hosts: they ping each other, the learned
// in_port+eth_dst flow entries show up in ovs-ofctl dump-flows, and after
// ovs-vswitchd is killed and restarted the session comes back (SwitchDown,
// SwitchUp) and forwarding works again.
func TestLearningSwitchOVS(t *testing.T) {
	inst := ovstest.Start(t, "skb-l2")
	const (
		dpid   = controller.DPID(0xb1)
		br     = "skbl2"
		h1, h2 = "skb-l2h1", "skb-l2h2"
		mac1   = "02:00:00:00:b1:01"
		mac2   = "02:00:00:00:b1:02"
	)
	sock := filepath.Join(inst.Dir, "run", "skb-ctl.sock") // OVS accepts unix: targets only inside its run directory
	learn, err := learning.New(learning.Config{IdleTimeout: 120 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startController(t, "unix:"+sock, learn, rec)

	inst.AddBridge(t, br, "other_config:datapath-id=00000000000000b1")
	start := time.Now()
	if _, err := inst.Vsctl("set-controller", br, "unix:"+sock, "--", "set", "Controller", br, "connection-mode=out-of-band"); err != nil {
		t.Fatal(err)
	}
	inst.AddHost(t, h1, br, mac1, "10.77.1.1/24", nil)
	inst.AddHost(t, h2, br, mac2, "10.77.1.2/24", nil)
	rec.wait(t, true, dpid, 20*time.Second)
	t.Logf("SwitchUp within %v of set-controller (hosts added meanwhile)", time.Since(start))
	p1, p2 := ofport(t, inst, h1), ofport(t, inst, h2)

	checkForwarding := func(round string) {
		t.Helper()
		start := time.Now()
		ping(t, h1, "10.77.1.2")
		ping(t, h2, "10.77.1.1")
		t.Logf("%s: pings OK after %v", round, time.Since(start))
		cookie := "cookie=" + hex16(learning.DefaultCookie)
		eventually(t, 5*time.Second, round+": learned flow entries", func() error {
			dump, err := inst.Ofctl("-O", "OpenFlow13", "dump-flows", br)
			if err != nil {
				return err
			}
			for _, want := range [][]string{
				{cookie, "priority=1", fmt.Sprintf("in_port=%d", p1), "dl_dst=" + mac2, fmt.Sprintf("actions=output:%d", p2)},
				{cookie, "priority=1", fmt.Sprintf("in_port=%d", p2), "dl_dst=" + mac1, fmt.Sprintf("actions=output:%d", p1)},
				{cookie, "priority=0 actions=CONTROLLER:65535"},
			} {
				if len(flowLines(dump, want...)) != 1 {
					return fmt.Errorf("no single flow entry with %q in:\n%s", want, dump)
				}
			}
			return nil
		})
		tb := learn.Table(dpid)
		if tb == nil {
			t.Fatalf("%s: no MAC table for %v", round, dpid)
		}
		for mac, port := range map[string]uint32{mac1: p1, mac2: p2} {
			if got, ok := tb.Lookup(parseMAC(mac)); !ok || uint32(got) != port {
				t.Errorf("%s: MAC table %s -> %d,%v want %d", round, mac, got, ok, port)
			}
		}
	}
	checkForwarding("first session")

	oldPID := inst.VswitchdPID()
	start = time.Now()
	inst.RestartVswitchd(t) // SIGTERM by PID, then start again
	if inst.VswitchdPID() == oldPID {
		t.Fatalf("ovs-vswitchd PID unchanged (%d) after restart", oldPID)
	}
	rec.wait(t, false, dpid, 20*time.Second)
	rec.wait(t, true, dpid, 30*time.Second)
	t.Logf("session back %v after restart began", time.Since(start))
	checkForwarding("after vswitchd restart")

	// Link down on h2's port: the switch reports it (OFPT_PORT_STATUS) and
	// the app forgets the addresses learned there.
	if _, err := inst.Exec(context.Background(), "ip", "link", "set", h2, "down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "MAC table forgets h2 after port down", func() error {
		if p, ok := learn.Table(dpid).Lookup(parseMAC(mac2)); ok {
			return fmt.Errorf("%s still on port %d", mac2, p)
		}
		return nil
	})
}

// TestDiscoveryOVSPatch runs the discovery app on two OVS bridges joined by
// a patch port pair: exactly the two directed links between the patch ports
// appear, and they disappear when the patch port is deleted.
func TestDiscoveryOVSPatch(t *testing.T) {
	inst := ovstest.Start(t, "skb-dsc")
	sock := filepath.Join(inst.Dir, "run", "skb-ctl.sock")
	disc, err := discovery.New(discovery.Config{ProbeInterval: 200 * time.Millisecond, LinkTimeout: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	startController(t, "unix:"+sock, disc, rec)
	for i, br := range []string{"skbd1", "skbd2"} {
		inst.AddBridge(t, br, fmt.Sprintf("other_config:datapath-id=00000000000000d%d", i+1))
		if _, err := inst.Vsctl("set-controller", br, "unix:"+sock, "--", "set", "Controller", br, "connection-mode=out-of-band"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := inst.Vsctl(
		"add-port", "skbd1", "skbd1-p", "--", "set", "Interface", "skbd1-p", "type=patch", "options:peer=skbd2-p", "ofport_request=5", "--",
		"add-port", "skbd2", "skbd2-p", "--", "set", "Interface", "skbd2-p", "type=patch", "options:peer=skbd1-p", "ofport_request=7"); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, true, 0xd1, 20*time.Second)
	rec.wait(t, true, 0xd2, 20*time.Second)
	want := []discovery.Link{
		{Src: discovery.Endpoint{DPID: 0xd1, Port: 5}, Dst: discovery.Endpoint{DPID: 0xd2, Port: 7}},
		{Src: discovery.Endpoint{DPID: 0xd2, Port: 7}, Dst: discovery.Endpoint{DPID: 0xd1, Port: 5}},
	}
	start := time.Now()
	eventually(t, 10*time.Second, "links over the patch ports", func() error {
		if got := disc.Links(); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("links %v want %v", got, want)
		}
		return nil
	})
	t.Logf("links found %v after both switches were up", time.Since(start))
	dump, err := inst.Ofctl("-O", "OpenFlow13", "dump-flows", "skbd1")
	if err != nil {
		t.Fatal(err)
	}
	if len(flowLines(dump, "cookie="+hex16(discovery.DefaultCookie), "priority=65000", "dl_type=0x88cc", "actions=CONTROLLER:65535")) != 1 {
		t.Errorf("LLDP flow entry missing:\n%s", dump)
	}
	if _, err := inst.Vsctl("del-port", "skbd2", "skbd2-p"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "links gone after del-port", func() error {
		if got := disc.Links(); len(got) != 0 {
			return fmt.Errorf("links %v remain", got)
		}
		return nil
	})
}
