package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/tunnels"
	bolt "go.etcd.io/bbolt"
)

// storeErr maps store failures to API errors: a closed store (shutdown) is
// api.ErrUnavailable, a missing tenant api.ErrNotFound.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", api.ErrNotFound, err)
	}
	return err
}

// Infra implements api.Service: the clouds and VMs of the infrastructure.
func (h *Hypervisor) Infra(ctx context.Context) (topology.Infra, error) {
	if err := ctx.Err(); err != nil {
		return topology.Infra{}, err
	}
	return h.topologyInfra(), nil
}

// ApplyTenant implements api.Service.
func (h *Hypervisor) ApplyTenant(ctx context.Context, t *topology.Topology) (api.TenantStatus, error) {
	out, err := h.apply(ctx, []*topology.Topology{t}, func(int) string { return "$" })
	if err != nil {
		return api.TenantStatus{}, err
	}
	return out[0], nil
}

// ApplyTenants implements api.Service: all or nothing (one store
// transaction), errors rooted at "$.tenants[i]".
func (h *Hypervisor) ApplyTenants(ctx context.Context, ts []*topology.Topology) ([]api.TenantStatus, error) {
	return h.apply(ctx, ts, func(i int) string { return fmt.Sprintf("$.tenants[%d]", i) })
}

// apply validates ts against the infrastructure and the pipeline's limits,
// stores them in one transaction, then recomputes the desired state and
// pushes it to the connected switches. A push failure does not fail the
// apply (the tenant is stored; its state says what is missing, and the
// next reconnect or change retries).
func (h *Hypervisor) apply(ctx context.Context, ts []*topology.Topology, root func(int) string) ([]api.TenantStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("no tenants given: %w", api.ErrInvalid)
	}
	ti := h.topologyInfra()
	var fes []topology.FieldError
	seen := map[string]int{}
	for i, t := range ts {
		if t == nil {
			return nil, fmt.Errorf("tenant %d is null: %w", i, api.ErrInvalid)
		}
		if j, dup := seen[t.Tenant]; dup {
			fes = append(fes, topology.FieldError{Path: root(i) + ".tenant", Msg: fmt.Sprintf("tenant %q also at index %d", t.Tenant, j)})
		}
		seen[t.Tenant] = i
		if err := topology.Validate(t, ti); err != nil {
			var ve *topology.ValidationError
			if !errors.As(api.PrefixPaths(err, root(i)), &ve) {
				return nil, err
			}
			fes = append(fes, ve.Errors...)
			continue
		}
		hosts := make(map[string]addr.HostIndex, len(t.Hosts))
		for j, hst := range t.Hosts {
			hosts[hst.Name] = addr.HostIndex(j + 1)
		}
		if _, err := pipeline.NewView(pipeline.Tenant{ID: addr.FirstTenantID, Topology: t, Hosts: hosts}); err != nil {
			fes = append(fes, topology.FieldError{Path: root(i), Msg: err.Error()})
		}
	}
	if len(fes) > 0 {
		return nil, &topology.ValidationError{Errors: fes}
	}
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	recs, err := h.store.PutTenants(ts)
	if err != nil {
		return nil, storeErr(err)
	}
	st, err := h.pushState(ctx) // desired.go: the state it pushed serves the status reply
	if err != nil {
		h.log.Warn("hypervisor: push after apply", "err", err)
	}
	if st == nil {
		if st, err = h.loadState(""); err != nil {
			return nil, err
		}
	}
	out := make([]api.TenantStatus, len(recs))
	for i, r := range recs {
		out[i] = st.status(r)
	}
	for i := range ts {
		h.log.Info("hypervisor: tenant applied", "tenant", out[i].Tenant, "tenant_id", out[i].TenantID, "generation", out[i].Generation, "state", out[i].State)
	}
	return out, nil
}

// DeleteTenant implements api.Service: the tenant's flow entries are
// removed from every connected switch first (the desired state without
// it is pushed), then the tenant is deleted from the store, which frees
// its tenant ID for reuse. If the removal fails on a switch the tenant is
// kept and the error wraps api.ErrUnavailable (retry).
func (h *Hypervisor) DeleteTenant(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	if _, err := h.store.GetTenant(name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("tenant %q: %w", name, api.ErrNotFound)
		}
		return storeErr(err)
	}
	desired, st, err := h.compute(name)
	if err != nil {
		return err
	}
	if err := h.install(ctx, desired, st); err != nil {
		// Put the tenant's entries back in the desired state.
		_ = h.pushLocked(context.WithoutCancel(ctx))
		return fmt.Errorf("tenant %q: remove its flow entries: %v: %w", name, err, api.ErrUnavailable)
	}
	if err := h.store.DeleteTenant(name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("tenant %q: %w", name, api.ErrNotFound)
		}
		return storeErr(err)
	}
	h.log.Info("hypervisor: tenant deleted", "tenant", name)
	return nil
}

