package hypervisor

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/tunnels"
)

// newLiveTest is newTest with costs aws~gcp 10, gcp~azure 20, aws~azure 50
// (MST aws~gcp, gcp~azure; aws~azure is the only detour), the given
// liveness settings, and Run started.
func newLiveTest(t *testing.T, lc LivenessConfig) (*Hypervisor, *store.Store, *fakeFabric, context.Context) {
	t.Helper()
	return newLiveTestMesh(t, lc, false)
}

func newLiveTestMesh(t *testing.T, lc LivenessConfig, mesh bool) (*Hypervisor, *store.Store, *fakeFabric, context.Context) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "skf.db"), store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inf := testInfra(t)
	inf.Costs = []infra.Cost{{A: "aws", B: "gcp", RTTMS: 10}, {A: "gcp", B: "azure", RTTMS: 20}, {A: "aws", B: "azure", RTTMS: 50}}
	ff := &fakeFabric{}
	h, err := New(Config{Infra: inf, Store: st, Logger: quietLogger(), Dial: ff.dial, Liveness: lc, AuditInterval: -1, TunnelMesh: mesh})
	if err != nil {
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
	waitFor(t, "plan", func() bool {
		return h.Plan().Len() == 2 && h.Plan().Has("aws", "gcp") && h.Plan().Has("azure", "gcp") || mesh && h.Plan().Len() == 3
	})
	if !lc.Disabled {
		// The gateway watches start right after provisioning: BFD reports
		// sent before would only be seen as the state at subscription.
		waitFor(t, "gateway watches", func() bool {
			h.live.mu.Lock()
			defer h.live.mu.Unlock()
			return len(h.live.watching) == 3
		})
	}
	return h, st, ff, ctx
}

// bfd reports a BFD state on site's port toward peer, as ovs-vswitchd
// would through bfd_status.
func bfd(h *Hypervisor, ff *fakeFabric, site, peer string, up bool) {
	s := ovsdb.BFDStatus{State: ovsdb.BFDStateUp, Forwarding: true, RemoteState: ovsdb.BFDStateUp}
	if !up {
		s = ovsdb.BFDStatus{State: ovsdb.BFDStateDown, Diagnostic: "Control Detection Time Expired", RemoteState: ovsdb.BFDStateUp}
	}
	inf := h.Infrastructure()
	gw := inf.Gateway(site)
	ff.db(gw.OVSDB).plug(gw.Bridge, ovsdb.Interface{Name: tunnels.PortName(peer), Type: "vxlan", OFPort: 40000,
		ExternalIDs: map[string]string{tunnels.ExternalIDTunnel: peer, tunnels.ExternalIDSite: site}, BFD: s})
}

// gwPorts returns the tunnel ports on site's gateway by peer.
func gwPorts(t *testing.T, h *Hypervisor, ff *fakeFabric, site string) map[string]ovsdb.TunnelPort {
	t.Helper()
	gw := h.Infrastructure().Gateway(site)
	ps, err := ff.db(gw.OVSDB).TunnelPorts(context.Background(), gw.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ovsdb.TunnelPort{}
	for _, p := range ps {
		out[p.ExternalIDs[tunnels.ExternalIDTunnel]] = p
	}
	return out
}

func nextEvent(t *testing.T, ch <-chan TunnelLivenessEvent, within time.Duration) TunnelLivenessEvent {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(within):
		t.Fatalf("no liveness decision within %v", within)
	}
	return TunnelLivenessEvent{}
}

