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
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// The virtual flow table. Each virtual switch keeps the entries its apps
// installed, as they installed them (virtual table, priority, match,
// instructions, app cookie, timeouts, flags), with their translation and
// the physical copies the translation put on the edge bridges (one per
// bridge and physical entry: group copies, per-in-port variants). It is
// what makes one virtual switch behave as one OpenFlow switch
// (OpenFlow 1.3.5 §5.2, §6.4) although its entries live on several
// bridges:
//
//   - FlowStats reports each virtual entry once, as installed, with the
//     counters of all its copies summed (stats.go);
//   - a flow-removed (§7.4.2) is delivered once per virtual entry: when its
//     last copy is removed by a timeout (idle or hard), or when the
//     copies of an entry the app deleted are all gone, with the summed
//     counters, and only if the app set OFPFF_SEND_FLOW_REM. The physical
//     copies always carry OFPFF_SEND_FLOW_REM, so that copies expiring on
//     their own are known (and expired entries are forgotten);
//   - OFPFC_MODIFY(_STRICT) changes the instructions of the matching
//     entries in place (physical MODIFY_STRICT of the copies that keep
//     their key, counters kept; OFPFF_RESET_COUNTS honoured);
//   - Replay puts the entries onto a bridge that (re)connects or joins the
//     switch (Antrea's flow replay after an OVS restart), after the
//     deletes it missed while it was away.

// frSlack is how much longer than the time since a copy was installed a
// flow-removed's duration may be and still be that copy's (clock and
// queueing delays); a longer one is of an older entry with the same key.
const frSlack = 2 * time.Second

// maxPendingDeletes bounds the deletes kept per disconnected bridge; the
// oldest are dropped beyond it (logged: stale entries may then remain on
// that bridge until they time out).
const maxPendingDeletes = 4096

// copyID names one physical copy: a bridge and the physical entry's key.
type copyID struct {
	bridge controller.DPID
	key    string
}

// physCopy is what is known of one physical copy.
type physCopy struct {
	installed time.Time // when it was added (found by a replay: now minus its duration)
	retiring  bool      // deleted because its variant was dropped: its flow-removed only adds its counters
}

// vflow is one virtual flow entry.
type vflow struct {
	v       pipeline.Entry   // as the app installed it (own copy), match normalized
	key     string           // v.Key()
	phys    []pipeline.Entry // its translation (own copies, OFPFF_SEND_FLOW_REM set)
	view    *pipeline.View   // the view phys was translated in
	pkeys   []string         // phys[i].Key()
	copies  map[copyID]physCopy
	packets uint64 // counters of copies already removed
	bytes   uint64
	added   time.Time
	removed bool // no longer in the table (deleted, replaced or expired)
	notify  bool // removed by the app's delete: a flow-removed is due when the last copy is gone
	done    bool // its flow-removed was delivered or is not due: only absorbs retiring copies
}

// live counts the copies that are not retiring.
func (vf *vflow) live() int {
	n := 0
	for _, c := range vf.copies {
		if !c.retiring {
			n++
		}
	}
	return n
}

// physByKey returns vf's physical entry with key k.
func (vf *vflow) physByKey(k string) (*pipeline.Entry, bool) {
	for i := range vf.phys {
		if vf.pkeys[i] == k {
			return &vf.phys[i], true
		}
	}
	return nil, false
}

// flowTable is one virtual switch's table (Switch.mu held for every use).
type flowTable struct {
	flows   map[string]*vflow                  // live entries by virtual key
	byPhys  map[string][]*vflow                // physical key -> entries with a copy of it, oldest first
	pending map[controller.DPID][]*ofp.FlowMod // deletes a disconnected bridge missed
}

func (t *flowTable) init() {
	if t.flows == nil {
		t.flows, t.byPhys, t.pending = map[string]*vflow{}, map[string][]*vflow{}, map[controller.DPID][]*ofp.FlowMod{}
	}
}

// addCopy records copy id of vf.
func (t *flowTable) addCopy(vf *vflow, id copyID, c physCopy) {
	vf.copies[id] = c
	if !slices.Contains(t.byPhys[id.key], vf) {
		t.byPhys[id.key] = append(t.byPhys[id.key], vf)
	}
}

// dropCopy forgets copy id of vf (and vf under its key when it was the last
// copy of that key).
func (t *flowTable) dropCopy(vf *vflow, id copyID) {
	delete(vf.copies, id)
	for o := range vf.copies {
		if o.key == id.key {
			return
		}
	}
	l := slices.DeleteFunc(t.byPhys[id.key], func(x *vflow) bool { return x == vf })
	if len(l) == 0 {
		delete(t.byPhys, id.key)
	} else {
		t.byPhys[id.key] = l
	}
}

