package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// MigrationService is implemented by a Service that can live-migrate a
// VM's edge bridge with its hosts to another cloud (the hypervisor core
// does; package hypervisor/migrate). The handler serves POST
// /v1/migrations and GET /v1/migrations[/{id}] only for such a Service;
// otherwise those routes answer 404.
type MigrationService interface {
	// StartMigration plans the migration at once (ErrInvalid: unknown
	// switch or cloud, same cloud, no hosts on the switch; ErrUnavailable:
	// a bridge not connected or no tunnel path; ErrConflict: a bridge is
	// already migrating) and runs it in the background.
	StartMigration(ctx context.Context, req MigrationRequest) (Migration, error)
	// Migration returns one migration (ErrNotFound if unknown).
	Migration(ctx context.Context, id string) (Migration, error)
	// Migrations lists the stored migrations (those running and the
	// last 100 finished, across restarts), oldest first.
	Migrations(ctx context.Context) ([]Migration, error)
}

// MigrationRequest is the body of POST /v1/migrations.
type MigrationRequest struct {
	// Switch is the VM bridge to migrate: its DPID ("0x101",
	// "0000000000000101" or "00:00:00:00:00:00:01:01") or "site/vm".
	Switch string `json:"switch"`
	// To is the target cloud (site).
	To string `json:"to"`
	// VM optionally names the target VM in that cloud (default: the
	// connected VM bridge with the fewest hosts).
	VM string `json:"vm,omitempty"`
	// FailAfter injects a failure right after the named step (tests and
	// demonstrations of the rollback); empty for a real migration.
	FailAfter string `json:"fail_after,omitempty"`
}

// MigrationBridge is one end of a migration.
type MigrationBridge struct {
	DPID   string `json:"dpid"` // 16 hex digits
	Site   string `json:"site"`
	VM     string `json:"vm"`
	Bridge string `json:"bridge"`
}

// MigrationHost is a host moved by a migration.
type MigrationHost struct {
	IfaceID string `json:"iface_id"`
	Port    string `json:"port"`
}

// MigrationStep is the outcome of one step so far.
type MigrationStep struct {
	Step   string  `json:"step"`
	Status string  `json:"status"` // running, done, failed, rolled-back, rollback-failed
	TookMS float64 `json:"took_ms"`
	Detail string  `json:"detail,omitempty"`
}

// MigrationEvent is one progress event.
type MigrationEvent struct {
	Time   time.Time `json:"time"`
	Step   string    `json:"step"`
	Status string    `json:"status"`
	TookMS float64   `json:"took_ms,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Migration is the answer of POST /v1/migrations and GET
// /v1/migrations/{id}.
type Migration struct {
	ID string `json:"id"`
	// State: running, done, rolled-back (failed and undone) or
	// rollback-failed; for a migration the daemon was running when it
	// stopped: recovering (at its next start, while its changes are
	// undone or completed), then interrupted (see Recovery).
	State string `json:"state"`
	// Recovery is, for an interrupted migration, what the recovery did:
	// rolled-back, done (the commit had taken effect: completed) or
	// rollback-failed (Error says what is left).
	Recovery string          `json:"recovery,omitempty"`
	Source   MigrationBridge `json:"source"`
	Target   MigrationBridge `json:"target"`
	Hosts    []MigrationHost `json:"hosts"`
	// Path are the gateway sites joining source and target.
	Path   []string         `json:"path"`
	Steps  []MigrationStep  `json:"steps"`
	Events []MigrationEvent `json:"events"`
	// Awaiting is the host the move step waits for: the orchestrator
	// must move its interface to Target (skyctl migrate --lab does it in
	// the lab).
	Awaiting *MigrationHost `json:"awaiting,omitempty"`
	// AwaitingTo is the bridge the awaited host must be moved to: the
	// target, or the source while a failed migration rolls back.
	AwaitingTo *MigrationBridge `json:"awaiting_to,omitempty"`
	Cloned     int              `json:"cloned"`
	Frozen     int              `json:"frozen"`
	Moved      []string         `json:"moved"`
	Error      string           `json:"error,omitempty"`
	Started    time.Time        `json:"started"`
	Finished   *time.Time       `json:"finished,omitempty"`
}

// Done reports whether the migration has ended (successfully or not).
func (m Migration) Done() bool { return m.State != "running" && m.State != "recovering" }

func (s *server) migrationService() (MigrationService, error) {
	ms, ok := s.svc.(MigrationService)
	if !ok {
		return nil, fmt.Errorf("migrations are not available from this service: %w", ErrNotFound)
	}
	return ms, nil
}

// startMigration serves POST /v1/migrations (202 Accepted with the
// planned migration and a Location header).
func (s *server) startMigration(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.migrationService()
	if err != nil {
		return err
	}
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	var req MigrationRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("migration request: %v: %w", err, ErrInvalid)
	}
	switch {
	case req.Switch == "":
		return fmt.Errorf("migration request: \"switch\" is required: %w", ErrInvalid)
	case req.To == "":
		return fmt.Errorf("migration request: \"to\" (the target cloud) is required: %w", ErrInvalid)
	}
	m, err := ms.StartMigration(r.Context(), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/migrations/"+url.PathEscape(m.ID))
	s.writeJSON(w, http.StatusAccepted, m)
	return nil
}

// getMigration serves GET /v1/migrations/{id}.
func (s *server) getMigration(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.migrationService()
	if err != nil {
		return err
	}
	m, err := ms.Migration(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, m)
	return nil
}

// listMigrations serves GET /v1/migrations.
func (s *server) listMigrations(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.migrationService()
	if err != nil {
		return err
	}
	l, err := ms.Migrations(r.Context())
	if err != nil {
		return err
	}
	if l == nil {
		l = []Migration{}
	}
	s.writeJSON(w, http.StatusOK, l)
	return nil
}

// StartMigration starts a live migration (POST /v1/migrations).
func (c *Client) StartMigration(ctx context.Context, req MigrationRequest) (Migration, error) {
	var m Migration
	b, err := json.Marshal(req)
	if err != nil {
		return m, err
	}
	err = c.Do(ctx, http.MethodPost, "/v1/migrations", b, &m)
	return m, err
}

// Migration returns one migration (GET /v1/migrations/{id}).
func (c *Client) Migration(ctx context.Context, id string) (Migration, error) {
	var m Migration
	err := c.Do(ctx, http.MethodGet, "/v1/migrations/"+url.PathEscape(id), nil, &m)
	return m, err
}

// Migrations lists the migrations (GET /v1/migrations).
func (c *Client) Migrations(ctx context.Context) ([]Migration, error) {
	var l []Migration
	err := c.Do(ctx, http.MethodGet, "/v1/migrations", nil, &l)
	return l, err
}
