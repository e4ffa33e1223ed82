package vnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// FlowStats answers OFPMP_FLOW (spec 7.3.5.2) for the virtual switch: it
// asks every connected edge bridge of the switch for the entries of the
// requested virtual table (physical table pipeline.TableTenant+t, or all
// tenant tables for OFPTT_ALL) whose cookie is the tenant's prefix plus
// the requested app cookie bits, keeps the entries of this virtual switch
// (metadata switch index) and reports each virtual entry once:
//
//   - an entry of the switch's flow table (what the apps installed,
//     table.go) as it was installed: virtual table, priority, match,
//     instructions (virtual ports, the tenant's MACs), the app's cookie,
//     timeouts and flags, with the counters of all its physical copies
//     summed (group copies, in-port variants, every bridge's copy, and the
//     copies already removed), the duration since it was installed or the
//     longest copy's if longer (a restored or migrated copy). An entry of
//     the table with no copy on a connected bridge (its bridges are away)
//     is reported with the counters of its removed copies;
//   - a physical entry the table does not know (installed before this run
//     of Skyvisor, or restored from a snapshot) mapped back entry by entry
//     (stats.go, virtualInstructions): in_port from the metadata's virtual
//     port, the hosts' own MACs for fabric MACs, outputs to virtual ports
//     for the clone/resubmit sequences, goto_table in virtual tables; an
//     entry Translate expanded per in-port is then reported once per
//     in-port, and a priority-0 entry reads as priority 1.
//
// Counters are what the physical switch reports through Physical (the
// hypervisor adds restored snapshot and migration counter offsets). The
// request's match is applied to the virtual entries with the non-strict
// semantics of spec 6.4 (coversMatch). out_port/out_group filters are
// refused (OFPET_BAD_REQUEST).
func (s *Switch) FlowStats(ctx context.Context, req *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	snap, err := s.live("flow-stats")
	if err != nil {
		return nil, err
	}
	if req == nil {
		req = &ofp.FlowStatsRequest{Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny}
	}
	if (req.OutPort != ofp.PortAny && req.OutPort != 0) || (req.OutGroup != ofp.GroupAny && req.OutGroup != 0) {
		return nil, s.refuse(&pipeline.Error{Type: ofp.ErrTypeBadRequest, Code: ofp.ErrCodeBadRequestBadPort,
			Msg: "flow-stats: out_port/out_group filters are not virtualized"})
	}
	if req.Cookie>>48 != 0 && req.CookieMask>>48 != 0 {
		return nil, s.refuse(&pipeline.Error{Type: ofp.ErrTypeBadRequest, Code: ofp.ErrCodeBadRequestPerm,
			Msg: "flow-stats: app cookies have 48 bits"})
	}
	preq := &ofp.FlowStatsRequest{Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Cookie:     pipeline.TenantCookie(s.t.id, req.Cookie),
		CookieMask: pipeline.MetaTenantMask | req.CookieMask&(1<<48-1),
		Match:      ofp.Match{Type: ofp.MatchTypeXM}}
	switch {
	case req.Table == ofp.TableAll:
	case uint8(req.Table) < pipeline.NumTenantTables:
		preq.Table = ofp.Table(pipeline.TableTenant + uint8(req.Table))
	default:
		return nil, s.refuse(&pipeline.Error{Type: ofp.ErrTypeBadRequest, Code: ofp.ErrCodeBadRequestBadTableID,
			Msg: fmt.Sprintf("flow-stats: virtual table %d: only tables 0-%d exist", req.Table, pipeline.NumTenantTables-1)})
	}
	bs := snap.bridges[s.index-1]
	replies := make([][]controller.FlowStats, len(bs))
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		psw := s.t.phys.Switch(b)
		if psw == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := psw.FlowStats(ctx, preq)
			if err != nil {
				errs[i] = fmt.Errorf("bridge %s: %w", b, err)
			}
			replies[i] = r
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	type agg struct {
		fs  controller.FlowStats
		key string
	}
	var out []*agg
	byKey := map[string]*agg{}
	add := func(a *agg, p *controller.FlowStats) {
		a.fs.PacketCount += p.PacketCount
		a.fs.ByteCount += p.ByteCount
		if p.Duration() > a.fs.Duration() {
			a.fs.DurationSec, a.fs.DurationNSec = p.DurationSec, p.DurationNSec
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tab.init()
	known := func(vf *vflow) *agg {
		key := "t|" + vf.key
		if a := byKey[key]; a != nil {
			return a
		}
		ins, _ := cloneInstructions(vf.v.Instructions)
		d := time.Since(vf.added)
		a := &agg{key: key, fs: controller.FlowStats{Table: ofp.Table(vf.v.Table), Priority: vf.v.Priority,
			DurationSec: uint32(d / time.Second), DurationNSec: uint32(d % time.Second),
			IdleTimeout: vf.v.IdleTimeout, HardTimeout: vf.v.HardTimeout, Flags: vf.v.Flags, Cookie: vf.v.Cookie,
			PacketCount: vf.packets, ByteCount: vf.bytes,
			Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: slices.Clone(vf.v.Match)}, Instructions: ins}}
		byKey[key] = a
		out = append(out, a)
		return a
	}
	for _, r := range replies {
		for i := range r {
			p := &r[i]
			if uint8(p.Table) < pipeline.TableTenant || uint8(p.Table) >= pipeline.TableTenant+pipeline.NumTenantTables ||
				addr.TenantID(p.Cookie>>48) != s.t.id {
				continue
			}
			idx, match, ok := snap.mapMatch(p.Match.Fields)
			if !ok || idx != s.index {
				continue
			}
			if vf := s.tab.liveByPhys((&pipeline.Entry{Table: uint8(p.Table), Priority: p.Priority, Match: p.Match.Fields}).Key()); vf != nil &&
				vf.v.Cookie == p.Cookie&(1<<48-1) {
				add(known(vf), p)
				continue
			}
			ve := pipeline.Entry{Table: uint8(p.Table) - pipeline.TableTenant, Priority: p.Priority, Match: match,
				Cookie: p.Cookie & (1<<48 - 1)}
			key := fmt.Sprintf("p|%x|%s", ve.Cookie, ve.Key())
			if a := byKey[key]; a != nil {
				add(a, p)
				continue
			}
			a := &agg{key: key, fs: controller.FlowStats{Table: ofp.Table(ve.Table), DurationSec: p.DurationSec,
				DurationNSec: p.DurationNSec, Priority: p.Priority, IdleTimeout: p.IdleTimeout, HardTimeout: p.HardTimeout,
				Flags: p.Flags, Cookie: ve.Cookie, PacketCount: p.PacketCount, ByteCount: p.ByteCount,
				Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: match},
				Instructions: snap.virtualInstructions(idx, p.Instructions)}}
			byKey[key] = a
			out = append(out, a)
		}
	}
	for _, vf := range s.tab.flows {
		known(vf) // entries with no copy on a connected bridge
	}
	out = slices.DeleteFunc(out, func(a *agg) bool {
		return req.Table != ofp.TableAll && a.fs.Table != req.Table ||
			(a.fs.Cookie^req.Cookie)&req.CookieMask&(1<<48-1) != 0 ||
			!coversMatch(a.fs.Match.Fields, req.Match.Fields)
	})
	slices.SortStableFunc(out, func(a, b *agg) int {
		if a.fs.Table != b.fs.Table {
			return int(a.fs.Table) - int(b.fs.Table)
		}
		if a.fs.Priority != b.fs.Priority {
			return int(b.fs.Priority) - int(a.fs.Priority)
		}
		return strings.Compare(a.key, b.key)
	})
	res := make([]controller.FlowStats, len(out))
	for i, a := range out {
		res[i] = a.fs
	}
	return res, nil
}

