package ofwire

import (
	"io"

	"github.com/netrack/openflow/ofp"
)

// ExperimenterAction is an OFPAT_EXPERIMENTER action (OpenFlow 1.3.5 spec
// section 7.2.5, struct ofp_action_experimenter_header) kept whole, so
// that Nicira/ONF extension actions (resubmit, learn, ct, ...) survive a
// decode and re-encode byte-exactly. It implements ofp.Action.
type ExperimenterAction struct {
	Experimenter uint32 // experimenter ID, e.g. 0x00002320 for Nicira
	Subtype      uint16 // the 16-bit subtype following the experimenter ID (Nicira/ONF convention); 0 when Raw is too short
	Raw          []byte // the whole action: type, len, experimenter, subtype and body, padded to 8 bytes
}

// Type implements ofp.Action.
func (a *ExperimenterAction) Type() ofp.ActionType { return ofp.ActionTypeExperimenter }

// WriteTo writes Raw unchanged.
func (a *ExperimenterAction) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(a.Raw)
	return int64(n), err
}

// ReadFrom is not supported: decode with DecodeActions. It returns an
// error so that the type satisfies ofp.Action.
func (a *ExperimenterAction) ReadFrom(r io.Reader) (int64, error) {
	return 0, errReadFromUnsupported
}

// RawAction is an action of a standard type netrack cannot decode (e.g.
// OFPAT_POP_PBB, on which netrack panics) kept as raw bytes. It
// implements ofp.Action.
type RawAction struct {
	ActionType ofp.ActionType // OFPAT_* type
	Raw        []byte         // the whole action including its 4-byte header
}

// Type implements ofp.Action.
func (a *RawAction) Type() ofp.ActionType { return a.ActionType }

// WriteTo writes Raw unchanged.
func (a *RawAction) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(a.Raw)
	return int64(n), err
}

// ReadFrom is not supported: decode with DecodeActions.
func (a *RawAction) ReadFrom(r io.Reader) (int64, error) { return 0, errReadFromUnsupported }

// RawInstruction is an instruction netrack cannot decode (e.g.
// OFPIT_EXPERIMENTER, spec 7.2.4) kept as raw bytes. It implements
// ofp.Instruction.
type RawInstruction struct {
	InstructionType ofp.InstructionType // OFPIT_* type
	Raw             []byte              // the whole instruction including its 4-byte header
}

// Type implements ofp.Instruction.
func (i *RawInstruction) Type() ofp.InstructionType { return i.InstructionType }

// WriteTo writes Raw unchanged.
func (i *RawInstruction) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(i.Raw)
	return int64(n), err
}

// ReadFrom is not supported: decode with DecodeInstructions.
func (i *RawInstruction) ReadFrom(r io.Reader) (int64, error) { return 0, errReadFromUnsupported }

// RawMeterBand is a meter band kept as raw bytes: an OFPMBT_EXPERIMENTER
// band with a body, or an unknown band type (spec 7.3.4.4). It implements
// ofp.MeterBand.
type RawMeterBand struct {
	BandType ofp.MeterBandType // OFPMBT_* type
	Raw      []byte            // the whole band including type and len
}

// Type implements ofp.MeterBand.
func (b *RawMeterBand) Type() ofp.MeterBandType { return b.BandType }

// WriteTo writes Raw unchanged.
func (b *RawMeterBand) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b.Raw)
	return int64(n), err
}

// ReadFrom is not supported: decode with DecodeMeterConfigs.
func (b *RawMeterBand) ReadFrom(r io.Reader) (int64, error) { return 0, errReadFromUnsupported }
