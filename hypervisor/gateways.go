package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/tunnels"
)

// provision plans the tunnel tree if it has not been planned yet
// (planTunnels: the MST over the infrastructure's costs, or the full
// mesh with Config.TunnelMesh) and makes every gateway's
// tunnel ports match it (tunnels.Provisioner.Apply), recording the
// OpenFlow port of every tunnel. clients holds the connections by OVSDB
// endpoint; gateways without one are reported as errors.
func (h *Hypervisor) provision(ctx context.Context, inf *infra.Infra, clients map[string]OVSDB, _ *tunnels.Diff) error {
	h.mu.Lock()
	plan, planned := h.plan, h.planned
	h.mu.Unlock()
	if !planned {
		p, err := h.planTunnels(inf)
		if err != nil {
			return fmt.Errorf("plan tunnels: %w", err)
		}
		plan = p
		h.mu.Lock()
		h.plan, h.planned = p, true
		h.mu.Unlock()
		h.log.Info("hypervisor: tunnel tree planned", "plan", p.String())
	}
	prov, err := h.provisioner(inf, clients)
	if err != nil {
		return err
	}
	rep, err := prov.Apply(ctx, plan)
	h.recordPorts(rep)
	if err != nil {
		return fmt.Errorf("provision tunnels: %w", err)
	}
	if n := rep.Changes(); n > 0 {
		h.log.Info("hypervisor: tunnels provisioned", "changes", n, "plan", plan.String())
	}
	return nil
}

// provisioner builds a tunnels.Provisioner over the gateways that have a
// connection.
func (h *Hypervisor) provisioner(inf *infra.Infra, clients map[string]OVSDB) (*tunnels.Provisioner, error) {
	gws := map[string]tunnels.Gateway{}
	for _, s := range inf.Sites {
		gw := inf.Gateway(s.Name)
		if c := clients[gw.OVSDB]; c != nil {
			gws[s.Name] = tunnels.Gateway{Bridge: gw.Bridge, Ports: c}
		}
	}
	p, err := tunnels.NewProvisioner(inf.TunnelSites(), gws, inf.Encap())
	if err != nil {
		return nil, fmt.Errorf("tunnel provisioner: %w", err)
	}
	return p, nil
}

// recordPorts stores the tunnel port numbers of every site in rep.
func (h *Hypervisor) recordPorts(rep tunnels.Report) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for site, sr := range rep {
		m := make(map[string]uint32, len(sr.Ports))
		for peer, p := range sr.Ports {
			if p.OFPort > 0 {
				m[peer] = uint32(p.OFPort)
			}
		}
		h.tunnelPorts[site] = m
	}
}

// connected returns the open connections by endpoint.
func (h *Hypervisor) connectedClients() map[string]OVSDB {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.clients)
}

// replan repairs the tunnel tree with tunnels.Replan (keep every surviving
// tunnel, add the fewest and cheapest) over inf and the pairs marked down,
// provisions the gateways the change touches (ApplyDiff), then pushes the
// new desired flow entries. applyMu must be held.
func (h *Hypervisor) replan(ctx context.Context, inf *infra.Infra) error {
	h.mu.Lock()
	cur := h.plan
	down := maps.Clone(h.down)
	h.mu.Unlock()
	next, diff, err := tunnels.Replan(cur, inf.TunnelSites(), inf.TunnelCosts(), down)
	if err != nil {
		return fmt.Errorf("replan tunnels: %w", err)
	}
	h.log.Info("hypervisor: tunnel tree replanned", "plan", next.String(), "added", len(diff.Add), "removed", len(diff.Remove))
	prov, err := h.provisioner(inf, h.connectedClients())
	if err != nil {
		return err
	}
	rep, perr := prov.ApplyDiff(ctx, next, diff)
	h.mu.Lock()
	h.plan, h.planned = next, true
	h.mu.Unlock()
	h.recordPorts(rep)
	if perr != nil {
		perr = fmt.Errorf("provision tunnels: %w", perr)
	}
	return errors.Join(perr, h.pushLocked(ctx))
}

// AddSite adds a cloud to the infrastructure at run time: site, its
// gateway and VM switches (infra.Switch entries; the gateway may be left
// out, it is then implied by the site). The new infrastructure is
// validated first (nothing changes on error). Then the site's OVSDB
// endpoint is dialed, its bridges ensured and its VM bridges watched, the
// tunnel tree is repaired with tunnels.Replan (a new leaf site adds
// exactly its cheapest tunnel; no existing tunnel moves), the touched
// gateways provisioned and the desired flow entries pushed. costs are the
// new pairs' costs (optional; otherwise infra's default rules apply).
func (h *Hypervisor) AddSite(ctx context.Context, site infra.Site, switches []infra.Switch, costs []infra.Cost) error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	next := h.Infrastructure()
	if next.Site(site.Name) != nil {
		return fmt.Errorf("hypervisor: add site %q: already known", site.Name)
	}
	next.Sites = append(next.Sites, site)
	next.Switches = append(next.Switches, switches...)
	next.Costs = append(next.Costs, costs...)
	if err := next.Validate(); err != nil {
		return fmt.Errorf("hypervisor: add site %q: %w", site.Name, err)
	}
	h.mu.Lock()
	h.inf = next
	runCtx := h.runCtx
	h.mu.Unlock()
	var errs []error
	for _, sw := range next.Switches {
		if sw.Site != site.Name {
			continue
		}
		c, err := h.client(ctx, sw.OVSDB)
		if err != nil {
			errs = append(errs, fmt.Errorf("site %s: %w", sw.Site, err))
			continue
		}
		if err := c.EnsureBridge(ctx, h.bridgeSpec(next, &sw)); err != nil {
			errs = append(errs, fmt.Errorf("site %s: bridge %s: %w", sw.Site, sw.Bridge, err))
		}
		if sw.Role == infra.RoleVM && runCtx != nil {
			if err := h.watch(c, sw); err != nil {
				errs = append(errs, fmt.Errorf("site %s: watch bridge %s: %w", sw.Site, sw.Bridge, err))
			}
		}
	}
	if err := h.replan(ctx, next); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("hypervisor: add site %q: %w", site.Name, err)
	}
	return nil
}

// TunnelDown marks the tunnel between sites a and b as unusable (e.g. its
// probe failed) and repairs the tree around it with tunnels.Replan; the
// pair is avoided until TunnelUp. It fails if no other pairs can connect
// the sites (*tunnels.DisconnectedError); the plan is then unchanged.
func (h *Hypervisor) TunnelDown(ctx context.Context, a, b string) error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	p := tunnels.MakePair(a, b)
	h.mu.Lock()
	was := h.down[p]
	h.down[p] = true
	h.mu.Unlock()
	if err := h.replan(ctx, h.Infrastructure()); err != nil {
		var de *tunnels.DisconnectedError
		if errors.As(err, &de) {
			h.mu.Lock()
			h.down[p] = was
			h.mu.Unlock()
		}
		return fmt.Errorf("hypervisor: tunnel %s down: %w", p, err)
	}
	return nil
}

// TunnelUp makes the pair a~b usable again. The current tree is kept (it
// is still a spanning tree); the pair is used by later repairs.
func (h *Hypervisor) TunnelUp(a, b string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.down, tunnels.MakePair(a, b))
}
