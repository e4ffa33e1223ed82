package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes is
// zero: 1 MiB, room for thousands of hosts.
const DefaultMaxBodyBytes = 1 << 20

// Options configures NewHandler.
type Options struct {
	// Token is the bearer token every write must carry. Empty means writes
	// are refused with 403 (the API is read-only until a token is set).
	Token string
	// AuthReads also requires the token on reads (except /v1/health).
	AuthReads bool
	// MaxBodyBytes limits request bodies (413 beyond it); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one access log line per request (Info; Error for 5xx)
	// and the details of internal errors and panics. Nil discards.
	Logger *slog.Logger
}

// route is one entry of the route table: the source of truth for both the
// mux and the OpenAPI drift test.
type route struct {
	method  string
	pattern string
	// access is who may call it.
	access access
	handle func(w http.ResponseWriter, r *http.Request) error
}

type access int

const (
	public access = iota // no token, ever (health)
	read                 // token only with Options.AuthReads
	write                // token always
)

type server struct {
	svc      Service
	opts     Options
	log      *slog.Logger
	tokenSum [sha256.Size]byte
	mux      *http.ServeMux
	// reqSeq numbers requests for request IDs; reqPrefix makes IDs unique
	// across restarts.
	reqSeq    atomic.Uint64
	reqPrefix string
}

// NewHandler returns the REST API over svc as an http.Handler, with access
// logging, panic recovery (500, never a crash), bearer-token checks, body
// limits and JSON errors for unknown routes (404) and wrong methods (405).
func NewHandler(svc Service, opts Options) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{
		svc:       svc,
		opts:      opts,
		log:       log,
		tokenSum:  sha256.Sum256([]byte(opts.Token)),
		mux:       http.NewServeMux(),
		reqPrefix: strconv.FormatInt(time.Now().UnixNano()%(1<<32), 36),
	}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.method+" "+rt.pattern, s.endpoint(rt))
	}
	return s
}

// NewServer wraps h in an *http.Server listening on addr with timeouts fit
// for a control API (slow clients cannot hold connections forever).
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Routes lists every route the handler serves as "METHOD /pattern", in the
// form of Go 1.22 ServeMux patterns ("GET /v1/tenants/{name}"). GET routes
// also answer HEAD.
func Routes() []string {
	s := &server{}
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.method+" "+rt.pattern)
	}
	return out
}

func (s *server) routes() []route {
	return []route{
		{"GET", "/v1/health", public, s.health},
		{"GET", "/v1/tenants", read, s.listTenants},
		{"POST", "/v1/tenants", write, s.applyDocument},
		{"GET", "/v1/tenants/{name}", read, s.getTenant},
		{"PUT", "/v1/tenants/{name}", write, s.putTenant},
		{"DELETE", "/v1/tenants/{name}", write, s.deleteTenant},
		{"GET", "/v1/tenants/{name}/mapping", read, s.getMapping},
		{"GET", "/v1/tenants/{name}/links", read, s.tenantLinks},
		{"GET", "/v1/topology/physical", read, s.physicalTopology},
		{"GET", "/v1/snapshots", read, s.listSnapshots}, // snapshots.go
		{"POST", "/v1/snapshots", write, s.createSnapshot},
		{"GET", "/v1/snapshots/{id}", read, s.getSnapshot},
		{"DELETE", "/v1/snapshots/{id}", write, s.deleteSnapshot},
		{"POST", "/v1/snapshots/{id}/restore", write, s.restoreSnapshot},
		{"GET", "/v1/switches/{id}/flows", read, s.switchFlows},
		{"POST", "/v1/migrations", write, s.startMigration}, // migrations.go
		{"GET", "/v1/migrations", read, s.listMigrations},
		{"GET", "/v1/migrations/{id}", read, s.getMigration},
	}
}

