package ovsdb

import (
	"reflect"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/ovsdb/vswitch"
)

func TestBridgeSpecValidate(t *testing.T) {
	ok := BridgeSpec{
		Name: "br-int", DatapathID: "00000000000000aB", DatapathType: "netdev",
		Protocols: []string{"OpenFlow13", "OpenFlow10"}, FailMode: "secure",
		Controllers:    []string{"tcp:127.0.0.1:6653", "tcp:10.0.0.1", "tcp:[::1]:6653", "tcp:[fd00::1]", "unix:/run/sky/ctl.sock"},
		ConnectionMode: "out-of-band", ExternalIDs: map[string]string{"a": "b"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (BridgeSpec{Name: "b"}).Validate(); err != nil {
		t.Fatalf("minimal spec: %v", err)
	}
	cases := []struct {
		mod  func(*BridgeSpec)
		want string
	}{
		{func(s *BridgeSpec) { s.Name = "" }, "ovsdb: bridge name: empty"},
		{func(s *BridgeSpec) { s.Name = "br-with-a-long-name" }, `ovsdb: bridge name: "br-with-a-long-name": longer than 15 bytes`},
		{func(s *BridgeSpec) { s.Name = "br/x" }, `contains '/'`},
		{func(s *BridgeSpec) { s.Name = "br-x"; s.DatapathID = "zz" }, `ovsdb: bridge "br-x": datapath ID "zz": not 16 hex digits`},
		{func(s *BridgeSpec) { s.DatapathID = "000000000000000g" }, `datapath ID "000000000000000g": not 16 hex digits`},
		{func(s *BridgeSpec) { s.DatapathID = "+00000000000000a" }, `not 16 hex digits`},
		{func(s *BridgeSpec) { s.DatapathID = "0000000000000000" }, `must not be zero`},
		{func(s *BridgeSpec) { s.DatapathType = "dpdk" }, `datapath type "dpdk"`},
		{func(s *BridgeSpec) { s.Protocols = []string{"OpenFlow13", "OF13"} }, `protocol "OF13"`},
		{func(s *BridgeSpec) { s.Protocols = []string{"OpenFlow13", "OpenFlow13"} }, `protocol "OpenFlow13" listed twice`},
		{func(s *BridgeSpec) { s.FailMode = "closed" }, `fail mode "closed"`},
		{func(s *BridgeSpec) { s.Controllers = []string{"tcp:ctl.example:6653"} }, `controller "tcp:ctl.example:6653"`},
		{func(s *BridgeSpec) { s.Controllers = []string{"tcp:::1"} }, `controller "tcp:::1"`},
		{func(s *BridgeSpec) { s.Controllers = []string{"tcp:[::1"} }, `unbalanced brackets`},
		{func(s *BridgeSpec) { s.Controllers = []string{"tcp:[10.0.0.1]"} }, `controller "tcp:[10.0.0.1]"`},
		{func(s *BridgeSpec) { s.Controllers = []string{"tcp:10.0.0.1:0"} }, `port 1-65535`},
		{func(s *BridgeSpec) { s.Controllers = []string{"ptcp:6653"} }, `controller "ptcp:6653": want tcp:IP[:PORT] or unix:/path`},
		{func(s *BridgeSpec) { s.Controllers = []string{"unix:ctl.sock"} }, `want unix:/absolute/path`},
		{func(s *BridgeSpec) { s.Controllers = []string{"tcp:10.0.0.1", "tcp:10.0.0.1"} }, `listed twice`},
		{func(s *BridgeSpec) { s.ConnectionMode = "sideways" }, `connection mode "sideways"`},
		{func(s *BridgeSpec) { s.ExternalIDs = map[string]string{"": "x"} }, `external_ids: empty key`},
	}
	for _, c := range cases {
		s := ok
		c.mod(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Validate() = %v, want %q", s, err, c.want)
		}
	}
}

func TestDatapathID(t *testing.T) {
	v, err := ParseDatapathID("00000000000000aB")
	if err != nil || v != 0xab {
		t.Fatalf("ParseDatapathID = %#x, %v", v, err)
	}
	if got := FormatDatapathID(0xab); got != "00000000000000ab" {
		t.Fatalf("FormatDatapathID = %q", got)
	}
	if v, err := ParseDatapathID(FormatDatapathID(^uint64(0))); err != nil || v != ^uint64(0) {
		t.Fatalf("max: %#x %v", v, err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestPlanBridgeCreate(t *testing.T) {
	spec := BridgeSpec{Name: "br0", DatapathID: "00000000000000AB", DatapathType: "netdev", Protocols: []string{"OpenFlow13"},
		FailMode: "secure", Controllers: []string{"tcp:127.0.0.1:6653"}, ExternalIDs: map[string]string{"k": "v"}}
	p := planBridge(nil, nil, spec)
	if !p.create || p.mode != ConnectionModeOutOfBand || !reflect.DeepEqual(p.add, spec.Controllers) {
		t.Fatalf("plan = %+v", p)
	}
	if p.row.OtherConfig["datapath-id"] != "00000000000000ab" || *p.row.FailMode != "secure" || p.row.DatapathType != "netdev" || p.row.ExternalIDs["k"] != "v" {
		t.Fatalf("row = %+v", p.row)
	}
}

// current returns a bridge matching spec exactly, with its controller rows.
func current() (*vswitch.Bridge, map[string]*vswitch.Controller, BridgeSpec) {
	spec := BridgeSpec{Name: "br0", DatapathID: "00000000000000ab", DatapathType: "netdev", Protocols: []string{"OpenFlow13", "OpenFlow10"},
		FailMode: "secure", Controllers: []string{"tcp:127.0.0.1:6653", "unix:/run/c.sock"}, ExternalIDs: map[string]string{"k": "v"}}
	br := &vswitch.Bridge{UUID: "b-uuid", Name: "br0", DatapathType: "netdev", Protocols: []string{"OpenFlow10", "OpenFlow13"},
		FailMode: ptr("secure"), OtherConfig: map[string]string{"datapath-id": "00000000000000AB", "other": "x"},
		ExternalIDs: map[string]string{"k": "v", "foreign": "keep"}, Controller: []string{"c1", "c2"}}
	ctrls := map[string]*vswitch.Controller{
		"c1": {UUID: "c1", Target: "tcp:127.0.0.1:6653", ConnectionMode: ptr("out-of-band")},
		"c2": {UUID: "c2", Target: "unix:/run/c.sock", ConnectionMode: ptr("out-of-band")},
	}
	return br, ctrls, spec
}

func TestPlanBridgeUnchanged(t *testing.T) {
	br, ctrls, spec := current()
	if p := planBridge(br, ctrls, spec); !p.empty() {
		t.Fatalf("plan for an equal bridge = %+v", p)
	}
	// Unmanaged (zero) fields never produce changes.
	if p := planBridge(br, ctrls, BridgeSpec{Name: "br0"}); !p.empty() {
		t.Fatalf("plan for an empty spec = %+v", p)
	}
	// Controller order does not matter.
	spec.Controllers = []string{"unix:/run/c.sock", "tcp:127.0.0.1:6653"}
	if p := planBridge(br, ctrls, spec); !p.empty() {
		t.Fatalf("reordered controllers: %+v", p)
	}
}

func TestPlanBridgeChanges(t *testing.T) {
	br, ctrls, spec := current()
	spec.DatapathID = "00000000000000cd"
	spec.FailMode = "standalone"
	spec.Protocols = []string{"OpenFlow13"}
	spec.ExternalIDs = map[string]string{"k": "v2"}
	p := planBridge(br, ctrls, spec)
	if !reflect.DeepEqual(p.columns, []string{"protocols", "fail_mode", "other_config", "external_ids"}) {
		t.Fatalf("columns = %v", p.columns)
	}
	if p.row.OtherConfig["datapath-id"] != "00000000000000cd" || p.row.OtherConfig["other"] != "x" {
		t.Fatalf("other_config = %v (must keep foreign keys)", p.row.OtherConfig)
	}
	if !reflect.DeepEqual(p.row.ExternalIDs, map[string]string{"k": "v2", "foreign": "keep"}) {
		t.Fatalf("external_ids = %v", p.row.ExternalIDs)
	}
	if br.ExternalIDs["k"] != "v" || br.OtherConfig["datapath-id"] != "00000000000000AB" {
		t.Fatal("planBridge modified the current row")
	}
	if p.setControllers || len(p.fixMode) != 0 {
		t.Fatalf("controllers touched: %+v", p)
	}
}

func TestPlanBridgeControllers(t *testing.T) {
	br, ctrls, spec := current()

	// Mode change: rows fixed in place, column untouched (no flow flush).
	spec.ConnectionMode = ConnectionModeInBand
	p := planBridge(br, ctrls, spec)
	if p.setControllers || !reflect.DeepEqual(p.fixMode, []string{"c1", "c2"}) || p.mode != "in-band" {
		t.Fatalf("mode change plan = %+v", p)
	}

	// One target replaced: keep c1, add the new one.
	_, _, spec = current()
	spec.Controllers = []string{"tcp:127.0.0.1:6653", "tcp:127.0.0.2:6653"}
	p = planBridge(br, ctrls, spec)
	if !p.setControllers || !reflect.DeepEqual(p.keep, []string{"c1"}) || !reflect.DeepEqual(p.add, []string{"tcp:127.0.0.2:6653"}) {
		t.Fatalf("replace plan = %+v", p)
	}

	// All removed.
	spec.Controllers = []string{}
	p = planBridge(br, ctrls, spec)
	if !p.setControllers || len(p.keep) != 0 || len(p.add) != 0 {
		t.Fatalf("remove plan = %+v", p)
	}

	// A duplicate row and a dangling reference are dropped.
	br.Controller = []string{"c1", "c3", "c9", "c2"}
	ctrls["c3"] = &vswitch.Controller{UUID: "c3", Target: "tcp:127.0.0.1:6653", ConnectionMode: ptr("out-of-band")}
	_, _, spec = current()
	p = planBridge(br, ctrls, spec)
	if !p.setControllers || !reflect.DeepEqual(p.keep, []string{"c1", "c2"}) || len(p.add) != 0 {
		t.Fatalf("dedup plan = %+v", p)
	}

	// nil Controllers: not managed.
	spec.Controllers = nil
	if p := planBridge(br, ctrls, spec); p.setControllers {
		t.Fatalf("nil controllers managed: %+v", p)
	}
}

func TestMergeMap(t *testing.T) {
	cur := map[string]string{"a": "1", "b": "2"}
	if m, changed := mergeMap(cur, map[string]string{"a": "1"}); changed || !reflect.DeepEqual(m, cur) {
		t.Fatal("subset reported as change")
	}
	m, changed := mergeMap(cur, map[string]string{"a": "9", "c": "3"})
	if !changed || !reflect.DeepEqual(m, map[string]string{"a": "9", "b": "2", "c": "3"}) || cur["a"] != "1" {
		t.Fatalf("merge = %v, cur = %v", m, cur)
	}
	if m, changed := mergeMap(nil, map[string]string{"x": "y"}); !changed || m["x"] != "y" {
		t.Fatal("merge into nil")
	}
}
