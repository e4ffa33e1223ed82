//go:build integration

package snapshot

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/internal/ovstest"
)

const (
	itBridge = "sknbr0"
	itDPID   = 0xb1
	// itCtl is the controller target, relative to each instance's
	// OVS_RUNDIR (ovs-vswitchd accepts unix: targets only there); a
	// symlink in each instance points at the controller's socket, so the
	// same target string works on the original and the fresh OVS.
	itCtl = "unix:skn.sock"
)

// itHost is a host namespace with a veth whose other end (named like the
// host) is in the OVS instance's namespace.
type itHost struct{ name, mac, ip string }

var itHosts = []itHost{{"skn-h1", "02:00:00:00:0b:01", "10.77.0.1"}, {"skn-h2", "02:00:00:00:0b:02", "10.77.0.2"}}

func itRun(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// plugHosts makes the hosts' namespaces and veths into inst's namespace
// without adding them to any bridge (a VM restarted on a fresh OVS: the
// restore adds the ports).
func plugHosts(t *testing.T, inst *ovstest.Instance) {
	for _, h := range itHosts {
		_ = exec.Command("ip", "netns", "del", h.name).Run()
		itRun(t, "ip", "netns", "add", h.name)
		name := h.name
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
		itRun(t, "ip", "link", "add", h.name, "netns", inst.NetNS, "type", "veth", "peer", "name", "eth0", "netns", h.name)
		itRun(t, "ip", "netns", "exec", h.name, "ethtool", "-K", "eth0", "tx", "off")
		itRun(t, "ip", "netns", "exec", inst.NetNS, "ethtool", "-K", h.name, "tx", "off")
		itRun(t, "ip", "netns", "exec", h.name, "ip", "link", "set", "eth0", "address", h.mac)
		itRun(t, "ip", "netns", "exec", h.name, "ip", "addr", "add", h.ip+"/24", "dev", "eth0")
		itRun(t, "ip", "netns", "exec", h.name, "ip", "link", "set", "eth0", "up")
		itRun(t, "ip", "netns", "exec", inst.NetNS, "ip", "link", "set", h.name, "up")
	}
}

func linkController(t *testing.T, inst *ovstest.Instance, sock string) {
	if err := os.Symlink(sock, filepath.Join(inst.Dir, "run", "skn.sock")); err != nil {
		t.Fatal(err)
	}
}

func ping(from, to itHost, tries int) error {
	var err error
	for i := 0; i < tries; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = ovstest.HostExec(ctx, from.name, "ping", "-q", "-n", "-c", "1", "-W", "1", to.ip)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// TestSnapshotRestoreOnFreshOVS captures a bridge (two hosts, flows with a
// Nicira resubmit and timeouts, custom port numbers, a controller, QoS with
// a queue) through a real controller session and OVSDB, destroys the OVS,
// starts a fresh one with nothing configured, restores, and checks flows,
// ports, controller, QoS, counters (via offsets) and traffic.
func TestSnapshotRestoreOnFreshOVS(t *testing.T) {
	if why := ovstest.Available(); why != "" {
		t.Skip(why)
	}
	ctlDir, err := os.MkdirTemp("", "skn-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ctlDir) })
	sock := filepath.Join(ctlDir, "c.sock")
	ctl, _ := controllertest.Start(t, controller.Config{Listen: "unix:" + sock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	// The current OVS; the Service's Targets resolve to it.
	var endpoint string
	svc := &Service{Store: st, Targets: func(ctx context.Context, tenant string, refs []Ref) ([]Target, error) {
		db, err := DialOVSDB(ctx, endpoint, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			return nil, err
		}
		t.Cleanup(db.Close)
		return []Target{{Bridge: itBridge, Config: db, Connect: WaitSwitch(ctl)}}, nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var snapID string
	var snap *Snapshot
	t.Run("original", func(t *testing.T) {
		inst := ovstest.Start(t, "skn-a")
		endpoint = inst.DBEndpoint()
		linkController(t, inst, sock)
		inst.AddBridge(t, itBridge, "other_config:datapath-id=00000000000000b1")
		plugHosts(t, inst)
		for i, h := range itHosts {
			if _, err := inst.Vsctl("add-port", itBridge, h.name, "--", "set", "Interface", h.name,
				"ofport_request="+[]string{"11", "12"}[i], "external_ids:iface-id=acme/"+h.name); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := inst.Vsctl("set", "Port", "skn-h1", "qos=@q", "--", "--id=@q", "create", "QoS", "type=linux-htb",
			"other_config:max-rate=900000000", "queues:1=@q1", "--", "--id=@q1", "create", "Queue",
			"other_config:max-rate=500000000"); err != nil {
			t.Fatal(err)
		}
		if _, err := inst.Vsctl("set-controller", itBridge, itCtl, "--", "set", "Controller", itBridge,
			"connection-mode=out-of-band"); err != nil {
			t.Fatal(err)
		}
		sw, err := WaitSwitch(ctl)(ctx, itDPID)
		if err != nil {
			t.Fatal(err)
		}
		flows := []pipeline.Entry{
			{Table: 0, Priority: 100, Cookie: 0x5359000000000011, IdleTimeout: 3000, HardTimeout: 6000,
				Match: []ofp.XM{pipeline.InPort(11)}, Instructions: ofp.Instructions{pipeline.Apply(pipeline.Resubmit(1))}},
			{Table: 0, Priority: 100, Cookie: 0x5359000000000012, Flags: ofp.FlowFlagSendFlowRem,
				Match: []ofp.XM{pipeline.InPort(12)}, Instructions: ofp.Instructions{pipeline.Goto(1)}},
			{Table: 1, Priority: 10, Cookie: 0x21, Match: []ofp.XM{pipeline.InPort(11)},
				Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(12))}},
			{Table: 1, Priority: 10, Cookie: 0x22, Match: []ofp.XM{pipeline.InPort(12)},
				Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(11))}},
		}
		if err := reconcile.Apply(ctx, sw, reconcile.Plan{Add: flows}); err != nil {
			t.Fatal(err)
		}
		if err := ping(itHosts[0], itHosts[1], 10); err != nil {
			t.Fatalf("ping before snapshot: %v", err)
		}
		in, err := svc.Create(ctx, "acme", nil)
		if err != nil {
			t.Fatal(err)
		}
		snapID = in.ID
		if in.Flows != 4 {
			t.Errorf("snapshot has %d flows, want 4", in.Flows)
		}
		if snap, err = svc.Get(snapID); err != nil {
			t.Fatal(err)
		}
		// The destruction of this subtest's OVS and hosts follows.
	})
	if t.Failed() {
		return
	}
	s0 := &snap.Switches[0]
	var counted uint64
	for _, f := range s0.Flows {
		counted += f.PacketCount
	}
	if counted == 0 {
		t.Error("snapshot counters are all zero after a ping")
	}
	var resubmit, timeouts bool
	for _, f := range s0.Flows {
		resubmit = resubmit || strings.Contains(f.Text, "resubmit(,1)")
		timeouts = timeouts || f.IdleTimeout == 3000 && f.HardTimeout == 6000
	}
	if !resubmit || !timeouts || len(s0.Flows) != 4 {
		t.Errorf("captured flows lack the resubmit action or the timeouts: %+v", s0.Flows)
	}

	inst := ovstest.Start(t, "skn-b")
	endpoint = inst.DBEndpoint()
	linkController(t, inst, sock)
	plugHosts(t, inst)
	if out, _ := inst.Vsctl("list-br"); strings.TrimSpace(out) != "" {
		t.Fatalf("fresh OVS has bridges: %q", out)
	}
	if err := ping(itHosts[0], itHosts[1], 1); err == nil {
		t.Fatal("hosts ping without any bridge")
	}
	rep, err := svc.Restore(ctx, snapID, RestoreOptions{})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	t.Logf("restore: %s", rep.String())
	if !rep.Switches[0].Done || rep.Switches[0].FlowsAdded != 4 {
		t.Errorf("report %s", rep.String())
	}

	db, err := DialOVSDB(ctx, endpoint, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bc, err := db.ReadBridge(ctx, itBridge)
	if err != nil {
		t.Fatal(err)
	}
	if bc.DatapathID != "00000000000000b1" || bc.FailMode != "secure" || bc.DatapathType != "netdev" {
		t.Errorf("bridge %+v", bc)
	}
	if len(bc.Controllers) != 1 || bc.Controllers[0].Target != itCtl || bc.Controllers[0].ConnectionMode != "out-of-band" {
		t.Errorf("controllers %+v", bc.Controllers)
	}
	ports := map[string]PortConfig{}
	for _, p := range bc.Ports {
		ports[p.Name] = p
	}
	for i, h := range itHosts {
		p := ports[h.name]
		if len(p.Interfaces) != 1 || p.Interfaces[0].OFPort != 11+i || p.Interfaces[0].ExternalIDs["iface-id"] != "acme/"+h.name {
			t.Errorf("port %s: %+v", h.name, p)
		}
	}
	if q := ports["skn-h1"].QoS; q == nil || q.Type != "linux-htb" || q.Queues[1].OtherConfig["max-rate"] != "500000000" {
		t.Errorf("qos of skn-h1: %+v", q)
	}

	sw, err := WaitSwitch(ctl)(ctx, itDPID)
	if err != nil {
		t.Fatal(err)
	}
	actual, err := sw.FlowStats(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []pipeline.Entry
	for _, f := range s0.Flows {
		e, _ := f.Entry()
		want = append(want, e)
	}
	if d, err := reconcile.Diff(want, actual, reconcile.Options{Owns: func(uint64) bool { return true }}); err != nil || !d.Empty() {
		t.Errorf("restored table differs: %v add %v delete %v", err, d.Add, d.Delete)
	}
	if err := ping(itHosts[0], itHosts[1], 10); err != nil {
		t.Fatalf("ping after restore: %v", err)
	}
	cont, err := svc.Offsets(itDPID).Stats(ctx, itDPID, sw)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range s0.Flows {
		found := false
		for _, c := range cont {
			e := pipeline.FromFlowStats(&c)
			ce, _ := f.Entry()
			if e.Key() == ce.Key() && c.Cookie == f.Cookie {
				found = true
				if c.PacketCount < f.PacketCount || c.ByteCount < f.ByteCount || c.DurationSec < f.DurationSec {
					t.Errorf("flow %s: continuous counters %d pkts %d bytes %d s below snapshot %d/%d/%d",
						f.Text, c.PacketCount, c.ByteCount, c.DurationSec, f.PacketCount, f.ByteCount, f.DurationSec)
				}
			}
		}
		if !found {
			t.Errorf("flow %s missing from continuous stats", f.Text)
		}
	}
	// Restoring again is a no-op that still verifies.
	rep, err = svc.Restore(ctx, snapID, RestoreOptions{})
	if err != nil || rep.Switches[0].FlowsAdded != 0 || rep.Switches[0].Config != "no change" {
		t.Errorf("second restore: %v %s", err, rep.String())
	}
}

// TestRestoreFailureRollsBackOnRealOVS restores a snapshot whose last flow
// the switch refuses (output to a group that does not exist) onto a fresh
// OVS: the error names the bridge, and the flow table is empty again.
func TestRestoreFailureRollsBackOnRealOVS(t *testing.T) {
	if why := ovstest.Available(); why != "" {
		t.Skip(why)
	}
	ctlDir, err := os.MkdirTemp("", "skn-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ctlDir) })
	sock := filepath.Join(ctlDir, "c.sock")
	ctl, _ := controllertest.Start(t, controller.Config{Listen: "unix:" + sock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	inst := ovstest.Start(t, "skn-c")
	linkController(t, inst, sock)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := DialOVSDB(ctx, inst.DBEndpoint(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	good, _ := FlowFromEntry(pipeline.Entry{Table: 0, Priority: 20, Cookie: 5,
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Resubmit(1))}})
	bad, _ := FlowFromEntry(pipeline.Entry{Table: 0, Priority: 10, Cookie: 6,
		Instructions: ofp.Instructions{pipeline.Apply(&ofp.ActionGroup{Group: 77})}})
	snap := &Snapshot{Version: FormatVersion, ID: NewID(time.Now()), Switches: []SwitchState{{
		DPID: "00000000000000c1",
		Bridge: BridgeConfig{Name: "sknbr1", DatapathID: "00000000000000c1", DatapathType: "netdev",
			Protocols: []string{"OpenFlow13"}, FailMode: "secure",
			Controllers: []ControllerConfig{{Target: itCtl, ConnectionMode: "out-of-band"}}},
		Flows: []Flow{good, bad},
	}}}
	rep, err := Restore(ctx, snap, []Target{{Bridge: "sknbr1", Config: db, Connect: WaitSwitch(ctl)}}, RestoreOptions{})
	if err == nil {
		t.Fatal("restore with an invalid group succeeded")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "sknbr1") || !strings.Contains(err.Error(), "priority=10") || !rep.Switches[0].RolledBack || !strings.Contains(rep.Switches[0].Config, "create bridge") {
		t.Errorf("err %v, report %s", err, rep.String())
	}
	sw, err := WaitSwitch(ctl)(ctx, 0xc1)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := sw.FlowStats(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Errorf("flow table after failed restore has %d entries, want 0", len(fs))
	}
}
