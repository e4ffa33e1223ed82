package tunnels

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOVSDB is an in-memory GatewayPorts for one gateway: bridge -> port
// name -> port, with call counters and injectable failures.
type fakeOVSDB struct {
	mu      sync.Mutex
	bridges map[string]map[string]TunnelPort
	ensures int
	deletes int
	lists   int
	// failures: keyed by "ensure:<port>", "delete:<port>" or "list".
	fail map[string]error
}

func newFake() *fakeOVSDB {
	return &fakeOVSDB{bridges: map[string]map[string]TunnelPort{}, fail: map[string]error{}}
}

func clonePort(p TunnelPort) TunnelPort {
	p.ExternalIDs = maps.Clone(p.ExternalIDs)
	return p
}

func (f *fakeOVSDB) EnsureTunnelPort(ctx context.Context, bridge string, p TunnelPort) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["ensure:"+p.Name]; err != nil {
		return err
	}
	f.ensures++
	if f.bridges[bridge] == nil {
		f.bridges[bridge] = map[string]TunnelPort{}
	}
	for name, q := range f.bridges[bridge] {
		if name != p.Name && q.OFPort == p.OFPort && p.OFPort != 0 {
			return fmt.Errorf("ofport %d already used by %q", p.OFPort, name)
		}
	}
	f.bridges[bridge][p.Name] = clonePort(p)
	return nil
}

func (f *fakeOVSDB) DeleteTunnelPort(ctx context.Context, bridge, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["delete:"+name]; err != nil {
		return err
	}
	f.deletes++
	delete(f.bridges[bridge], name)
	return nil
}

func (f *fakeOVSDB) TunnelPorts(ctx context.Context, bridge string) ([]TunnelPort, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["list"]; err != nil {
		return nil, err
	}
	f.lists++
	var out []TunnelPort
	for _, name := range slices.Sorted(maps.Keys(f.bridges[bridge])) {
		out = append(out, clonePort(f.bridges[bridge][name]))
	}
	return out, nil
}

func (f *fakeOVSDB) mutations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ensures + f.deletes
}

func (f *fakeOVSDB) ports(bridge string) map[string]TunnelPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.bridges[bridge])
}

type fabric struct {
	sites []Site
	fakes map[string]*fakeOVSDB
	prov  *Provisioner
}

func newFabric(t *testing.T, enc Encap, names ...string) *fabric {
	t.Helper()
	f := &fabric{sites: sitesNamed(names...), fakes: map[string]*fakeOVSDB{}}
	gws := map[string]Gateway{}
	for _, n := range names {
		f.fakes[n] = newFake()
		gws[n] = Gateway{Bridge: "br-int", Ports: f.fakes[n]}
	}
	var err error
	f.prov, err = NewProvisioner(f.sites, gws, enc)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fabric) mutations() int {
	n := 0
	for _, fk := range f.fakes {
		n += fk.mutations()
	}
	return n
}

// checkMatches asserts every gateway holds exactly the plan's tunnels as
// managed ports, correctly configured, plus the given unmanaged ports.
func (f *fabric) checkMatches(t *testing.T, plan Plan, enc Encap) {
	t.Helper()
	addr := map[string]netip.Addr{}
	for _, s := range f.sites {
		addr[s.Name] = s.TunnelEndpoint()
	}
	for _, site := range plan.Sites {
		ports := f.fakes[site].ports("br-int")
		peers := map[string]bool{}
		ofports := map[int]bool{}
		for name, p := range ports {
			peer, managed := p.ExternalIDs[ExternalIDTunnel]
			if !managed {
				continue
			}
			if peers[peer] {
				t.Fatalf("site %s: two ports for peer %s", site, peer)
			}
			peers[peer] = true
			if name != PortName(peer) || p.Type != string(enc.Type) || p.Key != "flow" ||
				p.RemoteIP != addr[peer].String() || p.ExternalIDs[ExternalIDSite] != site {
				t.Fatalf("site %s: port %+v misconfigured", site, p)
			}
			if ofports[p.OFPort] || p.OFPort < TunnelOFPortMin || p.OFPort > TunnelOFPortMax {
				t.Fatalf("site %s: ofport %d duplicated or out of range", site, p.OFPort)
			}
			ofports[p.OFPort] = true
		}
		want := plan.Peers(site)
		if got := slices.Sorted(maps.Keys(peers)); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("site %s: tunnel peers %v, plan wants %v", site, got, want)
		}
	}
}

