//go:build integration

package ovsdb

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
)

// testLogWriter sends log lines to t.Log until the test ends (libovsdb
// goroutines may log after that, which t.Log forbids).
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func newTestLogger(w *testLogWriter) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func dial(t *testing.T, inst *ovstest.Instance) *Client {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	log := newTestLogger(w)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, inst.DBEndpoint(), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func vsctl(t *testing.T, inst *ovstest.Instance, args ...string) string {
	t.Helper()
	out, err := inst.Vsctl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually polls cond every 20 ms until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEnsureBridgeIdempotent(t *testing.T) {
	inst := ovstest.Start(t, "sko-ensbr")
	c := dial(t, inst)
	ctx := testCtx(t)
	spec := BridgeSpec{
		Name:         "sko-br0",
		DatapathID:   "00000000000000B1",
		DatapathType: "netdev",
		Protocols:    []string{"OpenFlow13"},
		FailMode:     "secure",
		Controllers:  []string{"tcp:127.0.0.1:16653"},
		ExternalIDs:  map[string]string{"skyvisor-site": "s1"},
	}
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if n := c.Transactions(); n != 1 {
		t.Fatalf("create: %d transactions, want 1", n)
	}
	// The cache reflects our own write when EnsureBridge returns.
	b, err := c.Bridge(ctx, "sko-br0")
	if err != nil {
		t.Fatal(err)
	}
	if b.FailMode != "secure" || b.DatapathType != "netdev" || !reflect.DeepEqual(b.Protocols, []string{"OpenFlow13"}) ||
		len(b.Controllers) != 1 || b.Controllers[0].Target != "tcp:127.0.0.1:16653" ||
		b.Controllers[0].ConnectionMode != ConnectionModeOutOfBand || b.ExternalIDs["skyvisor-site"] != "s1" ||
		!reflect.DeepEqual(b.Ports, []string{"sko-br0"}) {
		t.Fatalf("bridge after create: %+v", b)
	}
	// Cross-check with ovs-vsctl.
	got := vsctl(t, inst, "get", "Bridge", "sko-br0", "datapath_type", "fail_mode", "protocols", "other_config:datapath-id", "external_ids:skyvisor-site")
	if want := "netdev\nsecure\n[OpenFlow13]\n\"00000000000000b1\"\ns1"; got != want {
		t.Fatalf("ovs-vsctl get = %q, want %q", got, want)
	}
	if got := vsctl(t, inst, "--bare", "--columns=connection_mode", "find", "Controller", `target="tcp:127.0.0.1:16653"`); got != "out-of-band" {
		t.Fatalf("connection_mode = %q", got)
	}
	dpid, err := c.BridgeDatapathID(ctx, "sko-br0")
	if err != nil || dpid != 0xb1 {
		t.Fatalf("BridgeDatapathID = %#x, %v", dpid, err)
	}
	if out, err := inst.Ofctl("-O", "OpenFlow13", "show", "sko-br0"); err != nil || !strings.Contains(out, "dpid:00000000000000b1") {
		t.Fatalf("ofctl show: %v %s", err, out)
	}

	// A flow installed now must survive every later EnsureBridge that does
	// not change the controller set.
	if _, err := inst.Ofctl("-O", "OpenFlow13", "add-flow", "sko-br0", "priority=7,ip,actions=drop"); err != nil {
		t.Fatal(err)
	}
	flowThere := func(when string) {
		t.Helper()
		out, err := inst.Ofctl("-O", "OpenFlow13", "dump-flows", "sko-br0")
		if err != nil || !strings.Contains(out, "priority=7,ip") {
			t.Fatalf("%s: flow table flushed: %v\n%s", when, err, out)
		}
	}
	ctlUUID := vsctl(t, inst, "get", "Bridge", "sko-br0", "controller")
	show := vsctl(t, inst, "show")

	spec.DatapathID = "00000000000000b1" // case differs: still equal
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if n := c.Transactions(); n != 1 {
		t.Fatalf("second EnsureBridge sent a transaction (%d total)", n)
	}
	if got := vsctl(t, inst, "show"); got != show {
		t.Fatalf("ovs-vsctl show changed:\n%s\n---\n%s", show, got)
	}
	flowThere("after idempotent ensure")

	// Change one external id: one transaction, controller row untouched.
	spec.ExternalIDs = map[string]string{"skyvisor-site": "s2", "extra": "x"}
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if n := c.Transactions(); n != 2 {
		t.Fatalf("external_ids change: %d transactions, want 2", n)
	}
	if got := vsctl(t, inst, "get", "Bridge", "sko-br0", "controller"); got != ctlUUID {
		t.Fatalf("controller column rewritten: %s -> %s", ctlUUID, got)
	}
	flowThere("after external_ids change")

	// Connection mode changes in place (same Controller row).
	spec.ConnectionMode = ConnectionModeInBand
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := vsctl(t, inst, "get", "Bridge", "sko-br0", "controller"); got != ctlUUID {
		t.Fatalf("controller column rewritten on mode change: %s -> %s", ctlUUID, got)
	}
	if got := vsctl(t, inst, "--bare", "--columns=connection_mode", "find", "Controller", `target="tcp:127.0.0.1:16653"`); got != "in-band" {
		t.Fatalf("connection_mode = %q", got)
	}
	flowThere("after connection mode change")

	// New DPID is applied by vswitchd.
	spec.DatapathID = "00000000000000c2"
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "datapath ID c2", func() (bool, string) {
		d, err := c.BridgeDatapathID(ctx, "sko-br0")
		return err == nil && d == 0xc2, FormatDatapathID(d)
	})

	// Second controller added, then all removed.
	if err := c.SetControllers(ctx, "sko-br0", []string{"tcp:127.0.0.1:16653", "unix:/tmp/sko-nonexistent.sock"}); err != nil {
		t.Fatal(err)
	}
	b, _ = c.Bridge(ctx, "sko-br0")
	if len(b.Controllers) != 2 || b.Controllers[0].Target != "tcp:127.0.0.1:16653" || b.Controllers[1].Target != "unix:/tmp/sko-nonexistent.sock" {
		t.Fatalf("controllers = %+v", b.Controllers)
	}
	if err := c.SetControllers(ctx, "sko-br0", nil); err != nil {
		t.Fatal(err)
	}
	if got := vsctl(t, inst, "get", "Bridge", "sko-br0", "controller"); got != "[]" {
		t.Fatalf("controllers after SetControllers(nil) = %s", got)
	}
	if got := vsctl(t, inst, "--columns=target", "list", "Controller"); got != "" {
		t.Fatalf("Controller rows not garbage-collected: %q", got)
	}

	if err := c.SetControllers(ctx, "sko-nobr", []string{"tcp:127.0.0.1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetControllers on a missing bridge: %v", err)
	}
	bs, err := c.Bridges(ctx)
	if err != nil || len(bs) != 1 || bs[0].Name != "sko-br0" {
		t.Fatalf("Bridges = %+v, %v", bs, err)
	}
	if err := c.DeleteBridge(ctx, "sko-br0"); err != nil {
		t.Fatal(err)
	}
	if got := vsctl(t, inst, "list-br"); got != "" {
		t.Fatalf("bridges after delete: %q", got)
	}
	n := c.Transactions()
	if err := c.DeleteBridge(ctx, "sko-br0"); err != nil {
		t.Fatalf("deleting a missing bridge: %v", err)
	}
	if c.Transactions() != n {
		t.Fatal("deleting a missing bridge sent a transaction")
	}
	if _, err := c.BridgeDatapathID(ctx, "sko-br0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("BridgeDatapathID of missing bridge: %v", err)
	}
}

func TestEnsureBridgeErrors(t *testing.T) {
	inst := ovstest.Start(t, "sko-brerr")
	c := dial(t, inst)
	ctx := testCtx(t)
	err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-x", DatapathID: "zz"})
	if err == nil || err.Error() != `ovsdb: bridge "sko-x": datapath ID "zz": not 16 hex digits` {
		t.Fatalf("bad DPID: %v", err)
	}
	if c.Transactions() != 0 {
		t.Fatal("invalid spec sent a transaction")
	}
	if got := vsctl(t, inst, "list-br"); got != "" {
		t.Fatalf("invalid spec created %q", got)
	}
	// A bridge named like a port of another bridge is refused.
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-a", DatapathType: "netdev"}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureTunnelPort(ctx, "sko-a", TunnelPort{Name: "sko-b", Type: "vxlan", RemoteIP: "10.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-b", DatapathType: "netdev"}); err == nil || !strings.Contains(err.Error(), `exists on bridge "sko-a"`) {
		t.Fatalf("bridge named like a port: %v", err)
	}
}

