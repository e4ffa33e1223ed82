//go:build integration

package hypervisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// startSksLab brings up a 2-site lab (aws, gcp; VM "vm1" each; prefix
// "sks<pid%100>") and Skyvisor with the periodic audit off (the test runs
// the reconciler itself with Resync, at the moments it checks).
func startSksLab(t *testing.T) *skrLab {
	t.Helper()
	needLab(t)
	prefix := fmt.Sprintf("sks%02d", os.Getpid()%100)
	dir := filepath.Join(t.TempDir(), "lab")
	spec, err := lab.Parse([]byte(fmt.Sprintf(`{"prefix":%q,"state_dir":%q,"tunnel_type":"vxlan",
		"sites":[{"name":"aws","vms":1},{"name":"gcp","vms":1}]}`, prefix, dir)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", strings.TrimPrefix(spec.Controller, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	upCtx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	inv, err := lab.Up(upCtx, spec)
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), dir); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		ln.Close()
		t.Fatalf("lab up: %v", err)
	}
	b, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	inf, err := infra.Parse(b)
	if err != nil {
		t.Fatalf("inventory as infrastructure: %v", err)
	}
	logw := io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	l := &skrLab{dir: dir, inv: inv, inf: inf, dbPath: filepath.Join(t.TempDir(), "sks.db"),
		log: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})), listen: spec.Controller}
	l.st, err = store.Open(l.dbPath, store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	l.acc = &acceptor{ln: ln}
	go l.acc.loop()
	t.Cleanup(func() {
		l.acc.stop()
		l.st.Close()
	})
	startSksInstance(t, l)
	return l
}

