package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrBusy is returned by Manager.Start when the source or target bridge
// is part of a migration in progress.
var ErrBusy = errors.New("a migration of this bridge is in progress")

// ErrNotFound is returned by Manager.Get for an unknown ID.
var ErrNotFound = errors.New("no such migration")

// Migration is the record of one migration started by a Manager: what
// GET /v1/migrations/{id} shows.
type Migration struct {
	ID      string  `json:"id"`
	Request Request `json:"request"`
	// State is StatusRunning, then StatusDone, or StatusRolledBack (the
	// migration failed and was undone), or StatusRollbackFailed.
	State  Status       `json:"state"`
	Plan   *Plan        `json:"plan,omitempty"`
	Steps  []StepRecord `json:"steps"`
	Events []Event      `json:"events"`
	// Awaiting is the host the move step waits for (the orchestrator must
	// move its interface to Plan.Target), nil otherwise.
	Awaiting *Host `json:"awaiting,omitempty"`
	// AwaitingTo is the bridge the awaited host must appear on: the
	// target, or the source during a rollback.
	AwaitingTo *Bridge    `json:"awaiting_to,omitempty"`
	Cloned     int        `json:"cloned"`
	Frozen     int        `json:"frozen"`
	Moved      []string   `json:"moved"`
	Error      string     `json:"error,omitempty"`
	Started    time.Time  `json:"started"`
	Finished   *time.Time `json:"finished,omitempty"`
}

// Manager runs migrations in the background and keeps their records (in
// memory: a migration does not survive a restart of Skyvisor; an
// interrupted one leaves the admission and clones, which the hypervisor's
// reconcile does not remove — see docs). Safe for concurrent use.
type Manager struct {
	env  Env
	opt  Options
	mu   sync.Mutex
	runs map[string]*Migration
	busy map[uint64]string // bridge DPID -> migration ID
	wg   sync.WaitGroup
}

// NewManager returns a Manager over env; opt is used for every migration
// (its Progress and Awaiting are wrapped, not replaced).
func NewManager(env Env, opt Options) *Manager {
	return &Manager{env: env, opt: opt, runs: map[string]*Migration{}, busy: map[uint64]string{}}
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
	id, err := newID()
	if err != nil {
		return Migration{}, err
	}
	m.mu.Lock()
	for _, d := range []uint64{p.Source.DPID, p.Target.DPID} {
		if other, ok := m.busy[d]; ok {
			m.mu.Unlock()
			return Migration{}, fmt.Errorf("bridge %016x is in migration %s: %w", d, other, ErrBusy)
		}
	}
	mg := &Migration{ID: id, Request: req, State: StatusRunning, Plan: &p, Started: time.Now().UTC()}
	m.runs[id] = mg
	m.busy[p.Source.DPID], m.busy[p.Target.DPID] = id, id
	out := copyMigration(mg)
	m.mu.Unlock()

	opt := m.opt
	opt.Progress = func(e Event) {
		m.mu.Lock()
		mg.Events = append(mg.Events, e)
		if e.Status != StatusRunning || e.Took == 0 {
			// step-level changes only (not per-host "moved" events)
			mg.Steps = upsertStep(mg.Steps, e)
		}
		m.mu.Unlock()
		if m.opt.Progress != nil {
			m.opt.Progress(e)
		}
	}
	opt.Awaiting = func(h *Host, to Bridge) {
		m.mu.Lock()
		mg.Awaiting, mg.AwaitingTo = h, nil
		if h != nil {
			mg.AwaitingTo = &to
		}
		m.mu.Unlock()
		if m.opt.Awaiting != nil {
			m.opt.Awaiting(h, to)
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		res, err := Run(ctx, m.env, req, opt)
		m.mu.Lock()
		defer m.mu.Unlock()
		now := time.Now().UTC()
		mg.Finished = &now
		mg.Steps = res.Steps
		mg.Cloned, mg.Frozen, mg.Moved = res.Cloned, res.Frozen, res.Moved
		mg.Plan = &res.Plan
		switch {
		case err == nil:
			mg.State = StatusDone
		case res.RolledBack:
			mg.State, mg.Error = StatusRolledBack, err.Error()
		default:
			mg.State, mg.Error = StatusRollbackFailed, err.Error()
		}
		delete(m.busy, p.Source.DPID)
		delete(m.busy, p.Target.DPID)
	}()
	return out, nil
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

// Get returns migration id (ErrNotFound if unknown).
func (m *Manager) Get(id string) (Migration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mg, ok := m.runs[id]
	if !ok {
		return Migration{}, fmt.Errorf("migration %q: %w", id, ErrNotFound)
	}
	return copyMigration(mg), nil
}

// List returns every migration, oldest first.
func (m *Manager) List() []Migration {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Migration, 0, len(m.runs))
	for _, mg := range m.runs {
		out = append(out, copyMigration(mg))
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Started.Compare(b.Started) })
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
