package topology

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func testInfra() Infra {
	return Infra{Clouds: map[string][]string{
		"aws":   {"vm1", "vm2"},
		"gcp":   {"vm1", "vm2"},
		"azure": {"web", "db"},
	}}
}

// valid returns a small valid topology: two switches, one link, two hosts.
func valid() *Topology {
	return &Topology{
		Tenant:   "acme",
		Apps:     []string{"learning"},
		Switches: []Switch{{Name: "s1"}, {Name: "s2", DPID: 0x42}},
		Links:    []Link{{A: Endpoint{"s1", 1}, B: Endpoint{"s2", 1}}},
		Hosts: []Host{
			{Name: "h1", MAC: "00:00:00:00:00:01", IP: "10.0.0.1/24", Switch: "s1", Port: 2, Cloud: "aws", VM: "vm1"},
			{Name: "h2", MAC: "00:00:00:00:00:02", IP: "10.0.0.2/24", Switch: "s2", Port: 2, Cloud: "gcp"},
		},
	}
}

func fieldErrors(t *testing.T, err error) []FieldError {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return ve.Errors
}

func TestValidateOK(t *testing.T) {
	if err := Validate(valid(), testInfra()); err != nil {
		t.Fatal(err)
	}
	// Unknown infrastructure: cloud/VM names only checked for syntax.
	tp := valid()
	tp.Hosts[0].Cloud, tp.Hosts[0].VM = "anywhere", "whatever"
	if err := Validate(tp, Infra{}); err != nil {
		t.Fatal(err)
	}
	// Same IP in different VLANs, IPv6, parallel links, explicit empty apps.
	tp = valid()
	tp.Apps = []string{}
	tp.Hosts[1].IP = "10.0.0.1/24"
	tp.Hosts[1].VLAN = 10
	tp.Hosts = append(tp.Hosts, Host{Name: "h3", MAC: "00:00:00:00:00:03", IP: "fd00::3/64", Switch: "s1", Port: 3, Cloud: "azure"})
	tp.Links = append(tp.Links, Link{A: Endpoint{"s2", 7}, B: Endpoint{"s1", 7}})
	if err := Validate(tp, testInfra()); err != nil {
		t.Fatal(err)
	}
}

func TestValidateErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Topology)
		infra  *Infra
		want   []string // "path: substring"
	}{
		{"empty tenant", func(tp *Topology) { tp.Tenant = "" }, nil, []string{"$.tenant: required"}},
		{"bad tenant", func(tp *Topology) { tp.Tenant = "-acme" }, nil, []string{"$.tenant: invalid tenant name"}},
		{"upper tenant", func(tp *Topology) { tp.Tenant = "Acme" }, nil, []string{"$.tenant: invalid tenant name"}},
		{"long tenant", func(tp *Topology) { tp.Tenant = strings.Repeat("a", 64) }, nil, []string{"$.tenant: invalid tenant name"}},
		{"bad app", func(tp *Topology) { tp.Apps = []string{"ok", "no/slash"} }, nil, []string{"$.apps[1]: invalid app name"}},
		{"dup app", func(tp *Topology) { tp.Apps = []string{"learning", "learning"} }, nil, []string{"$.apps[1]: duplicate app \"learning\" (also $.apps[0])"}},
		{"too many apps", func(tp *Topology) {
			tp.Apps = nil
			for i := 0; i <= MaxApps; i++ {
				tp.Apps = append(tp.Apps, "a"+string(rune('a'+i)))
			}
		}, nil, []string{"$.apps: too many apps"}},
		{"no switches", func(tp *Topology) { tp.Switches = nil; tp.Links = nil; tp.Hosts = tp.Hosts[:0] }, nil,
			[]string{"$.hosts: at least one host", "$.switches: at least one virtual switch"}},
		{"switch no name", func(tp *Topology) { tp.Switches[0].Name = "" }, nil,
			[]string{"$.hosts[0].switch: unknown virtual switch \"s1\"", "$.links[0].a.switch: unknown virtual switch \"s1\"", "$.switches[0].name: required"}},
		{"bad switch name", func(tp *Topology) {
			tp.Switches[1].Name = "s 2"
			tp.Links = nil
			tp.Hosts[1].Switch, tp.Hosts[1].Port = "s1", 3
		}, nil,
			[]string{"$.switches[1].name: invalid virtual switch name"}},
		{"dup switch", func(tp *Topology) { tp.Switches = append(tp.Switches, Switch{Name: "s1"}) }, nil,
			[]string{"$.switches[2].name: duplicate virtual switch name \"s1\" (also $.switches[0].name)"}},
		{"dup dpid", func(tp *Topology) { tp.Switches = append(tp.Switches, Switch{Name: "s3", DPID: 0x42}) }, nil,
			[]string{"$.switches[2].dpid: virtual DPID 00:00:00:00:00:00:00:42 is also the DPID of $.switches[1]"}},
		{"derived dpid clash", func(tp *Topology) { tp.Switches = append(tp.Switches, Switch{Name: "s3", DPID: DeriveDPID("s1")}) }, nil,
			[]string{"$.switches[2].dpid: virtual DPID"}},
		{"link unknown switch", func(tp *Topology) { tp.Links[0].B.Switch = "s9" }, nil, []string{"$.links[0].b.switch: unknown virtual switch \"s9\""}},
		{"link no switch", func(tp *Topology) { tp.Links[0].A = Endpoint{} }, nil,
			[]string{"$.links[0].a.port: port 0 out of range", "$.links[0].a.switch: required"}},
		{"link port high", func(tp *Topology) { tp.Links[0].A.Port = MaxPort + 1 }, nil, []string{"$.links[0].a.port: port 4294967041 out of range"}},
		{"self link", func(tp *Topology) { tp.Links[0].B = Endpoint{"s1", 5} }, nil, []string{"$.links[0]: self-link"}},
		{"dup link reversed", func(tp *Topology) { tp.Links = append(tp.Links, Link{A: tp.Links[0].B, B: tp.Links[0].A}) }, nil,
			[]string{"$.links[1]: duplicate link: same endpoints as $.links[0]"}},
		{"link port reuse", func(tp *Topology) { tp.Links = append(tp.Links, Link{A: Endpoint{"s1", 1}, B: Endpoint{"s2", 9}}) }, nil,
			[]string{"$.links[1].a.port: port 1 of switch \"s1\" already used by $.links[0].a"}},
		{"host on link port", func(tp *Topology) { tp.Hosts[1].Switch, tp.Hosts[1].Port = "s1", 1 }, nil,
			[]string{"$.hosts[1].port: port 1 of switch \"s1\" already used by $.links[0].a"}},
		{"host on host port", func(tp *Topology) { tp.Hosts[1].Switch = "s1" }, nil,
			[]string{"$.hosts[1].port: port 2 of switch \"s1\" already used by $.hosts[0]"}},
		{"dup host name", func(tp *Topology) { tp.Hosts[1].Name = "h1" }, nil, []string{"$.hosts[1].name: duplicate host name \"h1\" (also $.hosts[0].name)"}},
		{"host no name", func(tp *Topology) { tp.Hosts[1].Name = "" }, nil, []string{"$.hosts[1].name: required"}},
		{"host bad name", func(tp *Topology) { tp.Hosts[1].Name = "a/b" }, nil, []string{"$.hosts[1].name: invalid host name"}},
		{"no hosts", func(tp *Topology) { tp.Hosts = []Host{} }, nil, []string{"$.hosts: at least one host is required"}},
		{"mac missing", func(tp *Topology) { tp.Hosts[0].MAC = "" }, nil, []string{"$.hosts[0].mac: required"}},
		{"mac syntax", func(tp *Topology) { tp.Hosts[0].MAC = "00:00:00:00:01" }, nil, []string{"$.hosts[0].mac: invalid MAC address"}},
		{"mac broadcast", func(tp *Topology) { tp.Hosts[0].MAC = "FF:FF:FF:FF:FF:FF" }, nil, []string{"$.hosts[0].mac: MAC ff:ff:ff:ff:ff:ff is the broadcast"}},
		{"mac multicast", func(tp *Topology) { tp.Hosts[0].MAC = "33:33:00:00:00:01" }, nil, []string{"$.hosts[0].mac: MAC 33:33:00:00:00:01 is a multicast"}},
		{"mac zero", func(tp *Topology) { tp.Hosts[0].MAC = "00-00-00-00-00-00" }, nil, []string{"$.hosts[0].mac: MAC 00:00:00:00:00:00 is not"}},
		{"mac dup other case", func(tp *Topology) { tp.Hosts[0].MAC, tp.Hosts[1].MAC = "0a:00:00:00:00:01", "0A-00-00-00-00-01" }, nil,
			[]string{"$.hosts[1].mac: duplicate MAC 0a:00:00:00:00:01 (also $.hosts[0].mac)"}},
		{"ip missing", func(tp *Topology) { tp.Hosts[0].IP = "" }, nil, []string{"$.hosts[0].ip: required"}},
		{"ip no prefix", func(tp *Topology) { tp.Hosts[0].IP = "10.0.0.1" }, nil, []string{"$.hosts[0].ip: invalid address"}},
		{"ip bad prefix", func(tp *Topology) { tp.Hosts[0].IP = "10.0.0.1/33" }, nil, []string{"$.hosts[0].ip: invalid address"}},
		{"ip loopback", func(tp *Topology) { tp.Hosts[0].IP = "127.0.0.1/8" }, nil, []string{"$.hosts[0].ip: address 127.0.0.1 is"}},
		{"ip multicast", func(tp *Topology) { tp.Hosts[0].IP = "224.0.0.1/4" }, nil, []string{"$.hosts[0].ip: address 224.0.0.1 is"}},
		{"ip unspecified", func(tp *Topology) { tp.Hosts[0].IP = "::/0" }, nil, []string{"$.hosts[0].ip: address :: is"}},
		{"ip dup", func(tp *Topology) { tp.Hosts[1].IP = "10.0.0.1/16" }, nil, []string{"$.hosts[1].ip: duplicate IP address 10.0.0.1 untagged (also $.hosts[0].ip)"}},
		{"ip dup vlan", func(tp *Topology) { tp.Hosts[0].VLAN, tp.Hosts[1].VLAN, tp.Hosts[1].IP = 7, 7, "10.0.0.1/24" }, nil,
			[]string{"$.hosts[1].ip: duplicate IP address 10.0.0.1 in VLAN 7"}},
		{"vlan range", func(tp *Topology) { tp.Hosts[0].VLAN = 4095 }, nil, []string{"$.hosts[0].vlan: VLAN 4095 out of range"}},
		{"host unknown switch", func(tp *Topology) { tp.Hosts[0].Switch = "nope" }, nil, []string{"$.hosts[0].switch: unknown virtual switch \"nope\""}},
		{"host no switch", func(tp *Topology) { tp.Hosts[0].Switch = "" }, nil, []string{"$.hosts[0].switch: required"}},
		{"host port zero", func(tp *Topology) { tp.Hosts[0].Port = 0 }, nil, []string{"$.hosts[0].port: port 0 out of range"}},
		{"cloud missing", func(tp *Topology) { tp.Hosts[0].Cloud = "" }, nil, []string{"$.hosts[0].cloud: required"}},
		{"cloud bad", func(tp *Topology) { tp.Hosts[0].Cloud = "a b" }, nil, []string{"$.hosts[0].cloud: invalid cloud name"}},
		{"cloud unknown", func(tp *Topology) { tp.Hosts[1].Cloud = "mars" }, nil, []string{"$.hosts[1].cloud: unknown cloud \"mars\" (known: aws, azure, gcp)"}},
		{"cloud unknown empty infra", func(tp *Topology) {}, &Infra{Clouds: map[string][]string{}},
			[]string{"$.hosts[0].cloud: unknown cloud \"aws\" (known: none)", "$.hosts[1].cloud: unknown cloud"}},
		{"vm unknown", func(tp *Topology) { tp.Hosts[0].VM = "vm9" }, nil, []string{"$.hosts[0].vm: unknown VM \"vm9\" in cloud \"aws\""}},
		{"vm bad", func(tp *Topology) { tp.Hosts[0].VM = "vm 9" }, nil, []string{"$.hosts[0].vm: invalid VM name"}},
		{"too many hosts", func(tp *Topology) {
			h := tp.Hosts[0]
			tp.Hosts = make([]Host, MaxHosts+1)
			for i := range tp.Hosts {
				tp.Hosts[i] = h
				tp.Hosts[i].Name = ""
			}
		}, &Infra{}, nil /* checked below: first error is the limit */},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp := valid()
			c.mutate(tp)
			infra := testInfra()
			if c.infra != nil {
				infra = *c.infra
			}
			err := Validate(tp, infra)
			fes := fieldErrors(t, err)
			if c.want == nil {
				if len(fes) == 0 || fes[0].Path != "$.hosts" || !strings.Contains(fes[0].Msg, "too many hosts") {
					t.Fatalf("want too-many-hosts first, got %v", err)
				}
				return
			}
			if len(fes) != len(c.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(fes), len(c.want), err)
			}
			for i, w := range c.want {
				if got := fes[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("error %d = %q, want prefix %q", i, got, w)
				}
			}
		})
	}
}