func TestTunnelPorts(t *testing.T) {
	inst := ovstest.Start(t, "sko-tun")
	c := dial(t, inst)
	ctx := testCtx(t)
	for _, br := range []string{"sko-br0", "sko-br1"} {
		if err := c.EnsureBridge(ctx, BridgeSpec{Name: br, DatapathType: "netdev", Protocols: []string{"OpenFlow13"}, FailMode: "secure"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []TunnelPort{
		{Name: "tun-gnv", Type: "geneve", RemoteIP: "10.1.0.4", Key: "", OFPort: 0, ExternalIDs: map[string]string{}},
		{Name: "tun-gre", Type: "gre", RemoteIP: "flow", Key: "flow", OFPort: 103, ExternalIDs: map[string]string{"skyvisor-peer": "s3"}},
		{Name: "tun-vx", Type: "vxlan", RemoteIP: "10.1.0.2", Key: "100", OFPort: 102, ExternalIDs: map[string]string{"skyvisor-peer": "s2"}},
	}
	for _, p := range want {
		if err := c.EnsureTunnelPort(ctx, "sko-br0", p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.TunnelPorts(ctx, "sko-br0")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("TunnelPorts = %+v, %v\nwant %+v", got, err, want)
	}
	// ovs-vsctl sees the same, and vswitchd assigned the requested ports.
	if o := vsctl(t, inst, "get", "Interface", "tun-vx", "type", "options"); o != "vxlan\n{key=\"100\", remote_ip=\"10.1.0.2\"}" {
		t.Fatalf("tun-vx = %q", o)
	}
	if o := vsctl(t, inst, "get", "Interface", "tun-gre", "type", "options"); o != "gre\n{key=flow, remote_ip=flow}" {
		t.Fatalf("tun-gre = %q", o)
	}
	if o := vsctl(t, inst, "get", "Interface", "tun-gnv", "type", "options"); o != "geneve\n{remote_ip=\"10.1.0.4\"}" {
		t.Fatalf("tun-gnv = %q", o)
	}
	ofports := func() (map[string]int, string) {
		ifs, err := c.Interfaces(ctx, "sko-br0")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, i := range ifs {
			m[i.Name] = i.OFPort
		}
		return m, vsctl(t, inst, "--columns=name,ofport,error", "list", "Interface")
	}
	eventually(t, "requested OpenFlow ports", func() (bool, string) {
		m, s := ofports()
		return m["tun-vx"] == 102 && m["tun-gre"] == 103 && m["tun-gnv"] > 0, s
	})
	if o := vsctl(t, inst, "get", "Interface", "tun-vx", "ofport"); o != "102" {
		t.Fatalf("ovs-vsctl: tun-vx ofport = %s", o)
	}

	// Idempotent: no transaction.
	n := c.Transactions()
	for _, p := range want {
		if err := c.EnsureTunnelPort(ctx, "sko-br0", p); err != nil {
			t.Fatal(err)
		}
	}
	if c.Transactions() != n {
		t.Fatalf("re-ensuring unchanged tunnels sent %d transactions", c.Transactions()-n)
	}

	// Update in place: same Interface row, new options and port number.
	uuid := vsctl(t, inst, "get", "Interface", "tun-vx", "_uuid")
	upd := TunnelPort{Name: "tun-vx", Type: "vxlan", RemoteIP: "10.1.0.9", Key: "flow", OFPort: 109, ExternalIDs: map[string]string{"skyvisor-peer": "s9"}}
	if err := c.EnsureTunnelPort(ctx, "sko-br0", upd); err != nil {
		t.Fatal(err)
	}
	if c.Transactions() != n+1 {
		t.Fatalf("update: %d transactions, want 1", c.Transactions()-n)
	}
	if got := vsctl(t, inst, "get", "Interface", "tun-vx", "_uuid"); got != uuid {
		t.Fatalf("tun-vx re-created (%s -> %s), want updated in place", uuid, got)
	}
	if o := vsctl(t, inst, "get", "Interface", "tun-vx", "options", "external_ids"); o != "{key=flow, remote_ip=\"10.1.0.9\"}\n{skyvisor-peer=s9}" {
		t.Fatalf("tun-vx after update = %q", o)
	}
	eventually(t, "tun-vx moved to port 109", func() (bool, string) {
		m, s := ofports()
		return m["tun-vx"] == 109, s
	})
	// Type change in place too (vxlan -> geneve).
	upd.Type = "geneve"
	if err := c.EnsureTunnelPort(ctx, "sko-br0", upd); err != nil {
		t.Fatal(err)
	}
	if o := vsctl(t, inst, "get", "Interface", "tun-vx", "type"); o != "geneve" {
		t.Fatalf("type = %s", o)
	}

	// Refusals.
	if err := c.EnsureTunnelPort(ctx, "sko-br1", upd); err == nil || !strings.Contains(err.Error(), `exists on bridge "sko-br0"`) {
		t.Fatalf("same name on another bridge: %v", err)
	}
	if err := c.EnsureTunnelPort(ctx, "sko-br0", TunnelPort{Name: "sko-br0", Type: "gre", RemoteIP: "10.0.0.1"}); err == nil || !strings.Contains(err.Error(), `not a tunnel`) {
		t.Fatalf("overwriting the internal port: %v", err)
	}
	if err := c.EnsureTunnelPort(ctx, "sko-nobr", upd); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing bridge: %v", err)
	}
	if err := c.DeleteTunnelPort(ctx, "sko-br0", "sko-br0"); err == nil {
		t.Fatal("deleting the internal port as a tunnel succeeded")
	}
	err = c.EnsureTunnelPort(ctx, "sko-br0", TunnelPort{Name: "tun-bad", Type: "vxlan", RemoteIP: "10.0.0.1", Key: "16777216"})
	if err == nil || !strings.Contains(err.Error(), `key "16777216"`) {
		t.Fatalf("24-bit VNI overflow: %v", err)
	}

	// Delete.
	if err := c.DeleteTunnelPort(ctx, "sko-br0", "tun-gre"); err != nil {
		t.Fatal(err)
	}
	if o := vsctl(t, inst, "list-ports", "sko-br0"); o != "tun-gnv\ntun-vx" {
		t.Fatalf("ports after delete = %q", o)
	}
	if o := vsctl(t, inst, "--columns=name", "find", "Interface", "name=tun-gre"); o != "" {
		t.Fatalf("tun-gre interface not garbage-collected: %q", o)
	}
	n = c.Transactions()
	if err := c.DeleteTunnelPort(ctx, "sko-br0", "tun-gre"); err != nil {
		t.Fatalf("deleting a missing port: %v", err)
	}
	if err := c.DeleteTunnelPort(ctx, "sko-br1", "tun-vx"); err != nil {
		t.Fatalf("deleting a port of another bridge: %v", err)
	}
	if c.Transactions() != n {
		t.Fatal("deleting missing ports sent a transaction")
	}
	if o := vsctl(t, inst, "list-ports", "sko-br0"); o != "tun-gnv\ntun-vx" {
		t.Fatalf("ports = %q", o)
	}
}

// nextEvent waits for an event matching match, failing after 15 s.
func nextEvent(t *testing.T, ch <-chan InterfaceEvent, what string, match func(InterfaceEvent) bool) InterfaceEvent {
	t.Helper()
	timeout := time.After(15 * time.Second)
	var seen []string
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed while waiting for %s", what)
			}
			seen = append(seen, ev.Type.String()+" "+ev.Interface.Name)
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event; saw %v", what, seen)
		}
	}
}

