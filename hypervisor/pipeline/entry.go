package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
)

// Entry is one flow entry of a physical bridge in a comparable form: what an
// OFPT_FLOW_MOD ADD installs (OpenFlow 1.3.5 §7.3.4.1) and what an OFPMP_FLOW
// reply reports (§7.3.5.2), without counters. Match holds OXM fields
// (class OFPXMC_OPENFLOW_BASIC unless an extension is named); Instructions
// use netrack types plus ofwire.ExperimenterAction for Nicira actions.
//
// Two entries describe the same flow entry of a switch when their Key is
// equal (table, priority and normalized match: what a strict delete
// names); they are identical when Canonical is equal as well.
type Entry struct {
	Table        uint8
	Priority     uint16
	Match        []ofp.XM
	Instructions ofp.Instructions
	Cookie       uint64
	IdleTimeout  uint16 // seconds, 0 = none
	HardTimeout  uint16 // seconds, 0 = none
	Flags        ofp.FlowModFlag
}

// FlowMod returns the entry as an OFPFC_ADD flow-mod (no buffer, any out
// port/group, match type OFPMT_OXM). The match and instructions are
// shared with e, not copied.
func (e *Entry) FlowMod() *ofp.FlowMod {
	fm := new(ofp.FlowMod)
	e.flowMod(fm)
	return fm
}

// flowMod sets *fm to FlowMod's result.
func (e *Entry) flowMod(fm *ofp.FlowMod) {
	*fm = ofp.FlowMod{
		Cookie: e.Cookie, Table: ofp.Table(e.Table), Command: ofp.FlowAdd,
		IdleTimeout: e.IdleTimeout, HardTimeout: e.HardTimeout, Priority: e.Priority,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Flags: e.Flags,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: e.Match},
		Instructions: e.Instructions,
	}
}

// DeleteStrict returns the OFPFC_DELETE_STRICT flow-mod that removes
// exactly this entry: same table, priority and match, restricted to its
// cookie (cookie mask all ones), so an entry somebody else re-added with
// another cookie survives.
func (e *Entry) DeleteStrict() *ofp.FlowMod {
	return &ofp.FlowMod{
		Cookie: e.Cookie, CookieMask: ^uint64(0), Table: ofp.Table(e.Table), Command: ofp.FlowDeleteStrict,
		Priority: e.Priority, Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: e.Match},
	}
}

// FromFlowStats converts one entry of a flow-stats reply. Values alias fs.
func FromFlowStats(fs *ofwire.FlowStats) Entry {
	return Entry{
		Table: uint8(fs.Table), Priority: fs.Priority, Match: fs.Match.Fields,
		Instructions: fs.Instructions, Cookie: fs.Cookie,
		IdleTimeout: fs.IdleTimeout, HardTimeout: fs.HardTimeout, Flags: fs.Flags,
	}
}

// normXM returns xm with Open vSwitch's normalization applied: value bits
// outside the mask cleared, an all-ones mask dropped; ok is false for an
// all-zero mask (a wildcard OVS does not report).
func normXM(xm ofp.XM) (ofp.XM, bool) {
	if len(xm.Mask) == 0 {
		return xm, true
	}
	v := make([]byte, len(xm.Value))
	allOnes, allZero := true, true
	for i := range v {
		var m byte
		if i < len(xm.Mask) {
			m = xm.Mask[i]
		}
		v[i] = xm.Value[i] & m
		allOnes = allOnes && m == 0xff
		allZero = allZero && m == 0
	}
	if allZero {
		return ofp.XM{}, false
	}
	if allOnes {
		return ofp.XM{Class: xm.Class, Type: xm.Type, Value: v}, true
	}
	return ofp.XM{Class: xm.Class, Type: xm.Type, Value: v, Mask: xm.Mask}, true
}

