package controlplane

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/testbed/ofbench"
)

func TestParseFlagsDefaultsAndFull(t *testing.T) {
	f, err := ParseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Cfg
	if !slices.Equal(c.Networks, []int{1, 2, 4, 8, 16, 32, 64}) || c.Hosts != 5 || !slices.Equal(c.Arms, AllArms()) || !c.Pin {
		t.Errorf("defaults %+v", c)
	}
	if f.Out != "docs/results/controlplane.csv" || f.SummaryOut != "docs/results/controlplane-summary.csv" || f.PlotOut != "docs/results/controlplane.png" {
		t.Errorf("default files %q %q %q", f.Out, f.SummaryOut, f.PlotOut)
	}
	if est := c.Estimate(); est <= 0 || est > 10*time.Minute {
		t.Errorf("default estimate %v: want under 10 minutes", est)
	}
	f, err = ParseFlags([]string{"--full", "--arms", "hypervisor,bare", "--no-pin", "--reps", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Cfg.Networks, FullNetworks()) || f.Cfg.Reps != FullReps || f.Cfg.Runs != FullRuns || f.Cfg.Duration != FullDuration {
		t.Errorf("--full did not override: %+v", f.Cfg)
	}
	if !slices.Equal(f.Cfg.Arms, []string{ArmBare, ArmHypervisor}) || f.Cfg.Pin {
		t.Errorf("arms %v pin %v", f.Cfg.Arms, f.Cfg.Pin)
	}
	if !strings.HasPrefix(f.CommandLine, "skyexp controlplane --full") {
		t.Errorf("command line %q", f.CommandLine)
	}
}

func TestParseFlagsErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--networks", "1,x"}, "--networks"},
		{[]string{"--networks", "4,2"}, "networks[1]: 2 not above 4"},
		{[]string{"--networks", "2000"}, "out of range"},
		{[]string{"--arms", "bare,nox"}, `--arms: unknown controller "nox"`},
		{[]string{"--hosts", "1"}, "hosts: 1"},
		{[]string{"--reps", "0"}, "reps: 0"},
		{[]string{"--duration", "1ms"}, "duration: 1ms"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		_, err := ParseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := ParseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestParseSummaryAndLatency(t *testing.T) {
	out := "ofbench: latency mode ...\nrun 1: ...\n" +
		"ofbench: mode=latency switches=4 median=80000 resp/s mean=1 min=1 max=1 stddev=0 answered=40000 rtt_ms=0.1002 lost=3 timeouts=1 ctrl_errors=2 switch_errors=0 self_cpu_pct=63 runs=4 duration_ms=500 window=1 macs=5 buffered=false fabric=true ignored_flow_mods=7\n"
	s, err := ParseSummary(out)
	if err != nil {
		t.Fatal(err)
	}
	var m Measurement
	s.fill(&m)
	if m.Switches != 4 || m.RespPerSec != 80000 || m.AnsweredPerSec != 40000 || m.RTTMS != 0.1002 || m.Lost != 3 || m.Timeouts != 1 ||
		m.CtrlErrors != 2 || m.IgnoredFlowMods != 7 || m.OfbenchCPUPct != 63 {
		t.Errorf("parsed %+v", m)
	}
	// 4 switches, one request each in flight, 40,000 answers/s: 0.1 ms each.
	if math.Abs(m.LatencyMS-0.1) > 1e-12 {
		t.Errorf("latency %v ms, want 0.1", m.LatencyMS)
	}
	if LatencyMS(3, 0) != 0 {
		t.Error("latency with nothing answered is not 0")
	}
	runs := "warmup 1: 4 switches, 1 responses/s (min/max per switch 0/0), 1000 answered/s, rtt 0.1 ms, 0 lost, 0 timeouts\n" +
		"run 1: 4 switches, 1 responses/s (min/max per switch 0/0), 3000 answered/s, rtt 0.1 ms, 0 lost, 0 timeouts\n" + out
	if got := AnsweredTotal(runs, 500*time.Millisecond); got != 2000 {
		t.Errorf("AnsweredTotal = %v, want (1000 + 3000) x 0.5 s", got)
	}
	if _, err := ParseSummary("ofbench: cannot connect\n"); err == nil || !strings.Contains(err.Error(), "no summary line") {
		t.Errorf("missing summary: %v", err)
	}
	if _, err := ParseSummary("ofbench: mode=latency switches=1 median=5 resp/s\n"); err == nil || !strings.Contains(err.Error(), "lacks answered") {
		t.Errorf("short summary: %v", err)
	}
}

// sample returns measurements of two networks sizes: bare and hypervisor
// with known latencies, one failed os-ken run and one skipped ovs run.
func sample() []Measurement {
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	var ms []Measurement
	add := func(arm string, n, rep int, lat float64, err string) {
		ms = append(ms, Measurement{Arm: arm, Networks: n, Rep: rep, Switches: n, AnsweredPerSec: 1000 * float64(n) / lat,
			RespPerSec: 2000 * float64(n) / lat, LatencyMS: lat, RTTMS: lat, CPUPerRequestUS: 1000 * lat / 2, Load1: 1.5, Commit: "abc1234", Start: t0, Err: err})
	}
	for rep, l := range []float64{0.050, 0.060, 0.055} {
		add(ArmBare, 1, rep+1, l, "")
		add(ArmHypervisor, 1, rep+1, l+0.004+0.001*float64(rep), "")
	}
	for rep, l := range []float64{0.300, 0.320} {
		add(ArmBare, 8, rep+1, l, "")
		add(ArmHypervisor, 8, rep+1, l+0.2, "")
	}
	add(ArmOSKen, 8, 1, 0, "ofbench: exit status 1: no switch completed the handshake")
	add(ArmOVS, 8, 1, 0, "skipped: ovs-testcontroller not installed")
	return ms
}

func TestSummarizeAndOverheads(t *testing.T) {
	ms := sample()
	ss := Summarize(ms)
	if len(ss) != 6 {
		t.Fatalf("%d summaries, want 6: %+v", len(ss), ss)
	}
	if ss[0].Arm != ArmBare || ss[0].Networks != 1 || ss[1].Arm != ArmHypervisor || ss[4].Arm != ArmOVS || ss[5].Arm != ArmOSKen {
		t.Errorf("order: %+v", ss)
	}
	if ss[0].Reps != 3 || math.Abs(ss[0].LatencyMS-0.055) > 1e-12 || ss[0].LatencyMinMS != 0.050 || ss[0].LatencyMaxMS != 0.060 {
		t.Errorf("bare at 1: %+v", ss[0])
	}
	if ss[5].Reps != 0 || ss[5].Failed != 1 || !strings.Contains(ss[5].FailReason, "handshake") {
		t.Errorf("failed os-ken: %+v", ss[5])
	}
	ohs := Overheads(ms, ss)
	if len(ohs) != 2 {
		t.Fatalf("%d overheads, want 2", len(ohs))
	}
	o := ohs[0]
	// Hypervisor latencies 0.054, 0.065, 0.061: median 0.061; bare 0.055.
	if math.Abs(o.OverheadMS-0.006) > 1e-9 || !o.WithinTarget || !o.WithinPaper {
		t.Errorf("overhead at 1: %+v", o)
	}
	if math.Abs(o.PairedMinMS-0.004) > 1e-9 || math.Abs(o.PairedMaxMS-0.006) > 1e-9 {
		t.Errorf("paired range at 1: %v..%v, want 0.004..0.006", o.PairedMinMS, o.PairedMaxMS)
	}
	// CPU per request is half the latency in the sample: 30.5 - 27.5 us.
	if math.Abs(o.BareCPUUS-27.5) > 1e-9 || math.Abs(o.HypervisorCPUUS-30.5) > 1e-9 || math.Abs(o.CPUOverheadUS-3) > 1e-9 {
		t.Errorf("CPU per request at 1: %+v", o)
	}
	if math.Abs(o.OverheadPct-100*0.006/0.055) > 1e-9 {
		t.Errorf("overhead pct %v", o.OverheadPct)
	}
	if o8 := ohs[1]; math.Abs(o8.OverheadMS-0.2) > 1e-9 || o8.WithinTarget || o8.WithinPaper {
		t.Errorf("overhead at 8: %+v", o8)
	}
	table := MarkdownTable(ss, ohs)
	for _, want := range []string{"| 1 | 0.0550 (36.4k) | 0.0610", "+0.0060 | yes | yes | 27.5, 30.5 (+3.0) |", "| 8 |", "skipped", "failed", "+0.2000 | no | no |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

func TestCSVRoundTripAndSummaryCSV(t *testing.T) {
	ms := sample()
	var b bytes.Buffer
	if err := WriteMeasurements(&b, ms); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMeasurements(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ms) {
		t.Fatalf("%d rows back, want %d", len(got), len(ms))
	}
	for i := range ms {
		a, g := ms[i], got[i]
		if a.Arm != g.Arm || a.Networks != g.Networks || a.Rep != g.Rep || a.Err != g.Err || !a.Start.Equal(g.Start) || a.Commit != g.Commit ||
			math.Abs(a.LatencyMS-g.LatencyMS) > 1e-4 {
			t.Errorf("row %d: wrote %+v, read %+v", i, a, g)
		}
	}
	if _, err := ReadMeasurements(strings.NewReader("a,b\n1,2\n")); err == nil {
		t.Error("foreign CSV accepted")
	}
	// a file written before the commit column (docs/results of 2026-11-22)
	hdr := MeasurementHeader()
	old := strings.Join(hdr[:len(hdr)-1], ",") + "\nbare,1,1,1,23800.0,11900.0,0.0842,0.0800,0,0,0,0,0,55.0,56.80,40.0,3.93,2026-11-22T08:45:00Z,\n"
	if got, err := ReadMeasurements(strings.NewReader(old)); err != nil || len(got) != 1 || got[0].Commit != "" || got[0].Load1 != 3.93 || got[0].LatencyMS != 0.0842 {
		t.Errorf("old file: %+v, %v", got, err)
	}
	bad := strings.Replace(b.String(), "bare,1,1,", "bare,one,1,", 1)
	if _, err := ReadMeasurements(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 2, column networks") {
		t.Errorf("bad number: %v", err)
	}
	ss := Summarize(ms)
	b.Reset()
	if err := WriteSummaries(&b, ss, Overheads(ms, ss)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[2], "1,hypervisor,3,0,") || !strings.Contains(lines[2], ",0.0060,") || !strings.Contains(lines[2], ",true,true,") ||
		!strings.HasSuffix(lines[2], ",abc1234") {
		t.Errorf("summary CSV:\n%s", b.String())
	}
}

func TestPlotWritesPNG(t *testing.T) {
	ms := sample()
	ss := Summarize(ms)
	var b bytes.Buffer
	if err := Plot(&b, ss, Overheads(ms, ss), "median of 3"); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("\x89PNG\r\n\x1a\n")) || b.Len() < 10000 {
		t.Errorf("not a PNG, or empty: %d bytes", b.Len())
	}
}

func TestSetupWritesAValidFabric(t *testing.T) {
	dir := t.TempDir()
	f, err := Setup(dir, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	inf, err := infra.Load(f.InfraFile)
	if err != nil {
		t.Fatalf("generated infrastructure: %v", err)
	}
	if len(inf.Switches) != 4 || inf.SwitchByDPID(EdgeDPIDBase+3) == nil {
		t.Errorf("switches %+v", inf.Switches)
	}
	fab, err := ofbench.LoadFabric(f.OfbenchFile)
	if err != nil {
		t.Fatalf("generated ofbench fabric: %v", err)
	}
	if len(fab.Switches) != 3 || len(fab.Switches[2].Hosts) != 5 || fab.Switches[2].DPID != EdgeDPIDBase+3 ||
		!slices.Equal(fab.Switches[0].Ports, []uint32{1, 2, 3, 4, 5, UplinkPort}) {
		t.Errorf("fabric %+v", fab)
	}
	st, err := store.Open(filepath.Join(f.StateDir, hypervisor.StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	binds, err := st.Bindings()
	if err != nil || len(binds) != 15 {
		t.Fatalf("bindings %d (%v), want 15", len(binds), err)
	}
	ts, err := st.ListTenants()
	if err != nil || len(ts) != 3 {
		t.Fatalf("tenants %d (%v)", len(ts), err)
	}
	// Tenants reuse the same own MACs; their fabric MACs differ.
	if fab.Switches[0].Hosts[0].DstMAC != fab.Switches[1].Hosts[0].DstMAC || fab.Switches[0].Hosts[0].SrcMAC == fab.Switches[1].Hosts[0].SrcMAC {
		t.Errorf("hosts %+v / %+v", fab.Switches[0].Hosts[0], fab.Switches[1].Hosts[0])
	}
	if _, err := Setup(t.TempDir(), 0, 5); err == nil {
		t.Error("0 networks accepted")
	}
}

// dpidSwitch is a controller.Switch that only knows its DPID: all the
// hypervisor's PacketIn reads.
type dpidSwitch struct {
	controller.Switch
	dpid uint64
}

func (s dpidSwitch) DPID() controller.DPID { return controller.DPID(s.dpid) }

// TestFabricPacketInsDemultiplexedByHypervisor feeds the packet-ins ofbench's
// fabric mode sends to the hypervisor's own packet-in path (decoded from the
// wire bytes), and checks that every one reaches the right tenant's virtual
// switch, on the sender's virtual port, with the sender's own MAC restored
// and the receiver's own MAC kept: the encoding is what the pipeline would
// send (docs/pipeline.md, "Packet-in and packet-out").
func TestFabricPacketInsDemultiplexedByHypervisor(t *testing.T) {
	dir := t.TempDir()
	f, err := Setup(dir, 4, 5)
	if err != nil {
		t.Fatal(err)
	}
	inf, err := infra.Load(f.InfraFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(f.StateDir, hypervisor.StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got []hypervisor.TenantPacketIn
	h, err := hypervisor.New(hypervisor.Config{Infra: inf, Store: st, TenantPacketIn: func(p hypervisor.TenantPacketIn) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	for i, sw := range f.Bench.Switches {
		for k := range 7 {
			wire := ofbench.FabricPacketIn(f.Bench, i, k, uint32(1000+k))
			var pin ofp.PacketIn
			if _, err := pin.ReadFrom(bytes.NewReader(wire[8:])); err != nil {
				t.Fatalf("switch %d packet-in %d: decode: %v", i, k, err)
			}
			ev := &controller.PacketIn{BufferID: pin.Buffer, TotalLen: pin.Length, Reason: pin.Reason, TableID: uint8(pin.Table),
				Cookie: pin.Cookie, Match: pin.Match, Data: pin.Data}
			for _, x := range pin.Match.Fields {
				if x.Type == ofp.XMTypeInPort {
					ev.InPort = ofp.PortNo(binary.BigEndian.Uint32(x.Value))
				}
			}
			n := len(got)
			if d := h.PacketIn(context.Background(), dpidSwitch{dpid: sw.DPID}, ev); d != controller.Stop {
				t.Errorf("switch %d packet-in %d: disposition %v, want Stop", i, k, d)
			}
			if len(got) != n+1 {
				t.Fatalf("switch %d packet-in %d: not handed to the tenant (metadata or source MAC rejected)", i, k)
			}
			p := got[n]
			src, dst := k%5, (k+4)%5
			if p.Tenant != TenantName(i+1) || p.Switch != VSwitch || p.InPort != HostPort(src) || p.Group || p.Table != 0 || p.Cookie != 0 {
				t.Errorf("switch %d packet-in %d: %+v", i, k, p)
			}
			if p.PhysicalDPID.String() == "" || uint64(p.PhysicalDPID) != sw.DPID || p.PhysicalInPort != HostPort(src) {
				t.Errorf("switch %d packet-in %d: physical %v port %d", i, k, p.PhysicalDPID, p.PhysicalInPort)
			}
			if want := HostMAC(src + 1); !bytes.Equal(p.Frame[6:12], want[:]) {
				t.Errorf("switch %d packet-in %d: source %x, want the sender's own MAC %s", i, k, p.Frame[6:12], want)
			}
			if want := HostMAC(dst + 1); !bytes.Equal(p.Frame[0:6], want[:]) {
				t.Errorf("switch %d packet-in %d: destination %x, want the receiver's own MAC %s", i, k, p.Frame[0:6], want)
			}
		}
	}
	for id, n := range h.PacketIns() {
		if !addr.IsValidTenantID(id) || n != 7 {
			t.Errorf("tenant %v: %d packet-ins counted, want 7", id, n)
		}
	}
	if pipeline.TableTenant != f.Bench.Table {
		t.Errorf("fabric table %d", f.Bench.Table)
	}
}

func TestSkippedArmsNeedNoController(t *testing.T) {
	r := &runner{cfg: DefaultConfig(), missing: map[string]string{ArmOSKen: "osken-manager not installed"}}
	m := r.measure(context.Background(), ArmOVS, OVSTestControllerMaxSwitches+1, 1)
	if !strings.HasPrefix(m.Err, "skipped: ovs-testcontroller serves at most 16 switches") {
		t.Errorf("ovs above its limit: %q", m.Err)
	}
	m = r.measure(context.Background(), ArmOSKen, 1, 1)
	if m.Err != "skipped: osken-manager not installed" || m.OK() {
		t.Errorf("missing os-ken: %q", m.Err)
	}
	ss := Summarize([]Measurement{m})
	if ss[0].Reps != 0 || ss[0].Failed != 1 {
		t.Errorf("summary of a skipped arm: %+v", ss[0])
	}
}
