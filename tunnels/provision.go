package tunnels

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/skyvisor/skyvisor/ovsdb"
)

// TunnelPort is one tunnel port of a gateway bridge as package ovsdb reads
// and writes it: Port/Interface name, Interface type ("vxlan", "gre",
// "geneve"), options:remote_ip, options:key, OFPort = ofport_request (the
// number requested; OVS may assign another if it is taken, which
// ovsdb.Client.Interfaces reports), and the Interface external_ids.
type TunnelPort = ovsdb.TunnelPort

// BFDConfig is the BFD configuration of a tunnel port (bfd:min_rx,
// bfd:min_tx, bfd:mult); an alias of ovsdb.BFDConfig.
type BFDConfig = ovsdb.BFDConfig

// GatewayPorts manages the tunnel ports of one gateway's OVS bridges over
// OVSDB (RFC 7047): exactly the three methods of *ovsdb.Client the
// Provisioner needs (the consumer-side interface; tests use a fake).
//
// EnsureTunnelPort creates port p on bridge or updates it in place so that
// it matches p (idempotent; ovsdb sets external_ids to exactly
// p.ExternalIDs). DeleteTunnelPort removes the named tunnel port (absent is
// not an error). TunnelPorts lists the bridge's tunnel ports (vxlan, gre,
// geneve), managed by Skyvisor or not, with OFPort = ofport_request.
type GatewayPorts interface {
	EnsureTunnelPort(ctx context.Context, bridge string, p TunnelPort) error
	DeleteTunnelPort(ctx context.Context, bridge, name string) error
	TunnelPorts(ctx context.Context, bridge string) ([]TunnelPort, error)
}

// *ovsdb.Client is the production implementation of GatewayPorts.
var _ GatewayPorts = (*ovsdb.Client)(nil)

// Gateway is how the Provisioner reaches one site's gateway: the OVS
// bridge that holds the tunnel ports (br-int in the lab) and its OVSDB
// handle.
type Gateway struct {
	Bridge string
	Ports  GatewayPorts
}

// maxParallel bounds how many gateways are reconciled at once.
const maxParallel = 8

// Provisioner turns plans into tunnel ports on the gateways. It is safe
// for concurrent use if the GatewayPorts values are; concurrent Apply calls
// on the same sites race like any two OVSDB writers and the last one wins.
type Provisioner struct {
	sites    map[string]Site
	gateways map[string]Gateway
	encap    Encap
	bfd      *BFDConfig // BFD on every managed port; nil = off
}

// NewProvisioner checks and stores the sites (name and gateway address),
// one Gateway per site name, and the encapsulation every tunnel uses.
// Errors name the field at fault: invalid or duplicate site names, a site
// without a valid tunnel endpoint address, a gateway for an unknown site or
// with an empty bridge or nil Ports, an unknown tunnel type. With
// enc.Encrypted every site needs an Endpoint (the address behind its
// WireGuard edge) distinct from its Gateway: tunnels addressed to the public
// Gateway would travel outside WireGuard, in the clear.
func NewProvisioner(sites []Site, gateways map[string]Gateway, enc Encap) (*Provisioner, error) {
	if !enc.Type.Valid() {
		return nil, fmt.Errorf("tunnels: encap type %q: want vxlan, gre or geneve", enc.Type)
	}
	p := &Provisioner{sites: make(map[string]Site, len(sites)), gateways: make(map[string]Gateway, len(gateways)), encap: enc}
	for i, s := range sites {
		if err := ValidateSiteName(s.Name); err != nil {
			return nil, fmt.Errorf("tunnels: sites[%d]: %w", i, err)
		}
		if _, dup := p.sites[s.Name]; dup {
			return nil, fmt.Errorf("tunnels: sites[%d]: duplicate site name %q", i, s.Name)
		}
		if !s.TunnelEndpoint().IsValid() {
			return nil, fmt.Errorf("tunnels: sites[%d] (%q): no valid Gateway or Endpoint address", i, s.Name)
		}
		if enc.Encrypted && (!s.Endpoint.IsValid() || s.Endpoint == s.Gateway) {
			return nil, fmt.Errorf("tunnels: sites[%d] (%q): encrypted underlay needs an Endpoint distinct from the public Gateway %v (tunnels to the Gateway would bypass WireGuard)", i, s.Name, s.Gateway)
		}
		p.sites[s.Name] = s
	}
	for name, gw := range gateways {
		if _, ok := p.sites[name]; !ok {
			return nil, fmt.Errorf("tunnels: gateways[%q]: no such site", name)
		}
		if gw.Bridge == "" {
			return nil, fmt.Errorf("tunnels: gateways[%q]: empty bridge name", name)
		}
		if gw.Ports == nil {
			return nil, fmt.Errorf("tunnels: gateways[%q]: nil Ports", name)
		}
		p.gateways[name] = gw
	}
	return p, nil
}

