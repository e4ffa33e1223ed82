package hypervisor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// storeMover is a Mover for the stub fabric: "moving" a host stores its
// binding on the destination bridge, as the OVSDB watch would on seeing
// its interface there.
func storeMover(st *store.Store) migrate.MoverFunc {
	return func(_ context.Context, hst migrate.Host, _, to migrate.Bridge) error {
		return st.PutBinding(store.Binding{IfaceID: hst.IfaceID, Site: to.Site, VM: to.VM, Bridge: to.Bridge,
			DPID: topology.DPID(to.DPID), PortName: hst.Port, OFPort: 5})
	}
}

// restarted returns a new Hypervisor on st (the same infrastructure) with
// stub sessions for the VM bridges, as after a restart of the daemon.
func restarted(t *testing.T, st *store.Store) *Hypervisor {
	t.Helper()
	h, err := New(Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: (&fakeFabric{}).dial})
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	for _, d := range []uint64{0x101, 0x102, 0x201} {
		h.switches[d] = stubSwitch{dpid: controller.DPID(d)}
	}
	h.mu.Unlock()
	return h
}

// abandonAt runs h.Migrate of aws/vm1 to gcp in the background and blocks
// it for good when stop says so (a crash: the process is gone, h is never
// used again while the test looks).
func abandonAt(t *testing.T, h *Hypervisor, st *store.Store, stop func(migrate.Event) bool) {
	t.Helper()
	stuck, hang := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go h.Migrate(context.Background(), migrate.Request{Switch: 0x101, To: "gcp"}, migrate.Options{Mover: storeMover(st), //nolint:errcheck
		HostTimeout: 5 * time.Second,
		Progress: func(e migrate.Event) {
			if stop(e) {
				once.Do(func() { close(stuck); <-hang })
			}
		}})
	select {
	case <-stuck:
	case <-time.After(10 * time.Second):
		t.Fatal("the migration did not reach the crash point")
	}
	t.Cleanup(func() { close(hang) })
}

// TestMigrationRecoveredAfterRestart: the daemon "dies" after the host
// moved to gcp (before the commit); a new hypervisor on the same store
// finds the record unfinished, moves the host back (its Mover), and marks
// the record interrupted, rolled back; the topology still places the host
// in aws and no admission is left. The history is listed by the new
// hypervisor.
func TestMigrationRecoveredAfterRestart(t *testing.T) {
	h, st, _ := newMigrationTest(t)
	abandonAt(t, h, st, func(e migrate.Event) bool { return e.Step == migrate.StepMove && e.Status == migrate.StatusDone })
	if b, _ := st.GetBinding("tenant1/h1"); b.DPID != 0x201 {
		t.Fatalf("host not on gcp at the crash: %+v", b)
	}
	list, _ := st.ListMigrations()
	if len(list) != 1 || list[0].Final || list[0].State != "running" {
		t.Fatalf("stored at the crash: %+v", list)
	}

	h2 := restarted(t, st)
	h2.ConfigureMigrations(migrate.Options{Mover: storeMover(st), HostTimeout: 5 * time.Second})
	ctx := ctxT(t)
	h2.recoverMigrations(ctx)
	h2.manager().Wait()
	ms, err := h2.Migrations(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatalf("migrations after restart: %+v %v", ms, err)
	}
	m := ms[0]
	if m.State != "interrupted" || m.Recovery != "rolled-back" || !strings.Contains(m.Error, "skyvisor stopped during step move-hosts") ||
		m.Finished == nil || !m.Done() {
		t.Errorf("record: state %s recovery %s error %q", m.State, m.Recovery, m.Error)
	}
	if b, _ := st.GetBinding("tenant1/h1"); b.DPID != 0x101 {
		t.Errorf("host not moved back: %+v", b)
	}
	if h2.admittedSites() != nil {
		t.Errorf("admission left: %v", h2.admittedSites())
	}
	tn, err := h2.Tenant(ctx, "tenant1")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range tn.Topology.Hosts {
		if x.Name == "h1" && x.Cloud != "aws" {
			t.Errorf("h1 placed in %q after the rollback", x.Cloud)
		}
	}
	if lg, _ := st.MigrationLog(m.ID); len(lg) != 0 {
		t.Errorf("write-ahead log kept: %d entries", len(lg))
	}
	if got, err := h2.Migration(ctx, m.ID); err != nil || got.Recovery != "rolled-back" {
		t.Errorf("get: %+v %v", got, err)
	}
	if _, err := h2.Migration(ctx, "mig-nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}

// TestMigrationCompletedAfterRestart: the daemon dies right after the
// commit (the record still says running): the recovery finds the
// placement committed and completes the migration.
func TestMigrationCompletedAfterRestart(t *testing.T) {
	h, st, _ := newMigrationTest(t)
	abandonAt(t, h, st, func(e migrate.Event) bool { return e.Step == migrate.StepCommit && e.Status == migrate.StatusDone })
	h2 := restarted(t, st)
	ctx := ctxT(t)
	h2.recoverMigrations(ctx)
	h2.manager().Wait()
	ms, _ := h2.Migrations(ctx)
	if len(ms) != 1 || ms[0].State != "interrupted" || ms[0].Recovery != "done" || len(ms[0].Moved) != 1 {
		t.Fatalf("record: %+v", ms)
	}
	if b, _ := st.GetBinding("tenant1/h1"); b.DPID != 0x201 {
		t.Errorf("host moved back after a committed migration: %+v", b)
	}
}

// TestMigrateBusy: the synchronous Migrate refuses, with the Manager's
// busy error, while another migration of the same bridge runs; both
// paths are recorded in the store.
func TestMigrateBusy(t *testing.T) {
	h, st, _ := newMigrationTest(t)
	ctx := ctxT(t)
	release, entered := make(chan struct{}), make(chan struct{})
	mv := storeMover(st)
	done := make(chan error, 1)
	go func() {
		_, err := h.Migrate(ctx, migrate.Request{Switch: 0x101, To: "gcp"}, migrate.Options{HostTimeout: 5 * time.Second,
			Mover: migrate.MoverFunc(func(ctx context.Context, hst migrate.Host, from, to migrate.Bridge) error {
				close(entered)
				<-release
				return mv(ctx, hst, from, to)
			})})
		done <- err
	}()
	<-entered
	_, err := h.Migrate(ctx, migrate.Request{Switch: 0x101, To: "gcp"}, migrate.Options{Mover: mv})
	if !errors.Is(err, migrate.ErrBusy) {
		t.Errorf("second Migrate while the first runs: %v", err)
	}
	if ms, _ := h.Migrations(ctx); len(ms) != 1 || ms[0].State != "running" || ms[0].Awaiting == nil {
		t.Errorf("while running: %+v", ms)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ms, _ := h.Migrations(ctx)
	if len(ms) != 1 || ms[0].State != "done" {
		t.Fatalf("after: %+v", ms)
	}
	// the history survives a restart
	if ms, _ := restarted(t, st).Migrations(ctx); len(ms) != 1 || ms[0].ID == "" || ms[0].State != "done" || len(ms[0].Steps) != len(migrate.Steps()) {
		t.Errorf("after restart: %+v", ms)
	}
}
