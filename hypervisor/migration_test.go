package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/hypervisor/store"
)

// stubSwitch is a connected switch with an empty flow table that accepts
// everything (enough for planning and reconciles).
type stubSwitch struct {
	controller.Switch
	dpid controller.DPID
}

func (s stubSwitch) DPID() controller.DPID                           { return s.dpid }
func (s stubSwitch) Ports() []ofp.Port                               { return nil }
func (s stubSwitch) Done() <-chan struct{}                           { return nil }
func (s stubSwitch) String() string                                  { return fmt.Sprintf("stub %s", s.dpid) }
func (s stubSwitch) FlowMod(context.Context, *ofp.FlowMod) error     { return nil }
func (s stubSwitch) Barrier(context.Context) error                   { return nil }
func (s stubSwitch) PacketOut(context.Context, *ofp.PacketOut) error { return nil }
func (s stubSwitch) FlowStats(context.Context, *ofp.FlowStatsRequest) ([]controller.FlowStats, error) {
	return nil, nil
}

// newMigrationTest: testInfra (aws vm1 0x101, vm2 0x102; gcp vm1 0x201;
// azure web 0x301), tunnels converged, tenant1 of two-tenants.json with
// h1 bound on aws/vm1, stub sessions for the VM bridges.
func newMigrationTest(t *testing.T) (*Hypervisor, *store.Store, migrationEnv) {
	t.Helper()
	h, st, _ := newTest(t)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ApplyTenants(ctx, loadTenants(t, h, "../examples/two-tenants.json")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutBinding(store.Binding{IfaceID: "tenant1/h1", Site: "aws", VM: "vm1", Bridge: "vm1", DPID: 0x101, PortName: "h-h1", OFPort: 5}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	for _, d := range []uint64{0x101, 0x102, 0x201} {
		h.switches[d] = stubSwitch{dpid: controller.DPID(d)}
	}
	h.mu.Unlock()
	return h, st, migrationEnv{h}
}

func TestMigrationPlan(t *testing.T) {
	h, _, env := newMigrationTest(t)
	ctx := ctxT(t)
	p, err := env.Plan(ctx, migrate.Request{Switch: 0x101, To: "gcp"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Source.DPID != 0x101 || p.Target.DPID != 0x201 || p.Target.VM != "vm1" || len(p.Hosts) != 1 ||
		p.Hosts[0].IfaceID != "tenant1/h1" || p.Hosts[0].Port != "h-h1" || p.Hosts[0].Tenant != 0x200 || len(p.Path) < 2 {
		t.Errorf("plan: %+v", p)
	}
	for _, c := range []struct {
		req  migrate.Request
		want error
		msg  string
	}{
		{migrate.Request{Switch: 0x999, To: "gcp"}, migrate.ErrInvalid, "not a VM bridge"},
		{migrate.Request{Switch: 0x100, To: "gcp"}, migrate.ErrInvalid, "not a VM bridge"}, // a gateway
		{migrate.Request{Switch: 0x101, To: "mars"}, migrate.ErrInvalid, `unknown cloud "mars"`},
		{migrate.Request{Switch: 0x101, To: "aws"}, migrate.ErrInvalid, "already in cloud"},
		{migrate.Request{Switch: 0x102, To: "gcp"}, migrate.ErrInvalid, "no bound tenant host"},
		{migrate.Request{Switch: 0x101, To: "gcp", VM: "vm9"}, migrate.ErrInvalid, `no VM "vm9"`},
		{migrate.Request{Switch: 0x101, To: "azure"}, migrate.ErrUnavailable, "no connected VM bridge"},
	} {
		_, err := env.Plan(ctx, c.req)
		if !errors.Is(err, c.want) || !strings.Contains(fmt.Sprint(err), c.msg) {
			t.Errorf("%+v: %v, want %v containing %q", c.req, err, c.want, c.msg)
		}
	}
	// the REST side: switch references and error mapping
	for s, want := range map[string]uint64{"aws/vm1": 0x101, "0x101": 0x101, "0000000000000101": 0x101, "00:00:00:00:00:00:01:01": 0x101} {
		r, err := h.migrationRequest(api.MigrationRequest{Switch: s, To: "gcp"})
		if err != nil || r.Switch != want {
			t.Errorf("switch %q: %x %v", s, r.Switch, err)
		}
	}
	for _, bad := range []api.MigrationRequest{{Switch: "aws/vm7", To: "gcp"}, {Switch: "zz", To: "gcp"}, {Switch: "0x101", To: "gcp", FailAfter: "nope"}, {Switch: "0x101", To: "gcp", FailAfter: "commit"}} {
		if _, err := h.migrationRequest(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := h.StartMigration(ctx, api.MigrationRequest{Switch: "aws/vm1", To: "gcp"}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("start before Run: %v", err)
	}
}

// TestMigrationAdmission: a host plugged in another cloud than its
// topology says is ignored, unless admitted; Commit rewrites the topology
// (cloud only: the virtual view stays) and withdraws the admission.
func TestMigrationAdmission(t *testing.T) {
	h, st, env := newMigrationTest(t)
	ctx := ctxT(t)
	hst := migrate.Host{IfaceID: "tenant1/h1", Port: "h-h1"}
	if err := st.PutBinding(store.Binding{IfaceID: "tenant1/h1", Site: "gcp", VM: "vm1", Bridge: "vm1", DPID: 0x201, PortName: "h-h1", OFPort: 9}); err != nil {
		t.Fatal(err)
	}
	used := func() bool {
		s, err := h.loadState("")
		if err != nil {
			t.Fatal(err)
		}
		b, ok := s.bindings["tenant1/h1"]
		return ok && b.DPID == 0x201
	}
	if used() {
		t.Fatal("a binding in gcp is used while the topology says aws")
	}
	if err := env.Admit([]migrate.Host{hst}, "gcp"); err != nil {
		t.Fatal(err)
	}
	if !used() {
		t.Fatal("admitted binding not used")
	}
	if ok, err := env.bound("tenant1/h1", 0x201); !ok || err != nil {
		t.Errorf("bound: %v %v", ok, err)
	}
	if err := env.WaitBound(ctx, hst, 0x201); err != nil {
		t.Errorf("WaitBound: %v", err)
	}
	env.Withdraw([]migrate.Host{hst})
	if used() {
		t.Fatal("withdrawn binding still used")
	}
	before, err := h.Tenant(ctx, "tenant1")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Admit([]migrate.Host{hst}, "gcp"); err != nil {
		t.Fatal(err)
	}
	p := migrate.Plan{Target: migrate.Bridge{DPID: 0x201, Site: "gcp", VM: "vm1"}, Hosts: []migrate.Host{hst}}
	if err := env.Commit(ctx, p); err != nil {
		t.Fatal(err)
	}
	after, err := h.Tenant(ctx, "tenant1")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range after.Topology.Hosts {
		if x.Name == "h1" && x.Cloud != "gcp" {
			t.Errorf("h1 placed in %q after commit", x.Cloud)
		}
	}
	if len(after.Topology.Switches) != len(before.Topology.Switches) || after.TenantID != before.TenantID {
		t.Errorf("virtual view changed: %+v -> %+v", before.Topology.Switches, after.Topology.Switches)
	}
	if h.admittedSites() != nil {
		t.Errorf("admission left after commit: %v", h.admittedSites())
	}
	if !used() {
		t.Error("binding in gcp not used after commit")
	}
	// Clonable: tenant-app entries only
	if env.Clonable(0x5359000000000001) || env.Clonable(uint64(0x0200)<<48|cookieUnicast) || env.Clonable(0x1234) {
		t.Error("hypervisor, native learning or foreign entries are clonable")
	}
}
