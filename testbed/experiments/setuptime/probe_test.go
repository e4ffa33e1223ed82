package setuptime

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/tunnels"
)

func names(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, SiteName(i))
	}
	return out
}

func plans(t *testing.T, n int) (mst, mesh tunnels.Plan) {
	t.Helper()
	var sites []tunnels.Site
	costs := tunnels.Costs{}
	for i, s := range names(n) {
		sites = append(sites, tunnels.Site{Name: s, Gateway: netip.AddrFrom4([4]byte{172, 31, 0, byte(i + 1)})})
		for j := 0; j < i; j++ {
			costs.Set(SiteName(j+1), s, 1)
		}
	}
	var err error
	if mst, err = tunnels.MST(sites, costs); err != nil {
		t.Fatal(err)
	}
	if mesh, err = tunnels.FullMesh(sites, costs); err != nil {
		t.Fatal(err)
	}
	return mst, mesh
}

// chain is the spanning tree s01-s02-s03-s04.
func chain() tunnels.Plan {
	return tunnels.Plan{Sites: names(4), Tunnels: []tunnels.Tunnel{{A: "s01", B: "s02"}, {A: "s02", B: "s03"}, {A: "s03", B: "s04"}}}
}

func TestProbePairsCoverEveryTunnel(t *testing.T) {
	for _, n := range []int{2, 3, 6, 16} {
		mst, mesh := plans(t, n)
		for _, c := range []struct {
			mode string
			plan tunnels.Plan
		}{{ModeMST, mst}, {ModeMesh, mesh}, {"chain", chain()}} {
			if c.mode == "chain" && n != 4 {
				c.plan = mst
			}
			ns := c.plan.Sites
			pairs, err := ProbePairs(c.plan, ns)
			if err != nil {
				t.Fatal(err)
			}
			if len(pairs) != c.plan.Len() {
				t.Fatalf("n=%d %s: %d pairs for %d tunnels", n, c.mode, len(pairs), c.plan.Len())
			}
			// walk every pair's path and mark the tunnels it uses
			next := NextHops(c.plan)
			used := map[tunnels.Pair]bool{}
			for _, p := range pairs {
				cur, dst := ns[p.Src], ns[p.Dst]
				for hops := 0; cur != dst; hops++ {
					hop, ok := next[cur][dst]
					if !ok || hops > len(ns) || !c.plan.Has(cur, hop) {
						t.Fatalf("n=%d %s: no path %s->%s (at %s)", n, c.mode, ns[p.Src], dst, cur)
					}
					used[tunnels.MakePair(cur, hop)] = true
					cur = hop
				}
			}
			for _, tn := range c.plan.Tunnels {
				if !used[tn.Pair()] {
					t.Errorf("n=%d %s: tunnel %s carries no probe", n, c.mode, tn)
				}
			}
		}
	}
}

func TestProbePairsUnknownSite(t *testing.T) {
	_, mesh := plans(t, 3)
	if _, err := ProbePairs(mesh, []string{"s01", "s02"}); err == nil || !strings.Contains(err.Error(), "outside the lab") {
		t.Fatalf("err %v", err)
	}
}

func TestNextHopsChain(t *testing.T) {
	next := NextHops(chain())
	want := map[string]map[string]string{
		"s01": {"s02": "s02", "s03": "s02", "s04": "s02"},
		"s02": {"s01": "s01", "s03": "s03", "s04": "s03"},
		"s03": {"s01": "s02", "s02": "s02", "s04": "s04"},
		"s04": {"s01": "s03", "s02": "s03", "s03": "s03"},
	}
	if !reflect.DeepEqual(next, want) {
		t.Fatalf("next hops %v", next)
	}
	_, mesh := plans(t, 5)
	for s, m := range NextHops(mesh) {
		for d, h := range m {
			if h != d {
				t.Errorf("mesh: %s->%s via %s, want direct", s, d, h)
			}
		}
	}
}

