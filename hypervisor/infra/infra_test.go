package infra

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/tunnels"
)

// TestLabInventory decodes a real `skylab status --json` output (captured
// from a 3-site lab: aws with vm1+vm2, gcp with vm1, azure with "web") with
// infra's own types.
func TestLabInventory(t *testing.T) {
	inf, err := Load("testdata/lab-inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(inf.Sites) != 3 || len(inf.Switches) != 7 {
		t.Fatalf("got %d sites, %d switches; want 3, 7", len(inf.Sites), len(inf.Switches))
	}
	if inf.TunnelType != "vxlan" {
		t.Errorf("tunnel type %q", inf.TunnelType)
	}
	if got := inf.ControllerTarget("gcp"); got != "unix:/tmp/skgcap/state/s2/run/controller.sock" {
		t.Errorf("controller target of gcp = %q", got)
	}
	gw := inf.Gateway("azure")
	if gw == nil || gw.DPID != 0x300 || gw.Bridge != "gw" || gw.OVSDB != "unix:/tmp/skgcap/state/s3/run/db.sock" {
		t.Fatalf("azure gateway = %+v", gw)
	}
	vm := inf.SwitchByDPID(0x102)
	if vm == nil || vm.VM != "vm2" || vm.Site != "aws" {
		t.Fatalf("switch 0x102 = %+v", vm)
	}
	up, down, ok := inf.Uplink(vm)
	if !ok || up != 1 || down != 2 {
		t.Errorf("uplink of aws/vm2 = %d, %d, %v; want 1 (VM side), 2 (gateway side)", up, down, ok)
	}
	ti := inf.Topology()
	if !slices.Equal(ti.Clouds["aws"], []string{"vm1", "vm2"}) || !slices.Equal(ti.Clouds["azure"], []string{"web"}) {
		t.Errorf("topology infra = %v", ti.Clouds)
	}
	ts := inf.TunnelSites()
	if ts[1].Name != "gcp" || ts[1].TunnelEndpoint().String() != "172.31.0.2" {
		t.Errorf("tunnel sites = %v", ts)
	}
	c := inf.TunnelCosts()
	if v, ok := c.Get("azure", "aws"); !ok || v != 1 || len(c) != 3 {
		t.Errorf("costs = %v, want 3 pairs of cost 1", c)
	}
	plan, err := tunnels.MST(ts, c)
	if err != nil || plan.Len() != 2 {
		t.Fatalf("MST = %v, %v", plan, err)
	}
}

func TestHandWrittenExample(t *testing.T) {
	inf, err := Load("../../examples/infra/two-clouds.json")
	if err != nil {
		t.Fatal(err)
	}
	if inf.Encap().Type != tunnels.Geneve {
		t.Errorf("encap %v", inf.Encap())
	}
	if v, _ := inf.TunnelCosts().Get("gcp-us", "aws-eu"); v != 92.5 {
		t.Errorf("cost %v, want 92.5", v)
	}
	if inf.SwitchByDPID(4097).OVSDB != "tcp:10.1.0.11:6640" || inf.SwitchByDPID(4096).OVSDB != "tcp:10.1.0.10:6640" {
		t.Errorf("OVSDB endpoints: %+v", inf.Switches)
	}
}

func TestImpliedGatewayAndWANCosts(t *testing.T) {
	doc := `{"sites":[
	  {"name":"a","ovsdb":"unix:/run/a.sock","underlay_ip":"10.9.0.1","gateway_bridge":"gw","gateway_dpid":256},
	  {"name":"b","ovsdb":"unix:/run/b.sock","underlay_ip":"10.9.0.2","gateway_bridge":"gw","gateway_dpid":512},
	  {"name":"c","ovsdb":"unix:/run/c.sock","underlay_ip":"10.9.0.3","gateway_bridge":"gw","gateway_dpid":768}],
	 "switches":[], "wan":{"delay_ms":5,"pairs":[{"a":"c","b":"a","delay_ms":40}]}}`
	inf, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(inf.Switches) != 3 || inf.Gateway("b").DPID != 512 || inf.Gateway("b").OVSDB != "unix:/run/b.sock" {
		t.Fatalf("implied gateways: %+v", inf.Switches)
	}
	c := inf.TunnelCosts()
	if v, _ := c.Get("a", "c"); v != 80 {
		t.Errorf("a~c = %v, want 80 (2 x 40)", v)
	}
	if v, _ := c.Get("a", "b"); v != 10 {
		t.Errorf("a~b = %v, want 10", v)
	}
	plan, _ := tunnels.MST(inf.TunnelSites(), c)
	if plan.Has("a", "c") {
		t.Errorf("MST %v uses the slow pair", plan)
	}
}

