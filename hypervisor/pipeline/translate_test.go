package pipeline

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

func views(t *testing.T) (*View, *View) {
	t.Helper()
	m := testModel()
	a, err := NewView(m.Tenants[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewView(m.Tenants[1])
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func addFM(table ofp.Table, prio uint16, cookie uint64, match []ofp.XM, ins ...ofp.Instruction) *ofp.FlowMod {
	return &ofp.FlowMod{Command: ofp.FlowAdd, Table: table, Priority: prio, Cookie: cookie, Buffer: ofp.NoBuffer,
		OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: match}, Instructions: ins}
}

func mustClone(t *testing.T, acts ...ofp.Action) *ofwire.ExperimenterAction {
	t.Helper()
	c, err := Clone(acts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func metadataSet(v uint64) ofp.Action {
	return SetField(basic(ofp.XMTypeMetadata, binary.BigEndian.AppendUint64(nil, v), nil))
}

func wantOFPError(t *testing.T, err error, typ ofp.ErrType, code ofp.ErrCode) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *pipeline.Error", err)
	}
	if e.Type != typ || e.Code != code {
		t.Fatalf("error %v: type/code %d/%d, want %d/%d", err, e.Type, e.Code, typ, code)
	}
}

func TestTranslateUnicastOutput(t *testing.T) {
	a, _ := views(t)
	base := uint64(t1ID)<<48 | 1
	mask := MetaTenantMask | MetaSwitchMask | MetaGroup
	// eth_dst unicast: only the group-bit-0 copy can ever match.
	fm := addFM(0, 100, 0x42, []ofp.XM{EthDst(mac("00:00:00:00:00:02"))}, Apply(Output(2)))
	es, err := AddEntries(a, vsA, fm)
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{Table: 10, Priority: 100, Cookie: 0x0200000000000042,
		Match:        []ofp.XM{Metadata(base, mask), EthDst(mac("00:00:00:00:00:02"))},
		Instructions: ofp.Instructions{Apply(mustClone(t, SetField(EthDst(mac("02:00:00:00:00:02"))), Resubmit(20)))}}
	if len(es) != 1 || !es[0].Equal(&want) {
		t.Fatalf("entries = %v\nwant %s", es, want.String())
	}
	// No eth_dst: both copies, the group copy addressing GroupMAC.
	fm = addFM(0, 100, 0x42, []ofp.XM{EthType(0x0800)}, Apply(Output(2)))
	es, err = AddEntries(a, vsA, fm)
	if err != nil {
		t.Fatal(err)
	}
	wants := []Entry{
		{Table: 10, Priority: 100, Cookie: 0x0200000000000042,
			Match:        []ofp.XM{Metadata(base, mask), EthType(0x0800)},
			Instructions: ofp.Instructions{Apply(mustClone(t, SetField(EthDst(mac("02:00:00:00:00:02"))), Resubmit(20)))}},
		{Table: 10, Priority: 100, Cookie: 0x0200000000000042,
			Match:        []ofp.XM{Metadata(base|MetaGroup, mask), EthType(0x0800)},
			Instructions: ofp.Instructions{Apply(mustClone(t, SetField(EthDst(mac("02:00:80:00:00:02"))), Resubmit(20)))}},
	}
	if len(es) != 2 {
		t.Fatalf("%d entries, want 2 (group bit 0 and 1)", len(es))
	}
	for i := range wants {
		if !es[i].Equal(&wants[i]) {
			t.Errorf("entry %d = %s\nwant       %s", i, es[i].String(), wants[i].String())
		}
	}
	// Translate gives the same as ADD flow-mods.
	fms, err := Translate(a, vsA, fm)
	if err != nil || len(fms) != 2 || fms[0].Command != ofp.FlowAdd || fms[0].Cookie != 0x0200000000000042 {
		t.Fatalf("Translate = %v, %v", fms, err)
	}
}

func TestGroupCopies(t *testing.T) {
	cases := []struct {
		match []ofp.XM
		want  []bool
	}{
		{nil, []bool{false, true}},
		{[]ofp.XM{EthDst(mac("00:00:00:00:00:01"))}, []bool{false}},
		{[]ofp.XM{EthDst(addr.Broadcast)}, []bool{true}},
		{[]ofp.XM{EthDstMasked(mac("01:00:00:00:00:00"), mac("01:00:00:00:00:00"))}, []bool{true}},
		{[]ofp.XM{EthDstMasked(mac("00:00:00:00:00:00"), mac("01:00:00:00:00:00"))}, []bool{false}},
		{[]ofp.XM{EthDstMasked(mac("00:00:00:00:00:01"), mac("00:00:00:00:00:ff"))}, []bool{false, true}},
	}
	for _, c := range cases {
		got := (&vmatch{rest: c.match}).groupCopies()
		if len(got) != len(c.want) || got[0] != c.want[0] {
			t.Errorf("groupCopies(%v) = %v, want %v", c.match, got, c.want)
		}
	}
}

func TestTranslateMatchRewrites(t *testing.T) {
	a, _ := views(t)
	fm := addFM(1, 0, 7, []ofp.XM{InPort(3), EthSrc(mac("00:00:00:00:00:03")), EthType(0x0800)},
		Apply(Output(uint32(ofp.PortController))))
	es, err := AddEntries(a, vsA, fm)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 {
		t.Fatalf("%d entries", len(es))
	}
	e := es[0]
	if e.Table != 11 || e.Priority != 1 {
		t.Errorf("table %d priority %d, want 11 and 1 (tenant priority 0 stays above the table-miss)", e.Table, e.Priority)
	}
	probe := Entry{Table: 11, Priority: 1, Match: []ofp.XM{
		Metadata(uint64(t1ID)<<48|3<<32|1, MetaTenantMask|MetaVPortMask|MetaGroup|MetaSwitchMask),
		EthSrc(mac("02:00:00:00:00:03")), EthType(0x0800)}}
	if e.Key() != probe.Key() {
		t.Errorf("match = %s\nwant    %s", e.String(), probe.String())
	}
	// A source that is not one of the tenant's hosts can never match.
	fm.Match.Fields[1] = EthSrc(mac("00:00:00:00:00:09"))
	if es, err := AddEntries(a, vsA, fm); err != nil || len(es) != 0 {
		t.Errorf("unknown eth_src: %d entries, %v; want none, no error", len(es), err)
	}
}

func TestTranslateFloodAndLinks(t *testing.T) {
	_, b := views(t)
	// t2 ports: b/1=1 (h1), b/2=2 (h2), b/10=3 (link to c/10=5), c/1=4 (h3).
	fm := addFM(0, 50, 1, []ofp.XM{EthDst(addr.Broadcast)}, Apply(Output(uint32(ofp.PortFlood))))
	es, err := AddEntries(b, vsB, fm)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3 in-ports x the group copy", len(es))
	}
	toHost := func(h addr.HostIndex, group bool) ofp.Action {
		d := addr.FabricMAC(t2ID, h)
		if group {
			d = addr.GroupMAC(t2ID, h)
		}
		return mustClone(t, SetField(EthDst(d)), Resubmit(20))
	}
	toLink := func(group bool) ofp.Action {
		return mustClone(t, metadataSet(MetadataValue(t2ID, 5, 2, group)), Resubmit(10))
	}
	mask := MetaTenantMask | MetaVPortMask | MetaGroup | MetaSwitchMask
	want := []Entry{}
	for _, in := range []uint16{1, 2, 3} {
		for _, g := range []bool{true} {
			var acts ofp.Actions
			for _, p := range []uint16{1, 2, 3} {
				switch {
				case p == in:
				case p == 3:
					acts = append(acts, toLink(g))
				default:
					acts = append(acts, toHost(addr.HostIndex(p), g))
				}
			}
			want = append(want, Entry{Table: 10, Priority: 50, Cookie: TenantCookie(t2ID, 1),
				Match:        []ofp.XM{Metadata(MetadataValue(t2ID, in, 1, g), mask), EthDst(addr.Broadcast)},
				Instructions: ofp.Instructions{Apply(acts...)}})
		}
	}
	for i := range want {
		if !es[i].Equal(&want[i]) {
			t.Errorf("entry %d = %s\nwant       %s", i, es[i].String(), want[i].String())
		}
	}
	// With in_port given: one variant pair, the in-port left out.
	fm.Match.Fields = append(fm.Match.Fields, InPort(10))
	es, err = AddEntries(b, vsB, fm)
	if err != nil || len(es) != 1 {
		t.Fatalf("with in_port: %d entries, %v", len(es), err)
	}
	if !es[0].Equal(&want[2]) {
		t.Errorf("with in_port=10: %s", es[0].String())
	}
	// Output to a link port: per in-port variants, and on vsC the link
	// leads back to b/10 (index 3).
	fm = addFM(0, 60, 1, []ofp.XM{EthDst(mac("00:00:00:00:00:01"))}, Apply(Output(10)))
	es, err = AddEntries(b, vsC, fm)
	if err != nil || len(es) != 2 {
		t.Fatalf("output to link on vsC: %d entries, %v; want 2 in-ports (unicast copy only)", len(es), err)
	}
	w := Entry{Table: 10, Priority: 60, Cookie: TenantCookie(t2ID, 1),
		Match:        []ofp.XM{Metadata(MetadataValue(t2ID, 4, 2, false), mask), EthDst(mac("00:00:00:00:00:01"))},
		Instructions: ofp.Instructions{Apply(mustClone(t, metadataSet(MetadataValue(t2ID, 3, 1, false)), Resubmit(10)))}}
	if !es[0].Equal(&w) {
		t.Errorf("link output = %s\nwant          %s", es[0].String(), w.String())
	}
	if len(es[1].Instructions) != 1 || len(es[1].Instructions[0].(*ofp.InstructionApplyActions).Actions) != 0 {
		t.Errorf("variant with in-port = the link port still outputs: %s", es[1].String())
	}
}

func TestTranslateInstructions(t *testing.T) {
	a, _ := views(t)
	fm := addFM(0, 10, 0, nil, Apply(SetField(EthSrc(mac("00:00:00:00:00:02"))), &ofp.ActionPushVLAN{EtherType: 0x8100}), Goto(2))
	es, err := AddEntries(a, vsA, fm)
	if err != nil {
		t.Fatal(err)
	}
	w := Entry{Table: 10, Priority: 10, Cookie: uint64(t1ID) << 48, Match: es[0].Match, Instructions: ofp.Instructions{
		Apply(SetField(EthSrc(mac("02:00:00:00:00:02"))), &ofp.ActionPushVLAN{EtherType: 0x8100}), Goto(12)}}
	if !es[0].Equal(&w) {
		t.Errorf("got %s\nwant %s", es[0].String(), w.String())
	}
}

func TestTranslateRefusals(t *testing.T) {
	a, _ := views(t)
	ok := []ofp.XM{EthDst(mac("00:00:00:00:00:02"))}
	cases := []struct {
		name string
		fm   *ofp.FlowMod
		vs   topology.DPID
		typ  ofp.ErrType
		code ofp.ErrCode
	}{
		{"table 4", addFM(4, 1, 0, ok, Apply(Output(1))), vsA, ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedBadTableID},
		{"unknown switch", addFM(0, 1, 0, ok, Apply(Output(1))), 0x99, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPort},
		{"cookie over 48 bits", addFM(0, 1, 1<<48, ok, Apply(Output(1))), vsA, ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedUnknown},
		{"unknown in_port", addFM(0, 1, 0, []ofp.XM{InPort(9)}, Apply(Output(1))), vsA, ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadValue},
		{"metadata match", addFM(0, 1, 0, []ofp.XM{Metadata(1, 1)}, Apply(Output(1))), vsA, ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadField},
		{"tunnel_id match", addFM(0, 1, 0, []ofp.XM{TunnelID(1)}, Apply(Output(1))), vsA, ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadField},
		{"masked eth_src", addFM(0, 1, 0, []ofp.XM{EthSrcMasked(mac("00:00:00:00:00:00"), mac("ff:00:00:00:00:00"))}, Apply(Output(1))), vsA, ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadMask},
		{"unknown out port", addFM(0, 1, 0, ok, Apply(Output(9))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort},
		{"NORMAL", addFM(0, 1, 0, ok, Apply(Output(uint32(ofp.PortNormal)))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort},
		{"IN_PORT", addFM(0, 1, 0, ok, Apply(Output(uint32(ofp.PortIn)))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort},
		{"group", addFM(0, 1, 0, ok, Apply(&ofp.ActionGroup{Group: 1})), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutGroup},
		{"experimenter", addFM(0, 1, 0, ok, Apply(Resubmit(31))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionExperimenter},
		{"set eth_src foreign", addFM(0, 1, 0, ok, Apply(SetField(EthSrc(mac("00:00:00:00:00:09"))))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetArgument},
		{"set eth_src fabric", addFM(0, 1, 0, ok, Apply(SetField(EthSrc(mac("02:01:00:00:00:01"))))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetArgument},
		{"set eth_dst foreign", addFM(0, 1, 0, ok, Apply(SetField(EthDst(mac("02:01:00:00:00:01"))))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetArgument},
		{"set metadata", addFM(0, 1, 0, ok, Apply(metadataSet(1))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetType},
		{"set tun_id", addFM(0, 1, 0, ok, Apply(SetField(TunnelID(1)))), vsA, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetType},
		{"write_metadata", addFM(0, 1, 0, ok, WriteMetadata(1, 1)), vsA, ofp.ErrTypeBadInstruction, ofp.ErrCodeBadInstructionUnsupportedMetadata},
		{"write_actions", addFM(0, 1, 0, ok, &ofp.InstructionWriteActions{Actions: ofp.Actions{Output(1)}}), vsA, ofp.ErrTypeBadInstruction, ofp.ErrCodeBadInstructionUnsupported},
		{"goto backward", addFM(2, 1, 0, ok, Goto(1)), vsA, ofp.ErrTypeBadInstruction, ofp.ErrCodeBadInstructionTableID},
		{"goto table 4", addFM(0, 1, 0, ok, Goto(4)), vsA, ofp.ErrTypeBadInstruction, ofp.ErrCodeBadInstructionTableID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Translate(a, c.vs, c.fm)
			wantOFPError(t, err, c.typ, c.code)
		})
	}
	// Allowed rewrites: own host MAC, group destination.
	for _, act := range []ofp.Action{SetField(EthDst(mac("00:00:00:00:00:03"))), SetField(EthDst(addr.Broadcast)),
		SetField(EthSrc(mac("00:00:00:00:00:01")))} {
		if _, err := Translate(a, vsA, addFM(0, 1, 0, ok, Apply(act, Output(1)))); err != nil {
			t.Errorf("%v: %v", act, err)
		}
	}
}

func TestTranslateDeletes(t *testing.T) {
	_, b := views(t)
	del := &ofp.FlowMod{Command: ofp.FlowDelete, Table: ofp.TableAll, Cookie: 0x42, CookieMask: 0xff,
		OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{InPort(2)}}}
	fms, err := Translate(b, vsB, del)
	if err != nil || len(fms) != 1 {
		t.Fatalf("delete: %v, %v", fms, err)
	}
	d := fms[0]
	if d.Table != ofp.TableAll || d.Command != ofp.FlowDelete || d.Cookie != TenantCookie(t2ID, 0x42) || d.CookieMask != 0xffff0000000000ff {
		t.Errorf("delete = table %d cmd %d cookie %#x/%#x", d.Table, d.Command, d.Cookie, d.CookieMask)
	}
	probe := Entry{Match: []ofp.XM{Metadata(uint64(t2ID)<<48|2<<32|1, MetaTenantMask|MetaVPortMask|MetaSwitchMask)}}
	got := Entry{Match: d.Match.Fields}
	if got.Key() != probe.Key() {
		t.Errorf("delete match %s, want %s", got.String(), probe.String())
	}
	// Delete-all of a tenant app (empty match, all tables) stays inside the
	// tenant's cookie prefix and switch.
	fms, err = Translate(b, vsB, &ofp.FlowMod{Command: ofp.FlowDelete, Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny})
	if err != nil || len(fms) != 1 || fms[0].CookieMask != 0xffff000000000000 || fms[0].Cookie != uint64(t2ID)<<48 {
		t.Fatalf("delete all: %+v, %v", fms, err)
	}
	// Strict: every variant AddEntries could have produced.
	strict := addFM(0, 50, 1, []ofp.XM{EthDst(addr.Broadcast)})
	strict.Command = ofp.FlowDeleteStrict
	fms, err = Translate(b, vsB, strict)
	if err != nil || len(fms) != 4 {
		t.Fatalf("strict delete: %d mods, %v; want 1 + 3 in-ports (group copy only)", len(fms), err)
	}
	adds, _ := AddEntries(b, vsB, addFM(0, 50, 1, []ofp.XM{EthDst(addr.Broadcast)}, Apply(Output(uint32(ofp.PortFlood)))))
	for _, a := range adds {
		found := false
		for _, fm := range fms {
			e := Entry{Table: uint8(fm.Table), Priority: fm.Priority, Match: fm.Match.Fields}
			found = found || (e.Key() == a.Key() && fm.Command == ofp.FlowDeleteStrict)
		}
		if !found {
			t.Errorf("no strict delete for %s", a.String())
		}
	}
	// Modify = deletes + adds.
	mod := addFM(0, 50, 1, []ofp.XM{EthDst(addr.Broadcast)}, Apply(Output(1)))
	mod.Command = ofp.FlowModifyStrict
	fms, err = Translate(b, vsB, mod)
	if err != nil || len(fms) != 5 || fms[0].Command != ofp.FlowDeleteStrict || fms[4].Command != ofp.FlowAdd {
		t.Fatalf("modify strict: %d mods, %v", len(fms), err)
	}
	// Filters on out_port are refused.
	del.OutPort = 1
	_, err = Translate(b, vsB, del)
	wantOFPError(t, err, ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedUnknown)
}

func TestViewMetadataAndBridges(t *testing.T) {
	_, b := views(t)
	sw, p, g, ok := b.DecodeMetadata(MetadataValue(t2ID, 4, 2, true))
	if !ok || sw.DPID != vsC || p.Port != 1 || p.Host == nil || p.Host.Name != "h3" || !g {
		t.Fatalf("DecodeMetadata = %v %v %v %v", sw, p, g, ok)
	}
	if _, _, _, ok := b.DecodeMetadata(MetadataValue(t1ID, 4, 2, true)); ok {
		t.Error("foreign tenant decoded")
	}
	if _, _, _, ok := b.DecodeMetadata(MetadataValue(t2ID, 4, 1, true)); ok {
		t.Error("port of another switch decoded")
	}
	m := testModel()
	// vsC has only h3 (on e2), but it is linked to vsB (hosts on e1, e2).
	if got := EdgeBridges(b, m.Bindings, vsC); len(got) != 2 || got[0] != e1 || got[1] != e2 {
		t.Errorf("EdgeBridges(vsC) = %v", got)
	}
	a, _ := views(t)
	if got := EdgeBridges(a, m.Bindings, vsA); len(got) != 2 || got[0] != e1 || got[1] != e3 {
		t.Errorf("EdgeBridges(vsA) = %v", got)
	}
}
