package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/tunnels"
)

// provision plans the tunnel tree if it has not been planned yet
// (planTunnels: the MST over the infrastructure's costs, or the full
// mesh with Config.TunnelMesh) and makes every gateway's
// tunnel ports match it (tunnels.Provisioner.Apply), recording the
// OpenFlow port of every tunnel. The ports of pairs declared down by BFD
// are kept as probes (provisioned). clients holds the connections by OVSDB
// endpoint; gateways without one are reported as errors. Then it starts
// watching the gateways' tunnel ports for BFD state (liveness.go).
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
		h.log.Info("hypervisor: tunnel tree planned", "plan", p.String(), "cost_sources", costSources(inf, p))
	}
	prov, err := h.provisioner(inf, clients)
	if err != nil {
		return err
	}
	want := h.provisioned(inf, plan)
	rep, err := prov.Apply(ctx, want)
	h.recordPorts(rep)
	h.watchGateways(inf, clients)
	if err != nil {
		return fmt.Errorf("provision tunnels: %w", err)
	}
	if n := rep.Changes(); n > 0 {
		h.log.Info("hypervisor: tunnels provisioned", "changes", n, "plan", plan.String(), "ports", want.String())
	}
	return nil
}

// provisioned returns the tunnels to provision for tree now: the tree
// plus the pairs declared down by BFD (probes: their ports stay so that
// BFD can tell when they are back) whose sites are both in the tree, that
// still have a cost and that are not marked down by TunnelDown. The
// pipeline only uses the tree.
func (h *Hypervisor) provisioned(inf *infra.Infra, tree tunnels.Plan) tunnels.Plan {
	probes := h.probePairs()
	if len(probes) == 0 {
		return tree
	}
	costs := inf.TunnelCosts()
	h.mu.Lock()
	admin := maps.Clone(h.down)
	h.mu.Unlock()
	out := tunnels.Plan{Sites: tree.Sites, Tunnels: slices.Clone(tree.Tunnels)}
	for p := range probes {
		c, ok := costs.Get(p.A, p.B)
		if !ok || admin[p] || tree.Has(p.A, p.B) || !slices.Contains(tree.Sites, p.A) || !slices.Contains(tree.Sites, p.B) {
			continue
		}
		out.Tunnels = append(out.Tunnels, tunnels.Tunnel{A: p.A, B: p.B, Cost: c})
	}
	slices.SortFunc(out.Tunnels, func(x, y tunnels.Tunnel) int { return tunnels.ComparePairs(x.Pair(), y.Pair()) })
	return out
}

