//go:build integration

package scale

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/internal/ovstest"
	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
)

// upApp records the switches that connect.
type upApp struct {
	mu  sync.Mutex
	sws map[controller.DPID]controller.Switch
}

func (a *upApp) Name() string { return "skscl-up" }

func (a *upApp) SwitchUp(_ context.Context, sw controller.Switch) {
	a.mu.Lock()
	a.sws[sw.DPID()] = sw
	a.mu.Unlock()
}

func (a *upApp) get(d controller.DPID) controller.Switch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sws[d]
}

// vswitchdRSS returns the resident set of the ovs-vswitchd running in
// namespace ns, in KiB (VmRSS of /proc/PID/status).
func vswitchdRSS(t *testing.T, ns string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", ns, err)
	}
	for _, p := range strings.Fields(string(out)) {
		comm, _ := os.ReadFile("/proc/" + p + "/comm")
		if strings.TrimSpace(string(comm)) != "ovs-vswitchd" {
			continue
		}
		st, err := os.ReadFile("/proc/" + p + "/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(st), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	t.Fatalf("no ovs-vswitchd in namespace %s", ns)
	return 0
}

// TestFullestBridgesFitRealOVS installs the desired entries of the fullest
// edge bridge and of the fullest gateway of the 1,000-tenant fabric
// (8 clouds x 4 VMs, 10 hosts per tenant on 2 linked virtual switches:
// about 34,000 and 12,000 entries) into one real Open vSwitch 3.1
// (userspace datapath) through the controller with reconcile.Sync, and
// checks that OVS holds exactly them: its flow count, and a second Sync
// reading the tables back with flow-stats finds nothing to change. It logs
// the install time, the in-sync reconcile time and ovs-vswitchd's resident
// memory before and after; with SCALE_OVS_CSV=<file> it also writes them
// as CSV (docs/results/scale-ovs.csv; with the load average before each
// install and the commit).
func TestFullestBridgesFitRealOVS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces for a private Open vSwitch)")
	}
	inst := ovstest.Start(t, "skscl-ovs")
	cfg := DefaultConfig()
	f, err := NewFabric(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := f.Tenants()
	if err != nil {
		t.Fatal(err)
	}
	m, views, err := f.Model(ts)
	if err != nil {
		t.Fatal(err)
	}
	desired, err := Desired(m, views)
	if err != nil {
		t.Fatal(err)
	}
	gateways := map[pipeline.DPID]bool{}
	for _, s := range f.Sites {
		gateways[s.Gateway.DPID] = true
	}
	var edge, gw pipeline.DPID
	for d, es := range desired {
		if gateways[d] {
			if len(es) > len(desired[gw]) {
				gw = d
			}
		} else if len(es) > len(desired[edge]) {
			edge = d
		}
	}

	app := &upApp{sws: map[controller.DPID]controller.Switch{}}
	sock := filepath.Join(inst.Dir, "run", "skscl.sock")
	controllertest.Start(t, controller.Config{Listen: "unix:" + sock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, app)
	bridges := []struct {
		name string
		dpid pipeline.DPID
	}{{"skscl-e", edge}, {"skscl-g", gw}}
	for _, b := range bridges {
		inst.AddBridge(t, b.name, fmt.Sprintf("other_config:datapath-id=%016x", uint64(b.dpid)))
		if _, err := inst.Vsctl("set-controller", b.name, "unix:"+sock, "--", "set", "Controller", b.name, "connection-mode=out-of-band"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for app.get(edge) == nil || app.get(gw) == nil {
		if time.Now().After(deadline) {
			t.Fatal("bridges did not connect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rss0 := vswitchdRSS(t, inst.NetNS)
	var rows []string
	for _, b := range bridges {
		sw := app.get(b.dpid)
		es := desired[b.dpid]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		load1 := runinfo.Load1()
		t0 := time.Now()
		p, err := reconcile.Sync(ctx, sw, es, reconcile.Options{})
		install := time.Since(t0)
		if err != nil {
			cancel()
			t.Fatalf("%s: install: %v", b.name, err)
		}
		if len(p.Add) != len(es) || len(p.Delete) != 0 {
			t.Fatalf("%s: install plan %d adds %d deletes, want %d adds", b.name, len(p.Add), len(p.Delete), len(es))
		}
		t0 = time.Now()
		p, err = reconcile.Sync(ctx, sw, es, reconcile.Options{})
		resync := time.Since(t0)
		cancel()
		if err != nil || !p.Empty() {
			t.Fatalf("%s: resync: %d adds %d deletes %v", b.name, len(p.Add), len(p.Delete), err)
		}
		out, err := inst.Ofctl("-O", "OpenFlow13", "dump-aggregate", b.name)
		if err != nil || !strings.Contains(out, fmt.Sprintf("flow_count=%d", len(es))) {
			t.Fatalf("%s: dump-aggregate: %q %v, want flow_count=%d", b.name, out, err, len(es))
		}
		rss := vswitchdRSS(t, inst.NetNS)
		t.Logf("%s (%s): %d entries installed in %v (%.0f entries/s), in-sync reconcile (flow-stats + diff) %v, ovs-vswitchd RSS %d KiB",
			b.name, b.dpid, len(es), install.Round(time.Millisecond), float64(len(es))/install.Seconds(), resync.Round(time.Millisecond), rss)
		rows = append(rows, fmt.Sprintf("%s,%d,%.1f,%.1f,%d,%d,%.2f,%s", map[bool]string{true: "gateway", false: "edge"}[gateways[b.dpid]],
			len(es), float64(install.Microseconds())/1000, float64(resync.Microseconds())/1000, rss0, rss, load1, runinfo.Commit()))
	}
	if path := os.Getenv("SCALE_OVS_CSV"); path != "" {
		body := "bridge,entries,install_ms,resync_ms,vswitchd_rss_before_kib,vswitchd_rss_after_kib,load1,commit\n" + strings.Join(rows, "\n") + "\n"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