// EnableBFD makes every tunnel port the Provisioner ensures run BFD (RFC
// 5880/5881, implemented by ovs-vswitchd) with b, so the port's
// bfd_status (ovsdb.Interface.BFD) tells whether the tunnel carries
// packets; existing ports are updated in place (only their bfd column).
// Both ends of a tunnel must enable it: a session with an end that does
// not run BFD never comes up. Call it before Apply. Errors: b invalid
// (ovsdb.BFDConfig.Validate).
func (p *Provisioner) EnableBFD(b BFDConfig) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("tunnels: %w", err)
	}
	p.bfd = &b
	return nil
}

// SiteReport says what reconciling one gateway did.
type SiteReport struct {
	// Ensured and Deleted are the port names created/updated and deleted,
	// in the order the calls were made.
	Ensured, Deleted []string
	// Ports is the desired tunnel port per peer site name, as ensured:
	// the hypervisor reads OFPort from here to build output actions.
	Ports map[string]TunnelPort
}

// Report maps site name to what reconciling its gateway did. Sites whose
// reconciliation failed before listing ports are absent.
type Report map[string]SiteReport

// Changes returns the total number of ensure and delete calls made.
func (r Report) Changes() int {
	n := 0
	for _, s := range r {
		n += len(s.Ensured) + len(s.Deleted)
	}
	return n
}

// Apply reconciles the gateway of every site in plan.Sites with the plan:
// for each site it lists the bridge's tunnel ports, ensures one port per
// peer in the plan (name PortName(peer), remote_ip the peer's tunnel
// endpoint, key=flow, ofport from AssignOFPorts keeping existing numbers,
// external_ids skyvisor-tunnel=<peer> and skyvisor-site=<site>), then
// deletes the managed ports (those with a skyvisor-tunnel external ID) the
// plan no longer wants. Ports without that external ID are never touched.
//
// It is idempotent: applying the same plan twice makes no ensure or delete
// call the second time. New ports are created before stale ones are
// deleted (make before break); if any ensure fails on a site, that site's
// deletions are skipped so connectivity never drops below the old plan,
// and the next Apply finishes the job. Sites are reconciled in parallel
// (at most 8 at once); an error on one site does not stop the others. The
// returned error joins (errors.Join) one error per failure, each naming
// the site and, where relevant, the port. Sites not in plan.Sites are left
// alone: use Clear for a site leaving the fabric.
func (p *Provisioner) Apply(ctx context.Context, plan Plan) (Report, error) {
	return p.reconcile(ctx, plan, plan.Sites)
}

// ApplyDiff reconciles only the gateways of the sites that d touches (an
// endpoint of an added or removed tunnel) and that are still in
// next.Sites, each against next; cheaper than Apply after Replan when the
// other gateways are known to be in sync. Same semantics and errors as
// Apply.
func (p *Provisioner) ApplyDiff(ctx context.Context, next Plan, d Diff) (Report, error) {
	in := make(map[string]bool, len(next.Sites))
	for _, s := range next.Sites {
		in[s] = true
	}
	touched := map[string]bool{}
	for _, t := range slices.Concat(d.Add, d.Remove) {
		for _, s := range []string{t.A, t.B} {
			if in[s] {
				touched[s] = true
			}
		}
	}
	return p.reconcile(ctx, next, slices.Sorted(maps.Keys(touched)))
}

// Clear deletes every Skyvisor-managed tunnel port on the gateway of site
// (a site leaving the fabric). Unmanaged ports stay.
func (p *Provisioner) Clear(ctx context.Context, site string) (SiteReport, error) {
	return p.reconcileSite(ctx, site, nil)
}

func (p *Provisioner) reconcile(ctx context.Context, plan Plan, sites []string) (Report, error) {
	reports := make([]SiteReport, len(sites))
	errs := make([]error, len(sites))
	ok := make([]bool, len(sites))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = fmt.Errorf("tunnels: site %q: %w", s, ctx.Err())
				return
			}
			reports[i], errs[i] = p.reconcileSite(ctx, s, plan.Peers(s))
			ok[i] = reports[i].Ports != nil
		}()
	}
	wg.Wait()
	r := make(Report, len(sites))
	for i, s := range sites {
		if ok[i] {
			r[s] = reports[i]
		}
	}
	return r, errors.Join(errs...)
}

