package controller

import (
	"bytes"
	"context"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
)

// FuzzPacketIn compares the hand-written packet-in decoder with
// ofp.PacketIn.ReadFrom: when both accept the input they must agree, and
// the fast decoder must never panic.
func FuzzPacketIn(f *testing.F) {
	f.Add(packetInBody(1, []byte("frame")))
	f.Add(packetInBody(0xfffffffe, nil))
	f.Add(append(packetInBody(7, []byte{1, 2}), 0xff))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodePacketIn(body)
		var n ofp.PacketIn
		_, nerr := n.ReadFrom(bytes.NewReader(body))
		if err != nil || nerr != nil {
			return
		}
		checkPacketInEqual(t, p, &n)
	})
}

func checkPacketInEqual(t *testing.T, p *PacketIn, n *ofp.PacketIn) {
	t.Helper()
	if p.BufferID != n.Buffer || p.TotalLen != n.Length || p.Reason != n.Reason || p.TableID != uint8(n.Table) || p.Cookie != n.Cookie {
		t.Fatalf("fixed fields differ: %+v vs %+v", p, n)
	}
	if !bytes.Equal(p.Data, n.Data) {
		t.Fatalf("data %x vs %x", p.Data, n.Data)
	}
	if !reflect.DeepEqual(normFields(p.Match), normFields(n.Match)) {
		t.Fatalf("match %+v vs %+v", p.Match, n.Match)
	}
	if f := n.Match.Field(ofp.XMTypeInPort); f != nil && f.Class == ofp.XMClassOpenflowBasic && len(f.Value) == 4 && len(f.Mask) == 0 {
		if uint32(p.InPort) != f.Value.UInt32() {
			t.Fatalf("in_port %d vs %d", p.InPort, f.Value.UInt32())
		}
	}
}

func normFields(m ofp.Match) ofp.Match {
	out := ofp.Match{Type: m.Type}
	for _, f := range m.Fields {
		if len(f.Mask) == 0 {
			f.Mask = nil
		}
		if len(f.Value) == 0 {
			f.Value = nil
		}
		out.Fields = append(out.Fields, f)
	}
	return out
}

func TestPacketInDecoderMatchesNetrack(t *testing.T) {
	bodies := [][]byte{
		packetInBody(1, []byte("frame")),
		packetInBody(0xfffffffe, make([]byte, 1500)),
	}
	// Several OXMs incl. masked and tunnel metadata (more than 4 fields).
	multi := []byte{0, 0, 1, 0, 0, 64, 1, 2, 0, 0, 0, 0, 0, 0, 0, 9}
	oxms := []byte{
		0x80, 0, 0, 4, 0, 0, 0, 3, // in_port
		0x80, 0, 4, 16, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, // metadata/mask
		0x80, 0, 76, 8, 0, 0, 0, 0, 0, 0, 0, 42, // tunnel_id
		0x80, 0, 0x14, 1, 6, // ip_proto
		0x80, 0, 0x0c, 2, 0x10, 0x05, // vlan_vid
	}
	mlen := 4 + len(oxms)
	multi = append(multi, 0, 1, byte(mlen>>8), byte(mlen))
	multi = append(multi, oxms...)
	multi = append(multi, make([]byte, (mlen+7)/8*8-mlen)...)
	multi = append(multi, 0, 0)
	multi = append(multi, []byte("payload")...)
	bodies = append(bodies, multi)
	for i, b := range bodies {
		p, err := decodePacketIn(b)
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		var n ofp.PacketIn
		if _, err := n.ReadFrom(bytes.NewReader(b)); err != nil {
			t.Fatalf("body %d: netrack: %v", i, err)
		}
		checkPacketInEqual(t, p, &n)
	}
	p, _ := decodePacketIn(multi)
	if len(p.Match.Fields) != 5 || p.InPort != 3 {
		t.Fatalf("multi: %d fields in_port %d", len(p.Match.Fields), p.InPort)
	}
	// The event owns its bytes: mutating the input does not change it.
	b := packetInBody(1, []byte("frame"))
	p, _ = decodePacketIn(b)
	for i := range b {
		b[i] = 0
	}
	if string(p.Data) != "frame" || p.InPort != 1 {
		t.Fatal("packet-in aliases the read buffer")
	}
}

// FuzzSession feeds arbitrary bytes as the switch side, both from the
// first byte (hello negotiation) and after a completed handshake. The
// session must end, with an error unless it was a clean close, never
// through the panic guard, and with its reason logged ("switch
// disconnected" reason=... or "openflow handshake failed").
func FuzzSession(f *testing.F) {
	f.Add(false, []byte{4, 0, 0, 8, 0, 0, 0, 1})
	f.Add(false, []byte{1, 0, 0, 8, 0, 0, 0, 1})
	f.Add(true, packetInMsg(1, []byte("x")))
	f.Add(true, []byte{4, 10, 0, 4, 0, 0, 0, 1})
	f.Add(true, []byte{4, 19, 0, 16, 0, 0, 0, 3, 0, 13, 0, 1, 0, 0, 0, 0})
	f.Add(true, []byte{4, 12, 0, 80, 0, 0, 0, 0})
	f.Add(true, []byte{4, 2, 0, 12, 0, 0, 0, 9, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, afterHandshake bool, input []byte) {
		sink := &logSink{}
		cfg := testConfig(sink)
		cfg.HandshakeTimeout = 3 * time.Second // generous: fuzz workers run under load
		cfg.RequestTimeout = 3 * time.Second
		c, err := New(cfg, newRecorder("rec"))
		if err != nil {
			t.Fatal(err)
		}
		a, b := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- c.ServeConn(context.Background(), a) }()
		fs := newFakeSwitch(t, b)
		if afterHandshake {
			fs.handshake(1, 1)
		}
		go func() {
			for range fs.in {
			}
		}()
		fs.write(input)
		b.Close()
		select {
		case err := <-done:
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Fatalf("session hit the panic guard: %v", err)
			}
			// ServeConn logs why the session ended before it returns.
			if err != nil && !sink.containsAll("switch disconnected", "reason=") && !sink.contains("openflow handshake failed") {
				t.Fatalf("session ended with %v but logged no reason; log:\n%s", err, sink)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("session did not end after the switch closed")
		}
	})
}

func packetInMsg(inPort uint32, frame []byte) []byte {
	body := packetInBody(inPort, frame)
	h := []byte{4, 10, byte((8 + len(body)) >> 8), byte(8 + len(body)), 0, 0, 0, 0}
	return append(h, body...)
}
