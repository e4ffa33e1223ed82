package hypervisor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/hypervisor/vnet"
)

// topoRecorder is a tenant app that records the topology events it gets
// on the virtual view (SwitchUp, SwitchDown, OFPT_PORT_STATUS): what a
// tenant's app would see of a live migration.
type topoRecorder struct {
	mu  sync.Mutex
	evs []string
}

func (r *topoRecorder) Name() string { return "topo-rec" }
func (r *topoRecorder) add(s string) {
	r.mu.Lock()
	r.evs = append(r.evs, s)
	r.mu.Unlock()
}
func (r *topoRecorder) SwitchUp(_ context.Context, sw controller.Switch) {
	r.add(fmt.Sprintf("up %v", sw.DPID()))
}
func (r *topoRecorder) SwitchDown(_ context.Context, sw controller.Switch) {
	r.add(fmt.Sprintf("down %v", sw.DPID()))
}
func (r *topoRecorder) PortStatus(_ context.Context, sw controller.Switch, ps *controller.PortStatus) {
	r.add(fmt.Sprintf("port-status %v port %d reason %v state %v", sw.DPID(), ps.Port.PortNo, ps.Reason, ps.Port.State))
}

// events returns the events so far.
func (r *topoRecorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// settle waits until the recorder's event count has not changed for
// 100 ms (the virtual switches deliver asynchronously) and returns them.
func (r *topoRecorder) settle() []string {
	n := -1
	for {
		time.Sleep(100 * time.Millisecond)
		evs := r.events()
		if len(evs) == n {
			return evs
		}
		n = len(evs)
	}
}

// newMigrationEventsTest: testInfra, tunnels converged, tenant1 of
// two-tenants.json running the recorder and the reactive learning app on
// its virtual view (switch "big"), h1 bound on aws/vm1 (0x101) port 5,
// recording sessions for the VM bridges. It waits for the recorder's
// SwitchUp.
func newMigrationEventsTest(t *testing.T) (*Hypervisor, *store.Store, *topoRecorder) {
	t.Helper()
	st, err := store.Open(t.TempDir()+"/skme.db", store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &topoRecorder{}
	reg := vnet.Builtin()
	reg["topo-rec"] = func(apps.Options) (controller.App, error) { return rec, nil }
	h, err := New(Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: (&fakeFabric{}).dial, TenantApps: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.closeTenantApps)
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	for _, d := range []uint64{0x101, 0x102, 0x201} {
		h.switches[d] = &taSwitch{dpid: controller.DPID(d), done: make(chan struct{})}
	}
	h.mu.Unlock()
	if err := st.PutBinding(store.Binding{IfaceID: "tenant1/h1", Site: "aws", VM: "vm1", Bridge: "vm1", DPID: 0x101, PortName: "h-h1", OFPort: 5}); err != nil {
		t.Fatal(err)
	}
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	ts[0].Apps = []string{"topo-rec", vnet.ReactiveLearning}
	if _, err := h.ApplyTenants(ctx, ts); err != nil {
		t.Fatal(err)
	}
	if evs := rec.settle(); len(evs) != 1 || evs[0][:2] != "up" {
		t.Fatalf("events after apply: %q, want one SwitchUp", evs)
	}
	return h, st, rec
}

// bindOn is the lab's lab.Move as the hypervisor sees it: the host's
// interface leaves bridge from (its binding is dropped, the interface
// watch's refresh runs), then appears on bridge to (bound; Migrate's
// WaitBound refreshes). between runs while the host is bound nowhere.
func bindOn(h *Hypervisor, st *store.Store, between func(migrate.Host)) migrate.Mover {
	ports := map[uint64]uint32{0x101: 5, 0x201: 9}
	return migrate.MoverFunc(func(ctx context.Context, hst migrate.Host, from, to migrate.Bridge) error {
		if err := st.DeleteBinding(hst.IfaceID); err != nil {
			return err
		}
		if err := h.refresh(ctx); err != nil {
			return err
		}
		if between != nil {
			between(hst)
		}
		return st.PutBinding(store.Binding{IfaceID: hst.IfaceID, Site: to.Site, VM: to.VM, Bridge: to.Bridge,
			DPID: topology.DPID(to.DPID), PortName: hst.Port, OFPort: ports[to.DPID]})
	})
}

// portsOf returns the virtual ports of tenant1's switch "big" as its apps
// see them.
func portsOf(t *testing.T, h *Hypervisor) []ofp.Port {
	t.Helper()
	rt := h.TenantAppRuntime("tenant1")
	if rt == nil || len(rt.Switches()) != 1 {
		t.Fatal("tenant1 has no runtime with one virtual switch")
	}
	return rt.Switches()[0].Ports()
}

// TestMigrationTenantAppsSeeNoTopologyChange (issue 6, "the tenant's apps
// never see a topology change"): while a live migration moves h1 from
// aws/vm1 to gcp/vm1 — unbound on the source, then bound on the target —
// the tenant's apps get no SwitchUp, SwitchDown or OFPT_PORT_STATUS, and
// the virtual ports keep their numbers and states, also while h1 is
// bound nowhere; the same holds for a migration that rolls back after
// the host moved (it moves back). A host that is really gone after the
// migration ended is reported link-down once.
func TestMigrationTenantAppsSeeNoTopologyChange(t *testing.T) {
	h, st, rec := newMigrationEventsTest(t)
	ctx := ctxT(t)
	before := portsOf(t, h)
	if p := before[0]; p.PortNo != 1 || p.State != ofp.PortStateLive {
		t.Fatalf("h1's virtual port before the migration: %+v, want port 1 live", p)
	}
	var during [][]ofp.Port
	mover := bindOn(h, st, func(migrate.Host) { during = append(during, portsOf(t, h)) })

	res, err := h.Migrate(ctx, migrate.Request{Switch: 0x101, To: "gcp"}, migrate.Options{Mover: mover})
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if len(res.Moved) != 1 || len(during) != 1 {
		t.Fatalf("moved %v, %d moves", res.Moved, len(during))
	}
	if b, err := st.GetBinding("tenant1/h1"); err != nil || b.DPID != 0x201 {
		t.Fatalf("h1 after the migration: %+v %v, want bound on gcp/vm1", b, err)
	}
	if evs := rec.settle(); len(evs) != 1 {
		t.Errorf("the tenant's apps saw a topology change during the migration: %q", evs[1:])
	}
	if !slices.EqualFunc(during[0], before, portsEqual) {
		t.Errorf("virtual ports while h1 was bound nowhere:\n%+v\nwant\n%+v", during[0], before)
	}
	if after := portsOf(t, h); !slices.EqualFunc(after, before, portsEqual) {
		t.Errorf("virtual ports after the migration:\n%+v\nwant\n%+v", after, before)
	}

	// Back to aws, failing after the hosts moved: h1 moves to aws/vm1 and
	// back to gcp/vm1 in the rollback; still nothing.
	during = nil
	_, err = h.Migrate(ctx, migrate.Request{Switch: 0x201, To: "aws", VM: "vm1"}, migrate.Options{Mover: mover, FailAt: migrate.StepUnfreeze})
	if err == nil {
		t.Fatal("a migration failing after the unfreeze succeeded")
	}
	if b, err := st.GetBinding("tenant1/h1"); err != nil || b.DPID != 0x201 {
		t.Fatalf("h1 after the rollback: %+v %v, want bound on gcp/vm1", b, err)
	}
	if len(during) != 2 {
		t.Errorf("%d moves in a migration rolled back after the move, want 2", len(during))
	}
	if evs := rec.settle(); len(evs) != 1 {
		t.Errorf("the tenant's apps saw a topology change during a rolled-back migration: %q", evs[1:])
	}
	for i, ps := range during {
		if !slices.EqualFunc(ps, before, portsEqual) {
			t.Errorf("virtual ports during move %d of the rollback:\n%+v\nwant\n%+v", i, ps, before)
		}
	}

	// A real change is still reported: h1's interface goes away for good.
	if err := st.DeleteBinding("tenant1/h1"); err != nil {
		t.Fatal(err)
	}
	if err := h.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	evs := rec.settle()
	if len(evs) != 2 || evs[1] != fmt.Sprintf("port-status %v port 1 reason %v state %v", portsOfDPID(t, h), ofp.PortReasonModify, ofp.PortStateLinkDown) {
		t.Errorf("events after h1 went away: %q, want one link-down port-status", evs[1:])
	}
}

// portsEqual compares what an app sees of a port.
func portsEqual(a, b ofp.Port) bool {
	return a.PortNo == b.PortNo && a.State == b.State && a.Config == b.Config && a.Name == b.Name &&
		slices.Equal(a.HWAddr, b.HWAddr) && a.Curr == b.Curr && a.CurrSpeed == b.CurrSpeed
}

// portsOfDPID is the DPID of tenant1's virtual switch.
func portsOfDPID(t *testing.T, h *Hypervisor) controller.DPID {
	t.Helper()
	return h.TenantAppRuntime("tenant1").Switches()[0].DPID()
}
