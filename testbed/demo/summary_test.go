package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/testbed/lab"
)

func passing() *Summary {
	return &Summary{
		Pairs: []Pair{
			{Tenant: "tenant1", From: "h1", To: "h2", DstIP: "10.0.0.2", OK: true, After: 80 * time.Millisecond},
			{Tenant: "tenant1", From: "h2", To: "h1", DstIP: "10.0.0.1", OK: true, After: 90 * time.Millisecond},
			{Tenant: "tenant2", From: "h1", To: "h2", DstIP: "10.0.0.2", OK: true, After: 70 * time.Millisecond},
			{Tenant: "tenant2", From: "h2", To: "h1", DstIP: "10.0.0.1", OK: true, After: 60 * time.Millisecond},
		},
		Isolation: []Capture{{Sender: "tenant1", Control: 40, WANChecked: true, WANFrames: 79}, {Sender: "tenant2", Control: 38}},
		Spoofs: []Spoof{
			{Case: "unbound MAC", Host: "t1-h3", MAC: unboundMAC, Target: "t1-h1 (10.0.0.1)", Sent: 9, EdgeDropped: 9, EdgePort: "azure/web port 2", Restored: true},
			{Case: "fabric MAC of tenant2/h3", Host: "t1-h3", MAC: "02:01:00:00:00:03", Target: "t1-h1 (10.0.0.1)", Sent: 8, EdgeDropped: 10, EdgePort: "azure/web port 2", Restored: true},
		},
		LabUp: 500 * time.Millisecond, DaemonUp: 1600 * time.Millisecond, Setup: 90 * time.Millisecond,
	}
}

func TestFailuresPass(t *testing.T) {
	s := passing()
	if f := s.Failures(); len(f) != 0 || !s.OK() {
		t.Fatalf("failures %q", f)
	}
	var b bytes.Buffer
	s.WriteTable(&b)
	for _, want := range []string{"tenant1: pairs pinging across clouds", "2/2", "PASS: every expectation held", "setup (apply -> every pair pinging) 90ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "FAIL") {
		t.Errorf("passing table says FAIL:\n%s", b.String())
	}
}

// TestFailuresEach breaks one expectation at a time: each must appear in
// Failures (naming what failed) and as FAIL in the table.
func TestFailuresEach(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(*Summary)
		want   string
	}{
		{"pair", func(s *Summary) { s.Pairs[2].OK, s.Pairs[2].Err = false, "exit status 1\nmore" }, "tenant2: h1 -> h2 (10.0.0.2) did not ping: exit status 1"},
		{"leak", func(s *Summary) { s.Isolation[0].Leaked, s.Isolation[0].LeakedAt = 2, map[string]int{"t2-h1": 2} }, "2 frame(s) of tenant1 reached other tenants' hosts map[t2-h1:2]"},
		{"control", func(s *Summary) { s.Isolation[1].Control = 0 }, "no frame of tenant2 at its own hosts"},
		{"wan empty", func(s *Summary) { s.Isolation[0].WANFrames = 0 }, "no tunnelled frame of tenant1 on the WAN"},
		{"wan foreign", func(s *Summary) { s.Isolation[0].WANForeign, s.Isolation[0].WANForeignSample = 1, "key 513: x" }, "1 frame(s) of tenant1 on the WAN without its fabric MAC prefix or tunnel key, e.g. key 513: x"},
		{"spoof ping", func(s *Summary) { s.Spoofs[0].PingOK = true }, "spoof (unbound MAC): t1-h3 as 00:00:00:00:00:5f got a reply from t1-h1"},
		{"spoof frames", func(s *Summary) {
			s.Spoofs[1].Frames, s.Spoofs[1].FramesAt, s.Spoofs[1].Sample = 3, map[string]int{"t2-h3": 3}, []string{"t2-h3: x"}
		}, "spoof (fabric MAC of tenant2/h3): t1-h3 as 02:01:00:00:00:03: 3 frame(s) reached other hosts map[t2-h3:3], e.g. t2-h3: x"},
		{"spoof not dropped", func(s *Summary) { s.Spoofs[0].EdgeDropped = 4 }, "9 frame(s) sent, only 4 counted by the drop entries of azure/web port 2"},
		{"spoof sent nothing", func(s *Summary) { s.Spoofs[0].Sent, s.Spoofs[0].EdgeDropped = 0, 0 }, "as 00:00:00:00:00:5f sent no frame"},
		{"spoof edge unreadable", func(s *Summary) { s.Spoofs[1].EdgeErr = "no drop entry" }, "edge drop counters: no drop entry"},
		{"spoof restore", func(s *Summary) { s.Spoofs[1].Restored = false }, "did not ping t1-h1 (10.0.0.1) again"},
		{"no spoof", func(s *Summary) { s.Spoofs = nil }, "no spoofed-MAC check ran"},
		{"no pairs", func(s *Summary) { s.Pairs = nil }, "no ping pair was checked"},
		{"no isolation", func(s *Summary) { s.Isolation = nil }, "no isolation check ran"},
		{"problem", func(s *Summary) { s.Problems = []string{"lab up: boom"} }, "lab up: boom"},
	}
	for _, c := range cases {
		s := passing()
		c.break_(s)
		f := s.Failures()
		if len(f) != 1 || !strings.Contains(f[0], c.want) {
			t.Errorf("%s: failures %q, want one containing %q", c.name, f, c.want)
		}
		if s.OK() {
			t.Errorf("%s: OK", c.name)
		}
		var b bytes.Buffer
		s.WriteTable(&b)
		if !strings.Contains(b.String(), "FAILED (1)") || !strings.Contains(b.String(), c.want) {
			t.Errorf("%s: table:\n%s", c.name, b.String())
		}
	}
}