func TestWatchInterfaces(t *testing.T) {
	inst := ovstest.Start(t, "sko-watch")
	c := dial(t, inst)
	ctx := testCtx(t)
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-br0", DatapathType: "netdev", Protocols: []string{"OpenFlow13"}, FailMode: "secure"}); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	ch, err := c.WatchInterfaces(wctx, "sko-br0")
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "initial internal port", func(ev InterfaceEvent) bool {
		return ev.Type == InterfaceAdded && ev.Interface.Name == "sko-br0" && ev.Interface.Type == "internal"
	})

	// Plug a VM the way a hypervisor does: external_ids iface-id + attached-mac.
	inst.AddHost(t, "sko-wvm1", "sko-br0", "02:00:00:00:00:11", "10.7.0.1/24",
		map[string]string{"iface-id": "tenant7-vm1", "attached-mac": "02:00:00:00:00:11"})
	ev := nextEvent(t, ch, "vm1 added", func(ev InterfaceEvent) bool {
		return ev.Type == InterfaceAdded && ev.Interface.Name == "sko-wvm1"
	})
	if ev.Interface.IfaceID() != "tenant7-vm1" || ev.Interface.AttachedMAC() != "02:00:00:00:00:11" ||
		ev.Interface.Bridge != "sko-br0" || ev.Interface.Port != "sko-wvm1" {
		t.Fatalf("added event = %+v", ev.Interface)
	}
	// Once vswitchd opened it, the port number and link state follow.
	if ev.Interface.OFPort <= 0 || ev.Interface.LinkState != "up" {
		ev = nextEvent(t, ch, "vm1 port number and link", func(ev InterfaceEvent) bool {
			return ev.Interface.Name == "sko-wvm1" && ev.Interface.OFPort > 0 && ev.Interface.LinkState == "up"
		})
	}
	ifs, err := c.Interfaces(ctx, "sko-br0")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, i := range ifs {
		if i.Name == "sko-wvm1" {
			found = true
			if i.OFPort != ev.Interface.OFPort || i.MAC == "" || i.AdminState != "up" {
				t.Fatalf("Interfaces: %+v", i)
			}
		}
	}
	if !found {
		t.Fatalf("Interfaces lacks sko-wvm1: %+v", ifs)
	}
	if o := vsctl(t, inst, "get", "Interface", "sko-wvm1", "ofport"); o != strconv.Itoa(ev.Interface.OFPort) {
		t.Fatalf("ofport %s vs event %d", o, ev.Interface.OFPort)
	}

	wi, err := c.WaitInterface(ctx, "sko-br0", "sko-wvm1")
	if err != nil || wi.OFPort != ev.Interface.OFPort {
		t.Fatalf("WaitInterface = %+v, %v", wi, err)
	}
	// Mark it bound, the way ovn-controller sets ovn-installed.
	n := c.Transactions()
	if err := c.SetInterfaceExternalIDs(ctx, "sko-wvm1", map[string]string{"skyvisor-bound": "true"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetInterfaceExternalIDs(ctx, "sko-wvm1", map[string]string{"skyvisor-bound": "true"}); err != nil {
		t.Fatal(err)
	}
	if c.Transactions() != n+1 {
		t.Fatalf("SetInterfaceExternalIDs: %d transactions, want 1", c.Transactions()-n)
	}
	if o := vsctl(t, inst, "get", "Interface", "sko-wvm1", "external_ids"); o != `{attached-mac="02:00:00:00:00:11", iface-id=tenant7-vm1, skyvisor-bound="true"}` {
		t.Fatalf("external_ids = %s", o)
	}
	nextEvent(t, ch, "bound mark", func(ev InterfaceEvent) bool {
		return ev.Type == InterfaceUpdated && ev.Interface.ExternalIDs["skyvisor-bound"] == "true"
	})
	if err := c.SetInterfaceExternalIDs(ctx, "sko-wvm1", map[string]string{"skyvisor-bound": ""}); err != nil {
		t.Fatal(err)
	}
	if o := vsctl(t, inst, "get", "Interface", "sko-wvm1", "external_ids"); strings.Contains(o, "skyvisor-bound") {
		t.Fatalf("key not removed: %s", o)
	}
	if err := c.SetInterfaceExternalIDs(ctx, "sko-nosuch", map[string]string{"a": "b"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing interface: %v", err)
	}
	// An interface vswitchd cannot open is reported at once.
	vsctl(t, inst, "add-port", "sko-br0", "sko-nodev")
	if _, err := c.WaitInterface(ctx, "sko-br0", "sko-nodev"); err == nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("WaitInterface on a missing device: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = c.WaitInterface(short, "sko-br0", "sko-absent")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("WaitInterface on an absent interface: %v", err)
	}

	// A change of external_ids is an update.
	vsctl(t, inst, "set", "Interface", "sko-wvm1", "external_ids:iface-id=tenant7-vm1b")
	nextEvent(t, ch, "iface-id update", func(ev InterfaceEvent) bool {
		return ev.Type == InterfaceUpdated && ev.Interface.Name == "sko-wvm1" && ev.Interface.IfaceID() == "tenant7-vm1b"
	})

	// Unplug.
	vsctl(t, inst, "del-port", "sko-br0", "sko-wvm1")
	ev = nextEvent(t, ch, "vm1 removed", func(ev InterfaceEvent) bool {
		return ev.Type == InterfaceRemoved && ev.Interface.Name == "sko-wvm1"
	})
	if ev.Interface.IfaceID() != "tenant7-vm1b" {
		t.Fatalf("removed event carries %+v", ev.Interface)
	}
	stop()
	for range ch { // drains, then closes
	}
}

func TestReconnectAfterOVSDBRestart(t *testing.T) {
	inst := ovstest.Start(t, "sko-rcdb")
	c := dial(t, inst)
	ctx := testCtx(t)
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-br0", DatapathType: "netdev", Protocols: []string{"OpenFlow13"}, FailMode: "secure", DatapathID: "00000000000000d1"}); err != nil {
		t.Fatal(err)
	}
	ch, err := c.WatchInterfaces(ctx, "sko-br0")
	if err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, "initial", func(ev InterfaceEvent) bool { return ev.Interface.Name == "sko-br0" })
	inst.AddHost(t, "sko-rvm1", "sko-br0", "02:00:00:00:00:21", "", map[string]string{"iface-id": "vm1"})
	nextEvent(t, ch, "vm1 added", func(ev InterfaceEvent) bool { return ev.Interface.Name == "sko-rvm1" })

	t0 := time.Now()
	inst.RestartOVSDB(t)
	// No manual step: the next write blocks until the client reconnected.
	if err := c.EnsureTunnelPort(ctx, "sko-br0", TunnelPort{Name: "tun-a", Type: "vxlan", RemoteIP: "10.2.0.2", Key: "5", OFPort: 50}); err != nil {
		t.Fatal(err)
	}
	t.Logf("first write after ovsdb-server restart done %v after restart began", time.Since(t0))
	if !c.Connected() {
		t.Fatal("not connected after a successful write")
	}
	if o := vsctl(t, inst, "get", "Interface", "tun-a", "options:key"); o != `"5"` {
		t.Fatalf("tun-a key = %s", o)
	}
	// The re-monitored cache is complete and live.
	dpid, err := c.BridgeDatapathID(ctx, "sko-br0")
	if err != nil || dpid != 0xd1 {
		t.Fatalf("dpid after reconnect = %#x, %v", dpid, err)
	}
	// The watch survives: a deletion made by another client is seen.
	vsctl(t, inst, "del-port", "sko-br0", "sko-rvm1")
	nextEvent(t, ch, "vm1 removed after reconnect", func(ev InterfaceEvent) bool {
		return ev.Type == InterfaceRemoved && ev.Interface.Name == "sko-rvm1"
	})
	// Twice in a row, with a change made while the client was away.
	inst.RestartOVSDB(t)
	vsctl(t, inst, "--no-wait", "del-port", "sko-br0", "tun-a")
	nextEvent(t, ch, "tun-a removed while reconnecting", func(ev InterfaceEvent) bool {
		return ev.Type == InterfaceRemoved && ev.Interface.Name == "tun-a"
	})
	tp, err := c.TunnelPorts(ctx, "sko-br0")
	if err != nil || len(tp) != 0 {
		t.Fatalf("TunnelPorts after second restart = %+v, %v", tp, err)
	}
}

