package lab

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodLab = `{
  "name": "t", "prefix": "skt9",
  "sites": [
    {"name": "aws", "vms": 2},
    {"name": "gcp", "vms": ["web", "db"], "public_ip": "172.31.0.20", "rate_mbit": 5}
  ],
  "wan": {"delay_ms": 10, "pairs": [{"a": "aws", "b": "gcp", "delay_ms": 30}]},
  "hosts": [{"name": "h1", "site": "aws", "vm": "vm2", "mac": "02:00:00:00:01:01", "ip": "10.0.0.1/24"}]
}`

func TestParseDefaults(t *testing.T) {
	s, err := Parse([]byte(goodLab))
	if err != nil {
		t.Fatal(err)
	}
	if s.StateDir != "/tmp/skylab/skt9" || s.Controller != "unix:/tmp/skylab/skt9/openflow.sock" {
		t.Errorf("state dir %q controller %q", s.StateDir, s.Controller)
	}
	if s.TunnelType != "vxlan" || s.HostMTU != 1400 || s.WAN.Subnet != "172.31.0.0/24" || s.WAN.QueueFrames != 4096 {
		t.Errorf("defaults: %+v", s)
	}
	if s.Sites[0].PublicIP != "172.31.0.1" || s.Sites[1].PublicIP != "172.31.0.20" {
		t.Errorf("public IPs %q %q", s.Sites[0].PublicIP, s.Sites[1].PublicIP)
	}
	if got := strings.Join(s.Sites[0].VMs.List(), ","); got != "vm1,vm2" {
		t.Errorf("VM names %q", got)
	}
	if got := strings.Join(s.Sites[1].VMs.List(), ","); got != "web,db" {
		t.Errorf("VM names %q", got)
	}
	if s.Hosts[0].IfaceID != "h1" {
		t.Errorf("default iface id %q", s.Hosts[0].IfaceID)
	}
	if !s.UsesRelay() || siteRate(s, 1) != 5 || siteRate(s, 0) != 0 {
		t.Error("relay/rate derivation wrong")
	}
}

