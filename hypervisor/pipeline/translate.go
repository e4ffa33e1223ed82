package pipeline

import (
	"encoding/binary"
	"fmt"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// Error is a translation failure to be returned to the tenant app as an
// OFPT_ERROR (OpenFlow 1.3.5 §7.4.4) with Type and Code.
type Error struct {
	Type ofp.ErrType
	Code ofp.ErrCode
	Msg  string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("pipeline: %s (OFPT_ERROR type %d code %d)", e.Msg, e.Type, e.Code)
}

func errf(t ofp.ErrType, c ofp.ErrCode, format string, args ...any) *Error {
	return &Error{Type: t, Code: c, Msg: fmt.Sprintf(format, args...)}
}

// appCookieMask selects the 48 bits of a cookie left to tenant apps.
const appCookieMask uint64 = 1<<48 - 1

// Translate turns a tenant app's flow-mod on virtual switch vdpid into the
// flow-mods for the edge bridges (the same list for every bridge of
// EdgeBridges; the translation does not depend on where hosts are, only
// table 20 does). See docs/pipeline.md, "Translating a tenant app's flow
// entry".
//
//   - OFPFC_ADD: the translated entries (AddEntries), as ADDs.
//   - OFPFC_DELETE: one non-strict delete restricted to the tenant's cookie
//     prefix and the virtual switch's metadata.
//   - OFPFC_DELETE_STRICT: strict deletes of every physical variant the
//     entry could have been expanded into.
//   - OFPFC_MODIFY(_STRICT): the deletes of the same strictness followed by
//     the ADDs (counters restart; a modify that matched nothing adds).
//
// It returns *Error for anything the tenant may not do or Skyvisor does
// not virtualize.
func Translate(v *View, vdpid topology.DPID, fm *ofp.FlowMod) ([]*ofp.FlowMod, error) {
	switch fm.Command {
	case ofp.FlowAdd:
		es, err := AddEntries(v, vdpid, fm)
		if err != nil {
			return nil, err
		}
		if len(es) == 1 { // the usual reactive entry: one allocation
			one := &struct {
				fm  ofp.FlowMod
				ptr [1]*ofp.FlowMod
			}{}
			es[0].flowMod(&one.fm)
			one.ptr[0] = &one.fm
			return one.ptr[:], nil
		}
		return appendFlowMods(make([]*ofp.FlowMod, 0, len(es)), es), nil
	case ofp.FlowDelete, ofp.FlowDeleteStrict:
		return deleteMods(v, vdpid, fm, fm.Command == ofp.FlowDeleteStrict)
	case ofp.FlowModify, ofp.FlowModifyStrict:
		dels, err := deleteMods(v, vdpid, fm, fm.Command == ofp.FlowModifyStrict)
		if err != nil {
			return nil, err
		}
		add := *fm
		add.Command = ofp.FlowAdd
		es, err := AddEntries(v, vdpid, &add)
		if err != nil {
			return nil, err
		}
		return appendFlowMods(dels, es), nil
	}
	return nil, errf(ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedBadCommand, "flow-mod command %d", fm.Command)
}

// appendFlowMods appends the OFPFC_ADD flow-mods of es (Entry.FlowMod) to
// dst; the flow-mods are allocated together.
func appendFlowMods(dst []*ofp.FlowMod, es []Entry) []*ofp.FlowMod {
	if len(es) == 0 {
		return dst
	}
	fms := make([]ofp.FlowMod, len(es))
	for i := range es {
		es[i].flowMod(&fms[i])
		dst = append(dst, &fms[i])
	}
	return dst
}

// vmatch is a tenant match split into what the pipeline rewrites.
type vmatch struct {
	sw     *VSwitch
	inPort uint16 // vport index, 0 = any
	rest   []ofp.XM
	never  bool // the match can never hit (eth_src not a host of the tenant)
}

// The results of groupCopies: shared, never modified.
var (
	copiesUnicast = []bool{false}
	copiesGroup   = []bool{true}
	copiesBoth    = []bool{false, true}
)

// groupCopies returns the values of the metadata group bit an entry with
// this match can meet: only 0 when it matches a unicast eth_dst, only 1
// for a group eth_dst, both otherwise (the group bit is set at ingress
// exactly when the destination's I/G bit is). The slice is shared: do not
// modify it.
func (vm *vmatch) groupCopies() []bool {
	for _, f := range vm.rest {
		if f.Type != ofp.XMTypeEthDst || len(f.Value) != 6 {
			continue
		}
		if len(f.Mask) == 6 && f.Mask[0]&0x01 == 0 {
			break // I/G bit not matched
		}
		if f.Value[0]&0x01 != 0 {
			return copiesGroup
		}
		return copiesUnicast
	}
	return copiesBoth
}

// translateMatch splits m; the fields kept (rewritten) are appended to
// rest[:0], so a caller can pass a buffer of its own.
func translateMatch(v *View, vdpid topology.DPID, table ofp.Table, m *ofp.Match, forDelete bool, rest []ofp.XM) (vmatch, error) {
	sw, ok := v.SwitchByDPID(vdpid)
	if !ok {
		return vmatch{}, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPort, "tenant %q has no virtual switch %s", v.Name, vdpid)
	}
	if table >= ofp.Table(NumTenantTables) && !(forDelete && table == ofp.TableAll) {
		return vmatch{}, errf(ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedBadTableID, "virtual table %d: only tables 0-%d exist", table, NumTenantTables-1)
	}
	vm := vmatch{sw: sw, rest: rest[:0]}
	for _, f := range m.Fields {
		if f.Class != ofp.XMClassOpenflowBasic {
			return vmatch{}, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadField, "OXM class %#x is not supported", uint16(f.Class))
		}
		switch f.Type {
		case ofp.XMTypeInPort:
			if len(f.Value) != 4 || len(f.Mask) != 0 {
				return vmatch{}, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadLen, "in_port must be 4 bytes, unmasked")
			}
			p := binary.BigEndian.Uint32(f.Value)
			vi, ok := v.PortOf(sw.Index, p)
			if !ok {
				if forDelete {
					vm.never = true
					continue
				}
				return vmatch{}, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadValue, "in_port %d is not a port of virtual switch %s", p, vdpid)
			}
			vm.inPort = vi
		case ofp.XMTypeEthSrc:
			if len(f.Value) != 6 {
				return vmatch{}, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadLen, "eth_src must be 6 bytes")
			}
			if len(f.Mask) != 0 && addr.MAC(f.Mask) != addr.Broadcast {
				return vmatch{}, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadMask, "masked eth_src is not supported (sources are rewritten to fabric MACs)")
			}
			hs, ok := v.hostSlot(addr.MAC(f.Value))
			if !ok {
				vm.never = true // no such source can reach the tenant tables
				continue
			}
			vm.rest = append(vm.rest, v.fabricSrcXM(hs))
		case ofp.XMTypeMetadata, ofp.XMTypeTunnelID, ofp.XMTypeInPhyPort:
			return vmatch{}, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadField, "match field %s is reserved by the hypervisor", f.Type)
		default:
			vm.rest = append(vm.rest, f)
		}
	}
	return vm, nil
}

