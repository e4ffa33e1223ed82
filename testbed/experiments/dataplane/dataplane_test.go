package dataplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMatrix(t *testing.T) {
	c := DefaultConfig()
	got := c.Matrix()
	if len(got) != 10 {
		t.Fatalf("default matrix has %d points, want 3 tunnels x 3 delays + 1 wg = 10: %v", len(got), got)
	}
	if got[0] != (Point{"vxlan", 0, false}) || got[1] != (Point{"vxlan", 0, true}) || got[9] != (Point{"geneve", 50, false}) {
		t.Fatalf("order: %v", got)
	}
	wg := 0
	for _, p := range got {
		if p.WireGuard {
			wg++
		}
	}
	if wg != 1 {
		t.Fatalf("%d wireguard points, want 1", wg)
	}
	c.WireGuard = WGAll
	if n := len(c.Matrix()); n != 18 {
		t.Fatalf("wg all: %d points, want 18", n)
	}
	c.WireGuard = WGNone
	c.Tunnels, c.DelaysMS = []string{"gre"}, []float64{10}
	if got := c.Matrix(); !reflect.DeepEqual(got, []Point{{"gre", 10, false}}) {
		t.Fatalf("wg none: %v", got)
	}
	if s := (Point{"gre", 10, true}).String(); s != "gre delay=10ms wg=on" {
		t.Fatalf("String %q", s)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"tunnels":                func(c *Config) { c.Tunnels = []string{"ipip"} },
		"delays":                 func(c *Config) { c.DelaysMS = []float64{-1} },
		"wireguard":              func(c *Config) { c.WireGuard = "some" },
		"modes: want":            func(c *Config) { c.Modes = nil },
		"modes: \"plain\" given": func(c *Config) { c.Modes = []string{"plain", "plain"} },
		"reps":                   func(c *Config) { c.Reps = 0 },
		"pings":                  func(c *Config) { c.PingCount = 0 },
		"ping interval":          func(c *Config) { c.PingInterval = time.Millisecond },
		"iperf time":             func(c *Config) { c.IperfTime = 1500 * time.Millisecond },
		"prefix":                 func(c *Config) { c.Prefix = "" },
		"modes":                  func(c *Config) { c.Modes = []string{"plain", "bare"} },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name the field", name, err)
		}
	}
}

