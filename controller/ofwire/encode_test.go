package ofwire

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/netrack/openflow/ofp"
)

// consumer turns fuzz bytes into values.
type consumer struct{ b []byte }

func (c *consumer) u8() uint8 {
	if len(c.b) == 0 {
		return 0
	}
	v := c.b[0]
	c.b = c.b[1:]
	return v
}
func (c *consumer) u16() uint16 { return uint16(c.u8())<<8 | uint16(c.u8()) }
func (c *consumer) u32() uint32 { return uint32(c.u16())<<16 | uint32(c.u16()) }
func (c *consumer) u64() uint64 { return uint64(c.u32())<<32 | uint64(c.u32()) }
func (c *consumer) bytes(max int) []byte {
	n := int(c.u8()) % (max + 1)
	out := make([]byte, n)
	for i := range out {
		out[i] = c.u8()
	}
	return out
}

func (c *consumer) xm() ofp.XM {
	xm := ofp.XM{Class: ofp.XMClass(c.u16()), Type: ofp.XMType(c.u8() & 0x7f), Value: c.bytes(16)}
	if c.u8()%2 == 1 {
		xm.Mask = c.bytes(16)
	}
	return xm
}

func (c *consumer) match() ofp.Match {
	m := ofp.Match{Type: ofp.MatchTypeXM}
	if c.u8()%8 == 0 {
		m.Type = ofp.MatchType(c.u16())
	}
	for n := c.u8() % 5; n > 0; n-- {
		m.Fields = append(m.Fields, c.xm())
	}
	return m
}

func (c *consumer) action() ofp.Action {
	switch c.u8() % 17 {
	case 0:
		return &ofp.ActionOutput{Port: ofp.PortNo(c.u32()), MaxLen: c.u16()}
	case 1:
		return &ofp.ActionSetField{Field: c.xm()}
	case 2:
		return &ofp.ActionGroup{Group: ofp.Group(c.u32())}
	case 3:
		return &ofp.ActionSetQueue{QueueID: ofp.Queue(c.u32())}
	case 4:
		return &ofp.ActionPushVLAN{EtherType: c.u16()}
	case 5:
		return &ofp.ActionPopVLAN{}
	case 6:
		return &ofp.ActionPushMPLS{EtherType: c.u16()}
	case 7:
		return &ofp.ActionPopMPLS{EtherType: c.u16()}
	case 8:
		return &ofp.ActionPushPBB{EtherType: c.u16()}
	case 9:
		return &ofp.ActionCopyTTLOut{}
	case 10:
		return &ofp.ActionCopyTTLIn{}
	case 11:
		return &ofp.ActionSetMPLSTTL{TTL: c.u8()}
	case 12:
		return &ofp.ActionDecMPLSTTL{}
	case 13:
		return &ofp.ActionSetNetworkTTL{TTL: c.u8()}
	case 14:
		return &ofp.ActionDecNetworkTTL{}
	case 15:
		return &ofp.ActionExperimenter{Experimenter: c.u32()}
	default:
		raw := append([]byte{0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20}, 0, 1, 0, 0, 0, 0, 0, 0)
		return &ExperimenterAction{Experimenter: 0x2320, Subtype: 1, Raw: raw}
	}
}

func (c *consumer) actions() ofp.Actions {
	var a ofp.Actions
	for n := c.u8() % 6; n > 0; n-- {
		a = append(a, c.action())
	}
	return a
}

func (c *consumer) instruction() ofp.Instruction {
	switch c.u8() % 6 {
	case 0:
		return &ofp.InstructionApplyActions{Actions: c.actions()}
	case 1:
		return &ofp.InstructionWriteActions{Actions: c.actions()}
	case 2:
		return &ofp.InstructionGotoTable{Table: ofp.Table(c.u8())}
	case 3:
		return &ofp.InstructionWriteMetadata{Metadata: c.u64(), MetadataMask: c.u64()}
	case 4:
		return &ofp.InstructionClearActions{}
	default:
		return &ofp.InstructionMeter{Meter: ofp.Meter(c.u32())}
	}
}

func (c *consumer) flowMod() *ofp.FlowMod {
	fm := &ofp.FlowMod{
		Cookie: c.u64(), CookieMask: c.u64(), Table: ofp.Table(c.u8()), Command: ofp.FlowModCommand(c.u8()),
		IdleTimeout: c.u16(), HardTimeout: c.u16(), Priority: c.u16(), Buffer: c.u32(),
		OutPort: ofp.PortNo(c.u32()), OutGroup: ofp.Group(c.u32()), Flags: ofp.FlowModFlag(c.u16()),
		Match: c.match(),
	}
	for n := c.u8() % 4; n > 0; n-- {
		fm.Instructions = append(fm.Instructions, c.instruction())
	}
	return fm
}

func (c *consumer) packetOut() *ofp.PacketOut {
	return &ofp.PacketOut{Buffer: c.u32(), InPort: ofp.PortNo(c.u32()), Actions: c.actions(), Data: c.bytes(200)}
}

func checkFlowMod(t testing.TB, fm *ofp.FlowMod) {
	t.Helper()
	var want bytes.Buffer
	if _, err := fm.WriteTo(&want); err != nil {
		t.Fatalf("netrack WriteTo: %v", err)
	}
	got, err := AppendFlowMod(nil, fm)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("AppendFlowMod differs from netrack\n got %x\nwant %x", got, want.Bytes())
	}
}

