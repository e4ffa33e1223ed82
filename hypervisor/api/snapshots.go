package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
)

// SnapshotService is what the snapshot routes (/v1/snapshots...,
// /v1/switches/{id}/flows) need from the core, on top of Service. It is
// optional: NewHandler serves those routes with 501 when the Service does
// not implement it. Errors map to statuses as for Service. The snapshot
// format and what restore does are in docs/snapshot.md.
type SnapshotService interface {
	// CreateSnapshot captures a tenant's switches (req.Tenant) or one
	// switch (req.Switch: DPID or bridge name) and stores the snapshot.
	// ErrInvalid when neither or both are given, ErrNotFound for an
	// unknown tenant or switch, ErrUnavailable when a switch is not
	// connected.
	CreateSnapshot(ctx context.Context, req SnapshotRequest) (snapshot.Info, error)
	// Snapshots lists every stored snapshot, oldest first (empty, not nil,
	// if none).
	Snapshots(ctx context.Context) ([]snapshot.Info, error)
	// Snapshot returns one stored snapshot; ErrNotFound if there is none.
	Snapshot(ctx context.Context, id string) (*snapshot.Snapshot, error)
	// DeleteSnapshot removes one; ErrNotFound if there is none.
	DeleteSnapshot(ctx context.Context, id string) error
	// RestoreSnapshot rebuilds a stored snapshot's switches (OVSDB
	// configuration and flow entries). ErrNotFound if there is none,
	// ErrConflict when its tenant or a switch is gone or a flow table
	// holds conflicting entries, ErrUnavailable when OVSDB or a bridge's
	// session cannot be reached.
	RestoreSnapshot(ctx context.Context, id string) (RestoreResult, error)
	// Flows returns a switch's flow table (DPID or bridge name) with the
	// counters the hypervisor reports (restored counters included);
	// tenant, if not "", keeps that tenant's entries only.
	Flows(ctx context.Context, sw, tenant string) (FlowList, error)
}

// SnapshotRequest is the body of POST /v1/snapshots: exactly one of Tenant
// and Switch.
type SnapshotRequest struct {
	// Tenant snapshots the VM bridges holding the tenant's hosts, with the
	// tenant's flow entries only.
	Tenant string `json:"tenant,omitempty"`
	// Switch snapshots one switch, every flow entry: its datapath ID (16
	// hex digits or 0x...) or bridge name.
	Switch string `json:"switch,omitempty"`
}

// SnapshotList is the answer of GET /v1/snapshots.
type SnapshotList struct {
	Snapshots []snapshot.Info `json:"snapshots"`
}

// RestoreResult is the answer of POST /v1/snapshots/{id}/restore.
type RestoreResult struct {
	// ID is the snapshot restored.
	ID string `json:"id"`
	// Switches says per bridge what was applied (OVSDB change, flows
	// added and kept, done).
	Switches []snapshot.SwitchReport `json:"switches"`
	// Skipped are snapshot entries not restored, with why (superseded by
	// or stale against the hypervisor's current desired state, or of a
	// tenant that no longer exists).
	Skipped []SkippedFlow `json:"skipped"`
	// Adopted is the number of restored tenant-app entries the hypervisor
	// keeps beside its own (its reconciler leaves them alone).
	Adopted int `json:"adopted"`
	// CounterOffsets is the number of restored entries whose snapshot
	// counters the hypervisor adds when it reports statistics.
	CounterOffsets int `json:"counter_offsets"`
	// TookMS is the restore's duration in milliseconds.
	TookMS float64 `json:"took_ms"`
}

// SkippedFlow is a snapshot entry a restore left out.
type SkippedFlow struct {
	Bridge string `json:"bridge"`
	DPID   string `json:"dpid"`
	Flow   string `json:"flow"`
	Reason string `json:"reason"`
}

// FlowList is the answer of GET /v1/switches/{id}/flows.
type FlowList struct {
	Switch string     `json:"switch"` // bridge name
	DPID   string     `json:"dpid"`   // 16 hex digits
	Tenant string     `json:"tenant,omitempty"`
	Flows  []FlowStat `json:"flows"`
}

// FlowStat is one flow entry with the counters the hypervisor reports:
// the fields of a snapshot flow (docs/snapshot.md) and whether the
// counters and duration include a restored snapshot's.
type FlowStat struct {
	snapshot.Flow
	CountersRestored bool `json:"counters_restored,omitempty"`
}

// snapshotService returns the SnapshotService of s.svc or a 501.
func (s *server) snapshotService() (SnapshotService, error) {
	ss, ok := s.svc.(SnapshotService)
	if !ok {
		return nil, &httpError{status: http.StatusNotImplemented, msg: "snapshots are not supported by this server"}
	}
	return ss, nil
}

// badField is a 400 naming one field of the request body.
func badField(path, msg string) error {
	return &httpError{status: http.StatusBadRequest, msg: "invalid snapshot request",
		details: []ErrorDetail{{Path: path, Message: msg}}}
}