func TestValidationPaths(t *testing.T) {
	doc := `{"tunnel_type":"ipip","controller":"udp:x","sites":[
	  {"name":"a","ovsdb":"unix:rel","underlay_ip":"nope","gateway_bridge":"gw","gateway_dpid":256},
	  {"name":"a","ovsdb":"unix:/b","underlay_ip":"10.0.0.2","gateway_bridge":"","gateway_dpid":0}],
	 "switches":[
	  {"site":"a","role":"gateway","bridge":"gw","dpid":256,"patch_ports":[]},
	  {"site":"zz","role":"vm","vm":"v","bridge":"v","dpid":1,"patch_ports":[]},
	  {"site":"a","role":"vm","vm":"","bridge":"v1","dpid":256,"patch_ports":[{"name":"x","ofport":0,"peer":"y","peer_bridge":"other"}]},
	  {"site":"a","role":"router","bridge":"r","dpid":9,"patch_ports":[]}],
	 "costs":[{"a":"a","b":"q","rtt_ms":-1}]}`
	_, err := Parse([]byte(doc))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	paths := map[string]bool{}
	for _, fe := range verr.Errors {
		paths[fe.Path] = true
	}
	for _, want := range []string{"tunnel_type", "controller", "sites[0].ovsdb", "sites[0].underlay_ip", "sites[1].name",
		"sites[1].gateway_bridge", "sites[1].gateway_dpid", "switches[1].site", "switches[2].vm", "switches[2].dpid",
		"switches[2].patch_ports[0].ofport", "switches[2].patch_ports[0].peer_bridge", "switches[3].role", "costs[0].b", "costs[0].rtt_ms"} {
		if !paths[want] {
			t.Errorf("no error for %s; got %v", want, err)
		}
	}
}

func TestMissingDownlink(t *testing.T) {
	doc := `{"sites":[{"name":"a","ovsdb":"unix:/a","underlay_ip":"10.0.0.1","gateway_bridge":"gw","gateway_dpid":256}],
	 "switches":[{"site":"a","role":"vm","vm":"v","bridge":"v","dpid":257,
	   "patch_ports":[{"name":"v-gw","ofport":1,"peer":"gw-v","peer_bridge":"gw"}]}]}`
	_, err := Parse([]byte(doc))
	if err == nil || !strings.Contains(err.Error(), "switches[0].patch_ports[0]: gateway \"gw\" of site \"a\" has no patch port toward bridge \"v\"") {
		t.Fatalf("err = %v", err)
	}
}

func TestTypeErrorAndSyntax(t *testing.T) {
	if _, err := Parse([]byte(`{"sites":[{"name":"a","gateway_dpid":"0x1"}]}`)); err == nil || !strings.Contains(err.Error(), "sites.gateway_dpid") {
		t.Errorf("type error: %v", err)
	}
	if _, err := Parse([]byte(`{"sites":`)); err == nil {
		t.Error("truncated document accepted")
	}
	if _, err := Parse([]byte(`{"sites":[]} {}`)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("trailing data: %v", err)
	}
}

func TestCloneIsDeep(t *testing.T) {
	inf, err := Load("testdata/lab-inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	c := inf.Clone()
	c.Switches[0].PatchPorts[0].OFPort = 99
	c.Sites[0].Name = "x"
	if inf.Switches[0].PatchPorts[0].OFPort == 99 || inf.Sites[0].Name == "x" {
		t.Error("Clone shares memory")
	}
	if _, err := os.Stat("testdata/lab-inventory.json"); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse: any document either fails with an error or yields an
// infrastructure whose helpers do not panic and that validates again.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/lab-inventory.json", "../../examples/infra/two-clouds.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"sites":[{"name":"a","ovsdb":"unix:/a","underlay_ip":"10.0.0.1","gateway_bridge":"gw","gateway_dpid":1}],"switches":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		inf, err := Parse(b)
		if err != nil {
			return
		}
		if err := inf.Clone().Validate(); err != nil {
			t.Fatalf("accepted document fails validation again: %v", err)
		}
		_ = inf.Topology()
		_ = inf.TunnelCosts()
		for _, s := range inf.TunnelSites() {
			if !s.TunnelEndpoint().IsValid() {
				t.Fatalf("site %q has no tunnel endpoint", s.Name)
			}
		}
		for i := range inf.Switches {
			sw := &inf.Switches[i]
			if _, _, ok := inf.Uplink(sw); sw.Role == RoleVM && !ok {
				t.Fatalf("VM %s/%s accepted without an uplink", sw.Site, sw.Bridge)
			}
		}
	})
}

