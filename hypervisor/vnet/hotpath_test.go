package vnet

import (
	"reflect"
	"testing"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// TestCloneInstructionsFastPath checks that the copies of hotpath.go are
// what the encode/decode round trip gives, share no memory with the
// original, and that other instruction lists take the round trip.
func TestCloneInstructionsFastPath(t *testing.T) {
	roundTrip := func(ins ofp.Instructions) ofp.Instructions {
		b, err := ofwire.AppendInstructions(nil, ins)
		if err != nil {
			t.Fatal(err)
		}
		out, err := ofwire.DecodeInstructions(b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, ins := range []ofp.Instructions{
		{pipeline.Apply(pipeline.Output(3))},
		{pipeline.Apply(pipeline.Output(3), pipeline.Output(uint32(ofp.PortFlood))), pipeline.Goto(2)},
		{&ofp.InstructionClearActions{}, pipeline.Apply(pipeline.Output(1)), pipeline.Goto(1)},
		{pipeline.Goto(3)},
	} {
		got, ok := cloneOutputInstructions(ins)
		if !ok {
			t.Fatalf("%v: not taken by the fast path", ins)
		}
		if want := roundTrip(ins); !reflect.DeepEqual(got, want) {
			t.Errorf("fast copy %#v, round trip %#v", got, want)
		}
		for i := range ins {
			if _, empty := ins[i].(*ofp.InstructionClearActions); !empty && got[i] == ins[i] { // (zero-size: all share one address)
				t.Errorf("%v: instruction %d shared", ins, i)
			}
			if a, ok := ins[i].(*ofp.InstructionApplyActions); ok {
				for j := range a.Actions {
					if got[i].(*ofp.InstructionApplyActions).Actions[j] == a.Actions[j] {
						t.Errorf("%v: action %d.%d shared", ins, i, j)
					}
				}
			}
		}
	}
	for _, ins := range []ofp.Instructions{
		{pipeline.Apply()},
		{pipeline.Apply(pipeline.SetField(pipeline.EthDst(mac1)), pipeline.Output(1))},
		{pipeline.WriteMetadata(1, 1)},
	} {
		if _, ok := cloneOutputInstructions(ins); ok {
			t.Errorf("%v: taken by the fast path", ins)
		}
	}
	m := pipeline.NormalizeMatch([]ofp.XM{pipeline.InPort(1), pipeline.EthDst(mac2), pipeline.Metadata(5, 7)})
	orig := append([]ofp.XM(nil), m...)
	c := cloneMatch(m)
	if !reflect.DeepEqual(c, orig) {
		t.Errorf("cloneMatch: %v, want %v", c, orig)
	}
	for i := range c {
		if &c[i].Value[0] == &orig[i].Value[0] {
			t.Errorf("cloneMatch: value %d shared", i)
		}
	}
}
