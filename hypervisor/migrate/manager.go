package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrBusy is returned by Manager.Start when the source or target bridge
// is part of a migration in progress.
var ErrBusy = errors.New("a migration of this bridge is in progress")

// ErrNotFound is returned by Manager.Get for an unknown ID.
var ErrNotFound = errors.New("no such migration")

// Migration is the record of one migration started by a Manager: what
// GET /v1/migrations/{id} shows, and what Records stores.
type Migration struct {
	ID      string  `json:"id"`
	Request Request `json:"request"`
	// State is StatusRunning, then StatusDone, or StatusRolledBack (the
	// migration failed and was undone), or StatusRollbackFailed. A
	// migration found unfinished after a restart is StatusRecovering
	// while Manager.Recover undoes (or completes) it, then
	// StatusInterrupted, with Recovery telling the outcome.
	State  Status       `json:"state"`
	Plan   *Plan        `json:"plan,omitempty"`
	Steps  []StepRecord `json:"steps"`
	Events []Event      `json:"events"`
	// Awaiting is the host the move step waits for (the orchestrator must
	// move its interface to Plan.Target), nil otherwise.
	Awaiting *Host `json:"awaiting,omitempty"`
	// AwaitingTo is the bridge the awaited host must appear on: the
	// target, or the source during a rollback.
	AwaitingTo *Bridge   `json:"awaiting_to,omitempty"`
	Cloned     int       `json:"cloned"`
	Frozen     int       `json:"frozen"`
	Moved      []string  `json:"moved"`
	Error      string    `json:"error,omitempty"`
	Started    time.Time `json:"started"`
	// Recovery is, for an interrupted migration (State
	// StatusInterrupted), what the recovery after the restart did:
	// StatusRolledBack, StatusDone (the commit had taken effect: the
	// migration was completed) or StatusRollbackFailed.
	Recovery Status     `json:"recovery,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
}

// Records stores migration records and their write-ahead logs durably
// (the hypervisor implements it with its bbolt store), so that the
// history survives a restart and a migration interrupted by one can be
// recovered (Manager.Recover). Implementations must be safe for
// concurrent use.
type Records interface {
	// Put creates or replaces the record with m.ID.
	Put(m Migration) error
	// Get returns the record of id, an error wrapping ErrNotFound if none.
	Get(id string) (Migration, error)
	// List returns every record (any order).
	List() ([]Migration, error)
	// Append adds e to the write-ahead log of id (durably, before it
	// returns).
	Append(id string, e LogEntry) error
	// Log returns the write-ahead log of id in the order it was written.
	Log(id string) ([]LogEntry, error)
	// DropLog deletes the log of id (the migration ended).
	DropLog(id string) error
	// Prune deletes all but the newest keep final records (never a
	// record whose State is not Final).
	Prune(keep int) error
}

// DefaultKeep is how many finished migration records a Manager with
// Records keeps (the oldest are pruned).
const DefaultKeep = 100

// ManagerOption configures NewManager.
type ManagerOption func(*Manager)

// WithRecords makes the Manager store every record in r: at the start, at
// each progress event (one Put each) and at the end, with the write-ahead
// log of each migration (Options.Log) until it ends; Get and List read r,
// so the history survives a restart; at most keep finished records are
// kept (keep <= 0: DefaultKeep).
func WithRecords(r Records, keep int) ManagerOption {
	if keep <= 0 {
		keep = DefaultKeep
	}
	return func(m *Manager) { m.recs, m.keep = r, keep }
}

// WithErrorLog sets where the Manager reports errors it cannot return
// (a record that could not be stored after an event, a failed prune).
func WithErrorLog(f func(error)) ManagerOption { return func(m *Manager) { m.errf = f } }

// Manager runs migrations (in the background, Start, or synchronously,
// Run) and keeps their records: in memory while they run, and in Records
// when configured (WithRecords), else in memory only. At most one
// migration at a time may involve a given bridge (ErrBusy). Safe for
// concurrent use.
type Manager struct {
	env  Env
	recs Records
	keep int
	errf func(error)
	mu   sync.Mutex
	opt  Options
	runs map[string]*Migration // running (and, without Records, all)
	busy map[uint64]string     // bridge DPID -> migration ID
	wg   sync.WaitGroup
}

// NewManager returns a Manager over env; opt is used for the migrations
// started with Start and for recoveries (its Progress, Awaiting and Log
// are wrapped, not replaced).
func NewManager(env Env, opt Options, mopts ...ManagerOption) *Manager {
	m := &Manager{env: env, opt: opt, runs: map[string]*Migration{}, busy: map[uint64]string{}}
	for _, o := range mopts {
		o(m)
	}
	return m
}

// SetOptions replaces the options of the migrations started with Start
// (and recoveries) from now on.
func (m *Manager) SetOptions(opt Options) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opt = opt
}

func (m *Manager) logErr(err error) {
	if err != nil && m.errf != nil {
		m.errf(err)
	}
}

// claim registers a new migration of plan p (marking its bridges busy)
// and stores its first record; ErrBusy if a bridge is taken.
func (m *Manager) claim(req Request, p Plan, state Status) (*Migration, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	mg := &Migration{ID: id, Request: req, State: state, Plan: &p, Started: time.Now().UTC()}
	if err := m.take(mg); err != nil {
		return nil, err
	}
	if m.recs != nil {
		if err := m.recs.Put(copyMigration(mg)); err != nil {
			m.release(mg, false)
			return nil, fmt.Errorf("migration %s: store the record: %w", id, err)
		}
	}
	return mg, nil
}

// take marks mg's bridges busy and registers it as running (a plan
// without bridges, only in a damaged record, takes none).
func (m *Manager) take(mg *Migration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ds []uint64
	for _, d := range []uint64{mg.Plan.Source.DPID, mg.Plan.Target.DPID} {
		if d == 0 {
			continue
		}
		if other, ok := m.busy[d]; ok {
			return fmt.Errorf("bridge %016x is in migration %s: %w", d, other, ErrBusy)
		}
		ds = append(ds, d)
	}
	m.runs[mg.ID] = mg
	for _, d := range ds {
		m.busy[d] = mg.ID
	}
	return nil
}

// release frees mg's bridges; with Records, its in-memory record goes
// too (Records has the final one) unless keep.
func (m *Manager) release(mg *Migration, keep bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d, id := range m.busy {
		if id == mg.ID {
			delete(m.busy, d)
		}
	}
	if m.recs != nil && !keep {
		delete(m.runs, mg.ID)
	}
}

// store writes mg's current record to Records (errors reported, not
// returned: the in-memory record stays authoritative while it runs).
func (m *Manager) store(mg *Migration) error {
	if m.recs == nil {
		return nil
	}
	m.mu.Lock()
	c := copyMigration(mg)
	m.mu.Unlock()
	if err := m.recs.Put(c); err != nil {
		return fmt.Errorf("migration %s: store the record: %w", mg.ID, err)
	}
	return nil
}

// wrap returns opt with Progress, Awaiting and Log recording into mg.
func (m *Manager) wrap(mg *Migration, opt Options) Options {
	progress, awaiting := opt.Progress, opt.Awaiting
	opt.Progress = func(e Event) {
		m.mu.Lock()
		mg.Events = append(mg.Events, e)
		if e.Status != StatusRunning || e.Took == 0 {
			// step-level changes only (not per-host "moved" events)
			mg.Steps = upsertStep(mg.Steps, e)
		}
		m.mu.Unlock()
		m.logErr(m.store(mg))
		if progress != nil {
			progress(e)
		}
	}
	opt.Awaiting = func(h *Host, to Bridge) {
		m.mu.Lock()
		mg.Awaiting, mg.AwaitingTo = h, nil
		if h != nil {
			mg.AwaitingTo = &to
		}
		m.mu.Unlock()
		if awaiting != nil {
			awaiting(h, to)
		}
	}
	if m.recs != nil {
		log := opt.Log
		opt.Log = func(e LogEntry) error {
			if err := m.recs.Append(mg.ID, e); err != nil {
				return err
			}
			if log != nil {
				return log(e)
			}
			return nil
		}
	}
	return opt
}

// finish records the outcome of mg's run, stores the final record, drops
// the log, prunes old records and frees the bridges.
func (m *Manager) finish(mg *Migration, res *Result, err error, recovered bool) {
	m.mu.Lock()
	now := time.Now().UTC()
	mg.Finished = &now
	mg.Awaiting, mg.AwaitingTo = nil, nil
	if !recovered {
		mg.Steps = res.Steps
		mg.Cloned, mg.Frozen = res.Cloned, res.Frozen
		if res.Plan.Source.DPID != 0 {
			mg.Plan = &res.Plan
		}
	}
	mg.Moved = res.Moved
	switch {
	case recovered:
		mg.State = StatusInterrupted
		switch {
		case err != nil:
			mg.Recovery = StatusRollbackFailed
			mg.Error += "; rollback on restart incomplete: " + err.Error()
		case res.RolledBack:
			mg.Recovery = StatusRolledBack
			mg.Error += "; rolled back on restart"
		default:
			mg.Recovery = StatusDone
			mg.Error += "; the commit had taken effect: completed on restart"
		}
	case err == nil:
		mg.State = StatusDone
	case res.RolledBack:
		mg.State, mg.Error = StatusRolledBack, err.Error()
	default:
		mg.State, mg.Error = StatusRollbackFailed, err.Error()
	}
	m.mu.Unlock()
	keep := false
	if m.recs != nil {
		if err := m.store(mg); err != nil {
			// Records lacks the final state: keep serving it from memory
			m.logErr(err)
			keep = true
		} else {
			m.logErr(m.recs.DropLog(mg.ID))
			m.logErr(m.recs.Prune(m.keep))
		}
	}
	m.release(mg, keep)
}

// Start plans req synchronously (so a bad request fails at once with an
// error wrapping ErrInvalid or ErrUnavailable, or ErrBusy) and runs the
// rest in the background under ctx (the daemon's lifetime, not the
// request's). It returns the record as it is after planning.
func (m *Manager) Start(ctx context.Context, req Request) (Migration, error) {
	p, err := m.env.Plan(ctx, req)
	if err != nil {
		return Migration{}, err
	}
	mg, err := m.claim(req, p, StatusRunning)
	if err != nil {
		return Migration{}, err
	}
	m.mu.Lock()
	out := copyMigration(mg)
	opt := m.wrap(mg, m.opt)
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		res, err := Run(ctx, m.env, req, opt)
		m.finish(mg, res, err, false)
	}()
	return out, nil
}

// Run runs one migration synchronously with opt (not the Manager's
// options), under the same rules and records as Start: ErrBusy if a
// bridge of its plan is in another migration; the record is kept (and
// stored). A request that does not plan returns a result with the failed
// plan step and the planning error, as the package's Run does.
func (m *Manager) Run(ctx context.Context, req Request, opt Options) (*Result, error) {
	p, err := m.env.Plan(ctx, req)
	if err != nil {
		return &Result{Steps: []StepRecord{{Step: StepPlan, Status: StatusFailed, Detail: err.Error()}}},
			fmt.Errorf("migrate %016x to %s: step %s: %w", req.Switch, req.To, StepPlan, err)
	}
	mg, err := m.claim(req, p, StatusRunning)
	if err != nil {
		return &Result{Plan: p}, fmt.Errorf("migrate %s to %s: %w", p.Source, req.To, err)
	}
	res, err := Run(ctx, m.env, req, m.wrap(mg, opt))
	m.finish(mg, res, err, false)
	return res, err
}

// Recover looks in Records for migrations left unfinished by a previous
// process (state running or recovering: the daemon died during them) and
// recovers each in the background under ctx (package Recover, with the
// Manager's options: its Mover moves hosts back, else the orchestrator
// is awaited): the record shows StatusRecovering meanwhile, with its
// bridges busy, then StatusInterrupted with Recovery and an Error naming
// the step that was interrupted. It returns the IDs being recovered.
// Without Records it does nothing. Call it once, when the daemon starts.
func (m *Manager) Recover(ctx context.Context) ([]string, error) {
	if m.recs == nil {
		return nil, nil
	}
	all, err := m.recs.List()
	if err != nil {
		return nil, fmt.Errorf("recover migrations: %w", err)
	}
	slices.SortFunc(all, func(a, b Migration) int { return a.Started.Compare(b.Started) })
	var ids []string
	var errs []error
	for i := range all {
		if all[i].State.Final() {
			continue
		}
		mg := &all[i]
		m.mu.Lock()
		_, mine := m.runs[mg.ID]
		m.mu.Unlock()
		if mine {
			continue // started by this Manager
		}
		if mg.Plan == nil {
			// a record without a plan (never written so: Start and Run
			// plan first): nothing can have changed
			mg.Plan = &Plan{}
		}
		step := interruptedStep(mg)
		if err := m.take(mg); err != nil {
			errs = append(errs, fmt.Errorf("recover migration %s: %w", mg.ID, err))
			continue
		}
		log, err := m.recs.Log(mg.ID)
		if err != nil {
			m.release(mg, false)
			errs = append(errs, fmt.Errorf("recover migration %s: %w", mg.ID, err))
			continue
		}
		if mg.State == StatusRunning {
			mg.Error = fmt.Sprintf("skyvisor stopped during step %s", step)
		}
		mg.State, mg.Awaiting, mg.AwaitingTo = StatusRecovering, nil, nil
		m.mu.Lock()
		opt := m.wrap(mg, m.opt)
		opt.Log = nil // the log is what is being recovered
		m.mu.Unlock()
		opt.Progress(Event{Time: time.Now(), Step: step, Status: StatusInterrupted,
			Detail: fmt.Sprintf("skyvisor stopped during this step; recovering from %d log entries", len(log))})
		ids = append(ids, mg.ID)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			var res *Result
			var err error
			if mg.Plan.Source.DPID == 0 {
				res = &Result{RolledBack: true}
			} else {
				res, err = Recover(ctx, m.env, *mg.Plan, log, opt)
			}
			m.finish(mg, res, err, true)
		}()
	}
	return ids, errors.Join(errs...)
}

// interruptedStep is the step mg was in when the process died: the last
// step recorded as running (else the last recorded, else plan).
func interruptedStep(mg *Migration) Step {
	for i := len(mg.Steps) - 1; i >= 0; i-- {
		if mg.Steps[i].Status == StatusRunning || mg.Steps[i].Status == StatusInterrupted {
			return mg.Steps[i].Step
		}
	}
	if n := len(mg.Steps); n > 0 {
		return mg.Steps[n-1].Step
	}
	return StepPlan
}

// upsertStep records e as its step's current status.
func upsertStep(steps []StepRecord, e Event) []StepRecord {
	for i := range steps {
		if steps[i].Step == e.Step {
			steps[i] = StepRecord{Step: e.Step, Status: e.Status, Took: e.Took, Detail: e.Detail}
			return steps
		}
	}
	return append(steps, StepRecord{Step: e.Step, Status: e.Status, Took: e.Took, Detail: e.Detail})
}

// Get returns migration id (ErrNotFound if unknown): the live record of
// a running migration, else the stored one.
func (m *Manager) Get(id string) (Migration, error) {
	m.mu.Lock()
	mg, ok := m.runs[id]
	var out Migration
	if ok {
		out = copyMigration(mg)
	}
	m.mu.Unlock()
	if ok {
		return out, nil
	}
	if m.recs != nil {
		rec, err := m.recs.Get(id)
		if err == nil {
			return copyMigration(&rec), nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Migration{}, fmt.Errorf("migration %q: %w", id, err)
		}
	}
	return Migration{}, fmt.Errorf("migration %q: %w", id, ErrNotFound)
}

// List returns every migration, oldest first: the stored records (a
// Records error is reported and only the running ones are listed) with
// the live state of those running.
func (m *Manager) List() []Migration {
	byID := map[string]Migration{}
	if m.recs != nil {
		recs, err := m.recs.List()
		m.logErr(err)
		for i := range recs {
			byID[recs[i].ID] = copyMigration(&recs[i])
		}
	}
	m.mu.Lock()
	for id, mg := range m.runs {
		byID[id] = copyMigration(mg)
	}
	m.mu.Unlock()
	out := make([]Migration, 0, len(byID))
	for _, mg := range byID {
		out = append(out, mg)
	}
	slices.SortFunc(out, func(a, b Migration) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Wait waits for every migration started so far to end.
func (m *Manager) Wait() { m.wg.Wait() }

func copyMigration(mg *Migration) Migration {
	c := *mg
	c.Steps = slices.Clone(mg.Steps)
	c.Events = slices.Clone(mg.Events)
	c.Moved = slices.Clone(mg.Moved)
	if mg.Plan != nil {
		p := *mg.Plan
		p.Hosts = slices.Clone(p.Hosts)
		p.Path = slices.Clone(p.Path)
		c.Plan = &p
	}
	if mg.Awaiting != nil {
		h := *mg.Awaiting
		c.Awaiting = &h
	}
	if mg.AwaitingTo != nil {
		b := *mg.AwaitingTo
		c.AwaitingTo = &b
	}
	if c.Steps == nil {
		c.Steps = []StepRecord{}
	}
	if c.Events == nil {
		c.Events = []Event{}
	}
	if c.Moved == nil {
		c.Moved = []string{}
	}
	return c
}

// newID returns "mig-YYYYMMDDTHHMMSSZ-<8 hex>": sortable by time, unique.
func newID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("migration ID: %w", err)
	}
	return "mig-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}
