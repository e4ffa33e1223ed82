package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
)

// linkFake is the API fake plus api.LinkService, as the hypervisor core.
type linkFake struct {
	*apitest.Fake
}

func (linkFake) TenantLinks(_ context.Context, name string) (api.TenantLinks, error) {
	return api.TenantLinks{Tenant: name, Links: []api.TenantLink{
		{Src: api.LinkEnd{Switch: "s1", Port: 2}, Dst: api.LinkEnd{Switch: "s2", Port: 1}},
		{Src: api.LinkEnd{Switch: "s2", Port: 1}, Dst: api.LinkEnd{Switch: "s1", Port: 2}},
	}}, nil
}

// TestDescribeShowsDiscoveredLinks: describe tenant lists the links of a
// tenant running "discovery"; a tenant without it, or a server without the
// route, shows no such section.
func TestDescribeShowsDiscoveredLinks(t *testing.T) {
	t.Setenv("SKYCTL_SERVER", "")
	t.Setenv("SKYCTL_TOKEN", "")
	t.Setenv("SKYCTL_TOKEN_FILE", "")
	fake := apitest.New()
	srv := httptest.NewServer(api.NewHandler(linkFake{fake}, api.Options{Token: token}))
	defer srv.Close()
	h := &harness{t: t, fake: fake, url: srv.URL}
	doc := strings.Replace(topoJSON("acme"), `["learning"]`, `["learning", "discovery"]`, 1)
	h.mustRun(doc, "apply", "-f", "-")
	out := h.mustRun("", "describe", "tenant", "acme")
	want := "\nDiscovered links (the tenant's LLDP discovery on its virtual switches):\n  FROM  TO\n  s1:2  s2:1\n  s2:1  s1:2\n"
	if !strings.HasSuffix(out, want) {
		t.Fatalf("describe tenant:\n%s\nwant it to end with:\n%s", out, want)
	}
	h.mustRun(topoJSON("beta"), "apply", "-f", "-")
	if out := h.mustRun("", "describe", "tenant", "beta"); strings.Contains(out, "Discovered links") {
		t.Errorf("tenant without discovery shows links:\n%s", out)
	}
	plain := newHarness(t, api.Options{Token: token})
	plain.mustRun(doc, "apply", "-f", "-")
	if out := plain.mustRun("", "describe", "tenant", "acme"); strings.Contains(out, "Discovered links") {
		t.Errorf("server without the links route shows links:\n%s", out)
	}
}
