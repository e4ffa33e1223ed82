package ofbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

// testFabric is two edge bridges with three hosts each.
func testFabric() *Fabric {
	f := &Fabric{Table: 10, Cookie: 0x5359 << 48, IgnoreCookieMask: 0xffff << 48, IgnoreCookieValue: 0x5359 << 48}
	for i := range 2 {
		sw := FabricSwitch{DPID: uint64(0x100 + i), Ports: []uint32{1, 2, 3, 100}}
		for h := range 3 {
			sw.Hosts = append(sw.Hosts, FabricHost{
				Port:     uint32(h + 1),
				Metadata: uint64(0x0201+i)<<48 | uint64(h+1)<<32 | 1,
				SrcMAC:   net.HardwareAddr{0x02, byte(0x01 + i), 0, 0, 0, byte(h + 1)}.String(),
				DstMAC:   net.HardwareAddr{0, 0, 0, 0, 0, byte(h + 1)}.String(),
			})
		}
		f.Switches = append(f.Switches, sw)
	}
	return f
}

func TestFabricPacketInEncoding(t *testing.T) {
	f := testFabric()
	m := FabricPacketIn(f, 1, 4, 77) // host 4 mod 3 = 1 to host 0
	if len(m) != fabPacketInLen || m[0] != ofpVersion || of.Type(m[1]) != of.TypePacketIn || int(binary.BigEndian.Uint16(m[2:])) != len(m) {
		t.Fatalf("header % x", m[:8])
	}
	var pin ofp.PacketIn
	if _, err := pin.ReadFrom(bytes.NewReader(m[ofpHeaderLen:])); err != nil {
		t.Fatalf("netrack cannot decode the fabric packet-in: %v", err)
	}
	if pin.Table != 10 || pin.Cookie != 0x5359<<48 || pin.Buffer != ofpNoBuffer || len(pin.Data) != frameLen {
		t.Errorf("table %d cookie %#x buffer %#x data %d", pin.Table, pin.Cookie, pin.Buffer, len(pin.Data))
	}
	var inPort uint32
	var md uint64
	for _, x := range pin.Match.Fields {
		switch x.Type {
		case ofp.XMTypeInPort:
			inPort = binary.BigEndian.Uint32(x.Value)
		case ofp.XMTypeMetadata:
			md = binary.BigEndian.Uint64(x.Value)
		}
	}
	if inPort != 2 {
		t.Errorf("in_port %d, want 2 (host 1)", inPort)
	}
	if want := uint64(0x0202)<<48 | 2<<32 | 1; md != want {
		t.Errorf("metadata %#x, want %#x", md, want)
	}
	if got := net.HardwareAddr(pin.Data[6:12]).String(); got != "02:02:00:00:00:02" {
		t.Errorf("src MAC %s, want host 1's source MAC", got)
	}
	if got := net.HardwareAddr(pin.Data[0:6]).String(); got != "00:00:00:00:00:01" {
		t.Errorf("dst MAC %s, want host 0's destination MAC", got)
	}
	if seq, ok := frameSeq(pin.Data); !ok || seq != 77 {
		t.Errorf("frameSeq = %d, %v", seq, ok)
	}
	if ipChecksum(pin.Data[14:34]) != 0 {
		t.Errorf("IPv4 header checksum does not verify")
	}
}

// TestFabricSwitchFillMatchesFabricPacketIn checks that the hot path (fill)
// builds the same bytes as the exported encoder, host order included.
func TestFabricSwitchFillMatchesFabricPacketIn(t *testing.T) {
	f := testFabric()
	cfg := &Config{Fabric: f, Switches: 2, Mode: ModeThroughput, Window: 5, Timeout: time.Second}
	s := newSwitch(0, cfg, testEpoch())
	s.fill(0)
	if len(s.out) != 5*fabPacketInLen {
		t.Fatalf("%d bytes, want 5 packet-ins", len(s.out))
	}
	for k := range 5 {
		got := s.out[k*fabPacketInLen : (k+1)*fabPacketInLen]
		if want := FabricPacketIn(f, 0, k, uint32(k)); !bytes.Equal(got, want) {
			t.Errorf("packet-in %d:\n got % x\nwant % x", k, got, want)
		}
	}
	if s.dpid != 0x100 {
		t.Errorf("dpid %#x", s.dpid)
	}
}

