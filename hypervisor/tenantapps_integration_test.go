//go:build integration

package hypervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/vnet"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// startSkvLab is startSkrLab with this file's prefix ("skv<pid%100>") and
// the controller's own physical LLDP discovery registered after the
// hypervisor (probing every second), so the test can show physical and
// tenant discovery side by side. It returns the lab and the physical
// discovery app.
func startSkvLab(t *testing.T) (*skrLab, *discovery.App) {
	t.Helper()
	needLab(t)
	prefix := fmt.Sprintf("skv%02d", os.Getpid()%100)
	dir := filepath.Join(t.TempDir(), "lab")
	spec, err := lab.Parse([]byte(fmt.Sprintf(`{"prefix":%q,"state_dir":%q,"tunnel_type":"vxlan",
		"sites":[{"name":"aws","vms":1},{"name":"gcp","vms":1},{"name":"azure","vms":1}]}`, prefix, dir)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", strings.TrimPrefix(spec.Controller, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	upCtx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	inv, err := lab.Up(upCtx, spec)
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), dir); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		ln.Close()
		t.Fatalf("lab up: %v", err)
	}
	b, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	inf, err := infra.Parse(b)
	if err != nil {
		t.Fatalf("inventory as infrastructure: %v", err)
	}
	logw := io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	l := &skrLab{dir: dir, inv: inv, inf: inf, dbPath: filepath.Join(t.TempDir(), "skv.db"),
		log: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})), listen: spec.Controller}
	l.st, err = store.Open(l.dbPath, store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	l.acc = &acceptor{ln: ln}
	go l.acc.loop()
	t.Cleanup(func() {
		l.acc.stop()
		l.st.Close()
	})
	phys, err := discovery.New(discovery.Config{ProbeInterval: time.Second, LinkTimeout: 4 * time.Second, Logger: l.log})
	if err != nil {
		t.Fatal(err)
	}
	rec := &upRecorder{ups: map[controller.DPID]int{}}
	h, err := hypervisor.New(hypervisor.Config{Infra: inf, Store: l.st, Logger: l.log, AuditInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(controller.Config{Listen: l.listen, Logger: l.log}, h, rec, phys)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{h: h, rec: rec, c: c}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		if err := h.Run(in.ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	l.acc.mu.Lock()
	l.acc.cur = in
	l.acc.mu.Unlock()
	l.inst = in
	l.waitConnected(t, in, 45*time.Second)
	return l, phys
}

// skvDoc is the topology of tenant name with apps: three virtual switches
// in a line, s1 -(2:2)- s2 -(3:2)- s3, one per cloud, each with host
// hs[i] on port 1.
func skvDoc(name string, apps []string, hs []skrHost) string {
	aj, _ := json.Marshal(apps)
	var hosts []string
	for i, h := range hs {
		hosts = append(hosts, fmt.Sprintf(`{"name":%q,"mac":%q,"ip":%q,"switch":"s%d","port":1,"cloud":%q}`,
			h.name, h.mac, h.ip+"/24", i+1, h.cloud))
	}
	return fmt.Sprintf(`{"tenant":%q,"apps":%s,"switches":[{"name":"s1"},{"name":"s2"},{"name":"s3"}],
		"links":[{"a":{"switch":"s1","port":2},"b":{"switch":"s2","port":2}},{"a":{"switch":"s2","port":3},"b":{"switch":"s3","port":2}}],
		"hosts":[%s]}`, name, aj, strings.Join(hosts, ","))
}

// linkStrings renders links as "s1:2>s2:2", sorted.
func linkStrings(ls []api.TenantLink) []string {
	var out []string
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%s:%d>%s:%d", l.Src.Switch, l.Src.Port, l.Dst.Switch, l.Dst.Port))
	}
	slices.Sort(out)
	return out
}

// TestTenantAppsOnLab proves tenant apps on the virtual view on the real
// lab (3 clouds, real Open vSwitch, physical LLDP discovery running too):
//
//   - tenant "vdisc" (apps ["learning","discovery"]; 3 virtual switches
//     and 2 virtual links, one switch per cloud): its discovery app
//     reports exactly the 4 directed virtual links (REST GET
//     /v1/tenants/vdisc/links as well), never a physical link, while the
//     controller's physical discovery finds the physical links and no
//     virtual one; all its hosts ping each other before and after;
//   - tenant "vreact" (apps ["learning-reactive"], same virtual topology,
//     same IPs): pings between clouds through the reactive learning app on
//     the virtual view: first packets via packet-ins, then learned flow
//     entries (the tenant's cookie) carry the traffic on the edge bridges;
//     after an ovs-vswitchd restart of aws (empty flow tables), the
//     learned entries are replayed onto aws's VM bridge and the pings
//     work.
func TestTenantAppsOnLab(t *testing.T) {
	l, phys := startSkvLab(t)
	h := l.inst.h
	ctx := context.Background()
	disc := threeHosts(1)
	for i := range disc {
		disc[i].lab = fmt.Sprintf("vd%d", i+1)
	}
	react := threeHosts(2)
	for i := range react {
		react[i].lab = fmt.Sprintf("vr%d", i+1)
	}
	sd := l.apply(t, skvDoc("vdisc", []string{"learning", "discovery"}, disc))
	sr := l.apply(t, skvDoc("vreact", []string{"learning-reactive"}, react))
	for _, hst := range disc {
		l.plug(t, "vdisc", hst)
	}
	for _, hst := range react {
		l.plug(t, "vreact", hst)
	}
	l.waitActive(t, "vdisc")
	l.waitActive(t, "vreact")

	// Reactive learning: pings across clouds, through packet-ins first.
	l.allPairs(t, react)
	if n := h.PacketIns()[sr.TenantID]; n == 0 {
		t.Errorf("vreact: no packet-in reached the hypervisor; the reactive app cannot have run")
	}
	// The learned entries carry the traffic: a second ping round hits
	// them (n_packets > 0 on the reactive app's entries of aws's VM
	// bridge).
	l.allPairs(t, react)
	var awsVM lab.SwitchInfo
	for _, sw := range l.inv.Switches {
		if sw.Site == "aws" && sw.Role == "vm" {
			awsVM = sw
		}
	}
	cookie := pipeline.TenantCookie(sr.TenantID, vnet.ReactiveLearningCookie)
	flows := siteCmd(t, l.dir, "aws", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", awsVM.Bridge,
		fmt.Sprintf("cookie=%#x/-1", cookie))
	hit := 0
	for _, line := range strings.Split(flows, "\n") {
		m := regexp.MustCompile(`n_packets=(\d+)`).FindStringSubmatch(line)
		if m != nil && strings.Contains(line, "dl_dst=") {
			if n, _ := strconv.Atoi(m[1]); n > 0 {
				hit++
			}
		}
	}
	t.Logf("vreact: %d packet-ins, %d learned entries on %s carried packets", h.PacketIns()[sr.TenantID], hit, awsVM.Bridge)
	if hit == 0 {
		t.Errorf("vreact: no learned entry (cookie %#x) on %s carried packets:\n%s", cookie, awsVM.Bridge, flows)
	}
	// The app reads its flow table through the virtual switch as it
	// installed it: one entry per virtual entry (the copies on every
	// bridge summed), in_port and outputs as virtual ports, its cookie.
	vstats := func(name string) []controller.FlowStats {
		t.Helper()
		for _, sw := range h.TenantAppRuntime("vreact").Switches() {
			if sw.Name() == name {
				fs, err := sw.FlowStats(ctx, nil)
				if err != nil {
					t.Fatalf("vreact %s: flow stats: %v", name, err)
				}
				return fs
			}
		}
		t.Fatalf("vreact has no virtual switch %s", name)
		return nil
	}
	checkVirtual := func(when string) {
		t.Helper()
		fs := vstats("s1")
		keys := map[string]bool{}
		learnedHit := 0
		for _, f := range fs {
			e := pipeline.FromFlowStats(&f)
			if k := e.Key(); keys[k] {
				t.Errorf("%s: s1 reports entry %v twice", when, &e)
			} else {
				keys[k] = true
			}
			if f.Cookie != vnet.ReactiveLearningCookie {
				t.Errorf("%s: s1 entry %v: cookie %#x, want the app's %#x", when, &e, f.Cookie, vnet.ReactiveLearningCookie)
			}
			for _, x := range f.Match.Fields {
				if x.Type == ofp.XMTypeMetadata {
					t.Errorf("%s: s1 entry %v matches metadata", when, &e)
				}
			}
			if f.Priority == 0 {
				continue // the table-miss to the controller
			}
			for _, in := range f.Instructions {
				a, ok := in.(*ofp.InstructionApplyActions)
				if !ok || len(a.Actions) != 1 {
					t.Errorf("%s: s1 entry %v: instructions are not the app's single output", when, &e)
					continue
				}
				if o, ok := a.Actions[0].(*ofp.ActionOutput); !ok || (o.Port != 1 && o.Port != 2) {
					t.Errorf("%s: s1 entry %v: action %#v, want output to virtual port 1 or 2", when, &e, a.Actions[0])
				}
			}
			if f.PacketCount > 0 {
				learnedHit++
			}
		}
		t.Logf("%s: vreact's s1 reports %d entries, %d learned ones carried packets", when, len(fs), learnedHit)
		if len(fs) < 2 || learnedHit == 0 {
			t.Errorf("%s: s1's flow stats %+v: want the table-miss and learned entries that carried packets", when, fs)
		}
	}
	checkVirtual("after the pings")

	// Discovery on the virtual view: exactly the submitted links.
	want := []string{"s1:2>s2:2", "s2:2>s1:2", "s2:3>s3:2", "s3:2>s2:3"}
	var got []string
	poll(t, "vdisc's discovery finds its 4 directed virtual links", 20*time.Second, func() bool {
		ls, err := h.TenantLinks(ctx, "vdisc")
		if err != nil {
			t.Fatal(err)
		}
		got = linkStrings(ls.Links)
		return slices.Equal(got, want)
	})
	// The physical discovery sees physical links only (VM uplink <->
	// gateway), never a virtual DPID.
	vdpids := map[uint64]bool{}
	for _, sw := range h.TenantAppRuntime("vdisc").Switches() {
		vdpids[uint64(sw.DPID())] = true
	}
	physDPIDs := map[uint64]bool{}
	for _, sw := range l.inv.Switches {
		physDPIDs[sw.DPID] = true
	}
	poll(t, "physical discovery finds the uplinks", 20*time.Second, func() bool { return len(phys.Links()) >= 6 })
	t.Logf("vdisc links %v; physical discovery: %d links", got, len(phys.Links()))
	for _, pl := range phys.Links() {
		if !physDPIDs[pl.Src.DPID] || !physDPIDs[pl.Dst.DPID] || vdpids[pl.Src.DPID] || vdpids[pl.Dst.DPID] {
			t.Errorf("physical discovery reports %v, not a physical link", pl)
		}
	}
	// A full probe round later (the tenant's discovery probes its 4 link
	// ports every 5 s; the physical one probes every second), the tenant
	// still sees exactly its links, over REST too.
	rt := h.TenantAppRuntime("vdisc")
	n0 := rt.LLDPLoopbacks()
	poll(t, "another round of the tenant's LLDP probes", 20*time.Second, func() bool { return rt.LLDPLoopbacks() >= n0+4 })
	srv := httptest.NewServer(api.NewHandler(h, api.Options{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/tenants/vdisc/links")
	if err != nil {
		t.Fatal(err)
	}
	var rl api.TenantLinks
	err = json.NewDecoder(resp.Body).Decode(&rl)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET links: %d %v", resp.StatusCode, err)
	}
	if got := linkStrings(rl.Links); !slices.Equal(got, want) {
		t.Errorf("links over REST after more probe rounds %v, want exactly %v", got, want)
	}
	for _, lk := range rl.Links {
		if physDPIDs[mustDPID(t, lk.Src.DPID)] || physDPIDs[mustDPID(t, lk.Dst.DPID)] {
			t.Errorf("tenant link %+v names a physical DPID", lk)
		}
	}
	if n := h.TenantAppRuntime("vdisc").LLDPLoopbacks(); n == 0 {
		t.Error("no LLDP probe was looped back over a virtual link")
	}
	// The native learning still forwards vdisc's traffic.
	l.allPairs(t, disc)
	if _, err := h.TenantLinks(ctx, "vreact"); err == nil {
		t.Error("links of a tenant without discovery: no error")
	}
	t.Logf("vdisc (tenant ID %v): %d LLDP probes looped back over virtual links", sd.TenantID, h.TenantAppRuntime("vdisc").LLDPLoopbacks())

	// ovs-vswitchd of aws restarts: its bridges come back with empty flow
	// tables. The hypervisor's reconcile restores its own entries and the
	// replay (vnet.Tenant.Replay) the reactive app's learned entries: the
	// app is not told (its virtual switches never went down), yet its
	// entries are on aws's VM bridge again before any new traffic, and
	// vreact's pings work.
	l.allPairs(t, react) // fresh entries (idle timeout 60 s)
	learned := func() (int, error) {
		c, err := lab.SiteCommand(ctx, l.dir, "aws", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", awsVM.Bridge,
			fmt.Sprintf("cookie=%#x/-1", cookie))
		if err != nil {
			return 0, err
		}
		out, err := c.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%w: %s", err, out)
		}
		return strings.Count(string(out), "dl_dst="), nil
	}
	before, err := learned()
	if err != nil || before == 0 {
		t.Fatalf("vreact's learned entries on %s before the restart: %d, %v", awsVM.Bridge, before, err)
	}
	rtR := h.TenantAppRuntime("vreact")
	r0, pins0 := rtR.Replays(), h.PacketIns()[sr.TenantID]
	t0 := time.Now()
	if _, err := lab.Restart(ctx, l.dir, "aws", lab.VSwitchd); err != nil {
		t.Fatal(err)
	}
	var after int
	poll(t, "the reactive app's entries replayed onto aws's VM bridge", 45*time.Second, func() bool {
		after, err = learned()
		return err == nil && rtR.Replays() > r0 && after >= before
	})
	t.Logf("ovs-vswitchd of aws restarted: %d learned entries of vreact back on %s %v after the restart began (%d before; %d replays; %d packet-ins meanwhile)",
		after, awsVM.Bridge, time.Since(t0).Round(time.Millisecond), before, rtR.Replays()-r0, h.PacketIns()[sr.TenantID]-pins0)
	l.allPairs(t, react)
	t.Logf("vreact pings after the restart: %d packet-ins during the restart and the pings", h.PacketIns()[sr.TenantID]-pins0)
	checkVirtual("after the restart and the pings")
}

// mustDPID parses a DPID as the API prints it ("00:00:…").
func mustDPID(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.ReplaceAll(s, ":", ""), 16, 64)
	if err != nil {
		t.Fatalf("DPID %q: %v", s, err)
	}
	return v
}