// liveByPhys returns the table's entry that physical key k belongs to.
func (t *flowTable) liveByPhys(k string) *vflow {
	l := t.byPhys[k]
	for i := len(l) - 1; i >= 0; i-- {
		if !l[i].removed {
			return l[i]
		}
	}
	return nil
}

// addPending remembers deletes bridge b missed.
func (s *Switch) addPending(b controller.DPID, fms ...*ofp.FlowMod) {
	p := append(s.tab.pending[b], fms...)
	if n := len(p) - maxPendingDeletes; n > 0 {
		s.log.Warn("vnet: too many deletes for a disconnected bridge; the oldest are dropped", "bridge", b, "dropped", n)
		p = slices.Delete(p, 0, n)
	}
	s.tab.pending[b] = p
}

// connectedBridges returns the connected edge bridges of the switch and the
// ones that are not.
func (s *Switch) connectedBridges(snap *snapshot) (conn []controller.DPID, sws []controller.Switch, away []controller.DPID) {
	for _, b := range snap.bridges[s.index-1] {
		if psw := s.t.phys.Switch(b); psw != nil {
			conn, sws = append(conn, b), append(sws, psw)
		} else {
			away = append(away, b)
		}
	}
	return conn, sws, away
}

// sendAll sends each bridge its flow-mods, in order; errors are joined.
func sendAll(ctx context.Context, conn []controller.DPID, sws []controller.Switch, fms [][]*ofp.FlowMod) error {
	var errs []error
	for i, b := range conn {
		for _, f := range fms[i] {
			if err := sws[i].FlowMod(ctx, f); err != nil {
				errs = append(errs, fmt.Errorf("bridge %s: %w", b, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// cloneInstructions deep-copies ins by encoding and decoding it.
func cloneInstructions(ins ofp.Instructions) (ofp.Instructions, error) {
	if len(ins) == 0 {
		return nil, nil
	}
	if out, ok := cloneOutputInstructions(ins); ok { // hotpath.go
		return out, nil
	}
	b, err := ofwire.AppendInstructions(nil, ins)
	if err != nil {
		return nil, fmt.Errorf("vnet: encode instructions: %w", err)
	}
	out, err := ofwire.DecodeInstructions(b)
	if err != nil {
		return nil, fmt.Errorf("vnet: decode instructions: %w", err)
	}
	return out, nil
}

// virtualEntry is the app's flow-mod as a table entry (own copy,
// normalized match; OFPFF_CHECK_OVERLAP and OFPFF_RESET_COUNTS are
// flow-mod options, not entry flags).
func virtualEntry(fm *ofp.FlowMod) (pipeline.Entry, error) {
	ins, err := cloneInstructions(fm.Instructions)
	if err != nil {
		return pipeline.Entry{}, err
	}
	return pipeline.Entry{Table: uint8(fm.Table), Priority: fm.Priority,
		Match:        cloneMatch(pipeline.NormalizeMatch(fm.Match.Fields)), // hotpath.go
		Instructions: ins, Cookie: fm.Cookie, IdleTimeout: fm.IdleTimeout, HardTimeout: fm.HardTimeout,
		Flags: fm.Flags &^ (ofp.FlowFlagCheckOverlap | ofp.FlowFlagResetCounts)}, nil
}

// translate returns ve's physical entries (own copies, with
// OFPFF_SEND_FLOW_REM so that their removal is always reported) and their
// keys. AddEntries' entries need no deep copy: they are made of ve (the
// table's own copy, never modified in place), memory of their own and the
// view's shared, immutable actions (pipeline's translation cache).
func (s *Switch) translate(snap *snapshot, ve *pipeline.Entry) ([]pipeline.Entry, []string, error) {
	es, err := pipeline.AddEntries(snap.view, topology.DPID(s.dpid), ve.FlowMod())
	if err != nil {
		return nil, nil, err
	}
	keys := make([]string, len(es))
	for i := range es {
		es[i].Flags |= ofp.FlowFlagSendFlowRem
		keys[i] = es[i].Key()
	}
	return es, keys, nil
}

// flowAdd handles OFPFC_ADD (§6.4): the entry replaces one with the same
// table, priority and match (no flow-removed for it); the new
// translation goes to every connected bridge, and copies of the old
// entry whose physical key the new one does not have are deleted.
func (s *Switch) flowAdd(ctx context.Context, snap *snapshot, fm *ofp.FlowMod) error {
	if done, err := s.readd(ctx, snap, fm); done { // hotpath.go
		return err
	}
	ve, err := virtualEntry(fm)
	if err != nil {
		return err
	}
	es, keys, err := s.translate(snap, &ve)
	if err != nil {
		return s.refuse(err)
	}
	now := time.Now()
	vf := &vflow{v: ve, key: ve.Key(), phys: es, view: snap.view, pkeys: keys, copies: map[copyID]physCopy{}, added: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tab.init()
	conn, sws, _ := s.connectedBridges(snap)
	fms := make([][]*ofp.FlowMod, len(conn))
	if old := s.tab.flows[vf.key]; old != nil {
		s.retire(old, keys, conn, fms)
	}
	for i, b := range conn {
		for j := range es {
			fms[i] = append(fms[i], es[j].FlowMod())
			s.tab.addCopy(vf, copyID{b, keys[j]}, physCopy{installed: now})
		}
	}
	s.tab.flows[vf.key] = vf
	return s.send(ctx, snap, conn, sws, fms) // replica.go
}

// retire takes old out of the table when an ADD replaces it: its copies
// whose key the new entry keeps are replaced on the connected bridges (and
// will be replayed elsewhere); the others are deleted (strict, their
// flow-removed only absorbed), or the delete is kept for a bridge that is
// away.
func (s *Switch) retire(old *vflow, keep []string, conn []controller.DPID, fms [][]*ofp.FlowMod) {
	old.removed, old.done = true, true
	delete(s.tab.flows, old.key)
	for id, c := range old.copies {
		i := slices.Index(conn, id.bridge)
		if c.retiring || slices.Contains(keep, id.key) {
			if !c.retiring {
				s.tab.dropCopy(old, id)
			}
			continue
		}
		e, _ := old.physByKey(id.key)
		if i < 0 {
			s.tab.dropCopy(old, id)
			s.addPending(id.bridge, e.DeleteStrict())
			continue
		}
		fms[i] = append(fms[i], e.DeleteStrict())
		c.retiring = true
		old.copies[id] = c
	}
}

// coversMatch reports whether entry matches filter in the non-strict sense
// of OpenFlow 1.3.5 §6.4 (an entry at least as specific as the filter):
// every filter field is in entry with a mask covering the filter's and the
// same value under the filter's mask.
func coversMatch(entry, filter []ofp.XM) bool {
	for _, f := range pipeline.NormalizeMatch(filter) {
		found := false
		for _, e := range entry {
			if e.Class != f.Class || e.Type != f.Type || len(e.Value) != len(f.Value) {
				continue
			}
			ok := true
			for i := range f.Value {
				fm, em := byte(0xff), byte(0xff)
				if len(f.Mask) > i {
					fm = f.Mask[i]
				}
				if len(e.Mask) > i {
					em = e.Mask[i]
				}
				if em&fm != fm || e.Value[i]&fm != f.Value[i]&fm {
					ok = false
					break
				}
			}
			if ok {
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

// matching returns the live entries a modify or delete names (§6.4):
// table (or OFPTT_ALL for deletes), cookie under the cookie mask, and
// for strict ones the same priority and match, else a covering match.
func (s *Switch) matching(fm *ofp.FlowMod, strict bool) []*vflow {
	if fm.Cookie&fm.CookieMask>>48 != 0 {
		return nil
	}
	var key string
	if strict {
		key = (&pipeline.Entry{Table: uint8(fm.Table), Priority: fm.Priority, Match: fm.Match.Fields}).Key()
	}
	var out []*vflow
	for _, vf := range s.tab.flows {
		if fm.Table != ofp.TableAll && ofp.Table(vf.v.Table) != fm.Table || (vf.v.Cookie^fm.Cookie)&fm.CookieMask != 0 {
			continue
		}
		if strict && vf.key != key || !strict && !coversMatch(vf.v.Match, fm.Match.Fields) {
			continue
		}
		out = append(out, vf)
	}
	slices.SortFunc(out, func(a, b *vflow) int { return a.added.Compare(b.added) })
	return out
}

// flowDelete handles OFPFC_DELETE(_STRICT): the translated deletes
// (pipeline.Translate, which also reach copies the table does not know)
// go to the connected bridges and are kept for the others; the matching
// entries leave the table, and the ones with OFPFF_SEND_FLOW_REM get one
// flow-removed (OFPRR_DELETE) once all their copies are reported removed.
func (s *Switch) flowDelete(ctx context.Context, snap *snapshot, fm *ofp.FlowMod) error {
	dels, err := pipeline.Translate(snap.view, topology.DPID(s.dpid), fm)
	if err != nil {
		return s.refuse(err)
	}
	kept := make([]*ofp.FlowMod, len(dels))
	for i, d := range dels {
		c := *d
		m := make([]ofp.XM, len(d.Match.Fields))
		for j, f := range d.Match.Fields {
			m[j] = cloneXM(f)
		}
		c.Match.Fields = m
		kept[i] = &c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tab.init()
	conn, sws, away := s.connectedBridges(snap)
	for _, b := range away {
		s.addPending(b, kept...)
	}
	fms := make([][]*ofp.FlowMod, len(conn))
	for _, vf := range s.matching(fm, fm.Command == ofp.FlowDeleteStrict) {
		if snap.replicated[s.index-1] {
			// Guarded one by one (replica.go): a strict delete of each copy
			// before the translated deletes.
			for id, c := range vf.copies {
				if i := slices.Index(conn, id.bridge); i >= 0 && !c.retiring {
					e, _ := vf.physByKey(id.key)
					fms[i] = append(fms[i], e.DeleteStrict())
				}
			}
		}
		delete(s.tab.flows, vf.key)
		vf.removed, vf.notify = true, true
		for id := range vf.copies {
			if !slices.Contains(conn, id.bridge) {
				s.tab.dropCopy(vf, id)
			}
		}
		if vf.live() == 0 {
			s.finish(vf, ofp.FlowReasonDelete)
		}
	}
	for i := range conn {
		fms[i] = append(fms[i], kept...)
	}
	return s.send(ctx, snap, conn, sws, fms)
}

// flowModify handles OFPFC_MODIFY(_STRICT) (§6.4): the instructions of
// every matching entry are replaced, its cookie, timeouts, flags, counters
// and duration kept (counters cleared with OFPFF_RESET_COUNTS). On the
// bridges, copies whose physical key stays are modified in place (strict),
// new variants added and dropped ones deleted. A modify that matches no
// entry of the table falls back to the translated delete and add
// (pipeline.Translate), as for entries installed before the table knew
// them (e.g. by an earlier run of Skyvisor).
func (s *Switch) flowModify(ctx context.Context, snap *snapshot, fm *ofp.FlowMod) error {
	strict := fm.Command == ofp.FlowModifyStrict
	s.mu.Lock()
	s.tab.init()
	matched := s.matching(fm, strict)
	s.mu.Unlock()
	if len(matched) == 0 {
		d := *fm
		d.Command = ofp.FlowDelete
		if strict {
			d.Command = ofp.FlowDeleteStrict
		}
		if err := s.flowDelete(ctx, snap, &d); err != nil {
			return err
		}
		a := *fm
		a.Command = ofp.FlowAdd
		return s.flowAdd(ctx, snap, &a)
	}
	ins, err := cloneInstructions(fm.Instructions)
	if err != nil {
		return err
	}
	type change struct {
		vf    *vflow
		v     pipeline.Entry
		phys  []pipeline.Entry
		pkeys []string
	}
	changes := make([]change, 0, len(matched))
	for _, vf := range matched {
		nv := vf.v
		nv.Instructions = ins
		es, keys, err := s.translate(snap, &nv)
		if err != nil {
			return s.refuse(err)
		}
		changes = append(changes, change{vf, nv, es, keys})
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	conn, sws, _ := s.connectedBridges(snap)
	fms := make([][]*ofp.FlowMod, len(conn))
	for _, c := range changes {
		vf := c.vf
		if vf.removed {
			continue // deleted meanwhile
		}
		newKeys := map[string]bool{}
		for _, k := range c.pkeys {
			newKeys[k] = true
		}
		for id, pc := range vf.copies {
			if pc.retiring {
				continue
			}
			i := slices.Index(conn, id.bridge)
			switch {
			case i < 0:
				// Away: replayed when it is back (stale variants deleted then).
				if !newKeys[id.key] {
					e, _ := vf.physByKey(id.key)
					s.addPending(id.bridge, e.DeleteStrict())
				}
				s.tab.dropCopy(vf, id)
			case !newKeys[id.key]:
				e, _ := vf.physByKey(id.key)
				fms[i] = append(fms[i], e.DeleteStrict())
				pc.retiring = true
				vf.copies[id] = pc
			}
		}
		for i, b := range conn {
			for j := range c.phys {
				e := &c.phys[j]
				id := copyID{b, c.pkeys[j]}
				if pc, ok := vf.copies[id]; ok && !pc.retiring {
					m := e.FlowMod()
					m.Command = ofp.FlowModifyStrict
					m.Flags |= fm.Flags & ofp.FlowFlagResetCounts
					fms[i] = append(fms[i], m)
					continue
				}
				fms[i] = append(fms[i], e.FlowMod())
				s.tab.addCopy(vf, id, physCopy{installed: now})
			}
		}
		vf.v, vf.phys, vf.pkeys, vf.view = c.v, c.phys, c.pkeys, snap.view
		if fm.Flags&ofp.FlowFlagResetCounts != 0 {
			vf.packets, vf.bytes = 0, 0
		}
	}
	return s.send(ctx, snap, conn, sws, fms)
}

// finish ends vf once its last live copy is gone: it leaves the table and,
// when the app asked for it (OFPFF_SEND_FLOW_REM), the apps get one
// flow-removed with the summed counters. Retiring copies may still be
// absorbed afterwards.
func (s *Switch) finish(vf *vflow, reason ofp.FlowRemovedReason) {
	if vf.done {
		return
	}
	vf.done = true
	if !vf.removed {
		vf.removed = true
		if s.tab.flows[vf.key] == vf {
			delete(s.tab.flows, vf.key)
		}
	}
	if len(vf.copies) == 0 {
		s.forget(vf)
	}
	if vf.v.Flags&ofp.FlowFlagSendFlowRem == 0 {
		return
	}
	d := time.Since(vf.added)
	s.enqueue(event{fr: &ofp.FlowRemoved{Cookie: vf.v.Cookie, Priority: vf.v.Priority, Reason: reason,
		Table: ofp.Table(vf.v.Table), DurationSec: uint32(d / time.Second), DurationNSec: uint32(d % time.Second),
		IdleTimeout: vf.v.IdleTimeout, HardTimeout: vf.v.HardTimeout, PacketCount: vf.packets, ByteCount: vf.bytes,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: slices.Clone(vf.v.Match)}}})
}

// flowRemoved accounts a physical copy's flow-removed from bridge b: the
// copy (of the oldest entry that has it and whose age fits) is gone, its
// counters are added to the entry's; when it was the entry's last live
// copy and it expired (idle or hard timeout), or the app had deleted it,
// the entry ends (finish). A copy deleted by someone else (OFPRR_DELETE
// of an entry the app did not delete: a migration retiring its source, an
// operator) leaves the virtual entry in the table, to be replayed, and its
// counters are not added (a migration carries them to the target's copies
// as counter offsets). It reports whether the flow-removed was of a known
// copy.
func (s *Switch) flowRemoved(b controller.DPID, fr *ofp.FlowRemoved) bool {
	k := (&pipeline.Entry{Table: uint8(fr.Table), Priority: fr.Priority, Match: fr.Match.Fields}).Key()
	id := copyID{b, k}
	age := time.Duration(fr.DurationSec)*time.Second + time.Duration(fr.DurationNSec)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tab.init()
	for _, vf := range s.tab.byPhys[k] {
		c, ok := vf.copies[id]
		if !ok || !vf.removed && !c.retiring && age > time.Since(c.installed)+frSlack {
			continue
		}
		if vf.removed || c.retiring || fr.Reason != ofp.FlowReasonDelete {
			// Not a copy deleted by someone else: that one's counters
			// are carried by the deleter (a migration's statistics
			// merge) or gone with it.
			vf.packets += fr.PacketCount
			vf.bytes += fr.ByteCount
		}
		s.tab.dropCopy(vf, id)
		switch {
		case c.retiring || vf.done:
		case vf.removed && vf.notify && vf.live() == 0:
			s.finish(vf, ofp.FlowReasonDelete)
		case !vf.removed && fr.Reason != ofp.FlowReasonDelete && vf.live() == 0:
			s.finish(vf, fr.Reason)
		}
		if vf.done && len(vf.copies) == 0 {
			s.forget(vf)
		}
		return true
	}
	return false
}

// forget removes vf from every physical key.
func (s *Switch) forget(vf *vflow) {
	for k, l := range s.tab.byPhys {
		if !slices.Contains(l, vf) {
			continue
		}
		if l = slices.DeleteFunc(l, func(x *vflow) bool { return x == vf }); len(l) == 0 {
			delete(s.tab.byPhys, k)
		} else {
			s.tab.byPhys[k] = l
		}
	}
}

// replayLocked (s.mu held) returns what brings bridge b up to date with
// the switch's table against its flow table (present: the tenant's
// entries of b by key, read after the deletes b missed): an ADD of every
// copy it lacks or holds with other instructions, cookie or flags. The
// keys of the table's entries are added to claimed. Copies of removed
// entries that are no longer on b are forgotten (their flow-removed was
// lost with b's session). An entry whose hard timeout ran out while it
// could not be on b is not replayed; one that has time left is replayed
// with the remaining time.
func (s *Switch) replayLocked(b controller.DPID, present map[string]*controller.FlowStats, claimed map[string]bool, now time.Time) []*ofp.FlowMod {
	s.tab.init()
	var fms []*ofp.FlowMod
	for _, vf := range s.tab.flows {
		for id, c := range vf.copies {
			if id.bridge == b && !c.retiring && present[id.key] == nil {
				s.tab.dropCopy(vf, id) // lost with the bridge's flow table
			}
		}
		if vf.v.HardTimeout > 0 && now.Sub(vf.added) >= time.Duration(vf.v.HardTimeout)*time.Second {
			if vf.live() == 0 {
				s.finish(vf, ofp.FlowReasonHardTimeout)
			}
			continue
		}
		for j := range vf.phys {
			e := &vf.phys[j]
			id := copyID{b, vf.pkeys[j]}
			claimed[id.key] = true
			if p := present[id.key]; p != nil && samePhys(e, p) {
				if _, ok := vf.copies[id]; !ok {
					s.tab.addCopy(vf, id, physCopy{installed: now.Add(-p.Duration())})
				}
				continue
			}
			add := *e
			if add.HardTimeout > 0 {
				left := time.Duration(add.HardTimeout)*time.Second - now.Sub(vf.added)
				add.HardTimeout = uint16(max(1, (left+time.Second-1)/time.Second))
			}
			fms = append(fms, add.FlowMod())
			s.tab.addCopy(vf, id, physCopy{installed: now})
		}
	}
	// Copies believed on b that it no longer holds.
	for k, l := range s.tab.byPhys {
		if present[k] != nil {
			continue
		}
		for _, vf := range slices.Clone(l) {
			c, ok := vf.copies[copyID{b, k}]
			if !ok || !vf.removed && !c.retiring {
				continue // live entries' copies were re-added above
			}
			s.tab.dropCopy(vf, copyID{b, k})
			if vf.notify && !vf.done && vf.live() == 0 {
				s.finish(vf, ofp.FlowReasonDelete)
			}
			if vf.done && len(vf.copies) == 0 {
				s.forget(vf)
			}
		}
	}
	return fms
}

// takePending returns and forgets the deletes bridge b missed.
func (s *Switch) takePending(b controller.DPID) []*ofp.FlowMod {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tab.init()
	p := s.tab.pending[b]
	delete(s.tab.pending, b)
	return p
}

// dropBridge forgets the copies on a bridge that is no longer an edge
// bridge of the switch, and the deletes kept for it (its entries of this
// switch can no longer match: no host of the switch is there).
func (s *Switch) dropBridge(b controller.DPID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tab.init()
	delete(s.tab.pending, b)
	for _, l := range s.tab.byPhys {
		for _, vf := range slices.Clone(l) {
			for id := range vf.copies {
				if id.bridge == b {
					s.tab.dropCopy(vf, id)
				}
			}
			if vf.removed && vf.notify && !vf.done && vf.live() == 0 {
				s.finish(vf, ofp.FlowReasonDelete)
			}
			if vf.done && len(vf.copies) == 0 {
				s.forget(vf)
			}
		}
	}
}

// samePhys reports whether the physical entry p (a flow-stats reply
// entry) is e as replay would install it: same cookie, flags and
// instructions. Timeouts are not compared: a replayed entry's hard
// timeout is what was left of it, and a live migration's clone of it has
// none while the hosts move (the migration's freeze; it gives them back),
// which a replay must not undo.
func samePhys(e *pipeline.Entry, p *controller.FlowStats) bool {
	if e.Cookie != p.Cookie || e.Flags != p.Flags {
		return false
	}
	a, err1 := ofwire.AppendInstructions(nil, pipeline.NormalizeInstructions(e.Instructions))
	b, err2 := ofwire.AppendInstructions(nil, pipeline.NormalizeInstructions(p.Instructions))
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}