func TestValidateNil(t *testing.T) {
	fes := fieldErrors(t, Validate(nil, Infra{}))
	if len(fes) != 1 || fes[0].Path != "$" {
		t.Fatalf("got %v", fes)
	}
}

func TestValidationErrorFormat(t *testing.T) {
	err := errList{
		{Path: "$.hosts[10].mac", Msg: "b"},
		{Path: "$.hosts[2].mac", Msg: "a"},
		{Path: "$.hosts[2].ip", Msg: "c"},
		{Path: "$.apps[0]", Msg: "d"},
	}.err()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatal("not a ValidationError")
	}
	want := []string{"$.apps[0]", "$.hosts[2].ip", "$.hosts[2].mac", "$.hosts[10].mac"}
	if !slices.Equal(ve.Paths(), want) {
		t.Errorf("order %v, want %v", ve.Paths(), want)
	}
	s := err.Error()
	if !strings.HasPrefix(s, "invalid topology: 4 problems:\n  $.apps[0]: d\n") || !strings.HasSuffix(s, "$.hosts[10].mac: b") {
		t.Errorf("Error() = %q", s)
	}
	one := errList{{Path: "$.tenant", Msg: "required"}}.err()
	if one.Error() != "invalid topology: $.tenant: required" {
		t.Errorf("single Error() = %q", one.Error())
	}
	if (errList{}).err() != nil {
		t.Error("empty list gave an error")
	}
	// Wrapped errors are still found.
	wrapped := errors.Join(errors.New("context"), err)
	if !errors.As(wrapped, &ve) {
		t.Error("errors.As through a wrapper failed")
	}
}

