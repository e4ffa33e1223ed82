// Package migrate live-migrates a VM's edge bridge (a physical switch of
// the fabric, carrying tenants' hosts) to a VM bridge in another cloud by
// cloning, after LIME (Ghorbani et al., "Transparent, Live Migration of a
// Software-Defined Network", SoCC 2014), as the issue "Network snapshot
// and live migration by switch cloning" asks.
//
// The step machine (Run) is:
//
//	plan      source bridge, its hosts, the target VM bridge in the target
//	          cloud, the gateway path that joins the two copies
//	freeze    the tenant entries of the source with an idle or hard timeout
//	          are re-added with both timeouts 0 (no autonomous change while
//	          two copies exist); the originals are remembered
//	clone     the same tenant entries are installed on the target (timeouts
//	          0), then a barrier; an Env that is a Replicator then makes
//	          the target a replica of the source: from here on every app
//	          flow-mod goes to both copies (dual write, LIME §4)
//	connect   the hosts are admitted in the target cloud; the two copies are
//	          already connected through their gateways and the tunnel tree
//	          (no new tunnel is needed: the path is reported)
//	move      hosts one by one: the Mover (the orchestrator: in the lab,
//	          testbed/lab.Move) moves the host's interface, or the migration
//	          waits for the orchestrator to do it; the step waits until the
//	          host is bound on the target and the fabric is reconciled
//	retire    the target catches up with tenant-app updates that reached
//	          only the source (none with a Replicator), then the tenant
//	          entries are deleted from the source
//	unfreeze  the target's entries get their original timeouts back
//	commit    the new placement is recorded (the tenants' host clouds) and
//	          the source's last counters are merged into the target's
//	          (Env.MergeStats); the point of no return
//
// A failure (or cancellation) at any step undoes every change made so far,
// newest first: hosts already moved are moved back, entries re-installed
// with their timeouts, clones deleted. Per-step timings and progress events
// are reported.
//
// The hypervisor's own entries (cookie 0x5359…) are not cloned: they are
// compiled from the bindings, so the hypervisor derives the target's from
// each host's new binding (ports remapped by construction). Tenant entries
// (cookie = tenant ID ‖ app cookie) never name a physical port
// (docs/pipeline.md: outputs go through table 20), so the same bytes are
// valid on every edge bridge and are cloned verbatim.
//
// The package knows nothing of stores, OVSDB or the lab: Env is what it
// needs of the hypervisor, Mover of the orchestrator.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// Step names one step of a migration, in the order Run takes them.
type Step string

// The steps of a migration (see the package comment).
const (
	StepPlan     Step = "plan"
	StepFreeze   Step = "freeze"
	StepClone    Step = "clone"
	StepConnect  Step = "connect"
	StepMove     Step = "move-hosts"
	StepRetire   Step = "retire"
	StepUnfreeze Step = "unfreeze"
	StepCommit   Step = "commit"
)

// Steps lists every step in order.
func Steps() []Step {
	return []Step{StepPlan, StepFreeze, StepClone, StepConnect, StepMove, StepRetire, StepUnfreeze, StepCommit}
}

// Status is the state of a step or of a whole migration.
type Status string

// Statuses of steps and migrations.
const (
	StatusPending        Status = "pending"
	StatusRunning        Status = "running"
	StatusDone           Status = "done"
	StatusFailed         Status = "failed"      // the step failed (the migration rolls back)
	StatusRolledBack     Status = "rolled-back" // the step's changes were undone
	StatusRollbackFailed Status = "rollback-failed"
	// StatusRecovering is the state of a migration found unfinished after
	// a restart (the process died during it) while Recover undoes or
	// completes it; StatusInterrupted is its final state (and the status
	// of the step that was running when the process died).
	StatusRecovering  Status = "recovering"
	StatusInterrupted Status = "interrupted"
)

// Final reports whether a migration in state s has ended (its record will
// not change any more).
func (s Status) Final() bool {
	return s != StatusRunning && s != StatusRecovering && s != StatusPending
}

// Bridge is one VM bridge of the fabric: its datapath ID, site (cloud),
// VM and OVS bridge name.
type Bridge struct {
	DPID   uint64 `json:"dpid"`
	Site   string `json:"site"`
	VM     string `json:"vm"`
	Bridge string `json:"bridge"`
}

// String is "site/vm (dpid)".
func (b Bridge) String() string { return fmt.Sprintf("%s/%s (%016x)", b.Site, b.VM, b.DPID) }

