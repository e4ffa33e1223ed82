package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
)

// fakeSwitch is a flow table obeying FlowMod ADD (replace by key) and
// DELETE_STRICT (key and cookie); Barrier fails once when a FlowMod with
// priority failPriority was sent since the last barrier.
type fakeSwitch struct {
	table        []pipeline.Entry
	failPriority uint16
	failed       bool
	mods         []string
}

func (f *fakeSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	e := pipeline.Entry{Table: uint8(fm.Table), Priority: fm.Priority, Match: fm.Match.Fields,
		Instructions: fm.Instructions, Cookie: fm.Cookie, IdleTimeout: fm.IdleTimeout,
		HardTimeout: fm.HardTimeout, Flags: fm.Flags}
	k := e.Key()
	switch fm.Command {
	case ofp.FlowAdd:
		f.mods = append(f.mods, "add "+e.String())
		if fm.Priority == f.failPriority && f.failPriority != 0 {
			f.failed = true
			return nil // refused: the error comes with the barrier
		}
		f.table = slices.DeleteFunc(f.table, func(o pipeline.Entry) bool { return o.Key() == k })
		f.table = append(f.table, e)
	case ofp.FlowDeleteStrict:
		f.mods = append(f.mods, "delete "+e.String())
		f.table = slices.DeleteFunc(f.table, func(o pipeline.Entry) bool { return o.Key() == k && o.Cookie == fm.Cookie })
	default:
		return fmt.Errorf("fake: command %d", fm.Command)
	}
	return nil
}

func (f *fakeSwitch) Barrier(context.Context) error {
	if f.failed {
		f.failed = false
		return errors.New("OFPT_ERROR bad action")
	}
	return nil
}

func (f *fakeSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]ofwire.FlowStats, error) {
	var out []ofwire.FlowStats
	for _, e := range f.table {
		out = append(out, ofwire.FlowStats{Table: ofp.Table(e.Table), Priority: e.Priority, Cookie: e.Cookie,
			IdleTimeout: e.IdleTimeout, HardTimeout: e.HardTimeout, Flags: e.Flags,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: e.Match}, Instructions: e.Instructions,
			PacketCount: 1, ByteCount: 100, DurationSec: 2})
	}
	return out, nil
}

// fakeConfig is an OVSDB holding bridges in memory.
type fakeConfig struct {
	bridges map[string]BridgeConfig
	applied []string
	fail    error
}

func (c *fakeConfig) ReadBridge(_ context.Context, name string) (BridgeConfig, error) {
	b, ok := c.bridges[name]
	if !ok {
		return BridgeConfig{}, fmt.Errorf("bridge %q: %w", name, ErrNoBridge)
	}
	return b, nil
}

func (c *fakeConfig) ApplyBridge(_ context.Context, want *BridgeConfig) (ConfigPlan, error) {
	var cur *BridgeConfig
	if b, ok := c.bridges[want.Name]; ok {
		cur = &b
	}
	p := PlanConfig(cur, want, nil)
	if c.fail != nil {
		return p, c.fail
	}
	c.applied = append(c.applied, p.String())
	c.bridges[want.Name] = *want
	return p, nil
}

func testFlows(t *testing.T) []ofwire.FlowStats {
	t.Helper()
	return []ofwire.FlowStats{
		{Table: 0, Priority: 100, Cookie: 0x5359000000000001, IdleTimeout: 300, HardTimeout: 600,
			Flags: ofp.FlowFlagSendFlowRem, PacketCount: 42, ByteCount: 4200, DurationSec: 7, DurationNSec: 5,
			Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(1)}},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Resubmit(1))}},
		{Table: 1, Priority: 10, Cookie: 7, PacketCount: 3, ByteCount: 300,
			Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.InPort(1)}},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(2))}},
	}
}