// metaMatch returns the metadata OXM of one variant.
func (vm *vmatch) metaMatch(v *View, inPort uint16, group *bool) ofp.XM {
	return vm.metaMatchIn(v, inPort, group, make([]byte, 16))
}

// metaMatchIn is metaMatch with the OXM's value and mask in buf (16
// bytes).
func (vm *vmatch) metaMatchIn(v *View, inPort uint16, group *bool, buf []byte) ofp.XM {
	val := uint64(v.ID)<<MetaTenantShift | uint64(vm.sw.Index)
	mask := MetaTenantMask | MetaSwitchMask
	if inPort != 0 {
		val |= uint64(inPort) << MetaVPortShift
		mask |= MetaVPortMask
	}
	if group != nil {
		mask |= MetaGroup
		if *group {
			val |= MetaGroup
		}
	}
	binary.BigEndian.PutUint64(buf[0:8], val)
	binary.BigEndian.PutUint64(buf[8:16], mask)
	return ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeMetadata, Value: buf[0:8:8], Mask: buf[8:16:16]}
}

func physPriority(p uint16) uint16 {
	if p == 0 {
		return 1 // keep the hypervisor's table-miss (priority 0) below every tenant entry
	}
	return p
}

func tenantCookie(v *View, c uint64) (uint64, error) {
	if c&^appCookieMask != 0 {
		return 0, errf(ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedUnknown, "cookie %#x does not fit in 48 bits (the top 16 carry the tenant ID)", c)
	}
	return TenantCookie(v.ID, c), nil
}