// NormalizeMatch returns the OXMs in canonical form: normalized masks (see
// normXM) and sorted by (class, field), the order Open vSwitch reports
// them in does not matter. The input is not modified.
func NormalizeMatch(fields []ofp.XM) []ofp.XM {
	out := make([]ofp.XM, 0, len(fields))
	for _, f := range fields {
		if n, ok := normXM(f); ok {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(out, compareXM)
	return out
}

// compareXM orders OXMs by (class, field).
func compareXM(a, b ofp.XM) int {
	if a.Class != b.Class {
		return int(a.Class) - int(b.Class)
	}
	return int(a.Type) - int(b.Type)
}

// instructionRank is Open vSwitch's canonical instruction order
// (meter, apply-actions, clear-actions, write-actions, write-metadata,
// goto-table), which it uses when reporting an entry.
func instructionRank(in ofp.Instruction) int {
	switch in.Type() {
	case ofp.InstructionTypeMeter:
		return 0
	case ofp.InstructionTypeApplyActions:
		return 1
	case ofp.InstructionTypeClearActions:
		return 2
	case ofp.InstructionTypeWriteActions:
		return 3
	case ofp.InstructionTypeWriteMetadata:
		return 4
	case ofp.InstructionTypeGotoTable:
		return 5
	}
	return 6
}

// NormalizeInstructions returns the instructions in canonical order with
// empty apply-actions and write-actions dropped (OVS reports an entry whose
// only actions are an empty list as having no instructions).
func NormalizeInstructions(ins ofp.Instructions) ofp.Instructions {
	out := make(ofp.Instructions, 0, len(ins))
	for _, in := range ins {
		switch in := in.(type) {
		case *ofp.InstructionApplyActions:
			if len(in.Actions) == 0 {
				continue
			}
		case *ofp.InstructionWriteActions:
			if len(in.Actions) == 0 {
				continue
			}
		}
		out = append(out, in)
	}
	slices.SortStableFunc(out, func(a, b ofp.Instruction) int { return instructionRank(a) - instructionRank(b) })
	return out
}

// Key returns the identity of the entry in its switch: table, priority and
// the normalized match, encoded as a string (usable as a map key). Two
// entries with the same Key cannot coexist in a switch (an ADD of one
// replaces the other, §6.4).
func (e *Entry) Key() string {
	return string(e.appendKey(make([]byte, 0, 64)))
}

// AppendKey appends Key's bytes to b: with b on the caller's stack, a
// lookup by key (m[string(b)]) allocates nothing.
func (e *Entry) AppendKey(b []byte) []byte { return e.appendKey(b) }

// appendKey appends the Key encoding to b.
func (e *Entry) appendKey(b []byte) []byte {
	b = append(b, e.Table, byte(e.Priority>>8), byte(e.Priority))
	// The encoding of NormalizeMatch(e.Match), without building it: no
	// allocation for a match of up to 8 fields (Key is on the hot path
	// of every tenant app's flow-mod).
	var buf [8]int
	order := buf[:0]
	for i := range e.Match {
		order = append(order, i)
	}
	slices.SortStableFunc(order, func(i, j int) int { return compareXM(e.Match[i], e.Match[j]) })
	for _, i := range order {
		b = appendNormXM(b, &e.Match[i])
	}
	return b
}

// appendNormXM appends the encoding (ofwire.AppendXM) of normXM(*xm), or
// nothing when normXM drops it.
func appendNormXM(b []byte, xm *ofp.XM) []byte {
	if len(xm.Mask) == 0 {
		return ofwire.AppendXM(b, xm)
	}
	mask := func(i int) byte {
		if i < len(xm.Mask) {
			return xm.Mask[i]
		}
		return 0
	}
	allOnes, allZero := true, true
	for i := range xm.Value {
		allOnes = allOnes && mask(i) == 0xff
		allZero = allZero && mask(i) == 0
	}
	if allZero {
		return b
	}
	field, n := uint8(xm.Type)<<1, len(xm.Value)
	if !allOnes {
		field |= 1
		n += len(xm.Mask)
	}
	b = append(b, byte(xm.Class>>8), byte(xm.Class), field, uint8(n))
	for i, v := range xm.Value {
		b = append(b, v&mask(i))
	}
	if !allOnes {
		b = append(b, xm.Mask...)
	}
	return b
}

// appendRest appends what Canonical adds after the Key: cookie, timeouts,
// flags and the normalized instructions.
func (e *Entry) appendRest(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, e.Cookie)
	b = binary.BigEndian.AppendUint16(b, e.IdleTimeout)
	b = binary.BigEndian.AppendUint16(b, e.HardTimeout)
	b = binary.BigEndian.AppendUint16(b, uint16(e.Flags))
	b, err := ofwire.AppendInstructions(b, NormalizeInstructions(e.Instructions))
	if err != nil {
		return nil, fmt.Errorf("pipeline: encode instructions of table %d priority %d: %w", e.Table, e.Priority, err)
	}
	return b, nil
}

// Canonical returns the whole entry (Key, normalized instructions, cookie,
// timeouts, flags) as a string; equal strings mean equal flow entries.
// It fails only if an instruction cannot be encoded.
func (e *Entry) Canonical() (string, error) {
	b, err := e.appendRest(e.appendKey(make([]byte, 0, 160)))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// KeyCanonical returns Key and Canonical from one encoding of the entry
// (Canonical starts with Key): half the work of calling both.
func (e *Entry) KeyCanonical() (key, canonical string, err error) {
	b := e.appendKey(make([]byte, 0, 160))
	n := len(b)
	b, err = e.appendRest(b)
	if err != nil {
		return "", "", err
	}
	c := string(b)
	return c[:n], c, nil
}

// Digest is a 128-bit hash of an entry's Key or Canonical encoding: the
// first 16 bytes of its SHA-256 (FIPS 180-4), as two big-endian words.
// Digests of different encodings collide with probability ~2^-128 per
// pair, so they stand in for the strings in maps and fingerprints at a
// fixed 16 bytes. Digests add (Add, word-wise modulo 2^64) into
// order-independent sums of sets of entries.
type Digest struct{ Hi, Lo uint64 }

// Add returns the word-wise sum d + o (modulo 2^64 each): the digest of
// a multiset is the sum of its members', whatever their order.
func (d Digest) Add(o Digest) Digest { return Digest{d.Hi + o.Hi, d.Lo + o.Lo} }

// Sub returns d - o word-wise, the inverse of Add.
func (d Digest) Sub(o Digest) Digest { return Digest{d.Hi - o.Hi, d.Lo - o.Lo} }

// IsZero reports whether d is the zero digest (the sum of no entries).
func (d Digest) IsZero() bool { return d == Digest{} }

func digestOf(b []byte) Digest {
	s := sha256.Sum256(b)
	return Digest{binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:16])}
}

