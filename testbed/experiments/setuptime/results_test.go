package setuptime

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func sample() []Result {
	return []Result{
		{Sites: 2, VMs: 1, Mode: ModeMST, Run: 1, Tunnels: 1, OVSDBTxns: 2, ProbePairs: 1, TunnelType: "vxlan",
			LabUpMS: 300, ConnectedMS: 305, ProvisionedMS: 310, FlowsMS: 320, UsableMS: 340, Load1: 1.5},
		{Sites: 2, VMs: 1, Mode: ModeMST, Run: 2, Tunnels: 1, OVSDBTxns: 2, ProbePairs: 1, TunnelType: "vxlan",
			LabUpMS: 200, ConnectedMS: 210, ProvisionedMS: 230, FlowsMS: 240, UsableMS: 250, Load1: 2.5},
		{Sites: 2, VMs: 1, Mode: ModeMST, Run: 3, Tunnels: 1, OVSDBTxns: 2, ProbePairs: 1, TunnelType: "vxlan",
			LabUpMS: 400, ConnectedMS: 401, ProvisionedMS: 402, FlowsMS: 403, UsableMS: 404, Load1: 0.5},
		{Sites: 3, VMs: 1, Mode: ModeMesh, Run: 1, Tunnels: 3, OVSDBTxns: 6, ProbePairs: 3, TunnelType: "vxlan", DelayMS: 2.5,
			LabUpMS: 100, ConnectedMS: 110, ProvisionedMS: 120, FlowsMS: 130, UsableMS: 140, Load1: 1},
		{Sites: 2, VMs: 1, Mode: ModeMesh, Run: 1, Tunnels: 1, OVSDBTxns: 2, ProbePairs: 1, TunnelType: "vxlan",
			LabUpMS: 100, ConnectedMS: 110, ProvisionedMS: 120, FlowsMS: 130, UsableMS: 140, Load1: 1},
		{Sites: 2, VMs: 1, Mode: ModeMesh, Run: 2, Tunnels: 1, OVSDBTxns: 2, ProbePairs: 1, TunnelType: "vxlan",
			LabUpMS: 200, ConnectedMS: 210, ProvisionedMS: 240, FlowsMS: 250, UsableMS: 290, Load1: 3},
	}
}

func TestCSVRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, sample()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 7 || lines[0] != strings.Join(CSVHeader, ",") {
		t.Fatalf("csv:\n%s", b.String())
	}
	if lines[4] != "3,1,mesh,1,3,6,3,vxlan,2.5,100.0,110.0,120.0,130.0,140.0,1.00" {
		t.Fatalf("row: %q", lines[4])
	}
	got, err := ReadCSV(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sample()) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, sample())
	}
}

func TestReadCSVErrors(t *testing.T) {
	if _, err := ReadCSV(strings.NewReader("a,b\n1,2\n")); err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("bad header: %v", err)
	}
	row := "2,1,mst,1,1,2,1,vxlan,0,x,1,1,1,1,0.5"
	_, err := ReadCSV(strings.NewReader(strings.Join(CSVHeader, ",") + "\n" + row + "\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2, column t_lab_up_ms") {
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
	// lab up 300,200,400 -> 300; provision phases 10,30,2 -> 10; tunnel phases 40,50,4 -> 40
	if m.Runs != 3 || m.LabUpMS != 300 || m.ProvisionMS != 10 || m.TunnelsMS != 40 || m.UsableMS != 340 || m.Load1 != 1.5 || m.OVSDBTxns != 2 {
		t.Fatalf("mst medians: %+v", m)
	}
	// phases are medians of per-run differences: mesh runs (lab 100, prov 20, tun 40) and (200, 40, 90)
	if m := meds[1]; m.Runs != 2 || m.ProvisionMS != 30 || m.TunnelsMS != 65 || m.UsableMS != 215 {
		t.Fatalf("mesh medians: %+v", m)
	}
	var b bytes.Buffer
	if err := WriteMediansCSV(&b, meds); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || lines[0] != strings.Join(MediansHeader, ",") || lines[1] != "2,1,mst,1,3,2,300.0,10.0,40.0,340.0,5.0,5.0,10.0,10.0,1.50" {
		t.Fatalf("medians csv:\n%s", b.String())
	}
}

func TestResultPhases(t *testing.T) {
	r := sample()[0]
	if r.ProvisionMS() != 10 || r.TunnelsMS() != 40 || r.ConnectMS() != 5 || r.ApplyMS() != 5 || r.FlowPhaseMS() != 10 || r.PingMS() != 20 {
		t.Fatalf("phases %v %v %v %v %v %v", r.ProvisionMS(), r.TunnelsMS(), r.ConnectMS(), r.ApplyMS(), r.FlowPhaseMS(), r.PingMS())
	}
}
