package migrate

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// Crash recovery. Run keeps its undo stack in memory; so that a migration
// interrupted by the death of the process can still be undone, Run also
// writes a write-ahead log (Options.Log): one LogEntry before each change
// that a crash could leave half done, with what its undo needs (the flow
// entries, the host). Recover rebuilds the undo stack from that log and
// runs it, or, when the log reached the commit and the commit took effect
// (Env.Placed), completes the migration instead. Every undo is idempotent
// (ADDs replace, strict deletes of absent entries are no-ops, a host
// already on the source is not moved), so an entry logged for a change
// that never happened, or a recovery that is itself interrupted and run
// again, does no harm.

// LogEntry is one write-ahead record of a migration, appended before the
// change it announces. Step names the change:
//
//	freeze    Entries: the source's tenant entries with their original
//	          timeouts (undo: re-add those with a timeout on the source)
//	clone     the same entries go to the target (undo: delete them there)
//	connect   the hosts are admitted in the target cloud (undo: withdraw)
//	move-hosts Host: this host's move starts (undo: move it back)
//	retire    Added/Dropped: the target's catch-up; Retired: the source's
//	          entries about to be deleted (undo: re-install, undo the
//	          catch-up)
//	          (unfreeze is not logged: the clone's undo deletes the
//	          entries it touched)
//	commit    the placement is recorded (Recover asks Env.Placed whether
//	          it took effect)
type LogEntry struct {
	Step    Step        `json:"step"`
	Host    string      `json:"host,omitempty"`
	Entries []WireEntry `json:"entries,omitempty"`
	Added   []WireEntry `json:"added,omitempty"`
	Dropped []WireEntry `json:"dropped,omitempty"`
	Retired []WireEntry `json:"retired,omitempty"`
}

// WireEntry is a flow entry in a form that survives JSON: the ofp_match
// (OpenFlow 1.3.5 §7.2.2, with padding) and the instruction list (§7.2.4)
// in their wire encoding (base64 in JSON), so experimenter actions are
// kept byte-exactly.
type WireEntry struct {
	Table        uint8  `json:"table"`
	Priority     uint16 `json:"priority"`
	Cookie       uint64 `json:"cookie"`
	IdleTimeout  uint16 `json:"idle_timeout,omitempty"` // seconds
	HardTimeout  uint16 `json:"hard_timeout,omitempty"` // seconds
	Flags        uint16 `json:"flags,omitempty"`        // OFPFF_*
	Match        []byte `json:"match"`
	Instructions []byte `json:"instructions,omitempty"`
}

// EncodeEntries returns es in wire form; it fails only if an instruction
// cannot be encoded.
func EncodeEntries(es []pipeline.Entry) ([]WireEntry, error) {
	out := make([]WireEntry, 0, len(es))
	for i := range es {
		e := &es[i]
		ins, err := ofwire.AppendInstructions(nil, e.Instructions)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.String(), err)
		}
		out = append(out, WireEntry{Table: e.Table, Priority: e.Priority, Cookie: e.Cookie,
			IdleTimeout: e.IdleTimeout, HardTimeout: e.HardTimeout, Flags: uint16(e.Flags),
			Match: ofwire.AppendMatch(nil, &ofp.Match{Type: ofp.MatchTypeXM, Fields: e.Match}), Instructions: ins})
	}
	return out, nil
}

// DecodeEntries is the inverse of EncodeEntries. Errors name the entry
// that does not decode.
func DecodeEntries(ws []WireEntry) ([]pipeline.Entry, error) {
	out := make([]pipeline.Entry, 0, len(ws))
	for i, w := range ws {
		m, n, err := ofwire.DecodeMatch(w.Match, nil)
		if err != nil || n != len(w.Match) {
			return nil, fmt.Errorf("entry %d (table %d, priority %d, cookie %#x): bad match (%d of %d bytes): %v",
				i, w.Table, w.Priority, w.Cookie, n, len(w.Match), err)
		}
		ins, err := ofwire.DecodeInstructions(w.Instructions)
		if err != nil {
			return nil, fmt.Errorf("entry %d (table %d, priority %d, cookie %#x): instructions: %w", i, w.Table, w.Priority, w.Cookie, err)
		}
		out = append(out, cloneEntry(pipeline.Entry{Table: w.Table, Priority: w.Priority, Match: m.Fields, Instructions: ins,
			Cookie: w.Cookie, IdleTimeout: w.IdleTimeout, HardTimeout: w.HardTimeout, Flags: ofp.FlowModFlag(w.Flags)}))
	}
	return out, nil
}

