package setuptime

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Prefix != "skx" || c.Runs != 3 || c.VMs != 2 || c.MaxPPS != 5000 || !reflect.DeepEqual(c.Sites, []int{2, 3, 4, 6, 8, 12, 16}) {
		t.Fatalf("defaults %+v", c)
	}
}

func TestValidateNamesEveryField(t *testing.T) {
	c := Config{Sites: []int{1, 4, 3}, VMs: 0, Modes: []string{"tree", ModeMST, ModeMST}, Runs: 0, DelayMS: -1,
		TunnelType: "ipsec", Prefix: "Toolong1", StateDir: "rel/dir", Interval: 0, MaxPPS: 0, Timeout: -time.Second}
	err := c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, f := range []string{"sites: 1 is outside", "ascending", "vms:", `modes: "tree"`, `"mst" given twice`, "runs:", "delay:",
		"tunnel:", "prefix:", "state-dir:", "interval:", "max-pps:", "timeout:"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error lacks %q: %v", f, err)
		}
	}
	c = DefaultConfig()
	c.VMs = 5 // 16 x 5 = 80 > 64
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "80 VMs") {
		t.Fatalf("too many VMs: %v", err)
	}
	c.VMs = 4
	if err := c.Validate(); err != nil {
		t.Fatalf("64 VMs: %v", err)
	}
}

func TestParse(t *testing.T) {
	if got, err := ParseInts(" 2, 3,16"); err != nil || !reflect.DeepEqual(got, []int{2, 3, 16}) {
		t.Fatal(got, err)
	}
	if _, err := ParseInts("2,x"); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatal(err)
	}
	if got, err := ParseModes("mesh,mst"); err != nil || !reflect.DeepEqual(got, []string{ModeMesh, ModeMST}) {
		t.Fatal(got, err)
	}
	if _, err := ParseModes("mst,ring"); err == nil || !strings.Contains(err.Error(), `"ring"`) {
		t.Fatal(err)
	}
}

func TestTunnelCount(t *testing.T) {
	for _, c := range []struct {
		mode    string
		n, want int
	}{{ModeMST, 2, 1}, {ModeMST, 16, 15}, {ModeMesh, 2, 1}, {ModeMesh, 16, 120}, {"x", 4, 0}} {
		if got := TunnelCount(c.mode, c.n); got != c.want {
			t.Errorf("TunnelCount(%s, %d) = %d, want %d", c.mode, c.n, got, c.want)
		}
	}
}

func TestLabSpec(t *testing.T) {
	c := DefaultConfig()
	c.VMs = 2
	c.DelayMS = 5
	s := LabSpec(c, 3)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(s.Sites) != 3 || s.Sites[2].Name != "s03" || len(s.Sites[0].VMs.List()) != 2 || len(s.Hosts) != 6 || s.Controller != "none" ||
		s.WAN.DelayMS != 5 || s.Prefix != "skx" {
		t.Fatalf("spec %+v", s)
	}
	h := s.Hosts[3]
	if h.Name != "h2-2" || h.Site != "s02" || h.VM != "vm2" || h.IP != "10.0.2.2/16" || h.MAC != "02:5e:00:00:02:02" || h.IfaceID != "st/h2-2" {
		t.Fatalf("host %+v", h)
	}
}

func TestProbeInterval(t *testing.T) {
	c := DefaultConfig()
	if got := c.probeInterval(10); got != c.Interval {
		t.Errorf("10 probes: %v, want %v", got, c.Interval)
	}
	// 2016 pairs at 5000/s: one round every 403.2 ms
	if got := c.probeInterval(2016); got != 403200*time.Microsecond {
		t.Errorf("2016 probes: %v", got)
	}
}