// Host is one tenant host bound on the source bridge.
type Host struct {
	// IfaceID is "<tenant>/<host>" (external_ids:iface-id).
	IfaceID string `json:"iface_id"`
	// Tenant is the tenant's ID (the top 16 bits of its entries' cookies).
	Tenant uint16 `json:"tenant_id"`
	// Port is the OVS port name on the source bridge (in the lab
	// "h-<labhost>"); OFPort its OpenFlow port number there.
	Port   string `json:"port"`
	OFPort uint32 `json:"ofport"`
}

// Request asks to migrate the bridge with DPID Switch to cloud To (on VM
// VM of that cloud when set, else the Env chooses).
type Request struct {
	Switch uint64 `json:"switch"`
	To     string `json:"to"`
	VM     string `json:"vm,omitempty"`
	// FailAfter injects a failure right after this step (as
	// Options.FailAt; for tests and demonstrations of the rollback).
	FailAfter Step `json:"fail_after,omitempty"`
}

// ParseStep returns the step named s (ErrInvalid if none).
func ParseStep(s string) (Step, error) {
	for _, st := range Steps() {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown step %q (steps: %v): %w", s, Steps(), ErrInvalid)
}

// Plan is what a migration will do.
type Plan struct {
	Source Bridge `json:"source"`
	Target Bridge `json:"target"`
	Hosts  []Host `json:"hosts"`
	// Path is the gateway sites from the source's cloud to the target's
	// along the tunnel tree: the connection that keeps both copies
	// joined while hosts are on either side.
	Path []string `json:"path"`
}

// Env is what a migration needs of the hypervisor. *hypervisor.Hypervisor
// implements it (hypervisor/migration.go); tests use a fake.
type Env interface {
	// Plan resolves a request: source and target bridges, the hosts bound
	// on the source, the gateway path. Errors wrap ErrInvalid (bad
	// request: unknown switch or cloud, same cloud, no VM there, no
	// hosts) or ErrUnavailable (a bridge not connected, no tunnel path).
	Plan(ctx context.Context, req Request) (Plan, error)
	// Switch returns the connected OpenFlow switch of dpid.
	Switch(dpid uint64) (controller.Switch, error)
	// Clonable reports whether an entry with this cookie is state to
	// copy (a tenant app's entry) rather than an entry the hypervisor
	// compiles from its desired state for each bridge itself.
	Clonable(cookie uint64) bool
	// Admit lets hosts bind on a VM bridge of site although their
	// topology places them elsewhere (until Withdraw or Commit).
	Admit(hosts []Host, site string) error
	// Withdraw undoes Admit.
	Withdraw(hosts []Host)
	// WaitBound returns when h is bound on bridge dpid and every switch
	// affected by the binding was reconciled, or ctx's error.
	WaitBound(ctx context.Context, h Host, dpid uint64) error
	// Commit records the hosts' new placement (the target's cloud and VM)
	// durably and withdraws the admission.
	Commit(ctx context.Context, p Plan) error
	// MergeStats is the statistics merge after the source's copy is gone:
	// counters are the source's tenant entries as the retire step last
	// read them; the Env adds them to the same entries of the target
	// (created at or before at) wherever it reports statistics, so the
	// tenant's counters continue instead of restarting from the clone's.
	// While both copies exist the tenant's flow-stats already sum them
	// (vnet reads every edge bridge of a virtual switch).
	MergeStats(target uint64, at time.Time, counters []controller.FlowStats)
	// Placed reports whether the durable placement already names p's
	// target cloud for every host of p (Commit took effect): crash
	// recovery (Recover) completes such a migration instead of rolling it
	// back.
	Placed(ctx context.Context, p Plan) (bool, error)
	// BoundOn returns the DPID of the bridge h's interface is bound on
	// (last seen in OVSDB), 0 if unknown: crash recovery moves back only
	// hosts that are not on the source.
	BoundOn(h Host) uint64
}

// Replicator is what an Env implements to run the dual write of LIME
// (§4) from the clone step on: Replicate makes the target a replica of the
// source for the tenants' apps (every app flow-mod on a virtual switch
// that runs on the source also goes to the target, in two guarded phases
// each acknowledged by a barrier on both copies, so that packets of an
// affected flow go to the controller until both copies hold the rule;
// hypervisor/vnet replica.go), after bringing the target up to date with
// the updates made since the source was read. Unreplicate ends it: after
// the commit the target is the only copy (rollback false); in a rollback
// the target stops being a replica and the tenant entries only the
// replica accounted for are deleted from it. Both are idempotent. An Env
// without it leaves the updates made between the clone and the first
// host's binding on the target to the retire step's catch-up.
type Replicator interface {
	Replicate(ctx context.Context, p Plan) error
	Unreplicate(ctx context.Context, p Plan, rollback bool) error
}

// Mover moves one host's interface from one VM bridge to another, as a
// cloud orchestrator's VM live migration does (in the lab:
// testbed/lab.Move; the hypervisor cannot do it itself). With no Mover, the
// move step waits for the orchestrator to move each host.
type Mover interface {
	MoveHost(ctx context.Context, h Host, from, to Bridge) error
}

// MoverFunc adapts a function to Mover.
type MoverFunc func(ctx context.Context, h Host, from, to Bridge) error

// MoveHost implements Mover.
func (f MoverFunc) MoveHost(ctx context.Context, h Host, from, to Bridge) error {
	return f(ctx, h, from, to)
}

// Errors of Plan, for the REST status codes.
var (
	ErrInvalid     = errors.New("invalid migration request")
	ErrUnavailable = errors.New("unavailable")
)

// DefaultHostTimeout bounds the wait for one host to be bound on the
// target (the orchestrator's move plus the hypervisor's reconcile).
const DefaultHostTimeout = 60 * time.Second

// Options tune Run.
type Options struct {
	// Mover moves hosts; nil waits for the orchestrator.
	Mover Mover
	// HostTimeout bounds each host's move (0: DefaultHostTimeout); when it
	// expires the migration rolls back.
	HostTimeout time.Duration
	// Progress, if set, receives every event (synchronously, in order).
	Progress func(Event)
	// Awaiting, if set, is told which host the migration waits for and
	// the bridge it must appear on (nil when none): in the move step
	// toward the target, in a rollback back toward the source. The REST
	// status shows it so that an orchestrator (skyctl migrate --lab) can
	// move it.
	Awaiting func(h *Host, to Bridge)
	// FailAt makes Run fail right after the given step (fault injection
	// for tests and demonstrations of the rollback).
	FailAt Step
	// Log, if set, receives the write-ahead log (see LogEntry): one entry
	// before each change a crash could leave half done, synchronously. It
	// should store the entry durably (Manager does, with Records); an
	// error fails the step before the change is made (and the migration
	// rolls back). Recover undoes a migration from these entries.
	Log func(LogEntry) error
}

// Event is one progress report: a step started, finished, failed or was
// rolled back.
type Event struct {
	Time   time.Time     `json:"time"`
	Step   Step          `json:"step"`
	Status Status        `json:"status"`
	Took   time.Duration `json:"took_ns,omitempty"`
	Detail string        `json:"detail,omitempty"`
}

// String is a one-line rendering for logs and the CLI.
func (e Event) String() string {
	s := fmt.Sprintf("%-10s %-12s", e.Step, e.Status)
	if e.Took > 0 {
		s += fmt.Sprintf(" %9.1f ms", float64(e.Took)/float64(time.Millisecond))
	}
	if e.Detail != "" {
		s += "  " + e.Detail
	}
	return s
}

// StepRecord is the outcome of one step.
type StepRecord struct {
	Step   Step          `json:"step"`
	Status Status        `json:"status"`
	Took   time.Duration `json:"took_ns"`
	Detail string        `json:"detail,omitempty"`
}

// Result is what Run did.
type Result struct {
	Plan  Plan         `json:"plan"`
	Steps []StepRecord `json:"steps"`
	// Cloned are the entries copied to the target (with their original
	// timeouts and, in Counters, the source's counters at freeze time).
	Cloned int `json:"cloned"`
	// Frozen counts the source entries whose timeouts were zeroed.
	Frozen int `json:"frozen"`
	// Moved are the iface-ids of the hosts on the target at the end.
	Moved []string `json:"moved"`
	// Counters are the source's counters of its tenant entries as the
	// retire step last read them (at freeze time until then): the
	// statistics merge (Env.MergeStats) adds them to the target's.
	Counters []controller.FlowStats `json:"-"`
	// RolledBack is true when the migration failed and was undone.
	RolledBack bool          `json:"rolled_back"`
	Took       time.Duration `json:"took_ns"`
}

// run is one migration in progress.
type run struct {
	env  Env
	opt  Options
	res  *Result
	undo []undoStep
	// the tenant entries of the source at freeze time, with original
	// timeouts (the clone set)
	orig []pipeline.Entry
}

// gone reports whether err says that sw's session is closed (its OVS died
// or disconnected).
func gone(sw controller.Switch, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, controller.ErrClosed) {
		return true
	}
	select {
	case <-sw.Done():
		return true
	default:
		return false
	}
}