// Tenants implements api.Service.
func (h *Hypervisor) Tenants(ctx context.Context) ([]api.TenantStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := h.loadState("")
	if err != nil {
		return nil, err
	}
	out := make([]api.TenantStatus, 0, len(st.tenants))
	for _, t := range st.tenants {
		out = append(out, st.status(t))
	}
	return out, nil
}

// Tenant implements api.Service.
func (h *Hypervisor) Tenant(ctx context.Context, name string) (api.TenantDetail, error) {
	st, t, err := h.tenantState(ctx, name)
	if err != nil {
		return api.TenantDetail{}, err
	}
	return api.TenantDetail{TenantStatus: st.status(t), Topology: st.topos[name], Mapping: st.mapping(t)}, nil
}

// Mapping implements api.Service.
func (h *Hypervisor) Mapping(ctx context.Context, name string) (api.Mapping, error) {
	st, t, err := h.tenantState(ctx, name)
	if err != nil {
		return api.Mapping{}, err
	}
	return st.mapping(t), nil
}

func (h *Hypervisor) tenantState(ctx context.Context, name string) (*state, *store.Tenant, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	st, err := h.loadState("")
	if err != nil {
		return nil, nil, err
	}
	for _, t := range st.tenants {
		if t.Name == name {
			return st, t, nil
		}
	}
	return nil, nil, fmt.Errorf("tenant %q: %w", name, api.ErrNotFound)
}

// status summarizes tenant t: pending while a host is not bound, degraded
// while a bridge it needs is not connected or the tunnel tree is not
// complete across its sites, active otherwise.
func (st *state) status(t *store.Tenant) api.TenantStatus {
	tp := st.topos[t.Name]
	s := api.TenantStatus{Tenant: t.Name, TenantID: t.ID, Generation: t.Generation,
		Switches: len(tp.Switches), Links: len(tp.Links), Hosts: len(tp.Hosts), CreatedAt: t.Created, UpdatedAt: t.Updated}
	var unbound, down []string
	sites := map[string]bool{}
	for _, hst := range tp.Hosts {
		id := topology.IfaceID(t.Name, hst.Name)
		b, ok := st.bindings[id]
		if !ok {
			msg := hst.Name
			if why, ok := st.ignored[id]; ok {
				msg += " (" + why + ")"
			}
			unbound = append(unbound, msg)
			continue
		}
		s.HostsBound++
		sites[b.Site] = true
		if st.connected[uint64(b.DPID)] == nil {
			down = append(down, fmt.Sprintf("VM bridge %s (%s/%s)", b.DPID, b.Site, b.VM))
		}
	}
	for site := range sites {
		if gw := st.inf.Gateway(site); gw != nil && st.connected[gw.DPID] == nil && len(sites) > 1 {
			down = append(down, fmt.Sprintf("gateway %s of %s", topology.DPID(gw.DPID), site))
		}
	}
	if len(sites) > 1 && len(st.tree.Tunnels) < len(st.inf.Sites)-1 {
		down = append(down, fmt.Sprintf("tunnel tree incomplete (%d of %d tunnels)", len(st.tree.Tunnels), len(st.inf.Sites)-1))
	}
	slices.Sort(down)
	switch {
	case len(unbound) > 0:
		s.State = api.TenantPending
		s.Message = "hosts not bound: " + strings.Join(unbound, ", ")
	case len(down) > 0:
		s.State = api.TenantDegraded
		s.Message = "not connected: " + strings.Join(down, ", ")
	default:
		s.State = api.TenantActive
	}
	return s
}

// treePath returns the sites on the tunnel tree's path from a to b
// (inclusive), or nil if they are not connected.
func treePath(tree tunnels.Plan, a, b string) []string {
	prev := map[string]string{a: ""}
	queue := []string{a}
	for len(queue) > 0 && queue[0] != b {
		s := queue[0]
		queue = queue[1:]
		for _, n := range tree.Peers(s) {
			if _, seen := prev[n]; !seen {
				prev[n] = s
				queue = append(queue, n)
			}
		}
	}
	if _, ok := prev[b]; !ok {
		return nil
	}
	var path []string
	for s := b; s != ""; s = prev[s] {
		path = append(path, s)
	}
	slices.Reverse(path)
	return path
}