// log appends e to the write-ahead log (Options.Log); an error means the
// change must not be made.
func (r *run) log(e LogEntry) error {
	if r.opt.Log == nil {
		return nil
	}
	if err := r.opt.Log(e); err != nil {
		return fmt.Errorf("write-ahead log (%s): %w", e.Step, err)
	}
	return nil
}

// logEntries logs a step with entries.
func (r *run) logEntries(step Step, es []pipeline.Entry) error {
	if r.opt.Log == nil {
		return nil
	}
	w, err := EncodeEntries(es)
	if err != nil {
		return fmt.Errorf("write-ahead log (%s): %w", step, err)
	}
	return r.log(LogEntry{Step: step, Entries: w})
}

// Recover finishes a migration of plan p whose run was interrupted (the
// process died; the migration's in-memory state is lost), from its
// write-ahead log (the entries Options.Log received, in order):
//
//   - if the log reached the commit and the commit took effect
//     (Env.Placed), the migration is complete: the admission is
//     withdrawn and the result lists the hosts as moved (the source's
//     counters, in memory only, are not carried over);
//   - otherwise every logged change is undone, newest first, as Run's
//     rollback does: the retired source entries re-installed and the
//     target's catch-up undone, hosts moved back (by opt.Mover, or by the
//     orchestrator told through opt.Awaiting; a host already bound on the
//     source stays), the admission withdrawn (it is re-established first
//     so that hosts still on the target are reachable until they are
//     back), the clones deleted from the target, the source's timeouts
//     restored.
//
// It first waits (up to opt.HostTimeout) for both bridges to be
// connected. Events go to opt.Progress (status
// rolled-back or rollback-failed per undo). The result's RolledBack is
// true when everything was undone; the error is non-nil when an undo
// failed (the result then says which).
func Recover(ctx context.Context, env Env, p Plan, log []LogEntry, opt Options) (*Result, error) {
	if opt.HostTimeout <= 0 {
		opt.HostTimeout = DefaultHostTimeout
	}
	r := &run{env: env, opt: opt, res: &Result{Plan: p}}
	t0 := time.Now()
	defer func() { r.res.Took = time.Since(t0) }()
	waitSwitches(ctx, env, opt.HostTimeout, p.Source.DPID, p.Target.DPID)

	committed, admitted := false, false
	for _, e := range log {
		if e.Step == StepCommit {
			committed = true
		}
	}
	if committed {
		placed, err := env.Placed(ctx, p)
		if err != nil {
			return r.res, fmt.Errorf("recover the migration of %s to %s: check the commit: %w", p.Source, p.Target.Site, err)
		}
		if placed {
			env.Withdraw(p.Hosts)
			for _, h := range p.Hosts {
				r.res.Moved = append(r.res.Moved, h.IfaceID)
			}
			r.emit(Event{Step: StepCommit, Status: StatusDone,
				Detail: fmt.Sprintf("the commit had taken effect: %d hosts placed in %s; migration completed (the source's counters were not carried over)",
					len(p.Hosts), p.Target)})
			return r.res, nil
		}
	}
	for _, e := range log {
		switch e.Step {
		case StepFreeze:
			orig, err := DecodeEntries(e.Entries)
			if err != nil {
				return r.res, fmt.Errorf("recover: log entry %s: %w", e.Step, err)
			}
			r.orig = orig
			if restore := timed(orig); len(restore) > 0 {
				r.pushUndo(StepFreeze, fmt.Sprintf("restore the timeouts of %d entries on the source", len(restore)),
					func(ctx context.Context) error {
						sw, err := env.Switch(p.Source.DPID)
						if err != nil {
							return err
						}
						return addAll(ctx, sw, restore)
					})
			}
		case StepClone:
			if len(r.orig) > 0 {
				r.pushUndo(StepClone, fmt.Sprintf("delete %d cloned entries from the target", len(r.orig)),
					r.deleteFromTarget(zeroed(r.orig)))
			}
		case StepConnect:
			admitted = true
			r.pushUndo(StepConnect, "withdraw the hosts' admission in "+p.Target.Site,
				func(context.Context) error { env.Withdraw(p.Hosts); return nil })
		case StepMove:
			i := slices.IndexFunc(p.Hosts, func(h Host) bool { return h.IfaceID == e.Host })
			if i < 0 {
				return r.res, fmt.Errorf("recover: log entry %s: host %q is not in the plan", e.Step, e.Host)
			}
			h := p.Hosts[i]
			r.pushUndo(StepMove, "move "+h.IfaceID+" back to "+p.Source.String(), func(ctx context.Context) error {
				if env.BoundOn(h) == p.Source.DPID {
					return skipped{fmt.Errorf("already bound on the source")}
				}
				return r.moveOne(ctx, h, p.Target, p.Source)
			})
		case StepRetire:
			add, err1 := DecodeEntries(e.Added)
			drop, err2 := DecodeEntries(e.Dropped)
			retired, err3 := DecodeEntries(e.Retired)
			for _, err := range []error{err1, err2, err3} {
				if err != nil {
					return r.res, fmt.Errorf("recover: log entry %s: %w", e.Step, err)
				}
			}
			if len(add)+len(drop) > 0 {
				r.pushUndo(StepRetire, fmt.Sprintf("undo the catch-up of the target (%d added, %d deleted)", len(add), len(drop)),
					func(ctx context.Context) error {
						sw, err := env.Switch(p.Target.DPID)
						if err != nil {
							return skipped{fmt.Errorf("target not connected (%w)", err)}
						}
						if err := deleteAll(ctx, sw, add); err != nil {
							return err
						}
						return addAll(ctx, sw, drop)
					})
			}
			if len(retired) > 0 {
				r.pushUndo(StepRetire, fmt.Sprintf("re-install %d entries on the source", len(retired)),
					func(ctx context.Context) error {
						sw, err := env.Switch(p.Source.DPID)
						if err != nil {
							return err
						}
						return addAll(ctx, sw, retired)
					})
			}
		case StepCommit:
			// did not take effect (checked above)
		default:
			return r.res, fmt.Errorf("recover: unknown log entry %q", e.Step)
		}
	}
	if admitted {
		if err := env.Admit(p.Hosts, p.Target.Site); err != nil {
			return r.res, fmt.Errorf("recover: re-admit the hosts in %s: %w", p.Target.Site, err)
		}
	}
	err := r.rollback(ctx)
	r.res.RolledBack = err == nil
	if err != nil {
		return r.res, fmt.Errorf("recover the migration of %s to %s: %w", p.Source, p.Target.Site, err)
	}
	return r.res, nil
}