// skipped is an undo that had nothing to do (its error says why).
type skipped struct{ error }

type undoStep struct {
	step Step
	what string
	fn   func(ctx context.Context) error
}

func (r *run) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if r.opt.Progress != nil {
		r.opt.Progress(e)
	}
}

func (r *run) pushUndo(step Step, what string, fn func(ctx context.Context) error) {
	r.undo = append(r.undo, undoStep{step, what, fn})
}

// Run migrates req.Switch to cloud req.To (see the package comment). On
// success the result lists every step with its time. On failure every
// change is undone and the error names the step; the result (also
// returned) tells which steps ran and whether the rollback succeeded
// (StatusRollbackFailed records an undo that failed: the error then
// includes it).
func Run(ctx context.Context, env Env, req Request, opt Options) (*Result, error) {
	if opt.HostTimeout <= 0 {
		opt.HostTimeout = DefaultHostTimeout
	}
	r := &run{env: env, opt: opt, res: &Result{}}
	t0 := time.Now()
	defer func() { r.res.Took = time.Since(t0) }()
	steps := []struct {
		step Step
		fn   func(ctx context.Context) (string, error)
	}{
		{StepPlan, func(ctx context.Context) (string, error) { return r.plan(ctx, req) }},
		{StepFreeze, r.freeze},
		{StepClone, r.clone},
		{StepConnect, r.connect},
		{StepMove, r.move},
		{StepRetire, r.retire},
		{StepUnfreeze, r.unfreeze},
		{StepCommit, r.commit},
	}
	for _, s := range steps {
		r.emit(Event{Step: s.step, Status: StatusRunning})
		st := time.Now()
		detail, err := s.fn(ctx)
		// (a failure injected after commit is ignored: commit is the point
		// of no return, its changes are not undone)
		if err == nil && s.step != StepCommit && (opt.FailAt == s.step || req.FailAfter == s.step) {
			err = fmt.Errorf("injected failure after step %s", s.step)
		}
		if err == nil {
			err = ctx.Err()
		}
		took := time.Since(st)
		if err != nil {
			r.res.Steps = append(r.res.Steps, StepRecord{Step: s.step, Status: StatusFailed, Took: took, Detail: err.Error()})
			r.emit(Event{Step: s.step, Status: StatusFailed, Took: took, Detail: err.Error()})
			rbErr := r.rollback(ctx)
			r.res.RolledBack = rbErr == nil
			if r.res.RolledBack {
				r.res.Moved = nil // every host is back on the source
			}
			err = fmt.Errorf("migrate %s to %s: step %s: %w", bridgeName(r.res.Plan.Source, req.Switch), req.To, s.step, err)
			if rbErr != nil {
				return r.res, fmt.Errorf("%w; rollback incomplete: %w", err, rbErr)
			}
			return r.res, err
		}
		r.res.Steps = append(r.res.Steps, StepRecord{Step: s.step, Status: StatusDone, Took: took, Detail: detail})
		r.emit(Event{Step: s.step, Status: StatusDone, Took: took, Detail: detail})
	}
	return r.res, nil
}

