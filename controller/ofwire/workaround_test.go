package ofwire

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/netrack/openflow/ofp"
)

// Messages below are built byte by byte from the OpenFlow 1.3.5 spec
// (section numbers in comments) and the Open vSwitch Nicira extension
// layouts (nicira-ext.h), then decoded both by netrack and by ofwire.

func be16(v uint16) []byte       { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte       { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte       { return binary.BigEndian.AppendUint64(nil, v) }
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// outputAction is ofp_action_output (7.2.5.1): type 0, len 16, port,
// max_len, 6 pad bytes.
func outputAction(port uint32) []byte {
	return cat(be16(0), be16(16), be32(port), be16(0xffff), make([]byte, 6))
}

// nxResubmitTable is NXAST_RESUBMIT_TABLE (subtype 14): ofp_action_experimenter
// header (type 0xffff, len 16, experimenter 0x00002320), subtype,
// in_port (16 bit, 0xfff8 = OFPP_IN_PORT), table, 3 pad bytes.
func nxResubmitTable(table uint8) []byte {
	return cat(be16(0xffff), be16(16), be32(0x2320), be16(14), be16(0xfff8), []byte{table, 0, 0, 0})
}

// nxLearn is NXAST_LEARN (subtype 16): idle, hard, priority, cookie,
// flags, table, pad, fin_idle, fin_hard, then one flow_mod_spec copying
// NXM_OF_VLAN_TCI[0..11] (match from field), padded to 8 bytes.
func nxLearn() []byte {
	body := cat(be16(16), be16(10), be16(0), be16(0x8000), be64(0x55), be16(0), []byte{2, 0}, be16(0), be16(0),
		be16(12), be32(0x00000802), be16(0), be32(0x00000802), be16(0))
	l := 8 + len(body)
	pad := (l+7)/8*8 - l
	return cat(be16(0xffff), be16(uint16(l+pad)), be32(0x2320), body, make([]byte, pad))
}

// applyActions is OFPIT_APPLY_ACTIONS (7.2.4): type 4, len, 4 pad, actions.
func applyActions(acts ...[]byte) []byte {
	a := cat(acts...)
	return cat(be16(4), be16(uint16(8+len(a))), make([]byte, 4), a)
}

// inPortMatch is ofp_match (7.2.2) with OXM in_port (0x8000, field 0, len 4), padded to 16.
func inPortMatch(port uint32) []byte {
	return cat(be16(1), be16(12), be16(0x8000), []byte{0, 4}, be32(port), make([]byte, 4))
}

// flowStatsEntry is ofp_flow_stats (7.3.5.2).
func flowStatsEntry(table uint8, prio uint16, cookie uint64, match []byte, instrs ...[]byte) []byte {
	rest := cat(match, cat(instrs...))
	l := 48 + len(rest)
	return cat(be16(uint16(l)), []byte{table, 0}, be32(5), be32(100), be16(prio), be16(30), be16(60),
		be16(uint16(ofp.FlowFlagSendFlowRem)), make([]byte, 4), be64(cookie), be64(10), be64(1000), rest)
}

func nxFlowStatsReply() []byte {
	return cat(
		flowStatsEntry(0, 100, 1, inPortMatch(1), applyActions(nxResubmitTable(1), nxLearn(), outputAction(2))),
		flowStatsEntry(1, 0, 2, inPortMatch(2), applyActions(outputAction(1))),
		flowStatsEntry(2, 5, 3, cat(be16(1), be16(4), make([]byte, 4)), // empty match
			cat(be16(1), be16(8), []byte{3, 0, 0, 0})), // goto table 3
	)
}

// netrackFixed is the message of a test that finds netrack (v0.1.0, as
// pinned in go.mod) decoding what a workaround exists for.
const netrackFixed = "netrack fixed? drop the workaround"

// Workaround: netrack loses a flow-stats reply with a Nicira action
// (its 8-byte ActionExperimenter misreads the rest); DecodeFlowStats keeps
// every entry and every field, with the Nicira actions as raw bytes.
func TestFlowStatsWithNiciraActions(t *testing.T) {
	reply := nxFlowStatsReply()

	// netrack v0.1.0 fails on the first entry ("unknown action type").
	var nt ofp.FlowStats
	if _, err := nt.ReadFrom(bytes.NewReader(reply)); err == nil {
		t.Errorf("netrack decoded a flow-stats entry with Nicira actions without error (%d instructions): %s (DecodeFlowStats)",
			len(nt.Instructions), netrackFixed)
	}

	fs, err := DecodeFlowStats(reply)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 3 {
		t.Fatalf("got %d entries, want 3", len(fs))
	}
	e := fs[0]
	if e.Table != 0 || e.DurationSec != 5 || e.DurationNSec != 100 || e.Priority != 100 || e.IdleTimeout != 30 ||
		e.HardTimeout != 60 || e.Flags != ofp.FlowFlagSendFlowRem || e.Cookie != 1 || e.PacketCount != 10 || e.ByteCount != 1000 {
		t.Fatalf("entry 0 fields = %+v", e)
	}
	if len(e.Match.Fields) != 1 || e.Match.Fields[0].Type != ofp.XMTypeInPort || !bytes.Equal(e.Match.Fields[0].Value, be32(1)) {
		t.Fatalf("entry 0 match = %+v", e.Match)
	}
	apply, ok := e.Instructions[0].(*ofp.InstructionApplyActions)
	if !ok || len(apply.Actions) != 3 {
		t.Fatalf("entry 0 instructions = %#v", e.Instructions)
	}
	rs, ok := apply.Actions[0].(*ExperimenterAction)
	if !ok || rs.Experimenter != 0x2320 || rs.Subtype != 14 || !bytes.Equal(rs.Raw, nxResubmitTable(1)) {
		t.Fatalf("resubmit = %#v", apply.Actions[0])
	}
	ln, ok := apply.Actions[1].(*ExperimenterAction)
	if !ok || ln.Subtype != 16 || !bytes.Equal(ln.Raw, nxLearn()) {
		t.Fatalf("learn = %#v", apply.Actions[1])
	}
	if out, ok := apply.Actions[2].(*ofp.ActionOutput); !ok || out.Port != 2 {
		t.Fatalf("output = %#v", apply.Actions[2])
	}
	if fs[1].Priority != 0 || fs[1].Cookie != 2 || fs[2].Cookie != 3 {
		t.Fatalf("later entries = %+v %+v", fs[1], fs[2])
	}
	if g, ok := fs[2].Instructions[0].(*ofp.InstructionGotoTable); !ok || g.Table != 3 {
		t.Fatalf("entry 2 instructions = %#v", fs[2].Instructions)
	}
	if fs[0].Duration().Nanoseconds() != 5e9+100 {
		t.Fatal(fs[0].Duration())
	}
	// Byte-exact re-encoding, Nicira actions included.
	var re []byte
	for i := range fs {
		if re, err = AppendFlowStats(re, &fs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(re, reply) {
		t.Fatalf("re-encoded reply differs\n got %x\nwant %x", re, reply)
	}
	// And through netrack's Instructions.WriteTo too.
	var nb bytes.Buffer
	if _, err := fs[0].Instructions.WriteTo(&nb); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(nb.Bytes(), applyActions(nxResubmitTable(1), nxLearn(), outputAction(2))) {
		t.Fatal("netrack WriteTo of decoded instructions differs")
	}
}

// Workaround: netrack's GroupDescStats.ReadFrom drops the buckets.
func TestGroupDescBuckets(t *testing.T) {
	bucket := func(weight uint16, acts ...[]byte) []byte {
		a := cat(acts...)
		return cat(be16(uint16(16+len(a))), be16(weight), be32(uint32(ofp.PortAny)), be32(uint32(ofp.GroupAny)), make([]byte, 4), a)
	}
	buckets := cat(bucket(50, outputAction(1)), bucket(70, nxResubmitTable(2), outputAction(2)))
	// ofp_group_desc (7.3.5.10): length, type, pad, group_id, buckets.
	entry := cat(be16(uint16(8+len(buckets))), []byte{byte(ofp.GroupTypeSelect), 0}, be32(5), buckets)
	reply := cat(entry, cat(be16(8), []byte{byte(ofp.GroupTypeAll), 0}, be32(6)))

	// netrack v0.1.0 on a group with standard actions only: no error,
	// no buckets.
	std := cat(bucket(50, outputAction(1)), bucket(50, outputAction(2)))
	var nt ofp.GroupDescStats
	_, nerr := nt.ReadFrom(bytes.NewReader(cat(be16(uint16(8+len(std))), []byte{1, 0}, be32(5), std)))
	if len(nt.Buckets) != 0 {
		t.Errorf("netrack decoded %d buckets of a 2-bucket group (err %v): %s (DecodeGroupDescs)", len(nt.Buckets), nerr, netrackFixed)
	}

	gd, err := DecodeGroupDescs(reply)
	if err != nil {
		t.Fatal(err)
	}
	if len(gd) != 2 || gd[0].Type != ofp.GroupTypeSelect || gd[0].Group != 5 || len(gd[0].Buckets) != 2 || gd[1].Group != 6 || len(gd[1].Buckets) != 0 {
		t.Fatalf("groups = %+v", gd)
	}
	b1 := gd[0].Buckets[1]
	if b1.Weight != 70 || b1.WatchPort != ofp.PortAny || b1.WatchGroup != ofp.GroupAny || len(b1.Actions) != 2 {
		t.Fatalf("bucket 1 = %+v", b1)
	}
	if _, ok := b1.Actions[0].(*ExperimenterAction); !ok {
		t.Fatalf("bucket action 0 = %T", b1.Actions[0])
	}
	// netrack encodes the decoded buckets back to the same bytes.
	var nb bytes.Buffer
	for i := range gd[0].Buckets {
		if _, err := gd[0].Buckets[i].WriteTo(&nb); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(nb.Bytes(), buckets) {
		t.Fatalf("buckets re-encode differs\n got %x\nwant %x", nb.Bytes(), buckets)
	}
}

// Workaround: netrack's MeterConfig.ReadFrom drops the bands.
func TestMeterConfigBands(t *testing.T) {
	// ofp_meter_band_drop / dscp_remark / experimenter (7.3.4.4).
	drop := cat(be16(1), be16(16), be32(1000), be32(100), make([]byte, 4))
	dscp := cat(be16(2), be16(16), be32(2000), be32(200), []byte{1, 0, 0, 0})
	exp := cat(be16(0xffff), be16(24), be32(3000), be32(300), be32(0x2320), be32(0xabcdef01), be32(0))
	bands := cat(drop, dscp, exp)
	// ofp_meter_config (7.3.5.13): length, flags, meter_id, bands.
	entry := cat(be16(uint16(8+len(bands))), be16(uint16(ofp.MeterFlagKBitPerSec|ofp.MeterFlagBurst)), be32(3), bands)

	// netrack v0.1.0 on a 1-band meter: no error, no bands.
	var nt ofp.MeterConfig
	_, nerr := nt.ReadFrom(bytes.NewReader(cat(be16(24), be16(1), be32(3), drop)))
	if len(nt.Bands) != 0 {
		t.Errorf("netrack decoded %d bands of a 1-band meter (err %v): %s (DecodeMeterConfigs)", len(nt.Bands), nerr, netrackFixed)
	}

	mc, err := DecodeMeterConfigs(cat(entry, cat(be16(8), be16(0), be32(4))))
	if err != nil {
		t.Fatal(err)
	}
	if len(mc) != 2 || mc[0].Meter != 3 || mc[0].Flags != ofp.MeterFlagKBitPerSec|ofp.MeterFlagBurst || len(mc[0].Bands) != 3 || mc[1].Meter != 4 {
		t.Fatalf("meters = %+v", mc)
	}
	if d, ok := mc[0].Bands[0].(*ofp.MeterBandDrop); !ok || d.Rate != 1000 || d.BurstSize != 100 {
		t.Fatalf("band 0 = %#v", mc[0].Bands[0])
	}
	if d, ok := mc[0].Bands[1].(*ofp.MeterBandDSCPRemark); !ok || d.Rate != 2000 || d.PrecLevel != 1 {
		t.Fatalf("band 1 = %#v", mc[0].Bands[1])
	}
	if r, ok := mc[0].Bands[2].(*RawMeterBand); !ok || !bytes.Equal(r.Raw, exp) {
		t.Fatalf("band 2 = %#v", mc[0].Bands[2])
	}
	var nb bytes.Buffer
	if _, err := mc[0].Bands.WriteTo(&nb); err != nil || !bytes.Equal(nb.Bytes(), bands) {
		t.Fatalf("bands re-encode differs (%v)\n got %x\nwant %x", err, nb.Bytes(), bands)
	}
}

// Workaround: netrack's Hello.ReadFrom drops the version bitmap.
func TestHelloVersionBitmap(t *testing.T) {
	// ofp_hello_elem_versionbitmap (7.5.1): type 1, length 4+4n, bitmaps,
	// padded to 8. Here: an unknown element first, then a bitmap with two
	// words (versions 1, 4, 6 and 33).
	unknown := cat(be16(0x7777), be16(6), []byte{9, 9}, make([]byte, 2))
	bitmap := cat(be16(1), be16(12), be32(1<<1|1<<4|1<<6), be32(1<<1), make([]byte, 4))
	body := cat(unknown, bitmap)

	// netrack v0.1.0 on a bitmap-only hello: no element (HelloElems.ReadFrom
	// has a value receiver, so what it appends is lost) and an error.
	var nh ofp.Hello
	_, nerr := nh.ReadFrom(bytes.NewReader(bitmap))
	for _, e := range nh.Elements {
		if vb, ok := e.(*ofp.HelloElemVersionBitmap); ok && len(vb.Bitmaps) > 0 && vb.Bitmaps[0] == 1<<1|1<<4|1<<6 {
			t.Errorf("netrack decoded the version bitmap %#x (err %v): %s (DecodeHello, NegotiateVersion)", vb.Bitmaps, nerr, netrackFixed)
		}
	}

	h, err := DecodeHello(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.Bitmap, []uint32{1<<1 | 1<<4 | 1<<6, 1 << 1}) {
		t.Fatalf("bitmap = %#x", h.Bitmap)
	}
	for v, want := range map[uint8]bool{1: true, 4: true, 6: true, 33: true, 2: false, 5: false, 32: false, 200: false} {
		if h.Supports(v) != want {
			t.Errorf("Supports(%d) = %v", v, !want)
		}
	}
	if err := NegotiateVersion(6, body); err != nil {
		t.Errorf("1.0+1.3+1.5 bitmap rejected: %v", err)
	}
	if err := NegotiateVersion(6, cat(be16(1), be16(8), be32(1<<5|1<<6))); err == nil {
		t.Error("1.4+1.5 bitmap accepted")
	}
	if err := NegotiateVersion(1, nil); err == nil {
		t.Error("1.0 without bitmap accepted")
	}
	if err := NegotiateVersion(5, nil); err != nil {
		t.Errorf("1.4 header without bitmap rejected: %v", err)
	}
	if _, err := DecodeHello(cat(be16(1), be16(40), be32(0))); err == nil {
		t.Error("element past the body accepted")
	}
	if _, err := DecodeHello(cat(be16(1), be16(2), be32(0))); err == nil {
		t.Error("element length 2 accepted")
	}
}

// Workaround: netrack panics decoding OFPAT_POP_PBB (its ActionPopPBB has
// no ReadFrom); DecodeActions keeps it as a RawAction.
func TestPopPBBAction(t *testing.T) {
	popPBB := cat(be16(27), be16(8), make([]byte, 4))
	// netrack v0.1.0 panics ("*ofp.ActionPopPBB is not io.ReaderFrom").
	panicked := func() (p bool) {
		defer func() { p = recover() != nil }()
		var a ofp.Actions
		_, _ = a.ReadFrom(bytes.NewReader(popPBB))
		return false
	}()
	if !panicked {
		t.Errorf("netrack decoded OFPAT_POP_PBB without panicking: %s (DecodeActions' RawAction)", netrackFixed)
	}
	acts, err := DecodeActions(cat(popPBB, outputAction(3)))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := acts[0].(*RawAction); !ok || r.ActionType != 27 {
		t.Fatalf("pop pbb = %#v", acts[0])
	}
	if o, ok := acts[1].(*ofp.ActionOutput); !ok || o.Port != 3 {
		t.Fatalf("output = %#v", acts[1])
	}
}

func TestDecodeActionsErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"length 4":       cat(be16(0), be16(4)),
		"length not x8":  cat(be16(0), be16(12), make([]byte, 8)),
		"past the end":   cat(be16(0), be16(24), make([]byte, 12)),
		"short trailing": cat(outputAction(1), []byte{0, 0}),
		"set-field oxm":  cat(be16(25), be16(8), be16(0x8000), []byte{0, 40}),
	} {
		if _, err := DecodeActions(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecodeFlowStatsErrors(t *testing.T) {
	good := nxFlowStatsReply()
	bad := map[string][]byte{
		"truncated":        good[:len(good)-3],
		"short entry":      good[:20],
		"length too big":   append(be16(0xffff), good[2:]...),
		"length too small": append(be16(40), good[2:]...),
	}
	for name, b := range bad {
		if _, err := DecodeFlowStats(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// roundTripFlowStats checks decode -> encode -> decode is stable.
func roundTripFlowStats(t *testing.T, b []byte) {
	fs, err := DecodeFlowStats(b)
	if err != nil {
		return
	}
	var re []byte
	for i := range fs {
		if re, err = AppendFlowStats(re, &fs[i]); err != nil {
			return // entry grew past 65535 through padding normalisation
		}
	}
	fs2, err := DecodeFlowStats(re)
	if err != nil {
		t.Fatalf("re-encoded flow stats do not decode: %v\n%x", err, re)
	}
	var re2 []byte
	for i := range fs2 {
		re2, _ = AppendFlowStats(re2, &fs2[i])
	}
	if !bytes.Equal(re, re2) {
		t.Fatalf("encoding not stable\n%x\n%x", re, re2)
	}
}

func FuzzDecodeFlowStats(f *testing.F) {
	f.Add(nxFlowStatsReply())
	f.Add(flowStatsEntry(0, 1, 1, inPortMatch(1)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTripFlowStats(t, b)
		_, _ = DecodeGroupDescs(b)
		_, _ = DecodeMeterConfigs(b)
		_, _ = DecodeInstructions(b)
		_, _ = DecodePorts(b)
		_, _ = DecodeFlowRemoved(b)
		_, _, _ = DecodePortStatus(b)
	})
}

func FuzzDecodeHello(f *testing.F) {
	f.Add(uint8(4), cat(be16(1), be16(8), be32(1<<4)))
	f.Add(uint8(6), cat(be16(0x7777), be16(6), []byte{9, 9}, make([]byte, 2), be16(1), be16(12), be32(0x52), be32(2), make([]byte, 4)))
	f.Add(uint8(1), []byte{})
	f.Fuzz(func(t *testing.T, v uint8, body []byte) {
		h, err := DecodeHello(body)
		nerr := NegotiateVersion(v, body)
		if err != nil {
			if nerr == nil {
				t.Fatal("negotiation succeeded on an undecodable hello")
			}
			return
		}
		want := v >= 4
		if h.Bitmap != nil {
			want = h.Supports(4)
		}
		if (nerr == nil) != want {
			t.Fatalf("NegotiateVersion(%d, bitmap %#x) = %v, want ok=%v", v, h.Bitmap, nerr, want)
		}
	})
}

func FuzzDecodeMatch(f *testing.F) {
	f.Add(inPortMatch(1))
	f.Add(cat(be16(1), be16(4), make([]byte, 4)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := DecodeMatch(b, nil)
		if err != nil {
			return
		}
		if n > len(b) || n%8 != 0 {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		// Compare with netrack when both decode.
		var nm ofp.Match
		if _, err := nm.ReadFrom(bytes.NewReader(b)); err == nil {
			if !reflect.DeepEqual(normMatch(m), normMatch(nm)) {
				t.Fatalf("DecodeMatch %+v != netrack %+v", m, nm)
			}
		}
	})
}

func TestDecodeFlowRemovedMatchesNetrack(t *testing.T) {
	body := cat(be64(0xc0ffee), be16(7), []byte{1, 2}, be32(12), be32(34), be16(60), be16(90), be64(5), be64(500),
		inPortMatch(9))
	got, err := DecodeFlowRemoved(body)
	if err != nil {
		t.Fatal(err)
	}
	var want ofp.FlowRemoved
	if _, err := want.ReadFrom(bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	got.Match, want.Match = normMatch(got.Match), normMatch(want.Match)
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("DecodeFlowRemoved = %+v, netrack %+v", *got, want)
	}
	if _, err := DecodeFlowRemoved(body[:30]); err == nil {
		t.Fatal("short flow removed accepted")
	}
}

func TestDecodePortTrimsName(t *testing.T) {
	b := cat(be32(3), make([]byte, 4), []byte{2, 0, 0, 0, 0, 3}, make([]byte, 2), []byte("skc-port\x00\x00\x00\x00\x00\x00\x00\x00"),
		be32(1), be32(4), be32(0x800), be32(0), be32(0), be32(0), be32(1000), be32(2000))
	p, err := DecodePort(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.PortNo != 3 || p.Name != "skc-port" || p.HWAddr.String() != "02:00:00:00:00:03" || p.Config != 1 || p.State != 4 ||
		p.Curr != 0x800 || p.CurrSpeed != 1000 || p.MaxSpeed != 2000 {
		t.Fatalf("port = %+v", p)
	}
	if _, err := DecodePorts(b[:63]); err == nil {
		t.Fatal("63-byte port list accepted")
	}
	// AppendPort writes the same bytes back, and agrees with netrack's
	// WriteTo (which pads the name with NULs).
	if re := AppendPort(nil, &p); !bytes.Equal(re, b) {
		t.Fatalf("AppendPort\n got %x\nwant %x", re, b)
	}
	var nb bytes.Buffer
	if _, err := p.WriteTo(&nb); err != nil || !bytes.Equal(nb.Bytes(), b) {
		t.Fatalf("netrack WriteTo (%v)\n got %x\nwant %x", err, nb.Bytes(), b)
	}
	// No hw_addr and a long name: still 64 bytes, the name NUL-terminated.
	short := AppendPort(nil, &ofp.Port{PortNo: 7, Name: "a-very-long-port-name"})
	q, err := DecodePort(short)
	if len(short) != PortLen || err != nil || q.PortNo != 7 || q.Name != "a-very-long-por" {
		t.Fatalf("short port: %d bytes, %+v, %v", len(short), q, err)
	}
}
