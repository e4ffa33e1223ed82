package hypervisor

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/tunnels"
)

// TestConvergeTunnelMesh: with Config.TunnelMesh the 3 gateways get the
// full mesh (3 tunnels, 2 ports each), the desired state compiles over
// the cycle, and a second Converge sends no OVSDB transaction.
func TestConvergeTunnelMesh(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "skg.db"), store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ff := &fakeFabric{}
	h, err := New(Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: ff.dial, TunnelMesh: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	plan := h.Plan()
	if plan.Len() != 3 || plan.IsSpanningTree() == nil {
		t.Fatalf("plan %v: want the 3-tunnel full mesh", plan)
	}
	inf := h.Infrastructure()
	for _, s := range inf.Sites {
		ports, _ := ff.db(s.OVSDB).TunnelPorts(ctx, "gw")
		if len(ports) != 2 {
			t.Errorf("site %s: %d tunnel ports, want 2", s.Name, len(ports))
		}
	}
	if _, _, err := h.compute(""); err != nil {
		t.Fatalf("desired state over the mesh: %v", err)
	}
	before := ff.txns()
	if err := h.Converge(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ff.txns() - before; n != 0 {
		t.Errorf("second Converge sent %d transactions", n)
	}
}

// TestCostSources: the planning log counts the plan's tunnels by where
// their cost came from.
func TestCostSources(t *testing.T) {
	site := func(name string, n int) string {
		return fmt.Sprintf(`{"name":%q,"ovsdb":"tcp:127.0.0.1:%d","underlay_ip":"192.0.2.%d","gateway_bridge":"gw","gateway_dpid":%d}`, name, 6640+n, n, n)
	}
	inf, err := infra.Parse([]byte(`{"sites":[` + site("a", 1) + "," + site("b", 2) + "," + site("c", 3) + `],
		"costs":[{"a":"a","b":"b","rtt_ms":5},{"a":"b","b":"c","rtt_ms":7,"source":"measured"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	plan := tunnels.Plan{Sites: []string{"a", "b", "c"}, Tunnels: []tunnels.Tunnel{{A: "a", B: "b"}, {A: "b", B: "c"}, {A: "a", B: "c"}}}
	if got, want := costSources(inf, plan), "configured=1 default=1 measured=1"; got != want {
		t.Errorf("costSources = %q, want %q", got, want)
	}
}