// ServeHTTP is the outermost layer: request ID, access log, panic recovery,
// then either a route or a JSON 404/405.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := s.requestID(r)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	rec.Header().Set("X-Request-Id", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("api: panic", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !rec.wrote {
				s.writeJSON(rec, http.StatusInternalServerError,
					ErrorResponse{Error: "internal error", RequestID: id})
			}
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "api request", "request_id", id, "method", r.Method,
			"path", r.URL.Path, "status", rec.status, "bytes", rec.bytes,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "remote", r.RemoteAddr)
	}()
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.noRoute(rec, r)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// noRoute answers 405 (with Allow) when the path exists for other methods,
// else 404, both as JSON.
func (s *server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	id := requestIDFrom(r.Context())
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{
			Error:     fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")),
			RequestID: id,
		})
		return
	}
	s.writeJSON(w, http.StatusNotFound, ErrorResponse{
		Error: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path), RequestID: id,
	})
}

// endpoint wraps one route's handler with its access check and error mapping.
func (s *server) endpoint(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.authorize(rt.access, r); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := rt.handle(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// authorize enforces the bearer token (RFC 6750 section 2.1).
func (s *server) authorize(a access, r *http.Request) error {
	if a == public || (a == read && !s.opts.AuthReads) {
		return nil
	}
	if s.opts.Token == "" {
		return &httpError{status: http.StatusForbidden,
			msg: "no API token configured: the API is read-only until the daemon is given a token"}
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return &httpError{status: http.StatusUnauthorized, msg: "missing bearer token: send \"Authorization: Bearer <token>\""}
	}
	// Hash both sides so the comparison takes the same time whatever the
	// lengths (subtle.ConstantTimeCompare returns early on length mismatch).
	sum := sha256.Sum256([]byte(cred))
	if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
		return &httpError{status: http.StatusUnauthorized, msg: "invalid bearer token"}
	}
	return nil
}

// httpError is an error with a chosen status and public message.
type httpError struct {
	status  int
	msg     string
	details []ErrorDetail
}

func (e *httpError) Error() string { return e.msg }

// fail writes err as an ErrorResponse with the status its kind maps to.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	id := requestIDFrom(r.Context())
	resp := ErrorResponse{Error: err.Error(), RequestID: id}
	status := http.StatusInternalServerError
	var (
		he   *httpError
		verr *topology.ValidationError
		mbe  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &he):
		status, resp.Error, resp.Details = he.status, he.msg, he.details
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
		resp.Error = fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &verr):
		status = http.StatusBadRequest
		resp.Error = validationSummary(len(verr.Errors))
		resp.Details = make([]ErrorDetail, 0, len(verr.Errors))
		for _, fe := range verr.Errors {
			resp.Details = append(resp.Details, ErrorDetail{Path: fe.Path, Message: fe.Msg})
		}
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrConflict) || errors.Is(err, addr.ErrExhausted):
		status = http.StatusConflict
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrUnavailable):
		status = http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
		resp.Error = "request canceled or timed out"
	default:
		s.log.Error("api: internal error", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		resp.Error = "internal error"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="skyvisor"`)
	}
	s.writeJSON(w, status, resp)
}

func validationSummary(n int) string {
	if n == 1 {
		return "invalid topology: 1 error"
	}
	return fmt.Sprintf("invalid topology: %d errors", n)
}

// writeJSON writes v, indented, with status. Encoding our own types cannot
// fail; a write error means the client left (logged at debug).
func (s *server) writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<token>" readable; responses are never HTML
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		s.log.Error("api: encode response", "err", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("{\"error\": \"internal error\"}\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if _, err := w.Write(buf.Bytes()); err != nil {
		s.log.Debug("api: write response", "err", err)
	}
}

// readJSONBody checks the content type (415 unless application/json) and
// reads the body up to the limit (413 beyond it; 400 if empty).
func (s *server) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return nil, &httpError{status: http.StatusUnsupportedMediaType,
			msg: fmt.Sprintf("content type %q not supported: send \"Content-Type: application/json\"", ct)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, &httpError{status: http.StatusBadRequest, msg: "reading request body: " + err.Error()}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &httpError{status: http.StatusBadRequest, msg: "empty request body: want a topology JSON object"}
	}
	return body, nil
}

func (s *server) health(w http.ResponseWriter, r *http.Request) error {
	h := s.svc.Health(r.Context())
	status := http.StatusOK
	if h.Status != HealthOK && h.Status != HealthDegraded {
		status = http.StatusServiceUnavailable
	}
	s.writeJSON(w, status, h)
	return nil
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.svc.Tenants(r.Context())
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	if ts == nil {
		ts = []TenantStatus{}
	}
	s.writeJSON(w, http.StatusOK, TenantList{Tenants: ts})
	return nil
}

func (s *server) getTenant(w http.ResponseWriter, r *http.Request) error {
	d, err := s.svc.Tenant(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *server) getMapping(w http.ResponseWriter, r *http.Request) error {
	m, err := s.svc.Mapping(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *server) physicalTopology(w http.ResponseWriter, r *http.Request) error {
	p, err := s.svc.PhysicalTopology(r.Context())
	if err != nil {
		return fmt.Errorf("physical topology: %w", err)
	}
	s.writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *server) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteTenant(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// load parses and validates a request body with topology.Load against the
// core's infrastructure; every problem comes back in one *ValidationError.
func (s *server) load(r *http.Request, body []byte) ([]*topology.Topology, error) {
	infra, err := s.svc.Infra(r.Context())
	if err != nil {
		return nil, fmt.Errorf("infrastructure for validation: %w", err)
	}
	ts, err := topology.Load(body, infra)
	if err != nil {
		return nil, parseError(err)
	}
	return ts, nil
}

// putTenant is PUT /v1/tenants/{name}: create or replace one tenant. The
// body is one topology whose "tenant" must equal {name}.
func (s *server) putTenant(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if isTenantsDocument(body) {
		return &httpError{status: http.StatusBadRequest, msg: "PUT takes one topology",
			details: []ErrorDetail{{Path: "$.tenants", Message: "multi-tenant document: use POST /v1/tenants"}}}
	}
	ts, err := s.load(r, body)
	var verr *topology.ValidationError
	switch {
	case errors.As(err, &verr):
		// Report a name mismatch along with the other problems.
		if t, perr := topology.Parse(body); perr == nil && t.Tenant != name && t.Tenant != "" {
			verr.Errors = append(verr.Errors, topology.FieldError{Path: "$.tenant", Msg: mismatch(t.Tenant, name)})
		}
		return verr
	case err != nil:
		return err
	case ts[0].Tenant != name:
		return &httpError{status: http.StatusBadRequest, msg: validationSummary(1),
			details: []ErrorDetail{{Path: "$.tenant", Message: mismatch(ts[0].Tenant, name)}}}
	}
	st, err := s.svc.ApplyTenant(r.Context(), ts[0])
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, st)
	return nil
}

func mismatch(body, path string) string {
	return fmt.Sprintf("tenant %q does not match %q in the URL path /v1/tenants/%s", body, path, path)
}

// applyDocument is POST /v1/tenants: one topology, or {"tenants": [...]}
// applied all or nothing.
func (s *server) applyDocument(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	ts, err := s.load(r, body)
	if err != nil {
		return err
	}
	if !isTenantsDocument(body) {
		st, err := s.svc.ApplyTenant(r.Context(), ts[0])
		if err != nil {
			return err
		}
		s.writeJSON(w, http.StatusOK, ApplyResult{Tenants: []TenantStatus{st}})
		return nil
	}
	sts, err := s.svc.ApplyTenants(r.Context(), ts)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, ApplyResult{Tenants: sts})
	return nil
}

// parseError makes any error from parsing the request body a 400: a
// *topology.ValidationError keeps its per-path details, anything else (bad
// JSON syntax) becomes the message.
func parseError(err error) error {
	var verr *topology.ValidationError
	if errors.As(err, &verr) {
		return err
	}
	return &httpError{status: http.StatusBadRequest, msg: "invalid JSON: " + err.Error()}
}

// isTenantsDocument reports whether body is a {"tenants": [...]} document
// rather than a single topology (body is already known to parse).
func isTenantsDocument(body []byte) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil {
		return false
	}
	_, ok := probe["tenants"]
	return ok
}

type requestIDKey struct{}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestID reuses a sane client-supplied X-Request-Id, else makes one.
func (s *server) requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && strings.IndexFunc(id, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}) < 0 {
		return id
	}
	return s.reqPrefix + "-" + strconv.FormatUint(s.reqSeq.Add(1), 10)
}

// recorder captures the status and size for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