func TestGatewayFlows(t *testing.T) {
	ns := names(4)
	got, err := GatewayFlows(ns, 2, 1, NextHops(chain()), map[string]int{"s01": 40000, "s03": 50000})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"table=0,priority=100,dl_dst=02:5e:00:00:00:01,actions=set_field:1->tun_id,output:40000",
		"table=0,priority=100,dl_dst=02:5e:00:00:00:02,actions=output:1",
		"table=0,priority=100,dl_dst=02:5e:00:00:00:03,actions=set_field:1->tun_id,output:50000",
		"table=0,priority=100,dl_dst=02:5e:00:00:00:04,actions=set_field:1->tun_id,output:50000",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("flows\n got %q\nwant %q", got, want)
	}
	if _, err := GatewayFlows(ns, 2, 1, NextHops(chain()), map[string]int{"s01": 40000}); err == nil || !strings.Contains(err.Error(), "no tunnel port towards s03") {
		t.Fatalf("missing port: %v", err)
	}
	cut := tunnels.Plan{Sites: ns, Tunnels: []tunnels.Tunnel{{A: "s01", B: "s02"}}}
	if _, err := GatewayFlows(ns, 1, 1, NextHops(cut), map[string]int{"s02": 40000}); err == nil || !strings.Contains(err.Error(), "no path to s03") {
		t.Fatalf("no path: %v", err)
	}
}

func TestEcho(t *testing.T) {
	req := echoRequest(0x5001, 7)
	if req[0] != 8 || binary.BigEndian.Uint16(req[4:]) != 0x5001 || binary.BigEndian.Uint16(req[6:]) != 7 {
		t.Fatalf("request % x", req)
	}
	if icmpChecksum(req) != 0 { // a correct checksum sums to 0xffff, complement 0
		t.Fatalf("checksum does not verify: % x", req)
	}
	// RFC 1071 example bytes 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2, checksum 220d
	if c := icmpChecksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); c != 0x220d {
		t.Fatalf("RFC 1071 example: %#x", c)
	}
	if c := icmpChecksum([]byte{0x01}); c != 0xfeff {
		t.Fatalf("odd length: %#x", c)
	}
	reply := append([]byte(nil), req...)
	reply[0] = 0
	if id, ok := parseEchoReply(reply); !ok || id != 0x5001 {
		t.Fatalf("reply: %v %v", id, ok)
	}
	if _, ok := parseEchoReply(req); ok {
		t.Fatal("a request parsed as a reply")
	}
	if _, ok := parseEchoReply(reply[:7]); ok {
		t.Fatal("a short packet parsed as a reply")
	}
}

func TestProbeAddresses(t *testing.T) {
	if ProbeMAC(12).String() != "02:5e:00:00:00:0c" || ProbeIP(12).String() != "10.0.0.12" || ProbeHost(12) != "p12" || SiteName(3) != "s03" {
		t.Fatal(ProbeMAC(12), ProbeIP(12), ProbeHost(12), SiteName(3))
	}
}

func TestParseDumpPorts(t *testing.T) {
	out := `OFPST_PORT reply (OF1.3) (xid=0x2): 3 ports
  port  LOCAL: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=0, bytes=0, drop=0, errs=0, coll=0
           duration=1.234s
  port  1: rx pkts=12, bytes=1176, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=11, bytes=1078, drop=0, errs=0, coll=0
           duration=1.230s
  port  "gw-vm1": rx pkts=3, bytes=1, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=?, bytes=?, drop=?, errs=?, coll=?
  port  40371: rx pkts=5, bytes=490, drop=?, errs=?, frame=?, over=?, crc=?
           tx pkts=6, bytes=588, drop=?, errs=?, coll=?
`
	got := ParseDumpPorts(out)
	want := map[string]PortCounters{"LOCAL": {0, 0}, "1": {12, 11}, "40371": {5, 6}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}