func bridgeName(b Bridge, dpid uint64) string {
	if b.DPID != 0 {
		return b.String()
	}
	return fmt.Sprintf("%016x", dpid)
}

// rollback runs the undo stack newest first with its own time budget (ctx
// may be what failed) and reports every undo as an event.
func (r *run) rollback(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*r.opt.HostTimeout+30*time.Second)
	defer cancel()
	var errs []error
	for i := len(r.undo) - 1; i >= 0; i-- {
		u := r.undo[i]
		t := time.Now()
		err := u.fn(rctx)
		st, detail := StatusRolledBack, u.what
		var sk skipped
		if errors.As(err, &sk) {
			detail, err = u.what+": skipped: "+sk.Error(), nil
		}
		if err != nil {
			st, detail = StatusRollbackFailed, u.what+": "+err.Error()
			errs = append(errs, fmt.Errorf("undo %s (%s): %w", u.step, u.what, err))
		}
		r.emit(Event{Step: u.step, Status: st, Took: time.Since(t), Detail: detail})
	}
	r.undo = nil
	return errors.Join(errs...)
}

func (r *run) plan(ctx context.Context, req Request) (string, error) {
	p, err := r.env.Plan(ctx, req)
	if err != nil {
		return "", err
	}
	if p.Source.DPID == p.Target.DPID {
		return "", fmt.Errorf("source and target are the same bridge %s: %w", p.Source, ErrInvalid)
	}
	r.res.Plan = p
	var hs []string
	for _, h := range p.Hosts {
		hs = append(hs, h.IfaceID)
	}
	return fmt.Sprintf("%s -> %s, %d hosts [%s], gateway path %s", p.Source, p.Target, len(p.Hosts),
		strings.Join(hs, " "), strings.Join(p.Path, "~")), nil
}

