package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

const testToken = "s3cret-token"

// topoJSON is a minimal valid topology (docs/topology.md) of tenant name.
func topoJSON(name string) string {
	return fmt.Sprintf(`{"tenant": %q, "switches": [{"name": "s1"}, {"name": "s2"}],
		"links": [{"a": {"switch": "s1", "port": 2}, "b": {"switch": "s2", "port": 1}}],
		"hosts": [{"name": "h1", "mac": "00:00:00:00:00:01", "ip": "10.0.0.1/24", "switch": "s1", "port": 1, "cloud": "aws"}]}`, name)
}

// badTopoJSON has two semantic errors: an unknown cloud and a link to an
// unknown switch.
func badTopoJSON(name string) string {
	return fmt.Sprintf(`{"tenant": %q, "switches": [{"name": "s1"}],
		"links": [{"a": {"switch": "s1", "port": 2}, "b": {"switch": "s9", "port": 1}}],
		"hosts": [{"name": "h1", "mac": "00:00:00:00:00:01", "ip": "10.0.0.1/24", "switch": "s1", "port": 1, "cloud": "mars"}]}`, name)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	fake *apitest.Fake
	h    http.Handler
	logs *syncBuffer
}

func newEnv(t *testing.T, opts api.Options) *env {
	t.Helper()
	e := &env{fake: apitest.New(), logs: &syncBuffer{}}
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.h = api.NewHandler(e.fake, opts)
	return e
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) errResp(t *testing.T) api.ErrorResponse {
	t.Helper()
	var er api.ErrorResponse
	if err := json.Unmarshal(r.body, &er); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r.body)
	}
	if er.Error == "" {
		t.Fatalf("error body has no \"error\": %s", r.body)
	}
	return er
}

// do sends one request; auth is the Authorization header value ("" none);
// ctype "" means application/json when there is a body.
func (e *env) do(t *testing.T, method, path, body, auth string, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); len(b) > 0 && ct != "application/json; charset=utf-8" {
		t.Errorf("%s %s: Content-Type %q, want JSON", method, path, ct)
	}
	if res.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	return reply{code: res.StatusCode, header: res.Header, body: b}
}

const bearer = "Bearer " + testToken

func TestHealthNeedsNoToken(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken, AuthReads: true})
	r := e.do(t, "GET", "/v1/health", "", "")
	if r.code != 200 {
		t.Fatalf("health: %d %s", r.code, r.body)
	}
	var h api.Health
	if err := json.Unmarshal(r.body, &h); err != nil || h.Status != api.HealthOK || h.Version != "test" {
		t.Fatalf("health body %s (%v)", r.body, err)
	}
	e.fake.HealthValue.Status = api.HealthDegraded
	if r := e.do(t, "GET", "/v1/health", "", ""); r.code != 200 {
		t.Errorf("degraded: %d, want 200", r.code)
	}
	e.fake.HealthValue = api.Health{Status: api.HealthUnavailable, Checks: []api.HealthCheck{{Name: "store", Status: api.HealthUnavailable, Message: "closed"}}}
	r = e.do(t, "GET", "/v1/health", "", "")
	if r.code != 503 || !strings.Contains(string(r.body), `"closed"`) {
		t.Errorf("unavailable: %d %s, want 503 with the checks", r.code, r.body)
	}
}

// writeRequests are one request per write route, each valid if authorized.
var writeRequests = []struct{ method, path, body string }{
	{"PUT", "/v1/tenants/acme", topoJSON("acme")},
	{"POST", "/v1/tenants", topoJSON("acme")},
	{"DELETE", "/v1/tenants/acme", ""},
}