func fullCosts(names ...string) Costs {
	c := Costs{}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			c.Set(names[i], names[j], float64(1+(i*7+j*3)%5))
		}
	}
	return c
}

func TestProvisionerApplyIdempotent(t *testing.T) {
	ctx := context.Background()
	enc := Encap{Type: VXLAN}
	names := []string{"aws", "azure", "gcp", "onprem", "a-very-long-site-name"}
	f := newFabric(t, enc, names...)
	plan, err := MST(f.sites, fullCosts(names...))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.prov.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changes() != 2*plan.Len() || f.mutations() != 2*plan.Len() {
		t.Fatalf("first apply: %d changes reported, %d calls, want %d", rep.Changes(), f.mutations(), 2*plan.Len())
	}
	f.checkMatches(t, plan, enc)
	for site, sr := range rep {
		for peer, p := range sr.Ports {
			if got := f.fakes[site].ports("br-int")[p.Name]; got.OFPort != p.OFPort {
				t.Fatalf("report ofport %d for %s->%s, gateway has %d", p.OFPort, site, peer, got.OFPort)
			}
		}
	}
	// Second apply: listing only, no ensure or delete.
	before := f.mutations()
	rep, err = f.prov.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changes() != 0 || f.mutations() != before {
		t.Fatalf("second apply made %d calls (%d reported), want 0", f.mutations()-before, rep.Changes())
	}
}

