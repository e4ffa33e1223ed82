package vnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
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

// readd is flowAdd's fast path for an OFPFC_ADD identical to a live entry
// of the table: same table, priority and match, instructions, cookie,
// timeouts and flags, translated in the same view (hence the same
// translation). A reactive app sends such flow-mods whenever packets of a
// flow reach it before the flow's entry is installed (every packet-in of
// a cbench-style load). The outcome is flowAdd's, where the new entry
// replaces the old one: the entry starts over (counters 0, duration from
// now), its copies on the connected bridges are added again (installed
// now), its copies on bridges that are away are forgotten (a replay adds
// them), and no delete is needed; only the entry is not copied,
// translated and keyed again, and the table's maps keep their entries.
// When an old copy is retiring (its flow-removed must go to the old
// entry, not the new one) or anything differs, readd does nothing and
// reports false.
func (s *Switch) readd(ctx context.Context, snap *snapshot, fm *ofp.FlowMod) (bool, error) {
	if noReadd || fm.Buffer != ofp.NoBuffer && fm.Buffer != 0 {
		return false, nil // refused by the translation
	}
	if snap.replicated[s.index-1] {
		return false, nil // flowAdd guards it (replica.go)
	}
	var kb [128]byte
	key := (&pipeline.Entry{Table: uint8(fm.Table), Priority: fm.Priority, Match: fm.Match.Fields}).AppendKey(kb[:0])
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.tab.flows[string(key)]
	// The match must be the entry's field for field (not only the same
	// key): the entry's is normalized, so fm's is what flowAdd would have
	// accepted and stored.
	if old == nil || old.removed || old.view != snap.view || !sameFields(old.v.Match, fm.Match.Fields) || old.v.Cookie != fm.Cookie ||
		old.v.IdleTimeout != fm.IdleTimeout || old.v.HardTimeout != fm.HardTimeout ||
		old.v.Flags != fm.Flags&^(ofp.FlowFlagCheckOverlap|ofp.FlowFlagResetCounts) ||
		!sameInstructions(old.v.Instructions, fm.Instructions) {
		return false, nil
	}
	// The edge bridges and their sessions (nil: away), read once, as
	// connectedBridges does, without allocating for up to four.
	bs := snap.bridges[s.index-1]
	var swBuf [4]controller.Switch
	sws := swBuf[:0]
	nconn := 0
	for _, b := range bs {
		psw := s.t.phys.Switch(b)
		if psw != nil {
			nconn++
		}
		sws = append(sws, psw)
	}
	// Usually old's copies are exactly one live copy of each physical
	// entry on each connected bridge: checked by lookups (cheaper than
	// walking the map), they are then only re-stamped. Otherwise the walk:
	// a retiring copy rules readd out, copies on bridges that are away are
	// forgotten.
	exact := len(old.copies) == nconn*len(old.phys)
	for i, b := range bs {
		if !exact {
			break
		}
		if sws[i] == nil {
			continue
		}
		for j := range old.phys {
			if c, ok := old.copies[copyID{b, old.pkeys[j]}]; !ok || c.retiring {
				exact = false
				break
			}
		}
	}
	if !exact {
		for _, c := range old.copies {
			if c.retiring {
				return false, nil
			}
		}
		for id := range old.copies {
			if i := slices.Index(bs, id.bridge); i < 0 || sws[i] == nil {
				s.tab.dropCopy(old, id)
			}
		}
	}
	now := time.Now()
	for i, b := range bs {
		if sws[i] != nil {
			for j := range old.phys {
				id := copyID{b, old.pkeys[j]}
				if exact { // the copy, hence old in byPhys, is there
					old.copies[id] = physCopy{installed: now}
				} else {
					s.tab.addCopy(old, id, physCopy{installed: now})
				}
			}
		}
	}
	old.packets, old.bytes, old.added = 0, 0, now
	var errs []error // sent under s.mu, as by flowAdd (sendAll)
	for i, b := range bs {
		if sws[i] == nil {
			continue
		}
		for j := range old.phys {
			if err := sws[i].FlowMod(ctx, old.phys[j].FlowMod()); err != nil {
				errs = append(errs, fmt.Errorf("bridge %s: %w", b, err))
				break
			}
		}
	}
	return true, errors.Join(errs...)
}

// noReadd turns readd off (tests compare the two paths).
var noReadd bool

// sameFields reports whether a and b are the same OXMs in the same order.
func sameFields(a, b []ofp.XM) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Class != b[i].Class || a[i].Type != b[i].Type || !bytes.Equal(a[i].Value, b[i].Value) || !bytes.Equal(a[i].Mask, b[i].Mask) {
			return false
		}
	}
	return true
}

// sameInstructions reports whether a and b encode the same (in order).
func sameInstructions(a, b ofp.Instructions) bool {
	if len(a) != len(b) {
		return false
	}
	if sameOutputInstructions(a, b) {
		return true
	}
	ae, err1 := ofwire.AppendInstructions(nil, a)
	be, err2 := ofwire.AppendInstructions(nil, b)
	return err1 == nil && err2 == nil && bytes.Equal(ae, be)
}

// sameOutputInstructions reports whether a and b are the same lists of
// apply-actions of outputs, goto-tables and clear-actions (false also
// when either holds anything else: the caller then compares encodings).
func sameOutputInstructions(a, b ofp.Instructions) bool {
	for i := range a {
		switch x := a[i].(type) {
		case *ofp.InstructionApplyActions:
			y, ok := b[i].(*ofp.InstructionApplyActions)
			if !ok || len(x.Actions) != len(y.Actions) {
				return false
			}
			for j := range x.Actions {
				ox, ok1 := x.Actions[j].(*ofp.ActionOutput)
				oy, ok2 := y.Actions[j].(*ofp.ActionOutput)
				if !ok1 || !ok2 || *ox != *oy {
					return false
				}
			}
		case *ofp.InstructionGotoTable:
			y, ok := b[i].(*ofp.InstructionGotoTable)
			if !ok || x.Table != y.Table {
				return false
			}
		case *ofp.InstructionClearActions:
			if _, ok := b[i].(*ofp.InstructionClearActions); !ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}
