package hypervisor

import (
	"testing"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// TestTenantAppsReplayedAfterRestart: an edge bridge that reconnects with
// an empty flow table (an ovs-vswitchd restart) gets the hypervisor's
// entries from the reconcile and the tenant app's entries from the replay
// that follows it; a full reconcile (the audit) before and after leaves
// the app's entries alone and finds nothing to do.
func TestTenantAppsReplayedAfterRestart(t *testing.T) {
	h, _, id := startRecTenant(t, nil)
	ctx := ctxT(t)
	f := newFlowSwitch(0x101)
	h.SwitchUp(ctx, f)
	s1, ok := h.TenantAppRuntime("tenant2").Switch(topology.DeriveDPID("s1"))
	if !ok {
		t.Fatal("no virtual switch s1")
	}
	if err := s1.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd, Cookie: 0x77, Priority: 9, IdleTimeout: 60, Buffer: ofp.NoBuffer,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(mustMAC(t, "00:00:00:00:00:02"))}},
		Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(2))}}); err != nil {
		t.Fatal(err)
	}
	appEntries := func(sw *flowSwitch) map[string]string {
		t.Helper()
		sw.mu.Lock()
		defer sw.mu.Unlock()
		out := map[string]string{}
		for k, e := range sw.table {
			if e.Cookie == pipeline.TenantCookie(id, 0x77) {
				c, err := e.Canonical()
				if err != nil {
					t.Fatal(err)
				}
				out[k] = c
			}
		}
		return out
	}
	want := appEntries(f)
	if len(want) == 0 {
		t.Fatal("the app's entry did not reach the bridge")
	}
	if _, err := h.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := appEntries(f); len(got) != len(want) {
		t.Fatalf("a full reconcile left %d of the app's %d physical entries", len(got), len(want))
	}

	// ovs-vswitchd restarts: the bridge comes back on a new session, empty.
	close(f.done)
	h.SwitchDown(ctx, f)
	g := newFlowSwitch(0x101)
	h.SwitchUp(ctx, g)
	got := appEntries(g)
	if len(got) != len(want) {
		t.Fatalf("after the restart the bridge holds %d of the app's %d physical entries", len(got), len(want))
	}
	for k, c := range want {
		if got[k] != c {
			t.Errorf("replayed entry %x differs from the one installed", k)
		}
	}
	if len(g.owned(t, h)) == 0 {
		t.Error("the reconcile did not restore the hypervisor's entries")
	}
	mods := g.mods
	plans, err := h.Resync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := plans[0x101]; !p.Empty() || g.mods != mods {
		t.Errorf("full reconcile after the replay: %d adds, %d deletes, %d flow-mods; want nothing to do", len(p.Add), len(p.Delete), g.mods-mods)
	}
	if len(appEntries(g)) != len(want) {
		t.Error("the full reconcile after the replay removed the app's entries")
	}

	// While a snapshot restore holds the bridge, a reconnect replays
	// nothing (the restore needs the table clean); once released, the next
	// session gets the entries again.
	release := h.holdReplays([]infra.Switch{{DPID: 0x101}})
	close(g.done)
	h.SwitchDown(ctx, g)
	r := newFlowSwitch(0x101)
	h.SwitchUp(ctx, r)
	if n := len(appEntries(r)); n != 0 {
		t.Errorf("a held bridge got %d of the app's entries", n)
	}
	release()
	close(r.done)
	h.SwitchDown(ctx, r)
	r2 := newFlowSwitch(0x101)
	h.SwitchUp(ctx, r2)
	if n := len(appEntries(r2)); n != len(want) {
		t.Errorf("after the hold: %d of the app's %d entries replayed", n, len(want))
	}
}