func TestMaxErrors(t *testing.T) {
	tp := valid()
	for i := 0; i < MaxErrors; i++ {
		tp.Hosts = append(tp.Hosts, Host{Name: "h1", MAC: "00:00:00:00:00:01", IP: "10.0.0.1/24", Switch: "s1", Port: 2, Cloud: "aws"})
	}
	fes := fieldErrors(t, Validate(tp, testInfra()))
	if len(fes) != MaxErrors+1 {
		t.Fatalf("%d errors, want %d", len(fes), MaxErrors+1)
	}
	last := fes[MaxErrors]
	if last.Path != "$" || !strings.HasSuffix(last.Msg, "more problems not listed") || strings.HasPrefix(last.Msg, "0 ") {
		t.Errorf("last entry %+v", last)
	}
}

func TestComparePaths(t *testing.T) {
	cases := []struct {
		a, b string
		less bool
	}{
		{"$.h[2]", "$.h[10]", true},
		{"$.h[10]", "$.h[2]", false},
		{"$.h[02]", "$.h[3]", true},
		{"$.a", "$.a.b", true},
		{"$.hosts", "$.links", true},
	}
	for _, c := range cases {
		if got := comparePaths(c.a, c.b) < 0; got != c.less {
			t.Errorf("comparePaths(%q,%q) < 0 = %v", c.a, c.b, got)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	tp := valid()
	tp.Hosts[0].VLAN = 12
	data, err := json.Marshal(tp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", data, err)
	}
	if !reflect.DeepEqual(got, tp) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, tp)
	}
	again, _ := json.Marshal(got)
	if string(again) != string(data) {
		t.Fatalf("re-encoding differs:\n%s\n%s", again, data)
	}
	if !strings.Contains(string(data), `"dpid":"00:00:00:00:00:00:00:42"`) || strings.Contains(string(data), `"name":"s1","dpid"`) {
		t.Errorf("DPID encoding: %s", data)
	}
}

