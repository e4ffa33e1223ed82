// Package reconcile converges a switch's flow table to the flow entries
// Skyvisor wants on it (docs/pipeline.md, "Reconcile"): it compares the
// desired entries (package hypervisor/pipeline) with what an OFPMP_FLOW
// reply reports (OpenFlow 1.3.5 §7.3.5.2) and sends only the difference,
// so a restart of Skyvisor never flushes a switch.
//
// Ownership: an entry of the switch is Skyvisor's when its cookie says so
// (pipeline.IsOwnedCookie by default: the hypervisor prefix 0x5359 or a
// valid tenant ID in the top 16 bits). Entries of other apps or operators
// are never deleted; a desired entry with the same table, priority and
// match as a foreign entry replaces it (an ADD with an identical match
// replaces, §6.4), since the desired state must hold.
//
// Two ways to compute a plan: against the switch's real flow table (Diff,
// DiffTable, Sync, SyncTable: repairs anything, costs the whole table),
// or against the entries the switch was last reconciled with, given as
// Parts (DiffParts: costs only the parts that changed, trusts the switch
// to hold what it was sent). The hypervisor pushes changes with DiffParts
// and repairs drift with a periodic full DiffTable (docs/benchmarks.md,
// "Tenant scale").
package reconcile

import (
	"context"
	"fmt"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// Switch is what Apply needs of a switch session; controller.Switch
// implements it.
type Switch interface {
	FlowMod(ctx context.Context, fm *ofp.FlowMod) error
	Barrier(ctx context.Context) error
}

// Plan is the difference between desired and actual flow entries.
type Plan struct {
	// Add are desired entries missing from the switch or different there
	// (instructions, cookie, timeouts or flags): an ADD replaces an entry
	// with the same table, priority and match in place.
	Add []pipeline.Entry
	// Delete are owned entries of the switch that are not desired, each
	// removed with a strict delete restricted to its cookie.
	Delete []pipeline.Entry
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Add) == 0 && len(p.Delete) == 0 }

// Options tune Diff.
type Options struct {
	// Owns reports whether an entry with this cookie belongs to Skyvisor.
	// nil means pipeline.IsOwnedCookie. A caller that does not track
	// tenant apps' entries passes pipeline.IsInfraCookie, so that tenant
	// entries are left alone.
	Owns func(cookie uint64) bool
	// Tables, when non-nil, limits reconciliation to these tables: entries
	// of other tables are neither added nor deleted.
	Tables map[uint8]bool
}

// Diff computes the minimal plan that makes actual equal desired on the
// owned entries. It fails if desired holds two entries with the same
// table, priority and match, or an entry cannot be encoded.
func Diff(desired []pipeline.Entry, actual []ofwire.FlowStats, opt Options) (Plan, error) {
	p, err := NewPart(desired)
	if err != nil {
		return Plan{}, fmt.Errorf("reconcile: desired %w", err)
	}
	return DiffTable([]*Part{p}, actual, opt)
}

// Apply sends the plan to sw: the adds first (so a changed entry is
// replaced in place and traffic keeps flowing), then the strict deletes,
// then one barrier. It returns the first send error, or the barrier's
// error (the switch's OFPT_ERRORs for any of the messages).
func Apply(ctx context.Context, sw Switch, p Plan) error {
	if p.Empty() {
		return nil
	}
	for i := range p.Add {
		if err := sw.FlowMod(ctx, p.Add[i].FlowMod()); err != nil {
			return fmt.Errorf("reconcile: add %s: %w", p.Add[i].String(), err)
		}
	}
	for i := range p.Delete {
		if err := sw.FlowMod(ctx, p.Delete[i].DeleteStrict()); err != nil {
			return fmt.Errorf("reconcile: delete %s: %w", p.Delete[i].String(), err)
		}
	}
	if err := sw.Barrier(ctx); err != nil {
		return fmt.Errorf("reconcile: barrier after %d adds, %d deletes: %w", len(p.Add), len(p.Delete), err)
	}
	return nil
}

// FlowStatser reads a switch's flow table; controller.Switch implements it.
type FlowStatser interface {
	FlowStats(ctx context.Context, req *ofp.FlowStatsRequest) ([]ofwire.FlowStats, error)
}

// SyncSwitch is a Switch that can also read its flow table.
type SyncSwitch interface {
	Switch
	FlowStatser
}

// Sync reads sw's flow table, diffs it against desired and applies the
// plan, which it returns.
func Sync(ctx context.Context, sw SyncSwitch, desired []pipeline.Entry, opt Options) (Plan, error) {
	actual, err := sw.FlowStats(ctx, nil)
	if err != nil {
		return Plan{}, fmt.Errorf("reconcile: read flow table: %w", err)
	}
	p, err := Diff(desired, actual, opt)
	if err != nil {
		return Plan{}, err
	}
	return p, Apply(ctx, sw, p)
}