// AddEntries translates an OFPFC_ADD (or the add half of a modify) into
// physical entries: two copies (metadata group bit 0 and 1; one when the
// match's eth_dst decides the I/G bit) and, when the
// actions flood or output to a virtual link and the match names no in_port,
// one variant per in-port of the virtual switch (so the in-port can be left
// out of the flood and a frame never goes back over the link it came
// from). An entry whose eth_src is not one of the tenant's hosts yields no
// entries and no error (it could never match).
func AddEntries(v *View, vdpid topology.DPID, fm *ofp.FlowMod) ([]Entry, error) {
	var restBuf [8]ofp.XM
	vm, err := translateMatch(v, vdpid, fm.Table, &fm.Match, false, restBuf[:0])
	if err != nil {
		return nil, err
	}
	cookie, err := tenantCookie(v, fm.Cookie)
	if err != nil {
		return nil, err
	}
	if fm.Buffer != ofp.NoBuffer && fm.Buffer != 0 {
		return nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBufferUnknown, "buffer %d: the hypervisor does not buffer packets", fm.Buffer)
	}
	needVariants, err := checkInstructions(v, vm.sw, fm)
	if err != nil {
		return nil, err
	}
	if vm.never {
		return nil, nil
	}
	one := [1]uint16{vm.inPort}
	inPorts := one[:]
	if vm.inPort == 0 && needVariants {
		inPorts = vm.sw.Ports
	}
	copies := vm.groupCopies()
	n := len(inPorts) * len(copies)
	if n == 0 {
		return nil, nil
	}
	// The hot path of every tenant app's flow-mod (a reactive app installs
	// one per packet-in): a single variant with a short match and at most
	// two actions (a learned unicast entry) takes one allocation; otherwise
	// the variants' entries, matches, metadata bytes, instructions and
	// actions take one allocation each, whatever their number. The actions
	// that depend on the view only are shared (xlatCache).
	ml := 1 + len(vm.rest)
	var (
		out     []Entry
		matches []ofp.XM
		md      []byte
		ib      insBuilder
	)
	if n == 1 && ml <= oneVariantFields && fitsOneVariant(vm.sw, fm) {
		one := new(oneVariant)
		out, matches, md = one.entry[:0], one.match[:ml], one.md[:]
		ib = insBuilder{ins: one.ins[:0], apply: one.apply[:0], acts: one.acts[:0]}
	} else {
		out = make([]Entry, 0, n)
		matches = make([]ofp.XM, n*ml)
		md = make([]byte, 16*n)
		ib = newInsBuilder(vm.sw, fm, n)
	}
	for _, in := range inPorts {
		for _, group := range copies {
			k := len(out)
			ins, err := ib.variant(v, vm.sw, fm, in, group)
			if err != nil {
				return nil, err
			}
			match := matches[k*ml : (k+1)*ml : (k+1)*ml]
			match[0] = vm.metaMatchIn(v, in, &group, md[16*k:16*(k+1):16*(k+1)])
			copy(match[1:], vm.rest)
			out = append(out, Entry{
				Table: TableTenant + uint8(fm.Table), Priority: physPriority(fm.Priority), Match: match,
				Instructions: ins, Cookie: cookie, IdleTimeout: fm.IdleTimeout, HardTimeout: fm.HardTimeout,
				Flags: fm.Flags &^ ofp.FlowFlagCheckOverlap,
			})
		}
	}
	return out, nil
}

