package hypervisor

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/hypervisor/vnet"
)

// TestTenantAppsLifecycle: a tenant listing apps besides "learning" gets
// a vnet runtime when applied, its discovery app reports exactly its
// virtual links, reconcile leaves its apps' entries alone, and deleting
// the tenant stops the runtime.
func TestTenantAppsLifecycle(t *testing.T) {
	h, _, _ := newTest(t)
	t.Cleanup(h.closeTenantApps)
	ctx := ctxT(t)
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	ts[1].Apps = []string{"learning", vnet.Discovery} // tenant2: s1 -(2:2)- s2 -(3:2)- s3
	out, err := h.ApplyTenants(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := out[0].TenantID, out[1].TenantID
	if h.TenantAppRuntime("tenant1") != nil {
		t.Error("tenant1 (native learning only) got a runtime")
	}
	if h.TenantAppRuntime("tenant2") == nil {
		t.Fatal("tenant2 has no runtime")
	}
	var links api.TenantLinks
	want := []string{"s1:2>s2:2", "s2:2>s1:2", "s2:3>s3:2", "s3:2>s2:3"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		links, err = h.TenantLinks(ctx, "tenant2")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range links.Links {
			got = append(got, l.Src.Switch+":"+itoa(l.Src.Port)+">"+l.Dst.Switch+":"+itoa(l.Dst.Port))
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("links %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.TenantLinks(ctx, "tenant1"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("links of a tenant without discovery: %v, want ErrInvalid", err)
	}
	if _, err := h.TenantLinks(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("links of an unknown tenant: %v, want ErrNotFound", err)
	}
	// Ownership for reconcile.
	for _, c := range []struct {
		cookie uint64
		owned  bool
	}{
		{pipeline.InfraCookie(0, 0), true},
		{pipeline.TenantCookie(t1, 0x1234), true},
		{pipeline.TenantCookie(t2, vnet.DiscoveryCookie), false},
		{pipeline.TenantCookie(t2, cookieUnicast), true},
		{0, false},
	} {
		if got := h.ownsCookie(c.cookie); got != c.owned {
			t.Errorf("ownsCookie(%#x) = %v, want %v", c.cookie, got, c.owned)
		}
	}
	// Replacing the app list restarts the runtime; deleting stops it.
	rt := h.TenantAppRuntime("tenant2")
	ts[1].Apps = []string{vnet.Discovery, vnet.ReactiveLearning}
	if _, err := h.ApplyTenant(ctx, ts[1]); err != nil {
		t.Fatal(err)
	}
	if nrt := h.TenantAppRuntime("tenant2"); nrt == nil || nrt == rt {
		t.Fatalf("runtime after an app change: %p (old %p)", nrt, rt)
	}
	for _, sw := range rt.Switches() {
		select {
		case <-sw.Done():
		default:
			t.Errorf("old virtual switch %v still up", sw)
		}
	}
	// Without "learning" no proactive learning entry is desired.
	h.mu.Lock()
	for d, es := range h.desired {
		for _, e := range es {
			if e.Cookie == pipeline.TenantCookie(t2, cookieUnicast) || e.Cookie == pipeline.TenantCookie(t2, cookieBroadcast) {
				t.Errorf("bridge %v: proactive learning entry for a tenant without \"learning\"", pipeline.DPID(d))
			}
		}
	}
	h.mu.Unlock()
	if err := h.DeleteTenant(ctx, "tenant2"); err != nil {
		t.Fatal(err)
	}
	if h.TenantAppRuntime("tenant2") != nil {
		t.Error("runtime survived the tenant's deletion")
	}
	if !h.ownsCookie(pipeline.TenantCookie(t2, vnet.DiscoveryCookie)) {
		t.Error("a deleted tenant's app entries are not owned: reconcile would leave them behind")
	}
}

// TestUnknownAppRefused: an app name outside the registry is refused with
// its JSON path, and nothing is stored.
func TestUnknownAppRefused(t *testing.T) {
	h, _, _ := newTest(t)
	ctx := ctxT(t)
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	ts[0].Apps = []string{"learning", "firewall"}
	_, err := h.ApplyTenants(ctx, ts)
	var ve *topology.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Path != "$.tenants[0].apps[1]" ||
		!strings.Contains(ve.Errors[0].Msg, "learning-reactive") {
		t.Fatalf("apply with app \"firewall\": %v, want one error at $.tenants[0].apps[1] listing the known apps", err)
	}
	if got, _ := h.Tenants(ctx); len(got) != 0 {
		t.Errorf("%d tenants stored after a refused apply", len(got))
	}
	ti, _ := h.Infra(ctx)
	if !slices.Equal(ti.Apps, []string{"discovery", "learning", "learning-reactive"}) {
		t.Errorf("Infra().Apps = %v", ti.Apps)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// taRecorder is a tenant app for the glue tests: it records events.
type taRecorder struct{ ev chan taEvent }

type taEvent struct {
	kind string
	sw   controller.Switch
	pi   *controller.PacketIn
	fr   *ofp.FlowRemoved
}

func (r *taRecorder) Name() string { return "rec" }
func (r *taRecorder) SwitchUp(_ context.Context, sw controller.Switch) {
	r.ev <- taEvent{kind: "up", sw: sw}
}
func (r *taRecorder) PacketIn(_ context.Context, sw controller.Switch, pi *controller.PacketIn) controller.Disposition {
	r.ev <- taEvent{kind: "packet-in", sw: sw, pi: pi}
	return controller.Stop
}
func (r *taRecorder) FlowRemoved(_ context.Context, sw controller.Switch, fr *ofp.FlowRemoved) {
	r.ev <- taEvent{kind: "flow-removed", sw: sw, fr: fr}
}

func (r *taRecorder) next(t *testing.T, kind string) taEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-r.ev:
			if e.kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

func (r *taRecorder) none(t *testing.T, kind string) {
	t.Helper()
	timeout := time.After(200 * time.Millisecond)
	for {
		select {
		case e := <-r.ev:
			if e.kind == kind {
				t.Fatalf("unexpected %s on %v", kind, e.sw)
			}
		case <-timeout:
			return
		}
	}
}

// taSwitch is a physical edge bridge that records flow-mods.
type taSwitch struct {
	controllertest.NoMultipart // PortDesc, GroupDesc, MeterConfig, Multipart: unsupported

	dpid controller.DPID
	done chan struct{}
	mu   sync.Mutex
	fms  []*ofp.FlowMod
}

func (s *taSwitch) DPID() controller.DPID                           { return s.dpid }
func (s *taSwitch) NTables() uint8                                  { return 254 }
func (s *taSwitch) Ports() []ofp.Port                               { return nil }
func (s *taSwitch) Port(ofp.PortNo) (ofp.Port, bool)                { return ofp.Port{}, false }
func (s *taSwitch) Logger() *slog.Logger                            { return quietLogger() }
func (s *taSwitch) Done() <-chan struct{}                           { return s.done }
func (s *taSwitch) String() string                                  { return "ta" }
func (s *taSwitch) GroupMod(context.Context, *ofp.GroupMod) error   { return nil }
func (s *taSwitch) MeterMod(context.Context, *ofp.MeterMod) error   { return nil }
func (s *taSwitch) PacketOut(context.Context, *ofp.PacketOut) error { return nil }
func (s *taSwitch) Barrier(context.Context) error                   { return nil }
func (s *taSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	return nil, nil
}
func (s *taSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fms = append(s.fms, fm)
	return nil
}
func (s *taSwitch) cookies() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []uint64
	for _, f := range s.fms {
		cs = append(cs, f.Cookie)
	}
	return cs
}

// startRecTenant returns a hypervisor over a fresh store and a fake fabric
// (cfg, if not nil, adjusts its Config) where examples/two-tenants.json's
// tenant2 runs the apps "learning" and "rec" (the returned recorder, which
// has seen its 3 virtual switches come up), with tenant2/h1 (s1 port 1)
// bound on aws vm1 (DPID 0x101) port 5, and tenant2's ID.
func startRecTenant(t *testing.T, cfg func(*Config)) (*Hypervisor, *taRecorder, addr.TenantID) {
	t.Helper()
	st, err := store.Open(t.TempDir()+"/skv.db", store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &taRecorder{ev: make(chan taEvent, 256)}
	c := Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: (&fakeFabric{}).dial,
		TenantApps: map[string]apps.Factory{"rec": func(apps.Options) (controller.App, error) { return rec, nil }}}
	if cfg != nil {
		cfg(&c)
	}
	h, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.closeTenantApps)
	ctx := ctxT(t)
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	ts[1].Apps = []string{"learning", "rec"}
	out, err := h.ApplyTenants(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rec.next(t, "up")
	}
	if err := st.PutBinding(store.Binding{IfaceID: "tenant2/h1", Site: "aws", VM: "vm1", Bridge: "vm1", DPID: 0x101,
		PortName: "t2h1", OFPort: 5}); err != nil {
		t.Fatal(err)
	}
	if err := h.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return h, rec, out[1].TenantID
}

// TestTenantAppsGlue drives a custom tenant app (Config.TenantApps)
// through the hypervisor: tenant packet-ins reach it in the virtual view,
// physical LLDP never does, a host's LLDP does, its flow-mods reach the
// bound edge bridge with the tenant's cookie, and flow-removed messages of
// its entries come back to the right virtual switch; Config.TenantPacketIn
// still sees every tenant packet-in.
func TestTenantAppsGlue(t *testing.T) {
	var hooked atomic.Int64
	h, rec, id := startRecTenant(t, func(c *Config) { c.TenantPacketIn = func(TenantPacketIn) { hooked.Add(1) } })
	ctx := ctxT(t)
	// the bridge connects.
	phys := &taSwitch{dpid: 0x101, done: make(chan struct{})}
	h.SwitchUp(ctx, phys)
	h.mu.Lock()
	h.ofports[portKey{0x101, "t2h1"}] = 5
	h.portIDs[portKey{0x101, "t2h1"}] = "tenant2/h1"
	v := h.views[id].view
	h.mu.Unlock()

	// A flow-mod of the app on s1 reaches the bound bridge.
	rt := h.TenantAppRuntime("tenant2")
	s1, ok := rt.Switch(topology.DeriveDPID("s1"))
	if !ok {
		t.Fatal("no virtual switch s1")
	}
	if err := s1.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd, Cookie: 0x77, Priority: 9, Buffer: ofp.NoBuffer, Flags: ofp.FlowFlagSendFlowRem,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(mustMAC(t, "00:00:00:00:00:02"))}},
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(2))}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(phys.cookies(), pipeline.TenantCookie(id, 0x77)) {
		t.Fatalf("bridge cookies %x: the app's entry (cookie %#x) did not arrive", phys.cookies(), pipeline.TenantCookie(id, 0x77))
	}

	// A tenant packet-in (table-miss in virtual table 1 of s1, in-port h1).
	h1, _ := v.HostByName("h1")
	sw1, _ := v.SwitchByDPID(topology.DeriveDPID("s1"))
	src := addr.FabricMAC(id, h1.Index)
	frame := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src[:]...)
	frame = append(frame, 0x08, 0x06, 0, 1)
	md := pipeline.MetadataValue(id, h1.VPort, sw1.Index, true)
	h.packetIn(0x101, &controller.PacketIn{TableID: pipeline.TableTenant + 1, Cookie: pipeline.InfraCookie(0, 0), InPort: 5, Data: frame,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(5), pipeline.Metadata(md, ^uint64(0))}}})
	e := rec.next(t, "packet-in")
	if e.sw.DPID() != controller.DPID(topology.DeriveDPID("s1")) || e.pi.InPort != 1 || e.pi.TableID != 1 ||
		e.pi.Reason != ofp.PacketInReasonNoMatch || addr.MAC(e.pi.Data[6:12]) != mustMAC(t, "00:00:00:00:00:01") {
		t.Errorf("packet-in on %v: in_port %d table %d reason %v src %x", e.sw, e.pi.InPort, e.pi.TableID, e.pi.Reason, e.pi.Data[6:12])
	}
	if hooked.Load() != 1 {
		t.Errorf("Config.TenantPacketIn saw %d packet-ins, want 1", hooked.Load())
	}
	// Physical LLDP (the uplink, port 1): never to the tenant.
	lldp := append(make([]byte, 12), 0x88, 0xcc, 0, 0)
	if d := h.packetIn(0x101, &controller.PacketIn{InPort: 1, Data: lldp}); d != controller.Continue {
		t.Errorf("physical LLDP: %v, want Continue", d)
	}
	rec.none(t, "packet-in")
	// A host's LLDP: to its tenant, on the host's virtual port.
	copy(lldp[6:12], []byte{0, 0, 0, 0, 0, 1})
	if d := h.packetIn(0x101, &controller.PacketIn{InPort: 5, Data: lldp}); d != controller.Stop {
		t.Errorf("host LLDP: %v, want Stop", d)
	}
	if e := rec.next(t, "packet-in"); e.sw.DPID() != controller.DPID(topology.DeriveDPID("s1")) || e.pi.InPort != 1 {
		t.Errorf("host LLDP on %v port %d, want s1 port 1", e.sw, e.pi.InPort)
	}
	// Flow-removed of the app's entry's physical copies: back on s1 once,
	// with the app's cookie.
	// (A background replay for the joining bridge may have sent them twice:
	// the fake reports an empty flow table.)
	var copies []*ofp.FlowMod
	seen := map[string]bool{}
	phys.mu.Lock()
	for _, f := range phys.fms {
		k := (&pipeline.Entry{Table: uint8(f.Table), Priority: f.Priority, Match: f.Match.Fields}).Key()
		if f.Cookie == pipeline.TenantCookie(id, 0x77) && !seen[k] {
			seen[k] = true
			copies = append(copies, f)
		}
	}
	phys.mu.Unlock()
	// The copies were restored (or a migration's target): 10 packets each
	// before, carried as counter offsets (snapshots.go).
	var offs []snapshot.Flow
	for _, f := range copies {
		fl, err := snapshot.FlowFromStats(&controller.FlowStats{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie,
			Match: f.Match, PacketCount: 10, ByteCount: 1000})
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, fl)
	}
	h.remember(0x101, restoreRecord{DPID: "0000000000000101", At: time.Now(), Offsets: offs})
	for i, f := range copies {
		if i > 0 {
			rec.none(t, "flow-removed")
		}
		h.FlowRemoved(ctx, phys, &ofp.FlowRemoved{Cookie: f.Cookie, Table: f.Table, Priority: f.Priority, Reason: ofp.FlowReasonIdleTimeout,
			Match: f.Match, PacketCount: 2})
	}
	if e := rec.next(t, "flow-removed"); e.sw.DPID() != controller.DPID(topology.DeriveDPID("s1")) || e.fr.Cookie != 0x77 || e.fr.Table != 0 ||
		e.fr.PacketCount != (2+10)*uint64(len(copies)) {
		t.Errorf("flow-removed on %v: %+v (%d copies)", e.sw, e.fr, len(copies))
	}

	// The app's sessions see restored/merged counters (countersView).
	if _, ok := (physical{h}).Switch(0x101).(counterSwitch); !ok {
		t.Error("physical.Switch does not hand out the counters view")
	}
	// ovs-vswitchd restarts: the bridge reconnects with an empty table; the
	// reconcile restores the hypervisor's entries and the replay the app's
	// (installed again first, since the old one expired above).
	if err := s1.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd, Cookie: 0x78, Priority: 9, Buffer: ofp.NoBuffer,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(mustMAC(t, "00:00:00:00:00:02"))}},
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(2))}}); err != nil {
		t.Fatal(err)
	}
	close(phys.done)
	h.SwitchDown(ctx, phys)
	if (physical{h}).Switch(0x101) != nil {
		t.Error("a disconnected bridge is still handed out")
	}
	phys2 := &taSwitch{dpid: 0x101, done: make(chan struct{})}
	h.SwitchUp(ctx, phys2)
	if !slices.Contains(phys2.cookies(), pipeline.TenantCookie(id, 0x78)) {
		t.Fatalf("reconnected bridge cookies %x: the app's entry (cookie %#x) was not replayed", phys2.cookies(), pipeline.TenantCookie(id, 0x78))
	}
	if slices.Contains(phys2.cookies(), pipeline.TenantCookie(id, 0x77)) {
		t.Error("the expired entry was replayed")
	}
	if rt.Replays() == 0 {
		t.Error("no replay counted")
	}
}
