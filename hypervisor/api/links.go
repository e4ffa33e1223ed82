package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// LinkService is implemented by a Service whose tenants can run a link
// discovery app on their virtual view (the hypervisor core does). The
// handler serves GET /v1/tenants/{name}/links only for such a Service;
// otherwise that route answers 404.
type LinkService interface {
	// TenantLinks returns the virtual links tenant name's discovery app
	// found. ErrNotFound: no such tenant; ErrInvalid: the tenant runs no
	// discovery app.
	TenantLinks(ctx context.Context, name string) (TenantLinks, error)
}

// TenantLinks is the answer of GET /v1/tenants/{name}/links: the links the
// tenant's own LLDP discovery app found on its virtual switches. LLDP is
// virtualized (docs/pipeline.md), so these are exactly the virtual links
// of the submitted topology, never physical ones.
type TenantLinks struct {
	Tenant string `json:"tenant"`
	// Links are directed (one entry per direction of a virtual link),
	// sorted by source DPID and port, then destination.
	Links []TenantLink `json:"links"`
}

// TenantLink is one directed virtual link seen by LLDP.
type TenantLink struct {
	Src LinkEnd `json:"src"`
	Dst LinkEnd `json:"dst"`
}

// LinkEnd is a virtual switch port: the switch's name in the topology,
// its virtual DPID ("00:00:00:00:00:00:00:01") and the port number the
// tenant chose.
type LinkEnd struct {
	Switch string `json:"switch"`
	DPID   string `json:"dpid"`
	Port   uint32 `json:"port"`
}

// tenantLinks serves GET /v1/tenants/{name}/links.
func (s *server) tenantLinks(w http.ResponseWriter, r *http.Request) error {
	ls, ok := s.svc.(LinkService)
	if !ok {
		return fmt.Errorf("virtual links are not available from this service: %w", ErrNotFound)
	}
	l, err := ls.TenantLinks(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, l)
	return nil
}

// TenantLinks returns the virtual links tenant name's discovery app found
// (GET /v1/tenants/{name}/links).
func (c *Client) TenantLinks(ctx context.Context, name string) (TenantLinks, error) {
	var l TenantLinks
	err := c.Do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(name)+"/links", nil, &l)
	return l, err
}
