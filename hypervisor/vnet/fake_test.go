package vnet

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// Fixture: tenant "t" (ID 0x0200) with three virtual switches in a line,
// s1 -(10:10)- s2 -(11:10)- s3. h1 on s1 port 1 (bridge e1 port 1), h2 on
// s3 port 1 (bridge e3 port 7), h3 on s2 port 1 (not bound).
const (
	tID      = addr.TenantID(0x0200)
	e1, e3   = controller.DPID(0xe1), controller.DPID(0xe3)
	vs1, vs2 = topology.DPID(0x51), topology.DPID(0x52)
	vs3      = topology.DPID(0x53)
)

var (
	mac1 = addr.MustParseMAC("00:00:00:00:00:01")
	mac2 = addr.MustParseMAC("00:00:00:00:00:02")
)

func fixtureTopology() *topology.Topology {
	return &topology.Topology{Tenant: "t", Apps: []string{"discovery"},
		Switches: []topology.Switch{{Name: "s1", DPID: vs1}, {Name: "s2", DPID: vs2}, {Name: "s3", DPID: vs3}},
		Links: []topology.Link{
			{A: topology.Endpoint{Switch: "s1", Port: 10}, B: topology.Endpoint{Switch: "s2", Port: 10}},
			{A: topology.Endpoint{Switch: "s2", Port: 11}, B: topology.Endpoint{Switch: "s3", Port: 10}},
		},
		Hosts: []topology.Host{
			{Name: "h1", MAC: mac1.String(), IP: "10.0.0.1/24", Switch: "s1", Port: 1, Cloud: "aws"},
			{Name: "h2", MAC: mac2.String(), IP: "10.0.0.2/24", Switch: "s3", Port: 1, Cloud: "gcp"},
			{Name: "h3", MAC: "00:00:00:00:00:03", IP: "10.0.0.3/24", Switch: "s2", Port: 1, Cloud: "aws"},
		}}
}

