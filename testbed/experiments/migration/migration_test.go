package migration

import (
	"bytes"
	"strings"
	"testing"
)

func rowsFixture() []Row {
	step := func(move float64) []float64 { return []float64{0.3, 10, 2, 0, move, 3, 1, 1} }
	return []Row{
		{DelayMS: 0, Flows: 0, Hosts: 1, Rep: 1, Direction: "out", TotalMS: 200, StepMS: step(180), HostMoveMS: 180, PingSent: 300, PingLost: 3, Load1: 2.5, Commit: "abc1234"},
		{DelayMS: 0, Flows: 0, Hosts: 1, Rep: 1, Direction: "back", TotalMS: 220, StepMS: step(200), HostMoveMS: 200, PingSent: 300, PingLost: 5, Load1: 3.5, Commit: "abc1234"},
		{DelayMS: 0, Flows: 100, Hosts: 1, Rep: 1, Direction: "out", TotalMS: 260, StepMS: step(190), HostMoveMS: 190, Cloned: 100, Frozen: 100, PingSent: 300, PingLost: 2},
		{DelayMS: 10, Flows: 0, Hosts: 2, Rep: 1, Direction: "out", TotalMS: 400, StepMS: step(380), HostMoveMS: 190, PingSent: 300, PingLost: 4},
		{DelayMS: 10, Flows: 0, Hosts: 2, Rep: 1, Direction: "back", Err: "boom"},
	}
}

func TestCSVAndSummary(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, rowsFixture()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "delay_ms,flows,hosts,rep,direction,total_ms,plan_ms,freeze_ms,clone_ms,connect_ms,move_hosts_ms,") {
		t.Fatalf("csv:\n%s", b.String())
	}
	if lines[1] != "0,0,1,1,out,200.0,0.3,10.0,2.0,0.0,180.0,3.0,1.0,1.0,180.0,0,0,300,3,,2.50,abc1234" {
		t.Errorf("row: %s", lines[1])
	}
	ss := Summarize(rowsFixture())
	if len(ss) != 3 {
		t.Fatalf("summaries: %+v", ss)
	}
	if s := ss[0]; s.N != 2 || s.TotalMS != 210 || s.MoveMS != 190 || s.LostPerHost != 4 || s.Load1 != 3 || s.Commit != "abc1234" {
		t.Errorf("first summary: %+v", s)
	}
	if s := ss[2]; s.DelayMS != 10 || s.N != 1 { // the failed row is left out
		t.Errorf("last summary: %+v", s)
	}
	var sb bytes.Buffer
	if err := WriteSummaryCSV(&sb, ss); err != nil {
		t.Fatal(err)
	}
	if sl := strings.Split(sb.String(), "\n"); sl[0] != "delay_ms,flows,hosts,n,total_ms,move_ms,clone_ms,freeze_ms,ping_lost,load1,commit" ||
		sl[1] != "0,0,1,2,210.0,190.0,2.0,10.0,4.0,3.00,abc1234" {
		t.Errorf("summary csv:\n%s", sb.String())
	}
	var tb bytes.Buffer
	Table(&tb, ss)
	if !strings.Contains(tb.String(), "total_ms") || strings.Count(tb.String(), "\n") != 4 {
		t.Errorf("table:\n%s", tb.String())
	}
	var png bytes.Buffer
	if err := Plot(&png, ss, "test"); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png.Bytes(), []byte("\x89PNG")) {
		t.Error("plot is not a PNG")
	}
}

func TestConfig(t *testing.T) {
	var c Config
	c.Defaults()
	if err := c.Validate(); err != nil || len(c.DelaysMS) != 3 || c.PingCount != 300 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, bad := range []Config{{Prefix: "Bad"}, {Hosts: []int{9}}, {Flows: []int{-1}}, {DelaysMS: []int{5000}}} {
		bad.Defaults()
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
