//go:build integration

package hypervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/hypervisor/vnet"
)

// What the lab's live migration shows of the tenant's apps (issue 6, "the
// tenant's apps never see a topology change"): TestLiveMigration runs
// tenant tb's reactive learning app behind appEvents, which records every
// SwitchUp, SwitchDown and OFPT_PORT_STATUS the app gets on its virtual
// switch, and checks that none arrives from just before the migration to
// its end, and that tb's virtual ports keep their numbers and states, also
// right after each host's interface moved. It also checks that iperf3's
// stream did not stall (every 1-s interval carried data, sent and
// received, but for what its own host's move explains).

// appEvents records the topology events a tenant's app gets, with their
// time.
type appEvents struct {
	mu  sync.Mutex
	evs []string
}

func (r *appEvents) add(format string, a ...any) {
	r.mu.Lock()
	r.evs = append(r.evs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

// mark returns the number of events so far.
func (r *appEvents) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.evs)
}

// since returns the events after mark m.
func (r *appEvents) since(m int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs[m:])
}

// recordingApp is an app (the tenant's real one, in a controller.Chain)
// whose topology events are recorded before it gets them.
type recordingApp struct {
	*controller.Chain
	name string
	ev   *appEvents
}

func (a *recordingApp) Name() string { return a.name }
func (a *recordingApp) SwitchUp(ctx context.Context, sw controller.Switch) {
	a.ev.add("switch-up %v", sw)
	a.Chain.SwitchUp(ctx, sw)
}
func (a *recordingApp) SwitchDown(ctx context.Context, sw controller.Switch) {
	a.ev.add("switch-down %v", sw)
	a.Chain.SwitchDown(ctx, sw)
}
func (a *recordingApp) PortStatus(ctx context.Context, sw controller.Switch, ps *controller.PortStatus) {
	a.ev.add("port-status %v port %d reason %v state %v", sw, ps.Port.PortNo, ps.Reason, ps.Port.State)
	a.Chain.PortStatus(ctx, sw, ps)
}

// recordReactive makes the hypervisor's "learning-reactive" app record its
// topology events in ev (a hypervisor.Config option for startSkmLab).
func recordReactive(ev *appEvents) func(*hypervisor.Config) {
	return func(c *hypervisor.Config) {
		reg := vnet.Builtin()
		build := reg[vnet.ReactiveLearning]
		reg[vnet.ReactiveLearning] = func(o apps.Options) (controller.App, error) {
			a, err := build(o)
			if err != nil {
				return nil, err
			}
			ch, err := controller.NewChain(a)
			if err != nil {
				return nil, err
			}
			return &recordingApp{Chain: ch, name: a.Name(), ev: ev}, nil
		}
		c.TenantApps = reg
	}
}

// portView renders the ports an app sees on the tenant's virtual
// switches: number, name and state.
func portView(rt *vnet.Tenant) string {
	var out []string
	for _, sw := range rt.Switches() {
		for _, p := range sw.Ports() {
			out = append(out, fmt.Sprintf("%s:%d %s %v", sw.Name(), p.PortNo, p.Name, p.State))
		}
	}
	return strings.Join(out, ", ")
}

// samplingMover runs m and then records rt's port view (right after a
// host's interface moved, before the migration waits for its binding).
func samplingMover(m migrate.Mover, rt *vnet.Tenant, out *[]string) migrate.Mover {
	return migrate.MoverFunc(func(ctx context.Context, h migrate.Host, from, to migrate.Bridge) error {
		err := m.MoveHost(ctx, h, from, to)
		*out = append(*out, h.IfaceID+": "+portView(rt))
		return err
	})
}

// checkAppEvents fails if tenant tb's app got a topology event after mark
// m (the migration's start), or if its ports changed (before, and samples
// taken while hosts moved).
func checkAppEvents(t *testing.T, ev *appEvents, m int, rt *vnet.Tenant, before string, samples []string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // events are delivered asynchronously
	if got := ev.since(m); len(got) != 0 {
		t.Errorf("tb's app saw topology events during the migration:\n%s", strings.Join(got, "\n"))
	} else {
		t.Logf("tb's app saw no SwitchUp, SwitchDown or port-status during the migration (%d before it)", m)
	}
	for _, s := range samples {
		if _, v, _ := strings.Cut(s, ": "); v != before {
			t.Errorf("tb's virtual ports right after a host moved: %s, want %s", s, before)
		}
	}
	if v := portView(rt); v != before {
		t.Errorf("tb's virtual ports after the migration: %s, want %s", v, before)
	}
	if !strings.Contains(before, ofp.PortStateLive.String()) {
		t.Errorf("tb's virtual ports before the migration: %s, want live host ports", before)
	}
}

// iperfIntervals returns, from iperf3's JSON output, every interval of
// at least 0.5 s (client side "intervals", i.e. sent, and the server's,
// i.e. received, when --get-server-output was given and the server ran
// with -J) as "side start-end Mbit/s" strings, and the longest run of
// consecutive intervals of one side that carried nothing, in seconds.
func iperfIntervals(t *testing.T, out string) ([]string, float64) {
	t.Helper()
	type ivs []struct {
		Sum struct {
			Start         float64 `json:"start"`
			End           float64 `json:"end"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum"`
	}
	var r struct {
		Intervals ivs `json:"intervals"`
		Server    struct {
			Intervals ivs `json:"intervals"`
		} `json:"server_output_json"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Errorf("iperf3 JSON: %v", err)
		return nil, 0
	}
	var lines []string
	longest := 0.0
	for _, side := range []struct {
		name string
		ivs  ivs
	}{{"sent", r.Intervals}, {"received", r.Server.Intervals}} {
		run := 0.0
		for _, iv := range side.ivs {
			s := iv.Sum
			if s.Seconds < 0.5 {
				continue
			}
			lines = append(lines, fmt.Sprintf("%s %.1f-%.1f s %.2f Mbit/s", side.name, s.Start, s.End, s.BitsPerSecond/1e6))
			if s.BitsPerSecond > 0 {
				run = 0
				continue
			}
			run += s.Seconds
			longest = max(longest, run)
		}
	}
	return lines, longest
}

// checkIperfStall fails if iperf3's stream stalled: an interval of 1 s
// that carried nothing, unless the stream's own host was moving. Its
// interface is off for its move (move, as the migration reported it), and
// TCP's retransmission backoff (RTO at least 200 ms, doubling, RFC 6298)
// resumes within about as long again after it comes back: a stall of up
// to 2*move+0.2 s, i.e. that many whole empty intervals, is the move's; a
// longer one (or any, for a move under 0.4 s) is not.
func checkIperfStall(t *testing.T, p *bgIperf, move time.Duration) {
	t.Helper()
	lines, stall := iperfIntervals(t, p.out.String())
	allowed := float64(int((2*move + 200*time.Millisecond).Seconds()))
	t.Logf("iperf3 intervals (longest stall %.1f s, %.0f s allowed by its host's %v move): %s", stall, allowed, move, strings.Join(lines, "; "))
	if len(lines) == 0 {
		t.Errorf("iperf3 reported no interval")
	}
	if stall > allowed+0.5 {
		t.Errorf("iperf3 stalled %.1f s (intervals without data); its host's move took %v (%.0f s allowed)", stall, move, allowed)
	}
}
