package setuptime

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func sample() []Result {
	r := func(sites int, mode string, run, tunnels int, tun, apply, reach, load float64) Result {
		return Result{Sites: sites, VMs: 1, Mode: mode, Run: run, Tunnels: tunnels, Hosts: sites, Pairs: sites * (sites - 1) / 2,
			TunnelType: "vxlan", LabUpMS: 300, SwitchesMS: tun / 4, TunnelPortsMS: tun / 2, TunnelsUsableMS: tun, BoundMS: tun / 2,
			ApplyMS: apply, ReachableMS: reach, OVSDBTxns: uint64(2 * tunnels), FlowAdds: 40, Load1: load, Commit: "abc1234"}
	}
	return []Result{
		r(2, ModeMST, 1, 1, 100, 10, 30, 1.5),
		r(2, ModeMST, 2, 1, 200, 20, 50, 2.5),
		r(2, ModeMST, 3, 1, 120, 5, 20, 0.5),
		r(3, ModeMesh, 1, 3, 300, 10, 40, 1),
		r(2, ModeMesh, 1, 1, 100, 10, 30, 1),
		r(2, ModeMesh, 2, 1, 200, 30, 90, 3),
	}
}

func TestCSVRoundTrip(t *testing.T) {
	in := sample()
	in[3].DelayMS = 2.5
	var b bytes.Buffer
	if err := WriteCSV(&b, in); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 7 || lines[0] != strings.Join(CSVHeader(), ",") {
		t.Fatalf("csv:\n%s", b.String())
	}
	if lines[4] != "3,1,mesh,1,3,3,3,vxlan,2.5,300.0,75.0,150.0,300.0,150.0,10.0,40.0,6,40,1.00,abc1234" {
		t.Fatalf("row: %q", lines[4])
	}
	got, err := ReadCSV(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
	}
}

func TestReadCSVWithoutCommit(t *testing.T) {
	// a file written before the commit column existed (docs/results of 2026-11-22)
	old := strings.Join(CSVHeader()[:len(CSVHeader())-1], ",") + "\n" +
		"2,2,mst,1,1,4,6,vxlan,0,828.0,50.0,60.0,107.0,90.0,10.0,12.0,8,102,19.90\n"
	got, err := ReadCSV(strings.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Commit != "" || got[0].Load1 != 19.9 || got[0].FlowAdds != 102 || got[0].TunnelsUsableMS != 107 {
		t.Fatalf("got %+v", got)
	}
}

func TestReadCSVErrors(t *testing.T) {
	if _, err := ReadCSV(strings.NewReader("a,b\n1,2\n")); err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("bad header: %v", err)
	}
	row := "2,1,mst,1,1,2,1,vxlan,0,300,1,1,x,1,1,1,2,40,0.5,abc1234"
	_, err := ReadCSV(strings.NewReader(strings.Join(CSVHeader(), ",") + "\n" + row + "\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2, column t_tunnels_usable_ms") {
		t.Fatalf("bad number: %v", err)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !reflect.DeepEqual(in, c.in) {
			t.Errorf("median modified its input: %v", c.in)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}

func TestAggregate(t *testing.T) {
	meds := Aggregate(sample())
	if len(meds) != 3 {
		t.Fatalf("%d groups: %+v", len(meds), meds)
	}
	// order: sites, then mst before mesh
	if meds[0].Sites != 2 || meds[0].Mode != ModeMST || meds[1].Sites != 2 || meds[1].Mode != ModeMesh || meds[2].Sites != 3 {
		t.Fatalf("order: %+v", meds)
	}
	m := meds[0]
	// tunnels 100,200,120 -> 120; apply 10,20,5 -> 10; reach 30,50,20 -> 30;
	// reachability 20,30,15 -> 20; setup 130,250,140 -> 140 (not 120+30)
	if m.Runs != 3 || m.TunnelCreationMS != 120 || m.ControllerMS != 10 || m.PopulationMS != 30 || m.ReachabilityMS != 20 ||
		m.SetupMS != 140 || m.Load1 != 1.5 || m.OVSDBTxns != 2 || m.FlowAdds != 40 || m.TunnelPortsMS != 60 {
		t.Fatalf("mst medians: %+v", m)
	}
	// two runs: means of the middle two
	if m := meds[1]; m.Runs != 2 || m.TunnelCreationMS != 150 || m.PopulationMS != 60 || m.SetupMS != 210 {
		t.Fatalf("mesh medians: %+v", m)
	}
	var b bytes.Buffer
	if err := WriteMediansCSV(&b, meds); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || lines[0] != strings.Join(MediansHeader(), ",") ||
		lines[1] != "2,1,2,mst,1,2,3,300.0,30.0,60.0,120.0,60.0,10.0,20.0,30.0,140.0,2,40,1.50,abc1234" {
		t.Fatalf("medians csv:\n%s", b.String())
	}
}

func TestResultPhases(t *testing.T) {
	r := sample()[0]
	if r.TunnelCreationMS() != 100 || r.ControllerMS() != 10 || r.ReachabilityMS() != 20 || r.PopulationMS() != 30 || r.SetupMS() != 130 {
		t.Fatalf("phases %v %v %v %v %v", r.TunnelCreationMS(), r.ControllerMS(), r.ReachabilityMS(), r.PopulationMS(), r.SetupMS())
	}
}