// checkInstructions refuses what cannot be translated and reports whether
// the actions need per-in-port variants.
func checkInstructions(v *View, sw *VSwitch, fm *ofp.FlowMod) (bool, error) {
	need := false
	for _, in := range fm.Instructions {
		switch in := in.(type) {
		case *ofp.InstructionApplyActions:
			for _, a := range in.Actions {
				n, err := checkAction(v, sw, a)
				if err != nil {
					return false, err
				}
				need = need || n
			}
		case *ofp.InstructionGotoTable:
			if in.Table <= fm.Table || in.Table >= ofp.Table(NumTenantTables) {
				return false, errf(ofp.ErrTypeBadInstruction, ofp.ErrCodeBadInstructionTableID, "goto_table %d from table %d: must go forward to a table below %d", in.Table, fm.Table, NumTenantTables)
			}
		case *ofp.InstructionClearActions:
		case *ofp.InstructionWriteMetadata:
			return false, errf(ofp.ErrTypeBadInstruction, ofp.ErrCodeBadInstructionUnsupportedMetadata, "write_metadata: metadata is reserved by the hypervisor")
		case *ofp.InstructionWriteActions:
			return false, errf(ofp.ErrTypeBadInstruction, ofp.ErrCodeBadInstructionUnsupported, "write_actions is not supported; use apply_actions")
		default:
			return false, errf(ofp.ErrTypeBadInstruction, ofp.ErrCodeBadInstructionUnsupported, "instruction type %d is not supported", in.Type())
		}
	}
	return need, nil
}

func checkAction(v *View, sw *VSwitch, a ofp.Action) (bool, error) {
	switch a := a.(type) {
	case *ofp.ActionOutput:
		switch p := a.Port; {
		case p == ofp.PortFlood || p == ofp.PortAll:
			return true, nil
		case p == ofp.PortController:
			return false, nil
		case p <= ofp.PortMax:
			vi, ok := v.PortOf(sw.Index, uint32(p))
			if !ok {
				return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort, "output:%d is not a port of virtual switch %s", p, sw.DPID)
			}
			return v.Ports[vi-1].Peer != 0, nil
		default:
			return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort, "output to reserved port %#x is not supported", uint32(p))
		}
	case *ofp.ActionSetField:
		f := a.Field
		if f.Class != ofp.XMClassOpenflowBasic || len(f.Mask) != 0 {
			return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetType, "set_field: only unmasked OpenFlow basic fields")
		}
		switch f.Type {
		case ofp.XMTypeEthSrc:
			if _, ok := v.HostByMAC(addr.MAC(f.Value)); len(f.Value) != 6 || !ok {
				return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetArgument, "set_field eth_src=%x: not one of the tenant's host MACs", []byte(f.Value))
			}
		case ofp.XMTypeEthDst:
			if len(f.Value) != 6 {
				return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetArgument, "set_field eth_dst: 6 bytes")
			}
			if m := addr.MAC(f.Value); m.IsUnicast() {
				if _, ok := v.HostByMAC(m); !ok {
					return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetArgument, "set_field eth_dst=%v: not one of the tenant's host MACs", m)
				}
			}
		case ofp.XMTypeMetadata, ofp.XMTypeTunnelID, ofp.XMTypeInPort, ofp.XMTypeInPhyPort:
			return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionSetType, "set_field %s is reserved by the hypervisor", f.Type)
		}
		return false, nil
	case *ofp.ActionPushVLAN, *ofp.ActionPopVLAN, *ofp.ActionPushMPLS, *ofp.ActionPopMPLS,
		*ofp.ActionCopyTTLOut, *ofp.ActionCopyTTLIn, *ofp.ActionSetMPLSTTL, *ofp.ActionDecMPLSTTL,
		*ofp.ActionSetNetworkTTL, *ofp.ActionDecNetworkTTL:
		return false, nil
	case *ofp.ActionGroup:
		return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutGroup, "groups are not virtualized")
	case *ofp.ActionSetQueue:
		return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionQueue, "queues are not virtualized")
	case *ofwire.ExperimenterAction, *ofp.ActionExperimenter:
		return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionExperimenter, "experimenter actions are not allowed")
	}
	return false, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionType, "action %T is not supported", a)
}

