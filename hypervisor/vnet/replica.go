package vnet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// Replicas: the dual write of a live migration (docs/migration.md, after
// LIME: Ghorbani et al., "Transparent, Live Migration of a
// Software-Defined Network", SoCC 2014, §4, where a virtual switch runs
// on several physical switches at once while it migrates).
//
// From its clone step on, a migration makes the target bridge a replica
// of the source (Tenant.Replicate): every virtual switch that has the
// source among its edge bridges gets the target as one more edge bridge,
// although no host of the switch is bound there yet. So every flow-mod of
// the tenant's apps (add, modify, delete) reaches both copies, the
// target's copies are accounted like any other (flow-stats summed,
// flow-removed once per virtual entry), and the target is brought up to
// date once, when it becomes a replica, by a Replay (updates the apps made
// between the clone's read of the source and the replica: the clone is
// claimed as is, timeouts aside; missing entries are added, entries the
// apps deleted meanwhile are deleted). The migration's retire step then
// finds nothing to catch up.
//
// Consistency of an update while two copies run (LIME §4: a packet must
// never be handled by the new version of a rule on one copy and the old
// version on the other, which no single switch would do; packets of an
// affected flow go to the controller until every copy has the new
// rule). A flow-mod of a switch with a replica (snapshot.replicated) is
// sent in two phases (Switch.send, sendGuarded), each ending with a
// barrier on every connected edge bridge of the switch:
//
//  1. guard: every physical entry the flow-mod touches is turned, on every
//     copy, into a "to controller" entry at the same table, priority and
//     match (apply-actions output:CONTROLLER, no buffer): an ADD replaces
//     (or creates) it with the new entry's cookie and flags, a MODIFY or
//     DELETE modifies the existing entry's instructions in place (strict,
//     same cookie: its cookie, flags and counters stay). Barriers.
//  2. write: the flow-mod itself on every copy (a MODIFY_STRICT as an ADD
//     of the new entry, which replaces the guard and, per OpenFlow 1.3.5
//     §6.4, keeps its counters unless OFPFF_RESET_COUNTS; a DELETE_STRICT
//     deletes the guard, which has the entry's cookie, and its
//     flow-removed is the entry's). Barriers.
//
// Why it is correct: before phase 2 starts every copy acknowledged its
// guards (OpenFlow 1.3.5 §6.2: a barrier reply means every earlier
// message was processed), so at any instant each copy holds, for an
// affected match, either {old or guard} (phase 1) or {guard or new}
// (phase 2): the old and the new version never coexist on two copies, and
// a packet meeting a guard goes to the controller, i.e. to the tenant's
// apps as a packet-in (OFPR_ACTION, with the entry's cookie and table), as
// LIME prescribes. The guard occupies the entry's own key, so no priority
// has to be invented (a higher-priority guard could collide with another
// entry of the tenant) and nothing is left behind: phase 2 overwrites or
// deletes every guard. Guarding the copies in parallel costs two barrier
// round trips per flow-mod; the alternative LIME allows, ordering the
// writes so that the copy that forwards first gets the entry last, needs
// to know which copy a flow enters first, which is not known while hosts
// sit on both. The app's FlowMod returns once both phases are
// acknowledged, so its Barrier (and anything it sends next) follows an
// update that every copy holds. Switches without a replica keep the one
// phase without barriers (sendAll).
//
// A non-strict delete is preceded by a strict delete of every copy of the
// entries it removes from the table, so those are guarded too; the
// translated non-strict deletes follow for copies the table does not know
// (unguarded: no app rule versions them). Phase 2 is sent even when phase
// 1 failed on a bridge (a guard must never stay); errors are joined.
//
// Unreplicate ends a replica: after a commit the target is an edge bridge
// by its hosts' bindings and the source no longer is, so nothing changes;
// after a rollback (prune) the target stops being an edge bridge of the
// switches it was a replica for and the tenant's entries on it that no
// switch spanning it accounts for are deleted (a replay that prunes),
// clones and entries written there during the migration alike.

// withReplicas returns edge bridges bs with the replicas of its bridges
// added (ordered by DPID), and whether a replica and its source are both
// in the result (t.mu held).
func (t *Tenant) withReplicas(bs []pipeline.DPID) ([]pipeline.DPID, bool) {
	repl := false
	for _, dst := range slices.Sorted(maps.Keys(t.replicas)) {
		if !slices.Contains(bs, t.replicas[dst]) {
			continue
		}
		if !slices.Contains(bs, dst) {
			bs = append(bs, dst)
		}
		repl = true
	}
	return bs, repl
}

