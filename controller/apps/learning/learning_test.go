package learning

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

func mac(s string) []byte {
	var b [6]byte
	for i := 0; i < 6; i++ {
		var v byte
		for _, c := range s[3*i : 3*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return b[:]
}

func frame(dst, src string, etype uint16) []byte {
	f := append(append(mac(dst), mac(src)...), byte(etype>>8), byte(etype))
	return append(f, make([]byte, 46)...)
}

func TestMACHelpers(t *testing.T) {
	m := macFromBytes(mac("02:00:0a:0b:0c:ff"))
	if got := m.String(); got != "02:00:0a:0b:0c:ff" {
		t.Fatalf("String = %q", got)
	}
	var b [6]byte
	putMAC(b[:], m)
	if !bytes.Equal(b[:], mac("02:00:0a:0b:0c:ff")) {
		t.Fatalf("putMAC = % x", b)
	}
	if m.IsGroup() || !macFromBytes(mac("ff:ff:ff:ff:ff:ff")).IsGroup() || !macFromBytes(mac("01:80:c2:00:00:0e")).IsGroup() {
		t.Fatal("IsGroup wrong")
	}
}

func TestTableLearnMoveEvict(t *testing.T) {
	tb := NewTable(3)
	a, b, c, d := MAC(0xa), MAC(0xb), MAC(0xc), MAC(0xd)
	if !tb.Learn(a, 1) || tb.Learn(a, 1) {
		t.Fatal("Learn should report a change only the first time")
	}
	if !tb.Learn(a, 2) {
		t.Fatal("moving a to port 2 is a change")
	}
	if p, ok := tb.Lookup(a); !ok || p != 2 {
		t.Fatalf("Lookup(a) = %d,%v want 2", p, ok)
	}
	tb.Learn(b, 3)
	tb.Learn(c, 4)
	tb.Learn(d, 5) // evicts a, the oldest
	if _, ok := tb.Lookup(a); ok {
		t.Fatal("a should be evicted")
	}
	if tb.Len() != 3 {
		t.Fatalf("Len = %d want 3", tb.Len())
	}
	for m, want := range map[MAC]ofp.PortNo{b: 3, c: 4, d: 5} {
		if p, ok := tb.Lookup(m); !ok || p != want {
			t.Fatalf("Lookup(%v) = %d,%v want %d", m, p, ok, want)
		}
	}
}

func TestTableForgetPort(t *testing.T) {
	tb := NewTable(4)
	tb.Learn(1, 7)
	tb.Learn(2, 8)
	tb.Learn(3, 7)
	if n := tb.ForgetPort(7); n != 2 {
		t.Fatalf("ForgetPort = %d want 2", n)
	}
	if tb.Len() != 1 {
		t.Fatalf("Len = %d want 1", tb.Len())
	}
	// Room for three more without evicting 2.
	tb.Learn(4, 1)
	tb.Learn(5, 1)
	tb.Learn(6, 1)
	if _, ok := tb.Lookup(2); !ok {
		t.Fatal("2 evicted although the table had room")
	}
	tb.Learn(9, 1) // now 2 is the oldest
	if _, ok := tb.Lookup(2); ok {
		t.Fatal("2 should be evicted")
	}
	if tb.Len() != 4 {
		t.Fatalf("Len = %d want 4", tb.Len())
	}
}

// sent is one message the recorder saw.
type sent struct {
	typ  of.Type
	body []byte
}

// recorder stands in for a controller.Switch: it encodes each message with
// netrack's own encoder at call time (the app reuses its structs after the
// call returns, as the session allows).
type recorder struct {
	msgs []sent
	fail error
}

func (r *recorder) record(t of.Type, body io.WriterTo) error {
	var buf bytes.Buffer
	if _, err := body.WriteTo(&buf); err != nil {
		return err
	}
	r.msgs = append(r.msgs, sent{t, buf.Bytes()})
	return r.fail
}

func (r *recorder) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	return r.record(of.TypeFlowMod, fm)
}

func (r *recorder) PacketOut(_ context.Context, po *ofp.PacketOut) error {
	return r.record(of.TypePacketOut, po)
}

func newApp(t testing.TB) *App {
	t.Helper()
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func decodePacketOut(t *testing.T, b []byte) *ofp.PacketOut {
	t.Helper()
	var po ofp.PacketOut
	if _, err := po.ReadFrom(bytes.NewReader(b)); err != nil {
		t.Fatalf("decode packet-out: %v", err)
	}
	return &po
}

func decodeFlowMod(t *testing.T, b []byte) *ofp.FlowMod {
	t.Helper()
	var fm ofp.FlowMod
	if _, err := fm.ReadFrom(bytes.NewReader(b)); err != nil {
		t.Fatalf("decode flow-mod: %v", err)
	}
	return &fm
}

func outPort(t *testing.T, acts ofp.Actions) ofp.PortNo {
	t.Helper()
	if len(acts) != 1 {
		t.Fatalf("want one action, got %d", len(acts))
	}
	o, ok := acts[0].(*ofp.ActionOutput)
	if !ok {
		t.Fatalf("action %T is not output", acts[0])
	}
	return o.Port
}

func TestPacketInFloodThenLearn(t *testing.T) {
	a := newApp(t)
	tb := NewTable(16)
	r := &recorder{}
	ctx := context.Background()
	h1, h2 := "02:00:00:00:00:01", "02:00:00:00:00:02"

	// h1 -> broadcast on port 1: learn h1, flood.
	pi := &controller.PacketIn{BufferID: ofp.NoBuffer, InPort: 1, Data: frame("ff:ff:ff:ff:ff:ff", h1, 0x0806)}
	if d := a.handle(ctx, r, tb, pi); d != controller.Stop {
		t.Fatalf("disposition %v want Stop", d)
	}
	if len(r.msgs) != 1 || r.msgs[0].typ != of.TypePacketOut {
		t.Fatalf("want one packet-out, got %+v", r.msgs)
	}
	po := decodePacketOut(t, r.msgs[0].body)
	if outPort(t, po.Actions) != ofp.PortFlood || po.InPort != 1 || po.Buffer != ofp.NoBuffer || !bytes.Equal(po.Data, pi.Data) {
		t.Fatalf("bad flood packet-out %+v", po)
	}

	// h2 -> h1 on port 2 (buffered by the switch): learn h2, flow-mod + packet-out by buffer id.
	r.msgs = nil
	pi = &controller.PacketIn{BufferID: 77, InPort: 2, Data: frame(h1, h2, 0x0800)}
	a.handle(ctx, r, tb, pi)
	if len(r.msgs) != 2 || r.msgs[0].typ != of.TypeFlowMod || r.msgs[1].typ != of.TypePacketOut {
		t.Fatalf("want flow-mod + packet-out, got %+v", r.msgs)
	}
	fm := decodeFlowMod(t, r.msgs[0].body)
	if fm.Command != ofp.FlowAdd || fm.Priority != 1 || fm.IdleTimeout != 60 || fm.Cookie != DefaultCookie || fm.Table != 0 || fm.Buffer != ofp.NoBuffer {
		t.Fatalf("bad flow-mod header %+v", fm)
	}
	if in := fm.Match.Field(ofp.XMTypeInPort); in == nil || in.Value.UInt32() != 2 {
		t.Fatalf("flow-mod in_port = %+v want 2", in)
	}
	if dst := fm.Match.Field(ofp.XMTypeEthDst); dst == nil || !bytes.Equal(dst.Value, mac(h1)) || dst.Mask != nil {
		t.Fatalf("flow-mod eth_dst = %+v want %s", dst, h1)
	}
	if len(fm.Instructions) != 1 {
		t.Fatalf("want one instruction, got %d", len(fm.Instructions))
	}
	apply, ok := fm.Instructions[0].(*ofp.InstructionApplyActions)
	if !ok || outPort(t, apply.Actions) != 1 {
		t.Fatalf("instruction %+v want apply-actions output:1", fm.Instructions[0])
	}
	po = decodePacketOut(t, r.msgs[1].body)
	if outPort(t, po.Actions) != 1 || po.Buffer != 77 || len(po.Data) != 0 {
		t.Fatalf("bad packet-out %+v: want output:1 by buffer 77 without data", po)
	}
	if p, ok := tb.Lookup(macFromBytes(mac(h2))); !ok || p != 2 {
		t.Fatal("h2 not learned on port 2")
	}

	// h1 -> h2 on port 1: known, flow-mod out port 2 with data.
	r.msgs = nil
	pi = &controller.PacketIn{BufferID: ofp.NoBuffer, InPort: 1, Data: frame(h2, h1, 0x0800)}
	a.handle(ctx, r, tb, pi)
	if len(r.msgs) != 2 {
		t.Fatalf("want 2 messages, got %d", len(r.msgs))
	}
	po = decodePacketOut(t, r.msgs[1].body)
	if outPort(t, po.Actions) != 2 || !bytes.Equal(po.Data, pi.Data) {
		t.Fatalf("bad packet-out %+v", po)
	}
}

func TestPacketInLLDPAndRunts(t *testing.T) {
	a := newApp(t)
	r := &recorder{}
	tb := NewTable(4)
	lldp := frame("01:80:c2:00:00:0e", "02:00:00:00:00:01", EtherTypeLLDP)
	if d := a.handle(context.Background(), r, tb, &controller.PacketIn{InPort: 1, Data: lldp}); d != controller.Continue {
		t.Fatal("LLDP must be left to other apps")
	}
	vlanLLDP := append(append(mac("01:80:c2:00:00:0e"), mac("02:00:00:00:00:01")...), 0x81, 0x00, 0, 5, 0x88, 0xcc)
	if d := a.handle(context.Background(), r, tb, &controller.PacketIn{InPort: 1, Data: vlanLLDP}); d != controller.Continue {
		t.Fatal("VLAN-tagged LLDP must be left to other apps")
	}
	if d := a.handle(context.Background(), r, tb, &controller.PacketIn{InPort: 1, Data: []byte{1, 2, 3}}); d != controller.Continue {
		t.Fatal("runt frame must be left to other apps")
	}
	if len(r.msgs) != 0 || tb.Len() != 0 {
		t.Fatalf("nothing may be sent or learned, got %d msgs, %d entries", len(r.msgs), tb.Len())
	}
}

func TestPacketInGroupSourceNotLearned(t *testing.T) {
	a := newApp(t)
	r := &recorder{}
	tb := NewTable(4)
	a.handle(context.Background(), r, tb, &controller.PacketIn{BufferID: ofp.NoBuffer, InPort: 3,
		Data: frame("02:00:00:00:00:01", "01:00:5e:00:00:01", 0x0800)})
	if tb.Len() != 0 {
		t.Fatal("a multicast source address must not be learned")
	}
}

func TestPacketInSamePortDrops(t *testing.T) {
	a := newApp(t)
	r := &recorder{}
	tb := NewTable(4)
	tb.Learn(macFromBytes(mac("02:00:00:00:00:01")), 4)
	a.handle(context.Background(), r, tb, &controller.PacketIn{BufferID: ofp.NoBuffer, InPort: 4,
		Data: frame("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800)})
	if len(r.msgs) != 0 {
		t.Fatalf("destination behind the ingress port: want no message, got %d", len(r.msgs))
	}
}

func TestPacketInSendErrorStops(t *testing.T) {
	a := newApp(t)
	r := &recorder{fail: errors.New("session closed")}
	tb := NewTable(4)
	tb.Learn(macFromBytes(mac("02:00:00:00:00:01")), 1)
	d := a.handle(context.Background(), r, tb, &controller.PacketIn{BufferID: ofp.NoBuffer, InPort: 2,
		Data: frame("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800)})
	if d != controller.Stop || len(r.msgs) != 1 {
		t.Fatalf("failed flow-mod: want Stop and no packet-out, got %v, %d msgs", d, len(r.msgs))
	}
}

func TestScratchMatchesFreshStructs(t *testing.T) {
	a, err := New(Config{IdleTimeout: 60 * time.Second, HardTimeout: 30 * time.Second, Priority: 7, Cookie: 0x1122334455667788})
	if err != nil {
		t.Fatal(err)
	}
	dst := mac("0a:0b:0c:0d:0e:0f")
	sc := a.newScratch()
	sc.flowMod(1, mac("ff:ff:ff:ff:ff:ff"), 2) // reuse must overwrite every field
	got := sc.flowMod(5, dst, 9)
	want := &ofp.FlowMod{
		Cookie: 0x1122334455667788, Command: ofp.FlowAdd, IdleTimeout: 60, HardTimeout: 30, Priority: 7,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{
			{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeInPort, Value: ofp.XMValue{0, 0, 0, 5}},
			{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthDst, Value: ofp.XMValue(dst)},
		}},
		Instructions: ofp.Instructions{&ofp.InstructionApplyActions{Actions: ofp.Actions{&ofp.ActionOutput{Port: 9}}}},
	}
	var g, w bytes.Buffer
	if _, err := got.WriteTo(&g); err != nil {
		t.Fatal(err)
	}
	want.WriteTo(&w)
	if !bytes.Equal(g.Bytes(), w.Bytes()) {
		t.Fatalf("flow-mod bytes differ:\n got % x\nwant % x", g.Bytes(), w.Bytes())
	}

	data := frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806)
	sc.packetOut(42, 1, 2, nil)
	g.Reset()
	w.Reset()
	sc.packetOut(ofp.NoBuffer, 3, ofp.PortFlood, data).WriteTo(&g)
	(&ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 3, Actions: ofp.Actions{&ofp.ActionOutput{Port: ofp.PortFlood}}, Data: data}).WriteTo(&w)
	if !bytes.Equal(g.Bytes(), w.Bytes()) {
		t.Fatalf("packet-out bytes differ:\n got % x\nwant % x", g.Bytes(), w.Bytes())
	}
	sc.release()
	if sc.po.Data != nil {
		t.Fatal("release must drop the packet data")
	}
}

func TestSetupFlowMods(t *testing.T) {
	a := newApp(t)
	r := &recorder{}
	if err := a.setup(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if len(r.msgs) != 2 {
		t.Fatalf("want 2 flow-mods, got %d", len(r.msgs))
	}
	del, miss := decodeFlowMod(t, r.msgs[0].body), decodeFlowMod(t, r.msgs[1].body)
	if del.Command != ofp.FlowDelete || del.Cookie != DefaultCookie || del.CookieMask != ^uint64(0) || del.Table != ofp.TableAll {
		t.Fatalf("bad delete %+v", del)
	}
	if miss.Command != ofp.FlowAdd || miss.Priority != 0 || len(miss.Match.Fields) != 0 {
		t.Fatalf("bad table-miss %+v", miss)
	}
	o := miss.Instructions[0].(*ofp.InstructionApplyActions).Actions[0].(*ofp.ActionOutput)
	if o.Port != ofp.PortController || o.MaxLen != ofp.ContentLenNoBuffer {
		t.Fatalf("table-miss action %+v want output:CONTROLLER max_len NO_BUFFER", o)
	}
	r.fail = errors.New("boom")
	if err := a.setup(context.Background(), r); err == nil {
		t.Fatal("setup must report a failed flow-mod")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{IdleTimeout: 70000 * time.Second}); err == nil {
		t.Fatal("idle timeout above 65535 s must fail")
	}
	a, err := New(Config{IdleTimeout: -1, HardTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if a.idle != 0 || a.hard != 10 || a.Config().TableSize != 4096 {
		t.Fatalf("idle=%d hard=%d size=%d", a.idle, a.hard, a.Config().TableSize)
	}
}

// encSwitch encodes messages into a reused buffer with the session's own
// encoders (package ofwire), like Switch.FlowMod/PacketOut do into the send
// queue, so the benchmark counts the real encoding cost.
type encSwitch struct{ buf []byte }

func (s *encSwitch) FlowMod(_ context.Context, fm *ofp.FlowMod) error {
	var err error
	s.buf, err = ofwire.AppendFlowMod(s.buf[:0], fm)
	return err
}

func (s *encSwitch) PacketOut(_ context.Context, po *ofp.PacketOut) error {
	var err error
	s.buf, err = ofwire.AppendPacketOut(s.buf[:0], po)
	return err
}

// BenchmarkPacketInKnown measures the handler for a known destination
// (flow-mod + packet-out), the common case of a controller benchmark.
func BenchmarkPacketInKnown(b *testing.B) {
	a := newApp(b)
	tb := NewTable(4096)
	sw := &encSwitch{buf: make([]byte, 0, 2048)}
	ctx := context.Background()
	const hosts = 1000
	pis := make([]*controller.PacketIn, hosts)
	for i := range pis {
		src := []byte{0x02, 0, 0, 0, byte(i >> 8), byte(i)}
		dst := []byte{0x02, 0, 0, 0, byte((i + 1) % hosts >> 8), byte((i + 1) % hosts)}
		tb.Learn(macFromBytes(src), ofp.PortNo(i%16+1))
		data := append(append(append([]byte{}, dst...), src...), 0x08, 0x00)
		pis[i] = &controller.PacketIn{BufferID: ofp.NoBuffer, InPort: ofp.PortNo(i%16 + 1), Data: append(data, make([]byte, 50)...)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.handle(ctx, sw, tb, pis[i%hosts])
	}
}

// BenchmarkPacketInFlood measures the handler for a broadcast (packet-out
// to FLOOD only).
func BenchmarkPacketInFlood(b *testing.B) {
	a := newApp(b)
	tb := NewTable(4096)
	sw := &encSwitch{buf: make([]byte, 0, 2048)}
	pi := &controller.PacketIn{BufferID: ofp.NoBuffer, InPort: 1, Data: frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.handle(context.Background(), sw, tb, pi)
	}
}

// FuzzLearningPacketIn feeds arbitrary frames and ports to the handler: it must not
// panic, must send at most a flow-mod and a packet-out, and must never
// learn a group (multicast) source address.
func FuzzLearningPacketIn(f *testing.F) {
	f.Add(frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806), uint32(1), uint32(ofp.NoBuffer))
	f.Add(frame("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800), uint32(2), uint32(5))
	f.Add([]byte{1, 2, 3}, uint32(3), uint32(0))
	a, err := New(Config{TableSize: 8})
	if err != nil {
		f.Fatal(err)
	}
	tb := NewTable(8)
	f.Fuzz(func(t *testing.T, data []byte, inPort, buffer uint32) {
		r := &recorder{}
		a.handle(context.Background(), r, tb, &controller.PacketIn{BufferID: buffer, InPort: ofp.PortNo(inPort), Data: data})
		if len(r.msgs) > 2 {
			t.Fatalf("%d messages for one packet-in", len(r.msgs))
		}
		if len(data) >= 12 {
			if src := macFromBytes(data[6:12]); src.IsGroup() {
				if _, ok := tb.Lookup(src); ok {
					t.Fatalf("group source %v learned", src)
				}
			}
		}
	})
}
