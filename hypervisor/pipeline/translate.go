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
		out := make([]*ofp.FlowMod, len(es))
		for i := range es {
			out[i] = es[i].FlowMod()
		}
		return out, nil
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
		for i := range es {
			dels = append(dels, es[i].FlowMod())
		}
		return dels, nil
	}
	return nil, errf(ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedBadCommand, "flow-mod command %d", fm.Command)
}

// vmatch is a tenant match split into what the pipeline rewrites.
type vmatch struct {
	sw     *VSwitch
	inPort uint16 // vport index, 0 = any
	rest   []ofp.XM
	never  bool // the match can never hit (eth_src not a host of the tenant)
}

// groupCopies returns the values of the metadata group bit an entry with
// this match can meet: only 0 when it matches a unicast eth_dst, only 1
// for a group eth_dst, both otherwise (the group bit is set at ingress
// exactly when the destination's I/G bit is).
func (vm *vmatch) groupCopies() []bool {
	for _, f := range vm.rest {
		if f.Type != ofp.XMTypeEthDst || len(f.Value) != 6 {
			continue
		}
		if len(f.Mask) == 6 && f.Mask[0]&0x01 == 0 {
			break // I/G bit not matched
		}
		return []bool{f.Value[0]&0x01 != 0}
	}
	return []bool{false, true}
}

func translateMatch(v *View, vdpid topology.DPID, table ofp.Table, m *ofp.Match, forDelete bool) (*vmatch, error) {
	sw, ok := v.SwitchByDPID(vdpid)
	if !ok {
		return nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPort, "tenant %q has no virtual switch %s", v.Name, vdpid)
	}
	if table >= ofp.Table(NumTenantTables) && !(forDelete && table == ofp.TableAll) {
		return nil, errf(ofp.ErrTypeFlowModFailed, ofp.ErrCodeFlowModFailedBadTableID, "virtual table %d: only tables 0-%d exist", table, NumTenantTables-1)
	}
	vm := &vmatch{sw: sw}
	for _, f := range m.Fields {
		if f.Class != ofp.XMClassOpenflowBasic {
			return nil, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadField, "OXM class %#x is not supported", uint16(f.Class))
		}
		switch f.Type {
		case ofp.XMTypeInPort:
			if len(f.Value) != 4 || len(f.Mask) != 0 {
				return nil, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadLen, "in_port must be 4 bytes, unmasked")
			}
			p := binary.BigEndian.Uint32(f.Value)
			vi, ok := v.PortOf(sw.Index, p)
			if !ok {
				if forDelete {
					vm.never = true
					continue
				}
				return nil, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadValue, "in_port %d is not a port of virtual switch %s", p, vdpid)
			}
			vm.inPort = vi
		case ofp.XMTypeEthSrc:
			if len(f.Value) != 6 {
				return nil, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadLen, "eth_src must be 6 bytes")
			}
			if len(f.Mask) != 0 && addr.MAC(f.Mask) != addr.Broadcast {
				return nil, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadMask, "masked eth_src is not supported (sources are rewritten to fabric MACs)")
			}
			h, ok := v.HostByMAC(addr.MAC(f.Value))
			if !ok {
				vm.never = true // no such source can reach the tenant tables
				continue
			}
			vm.rest = append(vm.rest, EthSrc(addr.FabricMAC(v.ID, h.Index)))
		case ofp.XMTypeMetadata, ofp.XMTypeTunnelID, ofp.XMTypeInPhyPort:
			return nil, errf(ofp.ErrTypeBadMatch, ofp.ErrCodeBadMatchBadField, "match field %s is reserved by the hypervisor", f.Type)
		default:
			vm.rest = append(vm.rest, f)
		}
	}
	return vm, nil
}

