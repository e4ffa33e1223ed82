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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

func needLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the lab needs root (network namespaces, veths)")
	}
	for _, b := range []string{"ip", "ethtool", "ping", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "tc"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install openvswitch-switch iproute2 ethtool)", b)
		}
	}
}

// upRecorder records SwitchUp per DPID.
type upRecorder struct {
	mu  sync.Mutex
	ups map[controller.DPID]int
}

func (r *upRecorder) Name() string { return "skg-up" }

func (r *upRecorder) SwitchUp(_ context.Context, sw *controller.Switch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ups[sw.DPID()]++
}

func (r *upRecorder) has(d controller.DPID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ups[d] > 0
}

func poll(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestThreeSiteLab brings up a 3-site lab (testbed/lab, prefix "skg<pid>")
// whose bridges point at a unix controller socket, feeds its inventory to
// a Hypervisor running as a controller app and asserts, on real Open
// vSwitch: every bridge of the inventory connects (SwitchUp); the gateways
// hold exactly the MST's 2 tunnels (ovs-vsctl); a second Converge sends no
// OVSDB transaction and a forced reconcile of every switch is empty;
// plugging hosts with iface-id "<tenant>/<host>" creates their bindings;
// two tenants (examples/two-tenants.json, overlapping IPs) ping within
// each tenant across clouds; deleting a tenant removes its flow entries
// everywhere and its hosts stop reaching each other while the other
// tenant still pings.
func TestThreeSiteLab(t *testing.T) {
	needLab(t)
	prefix := fmt.Sprintf("skg%d", os.Getpid()%1000)
	dir := filepath.Join(t.TempDir(), "lab")
	spec, err := lab.Parse([]byte(fmt.Sprintf(`{"prefix":%q,"state_dir":%q,"tunnel_type":"vxlan",
		"sites":[{"name":"aws","vms":1},{"name":"gcp","vms":1},{"name":"azure","vms":["web"]}]}`, prefix, dir)))
	if err != nil {
		t.Fatal(err)
	}
	// Listen on the lab's controller socket before the lab comes up, so
	// the bridges connect at once.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := strings.TrimPrefix(spec.Controller, "unix:")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	upCtx, upCancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer upCancel()
	inv, err := lab.Up(upCtx, spec)
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), dir); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	invJSON, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	infraFile := filepath.Join(t.TempDir(), "inventory.json")
	if err := os.WriteFile(infraFile, invJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	inf, err := infra.Load(infraFile)
	if err != nil {
		t.Fatalf("inventory as infrastructure: %v", err)
	}

	st, err := store.Open(filepath.Join(t.TempDir(), "skg.db"), store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logw := io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h, err := hypervisor.New(hypervisor.Config{Infra: inf, Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rec := &upRecorder{ups: map[controller.DPID]int{}}
	c, err := controller.New(controller.Config{Listen: spec.Controller, Logger: log}, h, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		ln.Close()
		wg.Wait()
	}()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.ServeConn(ctx, conn)
			}()
		}
	}()
	go func() {
		defer wg.Done()
		if err := h.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// 1. Every bridge of the inventory connects.
	poll(t, "SwitchUp of every inventory DPID", 45*time.Second, func() bool {
		for _, sw := range inv.Switches {
			if !rec.has(controller.DPID(sw.DPID)) {
				return false
			}
		}
		return true
	})
	// 2. The MST's tunnels exist on the gateways.
	poll(t, "tunnels provisioned", 30*time.Second, func() bool {
		for _, c := range h.Health(ctx).Checks {
			if c.Name == "tunnels" && c.Status != api.HealthOK {
				return false
			}
		}
		return true
	})
	if p := h.Plan(); p.Len() != 2 {
		t.Fatalf("plan %v, want 2 tunnels for 3 sites", p)
	}
	total := 0
	for _, s := range inv.Sites {
		out := siteCmd(t, dir, s.Name, "ovs-vsctl", "--bare", "--columns=name", "find", "Interface", "type=vxlan")
		n := len(strings.Fields(out))
		if n != len(h.Plan().Peers(s.Name)) {
			t.Errorf("site %s: %d vxlan ports (%q), want %d", s.Name, n, out, len(h.Plan().Peers(s.Name)))
		}
		total += n
	}
	if total != 4 {
		t.Errorf("%d tunnel ports on the gateways, want 4 (2 tunnels)", total)
	}
	// 3. Converging again sends no OVSDB transaction; reconciling every
	// switch again changes nothing.
	before := h.OVSDBTransactions()
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	if after := h.OVSDBTransactions(); after != before {
		t.Errorf("second Converge sent %d OVSDB transactions, want 0", after-before)
	}
	resync(t, ctx, h, len(inv.Switches))

	// 4. Tenants, then hosts plugged with their iface-ids.
	doc, err := os.ReadFile("../examples/two-tenants.json")
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := h.Infra(ctx)
	ts, err := topology.Load(doc, ti)
	if err != nil {
		t.Fatal(err)
	}
	// The lab refuses two hosts with one MAC: give tenant2 its own MACs
	// (its IPs still overlap tenant1's).
	for i := range ts[1].Hosts {
		ts[1].Hosts[i].MAC = fmt.Sprintf("00:00:00:00:02:%02x", i+1)
	}
	if _, err := h.ApplyTenants(ctx, ts); err != nil {
		t.Fatal(err)
	}
	vmOf := map[string]string{"aws": "vm1", "gcp": "vm1", "azure": "web"}
	for ti, tp := range ts {
		for _, hst := range tp.Hosts {
			name := fmt.Sprintf("t%d%s", ti+1, hst.Name)
			_, err := lab.Plug(ctx, dir, lab.HostSpec{Name: name, Site: hst.Cloud, VM: vmOf[hst.Cloud], MAC: hst.MAC, IP: hst.IP,
				IfaceID: topology.IfaceID(tp.Tenant, hst.Name)})
			if err != nil {
				t.Fatalf("plug %s: %v", name, err)
			}
		}
	}
	poll(t, "6 bindings", 20*time.Second, func() bool {
		bs, err := st.Bindings()
		return err == nil && len(bs) == 6
	})
	b, err := st.GetBinding("tenant1/h2")
	if err != nil || b.Site != "gcp" || b.VM != "vm1" || b.OFPort == 0 || uint64(b.DPID) != inf.VMs("gcp")[0].DPID {
		t.Fatalf("binding of tenant1/h2: %+v %v", b, err)
	}
	poll(t, "both tenants active", 20*time.Second, func() bool {
		list, err := h.Tenants(ctx)
		if err != nil || len(list) != 2 {
			return false
		}
		for _, s := range list {
			if s.State != api.TenantActive {
				return false
			}
		}
		return true
	})

	// 5. Pings within each tenant, across clouds.
	for _, tn := range []string{"t1", "t2"} {
		for _, dst := range []string{"10.0.0.2", "10.0.0.3"} {
			if err := ping(dir, tn+"h1", dst, 8); err != nil {
				dumpFlows(t, dir, inv)
				t.Fatalf("tenant %s: %v", tn, err)
			}
		}
		if err := ping(dir, tn+"h3", "10.0.0.2", 8); err != nil {
			t.Fatalf("tenant %s: %v", tn, err)
		}
	}
	resync(t, ctx, h, len(inv.Switches))

	// 6. Deleting tenant2 removes its entries everywhere; tenant1 still
	// pings, tenant2's hosts no longer reach each other.
	if err := h.DeleteTenant(ctx, "tenant2"); err != nil {
		t.Fatal(err)
	}
	for _, sw := range inv.Switches {
		dump := siteCmd(t, dir, sw.Site, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", sw.Bridge)
		if strings.Contains(dump, "cookie=0x201") || strings.Contains(dump, "cookie=0x53590201") {
			t.Errorf("%s/%s keeps entries of the deleted tenant:\n%s", sw.Site, sw.Bridge, dump)
		}
	}
	if err := ping(dir, "t1h1", "10.0.0.2", 5); err != nil {
		t.Errorf("tenant1 after deleting tenant2: %v", err)
	}
	if err := ping(dir, "t2h1", "10.0.0.2", 3); err == nil {
		t.Error("tenant2's hosts still reach each other after its deletion")
	}
	if _, err := h.Tenant(ctx, "tenant2"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("deleted tenant: %v", err)
	}
}

// resync reconciles every switch again and fails unless each of the n
// switches was reconciled with an empty plan.
func resync(t *testing.T, ctx context.Context, h *hypervisor.Hypervisor, n int) {
	t.Helper()
	plans, err := h.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != n {
		t.Errorf("resync reconciled %d switches, want %d", len(plans), n)
	}
	for d, p := range plans {
		if !p.Empty() {
			for _, e := range p.Add {
				t.Errorf("%#x: would add %s", d, e.String())
			}
			for _, e := range p.Delete {
				t.Errorf("%#x: would delete %s", d, e.String())
			}
		}
	}
}

func ping(dir, host, ip string, seconds int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+5)*time.Second)
	defer cancel()
	c, err := lab.HostCommand(ctx, dir, host, "ping", "-c", "2", "-i", "0.2", "-w", fmt.Sprint(seconds), ip)
	if err != nil {
		return err
	}
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s -> %s: %v\n%s", host, ip, err, out)
	}
	return nil
}

func siteCmd(t *testing.T, dir, site string, argv ...string) string {
	t.Helper()
	c, err := lab.SiteCommand(context.Background(), dir, site, argv...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", site, argv, err, out)
	}
	return strings.TrimSpace(string(out))
}

func dumpFlows(t *testing.T, dir string, inv *lab.Inventory) {
	for _, sw := range inv.Switches {
		c, err := lab.SiteCommand(context.Background(), dir, sw.Site, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", sw.Bridge)
		if err != nil {
			continue
		}
		out, _ := c.CombinedOutput()
		t.Logf("%s/%s:\n%s", sw.Site, sw.Bridge, out)
	}
}
