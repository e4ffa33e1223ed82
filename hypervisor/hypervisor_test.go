package hypervisor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/tunnels"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// loadTenants reads a tenants document and validates it against inf.
func loadTenants(t *testing.T, h *Hypervisor, path string) []*topology.Topology {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := h.Infra(context.Background())
	ts, err := topology.Load(b, ti)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Infra is required") {
		t.Errorf("no infra: %v", err)
	}
	if _, err := New(Config{Infra: &infra.Infra{}}); err == nil || !strings.Contains(err.Error(), "Store is required") {
		t.Errorf("no store: %v", err)
	}
}

// TestConvergeBridgesTunnelsIdempotent: every bridge is ensured with the
// OpenFlow 1.3 / secure / out-of-band controller spec, the 3 gateways get
// the 2 tunnels of the MST (4 ports), and a second Converge sends no OVSDB
// transaction.
func TestConvergeBridgesTunnelsIdempotent(t *testing.T) {
	h, _, ff := newTest(t)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	inf := h.Infrastructure()
	for _, sw := range inf.Switches {
		spec, ok := ff.db(sw.OVSDB).bridges[sw.Bridge]
		if !ok {
			t.Fatalf("bridge %s of %s not ensured", sw.Bridge, sw.Site)
		}
		want := ovsdb.BridgeSpec{Name: sw.Bridge, DatapathID: ovsdb.FormatDatapathID(sw.DPID), Protocols: []string{"OpenFlow13"},
			FailMode: "secure", Controllers: []string{inf.ControllerTarget(sw.Site)}, ConnectionMode: "out-of-band"}
		if !slices.Equal(spec.Protocols, want.Protocols) || spec.DatapathID != want.DatapathID || spec.FailMode != want.FailMode ||
			!slices.Equal(spec.Controllers, want.Controllers) || spec.ConnectionMode != want.ConnectionMode {
			t.Errorf("bridge %s/%s spec %+v, want %+v", sw.Site, sw.Bridge, spec, want)
		}
	}
	plan := h.Plan()
	if plan.Len() != 2 || plan.IsSpanningTree() != nil {
		t.Fatalf("plan %v: want a 2-tunnel spanning tree", plan)
	}
	nPorts := 0
	for _, s := range inf.Sites {
		ports, _ := ff.db(s.OVSDB).TunnelPorts(ctx, "gw")
		nPorts += len(ports)
		if len(ports) != len(plan.Peers(s.Name)) {
			t.Errorf("site %s: %d tunnel ports, want %d", s.Name, len(ports), len(plan.Peers(s.Name)))
		}
		for _, p := range ports {
			if p.Type != "vxlan" || p.Key != "flow" {
				t.Errorf("site %s: port %+v", s.Name, p)
			}
		}
	}
	if nPorts != 4 {
		t.Errorf("%d tunnel ports, want 4", nPorts)
	}
	before := ff.txns()
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	if after := ff.txns(); after != before {
		t.Errorf("second Converge sent %d transactions, want 0", after-before)
	}
	if h.OVSDBTransactions() != before {
		t.Errorf("OVSDBTransactions = %d, want %d", h.OVSDBTransactions(), before)
	}
	pt, err := h.PhysicalTopology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pt.Sites) != 3 || len(pt.Switches) != 7 || len(pt.Tunnels) != 2 {
		t.Fatalf("physical topology: %d sites, %d switches, %d tunnels", len(pt.Sites), len(pt.Switches), len(pt.Tunnels))
	}
	for _, tn := range pt.Tunnels {
		if !tn.Up || tn.Type != "vxlan" || tn.LocalIP == "" || tn.RemoteIP == "" {
			t.Errorf("tunnel %+v", tn)
		}
	}
}