func TestParseDefaults(t *testing.T) {
	tp, err := Parse([]byte(`{"tenant":"a","switches":[{"name":"s"}],"hosts":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tp.Apps, []string{"learning"}) || tp.Links == nil || tp.Hosts == nil {
		t.Errorf("defaults: %+v", tp)
	}
	tp, err = Parse([]byte(`{"tenant":"a","apps":null,"switches":[],"hosts":[]}`))
	if err != nil || !slices.Equal(tp.Apps, []string{"learning"}) {
		t.Errorf("null apps: %+v %v", tp, err)
	}
	tp, err = Parse([]byte(`{"tenant":"a","apps":[],"switches":[],"hosts":[]}`))
	if err != nil || tp.Apps == nil || len(tp.Apps) != 0 {
		t.Errorf("empty apps: %+v %v", tp, err)
	}
	tp, err = Parse([]byte(`{"tenant":"a","switches":[{"name":"s","dpid":"0x00ff"}],"hosts":[{"port":1.0e1,"vlan":7}]}`))
	if err != nil || tp.Switches[0].DPID != 0xff || tp.Hosts[0].Port != 10 || tp.Hosts[0].VLAN != 7 {
		t.Errorf("numbers: %+v %v", tp, err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // "path: substring" prefixes, in order
	}{
		{"syntax", `{"tenant": "a",}`, []string{"$: invalid JSON at line 1, column"}},
		{"syntax line", "{\n\"tenant\": \"a\"\n\"x\": 1}", []string{"$: invalid JSON at line 3"}},
		{"truncated", `{"tenant": "a"`, []string{"$: invalid JSON"}},
		{"trailing", `{"tenant": "a"} {}`, []string{"$: invalid JSON at line 1, column 17: unexpected data"}},
		{"not object", `[1]`, []string{"$: must be an object, got array"}},
		{"empty", ``, []string{"$: invalid JSON"}},
		{"unknown fields", `{"tenant":"a","x":1,"switches":[{"name":"s","y":2}],"links":[{"a":{"switch":"s","port":1,"z":3},"b":{}}],"hosts":[{"macc":"x"}],"weird key":1}`,
			[]string{"$.hosts[0].macc: unknown field", "$.links[0].a.z: unknown field", "$.switches[0].y: unknown field", "$.x: unknown field", `$["weird key"]: unknown field`}},
		{"duplicate keys", `{"tenant":"a","tenant":"b","hosts":[{"name":"h","name":"h"}]}`,
			[]string{"$.hosts[0].name: duplicate key", "$.tenant: duplicate key"}},
		{"types", `{"tenant":1,"apps":"learning","switches":{},"links":[1],"hosts":[{"name":2,"port":"1","vlan":true,"mac":null}]}`,
			[]string{"$.apps: must be an array, got string", "$.hosts[0].name: must be a string, got number",
				"$.hosts[0].port: must be an integer port number", "$.hosts[0].vlan: must be an integer VLAN ID",
				"$.links[0]: must be an object, got number", "$.switches: must be an array, got object", "$.tenant: must be a string, got number"}},
		{"app type", `{"apps":["a",3]}`, []string{"$.apps[1]: must be a string, got number"}},
		{"numbers", `{"links":[{"a":{"port":-1},"b":{"port":1.5}}],"hosts":[{"port":4294967296},{"vlan":0},{"vlan":4095},{"port":1e400}]}`,
			[]string{"$.hosts[0].port: must be an integer", "$.hosts[1].vlan: must be an integer VLAN ID in 1..4094 (omit",
				"$.hosts[2].vlan: must be an integer VLAN ID in 1..4094, got 4095", "$.hosts[3].port: must be", "$.links[0].a.port: must be", "$.links[0].b.port: must be"}},
		{"dpid", `{"switches":[{"name":"a","dpid":"1"},{"name":"b","dpid":"0x"},{"name":"c","dpid":"0:0:0:0:0:0:0:1"},{"name":"d","dpid":"0x0"},{"name":"e","dpid":5},{"name":"f","dpid":"0x11111111111111111"},{"name":"g","dpid":"zz:00:00:00:00:00:00:01"}]}`,
			[]string{"$.switches[0].dpid: invalid DPID", "$.switches[1].dpid: invalid DPID", "$.switches[2].dpid: invalid DPID",
				"$.switches[3].dpid: DPID 0 is reserved", "$.switches[4].dpid: must be a string", "$.switches[5].dpid: invalid DPID", "$.switches[6].dpid: invalid DPID"}},
		{"multi to Parse", `{"tenants":[]}`, []string{"$.tenants: multi-tenant document"}},
		{"deep", strings.Repeat("[", 100) + strings.Repeat("]", 100), []string{"$: invalid JSON at line 1, column 34: nested deeper"}},
		{"wide", "{" + strings.Repeat(`"k":1,`, 64) + `"z":1}`, []string{"$: invalid JSON at line 1, column 385: object with more than 64 members"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp, err := Parse([]byte(c.doc))
			if tp != nil {
				t.Errorf("got a topology with an error")
			}
			fes := fieldErrors(t, err)
			if len(fes) != len(c.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(fes), len(c.want), err)
			}
			for i, w := range c.want {
				if got := fes[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("error %d = %q, want prefix %q", i, got, w)
				}
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	big := make([]byte, MaxDocumentSize+1)
	fes := fieldErrors(t, func() error { _, err := Parse(big); return err }())
	if len(fes) != 1 || !strings.Contains(fes[0].Msg, "limit") {
		t.Fatalf("got %v", fes)
	}
}

func TestParseDocument(t *testing.T) {
	single := `{"tenant":"a","switches":[{"name":"s"}],"hosts":[]}`
	ts, err := ParseDocument([]byte(single))
	if err != nil || len(ts) != 1 || ts[0].Tenant != "a" {
		t.Fatalf("single: %v %v", ts, err)
	}
	ts, err = ParseDocument([]byte(`{"tenants":[` + single + `,{"tenant":"b"}]}`))
	if err != nil || len(ts) != 2 || ts[1].Tenant != "b" {
		t.Fatalf("multi: %v %v", ts, err)
	}
	bad := map[string][]string{
		`{"tenants":[]}`: {"$.tenants: at least one"},
		`{"tenants":{}}`: {"$.tenants: must be an array"},
		`{"tenants":[{"tenant":"a","x":1}],"y":2}`: {"$.tenants[0].x: unknown field", "$.y: unknown field"},
		`{"tenants":[3]}`:                          {"$.tenants[0]: must be an object"},
		`nope`:                                     {"$: invalid JSON"},
	}
	for doc, want := range bad {
		_, err := ParseDocument([]byte(doc))
		fes := fieldErrors(t, err)
		if len(fes) != len(want) {
			t.Errorf("%s: got %v, want %v", doc, err, want)
			continue
		}
		for i, w := range want {
			if !strings.HasPrefix(fes[i].Error(), w) {
				t.Errorf("%s: error %d = %q, want %q", doc, i, fes[i].Error(), w)
			}
		}
	}
}

func TestLoadMergesAndDedupes(t *testing.T) {
	// Shape error at hosts[0].port must hide the semantic "port out of range"
	// at the same path; other semantic errors are kept.
	doc := `{"tenants":[
	 {"tenant":"a","switches":[{"name":"s"}],"hosts":[{"name":"h","mac":"00:00:00:00:00:01","ip":"10.0.0.1/24","switch":"s","port":"x","cloud":"aws"}]},
	 {"tenant":"a","switches":[{"name":"s"}],"hosts":[{"name":"h","mac":"00:00:00:00:00:01","ip":"10.0.0.1/24","switch":"s","port":1,"cloud":"mars"}]}]}`
	_, err := Load([]byte(doc), testInfra())
	fes := fieldErrors(t, err)
	var got []string
	for _, fe := range fes {
		got = append(got, fe.Path)
	}
	want := []string{"$.tenants[0].hosts[0].port", "$.tenants[1].hosts[0].cloud", "$.tenants[1].tenant"}
	if !slices.Equal(got, want) {
		t.Fatalf("paths %v, want %v\n%v", got, want, err)
	}
	if !strings.Contains(fes[2].Msg, `duplicate tenant "a" (also $.tenants[0].tenant)`) {
		t.Errorf("dup tenant message %q", fes[2].Msg)
	}
	if !strings.Contains(fes[0].Msg, "must be an integer") {
		t.Errorf("shape message %q", fes[0].Msg)
	}
}

func TestExamples(t *testing.T) {
	infra := testInfra()
	for _, c := range []struct {
		file    string
		tenants []string
	}{
		{"tenant-a.json", []string{"tenant-a"}},
		{"two-tenants.json", []string{"tenant1", "tenant2"}},
	} {
		data, err := os.ReadFile("../../examples/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := Load(data, infra)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		var names []string
		for _, tp := range ts {
			names = append(names, tp.Tenant)
		}
		if !slices.Equal(names, c.tenants) {
			t.Errorf("%s: tenants %v", c.file, names)
		}
	}
	// The two tenants deliberately share MACs and IPs.
	data, _ := os.ReadFile("../../examples/two-tenants.json")
	ts, _ := ParseDocument(data)
	for i := range ts[0].Hosts {
		if ts[0].Hosts[i].MAC != ts[1].Hosts[i].MAC || ts[0].Hosts[i].IP != ts[1].Hosts[i].IP {
			t.Errorf("host %d: tenants differ in MAC/IP", i)
		}
	}
}

// TestBadExample pins the exact error paths of examples/bad-topology.json;
// docs/topology.md shows this output.
func TestBadExample(t *testing.T) {
	data, err := os.ReadFile("../../examples/bad-topology.json")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(data, testInfra())
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	want := []string{
		"$.hosts[0].port",
		"$.hosts[1].cloud",
		"$.hosts[1].ip",
		"$.hosts[1].mac",
		"$.hosts[2].ip",
		"$.hosts[2].mac",
		"$.hosts[2].name",
		"$.hosts[2].vlan",
		"$.hosts[2].vm",
		"$.hosts[3].ip",
		"$.hosts[3].mac",
		"$.hosts[3].port",
		"$.links[1]",
		"$.links[2]",
		"$.links[3].b.port",
		"$.links[3].b.switch",
		"$.switches[1].dpid",
		"$.switches[1].name",
		"$.switches[2].colour",
		"$.tenant",
	}
	if got := ve.Paths(); !slices.Equal(got, want) {
		t.Fatalf("paths:\n got %q\nwant %q\n%v", got, want, err)
	}
}

func TestDPID(t *testing.T) {
	for s, want := range map[string]DPID{
		"00:00:00:00:00:00:00:01": 1,
		"0x1":                     1,
		"0xFFFFFFFFFFFFFFFF":      ^DPID(0),
		"ab:cd:ef:01:23:45:67:89": 0xabcdef0123456789,
	} {
		got, err := ParseDPID(s)
		if err != nil || got != want {
			t.Errorf("ParseDPID(%q) = %v, %v", s, got, err)
		}
		back, err := ParseDPID(got.String())
		if err != nil || back != got {
			t.Errorf("String round trip %v", got)
		}
	}
	var d DPID
	if err := d.UnmarshalText([]byte("bad")); err == nil {
		t.Error("UnmarshalText accepted bad")
	}
	if err := d.UnmarshalText([]byte("0x2a")); err != nil || d != 42 {
		t.Error("UnmarshalText 0x2a")
	}
	// Derived DPIDs: deterministic, 48-bit, locally administered unicast MAC part, distinct.
	seen := map[DPID]string{}
	for i := 0; i < 1000; i++ {
		name := "s" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		d := DeriveDPID(name)
		if d != DeriveDPID(name) || d>>48 != 0 || byte(d>>40)&0x03 != 0x02 {
			t.Fatalf("DeriveDPID(%q) = %v", name, d)
		}
		if other, dup := seen[d]; dup {
			t.Fatalf("DeriveDPID collision %q %q", name, other)
		}
		seen[d] = name
	}
	if (Switch{Name: "x", DPID: 7}).VirtualDPID() != 7 || (Switch{Name: "x"}).VirtualDPID() != DeriveDPID("x") {
		t.Error("VirtualDPID")
	}
}

func TestIfaceID(t *testing.T) {
	id := IfaceID("acme", "h1")
	if id != "acme/h1" {
		t.Fatal(id)
	}
	if tn, h, ok := SplitIfaceID(id); !ok || tn != "acme" || h != "h1" {
		t.Error("SplitIfaceID")
	}
	for _, s := range []string{"", "acme", "/h1", "acme/"} {
		if _, _, ok := SplitIfaceID(s); ok {
			t.Errorf("SplitIfaceID(%q) ok", s)
		}
	}
}

func TestNames(t *testing.T) {
	for s, want := range map[string]bool{"a": true, "a-b": true, "0": true, "-a": false, "a-": false, "A": false, "a_b": false, "": false,
		strings.Repeat("a", 63): true, strings.Repeat("a", 64): false} {
		if isTenantName(s) != want {
			t.Errorf("isTenantName(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"s1": true, "S.1_x-y": true, "_a": false, ".a": false, "a/b": false, "a b": false, "": false,
		strings.Repeat("a", 63): true, strings.Repeat("a", 64): false, "é": false} {
		if isIdent(s) != want {
			t.Errorf("isIdent(%q) != %v", s, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, file := range []string{"tenant-a.json", "two-tenants.json", "bad-topology.json"} {
		if data, err := os.ReadFile("../../examples/" + file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"tenant":"a","switches":[{"name":"s","dpid":"0x1"}],"hosts":[{"name":"h","port":1e3,"vlan":2}]}`))
	f.Add([]byte(`{"tenants":[{"tenant":"a"},{"tenant":"a"}]}`))
	f.Add([]byte(`[[[[{"a":"\u00e9"}]]]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tp, err := Parse(data)
		if (tp == nil) == (err == nil) {
			t.Fatalf("Parse: topology %v with error %v", tp != nil, err)
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("Parse error %v is not a non-empty *ValidationError", err)
			}
		} else {
			_ = Validate(tp, testInfra())
			// A parsed topology re-encodes and re-parses to the same value.
			out, merr := json.Marshal(tp)
			if merr != nil {
				t.Fatal(merr)
			}
			back, perr := Parse(out)
			if perr != nil || !reflect.DeepEqual(back, tp) {
				t.Fatalf("re-parse of %s: %v", out, perr)
			}
		}
		_, _ = ParseDocument(data)
		_, _ = Load(data, testInfra())
	})
}

// bigTopology returns a valid topology with n hosts on a chain of n/32 switches.
func bigTopology(n int) *Topology {
	tp := &Topology{Tenant: "big", Apps: DefaultApps(), Links: []Link{}}
	nsw := n/32 + 1
	for i := 0; i < nsw; i++ {
		tp.Switches = append(tp.Switches, Switch{Name: fmt.Sprintf("s%d", i)})
		if i > 0 {
			tp.Links = append(tp.Links, Link{A: Endpoint{fmt.Sprintf("s%d", i-1), 1000}, B: Endpoint{fmt.Sprintf("s%d", i), 1001}})
		}
	}
	for i := 0; i < n; i++ {
		tp.Hosts = append(tp.Hosts, Host{
			Name: fmt.Sprintf("h%d", i), MAC: fmt.Sprintf("00:00:00:%02x:%02x:%02x", (i+1)>>16&0xff, (i+1)>>8&0xff, (i+1)&0xff),
			IP: fmt.Sprintf("10.%d.%d.%d/8", i>>16&0xff, i>>8&0xff, i&0xff), Switch: fmt.Sprintf("s%d", i/32), Port: uint32(i%32 + 1), Cloud: "aws",
		})
	}
	return tp
}

func BenchmarkLoad1000Hosts(b *testing.B) {
	tp := bigTopology(1000)
	data, err := json.Marshal(tp)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Load(data, testInfra()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(data, testInfra()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate1000Hosts(b *testing.B) {
	tp := bigTopology(1000)
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(tp, testInfra()); err != nil {
			b.Fatal(err)
		}
	}
}