// tenants returns the tenant IDs of the plan's hosts.
func (r *run) tenants() map[uint16]bool {
	m := map[uint16]bool{}
	for _, h := range r.res.Plan.Hosts {
		m[h.Tenant] = true
	}
	return m
}

// freeze reads the source's flow table, keeps the clonable entries of the
// migrating hosts' tenants, and re-adds those with a timeout with both
// timeouts 0.
func (r *run) freeze(ctx context.Context) (string, error) {
	src, err := r.env.Switch(r.res.Plan.Source.DPID)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", r.res.Plan.Source, err)
	}
	all, err := src.FlowStats(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("source %s: read flow table: %w", r.res.Plan.Source, err)
	}
	ts := r.tenants()
	for i := range all {
		c := all[i].Cookie
		if !ts[uint16(c>>48)] || !r.env.Clonable(c) {
			continue
		}
		r.orig = append(r.orig, cloneEntry(pipeline.FromFlowStats(&all[i])))
		r.res.Counters = append(r.res.Counters, all[i])
	}
	if err := r.logEntries(StepFreeze, r.orig); err != nil {
		return "", err
	}
	var frozen []pipeline.Entry
	for _, e := range r.orig {
		if e.IdleTimeout == 0 && e.HardTimeout == 0 {
			continue
		}
		z := e
		z.IdleTimeout, z.HardTimeout = 0, 0
		frozen = append(frozen, z)
	}
	if len(frozen) > 0 {
		restore := timed(r.orig)
		r.pushUndo(StepFreeze, fmt.Sprintf("restore the timeouts of %d entries on the source", len(restore)),
			func(ctx context.Context) error { return addAll(ctx, src, restore) })
		if err := addAll(ctx, src, frozen); err != nil {
			return "", fmt.Errorf("source %s: %w", r.res.Plan.Source, err)
		}
	}
	r.res.Frozen = len(frozen)
	return fmt.Sprintf("%d tenant entries on the source, %d had timeouts (now 0)", len(r.orig), len(frozen)), nil
}

// clone installs the source's tenant entries on the target, timeouts 0.
func (r *run) clone(ctx context.Context) (string, error) {
	dst, err := r.env.Switch(r.res.Plan.Target.DPID)
	if err != nil {
		return "", fmt.Errorf("target %s: %w", r.res.Plan.Target, err)
	}
	if err := r.log(LogEntry{Step: StepClone}); err != nil {
		return "", err
	}
	// The replica's undo is pushed first so that it runs after the clones'
	// delete: its pruning replay then leaves the target with exactly what
	// the apps' tables account for there.
	rep, _ := r.env.(Replicator)
	if rep != nil {
		p := r.res.Plan
		r.pushUndo(StepClone, "drop the target as a replica of the source's virtual switches, delete the entries only it held",
			func(ctx context.Context) error {
				sw, err := r.env.Switch(p.Target.DPID)
				if err != nil {
					_ = rep.Unreplicate(ctx, p, false) // the target's table went with it
					return skipped{fmt.Errorf("target not connected (%w)", err)}
				}
				if err := rep.Unreplicate(ctx, p, true); err != nil {
					if gone(sw, err) { // died during the migration: its table went with it
						_ = rep.Unreplicate(ctx, p, false)
						return skipped{fmt.Errorf("target gone (%w)", err)}
					}
					return err
				}
				return nil
			})
	}
	detail := "no tenant entries to clone (the hypervisor compiles the rest for each binding)"
	if len(r.orig) > 0 {
		zero := zeroed(r.orig)
		r.pushUndo(StepClone, fmt.Sprintf("delete %d cloned entries from the target", len(zero)), r.deleteFromTarget(zero))
		if err := addAll(ctx, dst, zero); err != nil {
			return "", fmt.Errorf("target %s: %w", r.res.Plan.Target, err)
		}
		r.res.Cloned = len(zero)
		detail = fmt.Sprintf("%d entries installed on %s (timeouts 0), barrier done", len(zero), r.res.Plan.Target)
	}
	if rep != nil {
		if err := rep.Replicate(ctx, r.res.Plan); err != nil {
			return "", fmt.Errorf("target %s: replica: %w", r.res.Plan.Target, err)
		}
		detail += "; the target is a replica (dual write)"
	}
	return detail, nil
}