// TestAddSiteReplans: a fourth site joins as a leaf: exactly one tunnel is
// added (its cheapest), no existing tunnel moves, only the two touched
// gateways change.
func TestAddSiteReplans(t *testing.T) {
	h, _, ff := newTest(t)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	old := h.Plan()
	site := infra.Site{Name: "oci", OVSDB: "unix:/tmp/skg-none/oci.sock", UnderlayIP: "172.31.0.4", GatewayBridge: "gw", GatewayDPID: 0x400}
	sws := []infra.Switch{
		{Site: "oci", Role: infra.RoleGateway, Bridge: "gw", DPID: 0x400, PatchPorts: []infra.PatchPort{{Name: "gw-vm1", OFPort: 1, Peer: "vm1-gw", PeerBridge: "vm1"}}},
		{Site: "oci", Role: infra.RoleVM, VM: "vm1", Bridge: "vm1", DPID: 0x401, PatchPorts: []infra.PatchPort{{Name: "vm1-gw", OFPort: 1, Peer: "gw-vm1", PeerBridge: "gw"}}},
	}
	costs := []infra.Cost{{A: "oci", B: "gcp", RTTMS: 0.5}} // cheapest attachment: gcp
	if err := h.AddSite(ctx, site, sws, costs); err != nil {
		t.Fatal(err)
	}
	next := h.Plan()
	if next.Len() != 3 || next.IsSpanningTree() != nil {
		t.Fatalf("plan after add %v", next)
	}
	for _, tn := range old.Tunnels {
		if !next.Has(tn.A, tn.B) {
			t.Errorf("tunnel %s moved", tn)
		}
	}
	if !next.Has("oci", "gcp") {
		t.Errorf("plan %v: oci not attached to gcp (its cheapest pair)", next)
	}
	ports, _ := ff.db(site.OVSDB).TunnelPorts(ctx, "gw")
	if len(ports) != 1 || ports[0].Name != tunnels.PortName("gcp") || ports[0].RemoteIP != "172.31.0.2" {
		t.Errorf("oci gateway ports %+v", ports)
	}
	if _, ok := ff.db(site.OVSDB).bridges["vm1"]; !ok {
		t.Error("oci vm1 bridge not ensured")
	}
	ti, _ := h.Infra(ctx)
	if !slices.Equal(ti.Clouds["oci"], []string{"vm1"}) {
		t.Errorf("infra clouds %v", ti.Clouds)
	}
	// Invalid additions change nothing.
	if err := h.AddSite(ctx, site, nil, nil); err == nil {
		t.Error("adding a known site again succeeded")
	}
	bad := infra.Site{Name: "bad", OVSDB: "nope", UnderlayIP: "x", GatewayBridge: "gw", GatewayDPID: 0x500}
	if err := h.AddSite(ctx, bad, nil, nil); err == nil || !strings.Contains(err.Error(), "ovsdb") {
		t.Errorf("invalid site: %v", err)
	}
	if h.Infrastructure().Site("bad") != nil || h.Plan().Len() != 3 {
		t.Error("invalid site was added")
	}
}

// TestTunnelDownReplans: a tunnel marked down is replaced by the cheapest
// pair reconnecting the tree; with two sites left unconnectable it fails
// and keeps the plan.
func TestTunnelDownReplans(t *testing.T) {
	h, _, ff := newTest(t)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	victim := h.Plan().Tunnels[0]
	if err := h.TunnelDown(ctx, victim.A, victim.B); err != nil {
		t.Fatal(err)
	}
	p := h.Plan()
	if p.Has(victim.A, victim.B) || p.Len() != 2 || p.IsSpanningTree() != nil {
		t.Fatalf("plan after %s down: %v", victim, p)
	}
	inf := h.Infrastructure()
	ports, _ := ff.db(inf.Site(victim.A).OVSDB).TunnelPorts(ctx, "gw")
	for _, pt := range ports {
		if pt.Name == tunnels.PortName(victim.B) {
			t.Errorf("port %s toward %s still exists", pt.Name, victim.B)
		}
	}
	other := p.Tunnels[0]
	if err := h.TunnelDown(ctx, other.A, other.B); err == nil {
		// 3 sites, 2 pairs down: the third pair alone cannot span.
		t.Fatalf("second tunnel down replanned to %v", h.Plan())
	}
	if !slices.Equal(h.Plan().Tunnels, p.Tunnels) {
		t.Errorf("failed replan changed the plan: %v", h.Plan())
	}
	h.TunnelUp(victim.A, victim.B)
	if err := h.TunnelDown(ctx, other.A, other.B); err != nil {
		t.Errorf("with %s up again: %v", victim, err)
	}
}