// virtualInstructions maps the physical instructions of a tenant-table
// entry of virtual switch idx back to the virtual view (the inverse of
// pipeline.Translate's translateInstructions): a clone that sets a host's
// fabric (or group-marked) eth_dst and resubmits to the fabric output
// table is output to that host's virtual port; a clone that sets the
// metadata of a peer port and resubmits to the tenant tables is output to
// the link port it is the peer of; set_field eth_src of a fabric MAC is
// the host's own MAC; goto_table names the virtual table. Anything else
// is kept as it is. A FLOOD reads as the list of outputs it was expanded
// into.
func (s *snapshot) virtualInstructions(idx uint16, ins ofp.Instructions) ofp.Instructions {
	var out ofp.Instructions
	for _, in := range ins {
		switch in := in.(type) {
		case *ofp.InstructionApplyActions:
			out = append(out, &ofp.InstructionApplyActions{Actions: s.virtualActions(idx, in.Actions)})
		case *ofp.InstructionGotoTable:
			if uint8(in.Table) >= pipeline.TableTenant && uint8(in.Table) < pipeline.TableTenant+pipeline.NumTenantTables {
				out = append(out, &ofp.InstructionGotoTable{Table: in.Table - ofp.Table(pipeline.TableTenant)})
				continue
			}
			out = append(out, in)
		default:
			out = append(out, in)
		}
	}
	return out
}

// virtualActions maps one physical action list (virtualInstructions).
func (s *snapshot) virtualActions(idx uint16, acts ofp.Actions) ofp.Actions {
	out := make(ofp.Actions, 0, len(acts))
	for _, a := range acts {
		switch a := a.(type) {
		case *ofwire.ExperimenterAction:
			if a.Experimenter == pipeline.NiciraExperimenter && a.Subtype == pipeline.NXASTClone && len(a.Raw) >= 16 {
				if nested, err := ofwire.DecodeActions(a.Raw[16:]); err == nil {
					if port, ok := s.cloneTarget(idx, nested); ok {
						out = append(out, &ofp.ActionOutput{Port: ofp.PortNo(port)})
						continue
					}
				}
			}
			out = append(out, a)
		case *ofp.ActionSetField:
			f := a.Field
			if f.Class == ofp.XMClassOpenflowBasic && f.Type == ofp.XMTypeEthSrc && len(f.Value) == 6 {
				t, h := addr.Split(addr.MAC(f.Value))
				if own, ok := s.fabric[h]; ok && t == s.view.ID {
					out = append(out, pipeline.SetField(pipeline.EthSrc(own)))
					continue
				}
			}
			out = append(out, a)
		default:
			out = append(out, a)
		}
	}
	return out
}

