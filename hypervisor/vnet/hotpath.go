package vnet

import (
	"github.com/netrack/openflow/ofp"
)

// Deep copies on the flow-mod hot path. A reactive app sends a flow-mod
// per packet-in, and the flow table (table.go) keeps its own copy of each
// entry because apps reuse their flow-mod buffers (controller/apps/learning
// does): these copies take a fixed handful of allocations instead of one
// per field, instruction and action, and skip the encode/decode round trip
// for the instructions reactive apps use.

// cloneMatch makes m's fields own their bytes: every value and mask is
// copied into one shared array (nil stays nil). m itself is modified: pass
// a slice of your own (pipeline.NormalizeMatch returns one).
func cloneMatch(m []ofp.XM) []ofp.XM {
	n := 0
	for i := range m {
		n += len(m[i].Value) + len(m[i].Mask)
	}
	slab := make([]byte, 0, n)
	own := func(b ofp.XMValue) ofp.XMValue {
		if b == nil {
			return nil
		}
		start := len(slab)
		slab = append(slab, b...)
		return slab[start:len(slab):len(slab)]
	}
	for i := range m {
		m[i].Value = own(m[i].Value)
		m[i].Mask = own(m[i].Mask)
	}
	return m
}

// cloneOutputInstructions deep-copies ins when it only holds apply-actions
// lists of output actions (at least one each), goto-table and
// clear-actions: what reactive forwarding apps send. The copy is what
// cloneInstructions' encode/decode round trip yields for such a list (the
// same netrack types and values). ok is false for anything else (the
// caller then takes the round trip).
func cloneOutputInstructions(ins ofp.Instructions) (out ofp.Instructions, ok bool) {
	var nApply, nOut int
	for _, in := range ins {
		switch in := in.(type) {
		case *ofp.InstructionApplyActions:
			if len(in.Actions) == 0 {
				return nil, false
			}
			for _, a := range in.Actions {
				if _, ok := a.(*ofp.ActionOutput); !ok {
					return nil, false
				}
			}
			nApply++
			nOut += len(in.Actions)
		case *ofp.InstructionGotoTable, *ofp.InstructionClearActions:
		default:
			return nil, false
		}
	}
	var (
		applies []ofp.InstructionApplyActions
		acts    ofp.Actions
		outs    []ofp.ActionOutput
	)
	if len(ins) == 1 && nApply == 1 && nOut == 1 { // one output: one allocation
		one := &struct {
			ins   [1]ofp.Instruction
			apply [1]ofp.InstructionApplyActions
			acts  [1]ofp.Action
			out   [1]ofp.ActionOutput
		}{}
		out, applies, acts, outs = one.ins[:0], one.apply[:0], one.acts[:0], one.out[:0]
	} else {
		out = make(ofp.Instructions, 0, len(ins))
		applies = make([]ofp.InstructionApplyActions, 0, nApply)
		acts = make(ofp.Actions, 0, nOut)
		outs = make([]ofp.ActionOutput, 0, nOut)
	}
	for _, in := range ins {
		switch in := in.(type) {
		case *ofp.InstructionApplyActions:
			start := len(acts)
			for _, a := range in.Actions {
				outs = append(outs, *a.(*ofp.ActionOutput))
				acts = append(acts, &outs[len(outs)-1])
			}
			applies = append(applies, ofp.InstructionApplyActions{Actions: acts[start:len(acts):len(acts)]})
			out = append(out, &applies[len(applies)-1])
		case *ofp.InstructionGotoTable:
			out = append(out, &ofp.InstructionGotoTable{Table: in.Table})
		case *ofp.InstructionClearActions:
			out = append(out, &ofp.InstructionClearActions{})
		}
	}
	return out, true
}