func TestParseFlags(t *testing.T) {
	f, err := ParseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Cfg.Reps != 3 || f.Cfg.PingCount != 20 || f.Cfg.PingInterval != 50*time.Millisecond || f.Cfg.IperfTime != 3*time.Second ||
		!reflect.DeepEqual(f.Cfg.Modes, AllModes) || f.Out != "docs/results/dataplane.csv" ||
		f.SummaryOut != "docs/results/dataplane-summary.csv" || f.PlotOut != "docs/results/dataplane.png" || f.Cfg.Prefix != "skq" {
		t.Fatalf("defaults: %+v", f)
	}
	f, err = ParseFlags([]string{"--tunnels", "geneve,gre", "--delays", "5", "--wg", "none", "--reps", "1", "--pings", "4",
		"--iperf-time", "2s", "--out", "", "--modes", "virtualized,plain", "-n"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Cfg.Tunnels, []string{"geneve", "gre"}) || !reflect.DeepEqual(f.Cfg.DelaysMS, []float64{5}) ||
		f.Cfg.WireGuard != WGNone || f.Cfg.Reps != 1 || f.Cfg.PingCount != 4 || f.Cfg.IperfTime != 2*time.Second || f.Out != "" || !f.DryRun ||
		!reflect.DeepEqual(f.Cfg.Modes, []string{"virtualized", "plain"}) {
		t.Fatalf("parsed: %+v", f.Cfg)
	}
	if !strings.HasPrefix(f.CommandLine, "skyexp dataplane --tunnels geneve,gre") {
		t.Fatalf("command line %q", f.CommandLine)
	}
	f, err = ParseFlags([]string{"--full", "--reps", "1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Cfg.WireGuard != WGAll || f.Cfg.Reps != FullReps || f.Cfg.PingCount != FullPings || f.Cfg.IperfTime != FullIperfTime {
		t.Fatalf("--full: %+v", f.Cfg)
	}
	for _, bad := range [][]string{{"--tunnels", "vxlan,ipip"}, {"--tunnels", "gre,gre"}, {"--delays", "x"}, {"--delays", "0,0"},
		{"--wg", "maybe"}, {"--reps", "0"}, {"extra"}, {"--modes", "direct,bare"}, {"--modes", "plain,plain"}, {"--modes", ""}} {
		if _, err := ParseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseFlags([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if d := Estimate(DefaultConfig()); d <= 0 || d > 10*time.Minute {
		t.Errorf("default estimate %v: want under 10 minutes", d)
	}
	c := DefaultConfig()
	c.Modes = []string{ModePlain, ModeVirtualized}
	if d2, d3 := Estimate(c), Estimate(DefaultConfig()); d2 >= d3 {
		t.Errorf("two modes %v not shorter than three %v", d2, d3)
	}
}

func TestOrder(t *testing.T) {
	// two modes: ABBA, as before the direct mode existed
	got := Order([]string{ModePlain, ModeVirtualized}, 3)
	want := []Step{{ModePlain, 1}, {ModeVirtualized, 1}, {ModeVirtualized, 2}, {ModePlain, 2}, {ModePlain, 3}, {ModeVirtualized, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Order(plain,virtualized; 3) = %v", got)
	}
	if o := Order([]string{ModePlain, ModeVirtualized}, 1); len(o) != 2 || o[0].Mode != ModePlain {
		t.Fatalf("Order(1) = %v", o)
	}
	// three modes: a Latin square per three repetitions
	got = Order(AllModes, 3)
	want = []Step{{ModeDirect, 1}, {ModePlain, 1}, {ModeVirtualized, 1},
		{ModeVirtualized, 2}, {ModeDirect, 2}, {ModePlain, 2},
		{ModePlain, 3}, {ModeVirtualized, 3}, {ModeDirect, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Order(all; 3) = %v", got)
	}
	for _, reps := range []int{3, 6, 9} {
		o := Order(AllModes, reps)
		n := len(AllModes)
		pos := map[string][]int{} // mode -> count per position
		starts := 0
		for k, st := range o {
			if st.Rep != k/n+1 {
				t.Fatalf("reps %d: step %d has rep %d", reps, k, st.Rep)
			}
			if pos[st.Mode] == nil {
				pos[st.Mode] = make([]int, n)
			}
			pos[st.Mode][k%n]++
			if st.Mode == ModeVirtualized && (k == 0 || o[k-1].Mode != ModeVirtualized) {
				starts++
			}
		}
		for _, m := range AllModes {
			for p, c := range pos[m] {
				if c != reps/n {
					t.Errorf("reps %d: %s at position %d %d times, want %d", reps, m, p+1, c, reps/n)
				}
			}
		}
		// every rep measures every mode once
		for rep := 1; rep <= reps; rep++ {
			var ms []string
			for _, st := range o[(rep-1)*n : rep*n] {
				ms = append(ms, st.Mode)
			}
			slices.Sort(ms)
			if !reflect.DeepEqual(ms, []string{ModeDirect, ModePlain, ModeVirtualized}) {
				t.Errorf("reps %d rep %d: modes %v", reps, rep, ms)
			}
		}
		if starts != 2*reps/3 {
			t.Errorf("reps %d: %d skyvisor starts, want %d", reps, starts, 2*reps/3)
		}
	}
	if o := Order([]string{ModeDirect}, 2); !reflect.DeepEqual(o, []Step{{ModeDirect, 1}, {ModeDirect, 2}}) {
		t.Fatalf("one mode: %v", o)
	}
}

const pingOut = `PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.
64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.612 ms
64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=0.401 ms
64 bytes from 10.0.0.2: icmp_seq=4 ttl=64 time=1.20 ms

--- 10.0.0.2 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 302ms
rtt min/avg/max/mdev = 0.401/0.737/1.200/0.338 ms
`

func TestPingStats(t *testing.T) {
	sent, recv, rtts, err := PingStats(pingOut)
	if err != nil {
		t.Fatal(err)
	}
	if sent != 4 || recv != 3 || !reflect.DeepEqual(rtts, []float64{0.612, 0.401, 1.2}) {
		t.Fatalf("got %d %d %v", sent, recv, rtts)
	}
	if Median(rtts) != 0.612 {
		t.Fatalf("median %v", Median(rtts))
	}
	if _, _, _, err := PingStats("ping: connect: Network is unreachable\n"); err == nil {
		t.Fatal("no statistics accepted")
	}
}

func TestIperfResult(t *testing.T) {
	out := []byte(`{"start":{},"end":{"sum_sent":{"bits_per_second":5.2e8,"retransmits":17},"sum_received":{"bits_per_second":5.1e8}}}`)
	mb, retr, err := IperfResult(out)
	if err != nil || mb != 510 || retr != 17 {
		t.Fatalf("got %v %v %v", mb, retr, err)
	}
	if _, _, err := IperfResult([]byte(`{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`)); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error field: %v", err)
	}
	if _, _, err := IperfResult([]byte(`{"end":{}}`)); err == nil {
		t.Fatal("missing sum_received accepted")
	}
	if _, _, err := IperfResult([]byte(`iperf3: error`)); err == nil {
		t.Fatal("non-JSON accepted")
	}
}

func TestOverheadAndSummarize(t *testing.T) {
	if v := Overhead(2, 2.5); v != 25 {
		t.Fatalf("overhead %v", v)
	}
	if !math.IsNaN(Overhead(0, 1)) || !math.IsNaN(Overhead(math.NaN(), 1)) {
		t.Fatal("overhead of 0 or NaN plain must be NaN")
	}
	p := Point{"vxlan", 0, false}
	q := Point{"gre", 10, true}
	ms := []Measurement{
		{Point: p, Mode: ModePlain, Rep: 1, RTTMedMS: 0.5, Mbps: 500, Load1: 1, Commit: "abc1234"},
		{Point: p, Mode: ModeVirtualized, Rep: 1, RTTMedMS: 0.6, Mbps: 400, Load1: 2, Commit: "abc1234"},
		{Point: p, Mode: ModePlain, Rep: 2, RTTMedMS: 0.7, Mbps: 300, Load1: 3},
		{Point: p, Mode: ModeVirtualized, Rep: 2, RTTMedMS: 0.6, Mbps: 200, Load1: 4},
		{Point: q, Mode: ModePlain, Rep: 1, RTTMedMS: 20, Mbps: 100, Load1: 1},
	}
	ss := Summarize(ms)
	if len(ss) != 2 || ss[0].Point != p || ss[1].Point != q {
		t.Fatalf("points %v", ss)
	}
	s := ss[0]
	if s.Reps != 2 || s.PlainRTTMS != 0.6 || s.VirtRTTMS != 0.6 || s.PlainMbps != 400 || s.VirtMbps != 300 || s.Load1 != 2.5 {
		t.Fatalf("summary %+v", s)
	}
	if math.Abs(s.RTTOverheadPct) > 1e-9 || math.Abs(s.TputOverheadPct-25) > 1e-9 {
		t.Fatalf("overheads %v %v", s.RTTOverheadPct, s.TputOverheadPct)
	}
	if !math.IsNaN(ss[1].VirtRTTMS) || !math.IsNaN(ss[1].RTTOverheadPct) {
		t.Fatalf("missing mode must give NaN: %+v", ss[1])
	}
	if !math.IsNaN(s.DirectRTTMS) || !math.IsNaN(s.RTTOverheadDirectPct) || !math.IsNaN(s.TputTunnelPct) {
		t.Fatalf("no direct mode must give NaN: %+v", s)
	}
	tab := MarkdownTable(ss[:1])
	if !strings.Contains(tab, "| vxlan | 0 | off | 2 | – | 0.600 | 0.600 | – | +0.0 % | – | 400 | 300 | – | +25.0 % | 2.5 |") {
		t.Fatalf("table:\n%s", tab)
	}
	var b bytes.Buffer
	if err := WriteSummaries(&b, ss[:1]); err != nil {
		t.Fatal(err)
	}
	want := strings.Join(SummaryHeader(), ",") + "\n" +
		"vxlan,0,off,2,,0.600,0.600,0.0,,,,400.0,300.0,25.0,,,2.50,abc1234\n"
	if b.String() != want {
		t.Fatalf("summary CSV:\n%s", b.String())
	}

	// three modes
	ms = append(ms,
		Measurement{Point: p, Mode: ModeDirect, Rep: 1, RTTMedMS: 0.4, Mbps: 800, Load1: 2},
		Measurement{Point: p, Mode: ModeDirect, Rep: 2, RTTMedMS: 0.6, Mbps: 400, Load1: 2})
	s = Summarize(ms)[0]
	// direct 0.5 ms, 600 Mbit/s; plain 0.6, 400; virt 0.6, 300
	if s.DirectRTTMS != 0.5 || s.DirectMbps != 600 || math.Abs(s.RTTOverheadDirectPct-20) > 1e-9 || math.Abs(s.TputOverheadDirectPct-50) > 1e-9 ||
		math.Abs(s.RTTTunnelPct-20) > 1e-9 || math.Abs(s.TputTunnelPct-100.0/3) > 1e-9 || math.Abs(s.TputOverheadPct-25) > 1e-9 {
		t.Fatalf("three modes %+v", s)
	}
	b.Reset()
	if err := WriteSummaries(&b, []Summary{s}); err != nil {
		t.Fatal(err)
	}
	if want := "vxlan,0,off,2,0.500,0.600,0.600,0.0,20.0,20.0,600.0,400.0,300.0,25.0,50.0,33.3,2.00,abc1234\n"; !strings.HasSuffix(b.String(), want) {
		t.Fatalf("summary CSV:\n%s", b.String())
	}
	if tab := MarkdownTable([]Summary{s}); !strings.Contains(tab, "| vxlan | 0 | off | 2 | 0.500 | 0.600 | 0.600 | +20.0 % | +0.0 % | 600 | 400 | 300 | +50.0 % | +25.0 % | 2.0 |") {
		t.Fatalf("table:\n%s", tab)
	}
}

func TestMeasurementsCSVRoundTrip(t *testing.T) {
	ms := []Measurement{
		{Point: Point{"geneve", 50, true}, Mode: ModeVirtualized, Rep: 2, PingSent: 20, PingRecv: 19, RTTMinMS: 100.5,
			RTTAvgMS: 101.25, RTTMedMS: 101, Mbps: 123.4, Retransmits: 7, PathPackets: 9000, Load1: 3.25, Commit: "abc1234-dirty", HostMTU: 1350},
		{Point: Point{"vxlan", 0, false}, Mode: ModePlain, Rep: 1, PingSent: 20, PingRecv: 20, RTTMinMS: 0.3,
			RTTAvgMS: 0.4, RTTMedMS: 0.35, Mbps: 600, PathPackets: 1, Load1: 0.5},
		{Point: Point{"vxlan", 10, false}, Mode: ModeDirect, Rep: 3, PingSent: 20, PingRecv: 20, RTTMinMS: 20.1,
			RTTAvgMS: 20.4, RTTMedMS: 20.3, Mbps: 900, PathPackets: 5000, Load1: 1.5, Commit: "abc1234", HostMTU: 1500},
	}
	var b bytes.Buffer
	if err := WriteMeasurements(&b, ms); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), strings.Join(MeasurementHeader(), ",")+"\n") ||
		!strings.Contains(b.String(), "geneve,50,on,virtualized,2,20,19,100.500,101.250,101.000,123.4,7,9000,3.25,abc1234-dirty,1350\n") ||
		!strings.Contains(b.String(), "vxlan,0,off,plain,1,20,20,0.300,0.400,0.350,600.0,0,1,0.50,,\n") ||
		!strings.Contains(b.String(), "vxlan,10,off,direct,3,20,20,20.100,20.400,20.300,900.0,0,5000,1.50,abc1234,1500\n") {
		t.Fatalf("CSV:\n%s", b.String())
	}
	got, err := ReadMeasurements(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ms) {
		t.Fatalf("round trip:\n%+v\n%+v", got, ms)
	}
	bad := strings.Join(MeasurementHeader(), ",") + "\nvxlan,0,maybe,plain,1,1,1,1,1,1,1,1,1,x,abc,15x\n"
	if _, err := ReadMeasurements(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 2") ||
		!strings.Contains(err.Error(), "wg") || !strings.Contains(err.Error(), "load1") || !strings.Contains(err.Error(), "host_mtu") {
		t.Fatalf("bad row: %v", err)
	}
	badMode := strings.Join(MeasurementHeader(), ",") + "\nvxlan,0,off,bare,1,1,1,1,1,1,1,1,1,1,abc,1500\n"
	if _, err := ReadMeasurements(strings.NewReader(badMode)); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Fatalf("bad mode: %v", err)
	}
	if _, err := ReadMeasurements(strings.NewReader("a,b\n")); err == nil {
		t.Fatal("wrong header accepted")
	}
	short := strings.Join(MeasurementHeader(), ",") + "\nvxlan,0,off,plain,1,1,1,1,1,1,1,1,1,1,abc\n"
	if _, err := ReadMeasurements(strings.NewReader(short)); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("short row: %v", err)
	}
	// a file written before the commit column (docs/results of 2026-11-22)
	hdr := MeasurementHeader()
	old := strings.Join(hdr[:len(hdr)-2], ",") + "\nvxlan,0,off,plain,1,20,20,0.5,0.6,0.654,696.0,10,20,1.59\n"
	got, err = ReadMeasurements(strings.NewReader(old))
	if err != nil || len(got) != 1 || got[0].Commit != "" || got[0].Load1 != 1.59 || got[0].Mbps != 696 || got[0].HostMTU != 0 {
		t.Fatalf("old file: %+v, %v", got, err)
	}
	// a file written before the direct mode and the host_mtu column (docs/results of 2026-12-07, commit 0a98394)
	old = strings.Join(hdr[:len(hdr)-1], ",") + "\nvxlan,0,off,plain,1,20,20,0.386,0.601,0.492,572.4,49575,267160,3.99,0a98394\n" +
		"vxlan,0,off,virtualized,1,20,20,0.386,0.569,0.498,872.3,56570,215159,4.23,0a98394\n"
	got, err = ReadMeasurements(strings.NewReader(old))
	if err != nil || len(got) != 2 || got[0].Commit != "0a98394" || got[1].Mode != ModeVirtualized || got[1].Mbps != 872.3 || got[1].HostMTU != 0 {
		t.Fatalf("file without host_mtu: %+v, %v", got, err)
	}
	ss := Summarize(got)
	if len(ss) != 1 || !math.IsNaN(ss[0].DirectRTTMS) || ss[0].PlainMbps != 572.4 || math.IsNaN(ss[0].TputOverheadPct) {
		t.Fatalf("summary of an old file %+v", ss)
	}
}

func TestPlainFlowsAndSumPackets(t *testing.T) {
	vm, gw := PlainFlows(0, 2, 3, 4)
	if !reflect.DeepEqual(vm, []string{"table=0,priority=100,in_port=2,actions=output:1", "table=0,priority=100,in_port=1,actions=output:2"}) {
		t.Fatalf("vm flows %q", vm)
	}
	if !reflect.DeepEqual(gw, []string{"table=0,priority=100,dl_dst=02:00:00:00:00:01,actions=output:3",
		"table=0,priority=100,dl_dst=02:00:00:00:00:02,actions=set_field:1->tun_id,output:4"}) {
		t.Fatalf("gw flows %q", gw)
	}
	_, gw = PlainFlows(1, 2, 3, 4)
	if !strings.Contains(gw[0], "dl_dst=02:00:00:00:00:02,") || !strings.Contains(gw[1], "dl_dst=02:00:00:00:00:01,") {
		t.Fatalf("site 2 gw flows %q", gw)
	}
	dvm, dgw := DirectFlows(0, 2, 3, 7)
	if !reflect.DeepEqual(dvm, vm) {
		t.Fatalf("direct vm flows %q", dvm)
	}
	if !reflect.DeepEqual(dgw, []string{"table=0,priority=100,dl_dst=02:00:00:00:00:01,actions=output:3",
		"table=0,priority=100,dl_dst=02:00:00:00:00:02,actions=output:7"}) {
		t.Fatalf("direct gw flows %q", dgw)
	}
	dump := ` cookie=0x0, duration=1.2s, table=0, n_packets=10, n_bytes=980, priority=200,in_port=2 actions=set_field:00:01:00:00:00:01->eth_src,goto_table:5
 cookie=0x0, duration=1.2s, table=0, n_packets=5, n_bytes=980, priority=190,in_port=2 actions=set_field:00:01:00:00:00:01->eth_src,goto_table:5
 cookie=0x0, duration=1.2s, table=0, n_packets=7, n_bytes=0, priority=100,in_port=2 actions=drop
`
	if n := SumPackets(dump, func(l string) bool { return strings.Contains(l, "->eth_src") }); n != 15 {
		t.Fatalf("SumPackets %d, want 15", n)
	}
}

func TestTenantDocAndLabSpec(t *testing.T) {
	var doc struct {
		Tenants []struct {
			Tenant string
			Hosts  []struct{ Name, MAC, IP, Cloud string }
		}
	}
	if err := json.Unmarshal(TenantDoc(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tenants) != 1 || doc.Tenants[0].Tenant != TenantName || len(doc.Tenants[0].Hosts) != 2 ||
		doc.Tenants[0].Hosts[1].Cloud != "c2" || doc.Tenants[0].Hosts[1].IP != "10.0.0.2/24" {
		t.Fatalf("doc %+v", doc)
	}
	spec := LabSpec(DefaultConfig(), Point{"geneve", 10, true})
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if spec.TunnelType != "geneve" || !spec.WireGuard || spec.WAN.DelayMS != 10 || len(spec.Sites) != 2 || len(spec.Hosts) != 2 ||
		spec.Hosts[0].IfaceID != "dp/h1" || spec.Hosts[1].Site != "c2" {
		t.Fatalf("spec %+v", spec)
	}
}

func TestPlot(t *testing.T) {
	ss := Summarize([]Measurement{
		{Point: Point{"vxlan", 0, false}, Mode: ModePlain, Rep: 1, RTTMedMS: 0.5, Mbps: 500},
		{Point: Point{"vxlan", 0, false}, Mode: ModeVirtualized, Rep: 1, RTTMedMS: 0.6, Mbps: 400},
		{Point: Point{"vxlan", 0, false}, Mode: ModeDirect, Rep: 1, RTTMedMS: 0.3, Mbps: 900},
		{Point: Point{"gre", 50, true}, Mode: ModePlain, Rep: 1, RTTMedMS: 101, Mbps: 50},
	})
	var b bytes.Buffer
	if err := Plot(&b, ss, "test"); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("\x89PNG")) || b.Len() < 10000 {
		t.Fatalf("not a PNG or too small: %d bytes", b.Len())
	}
	// an old file's summaries (no direct mode) plot too
	b.Reset()
	if err := Plot(&b, ss[1:], ""); err != nil || b.Len() < 10000 {
		t.Fatalf("plot without direct: %v, %d bytes", err, b.Len())
	}
	if Label(Point{"gre", 50, true}) != "gre 50ms +wg" {
		t.Fatal(Label(Point{"gre", 50, true}))
	}
}

func TestPool(t *testing.T) {
	p := Point{"vxlan", 0, false}
	q := Point{"gre", 10, false}
	ms := []Measurement{
		{Point: p, Mode: ModePlain, Rep: 1, RTTMedMS: 0.5, Mbps: 400},
		{Point: p, Mode: ModePlain, Rep: 2, RTTMedMS: 0.5, Mbps: 600},
		{Point: p, Mode: ModeVirtualized, Rep: 1, RTTMedMS: 0.7, Mbps: 250},
		{Point: q, Mode: ModePlain, Rep: 1, RTTMedMS: 21, Mbps: 100},
		{Point: q, Mode: ModeVirtualized, Rep: 1, RTTMedMS: 20.9, Mbps: 400},
	}
	o := Pool(ms, Summarize(ms))
	vd, vp, pd := o.Comparisons[0], o.Comparisons[1], o.Comparisons[2]
	if vd.A != ModeVirtualized || vd.B != ModeDirect || vd.Points != 0 || vp.A != ModeVirtualized || vp.B != ModePlain ||
		pd.A != ModePlain || pd.B != ModeDirect || pd.Points != 0 {
		t.Fatalf("comparisons %+v", o.Comparisons)
	}
	// ratios 0.5 and 4: geometric mean sqrt(2)
	if vp.Points != 2 || math.Abs(vp.TputRatioGeo-math.Sqrt2) > 1e-9 || vp.ALower != 1 {
		t.Fatalf("%+v", vp)
	}
	if math.Abs(vp.RTTDiffMedMS-0.05) > 1e-9 || math.Abs(vp.RTTDiffMaxAbsMS-0.2) > 1e-9 {
		t.Fatalf("rtt %+v", vp)
	}
	if math.Abs(o.SpreadPct[ModePlain]-40) > 1e-9 || !math.IsNaN(o.SpreadPct[ModeDirect]) { // (600-400)/500
		t.Fatalf("spread %v", o.SpreadPct)
	}
	if l := o.Lines(); len(l) != 3 || !strings.Contains(l[0], "virtualized - plain over 2 points") || !strings.Contains(l[1], "1.414 (+41.4 %)") ||
		!strings.Contains(l[2], "plain 40 %") || strings.Contains(l[2], "direct") {
		t.Fatalf("%q", l)
	}
	// with the direct mode at p: virt/direct 250/500, plain/direct 500/500
	ms = append(ms, Measurement{Point: p, Mode: ModeDirect, Rep: 1, RTTMedMS: 0.4, Mbps: 500})
	o = Pool(ms, Summarize(ms))
	vd, pd = o.Comparisons[0], o.Comparisons[2]
	if vd.Points != 1 || vd.TputRatioGeo != 0.5 || vd.ALower != 1 || math.Abs(vd.RTTDiffMedMS-0.3) > 1e-9 ||
		pd.Points != 1 || pd.TputRatioGeo != 1 || pd.ALower != 0 || math.Abs(pd.RTTDiffMedMS-0.1) > 1e-9 {
		t.Fatalf("with direct %+v", o.Comparisons)
	}
	if l := o.Lines(); len(l) != 7 || !strings.Contains(l[0], "virtualized - direct over 1 points") {
		t.Fatalf("%q", l)
	}
	if o := Pool(nil, nil); o.Comparisons[0].Points != 0 || !math.IsNaN(o.Comparisons[0].TputRatioGeo) || len(o.Lines()) != 0 {
		t.Fatalf("empty %+v", o)
	}
}