// TestLivenessBFDDownAndBack: every tunnel port gets BFD (500/500 ms by
// default); a tree tunnel whose BFD goes down at both ends is routed
// around with one tunnel out and one in, its ports stay as a probe, and
// when it is up again for UpAfter it is readmitted: the detour goes and
// the tree is the minimum spanning tree again.
func TestLivenessBFDDownAndBack(t *testing.T) {
	h, _, ff, _ := newLiveTest(t, LivenessConfig{UpAfter: 100 * time.Millisecond})
	events, stop := h.LivenessEvents()
	defer stop()
	mst := h.Plan()
	want := tunnels.BFDConfig{MinRx: 500 * time.Millisecond, MinTx: 500 * time.Millisecond, Mult: 3}
	for _, site := range []string{"aws", "gcp", "azure"} {
		for peer, p := range gwPorts(t, h, ff, site) {
			if p.BFD == nil || *p.BFD != want {
				t.Fatalf("%s->%s: BFD %+v, want %+v", site, peer, p.BFD, want)
			}
		}
	}
	for _, tn := range mst.Tunnels {
		bfd(h, ff, tn.A, tn.B, true)
		bfd(h, ff, tn.B, tn.A, true)
	}
	// gcp~azure fails: both ends report it (2 updates: no waiting).
	bfd(h, ff, "gcp", "azure", false)
	bfd(h, ff, "azure", "gcp", false)
	ev := nextEvent(t, events, 5*time.Second)
	if !ev.Down || ev.Pair != tunnels.MakePair("gcp", "azure") || ev.Err != nil {
		t.Fatalf("event %+v", ev)
	}
	if len(ev.Diff.Add) != 1 || len(ev.Diff.Remove) != 1 ||
		ev.Diff.Add[0].Pair() != tunnels.MakePair("aws", "azure") || ev.Diff.Remove[0].Pair() != tunnels.MakePair("gcp", "azure") {
		t.Fatalf("diff %+v, want aws~azure in, gcp~azure out", ev.Diff)
	}
	if p := h.Plan(); p.Has("gcp", "azure") || !p.Has("aws", "azure") || !p.Has("aws", "gcp") {
		t.Fatalf("plan %v", p)
	}
	if got := h.LivenessDown(); !reflect.DeepEqual(got, []tunnels.Pair{tunnels.MakePair("gcp", "azure")}) {
		t.Fatalf("LivenessDown %v", got)
	}
	// Probe: the failed pair's ports stay; the detour's exist.
	if _, ok := gwPorts(t, h, ff, "gcp")["azure"]; !ok {
		t.Fatal("probe port gcp->azure deleted")
	}
	if _, ok := gwPorts(t, h, ff, "azure")["aws"]; !ok {
		t.Fatal("detour port azure->aws missing")
	}
	// The forwarding model has the detour, not the probe.
	h.mu.Lock()
	_, probeRecorded := h.tunnelPorts["gcp"]["azure"]
	h.mu.Unlock()
	if !probeRecorded {
		t.Error("probe port number not recorded")
	}
	// A repeated down report changes nothing more.
	bfd(h, ff, "gcp", "azure", false)
	select {
	case ev := <-events:
		t.Fatalf("second decision %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
	// Back up at both ends: readmitted after UpAfter, the detour goes.
	bfd(h, ff, "gcp", "azure", true)
	bfd(h, ff, "azure", "gcp", true)
	ev = nextEvent(t, events, 5*time.Second)
	if ev.Down || ev.Pair != tunnels.MakePair("gcp", "azure") || ev.Err != nil || len(ev.Diff.Add) != 1 || len(ev.Diff.Remove) != 1 ||
		ev.Diff.Remove[0].Pair() != tunnels.MakePair("aws", "azure") {
		t.Fatalf("readmit event %+v", ev)
	}
	if !reflect.DeepEqual(h.Plan().Tunnels, mst.Tunnels) {
		t.Fatalf("plan %v, want the MST %v", h.Plan(), mst)
	}
	if _, ok := gwPorts(t, h, ff, "azure")["aws"]; ok {
		t.Fatal("detour port azure->aws still there")
	}
	if len(h.LivenessDown()) != 0 {
		t.Fatalf("still down: %v", h.LivenessDown())
	}
	sts := h.TunnelStatuses()
	if len(sts) == 0 || !sts[0].BFD.Up() {
		t.Fatalf("statuses %+v", sts)
	}
}

// TestLivenessDebounce: one end reporting down for less than DownAfter
// is ignored; one end down for longer is acted on; a tree tunnel that
// never comes up is declared down after SetupGrace.
func TestLivenessDebounce(t *testing.T) {
	const downAfter = time.Second
	h, _, ff, _ := newLiveTest(t, LivenessConfig{DownAfter: downAfter, SetupGrace: 24 * time.Hour})
	events, stop := h.LivenessEvents()
	defer stop()
	for _, tn := range h.Plan().Tunnels {
		bfd(h, ff, tn.A, tn.B, true)
		bfd(h, ff, tn.B, tn.A, true)
	}
	start := time.Now()
	bfd(h, ff, "aws", "gcp", false) // one end, one update
	time.Sleep(100 * time.Millisecond)
	bfd(h, ff, "aws", "gcp", true) // flap over
	flap := time.Since(start)
	select {
	case ev := <-events:
		if flap < downAfter { // else the machine stalled longer than DownAfter
			t.Fatalf("flap of %v acted on: %+v", flap, ev)
		}
		t.Skipf("flap took %v (loaded machine)", flap)
	case <-time.After(downAfter + 500*time.Millisecond):
	}
	start = time.Now()
	bfd(h, ff, "aws", "gcp", false)
	ev := nextEvent(t, events, 5*time.Second)
	if took := time.Since(start); !ev.Down || ev.Pair != tunnels.MakePair("aws", "gcp") || took < downAfter {
		t.Fatalf("event %+v after %v", ev, took)
	}
}

// TestLivenessResetGrace: a session the peer signalled down (its
// ovs-vswitchd restarted: no timeout at either end) that is back within
// ResetGrace is left alone; one that stays down is declared after
// ResetGrace, however many reports.
func TestLivenessResetGrace(t *testing.T) {
	const grace = 800 * time.Millisecond
	h, _, ff, _ := newLiveTest(t, LivenessConfig{ResetGrace: grace, SetupGrace: 24 * time.Hour})
	events, stop := h.LivenessEvents()
	defer stop()
	for _, tn := range h.Plan().Tunnels {
		bfd(h, ff, tn.A, tn.B, true)
		bfd(h, ff, tn.B, tn.A, true)
	}
	reset := func(site, peer, diag string) {
		gw := h.Infrastructure().Gateway(site)
		ff.db(gw.OVSDB).plug(gw.Bridge, ovsdb.Interface{Name: tunnels.PortName(peer), Type: "vxlan", OFPort: 40000,
			ExternalIDs: map[string]string{tunnels.ExternalIDTunnel: peer, tunnels.ExternalIDSite: site},
			BFD:         ovsdb.BFDStatus{State: ovsdb.BFDStateDown, Diagnostic: diag}})
	}
	start := time.Now()
	reset("aws", "gcp", "Neighbor Signaled Session Down")
	reset("gcp", "aws", "No Diagnostic") // the restarted end
	time.Sleep(100 * time.Millisecond)
	bfd(h, ff, "aws", "gcp", true)
	bfd(h, ff, "gcp", "aws", true)
	back := time.Since(start)
	select {
	case ev := <-events:
		if back < grace {
			t.Fatalf("reset of %v acted on: %+v", back, ev)
		}
		t.Skipf("reset took %v (loaded machine)", back)
	case <-time.After(grace + 400*time.Millisecond):
	}
	start = time.Now()
	reset("aws", "gcp", "Neighbor Signaled Session Down")
	reset("gcp", "aws", "No Diagnostic")
	ev := nextEvent(t, events, 5*time.Second)
	if took := time.Since(start); !ev.Down || ev.Pair != tunnels.MakePair("aws", "gcp") || took < grace {
		t.Fatalf("event %+v after %v", ev, took)
	}
}

func TestLivenessSetupGrace(t *testing.T) {
	h, _, ff, _ := newLiveTest(t, LivenessConfig{SetupGrace: 300 * time.Millisecond})
	events, stop := h.LivenessEvents()
	defer stop()
	bfd(h, ff, "aws", "gcp", true)
	bfd(h, ff, "gcp", "aws", true)
	// gcp~azure reports down from the start and never comes up.
	bfd(h, ff, "gcp", "azure", false)
	ev := nextEvent(t, events, 5*time.Second)
	if !ev.Down || ev.Pair != tunnels.MakePair("gcp", "azure") || ev.Err != nil {
		t.Fatalf("event %+v", ev)
	}
	// The detour aws~azure never comes up either (vswitchd reports its
	// new session down): after the grace it is down too, and no pair is
	// left to reach azure: the plan stays.
	bfd(h, ff, "aws", "azure", false)
	ev = nextEvent(t, events, 5*time.Second)
	var de *tunnels.DisconnectedError
	if !ev.Down || ev.Pair != tunnels.MakePair("aws", "azure") || !errors.As(ev.Err, &de) {
		t.Fatalf("event %+v", ev)
	}
	if p := h.Plan(); !p.Has("aws", "azure") || p.Len() != 2 {
		t.Fatalf("plan %v", p)
	}
}

// TestLivenessDisabled: no BFD on the ports.
func TestLivenessDisabled(t *testing.T) {
	h, _, ff, _ := newLiveTest(t, LivenessConfig{Disabled: true})
	for peer, p := range gwPorts(t, h, ff, "gcp") {
		if p.BFD != nil {
			t.Fatalf("gcp->%s: BFD %+v", peer, p.BFD)
		}
	}
}

// TestRemoveSite: a site in use is refused (placed hosts, bound hosts);
// an unused one is removed: the tree is repaired over the others, its
// gateway's tunnel ports are cleared, the others' ports toward it go.
func TestRemoveSite(t *testing.T) {
	h, st, ff := newTest(t)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveSite(ctx, "nowhere"); err == nil || !strings.Contains(err.Error(), "unknown site") {
		t.Fatalf("unknown site: %v", err)
	}
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	if _, err := h.ApplyTenants(ctx, ts); err != nil {
		t.Fatal(err)
	}
	clouds := map[string]bool{}
	for _, tp := range ts {
		for _, host := range tp.Hosts {
			clouds[host.Cloud] = true
		}
	}
	var used, free string
	for _, s := range []string{"aws", "gcp", "azure"} {
		if clouds[s] && used == "" {
			used = s
		}
		if !clouds[s] {
			free = s
		}
	}
	if used == "" {
		t.Fatal("example tenants place no host")
	}
	before := h.Plan()
	err := h.RemoveSite(ctx, used)
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "places host") {
		t.Fatalf("site %s in use: %v", used, err)
	}
	if !reflect.DeepEqual(h.Plan(), before) || h.Infrastructure().Site(used) == nil {
		t.Fatal("refused removal changed something")
	}
	if free == "" {
		// Every cloud is used by the example: delete the tenants.
		for _, tp := range ts {
			if err := h.DeleteTenant(ctx, tp.Tenant); err != nil {
				t.Fatal(err)
			}
		}
		free = "azure"
	}
	// A host of an existing tenant bound there blocks removal too.
	tn := ts[0].Tenant
	if _, err := st.GetTenant(tn); err == nil {
		if err := st.PutBinding(store.Binding{IfaceID: tn + "/moved", Site: free, VM: "x", Bridge: "x", DPID: 0x999, PortName: "p1", OFPort: 1}); err != nil {
			t.Fatal(err)
		}
		if err := h.RemoveSite(ctx, free); err == nil || !strings.Contains(err.Error(), "is bound") {
			t.Fatalf("bound host: %v", err)
		}
		if err := st.DeleteBinding(tn + "/moved"); err != nil {
			t.Fatal(err)
		}
	}
	// A leftover binding of a tenant that does not exist is dropped.
	if err := st.PutBinding(store.Binding{IfaceID: "ghost/h", Site: free, VM: "x", Bridge: "x", DPID: 0x999, PortName: "p2", OFPort: 2}); err != nil {
		t.Fatal(err)
	}
	gw := h.Infrastructure().Gateway(free)
	if err := h.RemoveSite(ctx, free); err != nil {
		t.Fatal(err)
	}
	p := h.Plan()
	if p.Len() != 1 || p.IsSpanningTree() != nil || h.Infrastructure().Site(free) != nil {
		t.Fatalf("plan after removing %s: %v", free, p)
	}
	if ports, _ := ff.db(gw.OVSDB).TunnelPorts(ctx, gw.Bridge); len(ports) != 0 {
		t.Fatalf("%s gateway still has %+v", free, ports)
	}
	for _, s := range p.Sites {
		if _, ok := gwPorts(t, h, ff, s)[free]; ok {
			t.Fatalf("%s still has a port toward %s", s, free)
		}
	}
	if _, err := st.GetBinding("ghost/h"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("leftover binding: %v", err)
	}
	if err := h.RemoveSite(ctx, free); err == nil {
		t.Fatal("removed twice")
	}
	// And back: AddSite is the inverse.
	old := testInfra(t)
	var sws []infra.Switch
	for _, sw := range old.Switches {
		if sw.Site == free {
			sws = append(sws, sw)
		}
	}
	if err := h.AddSite(ctx, *old.Site(free), sws, nil); err != nil {
		t.Fatal(err)
	}
	if h.Plan().Len() != 2 || h.Plan().IsSpanningTree() != nil {
		t.Fatalf("plan after re-adding %s: %v", free, h.Plan())
	}
}

// TestTunnelDownOnProbe: a pair declared down by BFD keeps probe ports;
// TunnelDown on it (administrative) deletes them.
func TestTunnelDownOnProbe(t *testing.T) {
	h, _, ff, ctx := newLiveTest(t, LivenessConfig{UpAfter: 50 * time.Millisecond})
	events, stop := h.LivenessEvents()
	defer stop()
	for _, tn := range h.Plan().Tunnels {
		bfd(h, ff, tn.A, tn.B, true)
		bfd(h, ff, tn.B, tn.A, true)
	}
	bfd(h, ff, "gcp", "azure", false)
	bfd(h, ff, "azure", "gcp", false)
	if ev := nextEvent(t, events, 5*time.Second); !ev.Down || ev.Err != nil {
		t.Fatalf("event %+v", ev)
	}
	if _, ok := gwPorts(t, h, ff, "gcp")["azure"]; !ok {
		t.Fatal("no probe port")
	}
	if err := h.TunnelDown(ctx, "azure", "gcp"); err != nil {
		t.Fatal(err)
	}
	if _, ok := gwPorts(t, h, ff, "gcp")["azure"]; ok {
		t.Fatal("probe port kept after TunnelDown")
	}
	if _, ok := gwPorts(t, h, ff, "azure")["gcp"]; ok {
		t.Fatal("probe port kept after TunnelDown (azure)")
	}
	if p := h.Plan(); p.Has("gcp", "azure") || p.Len() != 2 {
		t.Fatalf("plan %v", p)
	}
}

// TestLivenessMesh: with Config.TunnelMesh a failed tunnel removes only
// itself (the mesh of the pairs not down; its ports stay as a probe) and
// comes back when BFD is up again; a new site joins every other one.
func TestLivenessMesh(t *testing.T) {
	h, _, ff, ctx := newLiveTestMesh(t, LivenessConfig{UpAfter: 50 * time.Millisecond}, true)
	events, stop := h.LivenessEvents()
	defer stop()
	mesh := h.Plan()
	for _, tn := range mesh.Tunnels {
		bfd(h, ff, tn.A, tn.B, true)
		bfd(h, ff, tn.B, tn.A, true)
	}
	bfd(h, ff, "gcp", "azure", false)
	bfd(h, ff, "azure", "gcp", false)
	ev := nextEvent(t, events, 5*time.Second)
	if !ev.Down || ev.Err != nil || len(ev.Diff.Add) != 0 || len(ev.Diff.Remove) != 1 || ev.Diff.Remove[0].Pair() != tunnels.MakePair("gcp", "azure") {
		t.Fatalf("event %+v, want only gcp~azure out", ev)
	}
	if p := h.Plan(); p.Len() != 2 || p.Has("gcp", "azure") {
		t.Fatalf("plan %v", p)
	}
	if _, ok := gwPorts(t, h, ff, "gcp")["azure"]; !ok {
		t.Fatal("probe port gcp->azure deleted")
	}
	if _, _, err := h.compute(""); err != nil {
		t.Fatalf("desired state over the mesh minus one: %v", err)
	}
	bfd(h, ff, "gcp", "azure", true)
	bfd(h, ff, "azure", "gcp", true)
	ev = nextEvent(t, events, 5*time.Second)
	if ev.Down || ev.Err != nil || len(ev.Diff.Add) != 1 || len(ev.Diff.Remove) != 0 {
		t.Fatalf("readmission %+v, want gcp~azure back in", ev)
	}
	if !reflect.DeepEqual(h.Plan().Tunnels, mesh.Tunnels) {
		t.Fatalf("plan %v, want the mesh %v", h.Plan(), mesh)
	}
	// A fourth site joins every other one.
	site := infra.Site{Name: "oci", OVSDB: "unix:/tmp/skf-none/oci.sock", UnderlayIP: "172.31.0.4", GatewayBridge: "gw", GatewayDPID: 0x400}
	sws := []infra.Switch{{Site: "oci", Role: infra.RoleGateway, Bridge: "gw", DPID: 0x400}}
	if err := h.AddSite(ctx, site, sws, nil); err != nil {
		t.Fatal(err)
	}
	if p := h.Plan(); p.Len() != 6 {
		t.Fatalf("mesh after AddSite: %v", p)
	}
	if err := h.RemoveSite(ctx, "oci"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.Plan().Tunnels, mesh.Tunnels) {
		t.Fatalf("plan %v after RemoveSite, want the mesh %v", h.Plan(), mesh)
	}
}