// Digests returns the digest of the entry's Key and of its Canonical
// form, from one encoding. It fails only if an instruction cannot be
// encoded.
func (e *Entry) Digests() (key, canonical Digest, err error) {
	var buf [256]byte
	b := e.appendKey(buf[:0])
	key = digestOf(b)
	b, err = e.appendRest(b)
	if err != nil {
		return Digest{}, Digest{}, err
	}
	return key, digestOf(b), nil
}

// Equal reports whether e and o are the same flow entry (see Canonical);
// entries whose instructions cannot be encoded are never equal.
func (e *Entry) Equal(o *Entry) bool {
	a, err1 := e.Canonical()
	b, err2 := o.Canonical()
	return err1 == nil && err2 == nil && a == b
}

// String renders the entry roughly in ovs-ofctl syntax, for logs and test
// failures (not parseable).
func (e *Entry) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "cookie=%#x table=%d priority=%d", e.Cookie, e.Table, e.Priority)
	for _, f := range NormalizeMatch(e.Match) {
		sb.WriteString(" ")
		sb.WriteString(xmString(f))
	}
	sb.WriteString(" ->")
	for _, in := range NormalizeInstructions(e.Instructions) {
		sb.WriteString(" ")
		sb.WriteString(instructionString(in))
	}
	return sb.String()
}

func xmName(t ofp.XMType) string {
	switch t {
	case ofp.XMTypeInPort:
		return "in_port"
	case ofp.XMTypeMetadata:
		return "metadata"
	case ofp.XMTypeEthDst:
		return "eth_dst"
	case ofp.XMTypeEthSrc:
		return "eth_src"
	case ofp.XMTypeEthType:
		return "eth_type"
	case ofp.XMTypeTunnelID:
		return "tun_id"
	}
	return fmt.Sprintf("oxm%d", t)
}

func xmString(f ofp.XM) string {
	s := fmt.Sprintf("%s=%x", xmName(f.Type), []byte(f.Value))
	if len(f.Value) == 6 && (f.Type == ofp.XMTypeEthDst || f.Type == ofp.XMTypeEthSrc) {
		s = fmt.Sprintf("%s=%v", xmName(f.Type), addr.MAC(f.Value))
	}
	if len(f.Mask) > 0 {
		s += fmt.Sprintf("/%x", []byte(f.Mask))
	}
	return s
}

func instructionString(in ofp.Instruction) string {
	switch in := in.(type) {
	case *ofp.InstructionApplyActions:
		return "apply(" + actionsString(in.Actions) + ")"
	case *ofp.InstructionWriteActions:
		return "write(" + actionsString(in.Actions) + ")"
	case *ofp.InstructionGotoTable:
		return fmt.Sprintf("goto:%d", in.Table)
	case *ofp.InstructionWriteMetadata:
		return fmt.Sprintf("write_metadata:%#x/%#x", in.Metadata, in.MetadataMask)
	}
	return fmt.Sprintf("%T", in)
}