// deleteFromTarget is the clones' undo: delete zero from the target,
// skipped when the target is gone (its flow table went with it).
func (r *run) deleteFromTarget(zero []pipeline.Entry) func(ctx context.Context) error {
	target := r.res.Plan.Target.DPID
	return func(ctx context.Context) error {
		sw, err := r.env.Switch(target)
		if err != nil {
			return skipped{fmt.Errorf("target not connected (%w): its clones went with it", err)}
		}
		err = deleteAll(ctx, sw, zero)
		if gone(sw, err) {
			return skipped{fmt.Errorf("target disconnected (%w): its clones went with it", err)}
		}
		return err
	}
}

// zeroed returns copies of es with both timeouts 0.
func zeroed(es []pipeline.Entry) []pipeline.Entry {
	out := make([]pipeline.Entry, len(es))
	for i, e := range es {
		e.IdleTimeout, e.HardTimeout = 0, 0
		out[i] = e
	}
	return out
}

// waitSwitches waits until env has every dpid connected, at most d (or
// until ctx ends).
func waitSwitches(ctx context.Context, env Env, d time.Duration, dpids ...uint64) {
	deadline := time.Now().Add(d)
	for {
		all := true
		for _, dp := range dpids {
			if _, err := env.Switch(dp); err != nil {
				all = false
			}
		}
		if all || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