// metaMatch returns the metadata OXM of one variant.
func (vm *vmatch) metaMatch(v *View, inPort uint16, group *bool) ofp.XM {
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
	return Metadata(val, mask)
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
	vm, err := translateMatch(v, vdpid, fm.Table, &fm.Match, false)
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
	inPorts := []uint16{vm.inPort}
	if vm.inPort == 0 && needVariants {
		inPorts = vm.sw.Ports
	}
	var out []Entry
	for _, in := range inPorts {
		for _, group := range vm.groupCopies() {
			ins, err := translateInstructions(v, vm.sw, fm, in, group)
			if err != nil {
				return nil, err
			}
			match := append([]ofp.XM{vm.metaMatch(v, in, &group)}, vm.rest...)
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

// translateInstructions builds the physical instructions of one variant
// (in-port vport index, 0 = unknown; group bit).
func translateInstructions(v *View, sw *VSwitch, fm *ofp.FlowMod, inPort uint16, group bool) (ofp.Instructions, error) {
	var out ofp.Instructions
	for _, in := range fm.Instructions {
		switch in := in.(type) {
		case *ofp.InstructionApplyActions:
			var acts ofp.Actions
			for _, a := range in.Actions {
				as, err := translateAction(v, sw, a, inPort, group)
				if err != nil {
					return nil, err
				}
				acts = append(acts, as...)
			}
			out = append(out, Apply(acts...))
		case *ofp.InstructionGotoTable:
			out = append(out, Goto(TableTenant+uint8(in.Table)))
		case *ofp.InstructionClearActions:
			out = append(out, &ofp.InstructionClearActions{})
		}
	}
	return out, nil
}

// toVPort returns the actions that send the packet out of vport vi: a
// clone that sets the destination fabric MAC and resubmits to table 20 for
// a host port; a clone that moves the packet to the peer port's switch and
// resubmits to table 10 for a link port.
func toVPort(v *View, vi uint16, group bool) (ofp.Action, error) {
	p := &v.Ports[vi-1]
	if p.Host != nil {
		dst := addr.FabricMAC(v.ID, p.Host.Index)
		if group {
			dst = addr.GroupMAC(v.ID, p.Host.Index)
		}
		return Clone(SetField(EthDst(dst)), Resubmit(TableFabricOut))
	}
	peer := &v.Ports[p.Peer-1]
	md := MetadataValue(v.ID, peer.Index, peer.Switch, group)
	return Clone(SetField(basic(ofp.XMTypeMetadata, binary.BigEndian.AppendUint64(nil, md), nil)), Resubmit(TableTenant))
}

func translateAction(v *View, sw *VSwitch, a ofp.Action, inPort uint16, group bool) (ofp.Actions, error) {
	switch a := a.(type) {
	case *ofp.ActionOutput:
		switch p := a.Port; {
		case p == ofp.PortController:
			return ofp.Actions{&ofp.ActionOutput{Port: ofp.PortController, MaxLen: a.MaxLen}}, nil
		case p == ofp.PortFlood || p == ofp.PortAll:
			var acts ofp.Actions
			for _, vi := range sw.Ports {
				if vi == inPort {
					continue
				}
				c, err := toVPort(v, vi, group)
				if err != nil {
					return nil, err
				}
				acts = append(acts, c)
			}
			return acts, nil
		default:
			vi, _ := v.PortOf(sw.Index, uint32(p))
			if vi == inPort {
				return nil, nil // OpenFlow never outputs to the in-port implicitly
			}
			c, err := toVPort(v, vi, group)
			if err != nil {
				return nil, err
			}
			return ofp.Actions{c}, nil
		}
	case *ofp.ActionSetField:
		if a.Field.Type == ofp.XMTypeEthSrc {
			h, _ := v.HostByMAC(addr.MAC(a.Field.Value))
			return ofp.Actions{SetField(EthSrc(addr.FabricMAC(v.ID, h.Index)))}, nil
		}
		return ofp.Actions{a}, nil
	}
	return ofp.Actions{a}, nil
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
	vm, err := translateMatch(v, vdpid, table, &fm.Match, true)
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