// mapping builds the api.Mapping of tenant t.
func (st *state) mapping(t *store.Tenant) api.Mapping {
	tp, v := st.topos[t.Name], st.views[t.Name]
	m := api.Mapping{Tenant: t.Name, TenantID: t.ID, Switches: []api.SwitchMapping{}, Links: []api.LinkMapping{}, Hosts: []api.HostMapping{}}
	// Site of each virtual switch: of its first bound host, else its first host's cloud.
	swSite := map[uint16]string{}
	for _, hst := range v.Hosts {
		p := v.Ports[hst.VPort-1]
		if b, ok := st.bindings[topology.IfaceID(t.Name, hst.Name)]; ok && swSite[p.Switch] == "" {
			swSite[p.Switch] = b.Site
		}
	}
	for _, th := range tp.Hosts {
		if hst, ok := v.HostByName(th.Name); ok {
			if sw := v.Ports[hst.VPort-1].Switch; swSite[sw] == "" {
				swSite[sw] = th.Cloud
			}
		}
	}
	for _, sw := range v.Switches {
		sm := api.SwitchMapping{Name: sw.Name, VirtualDPID: sw.DPID, Site: swSite[sw.Index], Ports: []api.PortMapping{}}
		for _, pi := range sw.Ports {
			p := v.Ports[pi-1]
			pm := api.PortMapping{VirtualPort: p.Port, Kind: api.PortUnmapped}
			switch {
			case p.Host != nil:
				pm.Peer = "host:" + p.Host.Name
				if b, ok := st.bindings[topology.IfaceID(t.Name, p.Host.Name)]; ok {
					pm.Kind, pm.PhysicalDPID, pm.PhysicalPort = api.PortLocal, b.DPID, b.OFPort
				}
			case p.Peer != 0:
				peer := v.Ports[p.Peer-1]
				pm.Peer = fmt.Sprintf("switch:%s:%d", v.Switches[peer.Switch-1].Name, peer.Port)
				a, b := swSite[p.Switch], swSite[peer.Switch]
				if a == "" || b == "" {
					break
				}
				if a == b {
					pm.Kind = api.PortLocal // realised inside the ingress edge's pipeline
					break
				}
				if path := treePath(st.tree, a, b); len(path) > 1 {
					pm.Kind = api.PortTunnel
					pm.Tunnel = tunnels.MakePair(path[0], path[1]).String()
					if gw := st.inf.Gateway(a); gw != nil {
						pm.PhysicalDPID = topology.DPID(gw.DPID)
					}
					pm.PhysicalPort = st.ports[a][path[1]]
				}
			}
			sm.Ports = append(sm.Ports, pm)
		}
		m.Switches = append(m.Switches, sm)
	}
	swIndex := map[string]uint16{}
	for _, sw := range v.Switches {
		swIndex[sw.Name] = sw.Index
	}
	for _, l := range tp.Links {
		lm := api.LinkMapping{A: fmt.Sprintf("%s:%d", l.A.Switch, l.A.Port), B: fmt.Sprintf("%s:%d", l.B.Switch, l.B.Port), Path: []api.Hop{}}
		a, b := swSite[swIndex[l.A.Switch]], swSite[swIndex[l.B.Switch]]
		if a != "" && b != "" && a != b {
			path := treePath(st.tree, a, b)
			var in uint32
			for i, site := range path {
				gw := st.inf.Gateway(site)
				hop := api.Hop{DPID: topology.DPID(gw.DPID), InPort: in}
				if i+1 < len(path) {
					hop.OutPort = st.ports[site][path[i+1]]
					lm.Tunnels = append(lm.Tunnels, tunnels.MakePair(site, path[i+1]).String())
					in = st.ports[path[i+1]][site]
				}
				lm.Path = append(lm.Path, hop)
			}
		}
		m.Links = append(m.Links, lm)
	}
	for _, th := range tp.Hosts {
		hm := api.HostMapping{Name: th.Name, IP: th.IP, Switch: th.Switch, Port: th.Port, Site: th.Cloud,
			IfaceID: topology.IfaceID(t.Name, th.Name), Binding: api.BindingUnbound}
		hm.MAC, _ = th.ParsedMAC()
		hm.FabricMAC, _ = t.FabricMAC(th.Name)
		if b, ok := st.bindings[hm.IfaceID]; ok {
			hm.Binding, hm.PhysicalDPID, hm.PhysicalPort = api.BindingBound, b.DPID, b.OFPort
		}
		m.Hosts = append(m.Hosts, hm)
	}
	return m
}