// oneVariant holds an entry of AddEntries with a single variant, a match of
// at most four fields and at most one instruction with at most two actions
// (fitsOneVariant), in one allocation.
type oneVariant struct {
	entry [1]Entry
	match [oneVariantFields]ofp.XM
	md    [16]byte
	ins   [1]ofp.Instruction
	apply [1]ofp.InstructionApplyActions
	acts  [2]ofp.Action
}

// oneVariantFields is the room for match fields in a oneVariant.
const oneVariantFields = 4

// fitsOneVariant reports whether fm's instructions fit in a oneVariant.
func fitsOneVariant(sw *VSwitch, fm *ofp.FlowMod) bool {
	switch len(fm.Instructions) {
	case 0:
		return true
	case 1:
		in, ok := fm.Instructions[0].(*ofp.InstructionApplyActions)
		return !ok || actionsBound(sw, in.Actions) <= 2
	}
	return false
}

// insBuilder builds the physical instructions of an entry's variants in
// three shared backing arrays (instructions, apply-actions, actions), each
// variant's slices capped so that none can grow into another's.
type insBuilder struct {
	ins   ofp.Instructions
	apply []ofp.InstructionApplyActions
	acts  ofp.Actions
}

// newInsBuilder sizes the arrays for n variants of fm on sw.
func newInsBuilder(sw *VSwitch, fm *ofp.FlowMod, n int) insBuilder {
	var nApply, nActs int
	for _, in := range fm.Instructions {
		if in, ok := in.(*ofp.InstructionApplyActions); ok {
			nApply++
			nActs += actionsBound(sw, in.Actions)
		}
	}
	return insBuilder{ins: make(ofp.Instructions, 0, n*len(fm.Instructions)),
		apply: make([]ofp.InstructionApplyActions, 0, n*nApply), acts: make(ofp.Actions, 0, n*nActs)}
}

// actionsBound is an upper bound of the number of physical actions acts
// translate into on sw.
func actionsBound(sw *VSwitch, acts ofp.Actions) int {
	n := 0
	for _, a := range acts {
		if o, ok := a.(*ofp.ActionOutput); ok && (o.Port == ofp.PortFlood || o.Port == ofp.PortAll) {
			n += len(sw.Ports)
		} else {
			n++
		}
	}
	return n
}

// variant builds the physical instructions of one variant (in-port vport
// index, 0 = unknown; group bit); nil when fm has none.
func (b *insBuilder) variant(v *View, sw *VSwitch, fm *ofp.FlowMod, inPort uint16, group bool) (ofp.Instructions, error) {
	start := len(b.ins)
	for _, in := range fm.Instructions {
		switch in := in.(type) {
		case *ofp.InstructionApplyActions:
			as := len(b.acts)
			for _, a := range in.Actions {
				var err error
				if b.acts, err = appendAction(b.acts, v, sw, a, inPort, group); err != nil {
					return nil, err
				}
			}
			var acts ofp.Actions
			if n := len(b.acts); n > as {
				acts = b.acts[as:n:n]
			}
			b.apply = append(b.apply, ofp.InstructionApplyActions{Actions: acts})
			b.ins = append(b.ins, &b.apply[len(b.apply)-1])
		case *ofp.InstructionGotoTable:
			b.ins = append(b.ins, Goto(TableTenant+uint8(in.Table)))
		case *ofp.InstructionClearActions:
			b.ins = append(b.ins, &ofp.InstructionClearActions{})
		}
	}
	n := len(b.ins)
	if n == start {
		return nil, nil
	}
	return b.ins[start:n:n], nil
}

