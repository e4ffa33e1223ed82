package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

func desired(t *testing.T) []pipeline.Entry {
	t.Helper()
	cl, err := pipeline.Clone(pipeline.SetField(pipeline.EthDst(addr.FabricMAC(0x0200, 2))), pipeline.Resubmit(20))
	if err != nil {
		t.Fatal(err)
	}
	return []pipeline.Entry{
		{Table: 0, Priority: 1000, Cookie: pipeline.InfraCookie(0, 0), Match: []ofp.XM{pipeline.EthType(0x88cc)},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(ofp.PortController)))}},
		{Table: 0, Priority: 190, Cookie: pipeline.InfraCookie(0x0200, 1),
			Match: []ofp.XM{pipeline.InPort(1), pipeline.EthSrc(addr.MustParseMAC("00:00:00:00:00:01"))},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.SetField(pipeline.EthSrc(addr.FabricMAC(0x0200, 1)))),
				pipeline.WriteMetadata(0x0200000100000001, ^uint64(0)), pipeline.Goto(10)}},
		{Table: 10, Priority: 100, Cookie: pipeline.TenantCookie(0x0200, 0x42),
			Match:        []ofp.XM{pipeline.Metadata(0x0200000000000001, 0xffff00008000ffff), pipeline.EthDst(addr.MustParseMAC("00:00:00:00:00:02"))},
			Instructions: ofp.Instructions{pipeline.Apply(cl)}},
		{Table: 0, Priority: 0, Cookie: pipeline.InfraCookie(0, 0)},
	}
}