func TestWritesNeedToken(t *testing.T) {
	for _, wr := range writeRequests {
		t.Run(wr.method, func(t *testing.T) {
			e := newEnv(t, api.Options{Token: testToken})
			for _, c := range []struct {
				name, auth string
			}{
				{"missing", ""},
				{"wrong", "Bearer nope"},
				{"prefix of token", "Bearer s3cret"},
				{"wrong scheme", "Basic " + testToken},
				{"empty bearer", "Bearer "},
			} {
				r := e.do(t, wr.method, wr.path, wr.body, c.auth)
				if r.code != 401 {
					t.Errorf("%s token: %d %s, want 401", c.name, r.code, r.body)
					continue
				}
				r.errResp(t)
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("%s token: WWW-Authenticate %q", c.name, got)
				}
			}
			if calls := e.fake.Calls(); len(calls) != 0 {
				t.Fatalf("service called without a valid token: %v", calls)
			}
			if wr.method == "DELETE" {
				e.do(t, "PUT", "/v1/tenants/acme", topoJSON("acme"), bearer)
			}
			r := e.do(t, wr.method, wr.path, wr.body, bearer)
			if r.code/100 != 2 {
				t.Fatalf("right token: %d %s", r.code, r.body)
			}
			// The scheme is case-insensitive (RFC 6750 via RFC 7235).
			if wr.method != "DELETE" {
				if r := e.do(t, wr.method, wr.path, wr.body, "bearer "+testToken); r.code/100 != 2 {
					t.Fatalf("lower-case scheme: %d %s", r.code, r.body)
				}
			}
			if strings.Contains(e.logs.String(), testToken) {
				t.Errorf("token leaked into the log: %s", e.logs.String())
			}
		})
	}
}

func TestNoTokenConfiguredRefusesWrites(t *testing.T) {
	e := newEnv(t, api.Options{})
	for _, wr := range writeRequests {
		for _, auth := range []string{"", "Bearer ", "Bearer anything"} {
			r := e.do(t, wr.method, wr.path, wr.body, auth)
			if r.code != 403 || !strings.Contains(r.errResp(t).Error, "no API token configured") {
				t.Errorf("%s %s auth %q: %d %s, want 403 no API token configured", wr.method, wr.path, auth, r.code, r.body)
			}
		}
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("service called: %v", calls)
	}
	// Reads still work.
	if r := e.do(t, "GET", "/v1/tenants", "", ""); r.code != 200 {
		t.Errorf("read without token configured: %d", r.code)
	}
}

func TestAuthReads(t *testing.T) {
	reads := []string{"/v1/tenants", "/v1/tenants/acme", "/v1/tenants/acme/mapping", "/v1/topology/physical"}
	open := newEnv(t, api.Options{Token: testToken})
	closed := newEnv(t, api.Options{Token: testToken, AuthReads: true})
	for _, p := range reads {
		if r := open.do(t, "GET", p, "", ""); r.code == 401 {
			t.Errorf("GET %s without AuthReads: 401", p)
		}
		if r := closed.do(t, "GET", p, "", ""); r.code != 401 {
			t.Errorf("GET %s with AuthReads, no token: %d, want 401", p, r.code)
		}
		if r := closed.do(t, "GET", p, "", bearer); r.code == 401 {
			t.Errorf("GET %s with AuthReads and token: 401", p)
		}
	}
	// AuthReads without a token configured refuses reads too (but not
	// health).
	locked := newEnv(t, api.Options{AuthReads: true})
	if r := locked.do(t, "GET", "/v1/tenants", "", bearer); r.code != 403 {
		t.Errorf("AuthReads, no token configured: %d, want 403", r.code)
	}
	if r := locked.do(t, "GET", "/v1/health", "", ""); r.code != 200 {
		t.Errorf("health with AuthReads, no token configured: %d", r.code)
	}
}

func TestPutTenant(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	r := e.do(t, "PUT", "/v1/tenants/acme", topoJSON("acme"), bearer)
	if r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	var st api.TenantStatus
	if err := json.Unmarshal(r.body, &st); err != nil || st.Tenant != "acme" || st.TenantID != 512 || st.Generation != 1 {
		t.Fatalf("PUT body %s (%v)", r.body, err)
	}
	if got := e.fake.Stored("acme"); got == nil || got.Tenant != "acme" || len(got.Hosts) != 1 || got.Hosts[0].Cloud != "aws" {
		t.Fatalf("service got %+v", got)
	}
	r = e.do(t, "PUT", "/v1/tenants/acme", topoJSON("acme"), bearer)
	if err := json.Unmarshal(r.body, &st); err != nil || st.Generation != 2 || st.TenantID != 512 {
		t.Fatalf("replace: %s", r.body)
	}
}

