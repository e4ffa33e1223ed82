package setuptime

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"github.com/skyvisor/skyvisor/tunnels"
)

// fakeGateway is a controller.Switch whose packet-outs a test delivers by
// hand to the peer gateway (the tunnel) as packet-ins.
type fakeGateway struct {
	controllertest.NoMultipart // PortDesc, GroupDesc, MeterConfig, Multipart: unsupported

	dpid  controller.DPID
	ports []ofp.Port
	mu    sync.Mutex
	outs  []*ofp.PacketOut
}

func (f *fakeGateway) DPID() controller.DPID { return f.dpid }
func (f *fakeGateway) NTables() uint8        { return 254 }
func (f *fakeGateway) Ports() []ofp.Port     { return f.ports }
func (f *fakeGateway) Port(no ofp.PortNo) (ofp.Port, bool) {
	for _, p := range f.ports {
		if p.PortNo == no {
			return p, true
		}
	}
	return ofp.Port{}, false
}
func (f *fakeGateway) Logger() *slog.Logger                          { return slog.New(slog.DiscardHandler) }
func (f *fakeGateway) Done() <-chan struct{}                         { return nil }
func (f *fakeGateway) FlowMod(context.Context, *ofp.FlowMod) error   { return nil }
func (f *fakeGateway) GroupMod(context.Context, *ofp.GroupMod) error { return nil }
func (f *fakeGateway) MeterMod(context.Context, *ofp.MeterMod) error { return nil }
func (f *fakeGateway) Barrier(context.Context) error                 { return nil }
func (f *fakeGateway) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	return nil, nil
}
func (f *fakeGateway) String() string { return "fake" }
func (f *fakeGateway) PacketOut(_ context.Context, po *ofp.PacketOut) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outs = append(f.outs, po)
	return nil
}

// take returns and clears the packet-outs sent so far.
func (f *fakeGateway) take() []*ofp.PacketOut {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.outs
	f.outs = nil
	return o
}

// TestTunnelProbeRound: nothing is probed before both ends of a tunnel
// have their port; a probe crossing the tunnel confirms that direction
// only; once both directions came back nothing more is sent.
func TestTunnelProbeRound(t *testing.T) {
	ctx := context.Background()
	plan := tunnels.Plan{Sites: []string{"s01", "s02"}, Tunnels: []tunnels.Tunnel{{A: "s01", B: "s02"}}}
	gw := map[string]uint64{"s01": 0x11, "s02": 0x22}
	a := &fakeGateway{dpid: 0x11}
	b := &fakeGateway{dpid: 0x22}
	p := newTunnelProbe()
	p.SwitchUp(ctx, a)
	p.SwitchUp(ctx, b)
	if n := p.connected([]uint64{0x11, 0x22, 0x33}); n != 2 {
		t.Fatalf("connected %d, want 2", n)
	}
	st := p.round(ctx, plan, gw)
	if st.Ports != 0 || st.Confirmed != 0 || len(st.Pending) != 2 || len(a.take())+len(b.take()) != 0 {
		t.Fatalf("no ports yet: %+v", st)
	}
	a.ports = []ofp.Port{{PortNo: 7, Name: tunnels.PortName("s02")}, {PortNo: 1, Name: "gw-vm1"}}
	st = p.round(ctx, plan, gw)
	if st.Ports != 1 || len(a.take()) != 0 {
		t.Fatalf("one end only: %+v", st)
	}
	b.ports = []ofp.Port{{PortNo: 9, Name: tunnels.PortName("s01")}}
	st = p.round(ctx, plan, gw)
	outA, outB := a.take(), b.take()
	if st.Ports != 2 || st.Confirmed != 0 || len(outA) != 1 || len(outB) != 1 {
		t.Fatalf("both ends: %+v, %d and %d probes", st, len(outA), len(outB))
	}
	if out := outA[0].Actions[0].(*ofp.ActionOutput); out.Port != 7 {
		t.Fatalf("probe of s01 out of port %d, want 7", out.Port)
	}
	// s01's probe crosses the tunnel and comes in at s02 port 9
	if d := p.PacketIn(ctx, b, &controller.PacketIn{InPort: 9, Data: outA[0].Data}); d != controller.Stop {
		t.Fatalf("probe disposition %v", d)
	}
	// a probe arriving on the wrong port confirms nothing
	p.PacketIn(ctx, a, &controller.PacketIn{InPort: 1, Data: outB[0].Data})
	st = p.round(ctx, plan, gw)
	if st.Confirmed != 1 || len(st.Pending) != 1 || st.Pending[0] != "s02->s01" || len(a.take()) != 0 || len(b.take()) != 1 {
		t.Fatalf("one direction confirmed: %+v", st)
	}
	p.PacketIn(ctx, a, &controller.PacketIn{InPort: 7, Data: outB[0].Data})
	st = p.round(ctx, plan, gw)
	if st.Confirmed != 2 || len(st.Pending) != 0 || len(a.take())+len(b.take()) != 0 {
		t.Fatalf("both directions: %+v", st)
	}
	// other frames continue to later apps
	if d := p.PacketIn(ctx, a, &controller.PacketIn{InPort: 1, Data: make([]byte, 60)}); d != controller.Continue {
		t.Fatalf("non-LLDP disposition %v", d)
	}
	p.SwitchDown(ctx, a)
	if n := p.connected([]uint64{0x11, 0x22}); n != 1 {
		t.Fatalf("after SwitchDown: %d connected", n)
	}
}
