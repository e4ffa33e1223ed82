package pipeline

import (
	"encoding/binary"
	"fmt"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

// Nicira extension constants (Open vSwitch include/openflow/nicira-ext.h and
// lib/ofp-actions.c).
const (
	// NiciraExperimenter is the Nicira vendor/experimenter ID (NX_VENDOR_ID).
	NiciraExperimenter uint32 = 0x00002320
	// NXASTResubmitTable is the subtype of NXAST_RESUBMIT_TABLE
	// (struct nx_action_resubmit, 16 bytes).
	NXASTResubmitTable uint16 = 14
	// NXASTClone is the subtype of NXAST_CLONE (struct ext_action_header,
	// 16 bytes, followed by the nested actions).
	NXASTClone uint16 = 42
	// ofpp10InPort is OFPP_IN_PORT in OpenFlow 1.0's 16-bit port space, the
	// in_port of a resubmit that keeps the packet's in_port ("resubmit(,T)").
	ofpp10InPort uint16 = 0xfff8
)

// Resubmit returns NXAST_RESUBMIT_TABLE with in_port = OFPP_IN_PORT and the
// given table: "resubmit(,table)" in ovs-ofctl syntax. Layout (16 bytes):
// type 0xffff, len 16, vendor 0x00002320, subtype 14, in_port 0xfff8, table,
// 3 zero pad bytes.
func Resubmit(table uint8) *ofwire.ExperimenterAction {
	raw := make([]byte, 16)
	binary.BigEndian.PutUint16(raw[0:], uint16(ofp.ActionTypeExperimenter))
	binary.BigEndian.PutUint16(raw[2:], 16)
	binary.BigEndian.PutUint32(raw[4:], NiciraExperimenter)
	binary.BigEndian.PutUint16(raw[8:], NXASTResubmitTable)
	binary.BigEndian.PutUint16(raw[10:], ofpp10InPort)
	raw[12] = table
	return &ofwire.ExperimenterAction{Experimenter: NiciraExperimenter, Subtype: NXASTResubmitTable, Raw: raw}
}

// Clone returns NXAST_CLONE wrapping acts: "clone(...)" in ovs-ofctl syntax.
// The nested actions run on a copy of the packet and of its metadata, so
// their header rewrites do not leak into the actions after the clone.
// Layout: type 0xffff, len 16+len(nested), vendor 0x00002320, subtype 42,
// 6 zero pad bytes, then the nested actions (each already a multiple of 8
// bytes). It fails if a nested action cannot be encoded or the result
// exceeds 65535 bytes.
func Clone(acts ...ofp.Action) (*ofwire.ExperimenterAction, error) {
	raw := make([]byte, 16, 64)
	binary.BigEndian.PutUint16(raw[0:], uint16(ofp.ActionTypeExperimenter))
	binary.BigEndian.PutUint32(raw[4:], NiciraExperimenter)
	binary.BigEndian.PutUint16(raw[8:], NXASTClone)
	raw, err := ofwire.AppendActions(raw, acts)
	if err != nil {
		return nil, fmt.Errorf("pipeline: clone: %w", err)
	}
	if len(raw) > 0xffff {
		return nil, fmt.Errorf("pipeline: clone of %d bytes exceeds 65535", len(raw))
	}
	binary.BigEndian.PutUint16(raw[2:], uint16(len(raw)))
	return &ofwire.ExperimenterAction{Experimenter: NiciraExperimenter, Subtype: NXASTClone, Raw: raw}, nil
}
