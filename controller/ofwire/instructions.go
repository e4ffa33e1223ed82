package ofwire

import (
	"bytes"
	"fmt"

	"github.com/netrack/openflow/ofp"
)

// AppendInstruction appends one instruction (spec 7.2.4) byte-identical
// to the netrack WriteTo of its type.
func AppendInstruction(b []byte, in ofp.Instruction) ([]byte, error) {
	hdr := func(b []byte, t ofp.InstructionType, l uint16) []byte {
		return append(b, byte(t>>8), byte(t), byte(l>>8), byte(l))
	}
	switch in := in.(type) {
	case *ofp.InstructionApplyActions:
		return appendActionsInstruction(b, ofp.InstructionTypeApplyActions, in.Actions)
	case *ofp.InstructionWriteActions:
		return appendActionsInstruction(b, ofp.InstructionTypeWriteActions, in.Actions)
	case *ofp.InstructionGotoTable:
		return append(hdr(b, ofp.InstructionTypeGotoTable, 8), byte(in.Table), 0, 0, 0), nil
	case *ofp.InstructionWriteMetadata:
		b = append(hdr(b, ofp.InstructionTypeWriteMetadata, 24), 0, 0, 0, 0)
		return appendU64(appendU64(b, in.Metadata), in.MetadataMask), nil
	case *ofp.InstructionClearActions:
		return append(hdr(b, ofp.InstructionTypeClearActions, 8), 0, 0, 0, 0), nil
	case *ofp.InstructionMeter:
		return appendU32(hdr(b, ofp.InstructionTypeMeter, 8), uint32(in.Meter)), nil
	case *RawInstruction:
		return append(b, in.Raw...), nil
	case nil:
		return b, fmt.Errorf("ofwire: nil instruction")
	default:
		return appendWriterTo(b, in)
	}
}

func appendActionsInstruction(b []byte, t ofp.InstructionType, acts ofp.Actions) ([]byte, error) {
	start := len(b)
	b = append(b, byte(t>>8), byte(t), 0, 0, 0, 0, 0, 0)
	b, err := AppendActions(b, acts)
	if err != nil {
		return b, err
	}
	l := len(b) - start
	b[start+2], b[start+3] = byte(l>>8), byte(l)
	return b, nil
}

// AppendInstructions appends an instruction list byte-identical to
// ofp.Instructions.WriteTo.
func AppendInstructions(b []byte, ins ofp.Instructions) ([]byte, error) {
	var err error
	for i, in := range ins {
		if b, err = AppendInstruction(b, in); err != nil {
			return b, fmt.Errorf("instruction %d (%T): %w", i, in, err)
		}
	}
	return b, nil
}

// DecodeInstructions decodes an instruction list (spec 7.2.4) that fills
// b. Standard instructions become netrack types (their actions decoded
// by DecodeActions); experimenter and unknown instructions become
// *RawInstruction. Errors: an instruction length below 8, not a multiple
// of 8, past b, or a bad action inside.
func DecodeInstructions(b []byte) (ofp.Instructions, error) {
	var ins ofp.Instructions
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("ofwire: %d trailing bytes in instruction list, too short for an instruction header", len(b)-off)
		}
		t, l := ofp.InstructionType(u16(b[off:])), int(u16(b[off+2:]))
		if l < 8 || l%8 != 0 || off+l > len(b) {
			return nil, fmt.Errorf("ofwire: instruction type %d at offset %d: length %d is below 8, not a multiple of 8 or past the %d bytes left", t, off, l, len(b)-off)
		}
		raw := b[off : off+l : off+l]
		var in ofp.Instruction
		switch {
		case t == ofp.InstructionTypeGotoTable && l == 8:
			in = &ofp.InstructionGotoTable{Table: ofp.Table(raw[4])}
		case t == ofp.InstructionTypeWriteMetadata && l == 24:
			in = &ofp.InstructionWriteMetadata{Metadata: u64(raw[8:]), MetadataMask: u64(raw[16:])}
		case t == ofp.InstructionTypeClearActions && l == 8:
			in = &ofp.InstructionClearActions{}
		case t == ofp.InstructionTypeMeter && l == 8:
			in = &ofp.InstructionMeter{Meter: ofp.Meter(u32(raw[4:]))}
		case t == ofp.InstructionTypeApplyActions || t == ofp.InstructionTypeWriteActions:
			acts, err := DecodeActions(raw[8:])
			if err != nil {
				return nil, fmt.Errorf("instruction type %d at offset %d: %w", t, off, err)
			}
			if t == ofp.InstructionTypeApplyActions {
				in = &ofp.InstructionApplyActions{Actions: acts}
			} else {
				in = &ofp.InstructionWriteActions{Actions: acts}
			}
		default:
			in = &RawInstruction{InstructionType: t, Raw: raw}
		}
		if _, isRaw := in.(*RawInstruction); !isRaw {
			if re, err := AppendInstruction(nil, in); err != nil || !bytes.Equal(re, raw) {
				in = &RawInstruction{InstructionType: t, Raw: raw}
			}
		}
		ins = append(ins, in)
		off += l
	}
	return ins, nil
}
