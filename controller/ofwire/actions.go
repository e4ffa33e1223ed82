package ofwire

import (
	"bytes"
	"fmt"
	"io"

	"github.com/netrack/openflow/ofp"
)

// appendWriter adapts an append buffer to io.Writer for the netrack
// WriteTo fallback.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// appendWriterTo appends what v.WriteTo writes.
func appendWriterTo(b []byte, v io.WriterTo) ([]byte, error) {
	w := appendWriter{b: b}
	_, err := v.WriteTo(&w)
	return w.b, err
}

// AppendAction appends one action (spec 7.2.5) byte-identical to the
// netrack WriteTo of its type. Types this package does not know are
// written through their own WriteTo.
func AppendAction(b []byte, a ofp.Action) ([]byte, error) {
	hdr := func(b []byte, t ofp.ActionType, l uint16) []byte {
		return append(b, byte(t>>8), byte(t), byte(l>>8), byte(l))
	}
	switch a := a.(type) {
	case *ofp.ActionOutput:
		b = hdr(b, ofp.ActionTypeOutput, 16)
		b = appendU32(b, uint32(a.Port))
		b = appendU16(b, a.MaxLen)
		return append(b, 0, 0, 0, 0, 0, 0), nil
	case *ofp.ActionSetField:
		start := len(b)
		b = hdr(b, ofp.ActionTypeSetField, 0)
		b = AppendXM(b, &a.Field)
		b = appendZeros(b, pad8(len(b)-start))
		l := len(b) - start
		b[start+2], b[start+3] = byte(l>>8), byte(l)
		return b, nil
	case *ofp.ActionGroup:
		return appendU32(hdr(b, ofp.ActionTypeGroup, 8), uint32(a.Group)), nil
	case *ofp.ActionSetQueue:
		return appendU32(hdr(b, ofp.ActionTypeSetQueue, 8), uint32(a.QueueID)), nil
	case *ofp.ActionPushVLAN:
		return append(appendU16(hdr(b, ofp.ActionTypePushVLAN, 8), a.EtherType), 0, 0), nil
	case *ofp.ActionPopVLAN:
		return append(hdr(b, ofp.ActionTypePopVLAN, 8), 0, 0, 0, 0), nil
	case *ofp.ActionPushMPLS:
		return append(appendU16(hdr(b, ofp.ActionTypePushMPLS, 8), a.EtherType), 0, 0), nil
	case *ofp.ActionPopMPLS:
		return append(appendU16(hdr(b, ofp.ActionTypePopMPLS, 8), a.EtherType), 0, 0), nil
	case *ofp.ActionPushPBB:
		return append(appendU16(hdr(b, ofp.ActionTypePushPBB, 8), a.EtherType), 0, 0), nil
	case *ofp.ActionCopyTTLOut:
		return append(hdr(b, ofp.ActionTypeCopyTTLOut, 8), 0, 0, 0, 0), nil
	case *ofp.ActionCopyTTLIn:
		return append(hdr(b, ofp.ActionTypeCopyTTLIn, 8), 0, 0, 0, 0), nil
	case *ofp.ActionSetMPLSTTL:
		return append(hdr(b, ofp.ActionTypeSetMPLSTTL, 8), a.TTL, 0, 0, 0), nil
	case *ofp.ActionDecMPLSTTL:
		return append(hdr(b, ofp.ActionTypeDecMPLSTTL, 8), 0, 0, 0, 0), nil
	case *ofp.ActionSetNetworkTTL:
		return append(hdr(b, ofp.ActionTypeSetNwTTL, 8), a.TTL, 0, 0, 0), nil
	case *ofp.ActionDecNetworkTTL:
		return append(hdr(b, ofp.ActionTypeDecNwTTL, 8), 0, 0, 0, 0), nil
	case *ofp.ActionExperimenter:
		return appendU32(hdr(b, ofp.ActionTypeExperimenter, 8), a.Experimenter), nil
	case *ExperimenterAction:
		return append(b, a.Raw...), nil
	case *RawAction:
		return append(b, a.Raw...), nil
	case nil:
		return b, fmt.Errorf("ofwire: nil action")
	default:
		return appendWriterTo(b, a)
	}
}

// AppendActions appends an action list byte-identical to
// ofp.Actions.WriteTo.
func AppendActions(b []byte, acts ofp.Actions) ([]byte, error) {
	var err error
	for i, a := range acts {
		if b, err = AppendAction(b, a); err != nil {
			return b, fmt.Errorf("action %d (%T): %w", i, a, err)
		}
	}
	return b, nil
}

// standardActionLen is the fixed length of each fixed-size OFPAT_* type.
func standardActionLen(t ofp.ActionType) (int, bool) {
	switch t {
	case ofp.ActionTypeOutput:
		return 16, true
	case ofp.ActionTypeCopyTTLOut, ofp.ActionTypeCopyTTLIn, ofp.ActionTypeSetMPLSTTL,
		ofp.ActionTypeDecMPLSTTL, ofp.ActionTypePushVLAN, ofp.ActionTypePopVLAN,
		ofp.ActionTypePushMPLS, ofp.ActionTypePopMPLS, ofp.ActionTypeSetQueue,
		ofp.ActionTypeGroup, ofp.ActionTypeSetNwTTL, ofp.ActionTypeDecNwTTL,
		ofp.ActionTypePushPBB:
		return 8, true
	}
	return 0, false
}

