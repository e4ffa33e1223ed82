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
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

func newClientEnv(t *testing.T, opts api.Options, token string) (*apitest.Fake, *api.Client) {
	t.Helper()
	fake := apitest.New()
	srv := httptest.NewServer(api.NewHandler(fake, opts))
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, token, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

func TestClientRoundTrip(t *testing.T) {
	ctx := context.Background()
	fake, c := newClientEnv(t, api.Options{Token: testToken}, testToken)

	topo, err := topology.Parse([]byte(topoJSON("acme")))
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.ApplyTenant(ctx, topo)
	if err != nil || st.Tenant != "acme" || st.TenantID != 512 || st.Generation != 1 || !st.UpdatedAt.Equal(apitest.UpdatedAt()) {
		t.Fatalf("ApplyTenant: %+v, %v", st, err)
	}
	if got := fake.Stored("acme"); !reflect.DeepEqual(got, topo) {
		t.Fatalf("stored topology differs from the one sent:\n got %+v\nwant %+v", got, topo)
	}
	res, err := c.Apply(ctx, []byte(`{"tenants": [`+topoJSON("beta")+`,`+topoJSON("gamma")+`]}`))
	if err != nil || len(res.Tenants) != 2 || res.Tenants[1].Tenant != "gamma" {
		t.Fatalf("Apply: %+v, %v", res, err)
	}
	list, err := c.Tenants(ctx)
	if err != nil || len(list) != 3 || list[0].Tenant != "acme" || list[2].Tenant != "gamma" {
		t.Fatalf("Tenants: %+v, %v", list, err)
	}
	d, err := c.Tenant(ctx, "acme")
	if err != nil || d.Tenant != "acme" || !reflect.DeepEqual(d.Topology, topo) ||
		!reflect.DeepEqual(d.Mapping, apitest.MappingFor("acme", 512)) {
		t.Fatalf("Tenant: %+v, %v", d, err)
	}
	m, err := c.Mapping(ctx, "beta")
	if err != nil || !reflect.DeepEqual(m, apitest.MappingFor("beta", 513)) {
		t.Fatalf("Mapping: %+v, %v", m, err)
	}
	p, err := c.PhysicalTopology(ctx)
	if err != nil || !reflect.DeepEqual(p, fake.Physical) {
		t.Fatalf("PhysicalTopology: %+v, %v", p, err)
	}
	h, err := c.Health(ctx)
	if err != nil || !reflect.DeepEqual(h, fake.HealthValue) {
		t.Fatalf("Health: %+v, %v", h, err)
	}
	if err := c.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatalf("DeleteTenant: %v", err)
	}
	_, err = c.Tenant(ctx, "acme")
	var ae *api.Error
	if !errors.Is(err, api.ErrNotFound) || !errors.As(err, &ae) || ae.StatusCode != 404 || !strings.Contains(ae.ErrorResponse.Error, `"acme"`) {
		t.Fatalf("Tenant after delete: %v", err)
	}
	if err := c.DeleteTenant(ctx, "acme"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Raw JSON through Do is the server's body verbatim.
	var raw json.RawMessage
	if err := c.Do(ctx, "GET", "/v1/tenants/beta/mapping", nil, &raw); err != nil || !strings.Contains(string(raw), `"fabric_mac": "02:01:00:00:00:01"`) {
		t.Fatalf("raw: %s, %v", raw, err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	_, c := newClientEnv(t, api.Options{Token: testToken}, testToken)
	_, err := c.Apply(ctx, []byte(badTopoJSON("acme")))
	var ae *api.Error
	if !errors.As(err, &ae) || !errors.Is(err, api.ErrInvalid) || len(ae.Details) != 2 || ae.Details[0].Path != "$.hosts[0].cloud" {
		t.Fatalf("invalid apply: %#v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "400 Bad Request: invalid topology: 2 errors") || !strings.Contains(msg, "\n  $.hosts[0].cloud: ") {
		t.Errorf("Error() = %q", msg)
	}
	// Names are path-escaped: a slash stays inside the segment.
	if _, err := c.Tenant(ctx, "a/b"); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), `"a/b"`) {
		t.Errorf("escaped name: %v", err)
	}

	_, wrong := newClientEnv(t, api.Options{Token: testToken}, "nope")
	if err := wrong.DeleteTenant(ctx, "x"); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	_, none := newClientEnv(t, api.Options{}, testToken)
	if err := none.DeleteTenant(ctx, "x"); !errors.Is(err, api.ErrForbidden) || errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("no token configured: %v", err)
	}
	fake, c2 := newClientEnv(t, api.Options{}, "")
	fake.HealthValue = api.Health{Status: api.HealthUnavailable, Checks: []api.HealthCheck{{Name: "store", Status: api.HealthUnavailable}}}
	h, err := c2.Health(ctx)
	if err != nil || h.Status != api.HealthUnavailable || len(h.Checks) != 1 {
		t.Errorf("unavailable health: %+v, %v", h, err)
	}
}

func TestClientConflict(t *testing.T) {
	ctx := context.Background()
	fake, c := newClientEnv(t, api.Options{Token: testToken}, testToken)
	fake.ApplyErr = fmt.Errorf("no tenant ID left: %w", api.ErrConflict)
	_, err := c.Apply(ctx, []byte(topoJSON("acme")))
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "no tenant ID left") {
		t.Fatalf("conflict: %v", err)
	}
}

func TestClientForeignErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>bad gateway</html>\n<body>...</body>")
	}))
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Tenants(context.Background())
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.ErrorResponse.Error != "<html>bad gateway</html>" {
		t.Fatalf("foreign body: %#v", err)
	}
}

func TestClientBaseURL(t *testing.T) {
	for _, bad := range []string{"ftp://host", "http://", "127.0.0.1:8080", "http://h/?q=1", "http://h/#f", "http://[::1"} {
		if _, err := api.NewClient(bad, "", nil); err == nil {
			t.Errorf("NewClient(%q): no error", bad)
		}
	}
	// A path prefix (behind a reverse proxy) is kept.
	fake := apitest.New()
	mux := http.NewServeMux()
	mux.Handle("/skyvisor/", http.StripPrefix("/skyvisor", api.NewHandler(fake, api.Options{})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL+"/skyvisor/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := c.Health(context.Background()); err != nil || h.Status != api.HealthOK {
		t.Fatalf("health behind prefix: %+v, %v", h, err)
	}
	// Transport errors name the URL.
	srv.Close()
	if _, err := c.Tenants(context.Background()); err == nil || !strings.Contains(err.Error(), srv.URL+"/skyvisor/v1/tenants") {
		t.Fatalf("transport error: %v", err)
	}
}