// downPairs returns the pairs the tree must avoid: marked down by
// TunnelDown or declared down by BFD.
func (h *Hypervisor) downPairs() map[tunnels.Pair]bool {
	h.mu.Lock()
	down := maps.Clone(h.down)
	h.mu.Unlock()
	if down == nil {
		down = map[tunnels.Pair]bool{}
	}
	maps.Copy(down, h.probePairs())
	return down
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
	if b := h.tunnelBFD(); b != nil {
		if err := p.EnableBFD(*b); err != nil {
			return nil, fmt.Errorf("tunnel provisioner: %w", err)
		}
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
// tunnel, add the fewest and cheapest; the mesh of the pairs not down with
// Config.TunnelMesh, repairTunnels) over inf and the pairs marked down,
// provisions the gateways the change touches (ApplyDiff), then pushes the
// new desired flow entries. applyMu must be held.
func (h *Hypervisor) replan(ctx context.Context, inf *infra.Infra) error {
	return h.replanBefore(ctx, inf, h.provisioned(inf, h.Plan()))
}

// replanBefore is replan where before is what was provisioned before the
// caller changed the pairs to avoid (h.provisioned of the current tree).
func (h *Hypervisor) replanBefore(ctx context.Context, inf *infra.Infra, before tunnels.Plan) error {
	cur := h.Plan()
	return h.replanFrom(ctx, inf, before, func(sites []tunnels.Site, costs tunnels.Costs, down map[tunnels.Pair]bool) (tunnels.Plan, tunnels.Diff, error) {
		return h.repairTunnels(cur, sites, costs, down)
	})
}

// planFunc computes the next tree from inf's sites and costs and the
// pairs to avoid (tunnels.Replan, tunnels.Readmit).
type planFunc func(sites []tunnels.Site, costs tunnels.Costs, down map[tunnels.Pair]bool) (tunnels.Plan, tunnels.Diff, error)

// replanFrom computes the next tree with plan, provisions the gateways
// whose ports change (the tree's diff and the probes that appear or go;
// before is what was provisioned before the change, h.provisioned),
// records the new tree and pushes the desired flow entries. On a planning
// error nothing changes. applyMu must be held.
func (h *Hypervisor) replanFrom(ctx context.Context, inf *infra.Infra, before tunnels.Plan, plan planFunc) error {
	next, diff, err := plan(inf.TunnelSites(), inf.TunnelCosts(), h.downPairs())
	if err != nil {
		return fmt.Errorf("replan tunnels: %w", err)
	}
	h.log.Info("hypervisor: tunnel tree replanned", "plan", next.String(), "added", len(diff.Add), "removed", len(diff.Remove))
	clients := h.connectedClients()
	prov, err := h.provisioner(inf, clients)
	if err != nil {
		return err
	}
	want := h.provisioned(inf, next)
	rep, perr := prov.ApplyDiff(ctx, want, tunnels.Compare(before, want))
	h.mu.Lock()
	h.plan, h.planned = next, true
	h.mu.Unlock()
	h.recordPorts(rep)
	h.watchGateways(inf, clients)
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

// TunnelDown marks the tunnel between sites a and b as unusable
// (administratively; BFD failures are handled by liveness.go) and repairs
// the tree around it with tunnels.Replan; the pair is avoided until
// TunnelUp, and its ports are deleted (no BFD probe). It fails if no other pairs can connect
// the sites (*tunnels.DisconnectedError); the plan is then unchanged.
func (h *Hypervisor) TunnelDown(ctx context.Context, a, b string) error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	p := tunnels.MakePair(a, b)
	inf := h.Infrastructure()
	before := h.provisioned(inf, h.Plan())
	h.mu.Lock()
	was := h.down[p]
	h.down[p] = true
	h.mu.Unlock()
	if err := h.replanBefore(ctx, inf, before); err != nil {
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

// RemoveSite removes a cloud from the infrastructure at run time, the
// reverse of AddSite. It refuses, changing nothing, while the site is in
// use: a tenant's topology places a host in that cloud, or a host of an
// existing tenant is bound to a port of one of its VM bridges (the error
// lists them; move or delete those hosts first). Otherwise:
//
//  1. the tunnel tree is repaired with tunnels.Replan over the remaining
//     sites (the site's d tunnels go, d-1 cheapest reconnecting tunnels
//     come; nothing else moves) and the remaining gateways the change
//     touches are provisioned (make before break), the site is dropped
//     from the infrastructure and the desired flow entries are pushed,
//     so traffic between the other sites takes the new tree;
//  2. the Skyvisor-managed tunnel ports on the site's gateway are deleted
//     (tunnels.Provisioner.Clear), the site's leftover bindings (of
//     tenants that do not exist) are dropped from the store, its
//     liveness state and down marks are forgotten, and OVSDB connections
//     no other switch uses are closed (which ends their watches).
//
// The site's bridges, their controller setting and their flow entries
// are left as they are: the switches are no longer reconciled (their
// OpenFlow sessions, if any, stay open until they disconnect). Errors:
// unknown site, site in use, an infrastructure that would not validate,
// the remaining sites not connectable (*tunnels.DisconnectedError; nothing
// changes in these cases); provisioning errors after step 1 are returned
// with the site already removed.
func (h *Hypervisor) RemoveSite(ctx context.Context, name string) error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	cur := h.Infrastructure()
	if cur.Site(name) == nil {
		return fmt.Errorf("hypervisor: remove site %q: unknown site", name)
	}
	if err := h.siteInUse(name); err != nil {
		return fmt.Errorf("hypervisor: remove site %q: %w", name, err)
	}
	next := cur.Clone()
	next.Sites = slices.DeleteFunc(next.Sites, func(s infra.Site) bool { return s.Name == name })
	next.Switches = slices.DeleteFunc(next.Switches, func(sw infra.Switch) bool { return sw.Site == name })
	next.Costs = slices.DeleteFunc(next.Costs, func(c infra.Cost) bool { return c.A == name || c.B == name })
	if err := next.Validate(); err != nil {
		return fmt.Errorf("hypervisor: remove site %q: %w", name, err)
	}
	// Plan first: a disconnected remainder changes nothing.
	if _, _, err := h.repairTunnels(h.Plan(), next.TunnelSites(), next.TunnelCosts(), h.downPairs()); err != nil {
		return fmt.Errorf("hypervisor: remove site %q: replan tunnels: %w", name, err)
	}
	oldProv, oldProvErr := h.provisioner(cur, h.connectedClients())
	h.mu.Lock()
	h.inf = next
	h.mu.Unlock()
	var errs []error
	if err := h.replan(ctx, next); err != nil {
		errs = append(errs, err)
	}
	// The site's own gateway, once the others no longer lead to it.
	gw := cur.Gateway(name)
	switch {
	case oldProvErr != nil:
		errs = append(errs, oldProvErr)
	case gw != nil && h.connectedClients()[gw.OVSDB] != nil:
		if _, err := oldProv.Clear(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("clear tunnel ports: %w", err))
		}
	}
	if err := h.dropSiteBindings(name); err != nil {
		errs = append(errs, err)
	}
	h.forgetSiteLiveness(name)
	h.mu.Lock()
	delete(h.tunnelPorts, name)
	for _, m := range h.tunnelPorts {
		delete(m, name)
	}
	for p := range h.down {
		if p.A == name || p.B == name {
			delete(h.down, p)
		}
	}
	used := map[string]bool{}
	for _, sw := range next.Switches {
		used[sw.OVSDB] = true
	}
	var closing []OVSDB
	for _, sw := range cur.Switches {
		if c := h.clients[sw.OVSDB]; sw.Site == name && c != nil && !used[sw.OVSDB] {
			closing = append(closing, c)
			delete(h.clients, sw.OVSDB)
		}
	}
	h.mu.Unlock()
	for _, c := range closing {
		c.Close()
	}
	h.log.Info("hypervisor: site removed", "site", name, "plan", h.Plan().String())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("hypervisor: remove site %q: %w", name, err)
	}
	return nil
}

// siteInUse reports the tenants' hosts placed in or bound to site.
func (h *Hypervisor) siteInUse(site string) error {
	tenants, err := h.store.ListTenants()
	if err != nil {
		return storeErr(err)
	}
	var uses []string
	known := map[string]bool{}
	for _, t := range tenants {
		known[t.Name] = true
		tp, err := t.Parse()
		if err != nil {
			return err
		}
		for _, host := range tp.Hosts {
			if host.Cloud == site {
				uses = append(uses, fmt.Sprintf("tenant %s places host %s there", t.Name, host.Name))
			}
		}
	}
	binds, err := h.store.Bindings()
	if err != nil {
		return storeErr(err)
	}
	for _, b := range binds {
		tn, _, _ := strings.Cut(b.IfaceID, "/")
		if b.Site == site && known[tn] {
			uses = append(uses, fmt.Sprintf("host %s is bound to %s/%s port %s", b.IfaceID, b.VM, b.Bridge, b.PortName))
		}
	}
	if len(uses) > 0 {
		return fmt.Errorf("site in use (move or delete these hosts first): %s", strings.Join(uses, "; "))
	}
	return nil
}

// dropSiteBindings deletes the stored bindings on site (RemoveSite: only
// bindings of tenants that do not exist are left there).
func (h *Hypervisor) dropSiteBindings(site string) error {
	binds, err := h.store.Bindings()
	if err != nil {
		return storeErr(err)
	}
	var errs []error
	for _, b := range binds {
		if b.Site != site {
			continue
		}
		if err := h.store.DeleteBinding(b.IfaceID); err != nil {
			errs = append(errs, storeErr(err))
		}
	}
	h.mu.Lock()
	for k := range h.portIDs {
		if sw := h.inf.SwitchByDPID(k.dpid); sw == nil {
			delete(h.portIDs, k)
			delete(h.ofports, k)
		}
	}
	h.mu.Unlock()
	return errors.Join(errs...)
}

// costSources counts the tunnels of plan by the source of their cost
// (infra.CostSource: configured, measured, wan or default), e.g.
// "measured=2 configured=1", for the planning log.
func costSources(inf *infra.Infra, plan tunnels.Plan) string {
	n := map[string]int{}
	for _, t := range plan.Tunnels {
		n[inf.CostSource(t.A, t.B)]++
	}
	var b strings.Builder
	for _, src := range slices.Sorted(maps.Keys(n)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", src, n[src])
	}
	return b.String()
}