func checkPacketOut(t testing.TB, po *ofp.PacketOut) {
	t.Helper()
	var want bytes.Buffer
	if _, err := po.WriteTo(&want); err != nil {
		t.Fatalf("netrack WriteTo: %v", err)
	}
	got, err := AppendPacketOut(nil, po)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("AppendPacketOut differs from netrack\n got %x\nwant %x", got, want.Bytes())
	}
}

// learningSwitchFlowMod is what a learning switch sends per packet-in.
func learningSwitchFlowMod() *ofp.FlowMod {
	return &ofp.FlowMod{
		Command: ofp.FlowAdd, Priority: 10, IdleTimeout: 60, Buffer: ofp.NoBuffer,
		OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Flags: ofp.FlowFlagSendFlowRem,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{
			{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeInPort, Value: ofp.XMValue{0, 0, 0, 1}},
			{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthDst, Value: ofp.XMValue{2, 0, 0, 0, 0, 2}},
			{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthSrc, Value: ofp.XMValue{2, 0, 0, 0, 0, 1},
				Mask: ofp.XMValue{0xff, 0xff, 0, 0, 0, 0}},
		}},
		Instructions: ofp.Instructions{&ofp.InstructionApplyActions{Actions: ofp.Actions{
			&ofp.ActionSetField{Field: ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeVlanID, Value: ofp.XMValue{0x10, 0x05}}},
			&ofp.ActionOutput{Port: 2, MaxLen: 0xffff},
		}}, &ofp.InstructionGotoTable{Table: 3}},
	}
}

func TestAppendFlowModMatchesNetrack(t *testing.T) {
	checkFlowMod(t, learningSwitchFlowMod())
	checkFlowMod(t, &ofp.FlowMod{})
	checkFlowMod(t, &ofp.FlowMod{Command: ofp.FlowDelete, Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Instructions: ofp.Instructions{&ofp.InstructionClearActions{}, &ofp.InstructionMeter{Meter: 7},
			&ofp.InstructionWriteMetadata{Metadata: 1, MetadataMask: 3},
			&ofp.InstructionWriteActions{Actions: ofp.Actions{&ofp.ActionGroup{Group: 4}, &ofp.ActionDecNetworkTTL{}}}}})
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		checkFlowMod(t, (&consumer{b: b}).flowMod())
	}
}

func TestAppendPacketOutMatchesNetrack(t *testing.T) {
	checkPacketOut(t, &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Actions: ofp.Actions{&ofp.ActionOutput{Port: ofp.PortFlood}}, Data: []byte("frame")})
	checkPacketOut(t, &ofp.PacketOut{})
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		checkPacketOut(t, (&consumer{b: b}).packetOut())
	}
}

func FuzzAppendFlowModMatchesNetrack(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{1, 2, 3, 0xff}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFlowMod(t, (&consumer{b: b}).flowMod())
	})
}

func FuzzAppendPacketOutMatchesNetrack(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{7, 0, 0xff}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkPacketOut(t, (&consumer{b: b}).packetOut())
	})
}

// TestDecodeMatchMatchesNetrack compares DecodeMatch with
// ofp.Match.ReadFrom on well-formed matches.
func TestDecodeMatchMatchesNetrack(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		m := (&consumer{b: b}).match()
		wire := AppendMatch(nil, &m)
		var want ofp.Match
		if _, err := want.ReadFrom(bytes.NewReader(wire)); err != nil {
			t.Fatal(err)
		}
		got, n, err := DecodeMatch(wire, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(wire) {
			t.Fatalf("consumed %d of %d", n, len(wire))
		}
		if !reflect.DeepEqual(normMatch(got), normMatch(want)) {
			t.Fatalf("DecodeMatch = %+v, netrack %+v", got, want)
		}
	}
}

// normMatch maps empty and nil slices to the same value for comparison.
func normMatch(m ofp.Match) ofp.Match {
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

func TestAppendHelloAndNegotiate(t *testing.T) {
	msg := AppendHello(nil, 7)
	want := []byte{4, 0, 0, 16, 0, 0, 0, 7, 0, 1, 0, 8, 0, 0, 0, 0x10}
	if !bytes.Equal(msg, want) {
		t.Fatalf("hello = %x, want %x", msg, want)
	}
	h, err := DecodeHello(msg[8:])
	if err != nil || !h.Supports(4) || len(h.Bitmap) != 1 {
		t.Fatalf("DecodeHello = %+v %v", h, err)
	}
}

func TestFinishMessageLimit(t *testing.T) {
	b := AppendHeader(nil, 14, 0, 1)
	b = append(b, make([]byte, 70000)...)
	if err := FinishMessage(b); err == nil {
		t.Fatal("70008-byte message accepted")
	}
	b = b[:100]
	if err := FinishMessage(b); err != nil || binary.BigEndian.Uint16(b[2:]) != 100 {
		t.Fatal(err)
	}
}

func BenchmarkAppendFlowMod(b *testing.B) {
	fm := learningSwitchFlowMod()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendFlowMod(buf[:0], fm)
	}
}

func BenchmarkNetrackFlowModWriteTo(b *testing.B) {
	fm := learningSwitchFlowMod()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		_, _ = fm.WriteTo(&buf)
	}
}