// PhysicalTopology implements api.Service: sites, switches with their
// connection state, and the gateway tunnels: the planned ones (InTree) and
// the probes of pairs BFD declared down (routed around), each Up when
// both ends' ports are provisioned and with its BFD state (liveness.go).
// Links inside sites are the discovery app's and not reported here.
func (h *Hypervisor) PhysicalTopology(ctx context.Context) (api.PhysicalTopology, error) {
	if err := ctx.Err(); err != nil {
		return api.PhysicalTopology{}, err
	}
	st, err := h.loadState("")
	if err != nil {
		return api.PhysicalTopology{}, err
	}
	out := api.PhysicalTopology{Sites: []api.Site{}, Switches: []api.PhysicalSwitch{}, Links: []api.PhysicalLink{}, Tunnels: []api.GatewayTunnel{}}
	for _, s := range st.inf.Sites {
		out.Sites = append(out.Sites, api.Site{Name: s.Name, Cloud: s.Name, Gateway: topology.DPID(s.GatewayDPID), Endpoint: s.UnderlayIP})
	}
	for _, sw := range st.inf.Switches {
		ps := api.PhysicalSwitch{DPID: topology.DPID(sw.DPID), Site: sw.Site, VM: sw.VM, Role: api.RoleVM}
		if sw.Role == infra.RoleGateway {
			ps.Role = api.RoleGateway
		}
		if c := st.connected[sw.DPID]; c != nil {
			ps.Connected, ps.Address, ps.Ports = true, c.addr, c.ports
		}
		out.Switches = append(out.Switches, ps)
	}
	ends := h.bfdEnds()
	// The tree (or mesh) and the pairs BFD declared down whose ports stay
	// as probes.
	for _, t := range h.provisioned(st.inf, st.plan).Tunnels {
		_, okA := st.ports[t.A][t.B]
		_, okB := st.ports[t.B][t.A]
		gt := api.GatewayTunnel{Name: t.Pair().String(), Type: st.inf.TunnelType, A: t.A, B: t.B, Up: okA && okB,
			InTree: st.plan.Has(t.A, t.B), BFD: tunnelBFD(t.A, t.B, ends)}
		if s := st.inf.Site(t.A); s != nil {
			gt.LocalIP = s.UnderlayIP
		}
		if s := st.inf.Site(t.B); s != nil {
			gt.RemoteIP = s.UnderlayIP
		}
		out.Tunnels = append(out.Tunnels, gt)
	}
	return out, nil
}

// Health implements api.Service: the store (readable), OVSDB (every
// endpoint connected), switches (every infrastructure DPID connected over
// OpenFlow) and tunnels (the tree provisioned). A failing store makes the
// daemon unavailable; anything else degraded.
func (h *Hypervisor) Health(ctx context.Context) api.Health {
	out := api.Health{Status: api.HealthOK, Version: h.cfg.Version, UptimeSeconds: time.Since(h.started).Seconds()}
	add := func(name string, s api.HealthStatus, msg string) {
		out.Checks = append(out.Checks, api.HealthCheck{Name: name, Status: s, Message: msg})
		if s == api.HealthUnavailable || (s == api.HealthDegraded && out.Status == api.HealthOK) {
			out.Status = s
		}
	}
	if _, err := h.store.Bindings(); err != nil {
		add("store", api.HealthUnavailable, err.Error())
	} else {
		add("store", api.HealthOK, "")
	}
	h.mu.Lock()
	inf := h.inf
	endpoints := map[string]bool{}
	for _, sw := range inf.Switches {
		endpoints[sw.OVSDB] = true
	}
	var notConn []string
	for ep := range endpoints {
		if c := h.clients[ep]; c == nil || !c.Connected() {
			notConn = append(notConn, ep)
		}
	}
	var missing []string
	for _, sw := range inf.Switches {
		if h.switches[sw.DPID] == nil {
			missing = append(missing, fmt.Sprintf("%s/%s (%s)", sw.Site, sw.Bridge, topology.DPID(sw.DPID)))
		}
	}
	nSwitches := len(inf.Switches)
	plan, planned, cerr := h.plan, h.planned, h.convergeErr
	provisioned := 0
	for _, t := range plan.Tunnels {
		if _, ok := h.tunnelPorts[t.A][t.B]; ok {
			if _, ok := h.tunnelPorts[t.B][t.A]; ok {
				provisioned++
			}
		}
	}
	h.mu.Unlock()
	slices.Sort(notConn)
	if len(notConn) > 0 {
		add("ovsdb", api.HealthDegraded, "not connected: "+strings.Join(notConn, ", "))
	} else {
		add("ovsdb", api.HealthOK, fmt.Sprintf("%d endpoints connected", len(endpoints)))
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		add("switches", api.HealthDegraded, fmt.Sprintf("%d of %d connected; missing: %s", nSwitches-len(missing), nSwitches, strings.Join(missing, ", ")))
	} else {
		add("switches", api.HealthOK, fmt.Sprintf("%d of %d connected", nSwitches, nSwitches))
	}
	switch {
	case !planned:
		add("tunnels", api.HealthDegraded, "not planned yet")
	case provisioned < len(plan.Tunnels):
		add("tunnels", api.HealthDegraded, fmt.Sprintf("%d of %d provisioned", provisioned, len(plan.Tunnels)))
	default:
		add("tunnels", api.HealthOK, plan.String())
	}
	if !h.cfg.Liveness.Disabled && planned {
		status, msg := bfdHealth(plan, h.bfdEnds(), h.LivenessDown())
		add("bfd", status, msg)
	}
	if cerr != nil {
		add("converge", api.HealthDegraded, cerr.Error())
	}
	return out
}