func TestPutTenantNameMismatch(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	r := e.do(t, "PUT", "/v1/tenants/other", topoJSON("acme"), bearer)
	if r.code != 400 {
		t.Fatalf("%d %s, want 400", r.code, r.body)
	}
	er := r.errResp(t)
	if len(er.Details) != 1 || er.Details[0].Path != "$.tenant" || !strings.Contains(er.Details[0].Message, `"other"`) {
		t.Fatalf("details %+v", er.Details)
	}
	// A mismatch is listed along with the body's other problems.
	r = e.do(t, "PUT", "/v1/tenants/other", badTopoJSON("acme"), bearer)
	paths := fmt.Sprint(detailPaths(r.errResp(t)))
	if r.code != 400 || paths != "[$.hosts[0].cloud $.links[0].b.switch $.tenant]" {
		t.Fatalf("%d paths %s: %s", r.code, paths, r.body)
	}
	// A multi-tenant document is not a PUT body.
	r = e.do(t, "PUT", "/v1/tenants/acme", `{"tenants": [`+topoJSON("acme")+`]}`, bearer)
	if r.code != 400 || fmt.Sprint(detailPaths(r.errResp(t))) != "[$.tenants]" {
		t.Fatalf("document on PUT: %d %s", r.code, r.body)
	}
	if calls := e.fake.Calls(); strings.Contains(fmt.Sprint(calls), "Apply") {
		t.Fatalf("service applied: %v", calls)
	}
}

func detailPaths(er api.ErrorResponse) []string {
	var p []string
	for _, d := range er.Details {
		p = append(p, d.Path)
	}
	return p
}

func TestValidationAgainstInfra(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	for _, req := range []struct{ method, path, body, want string }{
		{"PUT", "/v1/tenants/acme", badTopoJSON("acme"), "[$.hosts[0].cloud $.links[0].b.switch]"},
		{"POST", "/v1/tenants", badTopoJSON("acme"), "[$.hosts[0].cloud $.links[0].b.switch]"},
		{"POST", "/v1/tenants", `{"tenants": [` + topoJSON("acme") + `,` + badTopoJSON("beta") + `]}`,
			"[$.tenants[1].hosts[0].cloud $.tenants[1].links[0].b.switch]"},
	} {
		r := e.do(t, req.method, req.path, req.body, bearer)
		if r.code != 400 {
			t.Fatalf("%s %s: %d %s", req.method, req.path, r.code, r.body)
		}
		er := r.errResp(t)
		if got := fmt.Sprint(detailPaths(er)); got != req.want {
			t.Errorf("%s %s: paths %s, want %s", req.method, req.path, got, req.want)
		}
		if er.Error != "invalid topology: 2 errors" || !strings.Contains(er.Details[0].Message, "mars") {
			t.Errorf("%s %s: %+v", req.method, req.path, er)
		}
	}
	if calls := fmt.Sprint(e.fake.Calls()); strings.Contains(calls, "Apply") {
		t.Fatalf("invalid topology reached the core: %v", calls)
	}
}