func fixtureView(t testing.TB, id addr.TenantID, tp *topology.Topology) *pipeline.View {
	t.Helper()
	v, err := pipeline.NewView(pipeline.Tenant{ID: id, Topology: tp, Hosts: map[string]addr.HostIndex{"h1": 1, "h2": 2, "h3": 3}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fixtureBindings() []pipeline.Binding {
	return []pipeline.Binding{
		{Tenant: "t", Host: "h1", Bridge: e1, Port: 1},
		{Tenant: "t", Host: "h2", Bridge: e3, Port: 7},
		{Tenant: "other", Host: "h1", Bridge: 0xe9, Port: 1},
	}
}

// fakePhys is a set of fake edge bridges.
type fakePhys struct {
	mu  sync.Mutex
	sws map[controller.DPID]*fakeSwitch
}

func newFakePhys(dpids ...controller.DPID) *fakePhys {
	p := &fakePhys{sws: map[controller.DPID]*fakeSwitch{}}
	for _, d := range dpids {
		p.sws[d] = &fakeSwitch{dpid: d, done: make(chan struct{}), outs: make(chan *ofp.PacketOut, 1024)}
	}
	return p
}

func (p *fakePhys) Switch(d controller.DPID) controller.Switch {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.sws[d]; ok {
		return s
	}
	return nil
}

// fakeSwitch records what is sent to it.
type fakeSwitch struct {
	controllertest.NoMultipart // PortDesc, GroupDesc, MeterConfig, Multipart: unsupported

	dpid controller.DPID
	done chan struct{}

	mu       sync.Mutex
	flowMods []*ofp.FlowMod
	outsList []*ofp.PacketOut
	barriers int
	stats    []controller.FlowStats
	statReq  *ofp.FlowStatsRequest
	outs     chan *ofp.PacketOut // every packet-out, for waiting
}

func (f *fakeSwitch) DPID() controller.DPID                         { return f.dpid }
func (f *fakeSwitch) NTables() uint8                                { return 254 }
func (f *fakeSwitch) Ports() []ofp.Port                             { return nil }
func (f *fakeSwitch) Port(ofp.PortNo) (ofp.Port, bool)              { return ofp.Port{}, false }
func (f *fakeSwitch) Logger() *slog.Logger                          { return slog.Default() }
func (f *fakeSwitch) Done() <-chan struct{}                         { return f.done }
func (f *fakeSwitch) String() string                                { return fmt.Sprintf("fake %s", f.dpid) }
func (f *fakeSwitch) GroupMod(context.Context, *ofp.GroupMod) error { return nil }
func (f *fakeSwitch) MeterMod(context.Context, *ofp.MeterMod) error { return nil }

func (f *fakeSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	f.mu.Lock()
	f.flowMods = append(f.flowMods, fm)
	f.mu.Unlock()
	return nil
}

func (f *fakeSwitch) PacketOut(_ context.Context, po *ofp.PacketOut) error {
	f.mu.Lock()
	f.outsList = append(f.outsList, po)
	f.mu.Unlock()
	select {
	case f.outs <- po:
	default:
	}
	return nil
}

func (f *fakeSwitch) Barrier(context.Context) error {
	f.mu.Lock()
	f.barriers++
	f.mu.Unlock()
	return nil
}

func (f *fakeSwitch) FlowStats(_ context.Context, req *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statReq = req
	return f.stats, nil
}

func (f *fakeSwitch) sent() ([]*ofp.FlowMod, []*ofp.PacketOut) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*ofp.FlowMod(nil), f.flowMods...), append([]*ofp.PacketOut(nil), f.outsList...)
}

// recorder is a tenant app that records every event on a channel.
type recorder struct {
	name   string
	events chan recEvent
	onUp   func(ctx context.Context, sw controller.Switch)
	onPI   func(ctx context.Context, sw controller.Switch, pi *controller.PacketIn)
}

type recEvent struct {
	kind string // up, down, packet-in, port-status, flow-removed, error
	sw   controller.Switch
	pi   *controller.PacketIn
	ps   *controller.PortStatus
	fr   *ofp.FlowRemoved
	err  *controller.ErrorEvent
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, events: make(chan recEvent, 1024)}
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) SwitchUp(ctx context.Context, sw controller.Switch) {
	r.events <- recEvent{kind: "up", sw: sw}
	if r.onUp != nil {
		r.onUp(ctx, sw)
	}
}
func (r *recorder) SwitchDown(_ context.Context, sw controller.Switch) {
	r.events <- recEvent{kind: "down", sw: sw}
}
func (r *recorder) PacketIn(ctx context.Context, sw controller.Switch, pi *controller.PacketIn) controller.Disposition {
	if r.onPI != nil {
		r.onPI(ctx, sw, pi)
	}
	r.events <- recEvent{kind: "packet-in", sw: sw, pi: pi}
	return controller.Continue
}
func (r *recorder) PortStatus(_ context.Context, sw controller.Switch, ps *controller.PortStatus) {
	r.events <- recEvent{kind: "port-status", sw: sw, ps: ps}
}
func (r *recorder) FlowRemoved(_ context.Context, sw controller.Switch, fr *ofp.FlowRemoved) {
	r.events <- recEvent{kind: "flow-removed", sw: sw, fr: fr}
}
func (r *recorder) SwitchError(_ context.Context, sw controller.Switch, ev *controller.ErrorEvent) {
	r.events <- recEvent{kind: "error", sw: sw, err: ev}
}

// next waits for the next event of kind (others are skipped).
func (r *recorder) next(t testing.TB, kind string) recEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev.kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 5 s", kind)
		}
	}
}

// none fails if an event of kind arrives within d.
func (r *recorder) none(t testing.TB, kind string, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev := <-r.events:
			if ev.kind == kind {
				t.Fatalf("unexpected %s event on %v", kind, ev.sw)
			}
		case <-timeout:
			return
		}
	}
}

// startTenant starts a Tenant with apps over phys, waiting for the
// recorder's SwitchUps when rec is among the apps.
func startTenant(t testing.TB, phys Physical, rec *recorder, apps ...controller.App) *Tenant {
	t.Helper()
	if rec != nil {
		apps = append([]controller.App{rec}, apps...)
	}
	tn, err := New(Config{Apps: apps, Physical: phys, Logger: slog.New(slog.DiscardHandler)},
		State{View: fixtureView(t, tID, fixtureTopology()), Bindings: fixtureBindings()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tn.Close)
	if rec != nil {
		for range 3 {
			rec.next(t, "up")
		}
	}
	return tn
}

// lldpFrame is a minimal LLDP frame from src.
func lldpFrame(src addr.MAC) []byte {
	f := append([]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}, src[:]...)
	f = append(f, 0x88, 0xcc)
	return append(f, 0x02, 0x07, 0x04, 1, 2, 3, 4, 5, 6, 0x04, 0x05, 0x02, 0, 0, 0, 10, 0x06, 0x02, 0, 120, 0, 0)
}

// ethFrame is an IPv4-typed frame dst <- src with a small payload.
func ethFrame(dst, src addr.MAC) []byte {
	f := append(append(dst[:0:0], dst[:]...), src[:]...)
	f = append(f, 0x08, 0x00)
	return append(f, make([]byte, 46)...)
}
