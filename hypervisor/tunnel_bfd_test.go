package hypervisor

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/tunnels"
)

// physTunnels returns the gateway tunnels of PhysicalTopology by name.
func physTunnels(t *testing.T, h *Hypervisor) map[string]api.GatewayTunnel {
	t.Helper()
	pt, err := h.PhysicalTopology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]api.GatewayTunnel{}
	for _, gt := range pt.Tunnels {
		out[gt.Name] = gt
	}
	return out
}

// healthCheck returns the named check of Health and the overall status
// (degraded in these tests anyway: the fake fabric connects no switch).
func healthCheck(h *Hypervisor, name string) (api.HealthCheck, api.HealthStatus, bool) {
	hl := h.Health(context.Background())
	for _, c := range hl.Checks {
		if c.Name == name {
			return c, hl.Status, true
		}
	}
	return api.HealthCheck{}, hl.Status, false
}

// bfdReported waits until liveness has seen site's port toward peer in
// the given state.
func bfdReported(t *testing.T, h *Hypervisor, site, peer string, up bool) {
	t.Helper()
	waitFor(t, "bfd "+site+"->"+peer, func() bool {
		for _, s := range h.TunnelStatuses() {
			if s.Site == site && s.Peer == peer {
				return s.BFD.Reported() && s.BFD.Up() == up
			}
		}
		return false
	})
}

// TestPhysicalTopologyBFD: GET /v1/topology/physical's tunnels carry their
// BFD state (summary and both ends) and whether they are in the tree; a
// tree tunnel down makes the "bfd" health check degraded until it is
// routed around; then the routed-around pair is listed with in_tree false
// (its probe ports, BFD down) and health is ok again, naming it.
func TestPhysicalTopologyBFD(t *testing.T) {
	// DownUpdates/DownAfter large: a one-ended failure is never acted on,
	// so the degraded state can be observed.
	h, _, ff, _ := newLiveTest(t, LivenessConfig{DownUpdates: 1000, DownAfter: time.Hour, UpAfter: time.Hour})
	events, stop := h.LivenessEvents()
	defer stop()
	for _, p := range [][2]string{{"aws", "gcp"}, {"gcp", "aws"}, {"gcp", "azure"}, {"azure", "gcp"}} {
		bfd(h, ff, p[0], p[1], true)
		bfdReported(t, h, p[0], p[1], true)
	}
	tn := physTunnels(t, h)
	if len(tn) != 2 {
		t.Fatalf("tunnels %+v, want the MST's 2", tn)
	}
	for _, name := range []string{"aws~gcp", "azure~gcp"} {
		gt, ok := tn[name]
		if !ok || !gt.Up || !gt.InTree || gt.BFD == nil || gt.BFD.State != "up" || !gt.BFD.Forwarding || gt.BFD.Diagnostic != "" ||
			len(gt.BFD.Ends) != 2 || gt.BFD.Ends[0].Site != gt.A || gt.BFD.Ends[1].Site != gt.B ||
			gt.BFD.Ends[0].State != "up" || !gt.BFD.Ends[1].Forwarding || gt.BFD.Ends[1].RemoteState != "up" {
			t.Fatalf("tunnel %s: %+v (bfd %+v)", name, gt, gt.BFD)
		}
	}
	c, status, ok := healthCheck(h, "bfd")
	if !ok || c.Status != api.HealthOK || c.Message != "2 of 2 tree tunnels up" {
		t.Fatalf("health %s, bfd check %+v", status, c)
	}

	// One end of gcp~azure reports the session down: degraded, not
	// routed around (debounce).
	bfd(h, ff, "azure", "gcp", false)
	bfdReported(t, h, "azure", "gcp", false)
	gt := physTunnels(t, h)["azure~gcp"]
	if !gt.InTree || gt.BFD == nil || gt.BFD.State != "down" || gt.BFD.Forwarding || gt.BFD.Diagnostic != "Control Detection Time Expired" ||
		gt.BFD.Ends[0].Site != "azure" || gt.BFD.Ends[0].State != "down" || gt.BFD.Ends[1].State != "up" {
		t.Fatalf("azure~gcp one end down: %+v (bfd %+v)", gt, gt.BFD)
	}
	c, status, _ = healthCheck(h, "bfd")
	if c.Status != api.HealthDegraded || status != api.HealthDegraded ||
		c.Message != "1 of 2 tree tunnels down: azure~gcp (azure: down (Control Detection Time Expired), remote up)" {
		t.Fatalf("health %s, bfd check %+v", status, c)
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected liveness decision %+v", ev)
	default:
	}
}