// parseSnapshotRequest decodes a POST /v1/snapshots body strictly: one
// JSON object with exactly one of "tenant" and "switch", strings.
func parseSnapshotRequest(body []byte) (SnapshotRequest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return SnapshotRequest{}, &httpError{status: http.StatusBadRequest,
			msg: "invalid JSON: want an object {\"tenant\": NAME} or {\"switch\": DPID-or-bridge}: " + err.Error()}
	}
	var req SnapshotRequest
	for k, v := range raw {
		var dst *string
		switch k {
		case "tenant":
			dst = &req.Tenant
		case "switch":
			dst = &req.Switch
		default:
			return SnapshotRequest{}, badField("$."+k, "unknown field: want \"tenant\" or \"switch\"")
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return SnapshotRequest{}, badField("$."+k, "must be a string")
		}
		if strings.TrimSpace(*dst) == "" {
			return SnapshotRequest{}, badField("$."+k, "must not be empty")
		}
	}
	switch {
	case req.Tenant != "" && req.Switch != "":
		return SnapshotRequest{}, badField("$.switch", "give either \"tenant\" or \"switch\", not both")
	case req.Tenant == "" && req.Switch == "":
		return SnapshotRequest{}, badField("$.tenant", "missing: give \"tenant\" (a tenant name) or \"switch\" (a DPID or bridge name)")
	}
	return req, nil
}

func (s *server) createSnapshot(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.snapshotService()
	if err != nil {
		return err
	}
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	req, err := parseSnapshotRequest(body)
	if err != nil {
		return err
	}
	in, err := ss.CreateSnapshot(r.Context(), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/snapshots/"+url.PathEscape(in.ID))
	s.writeJSON(w, http.StatusOK, in)
	return nil
}

func (s *server) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.snapshotService()
	if err != nil {
		return err
	}
	l, err := ss.Snapshots(r.Context())
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if l == nil {
		l = []snapshot.Info{}
	}
	s.writeJSON(w, http.StatusOK, SnapshotList{Snapshots: l})
	return nil
}

func (s *server) getSnapshot(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.snapshotService()
	if err != nil {
		return err
	}
	snap, err := ss.Snapshot(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, snap)
	return nil
}

func (s *server) deleteSnapshot(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.snapshotService()
	if err != nil {
		return err
	}
	if err := ss.DeleteSnapshot(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// restoreSnapshot is POST /v1/snapshots/{id}/restore; the body is empty
// or an empty JSON object (room for options).
func (s *server) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.snapshotService()
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return &httpError{status: http.StatusBadRequest, msg: "reading request body: " + err.Error()}
	}
	if b := bytes.TrimSpace(body); len(b) > 0 {
		if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) != "application/json" {
			return &httpError{status: http.StatusUnsupportedMediaType,
				msg: fmt.Sprintf("content type %q not supported: send \"Content-Type: application/json\" or no body", r.Header.Get("Content-Type"))}
		}
		var opts map[string]json.RawMessage
		if err := json.Unmarshal(b, &opts); err != nil {
			return &httpError{status: http.StatusBadRequest, msg: "invalid JSON: want no body or {}: " + err.Error()}
		}
		for k := range opts {
			return badField("$."+k, "unknown field: restore takes no options")
		}
	}
	res, err := ss.RestoreSnapshot(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *server) switchFlows(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.snapshotService()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	for k := range q {
		if k != "tenant" {
			return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf("unknown query parameter %q: only \"tenant\"", k)}
		}
	}
	l, err := ss.Flows(r.Context(), r.PathValue("id"), q.Get("tenant"))
	if err != nil {
		return err
	}
	if l.Flows == nil {
		l.Flows = []FlowStat{}
	}
	s.writeJSON(w, http.StatusOK, l)
	return nil
}

// CreateSnapshot takes a snapshot (POST /v1/snapshots) of req.Tenant's
// switches or of switch req.Switch.
func (c *Client) CreateSnapshot(ctx context.Context, req SnapshotRequest) (snapshot.Info, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return snapshot.Info{}, fmt.Errorf("encode snapshot request: %w", err)
	}
	var in snapshot.Info
	err = c.Do(ctx, http.MethodPost, "/v1/snapshots", body, &in)
	return in, err
}

// Snapshots lists the stored snapshots (GET /v1/snapshots), oldest first.
func (c *Client) Snapshots(ctx context.Context) ([]snapshot.Info, error) {
	var l SnapshotList
	err := c.Do(ctx, http.MethodGet, "/v1/snapshots", nil, &l)
	return l.Snapshots, err
}

// Snapshot returns one stored snapshot (GET /v1/snapshots/{id}), decoded
// and checked by snapshot.Decode.
func (c *Client) Snapshot(ctx context.Context, id string) (*snapshot.Snapshot, error) {
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodGet, "/v1/snapshots/"+url.PathEscape(id), nil, &raw); err != nil {
		return nil, err
	}
	return snapshot.Decode(raw)
}

// DeleteSnapshot deletes one (DELETE /v1/snapshots/{id}).
func (c *Client) DeleteSnapshot(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/snapshots/"+url.PathEscape(id), nil, nil)
}

// RestoreSnapshot restores one (POST /v1/snapshots/{id}/restore).
func (c *Client) RestoreSnapshot(ctx context.Context, id string) (RestoreResult, error) {
	var res RestoreResult
	err := c.Do(ctx, http.MethodPost, "/v1/snapshots/"+url.PathEscape(id)+"/restore", nil, &res)
	return res, err
}

// Flows returns a switch's flow table as the hypervisor reports it (GET
// /v1/switches/{id}/flows[?tenant=NAME]).
func (c *Client) Flows(ctx context.Context, sw, tenant string) (FlowList, error) {
	path := "/v1/switches/" + url.PathEscape(sw) + "/flows"
	if tenant != "" {
		path += "?tenant=" + url.QueryEscape(tenant)
	}
	var l FlowList
	err := c.Do(ctx, http.MethodGet, path, nil, &l)
	return l, err
}