// Replicate makes bridge dst a replica of bridge src (see above): every
// virtual switch with src among its edge bridges also runs on dst, and
// its flow-mods go to both copies in two guarded phases. dst is brought
// up to date with a Replay before Replicate returns. A closed Tenant
// ignores it. Errors: the Replay's (the replica stays set; Unreplicate
// ends it).
func (t *Tenant) Replicate(ctx context.Context, src, dst controller.DPID) error {
	if src == dst {
		return fmt.Errorf("vnet: replicate bridge %s onto itself", src)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	if t.replicas == nil {
		t.replicas = map[controller.DPID]controller.DPID{}
	}
	t.replicas[dst] = src
	t.apply(t.last)
	t.mu.Unlock()
	if err := t.Replay(ctx, dst); err != nil {
		return fmt.Errorf("vnet: replica %s of %s: %w", dst, src, err)
	}
	return nil
}

// Unreplicate ends dst's replica (Replicate); with prune, the tenant's
// entries on dst that no virtual switch spanning dst accounts for are
// deleted, except Config.Foreign ones (a rollback). It is idempotent.
// Errors: the pruning replay's.
func (t *Tenant) Unreplicate(ctx context.Context, dst controller.DPID, prune bool) error {
	t.mu.Lock()
	_, was := t.replicas[dst]
	delete(t.replicas, dst)
	if was && !t.closed {
		t.apply(t.last)
	}
	t.mu.Unlock()
	if !prune {
		return nil
	}
	if err := t.replay(ctx, dst, true); err != nil {
		return fmt.Errorf("vnet: drop replica %s: %w", dst, err)
	}
	return nil
}

// Replicas returns the replica bridges and their sources.
func (t *Tenant) Replicas() map[controller.DPID]controller.DPID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.replicas)
}

// send sends each connected bridge its flow-mods (s.mu held): in one
// phase (sendAll), or in the two guarded phases when the switch has a
// replica.
func (s *Switch) send(ctx context.Context, snap *snapshot, conn []controller.DPID, sws []controller.Switch, fms [][]*ofp.FlowMod) error {
	if !snap.replicated[s.index-1] {
		return sendAll(ctx, conn, sws, fms)
	}
	return sendGuarded(ctx, conn, sws, fms)
}

// toController is the guards' instructions.
func toController() ofp.Instructions {
	return ofp.Instructions{&ofp.InstructionApplyActions{Actions: ofp.Actions{
		&ofp.ActionOutput{Port: ofp.PortController, MaxLen: ofp.ContentLenNoBuffer}}}}
}

// guarded splits physical flow-mods fms into the guards of phase 1 and the
// writes of phase 2 (see above).
func guarded(fms []*ofp.FlowMod) (guards, writes []*ofp.FlowMod) {
	for _, f := range fms {
		switch f.Command {
		case ofp.FlowAdd:
			g := *f
			g.Instructions, g.IdleTimeout, g.HardTimeout = toController(), 0, 0
			g.Flags &^= ofp.FlowFlagResetCounts
			guards, writes = append(guards, &g), append(writes, f)
		case ofp.FlowModifyStrict:
			g := *f
			g.Instructions = toController()
			g.Flags &^= ofp.FlowFlagResetCounts
			w := *f
			w.Command = ofp.FlowAdd
			guards, writes = append(guards, &g), append(writes, &w)
		case ofp.FlowDeleteStrict:
			g := *f
			g.Command, g.Instructions = ofp.FlowModifyStrict, toController()
			guards, writes = append(guards, &g), append(writes, f)
		default:
			writes = append(writes, f)
		}
	}
	return guards, writes
}

// sendGuarded sends fms in the two guarded phases, each followed by a
// barrier on every bridge (in parallel); errors are joined.
func sendGuarded(ctx context.Context, conn []controller.DPID, sws []controller.Switch, fms [][]*ofp.FlowMod) error {
	guards := make([][]*ofp.FlowMod, len(conn))
	writes := make([][]*ofp.FlowMod, len(conn))
	for i := range conn {
		guards[i], writes[i] = guarded(fms[i])
	}
	var errs []error
	if err := sendAll(ctx, conn, sws, guards); err != nil {
		errs = append(errs, fmt.Errorf("guard: %w", err))
	}
	if err := barrierAll(ctx, conn, sws); err != nil {
		errs = append(errs, fmt.Errorf("guard: %w", err))
	}
	if err := sendAll(ctx, conn, sws, writes); err != nil {
		errs = append(errs, err)
	}
	if err := barrierAll(ctx, conn, sws); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// barrierAll sends a barrier to every bridge and waits for all replies
// (OpenFlow 1.3.5 §6.2); errors are joined.
func barrierAll(ctx context.Context, conn []controller.DPID, sws []controller.Switch) error {
	errs := make([]error, len(conn))
	var wg sync.WaitGroup
	for i, b := range conn {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sws[i].Barrier(ctx); err != nil {
				errs[i] = fmt.Errorf("bridge %s: barrier: %w", b, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