// bfdEnds returns the BFD status of every gateway tunnel port seen, by
// (site, peer) (empty with liveness disabled).
func (h *Hypervisor) bfdEnds() map[liveEnd]ovsdb.BFDStatus {
	out := map[liveEnd]ovsdb.BFDStatus{}
	for _, ts := range h.TunnelStatuses() {
		out[liveEnd{site: ts.Site, peer: ts.Peer}] = ts.BFD
	}
	return out
}

// tunnelBFD returns the API's BFD state of the tunnel between a and b,
// nil if neither port has been seen.
func tunnelBFD(a, b string, ends map[liveEnd]ovsdb.BFDStatus) *api.TunnelBFD {
	sa, okA := ends[liveEnd{a, b}]
	sb, okB := ends[liveEnd{b, a}]
	if !okA && !okB {
		return nil
	}
	out := &api.TunnelBFD{Ends: []api.TunnelBFDEnd{bfdEnd(a, sa), bfdEnd(b, sb)}}
	switch {
	case sa.Up() && sb.Up():
		out.State, out.Forwarding = ovsdb.BFDStateUp, true
	case !sa.Up():
		out.State, out.Diagnostic = sa.State, bfdDiag(sa.Diagnostic)
	default:
		out.State, out.Diagnostic = sb.State, bfdDiag(sb.Diagnostic)
	}
	return out
}

func bfdEnd(site string, s ovsdb.BFDStatus) api.TunnelBFDEnd {
	return api.TunnelBFDEnd{Site: site, State: s.State, Forwarding: s.Forwarding, Diagnostic: bfdDiag(s.Diagnostic),
		RemoteState: s.RemoteState, FlapCount: s.FlapCount}
}

// bfdDiag maps ovs-vswitchd's "No Diagnostic" (RFC 5880 Diag 0) to "".
func bfdDiag(d string) string {
	if d == "No Diagnostic" {
		return ""
	}
	return d
}

// bfdHealth is the "bfd" health check: degraded while a tunnel of plan
// (the tree or mesh that carries traffic) has an end whose BFD session
// reports it not up and forwarding (a failure not yet routed around, one
// with no detour, or a session still coming up); ends not reported yet
// are not counted. The pairs routed around (probes) are named in the
// message but do not degrade: traffic no longer uses them.
func bfdHealth(plan tunnels.Plan, ends map[liveEnd]ovsdb.BFDStatus, routed []tunnels.Pair) (api.HealthStatus, string) {
	var down []string
	up, unknown := 0, 0
	for _, t := range plan.Tunnels {
		var bad []string
		reported := 0
		for _, e := range []liveEnd{{t.A, t.B}, {t.B, t.A}} {
			s, ok := ends[e]
			if !ok || !s.Reported() {
				continue
			}
			reported++
			if !s.Up() {
				bad = append(bad, e.site+": "+s.String())
			}
		}
		switch {
		case len(bad) > 0:
			down = append(down, fmt.Sprintf("%s (%s)", t.Pair(), strings.Join(bad, "; ")))
		case reported == 2:
			up++
		default:
			unknown++
		}
	}
	var around string
	if len(routed) > 0 {
		names := make([]string, len(routed))
		for i, p := range routed {
			names[i] = p.String()
		}
		around = "; routed around: " + strings.Join(names, ", ")
	}
	if len(down) > 0 {
		return api.HealthDegraded, fmt.Sprintf("%d of %d tree tunnels down: %s%s", len(down), len(plan.Tunnels), strings.Join(down, ", "), around)
	}
	msg := fmt.Sprintf("%d of %d tree tunnels up", up, len(plan.Tunnels))
	if unknown > 0 {
		msg += fmt.Sprintf(", %d not reported yet", unknown)
	}
	return api.HealthOK, msg + around
}