func TestCoreValidationErrorsListedWithPaths(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	// The core re-validates and may still refuse (the infrastructure
	// changed); its errors are listed just the same.
	e.fake.ApplyErr = fmt.Errorf("apply acme: %w", &topology.ValidationError{Errors: []topology.FieldError{
		{Path: "$.hosts[1].cloud", Msg: `unknown cloud "gcp"`},
		{Path: "$.links[0].b", Msg: `unknown switch "s9"`},
	}})
	for _, req := range []struct{ method, path string }{{"PUT", "/v1/tenants/acme"}, {"POST", "/v1/tenants"}} {
		r := e.do(t, req.method, req.path, topoJSON("acme"), bearer)
		if r.code != 400 {
			t.Fatalf("%s: %d %s", req.method, r.code, r.body)
		}
		er := r.errResp(t)
		want := []api.ErrorDetail{{Path: "$.hosts[1].cloud", Message: `unknown cloud "gcp"`}, {Path: "$.links[0].b", Message: `unknown switch "s9"`}}
		if fmt.Sprint(er.Details) != fmt.Sprint(want) {
			t.Errorf("%s details %+v, want %+v", req.method, er.Details, want)
		}
		if er.Error != "invalid topology: 2 errors" {
			t.Errorf("%s error %q", req.method, er.Error)
		}
	}
}

func TestMalformedBodies(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	for _, c := range []struct{ name, body string }{
		{"not JSON", `{"name": `},
		{"unknown field", `{"tenant": "acme", "switchez": []}`},
		{"array", `[1, 2]`},
	} {
		for _, req := range []struct{ method, path string }{{"PUT", "/v1/tenants/acme"}, {"POST", "/v1/tenants"}} {
			r := e.do(t, req.method, req.path, c.body, bearer)
			if r.code != 400 {
				t.Errorf("%s %s: %d %s, want 400", c.name, req.method, r.code, r.body)
				continue
			}
			r.errResp(t)
		}
	}
	r := e.do(t, "PUT", "/v1/tenants/acme", `{"tenant": "acme", "switchez": []}`, bearer)
	if er := r.errResp(t); !strings.Contains(fmt.Sprint(detailPaths(er)), "$.switchez") {
		t.Errorf("unknown field not named by its path: %s", r.body)
	}
	for _, body := range []string{" ", "\n"} {
		if r := e.do(t, "POST", "/v1/tenants", body, bearer); r.code != 400 || !strings.Contains(r.errResp(t).Error, "empty") {
			t.Errorf("empty body: %d %s", r.code, r.body)
		}
	}
	if calls := fmt.Sprint(e.fake.Calls()); strings.Contains(calls, "Apply") {
		t.Fatalf("service applied bad bodies: %v", calls)
	}
}

