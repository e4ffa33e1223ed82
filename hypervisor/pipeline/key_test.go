package pipeline

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

// keyOfNormalized is Key's definition: table, priority and the encoding
// of NormalizeMatch.
func keyOfNormalized(e *Entry) []byte {
	b := []byte{e.Table, byte(e.Priority >> 8), byte(e.Priority)}
	for _, f := range NormalizeMatch(e.Match) {
		b = ofwire.AppendXM(b, &f)
	}
	return b
}

// TestKeyEncodesNormalizedMatch checks that appendKey, which encodes the
// normalized match without building it, gives exactly the encoding of
// NormalizeMatch: masks all ones, all zero, partial, longer or shorter
// than the value, fields in any order and repeated.
func TestKeyEncodesNormalizedMatch(t *testing.T) {
	masks := [][]byte{nil, {0xff, 0xff}, {0, 0}, {0xf0, 0x0f}, {0xff}, {0xff, 0xff, 0xff}, {}}
	types := []ofp.XMType{ofp.XMTypeEthDst, ofp.XMTypeInPort, ofp.XMTypeMetadata, ofp.XMTypeEthType}
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 2000 {
		e := Entry{Table: uint8(r.IntN(256)), Priority: uint16(r.IntN(65536))}
		for range r.IntN(10) {
			f := ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: types[r.IntN(len(types))],
				Value: ofp.XMValue{byte(r.IntN(256)), byte(r.IntN(256))}}
			if r.IntN(5) == 0 {
				f.Class = ofp.XMClassNicira1
			}
			if m := masks[r.IntN(len(masks))]; m != nil {
				f.Mask = ofp.XMValue(m)
			}
			e.Match = append(e.Match, f)
		}
		if got, want := e.appendKey(nil), keyOfNormalized(&e); !bytes.Equal(got, want) {
			t.Fatalf("case %d %v: key %x, want %x", n, e.Match, got, want)
		}
	}
	e := Entry{Match: []ofp.XM{Metadata(0x0200_0000_0000_0001, MetaTenantMask|MetaSwitchMask), InPort(3)}}
	if allocs := testing.AllocsPerRun(100, func() { _ = e.appendKey(make([]byte, 0, 64)) }); allocs != 0 {
		t.Errorf("appendKey of a 2-field match: %v allocations, want 0", allocs)
	}
}
