package setuptime

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

func TestAllPairs(t *testing.T) {
	got := AllPairs(4)
	want := []Pair{{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AllPairs(4) = %v", got)
	}
	if n := len(AllPairs(64)); n != 64*63/2 {
		t.Fatalf("AllPairs(64): %d pairs", n)
	}
	if len(AllPairs(1)) != 0 {
		t.Fatal("pairs of one host")
	}
}

func TestTenantDoc(t *testing.T) {
	ts, err := topology.ParseDocument(TenantDoc(3, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Tenant != Tenant || len(ts[0].Hosts) != 6 || len(ts[0].Switches) != 1 {
		t.Fatalf("document %+v", ts)
	}
	h := ts[0].Hosts[3] // site 2, VM 2
	if h.Name != "h2-2" || h.Cloud != "s02" || h.Port != 4 || h.MAC != "02:5e:00:00:02:02" || h.IP != "10.0.2.2/16" {
		t.Fatalf("host %+v", h)
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

func TestHostAddresses(t *testing.T) {
	if HostMAC(12, 3).String() != "02:5e:00:00:0c:03" || HostIP(12, 3).String() != "10.0.12.3" || HostName(12, 3) != "h12-3" ||
		SiteName(3) != "s03" || VMName(2) != "vm2" {
		t.Fatal(HostMAC(12, 3), HostIP(12, 3), HostName(12, 3), SiteName(3), VMName(2))
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