func testBridge() BridgeConfig {
	return BridgeConfig{Name: "sknbr", DatapathID: "00000000000000a1", DatapathType: "netdev",
		Protocols: []string{"OpenFlow13"}, FailMode: "secure",
		Controllers: []ControllerConfig{{Target: "unix:skn.sock", ConnectionMode: "out-of-band"}},
		Ports: []PortConfig{
			{Name: "sknbr", Interfaces: []InterfaceConfig{{Name: "sknbr", Type: "internal", OFPort: 65534}}},
			{Name: "skn-h1", Interfaces: []InterfaceConfig{{Name: "skn-h1", OFPort: 1}}},
			{Name: "skn-h2", Interfaces: []InterfaceConfig{{Name: "skn-h2", OFPort: 2, Options: map[string]string{"n": "v"}}}},
		}}
}

func takeTest(t *testing.T, sw *fakeSwitch) *Snapshot {
	t.Helper()
	stats := testFlows(t)
	for i := range stats {
		e := pipeline.FromFlowStats(&stats[i])
		sw.table = append(sw.table, e)
	}
	cfg := &fakeConfig{bridges: map[string]BridgeConfig{"sknbr": testBridge()}}
	swStats := func(ctx context.Context, dpid uint64) (Switch, error) {
		if dpid != 0xa1 {
			return nil, fmt.Errorf("dpid %x", dpid)
		}
		return statsSwitch{sw, stats}, nil
	}
	s, err := Take(context.Background(), "acme", []Target{{Bridge: "sknbr", Config: cfg, Connect: swStats}},
		time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// statsSwitch reports fixed flow stats (with counters).
type statsSwitch struct {
	*fakeSwitch
	stats []ofwire.FlowStats
}

func (s statsSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]ofwire.FlowStats, error) {
	return s.stats, nil
}

func TestRoundTripKeepsEveryField(t *testing.T) {
	s := takeTest(t, &fakeSwitch{})
	b, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"version": 1`)) {
		t.Errorf("no version field in %s", b)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := Encode(got)
	if !bytes.Equal(b, b2) {
		t.Errorf("re-encoding differs:\n%s\n%s", b, b2)
	}
	stats := testFlows(t)
	for i, f := range got.Switches[0].Flows {
		fs := stats[i]
		if f.PacketCount != fs.PacketCount || f.ByteCount != fs.ByteCount || f.DurationSec != fs.DurationSec ||
			f.IdleTimeout != fs.IdleTimeout || f.HardTimeout != fs.HardTimeout || f.Flags != uint16(fs.Flags) || f.Cookie != fs.Cookie {
			t.Errorf("flow %d: %+v lost fields of %+v", i, f, fs)
		}
		e, err := f.Entry()
		if err != nil {
			t.Fatal(err)
		}
		want := pipeline.FromFlowStats(&fs)
		if !e.Equal(&want) {
			t.Errorf("flow %d: decoded %s, want %s", i, e.String(), want.String())
		}
		// The experimenter action is re-encoded byte-exactly.
		wantIns, _ := ofwire.AppendInstructions(nil, fs.Instructions)
		gotIns, _ := ofwire.AppendInstructions(nil, e.Instructions)
		if !bytes.Equal(wantIns, gotIns) {
			t.Errorf("flow %d: instructions % x, want % x", i, gotIns, wantIns)
		}
	}
	if got.Switches[0].Bridge.Ports[2].Interfaces[0].Options["n"] != "v" || got.Tenant != "acme" {
		t.Errorf("config lost: %+v", got.Switches[0].Bridge)
	}
}

func TestDecodeErrorsNameTheFlow(t *testing.T) {
	s := takeTest(t, &fakeSwitch{})
	s.Switches[0].Flows[1].Instructions = []byte{0, 4, 0, 99}
	b, _ := Encode(s)
	_, err := Decode(b)
	if err == nil || !strings.Contains(err.Error(), "sknbr") || !strings.Contains(err.Error(), "flow 1") {
		t.Fatalf("err = %v, want one naming bridge sknbr and flow 1", err)
	}
	b = bytes.Replace(b, []byte(`"version": 1`), []byte(`"version": 9`), 1)
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("err = %v, want version error", err)
	}
}

func TestIDFormat(t *testing.T) {
	t1 := time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC)
	a, b := NewID(t1), NewID(t1.Add(time.Second))
	if !ValidID(a) || !strings.HasPrefix(a, "snap-20261122T053000Z-") {
		t.Errorf("id %q", a)
	}
	if !(a < b) {
		t.Errorf("%q !< %q: ids do not sort by time", a, b)
	}
	if NewID(t1) == a {
		t.Error("two ids in the same second collide")
	}
	for _, bad := range []string{"", "snap-x", "snap-20261122T053000Z-XYZ"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestOffsetsMakeCountersContinue(t *testing.T) {
	s := takeTest(t, &fakeSwitch{})
	var o Offsets
	o.Add(&s.Switches[0])
	if o.Len() != 2 {
		t.Fatalf("Len = %d", o.Len())
	}
	fresh := testFlows(t)
	for i := range fresh {
		fresh[i].PacketCount, fresh[i].ByteCount, fresh[i].DurationSec, fresh[i].DurationNSec = 1, 10, 1, 999_999_999
	}
	// An entry that was not restored (other cookie) keeps its counters.
	other := fresh[1]
	other.Cookie = 99
	fresh = append(fresh, other)
	got := o.Apply(0xa1, fresh)
	if got[0].PacketCount != 43 || got[0].ByteCount != 4210 || got[0].DurationSec != 9 || got[0].DurationNSec != 4 {
		t.Errorf("flow 0: %d pkts %d bytes %d.%09d s", got[0].PacketCount, got[0].ByteCount, got[0].DurationSec, got[0].DurationNSec)
	}
	if got[1].PacketCount != 4 || got[1].ByteCount != 310 {
		t.Errorf("flow 1: %d pkts %d bytes", got[1].PacketCount, got[1].ByteCount)
	}
	if got[2].PacketCount != 1 {
		t.Errorf("foreign flow got an offset: %d", got[2].PacketCount)
	}
	if fresh[0].PacketCount != 1 {
		t.Error("Apply modified its input")
	}
	if o.Apply(0xa2, fresh[:1])[0].PacketCount != 1 {
		t.Error("offset applied to another switch")
	}
}

func TestPlanConfig(t *testing.T) {
	want := testBridge()
	want.Ports[1].QoS = &QoSConfig{Type: "linux-htb", Queues: map[int]QueueConfig{1: {OtherConfig: map[string]string{"max-rate": "1000000"}}}}
	p := PlanConfig(nil, &want, nil)
	if !p.CreateBridge || len(p.AddPorts) != 2 || !p.SetControllers || len(p.BridgeColumns) != 5 {
		t.Errorf("fresh plan: %s", p.String())
	}
	same := want
	if p := PlanConfig(&same, &want, nil); !p.Empty() {
		t.Errorf("identical: %s", p.String())
	}
	cur := testBridge() // no QoS, ofport 2 became 5, no controller, other fail mode
	cur.Ports[2].Interfaces[0].OFPort = 5
	cur.Controllers = nil
	cur.FailMode = "standalone"
	p = PlanConfig(&cur, &want, nil)
	if p.CreateBridge || len(p.AddPorts) != 0 || len(p.UpdateInterfaces) != 1 || p.UpdateInterfaces[0].Name != "skn-h2" ||
		len(p.SetQoS) != 1 || !p.SetControllers || !slices.Equal(p.BridgeColumns, []string{"fail_mode"}) {
		t.Errorf("changed: %s", p.String())
	}
	p = PlanConfig(nil, &want, map[string]string{"skn-h1": "br-other"})
	if len(p.Conflicts) != 1 || !strings.Contains(p.Conflicts[0], "skn-h1") {
		t.Errorf("conflicts: %v", p.Conflicts)
	}
	if r := restorableOFPort(&want.Ports[0].Interfaces[0]); r != nil {
		t.Errorf("LOCAL port gets ofport_request %d", *r)
	}
}

func restoreTargets(cfg Config, sw Switch) []Target {
	return []Target{{Bridge: "sknbr", Config: cfg, Connect: func(context.Context, uint64) (Switch, error) { return sw, nil }}}
}

func TestRestoreOntoFreshSwitch(t *testing.T) {
	s := takeTest(t, &fakeSwitch{})
	cfg := &fakeConfig{bridges: map[string]BridgeConfig{}}
	sw := &fakeSwitch{}
	rep, err := Restore(context.Background(), s, restoreTargets(cfg, sw), RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sw.table) != 2 || rep.Switches[0].FlowsAdded != 2 || !rep.Switches[0].Done || rep.Offsets.Len() != 2 {
		t.Fatalf("report %s, table %d entries", rep.String(), len(sw.table))
	}
	if got := cfg.bridges["sknbr"].OtherConfig["datapath-id"]; got != "00000000000000a1" {
		t.Errorf("datapath-id = %q", got)
	}
	// Again: nothing to do.
	rep, err = Restore(context.Background(), s, restoreTargets(cfg, sw), RestoreOptions{})
	if err != nil || rep.Switches[0].FlowsAdded != 0 || rep.Switches[0].FlowsKept != 2 || rep.Switches[0].Config != "no change" {
		t.Fatalf("second restore: %v, %s", err, rep.String())
	}
}

func TestRestoreFailureLeavesTableAsBefore(t *testing.T) {
	s := takeTest(t, &fakeSwitch{})
	cfg := &fakeConfig{bridges: map[string]BridgeConfig{}}
	// The switch refuses the priority-10 flow: the other one, already
	// added, is deleted again.
	sw := &fakeSwitch{failPriority: 10}
	rep, err := Restore(context.Background(), s, restoreTargets(cfg, sw), RestoreOptions{})
	if err == nil {
		t.Fatal("restore succeeded")
	}
	if !strings.Contains(err.Error(), "sknbr") || !strings.Contains(err.Error(), "bad action") {
		t.Errorf("err = %v, want bridge and switch error", err)
	}
	if len(sw.table) != 0 {
		t.Errorf("table after failed restore: %v", sw.table)
	}
	if sr := rep.Switches[0]; sr.Done || !sr.RolledBack || !strings.Contains(sr.Config, "create bridge") {
		t.Errorf("report: %s", rep.String())
	}
	if !slices.ContainsFunc(sw.mods, func(m string) bool { return strings.HasPrefix(m, "delete") && strings.Contains(m, "priority=100") }) {
		t.Errorf("no strict delete of the added flow: %v", sw.mods)
	}
}

func TestRestoreRefusesForeignFlows(t *testing.T) {
	s := takeTest(t, &fakeSwitch{})
	foreign := pipeline.Entry{Table: 0, Priority: 5, Cookie: 1, Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(3))}}
	sw := &fakeSwitch{table: []pipeline.Entry{foreign}}
	_, err := Restore(context.Background(), s, restoreTargets(&fakeConfig{bridges: map[string]BridgeConfig{}}, sw), RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "not clean") || !strings.Contains(err.Error(), "priority=5") {
		t.Fatalf("err = %v", err)
	}
	if len(sw.mods) != 0 || len(sw.table) != 1 {
		t.Errorf("flow mods sent %v, table %v", sw.mods, sw.table)
	}
	// Tolerated by cookie: the restore adds the snapshot's entries and
	// leaves the foreign one.
	rep, err := Restore(context.Background(), s, restoreTargets(&fakeConfig{bridges: map[string]BridgeConfig{}}, sw),
		RestoreOptions{Tolerate: func(c uint64) bool { return c == 1 }})
	if err != nil || rep.Switches[0].FlowsAdded != 2 || len(sw.table) != 3 {
		t.Errorf("tolerated: %v, %s, table %d", err, rep.String(), len(sw.table))
	}
}

func TestRestoreConfigErrorNamesBridgeAndSendsNoFlows(t *testing.T) {
	s := takeTest(t, &fakeSwitch{})
	sw := &fakeSwitch{}
	cfg := &fakeConfig{bridges: map[string]BridgeConfig{}, fail: errors.New(`interface "skn-h2": ofport 7, snapshot has 2`)}
	rep, err := Restore(context.Background(), s, restoreTargets(cfg, sw), RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), `bridge "sknbr"`) || !strings.Contains(err.Error(), "skn-h2") {
		t.Fatalf("err = %v", err)
	}
	if len(sw.mods) != 0 || rep.Switches[0].Done {
		t.Errorf("mods %v, report %s", sw.mods, rep.String())
	}
	if _, err := Restore(context.Background(), s, nil, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "no target for bridge \"sknbr\"") {
		t.Errorf("no targets: %v", err)
	}
}

func TestServiceStoresListsDeletes(t *testing.T) {
	st, err := store.Open(t.TempDir() + "/s.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sw := &fakeSwitch{}
	stats := testFlows(t)
	cfg := &fakeConfig{bridges: map[string]BridgeConfig{"sknbr": testBridge()}}
	svc := &Service{Store: st, Now: func() time.Time { return time.Date(2026, 11, 22, 5, 30, 0, 0, time.UTC) },
		Targets: func(_ context.Context, tenant string, refs []Ref) ([]Target, error) {
			return []Target{{Bridge: "sknbr", Config: cfg, Connect: func(context.Context, uint64) (Switch, error) {
				return statsSwitch{sw, stats}, nil
			}}}, nil
		}}
	in, err := svc.Create(context.Background(), "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidID(in.ID) || in.Flows != 2 || in.Tenant != "acme" || !slices.Equal(in.Bridges, []string{"sknbr"}) {
		t.Errorf("info %+v", in)
	}
	if _, err := st.PutSnapshot("not-a-snapshot", []byte("x")); err != nil {
		t.Fatal(err)
	}
	l, err := svc.List()
	if err != nil || len(l) != 1 || l[0].ID != in.ID {
		t.Fatalf("list %v %v", l, err)
	}
	got, err := svc.Get(in.ID)
	if err != nil || len(got.Switches[0].Flows) != 2 {
		t.Fatalf("get %v", err)
	}
	if err := svc.Delete(in.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
}

func TestTenantSnapshotWithRepeatedBridgeNames(t *testing.T) {
	// Two VMs, each with a bridge "sknbr" (different DPIDs).
	mk := func(dpid string) (*fakeConfig, *fakeSwitch) {
		b := testBridge()
		b.DatapathID = dpid
		return &fakeConfig{bridges: map[string]BridgeConfig{"sknbr": b}}, &fakeSwitch{}
	}
	c1, s1 := mk("00000000000000a1")
	c2, s2 := mk("00000000000000a2")
	stats := testFlows(t)
	tgs := []Target{
		{Bridge: "sknbr", Config: c1, Connect: func(context.Context, uint64) (Switch, error) { return statsSwitch{s1, stats}, nil }},
		{Bridge: "sknbr", Config: c2, Connect: func(context.Context, uint64) (Switch, error) { return statsSwitch{s2, stats[:1]}, nil }},
	}
	snap, err := Take(context.Background(), "acme", tgs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Switches) != 2 || len(snap.Switches[1].Flows) != 1 {
		t.Fatalf("switches %d", len(snap.Switches))
	}
	if _, err := Take(context.Background(), "acme", []Target{tgs[0], tgs[0]}, time.Now()); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("duplicate: %v", err)
	}
	// Restore onto fresh VMs: by name alone it is ambiguous...
	n1, n2 := &fakeConfig{bridges: map[string]BridgeConfig{}}, &fakeConfig{bridges: map[string]BridgeConfig{}}
	f1, f2 := &fakeSwitch{}, &fakeSwitch{}
	fresh := []Target{
		{Bridge: "sknbr", Config: n1, Connect: func(context.Context, uint64) (Switch, error) { return f1, nil }},
		{Bridge: "sknbr", Config: n2, Connect: func(context.Context, uint64) (Switch, error) { return f2, nil }},
	}
	if _, err := Restore(context.Background(), snap, fresh, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "2 targets of that name") {
		t.Fatalf("ambiguous restore: %v", err)
	}
	// ...and with DPIDs each switch lands on its own VM.
	fresh[0].DPID, fresh[1].DPID = 0xa2, 0xa1
	if _, err := Restore(context.Background(), snap, fresh, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(f1.table) != 1 || len(f2.table) != 2 || n1.bridges["sknbr"].OtherConfig["datapath-id"] != "00000000000000a2" {
		t.Errorf("tables %d/%d, n1 dpid %q", len(f1.table), len(f2.table), n1.bridges["sknbr"].OtherConfig["datapath-id"])
	}
}