// connect admits the hosts in the target cloud; the copies are joined by
// the gateways' tunnel tree already.
func (r *run) connect(ctx context.Context) (string, error) {
	p := r.res.Plan
	if err := r.log(LogEntry{Step: StepConnect}); err != nil {
		return "", err
	}
	if err := r.env.Admit(p.Hosts, p.Target.Site); err != nil {
		return "", err
	}
	r.pushUndo(StepConnect, "withdraw the hosts' admission in "+p.Target.Site,
		func(context.Context) error { r.env.Withdraw(p.Hosts); return nil })
	return fmt.Sprintf("hosts admitted in %s; copies joined by the existing gateway tunnels %s (no new tunnel)",
		p.Target.Site, strings.Join(p.Path, "~")), nil
}

// move moves the hosts one by one and waits for each binding.
func (r *run) move(ctx context.Context) (string, error) {
	p := r.res.Plan
	var parts []string
	for _, h := range p.Hosts {
		t := time.Now()
		// A host leaves the source only for a live target: a barrier
		// round trip proves the target's OVS still answers (a dead one
		// fails here, before any host moved, and the rollback loses
		// nothing).
		if err := r.targetAlive(ctx); err != nil {
			return "", err
		}
		if err := r.log(LogEntry{Step: StepMove, Host: h.IfaceID}); err != nil {
			return "", err
		}
		// Undo first: a move that fails half-way may have moved the host.
		r.pushUndo(StepMove, "move "+h.IfaceID+" back to "+p.Source.String(), func(ctx context.Context) error {
			return r.moveOne(ctx, h, p.Target, p.Source)
		})
		if err := r.moveOne(ctx, h, p.Source, p.Target); err != nil {
			return "", fmt.Errorf("host %s: %w", h.IfaceID, err)
		}
		r.res.Moved = append(r.res.Moved, h.IfaceID)
		d := time.Since(t)
		parts = append(parts, fmt.Sprintf("%s %.0f ms", h.IfaceID, float64(d)/float64(time.Millisecond)))
		r.emit(Event{Step: StepMove, Status: StatusRunning, Took: d, Detail: "moved " + h.IfaceID})
	}
	return strings.Join(parts, ", "), nil
}