// asReported turns entries into what a switch reports: OXMs reversed,
// all-ones masks spelled out, instructions in another order, encoded and
// decoded through the real flow-stats codec.
func asReported(t testing.TB, es []pipeline.Entry) []ofwire.FlowStats {
	t.Helper()
	var b []byte
	for _, e := range es {
		var match []ofp.XM
		for i := len(e.Match) - 1; i >= 0; i-- {
			f := e.Match[i]
			if len(f.Mask) == 0 && f.Type == ofp.XMTypeEthSrc {
				f.Mask = ofp.XMValue{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			}
			match = append(match, f)
		}
		ins := make(ofp.Instructions, len(e.Instructions))
		for i := range e.Instructions {
			ins[len(ins)-1-i] = e.Instructions[i]
		}
		fs := ofwire.FlowStats{Table: ofp.Table(e.Table), Priority: e.Priority, Cookie: e.Cookie, PacketCount: 9,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: match}, Instructions: ins}
		var err error
		if b, err = ofwire.AppendFlowStats(b, &fs); err != nil {
			t.Fatal(err)
		}
	}
	out, err := ofwire.DecodeFlowStats(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDiffEmptyTableAddsEverything(t *testing.T) {
	d := desired(t)
	p, err := Diff(d, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Add) != len(d) || len(p.Delete) != 0 {
		t.Fatalf("plan: %d adds %d deletes", len(p.Add), len(p.Delete))
	}
}

func TestDiffNormalizedEqualIsEmpty(t *testing.T) {
	d := desired(t)
	p, err := Diff(d, asReported(t, d), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		t.Fatalf("plan not empty: %+v", p)
	}
}

func TestDiffChangesAndStrays(t *testing.T) {
	d := desired(t)
	actual := asReported(t, d)
	// Entry 1 differs in its goto table, entry 2 in its cookie.
	actual[1].Instructions[0] = pipeline.Goto(11)
	actual[2].Cookie = pipeline.TenantCookie(0x0200, 0x43)
	stray := pipeline.Entry{Table: 20, Priority: 7, Cookie: pipeline.InfraCookie(0, 9), Match: []ofp.XM{pipeline.InPort(7)}}
	tenantStray := pipeline.Entry{Table: 11, Priority: 7, Cookie: pipeline.TenantCookie(0x0201, 1), Match: []ofp.XM{pipeline.InPort(7)}}
	foreign := pipeline.Entry{Table: 0, Priority: 65000, Cookie: 0x6c6c647000000000, Match: []ofp.XM{pipeline.EthType(0x88cc)}}
	operator := pipeline.Entry{Table: 0, Priority: 5, Cookie: 0, Match: []ofp.XM{pipeline.InPort(3)}}
	actual = append(actual, asReported(t, []pipeline.Entry{stray, tenantStray, foreign, operator})...)
	p, err := Diff(d, actual, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Add) != 2 || p.Add[0].Key() != d[1].Key() || p.Add[1].Key() != d[2].Key() {
		t.Errorf("adds = %v, want entries 1 and 2 replaced in place", p.Add)
	}
	if len(p.Delete) != 2 || p.Delete[0].Cookie != stray.Cookie || p.Delete[1].Cookie != tenantStray.Cookie {
		t.Errorf("deletes = %v, want the two owned strays only", p.Delete)
	}
	// A caller that does not track tenant entries leaves them alone.
	p, err = Diff(d[:2], actual, Options{Owns: pipeline.IsInfraCookie})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Delete {
		if !pipeline.IsInfraCookie(e.Cookie) {
			t.Errorf("deleted a tenant entry with Owns=IsInfraCookie: %s", e.String())
		}
	}
	// Table scope.
	p, err = Diff(d, actual, Options{Tables: map[uint8]bool{20: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Add) != 0 || len(p.Delete) != 1 || p.Delete[0].Table != 20 {
		t.Errorf("table-scoped plan = %+v", p)
	}
}

func TestDiffDuplicateDesired(t *testing.T) {
	d := desired(t)
	d = append(d, d[0])
	d[len(d)-1].Cookie = 1
	if _, err := Diff(d, nil, Options{}); err == nil || !strings.Contains(err.Error(), "duplicates") {
		t.Fatalf("Diff = %v, want duplicate error", err)
	}
}

// fakeSwitch records flow-mods and barriers.
type fakeSwitch struct {
	mods      []*ofp.FlowMod
	barriers  int
	barrierE  error
	flowModE  error
	flowStats []ofwire.FlowStats
}

func (f *fakeSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	if f.flowModE != nil {
		return f.flowModE
	}
	f.mods = append(f.mods, fm)
	return nil
}
func (f *fakeSwitch) Barrier(context.Context) error { f.barriers++; return f.barrierE }
func (f *fakeSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]ofwire.FlowStats, error) {
	return f.flowStats, nil
}

func TestApplyOrderAndBarrier(t *testing.T) {
	d := desired(t)
	stray := pipeline.Entry{Table: 20, Priority: 7, Cookie: pipeline.InfraCookie(0, 9), Match: []ofp.XM{pipeline.InPort(7)}}
	sw := &fakeSwitch{flowStats: asReported(t, append([]pipeline.Entry{stray}, d[1:]...))}
	p, err := Sync(context.Background(), sw, d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.mods) != 2 || sw.barriers != 1 {
		t.Fatalf("%d mods, %d barriers", len(sw.mods), sw.barriers)
	}
	if sw.mods[0].Command != ofp.FlowAdd || sw.mods[0].Priority != 1000 {
		t.Errorf("first mod %+v, want the missing ADD", sw.mods[0])
	}
	del := sw.mods[1]
	if del.Command != ofp.FlowDeleteStrict || del.Table != 20 || del.Priority != 7 || del.Cookie != stray.Cookie || del.CookieMask != ^uint64(0) {
		t.Errorf("delete = %+v", del)
	}
	if len(p.Add) != 1 || len(p.Delete) != 1 {
		t.Errorf("plan %+v", p)
	}
	// Empty plan: nothing sent, not even a barrier.
	sw2 := &fakeSwitch{}
	if err := Apply(context.Background(), sw2, Plan{}); err != nil || sw2.barriers != 0 || len(sw2.mods) != 0 {
		t.Errorf("empty plan sent %d mods, %d barriers, err %v", len(sw2.mods), sw2.barriers, err)
	}
	// Errors surface with context.
	boom := errors.New("boom")
	sw3 := &fakeSwitch{barrierE: boom}
	if err := Apply(context.Background(), sw3, p); !errors.Is(err, boom) || !strings.Contains(err.Error(), "barrier") {
		t.Errorf("barrier error = %v", err)
	}
	sw4 := &fakeSwitch{flowModE: boom}
	if err := Apply(context.Background(), sw4, p); !errors.Is(err, boom) || sw4.barriers != 0 {
		t.Errorf("flow-mod error = %v (barriers %d)", err, sw4.barriers)
	}
}

func TestCompiledModelRoundTrip(t *testing.T) {
	// Everything Compile produces survives the flow-stats codec and
	// reconciles to empty.
	m := &pipeline.Model{
		Sites: []pipeline.Site{{Name: "aws", Gateway: pipeline.Gateway{DPID: 0x91, Downlinks: map[pipeline.DPID]uint32{0xe1: 1}},
			Edges: []pipeline.EdgeBridge{{DPID: 0xe1, Uplink: 100}}}},
	}
	out, err := pipeline.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	for d, es := range out {
		p, err := Diff(es, asReported(t, es), Options{})
		if err != nil || !p.Empty() {
			t.Errorf("%s: %+v %v", d, p, err)
		}
	}
}

// TestHostMoveIsMinimal moves a host between edge bridges of one site and
// checks that reconciling each bridge touches only what the move changes.
func TestHostMoveIsMinimal(t *testing.T) {
	model := func(bridge pipeline.DPID, port uint32) *pipeline.Model {
		tp := &topology.Topology{Tenant: "t1", Switches: []topology.Switch{{Name: "s", DPID: 1}},
			Hosts: []topology.Host{{Name: "a", MAC: "00:00:00:00:00:01", Switch: "s", Port: 1},
				{Name: "b", MAC: "00:00:00:00:00:02", Switch: "s", Port: 2}}}
		return &pipeline.Model{
			Sites: []pipeline.Site{{Name: "x", Gateway: pipeline.Gateway{DPID: 0x91, Downlinks: map[pipeline.DPID]uint32{0xe1: 1, 0xe2: 2}},
				Edges: []pipeline.EdgeBridge{{DPID: 0xe1, Uplink: 100}, {DPID: 0xe2, Uplink: 100}}}},
			Tenants: []pipeline.Tenant{{ID: 0x0200, Topology: tp, Hosts: map[string]addr.HostIndex{"a": 1, "b": 2}}},
			Bindings: []pipeline.Binding{{Tenant: "t1", Host: "a", Bridge: 0xe1, Port: 1},
				{Tenant: "t1", Host: "b", Bridge: bridge, Port: port}},
		}
	}
	before, err := pipeline.Compile(model(0xe1, 2))
	if err != nil {
		t.Fatal(err)
	}
	after, err := pipeline.Compile(model(0xe2, 7))
	if err != nil {
		t.Fatal(err)
	}
	hostB := pipeline.InfraCookie(0x0200, 2)
	for d, es := range after {
		p, err := Diff(es, asReported(t, before[d]), Options{})
		if err != nil {
			t.Fatal(err)
		}
		switch d {
		case 0xe1: // b's classify (3), uplink, table 20 and 31 (2) entries go
			if len(p.Add) != 0 || len(p.Delete) != 7 {
				t.Errorf("e1: %d adds, %d deletes; want 0 and 7", len(p.Add), len(p.Delete))
			}
			for _, e := range p.Delete {
				if e.Cookie != hostB {
					t.Errorf("e1 deletes %s, not host b's", e.String())
				}
			}
		case 0xe2: // everything of b, plus t1's tables 5 and 30 (first host of t1 here)
			if len(p.Delete) != 0 || len(p.Add) != 7+4 {
				t.Errorf("e2: %d adds, %d deletes; want 11 and 0", len(p.Add), len(p.Delete))
			}
		case 0x91: // b's route changes downlink in place
			if len(p.Add) != 1 || len(p.Delete) != 0 || p.Add[0].Cookie != hostB {
				t.Errorf("gateway: %+v", p)
			}
		}
	}
}

// The controller's switch handle is what Apply and Sync drive.
var _ SyncSwitch = (controller.Switch)(nil)