func TestContentType(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx", "application/json; charset"} {
		// "" deletes the header the helper sets.
		r := e.do(t, "PUT", "/v1/tenants/acme", topoJSON("acme"), bearer, "Content-Type", ct)
		if r.code != 415 {
			t.Errorf("Content-Type %q: %d, want 415", ct, r.code)
			continue
		}
		r.errResp(t)
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON"} {
		if r := e.do(t, "POST", "/v1/tenants", topoJSON("acme"), bearer, "Content-Type", ct); r.code != 200 {
			t.Errorf("Content-Type %q: %d %s, want 200", ct, r.code, r.body)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	small := newEnv(t, api.Options{Token: testToken, MaxBodyBytes: 64})
	r := small.do(t, "PUT", "/v1/tenants/acme", topoJSON("acme"), bearer)
	if r.code != 413 || !strings.Contains(r.errResp(t).Error, "64 bytes") {
		t.Fatalf("over a 64-byte limit: %d %s, want 413", r.code, r.body)
	}
	def := newEnv(t, api.Options{Token: testToken})
	// A valid document padded with whitespace past 1 MiB.
	big := topoJSON("acme") + strings.Repeat(" ", api.DefaultMaxBodyBytes)
	if r := def.do(t, "POST", "/v1/tenants", big, bearer); r.code != 413 {
		t.Fatalf("over the default limit: %d, want 413", r.code)
	}
	fits := topoJSON("acme") + strings.Repeat(" ", api.DefaultMaxBodyBytes-len(topoJSON("acme")))
	if r := def.do(t, "POST", "/v1/tenants", fits, bearer); r.code != 200 {
		t.Fatalf("exactly at the default limit: %d %s, want 200", r.code, r.body)
	}
}

func TestPostDocument(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	doc := fmt.Sprintf(`{"tenants": [%s, %s]}`, topoJSON("acme"), topoJSON("beta"))
	r := e.do(t, "POST", "/v1/tenants", doc, bearer)
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	var res api.ApplyResult
	if err := json.Unmarshal(r.body, &res); err != nil || len(res.Tenants) != 2 ||
		res.Tenants[0].Tenant != "acme" || res.Tenants[1].Tenant != "beta" || res.Tenants[1].TenantID != 513 {
		t.Fatalf("body %s (%v)", r.body, err)
	}
	if calls := e.fake.Calls(); fmt.Sprint(calls) != "[Infra ApplyTenants]" {
		t.Fatalf("calls %v, want Infra then one ApplyTenants", calls)
	}
	// A single topology goes to ApplyTenant, and the answer is still a list.
	r = e.do(t, "POST", "/v1/tenants", topoJSON("gamma"), bearer)
	if err := json.Unmarshal(r.body, &res); err != nil || len(res.Tenants) != 1 || res.Tenants[0].Tenant != "gamma" {
		t.Fatalf("single: %s", r.body)
	}
	if calls := e.fake.Calls(); calls[len(calls)-1] != "ApplyTenant" {
		t.Fatalf("calls %v", calls)
	}
}

func TestPostDocumentDuplicateNames(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	doc := fmt.Sprintf(`{"tenants": [%s, %s, %s]}`, topoJSON("acme"), topoJSON("beta"), topoJSON("acme"))
	r := e.do(t, "POST", "/v1/tenants", doc, bearer)
	if r.code != 400 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	er := r.errResp(t)
	if len(er.Details) != 1 || er.Details[0].Path != "$.tenants[2].tenant" || !strings.Contains(er.Details[0].Message, "$.tenants[0]") {
		t.Fatalf("details %+v", er.Details)
	}
	if calls := fmt.Sprint(e.fake.Calls()); strings.Contains(calls, "Apply") {
		t.Fatalf("service applied: %v", calls)
	}
}

func TestEmptyDocument(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	r := e.do(t, "POST", "/v1/tenants", `{"tenants": []}`, bearer)
	if r.code != 400 || fmt.Sprint(detailPaths(r.errResp(t))) != "[$.tenants]" {
		t.Fatalf("%d %s", r.code, r.body)
	}
}

func TestServiceErrorStatuses(t *testing.T) {
	for _, c := range []struct {
		err    error
		code   int
		public string // must appear in "error"
	}{
		{fmt.Errorf("allocate tenant ID: %w", api.ErrConflict), 409, "allocate tenant ID"},
		{fmt.Errorf("store: tenant %q: allocate tenant ID: %w", "acme", addr.ErrExhausted), 409, "address space exhausted"},
		{fmt.Errorf("tenant %q: %w", "acme", api.ErrNotFound), 404, `tenant "acme"`},
		{fmt.Errorf("bad mode: %w", api.ErrInvalid), 400, "bad mode"},
		{fmt.Errorf("store closed: %w", api.ErrUnavailable), 503, "store closed"},
		{errors.New("bolt: open /var/lib/skyvisor/db: permission denied"), 500, "internal error"},
	} {
		e := newEnv(t, api.Options{Token: testToken})
		e.fake.Err = c.err
		for _, req := range []struct{ method, path, body string }{
			{"PUT", "/v1/tenants/acme", topoJSON("acme")},
			{"GET", "/v1/tenants", ""},
			{"GET", "/v1/tenants/acme", ""},
			{"GET", "/v1/tenants/acme/mapping", ""},
			{"GET", "/v1/topology/physical", ""},
			{"DELETE", "/v1/tenants/acme", ""},
		} {
			r := e.do(t, req.method, req.path, req.body, bearer)
			er := r.errResp(t)
			if r.code != c.code || !strings.Contains(er.Error, c.public) {
				t.Errorf("%v on %s %s: %d %q, want %d containing %q", c.err, req.method, req.path, r.code, er.Error, c.code, c.public)
			}
			if c.code == 500 {
				if strings.Contains(string(r.body), "/var/lib") {
					t.Errorf("internal detail leaked: %s", r.body)
				}
				if er.RequestID == "" || !strings.Contains(e.logs.String(), er.RequestID) || !strings.Contains(e.logs.String(), "permission denied") {
					t.Errorf("500 not logged with its request ID %q: %s", er.RequestID, e.logs.String())
				}
			}
		}
	}
}

func TestPanicRecovered(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	e.fake.PanicMsg = "boom at secret place"
	r := e.do(t, "GET", "/v1/tenants", "", "")
	if r.code != 500 || strings.Contains(string(r.body), "secret") {
		t.Fatalf("%d %s, want 500 without the panic text", r.code, r.body)
	}
	r.errResp(t)
	if !strings.Contains(e.logs.String(), "boom at secret place") {
		t.Errorf("panic not logged")
	}
	e.fake.PanicMsg = ""
	if r := e.do(t, "GET", "/v1/tenants", "", ""); r.code != 200 {
		t.Fatalf("after panic: %d", r.code)
	}
}

func TestGetDeleteAndNotFound(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	r := e.do(t, "GET", "/v1/tenants", "", "")
	if r.code != 200 || !strings.Contains(string(r.body), `"tenants": []`) {
		t.Fatalf("empty list: %d %s, want an empty array (not null)", r.code, r.body)
	}
	for _, p := range []string{"/v1/tenants/acme", "/v1/tenants/acme/mapping"} {
		r := e.do(t, "GET", p, "", "")
		if r.code != 404 || !strings.Contains(r.errResp(t).Error, `tenant "acme"`) {
			t.Errorf("GET %s: %d %s, want 404", p, r.code, r.body)
		}
	}
	if r := e.do(t, "DELETE", "/v1/tenants/acme", "", bearer); r.code != 404 {
		t.Errorf("DELETE missing: %d", r.code)
	}
	e.do(t, "PUT", "/v1/tenants/acme", topoJSON("acme"), bearer)
	r = e.do(t, "GET", "/v1/tenants/acme", "", "")
	var d api.TenantDetail
	if err := json.Unmarshal(r.body, &d); err != nil || d.Tenant != "acme" || d.TenantID != 512 || d.Topology == nil ||
		d.Topology.Tenant != "acme" || len(d.Mapping.Hosts) != 1 || d.Mapping.Hosts[0].FabricMAC.String() != "02:00:00:00:00:01" {
		t.Fatalf("GET tenant: %s (%v)", r.body, err)
	}
	r = e.do(t, "GET", "/v1/tenants/acme/mapping", "", "")
	var m api.Mapping
	if err := json.Unmarshal(r.body, &m); err != nil || m.Tenant != "acme" || m.Switches[0].Ports[1].Tunnel != "aws-azure" {
		t.Fatalf("mapping: %s (%v)", r.body, err)
	}
	if !strings.Contains(string(r.body), `"physical_dpid": "00:00:00:00:00:00:01:01"`) {
		t.Errorf("DPIDs not in colon-hex form: %s", r.body)
	}
	r = e.do(t, "DELETE", "/v1/tenants/acme", "", bearer)
	if r.code != 204 || len(r.body) != 0 {
		t.Fatalf("DELETE: %d %q", r.code, r.body)
	}
	if r := e.do(t, "GET", "/v1/tenants/acme", "", ""); r.code != 404 {
		t.Fatalf("after DELETE: %d", r.code)
	}
}

func TestPhysicalTopology(t *testing.T) {
	e := newEnv(t, api.Options{})
	r := e.do(t, "GET", "/v1/topology/physical", "", "")
	var p api.PhysicalTopology
	if err := json.Unmarshal(r.body, &p); err != nil || r.code != 200 || len(p.Switches) != 2 || p.Switches[0].DPID != 0x100 || !p.Tunnels[0].Up {
		t.Fatalf("%d %s (%v)", r.code, r.body, err)
	}
	// Each tunnel's tree membership and BFD state, on the wire.
	var raw struct {
		Tunnels []map[string]any `json:"tunnels"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil || len(raw.Tunnels) != 2 {
		t.Fatalf("tunnels: %s (%v)", r.body, err)
	}
	tree, probe := raw.Tunnels[0], raw.Tunnels[1]
	if tree["in_tree"] != true || probe["in_tree"] != false {
		t.Fatalf("in_tree: %v / %v", tree, probe)
	}
	bfd := probe["bfd"].(map[string]any)
	ends := bfd["ends"].([]any)
	if bfd["state"] != "down" || bfd["forwarding"] != false || bfd["diagnostic"] != "Control Detection Time Expired" ||
		len(ends) != 2 || ends[1].(map[string]any)["site"] != "gcp" || ends[1].(map[string]any)["remote_state"] != "down" ||
		ends[1].(map[string]any)["flap_count"] != 2.0 {
		t.Fatalf("probe bfd %v", bfd)
	}
	if _, ok := tree["bfd"].(map[string]any)["diagnostic"]; ok {
		t.Fatalf("empty diagnostic sent: %v", tree["bfd"])
	}
}

func TestUnknownRouteAndWrongMethod(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	for _, c := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/v2/tenants", 404, ""},
		{"GET", "/v1/tenants/acme/mapping/x", 404, ""},
		{"GET", "/", 404, ""},
		{"PATCH", "/v1/tenants/acme", 405, "GET, HEAD, PUT, DELETE"},
		{"POST", "/v1/health", 405, "GET, HEAD"},
		{"DELETE", "/v1/tenants", 405, "GET, HEAD, POST"},
		{"PUT", "/v1/topology/physical", 405, "GET, HEAD"},
	} {
		r := e.do(t, c.method, c.path, "", bearer)
		if r.code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, r.code, c.code)
			continue
		}
		r.errResp(t)
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("service called: %v", calls)
	}
}

func TestAccessLogAndRequestID(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	r := e.do(t, "GET", "/v1/tenants/nobody", "", "", "X-Request-Id", "abc-123")
	if got := r.header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("client request ID not echoed: %q", got)
	}
	if r.errResp(t).RequestID != "abc-123" {
		t.Errorf("error body request_id %q", r.errResp(t).RequestID)
	}
	r = e.do(t, "GET", "/v1/health", "", "", "X-Request-Id", "bad id\nwith newline")
	if got := r.header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \n") {
		t.Errorf("unsafe request ID kept: %q", got)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line not JSON: %q", line)
		}
		if rec["msg"] == "api request" && rec["request_id"] == "abc-123" {
			found = true
			if rec["method"] != "GET" || rec["path"] != "/v1/tenants/nobody" || rec["status"] != float64(404) {
				t.Errorf("access log record %v", rec)
			}
		}
	}
	if !found {
		t.Fatalf("no access log line for request abc-123: %s", e.logs.String())
	}
}

func TestHeadOnGetRoute(t *testing.T) {
	e := newEnv(t, api.Options{})
	req := httptest.NewRequest("HEAD", "/v1/health", nil)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("HEAD /v1/health: %d", rec.Code)
	}
}

func TestPrefixPaths(t *testing.T) {
	orig := &topology.ValidationError{Errors: []topology.FieldError{{Path: "$.hosts[0].mac", Msg: "bad"}, {Path: "$", Msg: "whole"}}}
	err := api.PrefixPaths(fmt.Errorf("wrapped: %w", orig), "$.tenants[2]")
	var verr *topology.ValidationError
	if !errors.As(err, &verr) || fmt.Sprint(verr.Paths()) != "[$.tenants[2].hosts[0].mac $.tenants[2]]" {
		t.Fatalf("PrefixPaths: %v", err)
	}
	if orig.Errors[0].Path != "$.hosts[0].mac" {
		t.Fatalf("PrefixPaths modified its input")
	}
	plain := errors.New("other")
	if api.PrefixPaths(plain, "$.x") != plain {
		t.Fatalf("non-validation error not returned unchanged")
	}
}
