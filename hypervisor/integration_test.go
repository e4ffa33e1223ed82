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
	"slices"
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
	"github.com/skyvisor/skyvisor/tunnels"
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

// upRecorder records SwitchUp per DPID and counts the packet-ins it sees
// (registered after the hypervisor: it must see no tenant frame).
type upRecorder struct {
	mu        sync.Mutex
	ups       map[controller.DPID]int
	packetIns int
	tenant    []hypervisor.TenantPacketIn
}

func (r *upRecorder) PacketIn(_ context.Context, _ controller.Switch, ev *controller.PacketIn) controller.Disposition {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(ev.Data) < 14 || ev.Data[12] != 0x88 || ev.Data[13] != 0xcc {
		r.packetIns++
	}
	return controller.Continue
}

// tenantPacketIn is the Hypervisor's Config.TenantPacketIn.
func (r *upRecorder) tenantPacketIn(p hypervisor.TenantPacketIn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tenant = append(r.tenant, p)
}

// tenantEvents returns the tenant packet-ins received so far.
func (r *upRecorder) tenantEvents() []hypervisor.TenantPacketIn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.tenant)
}

func (r *upRecorder) nonLLDP() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packetIns
}

// acceptor accepts switch connections on the lab's controller socket and
// hands them to the current instance, so a test can restart Skyvisor
// (controller + hypervisor) while the socket stays.
type acceptor struct {
	ln  net.Listener
	mu  sync.Mutex
	cur *instance
	wg  sync.WaitGroup
}

