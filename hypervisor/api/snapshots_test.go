package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
)

// snapFake is an apitest.Fake that also implements api.SnapshotService
// with snapshots in memory.
type snapFake struct {
	*apitest.Fake
	mu       sync.Mutex
	snaps    map[string]*snapshot.Snapshot
	order    []string
	reqs     []api.SnapshotRequest
	restored []string
	flowsArg [2]string
}

func newSnapFake() *snapFake {
	return &snapFake{Fake: apitest.New(), snaps: map[string]*snapshot.Snapshot{}}
}

func (f *snapFake) CreateSnapshot(_ context.Context, req api.SnapshotRequest) (snapshot.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if req.Tenant == "ghost" {
		return snapshot.Info{}, fmt.Errorf("tenant %q: %w", req.Tenant, api.ErrNotFound)
	}
	now := time.Date(2026, 11, 22, 8, 0, len(f.order), 0, time.UTC)
	s := &snapshot.Snapshot{Version: snapshot.FormatVersion, ID: snapshot.NewID(now), Time: now, Tenant: req.Tenant,
		Switches: []snapshot.SwitchState{{DPID: "0000000000000101", Bridge: snapshot.BridgeConfig{Name: "vm1", DatapathID: "0000000000000101"},
			Flows: []snapshot.Flow{{Table: 0, Priority: 100, Cookie: 0x5359000100000001, IdleTimeout: 30, PacketCount: 7, ByteCount: 686,
				Match: []byte{0, 1, 0, 4, 0, 0, 0, 0}}}}}}
	f.snaps[s.ID] = s
	f.order = append(f.order, s.ID)
	return snapshot.Info{ID: s.ID, Time: now, Tenant: req.Tenant, Bridges: []string{"vm1"}, Flows: 1, Size: 100, StoredAt: now}, nil
}

func (f *snapFake) Snapshots(context.Context) ([]snapshot.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []snapshot.Info
	for _, id := range f.order {
		s := f.snaps[id]
		out = append(out, snapshot.Info{ID: id, Time: s.Time, Tenant: s.Tenant, Bridges: []string{"vm1"}, Flows: 1})
	}
	return out, nil
}

func (f *snapFake) Snapshot(_ context.Context, id string) (*snapshot.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.snaps[id]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("snapshot %q: %w", id, api.ErrNotFound)
}

func (f *snapFake) DeleteSnapshot(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.snaps[id] == nil {
		return fmt.Errorf("snapshot %q: %w", id, api.ErrNotFound)
	}
	delete(f.snaps, id)
	for i, x := range f.order {
		if x == id {
			f.order = append(f.order[:i], f.order[i+1:]...)
			break
		}
	}
	return nil
}

func (f *snapFake) RestoreSnapshot(_ context.Context, id string) (api.RestoreResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.snaps[id] == nil {
		return api.RestoreResult{}, fmt.Errorf("snapshot %q: %w", id, api.ErrNotFound)
	}
	f.restored = append(f.restored, id)
	return api.RestoreResult{ID: id, Switches: []snapshot.SwitchReport{{Bridge: "vm1", DPID: "0000000000000101", Config: "no change", FlowsAdded: 1, Done: true}},
		Skipped: []api.SkippedFlow{}, CounterOffsets: 1}, nil
}

func (f *snapFake) Flows(_ context.Context, sw, tenant string) (api.FlowList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flowsArg = [2]string{sw, tenant}
	if sw != "vm1" {
		return api.FlowList{}, fmt.Errorf("switch %q: %w", sw, api.ErrNotFound)
	}
	return api.FlowList{Switch: "vm1", DPID: "0000000000000101", Tenant: tenant,
		Flows: []api.FlowStat{{Flow: snapshot.Flow{Priority: 100, PacketCount: 9}, CountersRestored: true}}}, nil
}