func actionsString(acts ofp.Actions) string {
	parts := make([]string, 0, len(acts))
	for _, a := range acts {
		switch a := a.(type) {
		case *ofp.ActionOutput:
			parts = append(parts, fmt.Sprintf("output:%#x", uint32(a.Port)))
		case *ofp.ActionSetField:
			parts = append(parts, "set_field:"+xmString(a.Field))
		case *ofwire.ExperimenterAction:
			switch {
			case a.Experimenter == NiciraExperimenter && a.Subtype == NXASTResubmitTable && len(a.Raw) >= 13:
				parts = append(parts, fmt.Sprintf("resubmit(,%d)", a.Raw[12]))
			case a.Experimenter == NiciraExperimenter && a.Subtype == NXASTClone && len(a.Raw) >= 16:
				nested, err := ofwire.DecodeActions(bytes.Clone(a.Raw[16:]))
				if err != nil {
					parts = append(parts, "clone(?)")
				} else {
					parts = append(parts, "clone("+actionsString(nested)+")")
				}
			default:
				parts = append(parts, fmt.Sprintf("experimenter(%#x,%d)", a.Experimenter, a.Subtype))
			}
		default:
			parts = append(parts, fmt.Sprintf("%T", a))
		}
	}
	return strings.Join(parts, ",")
}

// OXM constructors (OpenFlow 1.3.5 §7.2.3.7, class OFPXMC_OPENFLOW_BASIC).

func basic(t ofp.XMType, v []byte, mask []byte) ofp.XM {
	xm := ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: t, Value: ofp.XMValue(v)}
	if mask != nil {
		xm.Mask = ofp.XMValue(mask)
	}
	return xm
}

// InPort matches OXM_OF_IN_PORT.
func InPort(p uint32) ofp.XM {
	return basic(ofp.XMTypeInPort, binary.BigEndian.AppendUint32(nil, p), nil)
}

// EthSrc matches OXM_OF_ETH_SRC exactly.
func EthSrc(m addr.MAC) ofp.XM { return basic(ofp.XMTypeEthSrc, bytes.Clone(m[:]), nil) }

// EthDst matches OXM_OF_ETH_DST exactly.
func EthDst(m addr.MAC) ofp.XM { return basic(ofp.XMTypeEthDst, bytes.Clone(m[:]), nil) }

// EthDstMasked matches OXM_OF_ETH_DST_W.
func EthDstMasked(m, mask addr.MAC) ofp.XM {
	return basic(ofp.XMTypeEthDst, bytes.Clone(m[:]), bytes.Clone(mask[:]))
}

// EthSrcMasked matches OXM_OF_ETH_SRC_W.
func EthSrcMasked(m, mask addr.MAC) ofp.XM {
	return basic(ofp.XMTypeEthSrc, bytes.Clone(m[:]), bytes.Clone(mask[:]))
}

// EthType matches OXM_OF_ETH_TYPE.
func EthType(t uint16) ofp.XM {
	return basic(ofp.XMTypeEthType, binary.BigEndian.AppendUint16(nil, t), nil)
}

// Metadata matches OXM_OF_METADATA_W (value, mask).
func Metadata(v, mask uint64) ofp.XM {
	return basic(ofp.XMTypeMetadata, binary.BigEndian.AppendUint64(nil, v), binary.BigEndian.AppendUint64(nil, mask))
}

// TunnelID matches OXM_OF_TUNNEL_ID exactly (8 bytes).
func TunnelID(id uint64) ofp.XM {
	return basic(ofp.XMTypeTunnelID, binary.BigEndian.AppendUint64(nil, id), nil)
}

// Action and instruction shorthands.

// Output is OFPAT_OUTPUT to port p (max_len 0xffff: whole packet to the controller).
func Output(p uint32) *ofp.ActionOutput {
	return &ofp.ActionOutput{Port: ofp.PortNo(p), MaxLen: ofp.ContentLenNoBuffer}
}

// SetField is OFPAT_SET_FIELD of one unmasked OXM.
func SetField(xm ofp.XM) *ofp.ActionSetField { return &ofp.ActionSetField{Field: xm} }

// Apply is OFPIT_APPLY_ACTIONS.
func Apply(acts ...ofp.Action) *ofp.InstructionApplyActions {
	return &ofp.InstructionApplyActions{Actions: acts}
}

// Goto is OFPIT_GOTO_TABLE.
func Goto(t uint8) *ofp.InstructionGotoTable { return &ofp.InstructionGotoTable{Table: ofp.Table(t)} }

// WriteMetadata is OFPIT_WRITE_METADATA.
func WriteMetadata(v, mask uint64) *ofp.InstructionWriteMetadata {
	return &ofp.InstructionWriteMetadata{Metadata: v, MetadataMask: mask}
}
