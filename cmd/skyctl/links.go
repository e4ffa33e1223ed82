package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/skyvisor/skyvisor/hypervisor/api"
)

// writeDiscoveredLinks adds, to describe tenant's table output, the
// virtual links the tenant's own "discovery" app found
// (GET /v1/tenants/{name}/links), when the tenant runs that app. A server
// that does not serve the route (404) or a tenant without the app (400)
// prints nothing; other errors are returned.
func (c *cli) writeDiscoveredLinks(ctx context.Context, d api.TenantDetail) error {
	if d.Topology == nil || !slices.Contains(d.Topology.Apps, "discovery") {
		return nil
	}
	l, err := c.client.TenantLinks(ctx, d.Tenant)
	var ae *api.Error
	if errors.As(err, &ae) && (ae.StatusCode == 404 || ae.StatusCode == 400) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("links of tenant %s: %w", d.Tenant, err)
	}
	fmt.Fprintf(c.stdout, "\nDiscovered links (the tenant's LLDP discovery on its virtual switches):\n")
	if len(l.Links) == 0 {
		fmt.Fprintf(c.stdout, "  (none yet)\n")
		return nil
	}
	rows := make([][]string, 0, len(l.Links))
	for _, k := range l.Links {
		rows = append(rows, []string{k.Src.Switch + ":" + u(k.Src.Port), k.Dst.Switch + ":" + u(k.Dst.Port)})
	}
	table(c.stdout, "  ", []string{"FROM", "TO"}, rows)
	return nil
}