// reconcileSite makes the managed tunnel ports of site's gateway equal to
// one port per peer. The report's Ports is nil if listing failed.
func (p *Provisioner) reconcileSite(ctx context.Context, site string, peers []string) (SiteReport, error) {
	var rep SiteReport
	local, ok := p.sites[site]
	if !ok {
		return rep, fmt.Errorf("tunnels: site %q: unknown to the provisioner", site)
	}
	gw, ok := p.gateways[site]
	if !ok {
		return rep, fmt.Errorf("tunnels: site %q: no gateway configured", site)
	}
	for _, peer := range peers {
		ps, ok := p.sites[peer]
		if !ok {
			return rep, fmt.Errorf("tunnels: site %q: peer %q unknown to the provisioner", site, peer)
		}
		if ps.TunnelEndpoint().Is4() != local.TunnelEndpoint().Is4() {
			return rep, fmt.Errorf("tunnels: site %q: peer %q: endpoint %v and local endpoint %v are of different IP versions",
				site, peer, ps.TunnelEndpoint(), local.TunnelEndpoint())
		}
	}
	names, err := PortNames(peers)
	if err != nil {
		return rep, fmt.Errorf("tunnels: site %q: %w", site, err)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("tunnels: site %q: %w", site, err)
	}
	existing, err := gw.Ports.TunnelPorts(ctx, gw.Bridge)
	if err != nil {
		return rep, fmt.Errorf("tunnels: site %q: list tunnel ports of bridge %q: %w", site, gw.Bridge, err)
	}

	// Index what is there: managed ports by name, unmanaged names and
	// OpenFlow port numbers (never reused, never touched).
	wantName := make(map[string]string, len(peers)) // port name -> peer
	for peer, n := range names {
		wantName[n] = peer
	}
	managed := map[string]TunnelPort{}
	unmanaged := map[string]bool{}
	taken := map[int]bool{}
	currentOF := map[string]int{}
	for _, e := range existing {
		if _, ok := e.ExternalIDs[ExternalIDTunnel]; !ok {
			unmanaged[e.Name] = true
			if e.OFPort > 0 {
				taken[e.OFPort] = true
			}
			continue
		}
		managed[e.Name] = e
		if peer, ok := wantName[e.Name]; ok && e.ExternalIDs[ExternalIDTunnel] == peer {
			if e.OFPort > 0 {
				currentOF[peer] = e.OFPort
			}
		} else if e.OFPort > 0 {
			taken[e.OFPort] = true // stale, deleted only after the new ports exist
		}
	}
	var errs []error
	for _, peer := range peers {
		if unmanaged[names[peer]] {
			errs = append(errs, fmt.Errorf("tunnels: site %q: port %q (peer %q): name taken by a port Skyvisor does not manage", site, names[peer], peer))
		}
	}
	if len(errs) > 0 {
		return rep, errors.Join(errs...)
	}
	ofports, err := AssignOFPorts(peers, currentOF, taken)
	if err != nil {
		return rep, fmt.Errorf("tunnels: site %q: %w", site, err)
	}

	rep.Ports = make(map[string]TunnelPort, len(peers))
	for _, peer := range peers {
		want := TunnelPort{
			Name:     names[peer],
			Type:     string(p.encap.Type),
			RemoteIP: p.sites[peer].TunnelEndpoint().String(),
			Key:      TunnelKey,
			OFPort:   ofports[peer],
			ExternalIDs: map[string]string{
				ExternalIDTunnel: peer,
				ExternalIDSite:   site,
			},
		}
		if p.bfd != nil {
			b := *p.bfd
			want.BFD = &b
		}
		rep.Ports[peer] = want
		if have, ok := managed[want.Name]; ok && samePort(have, want) {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("tunnels: site %q: port %q (peer %q): %w", site, want.Name, peer, err))
			continue
		}
		if err := gw.Ports.EnsureTunnelPort(ctx, gw.Bridge, want); err != nil {
			errs = append(errs, fmt.Errorf("tunnels: site %q: port %q (peer %q): ensure on bridge %q: %w", site, want.Name, peer, gw.Bridge, err))
			continue
		}
		rep.Ensured = append(rep.Ensured, want.Name)
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("tunnels: site %q: stale ports kept until every new port exists", site))
		return rep, errors.Join(errs...)
	}
	for _, name := range slices.Sorted(maps.Keys(managed)) {
		e := managed[name]
		if _, ok := wantName[name]; ok {
			continue // a wanted port, ensured above
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("tunnels: site %q: port %q: %w", site, name, err))
			break
		}
		if err := gw.Ports.DeleteTunnelPort(ctx, gw.Bridge, name); err != nil {
			errs = append(errs, fmt.Errorf("tunnels: site %q: port %q (peer %q): delete from bridge %q: %w", site, name, e.ExternalIDs[ExternalIDTunnel], gw.Bridge, err))
			continue
		}
		rep.Deleted = append(rep.Deleted, name)
	}
	return rep, errors.Join(errs...)
}

// samePort reports whether an existing port already matches the desired
// one: same name, type, remote address, key, OpenFlow port, BFD settings
// and our two external IDs (other external IDs are allowed).
func samePort(have, want TunnelPort) bool {
	if have.Name != want.Name || have.Type != want.Type || have.Key != want.Key || have.OFPort != want.OFPort {
		return false
	}
	if (have.BFD == nil) != (want.BFD == nil) || (have.BFD != nil && *have.BFD != *want.BFD) {
		return false
	}
	ha, err1 := netip.ParseAddr(have.RemoteIP)
	wa, err2 := netip.ParseAddr(want.RemoteIP)
	if err1 != nil || err2 != nil || ha != wa {
		return false
	}
	for k, v := range want.ExternalIDs {
		if have.ExternalIDs[k] != v {
			return false
		}
	}
	return true
}