// decodeAction decodes one action whose bytes are exactly raw.
func decodeAction(raw []byte) (ofp.Action, error) {
	t := ofp.ActionType(u16(raw))
	if l, ok := standardActionLen(t); ok && len(raw) != l {
		// Spec-conforming switches never do this; keep it verbatim.
		return &RawAction{ActionType: t, Raw: raw}, nil
	}
	switch t {
	case ofp.ActionTypeOutput:
		return &ofp.ActionOutput{Port: ofp.PortNo(u32(raw[4:])), MaxLen: u16(raw[8:])}, nil
	case ofp.ActionTypeCopyTTLOut:
		return &ofp.ActionCopyTTLOut{}, nil
	case ofp.ActionTypeCopyTTLIn:
		return &ofp.ActionCopyTTLIn{}, nil
	case ofp.ActionTypeSetMPLSTTL:
		return &ofp.ActionSetMPLSTTL{TTL: raw[4]}, nil
	case ofp.ActionTypeDecMPLSTTL:
		return &ofp.ActionDecMPLSTTL{}, nil
	case ofp.ActionTypePushVLAN:
		return &ofp.ActionPushVLAN{EtherType: u16(raw[4:])}, nil
	case ofp.ActionTypePopVLAN:
		return &ofp.ActionPopVLAN{}, nil
	case ofp.ActionTypePushMPLS:
		return &ofp.ActionPushMPLS{EtherType: u16(raw[4:])}, nil
	case ofp.ActionTypePopMPLS:
		return &ofp.ActionPopMPLS{EtherType: u16(raw[4:])}, nil
	case ofp.ActionTypeSetQueue:
		return &ofp.ActionSetQueue{QueueID: ofp.Queue(u32(raw[4:]))}, nil
	case ofp.ActionTypeGroup:
		return &ofp.ActionGroup{Group: ofp.Group(u32(raw[4:]))}, nil
	case ofp.ActionTypeSetNwTTL:
		return &ofp.ActionSetNetworkTTL{TTL: raw[4]}, nil
	case ofp.ActionTypeDecNwTTL:
		return &ofp.ActionDecNetworkTTL{}, nil
	case ofp.ActionTypePushPBB:
		return &ofp.ActionPushPBB{EtherType: u16(raw[4:])}, nil
	case ofp.ActionTypeSetField:
		return decodeSetField(raw)
	case ofp.ActionTypeExperimenter:
		if len(raw) < 8 {
			return nil, fmt.Errorf("ofwire: experimenter action of %d bytes, need 8", len(raw))
		}
		a := &ExperimenterAction{Experimenter: u32(raw[4:]), Raw: raw}
		if len(raw) >= 10 {
			a.Subtype = u16(raw[8:])
		}
		return a, nil
	default:
		return &RawAction{ActionType: t, Raw: raw}, nil
	}
}

// decodeSetField decodes OFPAT_SET_FIELD (spec 7.2.5.7) or keeps it raw
// when netrack's encoder would not reproduce it byte-exactly.
func decodeSetField(raw []byte) (ofp.Action, error) {
	if len(raw) < 8 {
		return nil, fmt.Errorf("ofwire: set-field action of %d bytes, need 8", len(raw))
	}
	l := int(raw[7])
	if 8+l > len(raw) {
		return nil, fmt.Errorf("ofwire: set-field OXM length %d exceeds the action's %d bytes", l, len(raw)-8)
	}
	field := raw[6]
	xm := ofp.XM{Class: ofp.XMClass(u16(raw[4:])), Type: ofp.XMType(field >> 1)}
	v := raw[8 : 8+l : 8+l]
	if field&1 == 1 {
		h := l / 2
		xm.Value, xm.Mask = ofp.XMValue(v[:h:h]), ofp.XMValue(v[h:2*h:2*h])
	} else {
		xm.Value = ofp.XMValue(v)
	}
	return &ofp.ActionSetField{Field: xm}, nil
}

// DecodeActions decodes an action list (spec 7.2.5) that fills b.
// Standard actions become netrack types; OFPAT_EXPERIMENTER actions
// become *ExperimenterAction and anything else netrack cannot represent
// exactly becomes *RawAction, so the list always re-encodes to b. Raw
// bytes alias b. Errors: an action header with length below 8, not a
// multiple of 8 or running past b.
func DecodeActions(b []byte) (ofp.Actions, error) {
	var acts ofp.Actions
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("ofwire: %d trailing bytes in action list, too short for an action header", len(b)-off)
		}
		t, l := ofp.ActionType(u16(b[off:])), int(u16(b[off+2:]))
		if l < 8 || l%8 != 0 || off+l > len(b) {
			return nil, fmt.Errorf("ofwire: action type %d at offset %d: length %d is below 8, not a multiple of 8 or past the %d bytes left", t, off, l, len(b)-off)
		}
		raw := b[off : off+l : off+l]
		a, err := decodeAction(raw)
		if err != nil {
			return nil, fmt.Errorf("action at offset %d: %w", off, err)
		}
		if !reencodes(a, raw) {
			// Non-zero padding or an odd layout: keep it verbatim so that
			// the list re-encodes byte-exactly.
			a = &RawAction{ActionType: t, Raw: raw}
		}
		acts = append(acts, a)
		off += l
	}
	return acts, nil
}

// reencodes reports whether AppendAction reproduces raw from a.
func reencodes(a ofp.Action, raw []byte) bool {
	switch a.(type) {
	case *RawAction, *ExperimenterAction:
		return true
	}
	var buf [64]byte
	re, err := AppendAction(buf[:0], a)
	return err == nil && bytes.Equal(re, raw)
}

// AppendWriterTo appends what v.WriteTo writes (the slow, generic path
// for message bodies without a fast encoder).
func AppendWriterTo(b []byte, v io.WriterTo) ([]byte, error) { return appendWriterTo(b, v) }