func do(t *testing.T, h http.Handler, method, path, body, token string) reply {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return reply{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func TestSnapshotRoutes(t *testing.T) {
	f := newSnapFake()
	h := api.NewHandler(f, api.Options{Token: testToken})

	// Writes need the token.
	if r := do(t, h, "POST", "/v1/snapshots", `{"tenant":"acme"}`, ""); r.code != http.StatusUnauthorized {
		t.Fatalf("create without token: %d %s", r.code, r.body)
	}
	r := do(t, h, "POST", "/v1/snapshots", `{"tenant":"acme"}`, testToken)
	if r.code != http.StatusOK {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var in snapshot.Info
	if err := json.Unmarshal(r.body, &in); err != nil || !snapshot.ValidID(in.ID) || in.Tenant != "acme" {
		t.Fatalf("create answer %s (%v)", r.body, err)
	}
	if loc := r.header.Get("Location"); loc != "/v1/snapshots/"+in.ID {
		t.Errorf("Location %q", loc)
	}
	if r := do(t, h, "POST", "/v1/snapshots", `{"switch":"0000000000000101"}`, testToken); r.code != http.StatusOK {
		t.Fatalf("create switch: %d %s", r.code, r.body)
	}
	if got := f.reqs; len(got) != 2 || got[0] != (api.SnapshotRequest{Tenant: "acme"}) || got[1] != (api.SnapshotRequest{Switch: "0000000000000101"}) {
		t.Errorf("requests %+v", got)
	}

	// List and show (reads need no token by default).
	r = do(t, h, "GET", "/v1/snapshots", "", "")
	var l api.SnapshotList
	if r.code != http.StatusOK || json.Unmarshal(r.body, &l) != nil || len(l.Snapshots) != 2 || l.Snapshots[0].ID != in.ID {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	r = do(t, h, "GET", "/v1/snapshots/"+in.ID, "", "")
	if r.code != http.StatusOK {
		t.Fatalf("show: %d %s", r.code, r.body)
	}
	got, err := snapshot.Decode(r.body)
	if err != nil || got.ID != in.ID || got.Switches[0].Flows[0].PacketCount != 7 || got.Switches[0].Flows[0].IdleTimeout != 30 {
		t.Fatalf("show body %s: %v", r.body, err)
	}
	if r := do(t, h, "GET", "/v1/snapshots/snap-nope", "", ""); r.code != http.StatusNotFound {
		t.Errorf("show unknown: %d %s", r.code, r.body)
	}

	// Restore: token, 404, then OK; an empty object body is accepted.
	if r := do(t, h, "POST", "/v1/snapshots/"+in.ID+"/restore", "", ""); r.code != http.StatusUnauthorized {
		t.Errorf("restore without token: %d", r.code)
	}
	if r := do(t, h, "POST", "/v1/snapshots/snap-nope/restore", "", testToken); r.code != http.StatusNotFound {
		t.Errorf("restore unknown: %d %s", r.code, r.body)
	}
	r = do(t, h, "POST", "/v1/snapshots/"+in.ID+"/restore", "{}", testToken)
	var res api.RestoreResult
	if r.code != http.StatusOK || json.Unmarshal(r.body, &res) != nil || res.ID != in.ID || !res.Switches[0].Done || res.CounterOffsets != 1 {
		t.Fatalf("restore: %d %s", r.code, r.body)
	}
	r = do(t, h, "POST", "/v1/snapshots/"+in.ID+"/restore", `{"force":true}`, testToken)
	if er := r.errResp(t); r.code != http.StatusBadRequest || len(er.Details) != 1 || er.Details[0].Path != "$.force" {
		t.Errorf("restore with an option: %d %s", r.code, r.body)
	}
	if len(f.restored) != 1 {
		t.Errorf("restores %v, want exactly one", f.restored)
	}

	// Flows.
	r = do(t, h, "GET", "/v1/switches/vm1/flows?tenant=acme", "", "")
	var fl api.FlowList
	if r.code != http.StatusOK || json.Unmarshal(r.body, &fl) != nil || len(fl.Flows) != 1 || !fl.Flows[0].CountersRestored || f.flowsArg != [2]string{"vm1", "acme"} {
		t.Fatalf("flows: %d %s (args %v)", r.code, r.body, f.flowsArg)
	}
	if r := do(t, h, "GET", "/v1/switches/vm9/flows", "", ""); r.code != http.StatusNotFound {
		t.Errorf("flows of unknown switch: %d", r.code)
	}
	if r := do(t, h, "GET", "/v1/switches/vm1/flows?tenat=acme", "", ""); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "tenat") {
		t.Errorf("flows with a misspelt query: %d %s", r.code, r.body)
	}

	// Delete: token, then 204, then 404.
	if r := do(t, h, "DELETE", "/v1/snapshots/"+in.ID, "", ""); r.code != http.StatusUnauthorized {
		t.Errorf("delete without token: %d", r.code)
	}
	if r := do(t, h, "DELETE", "/v1/snapshots/"+in.ID, "", testToken); r.code != http.StatusNoContent {
		t.Errorf("delete: %d %s", r.code, r.body)
	}
	if r := do(t, h, "DELETE", "/v1/snapshots/"+in.ID, "", testToken); r.code != http.StatusNotFound {
		t.Errorf("delete again: %d %s", r.code, r.body)
	}
}

func TestSnapshotCreateBadBodies(t *testing.T) {
	f := newSnapFake()
	h := api.NewHandler(f, api.Options{Token: testToken})
	for _, c := range []struct{ body, path, want string }{
		{`{}`, "$.tenant", "missing"},
		{`{"tenant":"a","switch":"b"}`, "$.switch", "not both"},
		{`{"tenant":""}`, "$.tenant", "empty"},
		{`{"tenant":7}`, "$.tenant", "string"},
		{`{"tennant":"a"}`, "$.tennant", "unknown field"},
	} {
		r := do(t, h, "POST", "/v1/snapshots", c.body, testToken)
		er := r.errResp(t)
		if r.code != http.StatusBadRequest || len(er.Details) != 1 || er.Details[0].Path != c.path || !strings.Contains(er.Details[0].Message, c.want) {
			t.Errorf("body %s: %d %s, want 400 at %s (%q)", c.body, r.code, r.body, c.path, c.want)
		}
	}
	if r := do(t, h, "POST", "/v1/snapshots", `[1]`, testToken); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "invalid JSON") {
		t.Errorf("array body: %d %s", r.code, r.body)
	}
	if r := do(t, h, "POST", "/v1/snapshots", `{"tenant":"ghost"}`, testToken); r.code != http.StatusNotFound || !strings.Contains(string(r.body), "ghost") {
		t.Errorf("unknown tenant: %d %s", r.code, r.body)
	}
	if len(f.snaps) != 0 {
		t.Errorf("bad requests stored %d snapshots", len(f.snaps))
	}
}

// A Service without snapshot support answers 501 on every snapshot route.
func TestSnapshotRoutesNotImplemented(t *testing.T) {
	h := api.NewHandler(apitest.New(), api.Options{Token: testToken})
	for _, rt := range [][2]string{{"GET", "/v1/snapshots"}, {"POST", "/v1/snapshots"}, {"GET", "/v1/snapshots/x"},
		{"DELETE", "/v1/snapshots/x"}, {"POST", "/v1/snapshots/x/restore"}, {"GET", "/v1/switches/x/flows"}} {
		body := ""
		if rt[0] == "POST" && rt[1] == "/v1/snapshots" {
			body = `{"tenant":"a"}`
		}
		if r := do(t, h, rt[0], rt[1], body, testToken); r.code != http.StatusNotImplemented {
			t.Errorf("%s %s: %d %s", rt[0], rt[1], r.code, r.body)
		}
	}
}

// The client round-trips every snapshot call and maps 404 to ErrNotFound.
func TestSnapshotClient(t *testing.T) {
	f := newSnapFake()
	srv := httptest.NewServer(api.NewHandler(f, api.Options{Token: testToken}))
	defer srv.Close()
	c, err := api.NewClient(srv.URL, testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in, err := c.CreateSnapshot(ctx, api.SnapshotRequest{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Snapshots(ctx)
	if err != nil || len(l) != 1 || l[0].ID != in.ID {
		t.Fatalf("list %+v %v", l, err)
	}
	s, err := c.Snapshot(ctx, in.ID)
	if err != nil || s.Tenant != "acme" || len(s.Switches) != 1 {
		t.Fatalf("show %+v %v", s, err)
	}
	res, err := c.RestoreSnapshot(ctx, in.ID)
	if err != nil || res.ID != in.ID {
		t.Fatalf("restore %+v %v", res, err)
	}
	fl, err := c.Flows(ctx, "vm1", "acme")
	if err != nil || len(fl.Flows) != 1 {
		t.Fatalf("flows %+v %v", fl, err)
	}
	if err := c.DeleteSnapshot(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot(ctx, in.ID); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("show deleted: %v, want ErrNotFound", err)
	}
	if _, err := c.RestoreSnapshot(ctx, in.ID); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("restore deleted: %v, want ErrNotFound", err)
	}
}

// The snapshot schemas of docs/openapi.yaml have exactly the JSON fields of
// their Go types.
func TestOpenAPISnapshotSchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	schemas := child(t, doc, "components", "schemas")
	for name, v := range map[string]any{
		"SnapshotRequest": api.SnapshotRequest{}, "SnapshotInfo": snapshot.Info{}, "SnapshotList": api.SnapshotList{},
		"Snapshot": snapshot.Snapshot{}, "SnapshotFlow": snapshot.Flow{}, "SwitchReport": snapshot.SwitchReport{},
		"SkippedFlow": api.SkippedFlow{}, "RestoreResult": api.RestoreResult{}, "FlowStat": api.FlowStat{},
		"FlowList": api.FlowList{},
	} {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		got := schemaProps(t, schemas, s)
		want := jsonFields(reflect.TypeOf(v))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("schema %s has properties %v, Go type %T has JSON fields %v", name, got, v, want)
		}
	}
}

// FuzzSnapshotBody: whatever the body, POST /v1/snapshots and a restore
// answer 200 or a 4xx JSON error, never a 500 or a panic.
func FuzzSnapshotBody(f *testing.F) {
	for _, s := range []string{`{"tenant":"acme"}`, `{"switch":"0000000000000101"}`, `{"tenant":"a","switch":"b"}`,
		`{}`, `{"tenant":null}`, `{"tenant":"ghost"}`, `[]`, `"x"`, `{"tenant":"acme","tenant":""}`, "\xff"} {
		f.Add([]byte(s))
	}
	fake := newSnapFake()
	h := api.NewHandler(fake, api.Options{Token: testToken})
	info, err := fake.CreateSnapshot(context.Background(), api.SnapshotRequest{Tenant: "seed"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, target := range []string{"/v1/snapshots", "/v1/snapshots/" + info.ID + "/restore"} {
			r := do(t, h, "POST", target, string(body), testToken)
			if r.code != 200 && (r.code < 400 || r.code > 499) {
				t.Fatalf("POST %s with %q: status %d: %s", target, body, r.code, r.body)
			}
			if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Fatalf("POST %s: Content-Type %q", target, r.header.Get("Content-Type"))
			}
		}
	})
}