// TestCostSelection: per pair, a configured cost wins over a measured one,
// a measured one over the WAN's delay, the WAN's delay over the default 1.
func TestCostSelection(t *testing.T) {
	doc := `{"sites":[
	  {"name":"a","ovsdb":"unix:/run/a.sock","underlay_ip":"10.9.0.1","gateway_bridge":"gw","gateway_dpid":256},
	  {"name":"b","ovsdb":"unix:/run/b.sock","underlay_ip":"10.9.0.2","gateway_bridge":"gw","gateway_dpid":512},
	  {"name":"c","ovsdb":"unix:/run/c.sock","underlay_ip":"10.9.0.3","gateway_bridge":"gw","gateway_dpid":768},
	  {"name":"d","ovsdb":"unix:/run/d.sock","underlay_ip":"10.9.0.4","gateway_bridge":"gw","gateway_dpid":1024}],
	 "switches":[],
	 "wan":{"delay_ms":0,"pairs":[{"a":"a","b":"d","delay_ms":7},{"a":"a","b":"b","delay_ms":50}]},
	 "costs":[
	  {"a":"a","b":"b","rtt_ms":21.5,"source":"measured"},
	  {"a":"b","b":"a","rtt_ms":3},
	  {"a":"a","b":"c","rtt_ms":12.25,"source":"measured"},
	  {"a":"c","b":"a","rtt_ms":13,"source":"measured"},
	  {"a":"b","b":"c","rtt_ms":4,"source":"configured"},
	  {"a":"c","b":"b","rtt_ms":9,"source":"measured"}]}`
	inf, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := inf.TunnelCosts()
	for _, w := range []struct {
		a, b string
		cost float64
		src  string
	}{
		{"a", "b", 3, CostConfigured}, // configured (listed after the measured one)
		{"b", "c", 4, CostConfigured}, // configured (listed before the measured one)
		{"a", "c", 13, CostMeasured},  // the last measured entry
		{"a", "d", 14, CostWAN},       // 2 × 7 ms
		{"b", "d", 1, CostDefault},    // WAN delay 0: nothing known
		{"c", "d", 1, CostDefault},
	} {
		if v, ok := c.Get(w.a, w.b); !ok || v != w.cost {
			t.Errorf("cost %s~%s = %v, %v; want %v", w.a, w.b, v, ok, w.cost)
		}
		if got := inf.CostSource(w.b, w.a); got != w.src {
			t.Errorf("source %s~%s = %q, want %q", w.a, w.b, got, w.src)
		}
	}
	if len(c) != 6 {
		t.Errorf("%d pairs, want 6", len(c))
	}
	// a lab inventory with measured costs decodes as an Infra and its
	// measured RTTs replace the WAN-derived costs
	inf2 := inf.Clone()
	inf2.Costs = []Cost{{A: "a", B: "d", RTTMS: 15.2, Source: CostMeasured}}
	if v, _ := inf2.TunnelCosts().Get("a", "d"); v != 15.2 || inf2.CostSource("a", "d") != CostMeasured {
		t.Errorf("measured a~d = %v (%s), want 15.2 measured", v, inf2.CostSource("a", "d"))
	}
	_, err = Parse([]byte(strings.Replace(doc, `"source":"configured"`, `"source":"guessed"`, 1)))
	if err == nil || !strings.Contains(err.Error(), "costs[4].source: \"guessed\"") {
		t.Errorf("bad source: %v", err)
	}
}

// TestLabInventoryMeasuredCosts: the costs[] a lab writes with
// wan.measure_rtt (with its extra "samples" field) decode as measured costs
// of the inventory and override its WAN-derived ones.
func TestLabInventoryMeasuredCosts(t *testing.T) {
	b, err := os.ReadFile("testdata/lab-inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["costs"] = []map[string]any{{"a": "aws", "b": "azure", "rtt_ms": 41.5, "source": "measured", "samples": 5}}
	b, _ = json.Marshal(doc)
	inf, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := inf.TunnelCosts().Get("azure", "aws"); v != 41.5 || inf.CostSource("aws", "azure") != CostMeasured {
		t.Errorf("aws~azure = %v from %s, want 41.5 measured", v, inf.CostSource("aws", "azure"))
	}
	if src := inf.CostSource("aws", "gcp"); src == CostMeasured || src == CostConfigured {
		t.Errorf("aws~gcp from %s, want the WAN or the default", src)
	}
}