// TestServiceApplyReplaceDelete drives api.Service over a real bbolt store.
func TestServiceApplyReplaceDelete(t *testing.T) {
	h, st, _ := newTest(t)
	ctx := ctxT(t)
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	out, err := h.ApplyTenants(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Tenant != "tenant1" || out[0].TenantID != addr.FirstTenantID || out[1].TenantID != addr.FirstTenantID+1 {
		t.Fatalf("statuses %+v", out)
	}
	for _, s := range out {
		if s.State != api.TenantPending || s.Generation != 1 || s.Hosts != 3 || s.HostsBound != 0 || !strings.Contains(s.Message, "h1") {
			t.Errorf("status %+v, want pending with 3 unbound hosts", s)
		}
	}
	if out[1].Switches != 3 || out[1].Links != 2 {
		t.Errorf("tenant2 counts %+v", out[1])
	}
	// Identical resubmission: same generation; a change bumps it.
	again, err := h.ApplyTenant(ctx, ts[0])
	if err != nil || again.Generation != 1 || again.TenantID != out[0].TenantID {
		t.Fatalf("resubmit: %+v %v", again, err)
	}
	ts[0].Hosts[0].IP = "10.0.0.101/24"
	changed, err := h.ApplyTenant(ctx, ts[0])
	if err != nil || changed.Generation != 2 {
		t.Fatalf("change: %+v %v", changed, err)
	}
	list, err := h.Tenants(ctx)
	if err != nil || len(list) != 2 || list[0].Tenant != "tenant1" || list[1].Tenant != "tenant2" {
		t.Fatalf("Tenants = %+v, %v", list, err)
	}
	d, err := h.Tenant(ctx, "tenant2")
	if err != nil || d.Topology.Tenant != "tenant2" || len(d.Mapping.Switches) != 3 {
		t.Fatalf("Tenant = %+v, %v", d, err)
	}

	// All or nothing: one invalid tenant (unknown cloud, VM not in its
	// cloud) stores neither.
	good := &topology.Topology{Tenant: "t3", Apps: []string{}, Switches: []topology.Switch{{Name: "s"}}, Links: []topology.Link{},
		Hosts: []topology.Host{{Name: "a", MAC: "00:00:00:00:00:0a", IP: "10.1.0.1/24", Switch: "s", Port: 1, Cloud: "aws"}}}
	bad := &topology.Topology{Tenant: "t4", Apps: []string{}, Switches: []topology.Switch{{Name: "s"}}, Links: []topology.Link{},
		Hosts: []topology.Host{{Name: "a", MAC: "00:00:00:00:00:0a", IP: "10.1.0.1/24", Switch: "s", Port: 1, Cloud: "mars"},
			{Name: "b", MAC: "00:00:00:00:00:0b", IP: "10.1.0.2/24", Switch: "s", Port: 2, Cloud: "gcp", VM: "web"}}}
	_, err = h.ApplyTenants(ctx, []*topology.Topology{good, bad})
	var verr *topology.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("invalid batch: %v", err)
	}
	paths := strings.Join(verr.Paths(), " ")
	if !strings.Contains(paths, "$.tenants[1].hosts[0].cloud") || !strings.Contains(paths, "$.tenants[1].hosts[1].vm") {
		t.Errorf("paths %q", paths)
	}
	if _, err := st.GetTenant("t3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("t3 stored from a failed batch: %v", err)
	}
	// Duplicate names in a batch.
	if _, err := h.ApplyTenants(ctx, []*topology.Topology{good, good}); !errors.As(err, &verr) {
		t.Errorf("duplicate names: %v", err)
	}

	// Delete frees the ID; the next new tenant gets it back.
	if err := h.DeleteTenant(ctx, "tenant1"); err != nil {
		t.Fatal(err)
	}
	if err := h.DeleteTenant(ctx, "tenant1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := h.Tenant(ctx, "tenant1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Tenant after delete: %v", err)
	}
	if _, err := h.Mapping(ctx, "nobody"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Mapping of unknown tenant: %v", err)
	}
	s3, err := h.ApplyTenant(ctx, good)
	if err != nil || s3.TenantID != addr.FirstTenantID {
		t.Errorf("t3 = %+v, %v; want the freed ID %v", s3, err, addr.FirstTenantID)
	}
	// A closed store makes the service unavailable, not a 500.
	st.Close()
	if _, err := h.Tenants(ctx); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("Tenants on a closed store: %v", err)
	}
	if hl := h.Health(ctx); hl.Status != api.HealthUnavailable {
		t.Errorf("health on a closed store: %+v", hl)
	}
}