// targetAlive checks that the target is connected and answers a barrier
// within 5 s.
func (r *run) targetAlive(ctx context.Context) error {
	dst, err := r.env.Switch(r.res.Plan.Target.DPID)
	if err != nil {
		return fmt.Errorf("target %s: %w", r.res.Plan.Target, err)
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := dst.Barrier(bctx); err != nil {
		return fmt.Errorf("target %s does not answer: %w", r.res.Plan.Target, err)
	}
	return nil
}

func (r *run) await(h *Host, to Bridge) {
	if r.opt.Awaiting != nil {
		r.opt.Awaiting(h, to)
	}
}

// moveOne moves h with the Mover (or lets the orchestrator do it) and
// waits until it is bound on to.
func (r *run) moveOne(ctx context.Context, h Host, from, to Bridge) error {
	ctx, cancel := context.WithTimeout(ctx, r.opt.HostTimeout)
	defer cancel()
	r.await(&h, to)
	defer r.await(nil, Bridge{})
	if r.opt.Mover != nil {
		if err := r.opt.Mover.MoveHost(ctx, h, from, to); err != nil {
			return fmt.Errorf("move to %s: %w", to, err)
		}
	}
	if err := r.env.WaitBound(ctx, h, to.DPID); err != nil {
		return fmt.Errorf("wait for the binding on %s: %w", to, err)
	}
	return nil
}

// retire catches the target up with the source, then deletes the tenant
// entries from the source.
//
// Catch-up: with an Env that is a Replicator the target is a replica of
// the source from the clone step on, so every flow update of the apps
// reached both copies and the catch-up finds nothing (tested). Without
// one, the tenant's virtual switches run on the target only once the
// first host is bound there, so updates made between the clone and that
// binding reached the source only: the source's tenant entries the
// target lacks are copied (timeouts 0 until unfreeze), and clones whose
// entry the apps deleted from the source meanwhile are deleted from the
// target, before the source's copy goes.
func (r *run) retire(ctx context.Context) (string, error) {
	p := r.res.Plan
	src, err := r.env.Switch(p.Source.DPID)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", p.Source, err)
	}
	dst, err := r.env.Switch(p.Target.DPID)
	if err != nil {
		return "", fmt.Errorf("target %s: %w", p.Target, err)
	}
	srcNow, srcStats, err := r.clonables(ctx, src)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", p.Source, err)
	}
	dstNow, _, err := r.clonables(ctx, dst)
	if err != nil {
		return "", fmt.Errorf("target %s: %w", p.Target, err)
	}
	onDst, onSrc := keySet(dstNow), keySet(srcNow)
	var add, drop []pipeline.Entry
	var keep []pipeline.Entry
	for _, e := range srcNow {
		if !onDst[entryKey(&e)] {
			z := e
			z.IdleTimeout, z.HardTimeout = 0, 0
			add = append(add, z)
			keep = append(keep, e) // unfreeze gives it its own timeouts
		}
	}
	for _, e := range r.orig {
		k := entryKey(&e)
		if !onSrc[k] {
			if onDst[k] {
				z := e
				z.IdleTimeout, z.HardTimeout = 0, 0
				drop = append(drop, z)
			}
			continue
		}
		keep = append(keep, e)
	}
	if r.opt.Log != nil {
		le := LogEntry{Step: StepRetire}
		var errs [3]error
		le.Added, errs[0] = EncodeEntries(add)
		le.Dropped, errs[1] = EncodeEntries(drop)
		le.Retired, errs[2] = EncodeEntries(srcNow)
		if err := errors.Join(errs[:]...); err != nil {
			return "", fmt.Errorf("write-ahead log (%s): %w", StepRetire, err)
		}
		if err := r.log(le); err != nil {
			return "", err
		}
	}
	if len(add)+len(drop) > 0 {
		r.pushUndo(StepRetire, fmt.Sprintf("undo the catch-up of the target (%d added, %d deleted)", len(add), len(drop)),
			func(ctx context.Context) error {
				sw, err := r.env.Switch(p.Target.DPID)
				if err != nil {
					return skipped{fmt.Errorf("target not connected (%w)", err)}
				}
				return errors.Join(deleteAll(ctx, sw, add), addAll(ctx, sw, drop))
			})
		if err := addAll(ctx, dst, add); err != nil {
			return "", fmt.Errorf("target %s: catch up: %w", p.Target, err)
		}
		if err := deleteAll(ctx, dst, drop); err != nil {
			return "", fmt.Errorf("target %s: catch up: %w", p.Target, err)
		}
	}
	r.orig = keep
	r.res.Cloned += len(add) - len(drop)
	r.res.Counters = srcStats // the statistics merge (unfreeze) carries them over
	if len(srcNow) == 0 {
		return fmt.Sprintf("%s holds none of the hosts any more (its hypervisor entries were recompiled)", p.Source), nil
	}
	r.pushUndo(StepRetire, fmt.Sprintf("re-install %d entries on the source", len(srcNow)),
		func(ctx context.Context) error { return addAll(ctx, src, srcNow) })
	if err := deleteAll(ctx, src, srcNow); err != nil {
		return "", fmt.Errorf("source %s: %w", p.Source, err)
	}
	return fmt.Sprintf("catch-up: %d entries added to and %d deleted from the target; %d entries deleted from %s",
		len(add), len(drop), len(srcNow), p.Source), nil
}

// clonables reads sw's flow table and returns the clonable entries of the
// plan's tenants (matches copied).
func (r *run) clonables(ctx context.Context, sw controller.Switch) ([]pipeline.Entry, []controller.FlowStats, error) {
	all, err := sw.FlowStats(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("read flow table: %w", err)
	}
	ts := r.tenants()
	var out []pipeline.Entry
	var stats []controller.FlowStats
	for i := range all {
		c := all[i].Cookie
		if ts[uint16(c>>48)] && r.env.Clonable(c) {
			e := cloneEntry(pipeline.FromFlowStats(&all[i]))
			out = append(out, e)
			fs := all[i]
			fs.Match.Fields, fs.Instructions = e.Match, e.Instructions
			stats = append(stats, fs)
		}
	}
	return out, stats, nil
}