// appendAction appends the physical actions of tenant action a (checked
// by checkAction) to dst.
func appendAction(dst ofp.Actions, v *View, sw *VSwitch, a ofp.Action, inPort uint16, group bool) (ofp.Actions, error) {
	switch a := a.(type) {
	case *ofp.ActionOutput:
		switch p := a.Port; {
		case p == ofp.PortController:
			return append(dst, &ofp.ActionOutput{Port: ofp.PortController, MaxLen: a.MaxLen}), nil
		case p == ofp.PortFlood || p == ofp.PortAll:
			for _, vi := range sw.Ports {
				if vi == inPort {
					continue
				}
				c, err := toVPort(v, vi, group)
				if err != nil {
					return nil, err
				}
				dst = append(dst, c)
			}
			return dst, nil
		default:
			vi, _ := v.PortOf(sw.Index, uint32(p))
			if vi == inPort {
				return dst, nil // OpenFlow never outputs to the in-port implicitly
			}
			c, err := toVPort(v, vi, group)
			if err != nil {
				return nil, err
			}
			return append(dst, c), nil
		}
	case *ofp.ActionSetField:
		if a.Field.Type == ofp.XMTypeEthSrc {
			hs, _ := v.hostSlot(addr.MAC(a.Field.Value))
			return append(dst, v.fabricSetSrc(hs)), nil
		}
	}
	return append(dst, a), nil
}

// deleteMods translates OFPFC_DELETE(_STRICT) (and the delete half of a
// modify). The physical deletes are confined to the tenant by the cookie
// (tenant ID in the top 16 bits, cookie mask covering them) and to the
// virtual switch by the metadata match.
func deleteMods(v *View, vdpid topology.DPID, fm *ofp.FlowMod, strict bool) ([]*ofp.FlowMod, error) {
	if fm.OutPort != ofp.PortAny && fm.OutPort != 0 || fm.OutGroup != ofp.GroupAny && fm.OutGroup != 0 {
		return nil, errf(ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedUnknown, "out_port/out_group filters are not supported on virtual switches")
	}
	table := fm.Table
	if strict && table == ofp.TableAll {
		return nil, errf(ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedBadTableID, "strict delete needs one table")
	}
	vm, err := translateMatch(v, vdpid, table, &fm.Match, true, nil)
	if err != nil {
		return nil, err
	}
	if fm.Cookie&fm.CookieMask&^appCookieMask != 0 {
		return nil, nil // no tenant entry can carry such a cookie
	}
	if vm.never {
		return nil, nil
	}
	cookie := TenantCookie(v.ID, fm.Cookie&fm.CookieMask)
	mask := uint64(0xffff)<<48 | fm.CookieMask&appCookieMask
	ptable := ofp.TableAll
	if table != ofp.TableAll {
		ptable = ofp.Table(TableTenant) + table
	}
	mk := func(cmd ofp.FlowModCommand, match []ofp.XM) *ofp.FlowMod {
		return &ofp.FlowMod{Cookie: cookie, CookieMask: mask, Table: ptable, Command: cmd,
			Priority: physPriority(fm.Priority), Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: match}}
	}
	if !strict {
		return []*ofp.FlowMod{mk(ofp.FlowDelete, append([]ofp.XM{vm.metaMatch(v, vm.inPort, nil)}, vm.rest...))}, nil
	}
	inPorts := []uint16{vm.inPort}
	if vm.inPort == 0 {
		inPorts = append(inPorts, vm.sw.Ports...)
	}
	var out []*ofp.FlowMod
	for _, in := range inPorts {
		for _, group := range vm.groupCopies() {
			out = append(out, mk(ofp.FlowDeleteStrict, append([]ofp.XM{vm.metaMatch(v, in, &group)}, vm.rest...)))
		}
	}
	return out, nil
}
