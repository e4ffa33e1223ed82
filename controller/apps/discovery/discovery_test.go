package discovery

import (
	"errors"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
)

func TestProbeRoundTrip(t *testing.T) {
	src := net.HardwareAddr{0x02, 1, 2, 3, 4, 5}
	for _, p := range []Probe{{DPID: 1, Port: 1, TTL: 15}, {DPID: 0xfedcba9876543210, Port: 0xffffff00, TTL: 120}} {
		f, err := EncodeProbe(p, src)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(net.HardwareAddr(f[0:6]), lldpMulticast()) || !reflect.DeepEqual(net.HardwareAddr(f[6:12]), src) || f[12] != 0x88 || f[13] != 0xcc {
			t.Fatalf("bad Ethernet header % x", f[:14])
		}
		got, err := ParseProbe(f)
		if err != nil {
			t.Fatal(err)
		}
		if got != p {
			t.Fatalf("round trip %+v -> %+v", p, got)
		}
	}
	// A missing source address is derived from DPID and port.
	f, err := EncodeProbe(Probe{DPID: 0x0102, Port: 3, TTL: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (net.HardwareAddr{0x02, 0x01, 0x02, 0, 0, 3}); !reflect.DeepEqual(net.HardwareAddr(f[6:12]), want) {
		t.Fatalf("derived source %v want %v", net.HardwareAddr(f[6:12]), want)
	}
}

func foreignLLDP(t *testing.T, chassis layers.LLDPChassisID, port layers.LLDPPortID) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{},
		&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, DstMAC: lldpMulticast(), EthernetType: layers.EthernetTypeLinkLayerDiscovery},
		&layers.LinkLayerDiscovery{ChassisID: chassis, PortID: port, TTL: 120})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseProbeRejects(t *testing.T) {
	macChassis := foreignLLDP(t, layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeMACAddr, ID: []byte{2, 0, 0, 0, 0, 9}},
		layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypeIfaceName, ID: []byte("eth0")})
	if _, err := ParseProbe(macChassis); !errors.Is(err, ErrNotProbe) {
		t.Fatalf("foreign LLDP: err %v want ErrNotProbe", err)
	}
	badDPID := foreignLLDP(t, layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeLocal, ID: []byte("dpid:xyz")},
		layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypePortComp, ID: []byte{0, 0, 0, 1}})
	if _, err := ParseProbe(badDPID); !errors.Is(err, ErrNotProbe) {
		t.Fatalf("bad dpid: err %v want ErrNotProbe", err)
	}
	badPort := foreignLLDP(t, layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeLocal, ID: []byte("dpid:0000000000000001")},
		layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypeIfaceName, ID: []byte("eth0")})
	if _, err := ParseProbe(badPort); !errors.Is(err, ErrNotProbe) {
		t.Fatalf("port name: err %v want ErrNotProbe", err)
	}
	good, _ := EncodeProbe(Probe{DPID: 1, Port: 1, TTL: 15}, nil)
	for _, f := range [][]byte{nil, good[:10], good[:20], append(append([]byte{}, good[:12]...), 0x08, 0x00)} {
		if _, err := ParseProbe(f); err == nil || errors.Is(err, ErrNotProbe) {
			t.Fatalf("malformed frame (%d bytes): err %v, want a decode error", len(f), err)
		}
	}
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestApp(t *testing.T, dpids ...uint64) (*App, *fakeClock, *[]LinkEvent) {
	t.Helper()
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var mu sync.Mutex
	events := &[]LinkEvent{}
	a, err := New(Config{ProbeInterval: time.Second, LinkTimeout: 3 * time.Second, Now: clk.Now,
		OnChange: func(e LinkEvent) { mu.Lock(); *events = append(*events, e); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dpids {
		a.switches[d] = &prober{}
	}
	return a, clk, events
}

func probeIn(t *testing.T, a *App, from Endpoint, toDPID uint64, inPort ofp.PortNo) controller.Disposition {
	t.Helper()
	f, err := EncodeProbe(Probe{DPID: from.DPID, Port: from.Port, TTL: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a.packetIn(toDPID, &controller.PacketIn{BufferID: ofp.NoBuffer, InPort: inPort, Data: f})
}

func TestLinkDiscoveryAndAging(t *testing.T) {
	a, clk, events := newTestApp(t, 1, 2, 3)
	if d := probeIn(t, a, Endpoint{1, 1}, 2, 3); d != controller.Stop {
		t.Fatal("our probe must be consumed (Stop)")
	}
	probeIn(t, a, Endpoint{2, 3}, 1, 1)
	probeIn(t, a, Endpoint{3, 1}, 1, 2)
	want := []Link{{Endpoint{1, 1}, Endpoint{2, 3}}, {Endpoint{2, 3}, Endpoint{1, 1}}, {Endpoint{3, 1}, Endpoint{1, 2}}}
	if got := a.Links(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Links = %v want %v", got, want)
	}
	if len(*events) != 3 || !(*events)[0].Up {
		t.Fatalf("want 3 up events, got %+v", *events)
	}
	// Refresh two of them just before the timeout; the third expires.
	clk.Advance(2 * time.Second)
	probeIn(t, a, Endpoint{1, 1}, 2, 3)
	probeIn(t, a, Endpoint{2, 3}, 1, 1)
	if len(*events) != 3 {
		t.Fatal("refreshing a link must not emit events")
	}
	clk.Advance(2 * time.Second) // 4 s after the third link was last seen
	want = want[:2]
	if got := a.Links(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after aging Links = %v want %v", got, want)
	}
	last := (*events)[len(*events)-1]
	if last.Up || last.Reason != "timeout" || last.Link != (Link{Endpoint{3, 1}, Endpoint{1, 2}}) {
		t.Fatalf("want timeout event for 3:1->1:2, got %+v", last)
	}
	clk.Advance(10 * time.Second)
	if got := a.Links(); len(got) != 0 {
		t.Fatalf("all links should have expired, got %v", got)
	}
}

func TestLinkRemovedOnPortDownAndReplaced(t *testing.T) {
	a, _, events := newTestApp(t, 1, 2, 3)
	probeIn(t, a, Endpoint{1, 1}, 2, 3)
	probeIn(t, a, Endpoint{2, 3}, 1, 1)
	a.portDown(Endpoint{2, 3})
	if got := a.Links(); len(got) != 0 {
		t.Fatalf("port down must remove both directions, got %v", got)
	}
	if n := len(*events); n != 4 || (*events)[3].Reason != "port down" {
		t.Fatalf("events %+v", *events)
	}
	// Cable moved: 1:1 now reaches 3:7.
	probeIn(t, a, Endpoint{1, 1}, 2, 3)
	probeIn(t, a, Endpoint{1, 1}, 3, 7)
	want := []Link{{Endpoint{1, 1}, Endpoint{3, 7}}}
	if got := a.Links(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Links = %v want %v", got, want)
	}
}

func TestPacketInIgnoresOthers(t *testing.T) {
	a, _, _ := newTestApp(t, 1, 2)
	arp := append(make([]byte, 12), 0x08, 0x06)
	if d := a.packetIn(1, &controller.PacketIn{InPort: 1, Data: append(arp, make([]byte, 28)...)}); d != controller.Continue {
		t.Fatal("non-LLDP frames must pass (Continue)")
	}
	foreign := foreignLLDP(t, layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeMACAddr, ID: []byte{2, 0, 0, 0, 0, 9}},
		layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypeIfaceName, ID: []byte("eth0")})
	if d := a.packetIn(1, &controller.PacketIn{InPort: 1, Data: foreign}); d != controller.Continue {
		t.Fatal("foreign LLDP must pass (Continue)")
	}
	// A probe from a switch we do not control is consumed but makes no link.
	if d := probeIn(t, a, Endpoint{99, 1}, 1, 1); d != controller.Stop {
		t.Fatal("our probe format must be consumed")
	}
	// A probe arriving on a reserved port makes no link.
	probeIn(t, a, Endpoint{2, 1}, 1, ofp.PortLocal)
	if got := a.Links(); len(got) != 0 {
		t.Fatalf("want no links, got %v", got)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{ProbeInterval: 10 * time.Second, LinkTimeout: 5 * time.Second}); err == nil {
		t.Fatal("link timeout shorter than probe interval must fail")
	}
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c := a.Config(); c.ProbeInterval != 5*time.Second || c.LinkTimeout != 15*time.Second || c.Priority != 65000 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestProbePort(t *testing.T) {
	cases := []struct {
		p    ofp.Port
		want bool
	}{
		{ofp.Port{PortNo: 1}, true},
		{ofp.Port{PortNo: ofp.PortLocal}, false},
		{ofp.Port{PortNo: 2, Config: ofp.PortConfigDown}, false},
		{ofp.Port{PortNo: 3, State: ofp.PortStateLinkDown}, false},
	}
	for _, c := range cases {
		if got := probePort(c.p); got != c.want {
			t.Errorf("probePort(%+v) = %v want %v", c.p, got, c.want)
		}
	}
}

// FuzzParseProbe feeds arbitrary frames to ParseProbe and the packet-in
// handler: they must not panic, and a frame ParseProbe accepts must
// re-encode to a probe that parses to the same value.
func FuzzParseProbe(f *testing.F) {
	good, _ := EncodeProbe(Probe{DPID: 0x1234, Port: 7, TTL: 15}, net.HardwareAddr{2, 0, 0, 0, 0, 1})
	f.Add(good)
	f.Add(good[:20])
	f.Add(append(append([]byte{}, good[:14]...), 0x02, 0x07, 0x07, 'd', 'p', 'i', 'd', ':', '0'))
	f.Add([]byte{})
	a, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	a.switches[0x1234] = &prober{}
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, err := ParseProbe(frame)
		a.packetIn(1, &controller.PacketIn{InPort: 1, Data: frame})
		if err != nil {
			return
		}
		again, err := EncodeProbe(p, nil)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", p, err)
		}
		q, err := ParseProbe(again)
		if err != nil || q != p {
			t.Fatalf("round trip %+v -> %+v, %v", p, q, err)
		}
	})
}