func TestSurvivesVswitchdRestart(t *testing.T) {
	inst := ovstest.Start(t, "sko-rcvs")
	c := dial(t, inst)
	ctx := testCtx(t)
	spec := BridgeSpec{Name: "sko-br0", DatapathType: "netdev", Protocols: []string{"OpenFlow13"}, FailMode: "secure", DatapathID: "00000000000000e1"}
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureTunnelPort(ctx, "sko-br0", TunnelPort{Name: "tun-a", Type: "gre", RemoteIP: "10.3.0.2", Key: "7", OFPort: 70}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "tun-a on port 70", func() (bool, string) {
		ifs, _ := c.Interfaces(ctx, "sko-br0")
		for _, i := range ifs {
			if i.Name == "tun-a" {
				return i.OFPort == 70, strconv.Itoa(i.OFPort)
			}
		}
		return false, "absent"
	})
	inst.RestartVswitchd(t)
	n := c.Transactions()
	if err := c.EnsureBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if c.Transactions() != n {
		t.Fatal("EnsureBridge after vswitchd restart sent a transaction")
	}
	if err := c.EnsureTunnelPort(ctx, "sko-br0", TunnelPort{Name: "tun-b", Type: "vxlan", RemoteIP: "10.3.0.3", OFPort: 71}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "tun-a 70 and tun-b 71 after restart", func() (bool, string) {
		ifs, _ := c.Interfaces(ctx, "sko-br0")
		m := map[string]int{}
		for _, i := range ifs {
			m[i.Name] = i.OFPort
		}
		return m["tun-a"] == 70 && m["tun-b"] == 71, vsctl(t, inst, "--columns=name,ofport", "list", "Interface")
	})
	dpid, err := c.BridgeDatapathID(ctx, "sko-br0")
	if err != nil || dpid != 0xe1 {
		t.Fatalf("dpid = %#x, %v", dpid, err)
	}
	if out, err := inst.Ofctl("-O", "OpenFlow13", "show", "sko-br0"); err != nil || !strings.Contains(out, "dpid:00000000000000e1") {
		t.Fatalf("ofctl show after restart: %v %s", err, out)
	}
}