// entryKey names a flow entry: table, priority, normalized match, cookie.
func entryKey(e *pipeline.Entry) string { return fmt.Sprintf("%s/%x", e.Key(), e.Cookie) }

func keySet(es []pipeline.Entry) map[string]bool {
	m := make(map[string]bool, len(es))
	for i := range es {
		m[entryKey(&es[i])] = true
	}
	return m
}

// unfreeze gives the target's entries their original timeouts.
func (r *run) unfreeze(ctx context.Context) (string, error) {
	restore := timed(r.orig)
	if len(restore) == 0 {
		return "no timeouts to restore", nil
	}
	dst, err := r.env.Switch(r.res.Plan.Target.DPID)
	if err != nil {
		return "", fmt.Errorf("target %s: %w", r.res.Plan.Target, err)
	}
	zero := make([]pipeline.Entry, len(restore))
	for i, e := range restore {
		e.IdleTimeout, e.HardTimeout = 0, 0
		zero[i] = e
	}
	r.pushUndo(StepUnfreeze, fmt.Sprintf("zero the timeouts of %d entries on the target again", len(zero)),
		func(ctx context.Context) error { return addAll(ctx, dst, zero) })
	if err := addAll(ctx, dst, restore); err != nil {
		return "", fmt.Errorf("target %s: %w", r.res.Plan.Target, err)
	}
	return fmt.Sprintf("%d entries got their timeouts back on %s", len(restore), r.res.Plan.Target), nil
}

// mergeStats hands the source's last counters to the Env (see
// Env.MergeStats).
func (r *run) mergeStats() {
	if len(r.res.Counters) > 0 {
		r.env.MergeStats(r.res.Plan.Target.DPID, time.Now(), r.res.Counters)
	}
}

// commit records the placement.
func (r *run) commit(ctx context.Context) (string, error) {
	if err := r.log(LogEntry{Step: StepCommit}); err != nil {
		return "", err
	}
	if err := r.env.Commit(ctx, r.res.Plan); err != nil {
		return "", err
	}
	if rep, ok := r.env.(Replicator); ok {
		// The target runs the virtual switches by its hosts' bindings now:
		// it stays as the only copy (nothing to delete, nothing that can
		// fail; past the commit an error could not be undone anyway).
		_ = rep.Unreplicate(ctx, r.res.Plan, false)
	}
	r.mergeStats()
	return fmt.Sprintf("%d hosts now placed in %s; the source's counters of %d entries carried over",
		len(r.res.Plan.Hosts), r.res.Plan.Target, len(r.res.Counters)), nil
}

// timed returns the entries of es that have a timeout.
func timed(es []pipeline.Entry) []pipeline.Entry {
	var out []pipeline.Entry
	for _, e := range es {
		if e.IdleTimeout != 0 || e.HardTimeout != 0 {
			out = append(out, e)
		}
	}
	return out
}

// cloneEntry deep-copies the match of e (flow-stats values alias the reply
// buffer; instructions are decoded values and are shared).
func cloneEntry(e pipeline.Entry) pipeline.Entry {
	m := make([]ofp.XM, len(e.Match))
	for i, f := range e.Match {
		f.Value = append([]byte(nil), f.Value...)
		if f.Mask != nil {
			f.Mask = append([]byte(nil), f.Mask...)
		}
		m[i] = f
	}
	e.Match = m
	return e
}

// addAll sends one ADD per entry (an ADD with the same table, priority and
// match replaces an existing entry: OpenFlow 1.3.5 §6.4), then a barrier
// whose error names the refusals.
func addAll(ctx context.Context, sw controller.Switch, es []pipeline.Entry) error {
	for i := range es {
		if err := sw.FlowMod(ctx, es[i].FlowMod()); err != nil {
			return fmt.Errorf("add %s: %w", es[i].String(), err)
		}
	}
	if err := sw.Barrier(ctx); err != nil {
		return fmt.Errorf("add %d entries: barrier: %w", len(es), err)
	}
	return nil
}

// deleteAll strictly deletes every entry (restricted to its cookie), then
// a barrier.
func deleteAll(ctx context.Context, sw controller.Switch, es []pipeline.Entry) error {
	for i := range es {
		if err := sw.FlowMod(ctx, es[i].DeleteStrict()); err != nil {
			return fmt.Errorf("delete %s: %w", es[i].String(), err)
		}
	}
	if err := sw.Barrier(ctx); err != nil {
		return fmt.Errorf("delete %d entries: barrier: %w", len(es), err)
	}
	return nil
}