// cloneTarget recognizes the clone of pipeline's toVPort: [set_field
// eth_dst=<fabric MAC of a host>, resubmit(,TableFabricOut)] or
// [set_field metadata=<peer port>, resubmit(,TableTenant)], and returns
// the port number of virtual switch idx it outputs to.
func (s *snapshot) cloneTarget(idx uint16, nested ofp.Actions) (uint32, bool) {
	if len(nested) != 2 {
		return 0, false
	}
	sf, ok1 := nested[0].(*ofp.ActionSetField)
	rs, ok2 := nested[1].(*ofwire.ExperimenterAction)
	if !ok1 || !ok2 || rs.Subtype != pipeline.NXASTResubmitTable || len(rs.Raw) < 13 {
		return 0, false
	}
	v := s.view
	table := rs.Raw[12]
	switch {
	case sf.Field.Type == ofp.XMTypeEthDst && len(sf.Field.Value) == 6 && table == pipeline.TableFabricOut:
		t, h := addr.Split(addr.MAC(sf.Field.Value))
		if t != v.ID {
			return 0, false
		}
		h &^= addr.GroupMark
		for i := range v.Hosts {
			if hi := &v.Hosts[i]; hi.Index == h {
				p := &v.Ports[hi.VPort-1]
				return p.Port, p.Switch == idx
			}
		}
	case sf.Field.Type == ofp.XMTypeMetadata && len(sf.Field.Value) == 8 && table == pipeline.TableTenant:
		md := binary.BigEndian.Uint64(sf.Field.Value)
		pi := int(md & pipeline.MetaVPortMask >> pipeline.MetaVPortShift)
		if addr.TenantID(md>>pipeline.MetaTenantShift) != v.ID || pi < 1 || pi > len(v.Ports) || v.Ports[pi-1].Peer == 0 {
			return 0, false
		}
		p := &v.Ports[v.Ports[pi-1].Peer-1]
		return p.Port, p.Switch == idx
	}
	return 0, false
}

// mapMatch maps a physical tenant-table match back to the virtual view:
// the virtual switch index from the metadata (ok false without a metadata
// field of this tenant naming a known switch), in_port from the virtual
// port index when the metadata matches it, a fabric eth_src of the tenant
// back to the host's own MAC; the metadata itself is dropped. Fields are
// copied.
func (s *snapshot) mapMatch(fields []ofp.XM) (uint16, []ofp.XM, bool) {
	v := s.view
	var idx uint16
	var inPort uint32
	out := make([]ofp.XM, 0, len(fields))
	for _, f := range fields {
		if f.Class != ofp.XMClassOpenflowBasic {
			out = append(out, cloneXM(f))
			continue
		}
		switch f.Type {
		case ofp.XMTypeMetadata:
			if len(f.Value) != 8 {
				return 0, nil, false
			}
			val := binary.BigEndian.Uint64(f.Value)
			mask := ^uint64(0)
			if len(f.Mask) == 8 {
				mask = binary.BigEndian.Uint64(f.Mask)
			}
			if addr.TenantID(val>>pipeline.MetaTenantShift) != v.ID || mask&pipeline.MetaSwitchMask != pipeline.MetaSwitchMask {
				return 0, nil, false
			}
			idx = uint16(val & pipeline.MetaSwitchMask)
			if idx < 1 || int(idx) > len(v.Switches) {
				return 0, nil, false
			}
			if mask&pipeline.MetaVPortMask == pipeline.MetaVPortMask {
				pi := int(val & pipeline.MetaVPortMask >> pipeline.MetaVPortShift)
				if pi < 1 || pi > len(v.Ports) {
					return 0, nil, false
				}
				inPort = v.Ports[pi-1].Port
			}
		case ofp.XMTypeEthSrc:
			if len(f.Value) == 6 && len(f.Mask) == 0 {
				t, h := addr.Split(addr.MAC(f.Value))
				if own, ok := s.fabric[h]; ok && t == v.ID {
					out = append(out, pipeline.EthSrc(own))
					continue
				}
			}
			out = append(out, cloneXM(f))
		default:
			out = append(out, cloneXM(f))
		}
	}
	if idx == 0 {
		return 0, nil, false
	}
	if inPort != 0 {
		out = append([]ofp.XM{pipeline.InPort(inPort)}, out...)
	}
	return idx, pipeline.NormalizeMatch(out), true
}

// cloneXM copies f's value and mask (flow-stats values alias the reply).
func cloneXM(f ofp.XM) ofp.XM {
	f.Value = bytes.Clone(f.Value)
	if f.Mask != nil {
		f.Mask = bytes.Clone(f.Mask)
	}
	return f
}