func TestExampleLabsParse(t *testing.T) {
	files, _ := filepath.Glob("../../examples/labs/*.json")
	if len(files) == 0 {
		t.Fatal("no example labs found")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestLoadStateDirOverride(t *testing.T) {
	f := filepath.Join(t.TempDir(), "lab.json")
	if err := os.WriteFile(f, []byte(goodLab), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadStateDir(f, "/tmp/elsewhere/x")
	if err != nil {
		t.Fatal(err)
	}
	if s.StateDir != "/tmp/elsewhere/x" || s.Controller != "unix:/tmp/elsewhere/x/openflow.sock" {
		t.Fatalf("override not applied before defaults: %q %q", s.StateDir, s.Controller)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestValidationErrors: every error path names its JSON path.
func TestValidationErrors(t *testing.T) {
	base := func() string { return goodLab }
	cases := []struct {
		name, json, want string
	}{
		{"bad prefix", `{"prefix":"Bad-1","sites":[{"name":"a","vms":1}]}`, "prefix:"},
		{"long prefix", `{"prefix":"abcdefg","sites":[{"name":"a","vms":1}]}`, "prefix:"},
		{"relative state dir", `{"state_dir":"tmp/x","sites":[{"name":"a","vms":1}]}`, "state_dir:"},
		{"root state dir", `{"state_dir":"/x","sites":[{"name":"a","vms":1}]}`, "state_dir:"},
		{"long state dir", `{"state_dir":"/tmp/` + strings.Repeat("x", 90) + `","sites":[{"name":"a","vms":1}]}`, "state_dir:"},
		{"tunnel", `{"tunnel_type":"ipip","sites":[{"name":"a","vms":1}]}`, "tunnel_type:"},
		{"mtu", `{"host_mtu":100,"sites":[{"name":"a","vms":1}]}`, "host_mtu:"},
		{"no sites", `{"sites":[]}`, "sites: at least one site"},
		{"site name", `{"sites":[{"name":"A B","vms":1}]}`, "sites[0].name:"},
		{"dup site", `{"sites":[{"name":"a","vms":1},{"name":"a","vms":1}]}`, "sites[1].name: duplicate"},
		{"vm count 0", `{"sites":[{"name":"a","vms":0}]}`, "sites[0].vms: count 0"},
		{"vms missing", `{"sites":[{"name":"a"}]}`, "sites[0].vms: count 0"},
		{"vm count big", `{"sites":[{"name":"a","vms":251}]}`, "sites[0].vms: count 251"},
		{"vm names empty", `{"sites":[{"name":"a","vms":[]}]}`, "sites[0].vms: 0 names"},
		{"vm name long", `{"sites":[{"name":"a","vms":["abcdefghijklm"]}]}`, "sites[0].vms[0]:"},
		{"vm name reserved", `{"sites":[{"name":"a","vms":["gw"]}]}`, "sites[0].vms[0]: \"gw\" is reserved"},
		{"vm name dup", `{"sites":[{"name":"a","vms":["x","x"]}]}`, "sites[0].vms[1]: duplicate"},
		{"vms wrong type", `{"sites":[{"name":"a","vms":"two"}]}`, "want a VM count or a list"},
		{"site rate", `{"sites":[{"name":"a","vms":1,"rate_mbit":-1}]}`, "sites[0].rate_mbit:"},
		{"public ip syntax", `{"sites":[{"name":"a","vms":1,"public_ip":"x"}]}`, "sites[0].public_ip:"},
		{"public ip outside", `{"sites":[{"name":"a","vms":1,"public_ip":"10.0.0.1"}]}`, "sites[0].public_ip: 10.0.0.1 is not a host address"},
		{"public ip broadcast", `{"sites":[{"name":"a","vms":1,"public_ip":"172.31.0.255"}]}`, "sites[0].public_ip:"},
		{"public ip dup", `{"sites":[{"name":"a","vms":1},{"name":"b","vms":1,"public_ip":"172.31.0.1"}]}`, "sites[1].public_ip: 172.31.0.1 is also sites[0]'s"},
		{"subnet", `{"sites":[{"name":"a","vms":1}],"wan":{"subnet":"10.0.0.1/24"}}`, "wan.subnet:"},
		{"subnet too small", `{"sites":[{"name":"a","vms":1}],"wan":{"subnet":"10.0.0.0/30"}}`, "wan.subnet:"},
		{"delay", `{"sites":[{"name":"a","vms":1}],"wan":{"delay_ms":-1}}`, "wan.delay_ms:"},
		{"rate", `{"sites":[{"name":"a","vms":1}],"wan":{"rate_mbit":-1}}`, "wan.rate_mbit:"},
		{"queue", `{"sites":[{"name":"a","vms":1}],"wan":{"queue_frames":-5}}`, "wan.queue_frames:"},
		{"loss", `{"sites":[{"name":"a","vms":1}],"wan":{"loss_percent":100}}`, "wan.loss_percent:"},
		{"pair a", `{"sites":[{"name":"a","vms":1}],"wan":{"pairs":[{"a":"x","b":"a","delay_ms":1}]}}`, "wan.pairs[0].a: unknown site"},
		{"pair b", `{"sites":[{"name":"a","vms":1}],"wan":{"pairs":[{"a":"a","b":"y","delay_ms":1}]}}`, "wan.pairs[0].b: unknown site"},
		{"pair same", `{"sites":[{"name":"a","vms":1}],"wan":{"pairs":[{"a":"a","b":"a","delay_ms":1}]}}`, "wan.pairs[0]: a and b are the same"},
		{"pair twice", `{"sites":[{"name":"a","vms":1},{"name":"b","vms":1}],"wan":{"pairs":[{"a":"a","b":"b","delay_ms":1},{"a":"b","b":"a","delay_ms":2}]}}`, "wan.pairs[1]: pair b-a given twice"},
		{"pair delay", `{"sites":[{"name":"a","vms":1},{"name":"b","vms":1}],"wan":{"pairs":[{"a":"a","b":"b","delay_ms":-3}]}}`, "wan.pairs[0].delay_ms:"},
		{"pair rate", `{"sites":[{"name":"a","vms":1},{"name":"b","vms":1}],"wan":{"pairs":[{"a":"a","b":"b","rate_mbit":-1}]}}`, "wan.pairs[0].rate_mbit: -1 is outside"},
		{"pair rate big", `{"sites":[{"name":"a","vms":1},{"name":"b","vms":1}],"wan":{"pairs":[{"a":"a","b":"b","rate_mbit":2e6}]}}`, "wan.pairs[0].rate_mbit:"},
		{"pair rate type", `{"sites":[{"name":"a","vms":1},{"name":"b","vms":1}],"wan":{"pairs":[{"a":"a","b":"b","rate_mbit":"10"}]}}`, "wan.pairs[].rate_mbit: want float64"},
		{"pair unknown key", `{"sites":[{"name":"a","vms":1},{"name":"b","vms":1}],"wan":{"pairs":[{"a":"a","b":"b","rate":10}]}}`, "wan.pairs[]: json: unknown field \"rate\""},
		{"measure rtt type", `{"sites":[{"name":"a","vms":1}],"wan":{"measure_rtt":"yes"}}`, "wan.measure_rtt: want bool"},
		{"controller kind", `{"controller":"ssl:1.2.3.4:6653","sites":[{"name":"a","vms":1}]}`, "controller:"},
		{"controller unix rel", `{"controller":"unix:rel.sock","sites":[{"name":"a","vms":1}]}`, "controller:"},
		{"controller loopback", `{"controller":"tcp:127.0.0.1:6653","sites":[{"name":"a","vms":1}]}`, "controller: \"tcp:127.0.0.1:6653\": a site namespace cannot reach"},
		{"controller octet", `{"controller":"tcp:192.168.254.2:6653","sites":[{"name":"a","vms":1},{"name":"b","vms":1}]}`, "controller:"},
		{"controller port", `{"controller":"tcp:192.168.254.254:0","sites":[{"name":"a","vms":1}]}`, "controller:"},
		{"host name", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"Host_1","site":"a","vm":"vm1","mac":"02:00:00:00:00:01"}]}`, "hosts[0].name:"},
		{"host site", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"z","vm":"vm1","mac":"02:00:00:00:00:01"}]}`, "hosts[0].site: unknown site"},
		{"host vm", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm9","mac":"02:00:00:00:00:01"}]}`, "hosts[0].vm: site \"a\" has no VM"},
		{"host mac", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"zz"}]}`, "hosts[0].mac:"},
		{"host mac multicast", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"01:00:00:00:00:01"}]}`, "hosts[0].mac: 01:00:00:00:00:01 is a multicast"},
		{"host mac zero", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"00:00:00:00:00:00"}]}`, "hosts[0].mac:"},
		{"host ip", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"02:00:00:00:00:01","ip":"10.0.0.1"}]}`, "hosts[0].ip:"},
		{"host ip network", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"02:00:00:00:00:01","ip":"10.0.0.0/24"}]}`, "hosts[0].ip: 10.0.0.0/24 is a network address"},
		{"host iface id", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"02:00:00:00:00:01","iface_id":"a b"}]}`, "hosts[0].iface_id:"},
		{"host dup", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"02:00:00:00:00:01"},{"name":"h","site":"a","vm":"vm1","mac":"02:00:00:00:00:02"}]}`, "hosts[1].name: duplicate"},
		{"host mac dup", `{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"02:00:00:00:00:01"},{"name":"g","site":"a","vm":"vm1","mac":"02:00:00:00:00:01"}]}`, "hosts[1].mac: 02:00:00:00:00:01 is also hosts[0]'s"},
		{"unknown field", `{"sitez":[]}`, "unknown field \"sitez\""},
		{"type error", `{"sites":[{"name":"a","vms":1}],"wan":{"delay_ms":"ten"}}`, "wan.delay_ms: want float64"},
		{"trailing", base() + `{}`, "trailing data"},
		{"not json", `{`, "unexpected EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.json))
			if err == nil {
				t.Fatalf("accepted, want error containing %q", c.want)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T %v is not a *ValidationError", err, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// TestPairRateAndDefaultDelay: a pair without delay_ms keeps the lab's
// delay; a pair rate alone selects the relay; the pairs survive the state
// file's JSON round trip.
func TestPairRateAndDefaultDelay(t *testing.T) {
	s, err := Parse([]byte(`{"sites":[{"name":"a","vms":1},{"name":"b","vms":1},{"name":"c","vms":1}],
		"wan":{"delay_ms":4,"measure_rtt":true,"pairs":[{"a":"a","b":"b","rate_mbit":10},{"a":"a","b":"c","delay_ms":0,"rate_mbit":20}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	p := s.WAN.Pairs
	if p[0].DelayMS != 4 || p[0].RateMbit != 10 || p[1].DelayMS != 0 || p[1].RateMbit != 20 || !s.WAN.MeasureRTT {
		t.Fatalf("pairs %+v measure_rtt %v", p, s.WAN.MeasureRTT)
	}
	b, _ := json.Marshal(s)
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil || back.WAN.Pairs[1].DelayMS != 0 || back.WAN.Pairs[0].DelayMS != 4 || back.WAN.Pairs[0].RateMbit != 10 {
		t.Fatalf("round trip: %v %+v", err, back.WAN.Pairs)
	}
	s, err = Parse([]byte(`{"sites":[{"name":"a","vms":1},{"name":"b","vms":1}],"wan":{"pairs":[{"a":"a","b":"b","rate_mbit":5}]}}`))
	if err != nil || !s.UsesRelay() {
		t.Fatalf("a pair rate must select the relay: %v", err)
	}
	s, err = Parse([]byte(`{"sites":[{"name":"a","vms":1},{"name":"b","vms":1}],"wan":{"rate_mbit":5,"pairs":[{"a":"a","b":"b"}]}}`))
	if err != nil || s.UsesRelay() {
		t.Fatalf("site rates and a pair with neither delay nor rate keep the bridge: %v", err)
	}
}

func TestPingRTTsAndMedian(t *testing.T) {
	out := `PING 172.31.0.2 (172.31.0.2) 56(84) bytes of data.
64 bytes from 172.31.0.2: icmp_seq=1 ttl=64 time=21.9 ms
64 bytes from 172.31.0.2: icmp_seq=2 ttl=64 time=20.4 ms
64 bytes from 172.31.0.2: icmp_seq=4 ttl=64 time=20.6 ms
64 bytes from 172.31.0.2: icmp_seq=5 ttl=64 time=35.0 ms

--- 172.31.0.2 ping statistics ---
5 packets transmitted, 4 received, 20% packet loss, time 204ms
rtt min/avg/max/mdev = 20.4/24.4/35.0/5.9 ms`
	r := pingRTTs(out)
	if len(r) != 4 || r[0] != 21.9 {
		t.Fatalf("pingRTTs = %v", r)
	}
	if m := median(r); m != 21.25 {
		t.Fatalf("median of 4 = %v, want 21.25", m)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Fatalf("median of 3 = %v", m)
	}
	if r := pingRTTs("64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time<1 ms"); len(r) != 1 {
		t.Fatalf("time<1: %v", r)
	}
}

func TestValidationCollectsAllProblems(t *testing.T) {
	_, err := Parse([]byte(`{"prefix":"X","tunnel_type":"x","sites":[{"name":"a","vms":0}]}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("want 3 problems (prefix, tunnel_type, sites[0].vms), got %v", err)
	}
}

func TestCheckHost(t *testing.T) {
	s, err := Parse([]byte(goodLab))
	if err != nil {
		t.Fatal(err)
	}
	h := HostSpec{Name: "h9", Site: "gcp", VM: "db", MAC: "02:AA:00:00:00:09", IfaceID: "t/h9"}
	if err := s.CheckHost(&h); err != nil {
		t.Fatal(err)
	}
	if h.MAC != "02:aa:00:00:00:09" {
		t.Errorf("MAC not normalized: %s", h.MAC)
	}
	bad := HostSpec{Name: "h9", Site: "gcp", VM: "vm1", MAC: "x"}
	err = s.CheckHost(&bad)
	if err == nil || !strings.Contains(err.Error(), "host.vm:") || !strings.Contains(err.Error(), "host.mac:") {
		t.Fatalf("want host.vm and host.mac problems, got %v", err)
	}
}

func TestParseController(t *testing.T) {
	c, err := ParseController("tcp:192.168.254.254:6653", 3)
	if err != nil || c.Kind != "tcp" || mgmtAddr(c, 2).String() != "192.168.254.2" {
		t.Fatalf("tcp: %+v %v", c, err)
	}
	c, err = ParseController("unix:/tmp/x.sock", 3)
	if err != nil || c.Path != "/tmp/x.sock" {
		t.Fatalf("unix: %+v %v", c, err)
	}
	if c, err := ParseController("none", 1); err != nil || c.Kind != "none" {
		t.Fatalf("none: %+v %v", c, err)
	}
	if _, err := ParseController("unix:/"+strings.Repeat("a", 120), 1); err == nil {
		t.Fatal("overlong unix path accepted")
	}
}

func TestVMListJSON(t *testing.T) {
	var v VMList
	if err := v.UnmarshalJSON([]byte(` 3 `)); err != nil || v.Count != 3 || v.Names != nil {
		t.Fatalf("count: %+v %v", v, err)
	}
	if b, _ := v.MarshalJSON(); string(b) != "3" {
		t.Fatalf("marshal count: %s", b)
	}
	if err := v.UnmarshalJSON([]byte(`["a","b"]`)); err != nil || v.Count != 0 || len(v.Names) != 2 {
		t.Fatalf("names: %+v %v", v, err)
	}
	if b, _ := v.MarshalJSON(); string(b) != `["a","b"]` {
		t.Fatalf("marshal names: %s", b)
	}
}

// FuzzParse: Parse never panics, and an accepted lab file stays valid when
// validated again (defaults are idempotent) and round-trips through JSON.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodLab))
	f.Add([]byte(`{"sites":[{"name":"a","vms":["x","y"]}],"wan":{"pairs":[{"a":"a","b":"a"}]}}`))
	f.Add([]byte(`{"controller":"tcp:10.0.0.9:1","sites":[{"name":"a","vms":1,"public_ip":"172.31.0.9"}]}`))
	f.Add([]byte(`{"sites":[{"name":"a","vms":1}],"hosts":[{"name":"h","site":"a","vm":"vm1","mac":"02:00:00:00:00:01","ip":"10.0.0.1/8"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted spec fails a second validation: %v", err)
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("re-encoded spec rejected: %v\n%s", err, out)
		}
	})
}