const twoTenants = `{"tenants": [
 {"tenant": "tenant1", "hosts": [{"name": "h1", "mac": "00:00:00:00:00:01", "ip": "10.0.0.1/24"}, {"name": "h2", "mac": "00:00:00:00:00:02", "ip": "10.0.0.2/24"}, {"name": "h3", "mac": "00:00:00:00:00:03", "ip": "10.0.0.3/24"}]},
 {"tenant": "tenant2", "hosts": [{"name": "h1", "mac": "00:00:00:00:00:01", "ip": "10.0.0.1/24"}, {"name": "h2", "mac": "00:00:00:00:00:02", "ip": "10.0.0.2/24"}, {"name": "h3", "mac": "00:00:00:00:00:03", "ip": "10.0.0.3/24"}]}]}`

func labHosts() []lab.HostInfo {
	var out []lab.HostInfo
	for _, tn := range []string{"1", "2"} {
		for _, h := range []string{"1", "2", "3"} {
			mac := "00:00:00:00:00:0" + h
			if tn == "2" {
				mac = "02:00:00:00:02:0" + h
			}
			out = append(out, lab.HostInfo{Name: "t" + tn + "-h" + h, MAC: mac, IfaceID: "tenant" + tn + "/h" + h})
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	hosts, err := planHosts([]byte(twoTenants), labHosts())
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 6 {
		t.Fatalf("%d hosts", len(hosts))
	}
	h := hosts[4] // tenant2/h2
	if h.Tenant != "tenant2" || h.Name != "h2" || h.MAC != "00:00:00:00:00:02" || h.LabMAC != "02:00:00:00:02:02" || h.IP != "10.0.0.2" || h.Broadcast != "10.0.0.255" || h.Lab != "t2-h2" {
		t.Fatalf("host %+v", h)
	}
	pairs := planPairs(hosts)
	if len(pairs) != 12 {
		t.Fatalf("%d pairs, want 12 (3*2 per tenant)", len(pairs))
	}
	seen := map[string]bool{}
	for _, p := range pairs {
		if p.From == p.To {
			t.Errorf("self pair %+v", p)
		}
		if p.FromLab[1] != p.Tenant[6] {
			t.Errorf("pair %+v pings from another tenant's lab host", p)
		}
		seen[p.Tenant+p.From+p.To] = true
	}
	if len(seen) != 12 {
		t.Errorf("duplicate pairs: %v", seen)
	}
	if got := tenants(hosts); strings.Join(got, ",") != "tenant1,tenant2" {
		t.Errorf("tenants %v", got)
	}
}

func TestPlanErrors(t *testing.T) {
	extra := append(labHosts(), lab.HostInfo{Name: "x", IfaceID: "tenant3/h1"})
	cases := []struct {
		doc  string
		labs []lab.HostInfo
		want string
	}{
		{`{`, labHosts(), "tenants file"},
		{`{"tenants": []}`, labHosts(), "no tenants"},
		{twoTenants, labHosts()[:5], `tenants[1].hosts[2] (tenant2/h3): no lab host has iface-id "tenant2/h3"`},
		{twoTenants, extra, `lab host x: iface-id "tenant3/h1" names no host`},
		{strings.Replace(twoTenants, `"10.0.0.3/24"`, `"10.0.0.3"`, 1), labHosts(), `tenants[0].hosts[2] (tenant1/h3): ip "10.0.0.3"`},
		{strings.Replace(twoTenants, `"00:00:00:00:00:02"`, `"zz"`, 1), labHosts(), `tenants[0].hosts[1] (tenant1/h2): mac`},
	}
	for _, c := range cases {
		_, err := planHosts([]byte(c.doc), c.labs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want %q", err, c.want)
		}
	}
}

func TestCountFrames(t *testing.T) {
	lines := []string{
		"tcpdump: verbose output suppressed, use -v[v]... for full protocol decode",
		"listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes",
		"05:28:45.381334 00:00:00:00:00:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.199 tell 10.0.0.2, length 28",
		"05:28:45.400001 00:00:00:00:00:01 > 00:00:00:00:00:02, ethertype IPv4 (0x0800), length 98: 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64",
		"2 packets captured",
		"0 packets dropped by kernel",
		"",
		"ab:cd:ef.123 not a frame",
	}
	if n := countFrames(lines); n != 2 {
		t.Fatalf("%d frames, want 2", n)
	}
}

func TestDropPackets(t *testing.T) {
	dump := ` cookie=0x5359000000000001, duration=3.1s, table=0, n_packets=7, n_bytes=588, priority=200,in_port=2,dl_src=00:00:00:00:00:03,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=set_field:02:00:00:00:00:03->eth_src,write_metadata:0x200000000010001/0xffff00000001ffff,goto_table:5
 cookie=0x5359000000000001, duration=3.1s, table=0, n_packets=12, n_bytes=900, priority=100,in_port=2 actions=drop
 cookie=0x77, duration=1.0s, table=0, n_packets=3, n_bytes=100, priority=90,in_port=2,dl_type=0x0806 actions=drop
`
	if n, ok := dropPackets(dump); !ok || n != 15 {
		t.Fatalf("dropPackets = %d, %v; want 15, true", n, ok)
	}
	if _, ok := dropPackets(strings.SplitN(dump, "\n", 2)[0]); ok {
		t.Fatal("found a drop entry in a dump without one")
	}
}

func TestBroadcast(t *testing.T) {
	for _, c := range []struct{ cidr, want string }{{"10.0.0.1/24", "10.0.0.255"}, {"192.168.7.9/20", "192.168.15.255"}, {"10.1.2.3/32", "10.1.2.3"}, {"fd00::1/64", ""}} {
		_, n, err := net.ParseCIDR(c.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if got := broadcast(n); got != c.want {
			t.Errorf("broadcast(%s) = %q, want %q", c.cidr, got, c.want)
		}
	}
}

func TestUnusedIP(t *testing.T) {
	if got := unusedIP("10.0.0.1", 1); got != "10.0.0.201" {
		t.Fatalf("%s", got)
	}
	if got := unusedIP("bad", 0); got != "bad" {
		t.Fatalf("%s", got)
	}
}

func TestLoadSpecOverrides(t *testing.T) {
	spec, err := LoadSpec(Config{LabFile: "../../examples/labs/demo.json", Prefix: "skdt", StateDir: "/tmp/skdt-x/lab"})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Prefix != "skdt" || spec.StateDir != "/tmp/skdt-x/lab" || spec.Controller != "unix:/tmp/skdt-x/lab/openflow.sock" || len(spec.Hosts) != 6 || len(spec.Sites) != 3 {
		t.Fatalf("spec %+v", spec)
	}
	spec, err = LoadSpec(Config{LabFile: "../../examples/labs/demo.json", Prefix: "skdt"})
	if err != nil || spec.StateDir != "/tmp/skylab/skdt" {
		t.Fatalf("default state dir from the prefix: %v %q", err, spec.StateDir)
	}
	if _, err := LoadSpec(Config{LabFile: "../../examples/labs/demo.json", Prefix: "BAD"}); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Fatalf("bad prefix: %v", err)
	}
}

// TestDemoFilesAgree checks that examples/labs/demo.json plugs exactly the
// hosts of examples/two-tenants.json (by iface-id), in the right clouds.
func TestDemoFilesAgree(t *testing.T) {
	spec, err := LoadSpec(Config{LabFile: "../../examples/labs/demo.json"})
	if err != nil {
		t.Fatal(err)
	}
	var infos []lab.HostInfo
	site := map[string]string{}
	for _, h := range spec.Hosts {
		infos = append(infos, lab.HostInfo{Name: h.Name, MAC: h.MAC, IfaceID: h.IfaceID, Site: h.Site})
		site[h.IfaceID] = h.Site
	}
	doc := readFile(t, "../../examples/two-tenants.json")
	hosts, err := planHosts(doc, infos)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 6 {
		t.Fatalf("%d hosts", len(hosts))
	}
	var d struct {
		Tenants []struct {
			Tenant string
			Hosts  []struct{ Name, Cloud string }
		}
	}
	if err := jsonUnmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	for _, tn := range d.Tenants {
		for _, h := range tn.Hosts {
			if got := site[tn.Tenant+"/"+h.Name]; got != h.Cloud {
				t.Errorf("%s/%s: lab site %q, tenants file cloud %q", tn.Tenant, h.Name, got, h.Cloud)
			}
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestRunPreflight: Run refuses to start (touching nothing) without the
// binaries, the lab file or the tenants file, naming what is missing.
func TestRunPreflight(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{LabFile: "../../examples/labs/demo.json", TenantsFile: "../../examples/two-tenants.json", BinDir: dir}, "skyvisor binary"},
		{Config{LabFile: dir + "/none.json", BinDir: dir}, "lab file"},
	}
	for _, c := range cases {
		c.cfg.Prefix, c.cfg.StateDir = "skdu", dir+"/lab"
		if _, err := Run(context.Background(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want %q", err, c.want)
		}
	}
	for _, b := range []string{"skyvisor", "skyctl"} {
		os.WriteFile(dir+"/"+b, nil, 0o755)
	}
	_, err := Run(context.Background(), Config{LabFile: "../../examples/labs/demo.json", TenantsFile: dir + "/none.json", BinDir: dir, Prefix: "skdu", StateDir: dir + "/lab"})
	if err == nil || !strings.Contains(err.Error(), "tenants file") {
		t.Errorf("err %v, want the tenants file named", err)
	}
}

func TestParseWAN(t *testing.T) {
	lines := []string{
		"listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144 bytes",
		"05:34:22.987766 w-s1  P   ifindex 3 02:5c:00:00:00:01 ethertype IPv4 (0x0800), length 98: 172.31.0.1.48104 > 172.31.0.2.4789: VXLAN, flags [I] (0x08), vni 513",
		"02:01:00:00:00:01 > 02:01:80:00:00:02, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.3 tell 10.0.0.1, length 28",
		"05:34:22.987782 w-s2  Out ifindex 5 02:5c:00:00:00:01 ethertype IPv4 (0x0800), length 98: 172.31.0.1.48104 > 172.31.0.2.4789: VXLAN, flags [I] (0x08), vni 513",
		"02:01:00:00:00:01 > 02:01:80:00:00:02, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.3 tell 10.0.0.1, length 28",
		"05:34:22.990000 w-s3  P   ifindex 4 02:5c:00:00:00:03 ethertype IPv4 (0x0800), length 108: 172.31.0.3.1 > 172.31.0.1.6081: Geneve, Flags [none], vni 0x200, proto TEB (0x6558)",
		"02:00:00:00:00:03 > 02:00:00:00:00:01, ethertype IPv4 (0x0800), length 98: 10.0.0.3 > 10.0.0.1: ICMP echo reply, id 1, seq 1, length 64",
		"05:34:22.990001 w-s3  P   ifindex 4 vni garbage",
		"19:02:41.111111 w-s1  P   ifindex 3 02:5c:00:00:00:01 ethertype IPv4 (0x0800), length 116: 172.31.0.1.33000 > 172.31.0.3.4789: VXLAN, flags [I] (0x08), vni 0",
		"52:70:03:aa:f5:78 > 00:23:20:00:00:01, ethertype IPv4 (0x0800), length 66: 169.254.1.1.49153 > 169.254.1.0.3784: BFDv1, Control, State Up, Flags: [none], length: 24",
		"19:02:41.111112 w-s1  P   ifindex 3 02:5c:00:00:00:01 ethertype IPv4 (0x0800), length 116: 172.31.0.1.33000 > 172.31.0.3.4789: VXLAN, flags [I] (0x08), vni 0",
		"ba:74:cf:b4:14:6b > 00:23:20:00:00:01, ethertype IPv4 (0x0800), length 66: 169.254.1.1.49152 > 169.254.1.0.3784: BCM-LI-SHIM: direction unused, pkt-type unknown",
		"19:02:41.111113 w-s1  P   ifindex 3 02:5c:00:00:00:01 ethertype IPv4 (0x0800), length 116: 172.31.0.1.33000 > 172.31.0.3.4789: VXLAN, flags [I] (0x08), vni 0",
		"00:00:00:00:00:01 > 00:00:00:00:00:02, ethertype IPv4 (0x0800), length 98: 10.0.0.1.3784 > 10.0.0.2.53: UDP, length 56",
		"19:02:41.111114 w-s1  P   ifindex 3 02:5c:00:00:00:01 ethertype IPv4 (0x0800), length 116: 172.31.0.1.33000 > 172.31.0.3.4789: VXLAN, flags [I] (0x08), vni 512",
		"02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype IPv4 (0x0800), length 98: 10.0.0.1.1 > 10.0.0.2.3784: UDP, length 56",
		"2 packets captured",
	}
	got := parseWAN(lines)
	if len(got) != 6 {
		t.Fatalf("%d frames %+v, want 6 (the Out copy skipped)", len(got), got)
	}
	// BFD only with key 0 and UDP destination port 3784: not a tenant frame
	// from port 3784 with key 0, nor port 3784 under a tenant's key.
	for i, want := range []bool{false, false, true, true, false, false} {
		if got[i].BFD != want {
			t.Errorf("frame %d %q: BFD %v, want %v", i, got[i].Line, got[i].BFD, want)
		}
	}
	if got[0].VNI != 513 || got[0].Src != "02:01:00:00:00:01" || got[0].Dst != "02:01:80:00:00:02" || !strings.Contains(got[0].Line, "who-has") {
		t.Errorf("vxlan frame %+v", got[0])
	}
	if got[1].VNI != 0x200 || got[1].Src != "02:00:00:00:00:03" {
		t.Errorf("geneve frame %+v", got[1])
	}
	if p := fabricPrefix(513); p != "02:01" {
		t.Errorf("fabricPrefix(513) = %q", p)
	}
}