// instance is one running Skyvisor: controller sessions and Hypervisor.Run.
type instance struct {
	h      *hypervisor.Hypervisor
	rec    *upRecorder
	c      *controller.Controller
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (a *acceptor) loop() {
	for {
		conn, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		in := a.cur
		if in == nil {
			a.mu.Unlock()
			conn.Close()
			continue
		}
		in.wg.Add(1)
		a.mu.Unlock()
		go func() {
			defer in.wg.Done()
			in.c.ServeConn(in.ctx, conn)
		}()
	}
}

// start builds a Hypervisor over inf and st with a controller and makes it
// the instance that gets new connections; opts adjust its Config.
func (a *acceptor) start(t *testing.T, inf *infra.Infra, st *store.Store, log *slog.Logger, listen string, opts ...func(*hypervisor.Config)) *instance {
	t.Helper()
	rec := &upRecorder{ups: map[controller.DPID]int{}}
	cfg := hypervisor.Config{Infra: inf, Store: st, Logger: log, AuditInterval: 500 * time.Millisecond,
		TenantPacketIn: rec.tenantPacketIn}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := hypervisor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(controller.Config{Listen: listen, Logger: log}, h, rec)
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
	a.mu.Lock()
	a.cur = in
	a.mu.Unlock()
	return in
}

// stopCurrent ends the current instance: sessions close (the switches keep
// their flow tables: fail_mode secure) and Run returns.
func (a *acceptor) stopCurrent() {
	a.mu.Lock()
	in := a.cur
	a.cur = nil
	a.mu.Unlock()
	if in != nil {
		in.cancel()
		in.wg.Wait()
	}
}

func (a *acceptor) stop() {
	a.stopCurrent()
	a.ln.Close()
}

func (r *upRecorder) Name() string { return "skg-up" }

func (r *upRecorder) SwitchUp(_ context.Context, sw controller.Switch) {
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
// each tenant across clouds; a host moved to another VM keeps pinging, one
// moved to another cloud pings again once its topology says so; a tenant
// without apps has its frames consumed by the hypervisor; a restarted
// Skyvisor leaves every flow table and OVSDB row as it was; the audit puts
// back a tunnel port and a flow entry deleted by hand; a tunnel marked
// down is replaced (Replan) and traffic takes the new path; deleting a
// tenant removes its flow entries everywhere and its hosts stop reaching
// each other while the other tenant still pings.
func TestThreeSiteLab(t *testing.T) {
	needLab(t)
	prefix := fmt.Sprintf("skg%d", os.Getpid()%1000)
	dir := filepath.Join(t.TempDir(), "lab")
	spec, err := lab.Parse([]byte(fmt.Sprintf(`{"prefix":%q,"state_dir":%q,"tunnel_type":"vxlan",
		"sites":[{"name":"aws","vms":2},{"name":"gcp","vms":1},{"name":"azure","vms":["web"]}]}`, prefix, dir)))
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
	acc := &acceptor{ln: ln}
	go acc.loop()
	defer acc.stop()
	inst := acc.start(t, inf, st, log, spec.Controller)
	h, rec := inst.h, inst.rec
	ctx := context.Background()

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

	// 5b. Host moves. Within a cloud (aws vm1 -> vm2, as a VM live
	// migration would): the binding follows the interface and the host
	// keeps pinging. Across clouds (azure -> gcp): the binding is ignored
	// until the tenant's topology says the new cloud; re-applying it
	// restores connectivity.
	if _, err := lab.Move(ctx, dir, "t1h1", "aws", "vm2"); err != nil {
		t.Fatal(err)
	}
	vm2 := inv.Switch("aws", "vm2").DPID
	poll(t, "binding follows the move", 20*time.Second, func() bool {
		b, err := st.GetBinding("tenant1/h1")
		return err == nil && uint64(b.DPID) == vm2 && b.VM == "vm2"
	})
	if err := ping(dir, "t1h1", "10.0.0.3", 8); err != nil {
		t.Errorf("after moving t1h1 to aws/vm2: %v", err)
	}
	if _, err := lab.Move(ctx, dir, "t1h3", "gcp", "vm1"); err != nil {
		t.Fatal(err)
	}
	poll(t, "tenant1 pending after a move to another cloud", 20*time.Second, func() bool {
		d, err := h.Tenant(ctx, "tenant1")
		return err == nil && d.State == api.TenantPending && strings.Contains(d.Message, "gcp")
	})
	ts[0].Hosts[2].Cloud = "gcp"
	if s, err := h.ApplyTenant(ctx, ts[0]); err != nil || s.State != api.TenantActive || s.Generation != 2 {
		t.Fatalf("re-apply tenant1 with h3 in gcp: %+v %v", s, err)
	}
	if err := ping(dir, "t1h1", "10.0.0.3", 8); err != nil {
		t.Errorf("after moving t1h3 to gcp: %v", err)
	}
	resync(t, ctx, h, len(inv.Switches))

	// 6. A tenant without apps: its frames miss the tenant tables and go
	// to the controller, where the hypervisor consumes them (counted for
	// its tenant ID); the app registered after it sees no tenant frame.
	quiet := &topology.Topology{Tenant: "quiet", Apps: []string{}, Switches: []topology.Switch{{Name: "q"}}, Links: []topology.Link{},
		Hosts: []topology.Host{{Name: "q1", MAC: "00:00:00:00:03:01", IP: "10.0.0.1/24", Switch: "q", Port: 1, Cloud: "aws"}}}
	qs, err := h.ApplyTenant(ctx, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Plug(ctx, dir, lab.HostSpec{Name: "t3q1", Site: "aws", VM: "vm1", MAC: "00:00:00:00:03:01", IP: "10.0.0.1/24", IfaceID: "quiet/q1"}); err != nil {
		t.Fatal(err)
	}
	poll(t, "quiet tenant active", 20*time.Second, func() bool {
		d, err := h.Tenant(ctx, "quiet")
		return err == nil && d.State == api.TenantActive
	})
	// "active" means stored and pushed; under load the host's first frames
	// may still beat its edge entries, so ping until the hypervisor has
	// counted one of its packet-ins (every ping must fail).
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := ping(dir, "t3q1", "10.0.0.2", 1); err == nil {
			t.Error("a tenant without apps forwarded a ping")
		}
		if h.PacketIns()[qs.TenantID] > 0 || time.Now().After(deadline) {
			break
		}
	}
	if n := h.PacketIns()[qs.TenantID]; n == 0 {
		t.Errorf("no packet-in counted for tenant %v (counts %v)", qs.TenantID, h.PacketIns())
	}
	if n := rec.nonLLDP(); n != 0 {
		t.Errorf("the app after the hypervisor saw %d non-LLDP packet-ins from fabric bridges", n)
	}
	found := false
	for _, p := range rec.tenantEvents() {
		if p.Tenant == "quiet" && p.Switch == "q" && p.InPort == 1 && p.PhysicalDPID == topology.DPID(inv.Switch("aws", "vm1").DPID) &&
			strings.EqualFold(net.HardwareAddr(p.Frame[6:12]).String(), "00:00:00:00:03:01") {
			found = true
		}
	}
	if !found {
		t.Errorf("no packet-in of quiet/q port 1 with the host's own source MAC among %d tenant events", len(rec.tenantEvents()))
	}

	// 7. Restart Skyvisor over the same store: switches keep forwarding
	// while it is down (fail_mode secure keeps the flow tables); the new
	// instance sends no OVSDB transaction and reconciles every switch on
	// connect without adding or deleting a single entry.
	acc.stopCurrent()
	if err := ping(dir, "t1h1", "10.0.0.3", 5); err != nil {
		t.Errorf("while Skyvisor is down: %v", err)
	}
	inst = acc.start(t, inf, st, log, spec.Controller)
	h, rec = inst.h, inst.rec
	poll(t, "reconnect and reconcile of every switch", 60*time.Second, func() bool {
		for _, sw := range inv.Switches {
			if !rec.has(controller.DPID(sw.DPID)) {
				return false
			}
		}
		return h.SyncStats().Syncs >= uint64(len(inv.Switches))
	})
	poll(t, "tunnels after restart", 30*time.Second, func() bool {
		for _, c := range h.Health(ctx).Checks {
			if c.Name == "tunnels" && c.Status != api.HealthOK {
				return false
			}
		}
		return true
	})
	if s := h.SyncStats(); s.Added != 0 || s.Deleted != 0 {
		t.Errorf("after restart: %+v, want no entry added or deleted", s)
	}
	if n := h.OVSDBTransactions(); n != 0 {
		t.Errorf("after restart: %d OVSDB transactions, want 0", n)
	}
	if err := ping(dir, "t2h1", "10.0.0.3", 5); err != nil {
		t.Errorf("after restart: %v", err)
	}

	// 7b. Drift: a tunnel port deleted with ovs-vsctl and an owned flow
	// entry deleted with ovs-ofctl are put back by the audit, and traffic
	// crosses that tunnel again.
	tn := h.Plan().Tunnels[0]
	tport := tunnels.PortName(tn.B)
	siteCmd(t, dir, tn.A, "ovs-vsctl", "del-port", "gw", tport)
	siteCmd(t, dir, "aws", "ovs-ofctl", "-O", "OpenFlow13", "--strict", "del-flows", "vm1", "table=0,priority=1000,dl_type=0x88cc")
	poll(t, "drift repaired by the audit", 30*time.Second, func() bool {
		port := siteCmd(t, dir, tn.A, "ovs-vsctl", "--bare", "--columns=name", "find", "Interface", "name="+tport)
		flows := siteCmd(t, dir, "aws", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "vm1", "table=0,dl_type=0x88cc")
		return port == tport && strings.Contains(flows, "priority=1000")
	})
	for _, pair := range [][2]string{{"t2h1", "10.0.0.2"}, {"t2h1", "10.0.0.3"}, {"t2h2", "10.0.0.3"}} {
		if err := ping(dir, pair[0], pair[1], 8); err != nil {
			t.Errorf("after the audit: %v", err)
		}
	}

	// 7c. A tunnel goes down: the tree is repaired around it (Replan) and
	// traffic between the sites it joined takes the new path.
	down := h.Plan().Tunnels[0]
	if err := h.TunnelDown(ctx, down.A, down.B); err != nil {
		t.Fatal(err)
	}
	if p := h.Plan(); p.Has(down.A, down.B) || p.Len() != 2 {
		t.Fatalf("plan after %s down: %v", down, p)
	}
	if out := siteCmd(t, dir, down.A, "ovs-vsctl", "--bare", "--columns=name", "find", "Interface", "name="+tunnels.PortName(down.B)); out != "" {
		t.Errorf("tunnel port %s still on %s", out, down.A)
	}
	for _, pair := range [][2]string{{"t2h1", "10.0.0.2"}, {"t2h1", "10.0.0.3"}, {"t2h2", "10.0.0.3"}} {
		if err := ping(dir, pair[0], pair[1], 8); err != nil {
			t.Errorf("after %s went down: %v", down, err)
		}
	}
	resync(t, ctx, h, len(inv.Switches))

	// 8. Deleting tenant2 removes its entries everywhere; tenant1 still
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