// startSksInstance starts Skyvisor (controller sessions and a Hypervisor
// with the audit off) over l's store, makes it the instance that gets new
// connections and waits until every bridge is connected.
func startSksInstance(t *testing.T, l *skrLab) {
	t.Helper()
	rec := &upRecorder{ups: map[controller.DPID]int{}}
	h, err := hypervisor.New(hypervisor.Config{Infra: l.inf, Store: l.st, Logger: l.log, AuditInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(controller.Config{Listen: l.listen, Logger: l.log}, h, rec)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{h: h, rec: rec, c: c}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		if err := h.Run(in.ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	l.acc.mu.Lock()
	l.acc.cur = in
	l.acc.mu.Unlock()
	l.inst = in
	l.waitConnected(t, in, 45*time.Second)
}

// apiClient serves h's REST API and returns a client with its token.
func apiClient(t *testing.T, h *hypervisor.Hypervisor) *api.Client {
	t.Helper()
	srv := httptest.NewServer(api.NewHandler(h, api.Options{Token: "sks-token"}))
	t.Cleanup(srv.Close)
	cl, err := api.NewClient(srv.URL, "sks-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// vmBridge returns the inventory entry of site's VM bridge.
func (l *skrLab) vmBridge(t *testing.T, site string) lab.SwitchInfo {
	t.Helper()
	for _, sw := range l.inv.Switches {
		if sw.Site == site && sw.Role == "vm" {
			return sw
		}
	}
	t.Fatalf("no VM bridge in site %s", site)
	return lab.SwitchInfo{}
}

func flowKey(f *snapshot.Flow) string {
	return fmt.Sprintf("%d/%d/%x/%x", f.Table, f.Priority, f.Cookie, f.Match)
}

// TestSnapshotRestoreLab is the snapshot/restore round trip on real Open
// vSwitch, over the REST API: a tenant with hosts in two clouds pings;
// a tenant app's entry with idle and hard timeouts is on the aws VM
// bridge, a QoS with a queue on h1's port; the tenant snapshot holds both VM bridges with only the tenant's
// entries (counters, timeouts) and their OVSDB configuration; aws's
// ovs-vswitchd is killed, its VM bridge deleted (hosts' port and uplink
// gone) and a fresh ovs-vswitchd started (empty flow tables); pings fail;
// the restore rebuilds the bridge, its ports and entries; pings work
// again; the hypervisor reports counters at least the snapshot's for the
// restored entries and the timeouts as captured, also after a restart of
// Skyvisor; a reconcile changes nothing and keeps the tenant app's entry;
// a second restore is a no-op.
// Then a switch snapshot of gcp's VM bridge restores it after it was
// deleted (ovs-vsctl del-br, ovs-vswitchd running).
func TestSnapshotRestoreLab(t *testing.T) {
	l := startSksLab(t)
	ctx := context.Background()
	h := l.inst.h
	hs := []skrHost{
		{lab: "sa", name: "h1", cloud: "aws", ip: "10.0.0.1", mac: "00:00:00:00:0a:01", port: 1},
		{lab: "sg", name: "h2", cloud: "gcp", ip: "10.0.0.2", mac: "00:00:00:00:0a:02", port: 2},
	}
	l.tenant(t, "acme", hs)
	l.allPairs(t, hs)

	cl := apiClient(t, h)
	d, err := h.Tenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	tid := d.TenantID
	aws, gcp := l.vmBridge(t, "aws"), l.vmBridge(t, "gcp")

	// A tenant app's entry (as a tenant controller would install it) with
	// timeouts; the hypervisor does not compile it.
	appCookie := pipeline.TenantCookie(tid, 0xabc)
	siteCmd(t, l.dir, "aws", "ovs-ofctl", "-O", "OpenFlow13", "add-flow", aws.Bridge,
		fmt.Sprintf("table=10,priority=7,cookie=0x%x,dl_type=0x88b5,idle_timeout=600,hard_timeout=900,actions=drop", appCookie))

	// A queue on h1's port (QoS with one queue), as an operator would set it.
	hostPort := lab.HostPort("sa")
	siteCmd(t, l.dir, "aws", "ovs-vsctl", "set", "Port", hostPort, "qos=@q", "--", "--id=@q", "create", "QoS", "type=linux-htb",
		"other-config:max-rate=900000000", "queues:1=@q1", "--", "--id=@q1", "create", "Queue", "other-config:max-rate=500000000")

	// Snapshot the tenant over REST.
	t0 := time.Now()
	info, err := cl.CreateSnapshot(ctx, api.SnapshotRequest{Tenant: "acme"})
	if err != nil {
		t.Fatalf("create snapshot: %v", err)
	}
	takeTime := time.Since(t0)
	snap, err := cl.Snapshot(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Switches) != 2 || info.Tenant != "acme" || info.Flows == 0 {
		t.Fatalf("snapshot %+v: want 2 bridges of tenant acme with flows", info)
	}
	var awsSnap *snapshot.SwitchState
	for i := range snap.Switches {
		st := &snap.Switches[i]
		for _, f := range st.Flows {
			if pipeline.IsInfraCookie(f.Cookie) && addr.TenantID(f.Cookie>>32) != tid || !pipeline.IsInfraCookie(f.Cookie) && addr.TenantID(f.Cookie>>48) != tid {
				t.Errorf("bridge %s: entry %s is not tenant acme's", st.Bridge.Name, f.Name())
			}
		}
		if st.DPID == aws.DPIDHex {
			awsSnap = st
		}
	}
	if awsSnap == nil {
		t.Fatalf("no snapshot of %s in %v", aws.Bridge, info.Bridges)
	}
	var counted, app []snapshot.Flow
	for _, f := range awsSnap.Flows {
		if f.PacketCount > 0 {
			counted = append(counted, f)
		}
		if f.Cookie == appCookie {
			app = append(app, f)
		}
	}
	if len(counted) == 0 {
		t.Fatalf("no aws entry of the tenant counted packets: %+v", awsSnap.Flows)
	}
	if len(app) != 1 || app[0].IdleTimeout != 600 || app[0].HardTimeout != 900 {
		t.Fatalf("tenant app entry in the snapshot: %+v", app)
	}
	bc := awsSnap.Bridge
	var hostBound, uplink bool
	for _, p := range bc.Ports {
		for _, in := range p.Interfaces {
			hostBound = hostBound || in.ExternalIDs["iface-id"] == "acme/h1" && in.OFPort > 0
			uplink = uplink || in.Type == "patch" && in.Options["peer"] != ""
		}
	}
	for _, p := range bc.Ports {
		if p.Name == hostPort && (p.QoS == nil || p.QoS.Type != "linux-htb" || p.QoS.Queues[1].OtherConfig["max-rate"] != "500000000") {
			t.Errorf("QoS of %s in the snapshot: %+v", hostPort, p.QoS)
		}
	}
	if bc.FailMode != "secure" || len(bc.Controllers) == 0 || bc.DatapathID != aws.DPIDHex || !hostBound || !uplink {
		t.Fatalf("aws bridge config %+v: want fail mode secure, a controller, DPID %s, host port acme/h1 and the patch uplink", bc, aws.DPIDHex)
	}

	// A switch snapshot holds every entry (the hypervisor's shared ones
	// too); list and delete it.
	swInfo, err := cl.CreateSnapshot(ctx, api.SnapshotRequest{Switch: aws.DPIDHex})
	if err != nil || swInfo.Tenant != "" || swInfo.Flows <= len(awsSnap.Flows) {
		t.Fatalf("switch snapshot %+v (%v): want more entries than the tenant's %d", swInfo, err, len(awsSnap.Flows))
	}
	if l, err := cl.Snapshots(ctx); err != nil || len(l) != 2 {
		t.Fatalf("list: %+v %v", l, err)
	}
	if err := cl.DeleteSnapshot(ctx, swInfo.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Snapshot(ctx, swInfo.ID); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("deleted snapshot: %v, want not found", err)
	}

	// aws's VM is "stopped and restarted": ovs-vswitchd killed, the VM
	// bridge deleted, a fresh ovs-vswitchd with empty flow tables.
	if err := lab.Kill(ctx, l.dir, "aws", lab.VSwitchd); err != nil {
		t.Fatal(err)
	}
	siteCmd(t, l.dir, "aws", "ovs-vsctl", "--no-wait", "del-br", aws.Bridge)
	if _, err := lab.Start(ctx, l.dir, "aws", lab.VSwitchd); err != nil {
		t.Fatal(err)
	}
	if br := siteCmd(t, l.dir, "aws", "ovs-vsctl", "list-br"); strings.Contains(br, aws.Bridge) {
		t.Fatalf("bridge %s still there: %s", aws.Bridge, br)
	}
	poll(t, "binding of acme/h1 dropped", 15*time.Second, func() bool {
		_, err := l.st.GetBinding("acme/h1")
		return errors.Is(err, store.ErrNotFound)
	})
	if pingOnce(l.dir, "sa", "10.0.0.2") {
		t.Fatal("h1 -> h2 pings with aws's VM bridge deleted")
	}

	// Restore over REST.
	t0 = time.Now()
	res, err := cl.RestoreSnapshot(ctx, info.ID)
	restoreTime := time.Since(t0)
	if err != nil {
		dumpFlows(t, l.dir, l.inv)
		t.Fatalf("restore: %v (%+v)", err, res)
	}
	if len(res.Switches) != 2 || res.Adopted != 1 || res.CounterOffsets == 0 {
		t.Fatalf("restore result %+v: want 2 switches, 1 adopted entry, counter offsets", res)
	}
	for _, s := range res.Switches {
		if !s.Done {
			t.Errorf("switch %s not done: %+v", s.Bridge, s)
		}
		if s.DPID == aws.DPIDHex && (s.Config == "no change" || s.FlowsAdded == 0 && s.FlowsKept == 0) {
			t.Errorf("aws bridge %+v: want its configuration re-created and its entries restored", s)
		}
	}
	if len(res.Skipped) != 0 {
		t.Errorf("skipped entries: %+v", res.Skipped)
	}
	t.Logf("snapshot %s: %d bridges, %d entries, %d bytes; take %v, restore %v (took_ms %.0f), %d counter offsets",
		info.ID, len(info.Bridges), info.Flows, info.Size, takeTime, restoreTime, res.TookMS, res.CounterOffsets)

	// The tenant's traffic works again.
	l.allPairs(t, hs)
	// The re-created port has a QoS whose queue 1 has the captured rate
	// (QoS and Queue rows are roots: the old ones outlive the port).
	if qos := siteCmd(t, l.dir, "aws", "ovs-vsctl", "get", "Port", hostPort, "qos"); qos == "[]" {
		t.Errorf("port %s has no QoS after the restore", hostPort)
	} else if q1 := siteCmd(t, l.dir, "aws", "ovs-vsctl", "get", "QoS", qos, "queues:1"); q1 == "" {
		t.Errorf("QoS %s of %s has no queue 1", qos, hostPort)
	} else if rate := siteCmd(t, l.dir, "aws", "ovs-vsctl", "get", "Queue", q1, "other_config:max-rate"); rate != `"500000000"` {
		t.Errorf("queue 1 of %s: max-rate %s, want \"500000000\"", hostPort, rate)
	}

	// The statistics the hypervisor reports: at least the snapshot's
	// counters for every restored entry; timeouts as snapshotted.
	fl, err := cl.Flows(ctx, aws.DPIDHex, "acme")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]api.FlowStat{}
	for _, f := range fl.Flows {
		got[flowKey(&f.Flow)] = f
	}
	for _, f := range counted {
		g, ok := got[flowKey(&f)]
		switch {
		case !ok:
			t.Errorf("entry %s not reported after the restore", f.Name())
		case g.PacketCount < f.PacketCount || g.ByteCount < f.ByteCount || !g.CountersRestored:
			t.Errorf("entry %s: reported %d packets, %d bytes (restored %v); snapshot had %d, %d",
				f.Name(), g.PacketCount, g.ByteCount, g.CountersRestored, f.PacketCount, f.ByteCount)
		}
	}
	if g, ok := got[flowKey(&app[0])]; !ok || g.IdleTimeout != 600 || g.HardTimeout != 900 {
		t.Errorf("tenant app entry after the restore: %+v (present %v), want idle 600 hard 900", g, ok)
	}
	dump := siteCmd(t, l.dir, "aws", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", aws.Bridge, fmt.Sprintf("cookie=0x%x/-1", appCookie))
	if !strings.Contains(dump, "idle_timeout=600") || !strings.Contains(dump, "hard_timeout=900") {
		t.Errorf("tenant app entry on the switch:\n%s", dump)
	}
	// The gcp bridge was not restarted: its entries are older than the
	// snapshot and already count what it counted, so no offset there.
	if fg, err := cl.Flows(ctx, gcp.DPIDHex, "acme"); err != nil {
		t.Fatal(err)
	} else {
		for _, f := range fg.Flows {
			if f.CountersRestored {
				t.Errorf("gcp entry %s got a counter offset although it was never lost", f.Name())
			}
		}
	}

	// Skyvisor restarts (switches keep their tables): the offsets and the
	// adopted entry come back from the store.
	l.acc.stopCurrent()
	startSksInstance(t, l)
	h = l.inst.h
	cl = apiClient(t, h)
	fl, err = cl.Flows(ctx, aws.DPIDHex, "acme")
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]api.FlowStat{}
	for _, f := range fl.Flows {
		got[flowKey(&f.Flow)] = f
	}
	for _, f := range counted {
		if g := got[flowKey(&f)]; g.PacketCount < f.PacketCount || !g.CountersRestored {
			t.Errorf("after a Skyvisor restart, entry %s: reported %d packets (restored %v); snapshot had %d",
				f.Name(), g.PacketCount, g.CountersRestored, f.PacketCount)
		}
	}

	// The reconciler agrees: nothing to add or delete, the app entry stays.
	plans, err := h.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for dp, p := range plans {
		if !p.Empty() {
			t.Errorf("reconcile after restore on %016x: %d adds, %d deletes", dp, len(p.Add), len(p.Delete))
		}
	}
	dump = siteCmd(t, l.dir, "aws", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", aws.Bridge, fmt.Sprintf("cookie=0x%x/-1", appCookie))
	if !strings.Contains(dump, "hard_timeout=900") {
		t.Errorf("tenant app entry gone after a reconcile:\n%s", dump)
	}

	// Restoring again changes nothing.
	res2, err := cl.RestoreSnapshot(ctx, info.ID)
	if err != nil {
		t.Fatalf("second restore: %v", err)
	}
	for _, s := range res2.Switches {
		if !s.Done || s.FlowsAdded != 0 {
			t.Errorf("second restore, %s: %+v, want done with nothing added", s.Bridge, s)
		}
	}

	// A switch snapshot (every entry, the hypervisor's shared ones too)
	// brings back gcp's VM bridge after it was deleted.
	l.allPairs(t, hs)
	gInfo, err := cl.CreateSnapshot(ctx, api.SnapshotRequest{Switch: gcp.DPIDHex})
	if err != nil {
		t.Fatal(err)
	}
	gSnap, err := cl.Snapshot(ctx, gInfo.ID)
	if err != nil {
		t.Fatal(err)
	}
	siteCmd(t, l.dir, "gcp", "ovs-vsctl", "del-br", gcp.Bridge)
	poll(t, "binding of acme/h2 dropped", 15*time.Second, func() bool {
		_, err := l.st.GetBinding("acme/h2")
		return errors.Is(err, store.ErrNotFound)
	})
	if pingOnce(l.dir, "sg", "10.0.0.1") {
		t.Fatal("h2 -> h1 pings with gcp's VM bridge deleted")
	}
	gRes, err := cl.RestoreSnapshot(ctx, gInfo.ID)
	if err != nil || len(gRes.Switches) != 1 || !gRes.Switches[0].Done || len(gRes.Skipped) != 0 {
		t.Fatalf("restore of switch snapshot: %+v %v", gRes, err)
	}
	l.allPairs(t, hs)
	gfl, err := cl.Flows(ctx, gcp.DPIDHex, "")
	if err != nil {
		t.Fatal(err)
	}
	gGot := map[string]api.FlowStat{}
	for _, f := range gfl.Flows {
		gGot[flowKey(&f.Flow)] = f
	}
	for _, f := range gSnap.Switches[0].Flows {
		if g, ok := gGot[flowKey(&f)]; !ok || g.PacketCount < f.PacketCount {
			t.Errorf("gcp entry %s after the switch restore: %+v (present %v), snapshot counted %d", f.Name(), g.PacketCount, ok, f.PacketCount)
		}
	}
	if len(gfl.Flows) != len(gSnap.Switches[0].Flows) {
		t.Errorf("gcp bridge has %d entries after the restore, the snapshot %d", len(gfl.Flows), len(gSnap.Switches[0].Flows))
	}
}
