package vnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// FlowStats answers OFPMP_FLOW (spec 7.3.5.2) for the virtual switch: it
// asks every connected edge bridge of the switch for the entries of the
// requested virtual table (physical table pipeline.TableTenant+t, or all
// tenant tables for OFPTT_ALL) whose cookie is the tenant's prefix plus
// the requested app cookie bits, keeps the entries of this virtual switch
// (metadata switch index), maps each back to the virtual view (virtual
// table, the app's cookie, in_port from the metadata's virtual port, the
// host's own eth_src instead of its fabric MAC, metadata removed) and sums
// the counters of the physical copies of one virtual entry (the group
// copies and every bridge's copy; the duration is the longest). The
// request's match is applied to the mapped entries as a non-strict filter
// (every requested field present with the same value and mask).
//
// What is not mapped back: instructions (the physical actions are the
// translated clone/resubmit sequences; the reply carries none), and an
// entry that Translate expanded into per-in-port variants (FLOOD or a
// virtual-link output without an in_port match) is reported once per
// in-port, with its in_port. A priority-0 entry reads as priority 1.
// out_port/out_group filters are refused (OFPET_BAD_REQUEST).
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
	for _, r := range replies {
		for i := range r {
			p := &r[i]
			if uint8(p.Table) < pipeline.TableTenant || uint8(p.Table) >= pipeline.TableTenant+pipeline.NumTenantTables ||
				addr.TenantID(p.Cookie>>48) != s.t.id {
				continue
			}
			idx, match, ok := snap.mapMatch(p.Match.Fields)
			if !ok || idx != s.index || !matchFilter(match, req.Match.Fields) {
				continue
			}
			ve := pipeline.Entry{Table: uint8(p.Table) - pipeline.TableTenant, Priority: p.Priority, Match: match,
				Cookie: p.Cookie & (1<<48 - 1)}
			key := fmt.Sprintf("%x|%s", ve.Cookie, ve.Key())
			if a := byKey[key]; a != nil {
				a.fs.PacketCount += p.PacketCount
				a.fs.ByteCount += p.ByteCount
				if p.Duration() > a.fs.Duration() {
					a.fs.DurationSec, a.fs.DurationNSec = p.DurationSec, p.DurationNSec
				}
				continue
			}
			a := &agg{key: key, fs: controller.FlowStats{Table: ofp.Table(ve.Table), DurationSec: p.DurationSec,
				DurationNSec: p.DurationNSec, Priority: p.Priority, IdleTimeout: p.IdleTimeout, HardTimeout: p.HardTimeout,
				Flags: p.Flags, Cookie: ve.Cookie, PacketCount: p.PacketCount, ByteCount: p.ByteCount,
				Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: match}}}
			byKey[key] = a
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b *agg) int {
		if a.fs.Table != b.fs.Table {
			return int(a.fs.Table) - int(b.fs.Table)
		}
		if a.fs.Priority != b.fs.Priority {
			return int(b.fs.Priority) - int(a.fs.Priority)
		}
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	res := make([]controller.FlowStats, len(out))
	for i, a := range out {
		res[i] = a.fs
	}
	return res, nil
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

// matchFilter reports whether entry has every field of filter with the
// same value and mask (the non-strict flow-stats filter).
func matchFilter(entry, filter []ofp.XM) bool {
	for _, f := range pipeline.NormalizeMatch(filter) {
		found := false
		for _, e := range entry {
			if e.Class == f.Class && e.Type == f.Type && bytes.Equal(e.Value, f.Value) && bytes.Equal(e.Mask, f.Mask) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