// TestPhysicalTopologyRoutedAround: a tree tunnel BFD declares down is
// routed around: PhysicalTopology lists it with in_tree false and BFD
// down (its probe ports stay), the detour with in_tree true; the "bfd"
// check is ok again and names the pair routed around.
func TestPhysicalTopologyRoutedAround(t *testing.T) {
	h, _, ff, _ := newLiveTest(t, LivenessConfig{UpAfter: time.Hour})
	events, stop := h.LivenessEvents()
	defer stop()
	for _, p := range [][2]string{{"aws", "gcp"}, {"gcp", "aws"}, {"gcp", "azure"}, {"azure", "gcp"}} {
		bfd(h, ff, p[0], p[1], true)
	}
	bfd(h, ff, "gcp", "azure", false)
	bfd(h, ff, "azure", "gcp", false)
	ev := nextEvent(t, events, 5*time.Second)
	if !ev.Down || ev.Pair != tunnels.MakePair("gcp", "azure") || ev.Err != nil {
		t.Fatalf("event %+v", ev)
	}
	tn := physTunnels(t, h)
	if len(tn) != 3 {
		t.Fatalf("tunnels %+v, want the tree's 2 and the probe", tn)
	}
	probe, detour := tn["azure~gcp"], tn["aws~azure"]
	if probe.InTree || !probe.Up || probe.BFD == nil || probe.BFD.State != ovsdb.BFDStateDown || probe.BFD.Forwarding {
		t.Fatalf("probe %+v (bfd %+v)", probe, probe.BFD)
	}
	if !detour.InTree || !tn["aws~gcp"].InTree {
		t.Fatalf("tree tunnels %+v", tn)
	}
	// The detour's ports have no BFD report yet in the fake: not counted.
	c, status, _ := healthCheck(h, "bfd")
	if c.Status != api.HealthOK || !strings.HasSuffix(c.Message, "; routed around: azure~gcp") ||
		!strings.HasPrefix(c.Message, "1 of 2 tree tunnels up, 1 not reported yet") {
		t.Fatalf("health %s, bfd check %+v", status, c)
	}
}

// TestPhysicalTopologyBFDDisabled: without liveness no tunnel has a BFD
// state and there is no "bfd" health check.
func TestPhysicalTopologyBFDDisabled(t *testing.T) {
	h, _, _, _ := newLiveTest(t, LivenessConfig{Disabled: true})
	for name, gt := range physTunnels(t, h) {
		if gt.BFD != nil || !gt.InTree {
			t.Fatalf("tunnel %s: %+v", name, gt)
		}
	}
	if c, _, ok := healthCheck(h, "bfd"); ok {
		t.Fatalf("bfd check %+v with liveness disabled", c)
	}
}

// TestNewDaemonLiveness: DaemonConfig.Liveness reaches the Hypervisor's
// Config.Liveness (zero fields take the defaults; the BFD settings are
// what the provisioner puts on every tunnel port), and out-of-range values
// fail NewDaemon naming the key.
func TestNewDaemonLiveness(t *testing.T) {
	cfg := DaemonConfig{Infra: "infra/testdata/lab-inventory.json", StateDir: filepath.Join(t.TempDir(), "state"),
		Liveness: DaemonLiveness{BFDMinRx: 300 * time.Millisecond, BFDMult: 4, UpAfter: 7 * time.Second}}
	d, err := NewDaemon(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	b := d.tunnelBFD()
	lc := d.liveCfg()
	d.store.Close()
	if b == nil || *b != (tunnels.BFDConfig{MinRx: 300 * time.Millisecond, MinTx: DefaultBFDMinTx, Mult: 4}) ||
		lc.UpAfter != 7*time.Second || lc.DownAfter != DefaultTunnelDownAfter {
		t.Fatalf("bfd %+v, liveness %+v", b, lc)
	}
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Liveness = DaemonLiveness{Disabled: true}
	if d, err = NewDaemon(cfg, quietLogger()); err != nil {
		t.Fatal(err)
	}
	b = d.tunnelBFD()
	d.store.Close()
	if b != nil {
		t.Fatalf("disabled: bfd %+v", b)
	}
	for _, c := range []struct {
		l    DaemonLiveness
		want string
	}{
		{DaemonLiveness{BFDMult: 256}, "bfd_mult"},
		{DaemonLiveness{BFDMinTx: time.Microsecond}, "min_tx"},
		{DaemonLiveness{DownAfter: -time.Second}, "liveness.down_after"},
		{DaemonLiveness{DownUpdates: -1}, "liveness.down_updates"},
	} {
		cfg.Liveness = c.l
		if _, err := NewDaemon(cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.l, err, c.want)
		}
	}
}