func TestFabricModeCountsOnlyResponses(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ignoreValue uint64
		wantIgnored bool
	}{
		// The responder's flow-mods carry cookie 0.
		{"responder's flow-mods ignored", 0, true},
		{"responder's flow-mods counted", 0x5359 << 48, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Responder{FlowMod: true}
			cfg := quick(startResponder(t, r))
			f := testFabric()
			f.IgnoreCookieValue = tc.ignoreValue
			cfg.Fabric, cfg.Switches = f, 0
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Switches != 2 {
				t.Fatalf("%d switches handshaken, want 2", res.Switches)
			}
			tot := totals(res)
			if tot.Answered == 0 || tot.PacketOuts < tot.Answered {
				t.Fatalf("answered %d packet-outs %d", tot.Answered, tot.PacketOuts)
			}
			if tc.wantIgnored {
				if tot.FlowMods != 0 || tot.IgnoredFlowMods == 0 || res.IgnoredFlowMods == 0 {
					t.Errorf("flow-mods %d ignored %d (result %d): want all ignored", tot.FlowMods, tot.IgnoredFlowMods, res.IgnoredFlowMods)
				}
			} else if tot.FlowMods == 0 || tot.IgnoredFlowMods != 0 {
				t.Errorf("flow-mods %d ignored %d: want all counted", tot.FlowMods, tot.IgnoredFlowMods)
			}
			sum := res.Summary()
			if !strings.Contains(sum, " fabric=true ignored_flow_mods=") || !strings.Contains(sum, " macs=3 ") {
				t.Errorf("summary %q lacks the fabric fields", sum)
			}
		})
	}
}

func TestFabricPortDescription(t *testing.T) {
	f := testFabric()
	cfg := &Config{Fabric: f, Switches: 2, Mode: ModeLatency, Timeout: time.Second}
	s := newSwitch(1, cfg, testEpoch())
	req, err := encode(nil, of.TypeMultipartRequest, 9, &ofp.MultipartRequest{Type: ofp.MultipartTypePortDescription})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.handle(req, 0); err != nil {
		t.Fatal(err)
	}
	var ports []uint32
	body := s.out[ofpHeaderLen+8:]
	for len(body) >= 64 {
		ports = append(ports, binary.BigEndian.Uint32(body))
		body = body[64:]
	}
	if len(ports) != 4 || ports[3] != 100 {
		t.Errorf("ports %v, want [1 2 3 100]", ports)
	}
}

func TestFabricValidateNamesFields(t *testing.T) {
	f := testFabric()
	f.Switches[1].DPID = f.Switches[0].DPID
	f.Switches[0].Hosts[1].Port = 7
	f.Switches[1].Hosts[2].SrcMAC = "zz"
	f.Switches[1].Hosts = f.Switches[1].Hosts[:1]
	err := f.Validate()
	if err == nil {
		t.Fatal("invalid fabric accepted")
	}
	for _, want := range []string{"switches[1].dpid", "switches[0].hosts[1].port: 7", "switches[1].hosts: 1 hosts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	cfg := DefaultConfig()
	cfg.Fabric, cfg.Switches = testFabric(), 3
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "switches 3: the fabric has 2") {
		t.Errorf("Validate = %v, want a switch count mismatch", err)
	}
	if _, err := DecodeFabric(strings.NewReader(`{"table": 10, "bogus": 1}`)); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("DecodeFabric with an unknown field = %v", err)
	}
}

// testEpoch is the epoch of switches built directly by tests.
func testEpoch() time.Time { return time.Now() }