func TestProvisionerReplanLeavesUnmanagedPorts(t *testing.T) {
	ctx := context.Background()
	enc := Encap{Type: GRE}
	names := []string{"a", "b", "c", "d"}
	f := newFabric(t, enc, names...)
	costs := fullCosts(names...)
	plan, _ := MST(f.sites, costs)
	if _, err := f.prov.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	// An operator's own tunnel and a patch port, unmanaged, on every gateway.
	for _, n := range names {
		f.fakes[n].bridges["br-int"]["tun-manual"] = TunnelPort{Name: "tun-manual", Type: "gre", RemoteIP: "192.0.2.9", OFPort: PreferredOFPort("zzz")}
		f.fakes[n].bridges["br-int"]["patch-x"] = TunnelPort{Name: "patch-x", Type: "patch", OFPort: 5}
	}
	// Take a tunnel down and repair.
	down := map[Pair]bool{plan.Tunnels[0].Pair(): true}
	next, d, err := Replan(plan, f.sites, costs, down)
	if err != nil {
		t.Fatal(err)
	}
	before := f.mutations()
	rep, err := f.prov.ApplyDiff(ctx, next, d)
	if err != nil {
		t.Fatal(err)
	}
	f.checkMatches(t, next, enc)
	// One tunnel removed (2 deletes) and one added (2 ensures).
	if got := f.mutations() - before; got != 4 || rep.Changes() != 4 {
		t.Fatalf("link-down repair made %d calls, want 4", got)
	}
	for _, n := range names {
		ports := f.fakes[n].ports("br-int")
		if _, ok := ports["tun-manual"]; !ok {
			t.Fatalf("site %s: unmanaged tun-manual deleted", n)
		}
		if _, ok := ports["patch-x"]; !ok {
			t.Fatalf("site %s: unmanaged patch-x deleted", n)
		}
	}
	// A full Apply afterwards finds nothing to do.
	before = f.mutations()
	if _, err := f.prov.Apply(ctx, next); err != nil || f.mutations() != before {
		t.Fatalf("apply after diff: err %v, %d calls", err, f.mutations()-before)
	}
	// Remove site d: its peers drop their tunnels to it, Clear empties d.
	next2, d2, err := Replan(next, f.sites[:3], costs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.prov.ApplyDiff(ctx, next2, d2); err != nil {
		t.Fatal(err)
	}
	f.checkMatches(t, next2, enc)
	if _, err := f.prov.Clear(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	for name, p := range f.fakes["d"].ports("br-int") {
		if _, managed := p.ExternalIDs[ExternalIDTunnel]; managed {
			t.Fatalf("Clear left managed port %s", name)
		}
	}
	if len(f.fakes["d"].ports("br-int")) != 2 {
		t.Fatalf("Clear touched unmanaged ports: %v", f.fakes["d"].ports("br-int"))
	}
}

func TestProvisionerKeepsOFPortsAndFixesDrift(t *testing.T) {
	ctx := context.Background()
	f := newFabric(t, Encap{Type: Geneve}, "a", "b", "c")
	costs := fullCosts("a", "b", "c")
	plan, _ := MST(f.sites, costs)
	if _, err := f.prov.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	peer := plan.Peers("a")[0]
	name := PortName(peer)
	// Someone moved the port to another number and changed its remote IP.
	p := f.fakes["a"].bridges["br-int"][name]
	p.OFPort = TunnelOFPortMin + 1
	p.RemoteIP = "203.0.113.1"
	f.fakes["a"].bridges["br-int"][name] = p
	before := f.mutations()
	rep, err := f.prov.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	got := f.fakes["a"].bridges["br-int"][name]
	if f.mutations()-before != 1 || got.OFPort != TunnelOFPortMin+1 || got.RemoteIP == "203.0.113.1" {
		t.Fatalf("drift repair: %d calls, port %+v (want ofport kept, remote fixed)", f.mutations()-before, got)
	}
	if rep["a"].Ports[peer].OFPort != TunnelOFPortMin+1 {
		t.Fatalf("report ofport %d", rep["a"].Ports[peer].OFPort)
	}
}

func TestProvisionerErrorsNameSiteAndPort(t *testing.T) {
	ctx := context.Background()
	names := []string{"a", "b", "c"}
	f := newFabric(t, Encap{Type: VXLAN}, names...)
	costs := Costs{}
	costs.Set("a", "b", 1)
	costs.Set("b", "c", 1)
	costs.Set("a", "c", 5)
	plan, _ := MST(f.sites, costs) // a~b, b~c
	if _, err := f.prov.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	// b~c goes down; the replacement a~c fails to be created on c.
	next, _, err := Replan(plan, f.sites, costs, map[Pair]bool{{"b", "c"}: true})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	f.fakes["c"].fail["ensure:tun-a"] = boom
	f.fakes["b"].fail["list"] = errors.New("ovsdb down")
	rep, err := f.prov.Apply(ctx, next)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap boom", err)
	}
	for _, want := range []string{`site "c": port "tun-a" (peer "a")`, `site "b": list tunnel ports`, "ovsdb down", `site "c": stale ports kept`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	// a was still reconciled; c kept its stale port to b (make before break).
	if _, ok := f.fakes["a"].ports("br-int")["tun-c"]; !ok {
		t.Fatal("site a not reconciled after errors elsewhere")
	}
	if _, ok := f.fakes["c"].ports("br-int")["tun-b"]; !ok {
		t.Fatal("site c deleted its old tunnel although the new one failed")
	}
	if _, ok := rep["b"]; ok {
		t.Fatal("report has an entry for b whose listing failed")
	}
	// Once the faults clear, Apply converges.
	delete(f.fakes["c"].fail, "ensure:tun-a")
	delete(f.fakes["b"].fail, "list")
	if _, err := f.prov.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	f.checkMatches(t, next, Encap{Type: VXLAN})
}

func TestProvisionerContextCanceled(t *testing.T) {
	f := newFabric(t, Encap{Type: VXLAN}, "a", "b")
	plan, _ := MST(f.sites, fullCosts("a", "b"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.prov.Apply(ctx, plan)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if f.mutations() != 0 {
		t.Fatalf("%d calls after cancel", f.mutations())
	}
}

func TestProvisionerNameConflictWithUnmanagedPort(t *testing.T) {
	ctx := context.Background()
	f := newFabric(t, Encap{Type: VXLAN}, "a", "b")
	f.fakes["a"].bridges["br-int"] = map[string]TunnelPort{"tun-b": {Name: "tun-b", Type: "vxlan", RemoteIP: "192.0.2.1"}}
	plan, _ := MST(f.sites, fullCosts("a", "b"))
	_, err := f.prov.Apply(ctx, plan)
	if err == nil || !strings.Contains(err.Error(), `site "a": port "tun-b" (peer "b"): name taken`) {
		t.Fatalf("err = %v", err)
	}
	if f.fakes["a"].bridges["br-int"]["tun-b"].RemoteIP != "192.0.2.1" {
		t.Fatal("unmanaged port overwritten")
	}
}

func TestNewProvisionerValidation(t *testing.T) {
	fk := newFake()
	good := sitesNamed("a", "b")
	cases := []struct {
		name  string
		sites []Site
		gws   map[string]Gateway
		enc   Encap
		want  string
	}{
		{"type", good, nil, Encap{Type: "ipip"}, `encap type "ipip"`},
		{"no address", []Site{{Name: "a"}}, nil, Encap{Type: GRE}, `sites[0] ("a"): no valid`},
		{"dup", sitesNamed("a", "a"), nil, Encap{Type: GRE}, "duplicate"},
		{"unknown gw", good, map[string]Gateway{"z": {Bridge: "br", Ports: fk}}, Encap{Type: GRE}, `gateways["z"]: no such site`},
		{"no bridge", good, map[string]Gateway{"a": {Ports: fk}}, Encap{Type: GRE}, "empty bridge"},
		{"nil ports", good, map[string]Gateway{"a": {Bridge: "br"}}, Encap{Type: GRE}, "nil Ports"},
		{"encrypted without endpoint", good, nil, Encap{Type: GRE, Encrypted: true}, "bypass WireGuard"},
	}
	for _, c := range cases {
		_, err := NewProvisioner(c.sites, c.gws, c.enc)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// Mixed IP versions are refused per site, naming the peer.
	sites := []Site{{Name: "a", Gateway: netip.MustParseAddr("198.51.100.1")}, {Name: "b", Gateway: netip.MustParseAddr("2001:db8::1")}}
	p, err := NewProvisioner(sites, map[string]Gateway{"a": {Bridge: "br", Ports: fk}, "b": {Bridge: "br", Ports: newFake()}}, Encap{Type: GRE})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Apply(context.Background(), Plan{Sites: []string{"a", "b"}, Tunnels: []Tunnel{{"a", "b", 1}}})
	if err == nil || !strings.Contains(err.Error(), `peer "b"`) || !strings.Contains(err.Error(), "IP versions") {
		t.Fatalf("mixed versions: %v", err)
	}
	// A plan site without a gateway.
	p, _ = NewProvisioner(good, map[string]Gateway{"a": {Bridge: "br", Ports: fk}}, Encap{Type: GRE})
	_, err = p.Apply(context.Background(), Plan{Sites: []string{"a", "b"}, Tunnels: []Tunnel{{"a", "b", 1}}})
	if err == nil || !strings.Contains(err.Error(), `site "b": no gateway`) {
		t.Fatalf("missing gateway: %v", err)
	}
}

func TestProvisionerEndpointOverride(t *testing.T) {
	// With an encrypted underlay the tunnel terminates behind the wg edge.
	sites := []Site{
		{Name: "s1", Gateway: netip.MustParseAddr("172.31.0.1"), Endpoint: netip.MustParseAddr("10.99.1.1")},
		{Name: "s2", Gateway: netip.MustParseAddr("172.31.0.2"), Endpoint: netip.MustParseAddr("10.99.2.1")},
	}
	f1, f2 := newFake(), newFake()
	p, err := NewProvisioner(sites, map[string]Gateway{"s1": {Bridge: "br-int", Ports: f1}, "s2": {Bridge: "br-int", Ports: f2}}, Encap{Type: Geneve, Encrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := MST(sites, Costs{{"s1", "s2"}: 1})
	if _, err := p.Apply(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	if got := f1.ports("br-int")["tun-s2"].RemoteIP; got != "10.99.2.1" {
		t.Fatalf("remote_ip = %q, want the endpoint 10.99.2.1", got)
	}
}

func TestProvisionerAvoidsOFPortOfUnmanagedPort(t *testing.T) {
	f := newFabric(t, Encap{Type: VXLAN}, "a", "b")
	squat := PreferredOFPort("b")
	f.fakes["a"].bridges["br-int"] = map[string]TunnelPort{"vm1": {Name: "vm1", Type: "vxlan", RemoteIP: "192.0.2.1", OFPort: squat}}
	plan, _ := MST(f.sites, fullCosts("a", "b"))
	rep, err := f.prov.Apply(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep["a"].Ports["b"].OFPort; got == squat || got < TunnelOFPortMin {
		t.Fatalf("ofport %d, want a free number other than %d", got, squat)
	}
	if rep["b"].Ports["a"].OFPort != PreferredOFPort("a") {
		t.Fatalf("site b: ofport %d, want the preferred %d", rep["b"].Ports["a"].OFPort, PreferredOFPort("a"))
	}
}

// TestProvisionerEventSequence drives random elasticity events (sites
// joining and leaving, tunnels going down, occasional Optimize) through
// Replan and ApplyDiff and checks after every step that each gateway holds
// exactly its plan's tunnels, that ApplyDiff made exactly 2 calls per
// changed tunnel, and that a full Apply then finds nothing to do.
func TestProvisionerEventSequence(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewSource(5))
	const maxSites = 10
	names := siteNames(maxSites)
	f := newFabric(t, Encap{Type: VXLAN}, names...)
	costs := Costs{}
	for i := range names {
		for j := i + 1; j < maxSites; j++ {
			if rng.Intn(3) != 0 {
				costs.Set(names[i], names[j], float64(1+rng.Intn(20)))
			}
		}
	}
	active := map[string]bool{"s0": true, "s1": true, "s2": true}
	activeSites := func() []Site {
		var out []Site
		for _, s := range f.sites {
			if active[s.Name] {
				out = append(out, s)
			}
		}
		return out
	}
	cur, err := MST(activeSites(), costs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.prov.Apply(ctx, cur); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for step := 0; step < 200; step++ {
		var down map[Pair]bool
		var removed string
		event := rng.Intn(4)
		switch {
		case event == 0 && len(active) < maxSites:
			for _, n := range names {
				if !active[n] {
					active[n] = true
					break
				}
			}
		case event == 1 && len(active) > 2:
			for _, n := range names[rng.Intn(maxSites):] {
				if active[n] {
					removed = n
					delete(active, n)
					break
				}
			}
		case event == 2 && cur.Len() > 0:
			down = map[Pair]bool{cur.Tunnels[rng.Intn(cur.Len())].Pair(): true}
		}
		replan := Replan
		if event == 3 {
			replan = Optimize
		}
		next, d, err := replan(cur, activeSites(), costs, down)
		var de *DisconnectedError
		if errors.As(err, &de) {
			if removed != "" {
				active[removed] = true
			}
			continue // event rejected, fabric unchanged
		}
		if err != nil {
			t.Fatal(err)
		}
		before := f.mutations()
		if _, err := f.prov.ApplyDiff(ctx, next, d); err != nil {
			t.Fatal(err)
		}
		if removed != "" {
			if _, err := f.prov.Clear(ctx, removed); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := f.mutations()-before, 2*d.Len(); got != want {
			t.Fatalf("step %d: %d OVSDB calls for a diff of %d tunnels (%+v)", step, got, d.Len(), d)
		}
		f.checkMatches(t, next, Encap{Type: VXLAN})
		before = f.mutations()
		if _, err := f.prov.Apply(ctx, next); err != nil || f.mutations() != before {
			t.Fatalf("step %d: full apply after diff: err %v, %d calls", step, err, f.mutations()-before)
		}
		cur = next
		steps++
	}
	if steps < 100 {
		t.Fatalf("only %d of 200 events applied", steps)
	}
}

// TestProvisionerBFD: EnableBFD puts the BFD settings on every port;
// applying again changes nothing; a changed interval updates each port
// in place (one ensure per port, same OpenFlow ports, no delete).
func TestProvisionerBFD(t *testing.T) {
	ctx := context.Background()
	enc := Encap{Type: Geneve}
	names := []string{"a", "b", "c"}
	f := newFabric(t, enc, names...)
	plan, err := MST(f.sites, fullCosts(names...))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.prov.EnableBFD(BFDConfig{Mult: 300}); err == nil {
		t.Fatal("mult 300 accepted")
	}
	bfd := BFDConfig{MinRx: 500 * time.Millisecond, MinTx: 500 * time.Millisecond}
	if err := f.prov.EnableBFD(bfd); err != nil {
		t.Fatal(err)
	}
	if _, err := f.prov.Apply(ctx, plan); err != nil {
		t.Fatal(err)
	}
	ofports := map[string]int{}
	for site, fk := range f.fakes {
		for name, p := range fk.ports("br-int") {
			if p.BFD == nil || *p.BFD != bfd {
				t.Fatalf("site %s port %s: BFD %+v", site, name, p.BFD)
			}
			ofports[site+"/"+name] = p.OFPort
		}
	}
	before := f.mutations()
	if rep, err := f.prov.Apply(ctx, plan); err != nil || rep.Changes() != 0 || f.mutations() != before {
		t.Fatalf("second apply: %d changes, err %v", f.mutations()-before, err)
	}
	if err := f.prov.EnableBFD(BFDConfig{MinRx: 300 * time.Millisecond, MinTx: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	rep, err := f.prov.Apply(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changes() != 2*plan.Len() {
		t.Fatalf("interval change: %d changes, want %d (one ensure per port)", rep.Changes(), 2*plan.Len())
	}
	for site, sr := range rep {
		if len(sr.Deleted) != 0 {
			t.Fatalf("site %s: deleted %v", site, sr.Deleted)
		}
	}
	for site, fk := range f.fakes {
		for name, p := range fk.ports("br-int") {
			if p.BFD == nil || p.BFD.MinRx != 300*time.Millisecond || ofports[site+"/"+name] != p.OFPort {
				t.Fatalf("site %s port %s after update: %+v", site, name, p)
			}
		}
	}
}