// TestDesiredEntries: with tunnels provisioned and every host of the two
// example tenants bound, the compiled state puts tenant entries (cookie
// prefix = tenant ID) on the edge bridges of their hosts and routes on the
// gateways; deleting a tenant leaves none of its entries.
func TestDesiredEntries(t *testing.T) {
	h, st, _ := newTest(t)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ApplyTenants(ctx, loadTenants(t, h, "../examples/two-tenants.json")); err != nil {
		t.Fatal(err)
	}
	where := map[string]uint64{"aws": 0x101, "gcp": 0x201, "azure": 0x301}
	ports := map[string]uint32{"h1": 5, "h2": 6, "h3": 7}
	sites := map[string]string{"h1": "aws", "h2": "gcp", "h3": "azure"}
	for _, tn := range []string{"tenant1", "tenant2"} {
		for hn, site := range sites {
			err := st.PutBinding(store.Binding{IfaceID: tn + "/" + hn, Site: site, VM: map[string]string{"aws": "vm1", "gcp": "vm1", "azure": "web"}[site],
				Bridge: "x", DPID: topology.DPID(where[site]), PortName: tn[len(tn)-1:] + hn, OFPort: ports[hn] + map[string]uint32{"tenant1": 0, "tenant2": 10}[tn]})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// A binding in the wrong cloud is ignored and reported.
	if err := st.PutBinding(store.Binding{IfaceID: "tenant1/ghost", Site: "aws", VM: "vm1", Bridge: "vm1", DPID: 0x101, PortName: "g", OFPort: 30}); err != nil {
		t.Fatal(err)
	}
	desired, s, err := h.compute("")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.bindings) != 6 || s.ignored["tenant1/ghost"] == "" {
		t.Fatalf("bindings in use %d, ignored %v", len(s.bindings), s.ignored)
	}
	count := func(dpid uint64, id addr.TenantID) int {
		n := 0
		for _, e := range desired[dpid] {
			if addr.TenantID(e.Cookie>>48) == id || (pipeline.IsInfraCookie(e.Cookie) && addr.TenantID(e.Cookie>>32) == id) {
				n++
			}
		}
		return n
	}
	for _, d := range where {
		for _, id := range []addr.TenantID{0x200, 0x201} {
			if count(d, id) == 0 {
				t.Errorf("edge %#x has no entries of tenant %v", d, id)
			}
		}
	}
	if count(0x102, 0x200) != 0 {
		t.Error("aws vm2 (no hosts) has tenant entries")
	}
	for _, gw := range []uint64{0x100, 0x200, 0x300} {
		if count(gw, 0x200) == 0 {
			t.Errorf("gateway %#x has no route of tenant1", gw)
		}
	}
	list, _ := h.Tenants(ctx)
	for _, ts := range list {
		if ts.HostsBound != 3 || ts.State != api.TenantDegraded {
			t.Errorf("status %+v: want 3 hosts bound, degraded (no switch connected)", ts)
		}
	}
	m, err := h.Mapping(ctx, "tenant2")
	if err != nil {
		t.Fatal(err)
	}
	if m.Hosts[0].Binding != api.BindingBound || m.Hosts[0].PhysicalDPID != 0x101 || m.Hosts[0].PhysicalPort != 15 ||
		m.Hosts[0].FabricMAC != addr.FabricMAC(0x201, 1) {
		t.Errorf("host mapping %+v", m.Hosts[0])
	}
	var linkPorts int
	for _, sm := range m.Switches {
		for _, pm := range sm.Ports {
			if strings.HasPrefix(pm.Peer, "switch:") {
				linkPorts++
				if pm.Kind != api.PortTunnel || pm.Tunnel == "" || pm.PhysicalPort == 0 {
					t.Errorf("link port %s:%d = %+v, want a tunnel", sm.Name, pm.VirtualPort, pm)
				}
			}
		}
	}
	if linkPorts != 4 || len(m.Links) != 2 || len(m.Links[0].Path) < 2 || len(m.Links[0].Tunnels) == 0 {
		t.Errorf("links: %d link ports, %+v", linkPorts, m.Links)
	}
	after, _, err := h.compute("tenant1")
	if err != nil {
		t.Fatal(err)
	}
	for d, es := range after {
		for _, e := range es {
			if addr.TenantID(e.Cookie>>48) == 0x200 || (pipeline.IsInfraCookie(e.Cookie) && addr.TenantID(e.Cookie>>32) == 0x200) {
				t.Fatalf("switch %#x keeps entry %s of the excluded tenant", d, e.String())
			}
		}
	}
}

// TestBindingsFromOVSDB: Run watches VM bridges; an interface with an
// iface-id becomes a binding, its removal deletes it, and a stale binding
// of a port that no longer exists is dropped when the watch starts.
func TestBindingsFromOVSDB(t *testing.T) {
	h, st, ff := newTest(t)
	if err := st.PutBinding(store.Binding{IfaceID: "old/h", Site: "aws", VM: "vm2", Bridge: "vm2", DPID: 0x102, PortName: "gone", OFPort: 9}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "plan", func() bool { return h.Plan().Len() == 2 && h.Health(ctx).Checks[1].Status == api.HealthOK })
	waitFor(t, "stale binding dropped", func() bool { _, err := st.GetBinding("old/h"); return errors.Is(err, store.ErrNotFound) })
	db := ff.db("unix:/tmp/skgcap/state/s1/run/db.sock")
	db.plug("vm1", ovsdb.Interface{Name: "h-h1", OFPort: 3, ExternalIDs: map[string]string{"iface-id": "tenant1/h1"}})
	waitFor(t, "binding", func() bool {
		b, err := st.GetBinding("tenant1/h1")
		return err == nil && b.OFPort == 3 && b.DPID == 0x101 && b.VM == "vm1"
	})
	// The port number changes (re-plug): the binding follows.
	db.plug("vm1", ovsdb.Interface{Name: "h-h1", OFPort: 4, ExternalIDs: map[string]string{"iface-id": "tenant1/h1"}})
	waitFor(t, "binding update", func() bool { b, err := st.GetBinding("tenant1/h1"); return err == nil && b.OFPort == 4 })
	// A tenant applied afterwards sees the host bound.
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	out, err := h.ApplyTenant(ctx, ts[0])
	if err != nil || out.HostsBound != 1 {
		t.Fatalf("apply: %+v %v", out, err)
	}
	// The iface-id is removed from the interface: unbound.
	db.plug("vm1", ovsdb.Interface{Name: "h-h1", OFPort: 4, ExternalIDs: map[string]string{}})
	waitFor(t, "unbind", func() bool { _, err := st.GetBinding("tenant1/h1"); return errors.Is(err, store.ErrNotFound) })
	db.plug("vm1", ovsdb.Interface{Name: "h-h1", OFPort: 4, ExternalIDs: map[string]string{"iface-id": "tenant1/h1"}})
	waitFor(t, "rebind", func() bool { _, err := st.GetBinding("tenant1/h1"); return err == nil })
	db.unplug("vm1", "h-h1")
	waitFor(t, "unplug", func() bool { _, err := st.GetBinding("tenant1/h1"); return errors.Is(err, store.ErrNotFound) })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHealthBeforeRun: nothing connected yet is degraded, never failing.
func TestHealthBeforeRun(t *testing.T) {
	h, _, _ := newTest(t)
	hl := h.Health(context.Background())
	if hl.Status != api.HealthDegraded {
		t.Fatalf("health %+v", hl)
	}
	names := map[string]api.HealthStatus{}
	for _, c := range hl.Checks {
		names[c.Name] = c.Status
	}
	if names["store"] != api.HealthOK || names["ovsdb"] != api.HealthDegraded || names["switches"] != api.HealthDegraded || names["tunnels"] != api.HealthDegraded {
		t.Errorf("checks %+v", hl.Checks)
	}
}

// TestOverHTTP serves the Hypervisor with api.NewHandler: a missing tenant
// is a 404 (api.ErrNotFound), a topology pinning a VM the infrastructure
// lacks is a 400 naming the field, a valid document applies.
func TestOverHTTP(t *testing.T) {
	h, _, _ := newTest(t)
	srv := httptest.NewServer(api.NewHandler(h, api.Options{Token: "skg-token"}))
	defer srv.Close()
	c, err := api.NewClient(srv.URL, "skg-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := c.Mapping(ctx, "nobody"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("mapping of unknown tenant: %v", err)
	}
	do := func(method, path, file string) (int, string) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer skg-token")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// tenant-a pins h2 to gcp's "vm2"; the lab's gcp has only vm1.
	if code, body := do(http.MethodPut, "/v1/tenants/tenant-a", "../examples/tenant-a.json"); code != http.StatusBadRequest || !strings.Contains(body, "$.hosts[1].vm") {
		t.Errorf("PUT tenant-a: %d %s", code, body)
	}
	if code, body := do(http.MethodPost, "/v1/tenants", "../examples/two-tenants.json"); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("POST two-tenants: %d %s", code, body)
	}
	list, err := c.Tenants(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list %+v %v", list, err)
	}
}

// TestAuditRepairsDrift: Run's audit puts back a tunnel port deleted
// behind Skyvisor's back and a bridge whose fail mode was changed.
func TestAuditRepairsDrift(t *testing.T) {
	st, err := store.Open(t.TempDir()+"/skg.db", store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ff := &fakeFabric{}
	h, err := New(Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: ff.dial, AuditInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "tunnels", func() bool { return h.Plan().Len() == 2 && h.Health(ctx).Checks[3].Status == api.HealthOK })
	tn := h.Plan().Tunnels[0]
	db := ff.db(h.Infrastructure().Site(tn.A).OVSDB)
	if err := db.DeleteTunnelPort(ctx, "gw", tunnels.PortName(tn.B)); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	spec := db.bridges["gw"]
	spec.FailMode = "standalone"
	db.bridges["gw"] = spec
	db.mu.Unlock()
	waitFor(t, "drift repaired", func() bool {
		ports, _ := db.TunnelPorts(ctx, "gw")
		db.mu.Lock()
		fm := db.bridges["gw"].FailMode
		db.mu.Unlock()
		for _, p := range ports {
			if p.Name == tunnels.PortName(tn.B) {
				return fm == "secure"
			}
		}
		return false
	})
}

// TestPacketInDemux: a packet-in of the tenant tables is consumed and
// demultiplexed by its metadata to the tenant's virtual switch and port,
// with the source MAC restored; foreign switches and the physical
// discovery's LLDP continue to later apps; LLDP from a host port does not.
func TestPacketInDemux(t *testing.T) {
	var got []TenantPacketIn
	st, err := store.Open(t.TempDir()+"/skg.db", store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ff := &fakeFabric{}
	h, err := New(Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: ff.dial,
		TenantPacketIn: func(p TenantPacketIn) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	out, err := h.ApplyTenants(ctx, loadTenants(t, h, "../examples/two-tenants.json"))
	if err != nil {
		t.Fatal(err)
	}
	id := out[1].TenantID // tenant2: s1 port 1 = h1, link s1:2 - s2:2
	h.mu.Lock()
	v := h.views[id].view
	h.mu.Unlock()
	h2, _ := v.HostByName("h2")
	s2, _ := v.SwitchByDPID(topology.DeriveDPID("s2"))
	src := addr.FabricMAC(id, h2.Index)
	frame := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src[:]...)
	frame = append(frame, 0x08, 0x06, 0, 1)
	md := pipeline.MetadataValue(id, h2.VPort, s2.Index, true)
	ev := &controller.PacketIn{TableID: pipeline.TableTenant, Cookie: pipeline.InfraCookie(0, 0), InPort: 7, Data: frame,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(7), pipeline.Metadata(md, ^uint64(0))}}}
	if d := h.packetIn(0x201, ev); d != controller.Stop {
		t.Fatalf("tenant packet-in: %v, want Stop", d)
	}
	if len(got) != 1 {
		t.Fatalf("hook got %d events", len(got))
	}
	p := got[0]
	if p.Tenant != "tenant2" || p.Switch != "s2" || p.InPort != 1 || !p.Group || p.Table != 0 || p.PhysicalDPID != 0x201 ||
		p.PhysicalInPort != 7 || addr.MAC(p.Frame[6:12]) != mustMAC(t, "00:00:00:00:00:02") || p.Cookie != 0 {
		t.Errorf("event %+v", p)
	}
	if addr.MAC(ev.Data[6:12]) != src {
		t.Error("the physical packet-in's frame was modified")
	}
	if h.PacketIns()[id] != 1 {
		t.Errorf("counts %v", h.PacketIns())
	}
	// Metadata naming another tenant's view: consumed, not delivered.
	ev.Match.Fields[1] = pipeline.Metadata(pipeline.MetadataValue(out[0].TenantID, h2.VPort, s2.Index, false), ^uint64(0))
	if d := h.packetIn(0x201, ev); d != controller.Stop || len(got) != 1 {
		t.Errorf("mismatched metadata: %v, %d events", d, len(got))
	}
	// Not a fabric switch: left to the next apps.
	if d := h.packetIn(0x999, ev); d != controller.Continue {
		t.Errorf("foreign switch: %v", d)
	}
	lldp := &controller.PacketIn{TableID: 0, InPort: 1, Data: append(make([]byte, 12), 0x88, 0xcc)}
	if d := h.packetIn(0x101, lldp); d != controller.Continue {
		t.Errorf("LLDP on the uplink: %v, want Continue (physical discovery)", d)
	}
	h.mu.Lock()
	h.ofports[portKey{0x101, "h-x"}] = 5
	h.portIDs[portKey{0x101, "h-x"}] = "tenant2/h1"
	h.mu.Unlock()
	lldp.InPort = 5
	if d := h.packetIn(0x101, lldp); d != controller.Stop {
		t.Errorf("LLDP from a host port: %v, want Stop", d)
	}
	if len(got) != 2 || got[1].Tenant != "tenant2" || got[1].Switch != "s1" || got[1].InPort != 1 || got[1].PhysicalInPort != 5 {
		t.Errorf("host LLDP event: %+v", got[len(got)-1])
	}
}

func mustMAC(t *testing.T, s string) addr.MAC {
	t.Helper()
	m, err := addr.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
