package api_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
)

// FuzzApplyBody: whatever the body, PUT and POST answer 200 or a 4xx JSON
// error — never a 500, never a panic.
func FuzzApplyBody(f *testing.F) {
	f.Add([]byte(topoJSON("acme")))
	f.Add([]byte(badTopoJSON("acme")))
	f.Add([]byte(`{"tenants": [` + topoJSON("a") + `,` + topoJSON("b") + `]}`))
	f.Add([]byte(`{"tenants": {}}`))
	f.Add([]byte(`{"tenant": "acme", "tenant": "acme"}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Add([]byte("\xff\xfe"))
	if files, err := filepath.Glob("../../examples/*.json"); err == nil {
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	fake := apitest.New()
	h := api.NewHandler(fake, api.Options{Token: testToken})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, target := range []string{"/v1/tenants", "/v1/tenants/acme"} {
			method := "POST"
			if target != "/v1/tenants" {
				method = "PUT"
			}
			req := httptest.NewRequest(method, target, strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", bearer)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 && (rec.Code < 400 || rec.Code > 499) {
				t.Fatalf("%s %s with %q: status %d: %s", method, target, body, rec.Code, rec.Body)
			}
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("%s %s: Content-Type %q", method, target, rec.Header().Get("Content-Type"))
			}
		}
	})
}

// TestConcurrentRequests runs writes and reads in parallel (meaningful under
// -race): every request must succeed and tenant IDs must stay distinct.
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, api.Options{Token: testToken})
	var wg sync.WaitGroup
	const n = 16
	codes := make(chan int, 4*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "t" + strings.Repeat("x", i)
			for _, req := range []struct{ method, path, body, auth string }{
				{"PUT", "/v1/tenants/" + name, topoJSON(name), bearer},
				{"GET", "/v1/tenants/" + name, "", ""},
				{"GET", "/v1/tenants", "", ""},
				{"GET", "/v1/health", "", ""},
			} {
				rec := httptest.NewRecorder()
				r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
				r.Header.Set("Content-Type", "application/json")
				if req.auth != "" {
					r.Header.Set("Authorization", req.auth)
				}
				e.h.ServeHTTP(rec, r)
				codes <- rec.Code
			}
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("status %d under concurrency", c)
		}
	}
	sts, _ := e.fake.Tenants(t.Context())
	seen := map[any]bool{}
	for _, st := range sts {
		if seen[st.TenantID] {
			t.Fatalf("tenant ID %v given twice", st.TenantID)
		}
		seen[st.TenantID] = true
	}
	if len(sts) != n {
		t.Fatalf("%d tenants, want %d", len(sts), n)
	}
}