func TestDialErrors(t *testing.T) {
	inst := ovstest.Start(t, "sko-dial")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := Dial(ctx, "unix:"+inst.Dir+"/run/nothing.sock"); err == nil || !strings.Contains(err.Error(), "nothing.sock") {
		t.Fatalf("dial to a missing socket: %v", err)
	}
	c := dial(t, inst)
	c.Close()
	c.Close() // idempotent
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-br0"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := c.WatchInterfaces(ctx, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("watch after Close: %v", err)
	}
}

// sessions returns ovsdb-server's count of client sessions (memory/show).
func sessions(t *testing.T, inst *ovstest.Instance) (int, string) {
	t.Helper()
	out, err := inst.AppctlOVSDB("memory/show")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "sessions:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("memory/show: %q", out)
			}
			return n, out
		}
	}
	return 0, out
}

func TestWriteWaitsForServerAndCloseWhileDown(t *testing.T) {
	inst := ovstest.Start(t, "sko-down")
	base, _ := sessions(t, inst) // ovs-vswitchd's session
	c := dial(t, inst)
	ctx := testCtx(t)
	eventually(t, "client session", func() (bool, string) { n, s := sessions(t, inst); return n == base+1, s })

	// A write issued while the server is down completes once it is back.
	inst.StopOVSDB(t)
	errc := make(chan error, 1)
	go func() { errc <- c.EnsureBridge(ctx, BridgeSpec{Name: "sko-br0", DatapathType: "netdev"}) }()
	select {
	case err := <-errc:
		t.Fatalf("EnsureBridge returned while the server was down: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	inst.StartOVSDB(t)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if o := vsctl(t, inst, "list-br"); o != "sko-br0" {
		t.Fatalf("bridges = %q", o)
	}
	// A write with a context that ends while the server is down fails
	// with the context's error.
	inst.StopOVSDB(t)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := c.DeleteBridge(short, "sko-br0")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write while down with short deadline: %v", err)
	}

	// Closed while down: the client must not come back when the server does.
	c.Close()
	inst.StartOVSDB(t)
	eventually(t, "vswitchd session", func() (bool, string) { n, s := sessions(t, inst); return n >= base, s })
	// Absence can only be shown by waiting: longer than one retry interval
	// plus a connection attempt.
	time.Sleep(retryMax + 500*time.Millisecond)
	if n, s := sessions(t, inst); n != base {
		t.Fatalf("closed client reconnected: %s", s)
	}
	if o := vsctl(t, inst, "list-br"); o != "sko-br0" {
		t.Fatalf("bridges = %q (the failed delete must not apply later)", o)
	}
}
