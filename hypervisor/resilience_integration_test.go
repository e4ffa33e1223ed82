//go:build integration

package hypervisor_test

import (
	"bytes"
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

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/testbed/lab"
	"github.com/skyvisor/skyvisor/tunnels"
)

// The tests in this file prove Skyvisor's must-shows on the real lab (real
// Open vSwitch, userspace datapath, one OVS per site): every tunnel type,
// reconvergence after an OVS daemon restart, a controller restart under
// continuous traffic without loss, and a rejected topology that leaves every
// flow table untouched. Each builds its own 3-site lab (one VM per site)
// with prefix "skr<pid%100><tag>" and removes it in t.Cleanup.

// skrLab is a running 3-site lab (aws, gcp, azure; VM "vm1" each) with
// Skyvisor (controller + Hypervisor app) serving its controller socket.
type skrLab struct {
	dir    string
	inv    *lab.Inventory
	inf    *infra.Infra
	dbPath string
	st     *store.Store
	acc    *acceptor
	inst   *instance
	log    *slog.Logger
	listen string
}

// startSkrLab brings up the lab with tunnel type tt, starts Skyvisor and
// waits until every bridge has connected and the MST tunnels are
// provisioned. tag (one letter) keeps the prefixes of the tests apart.
func startSkrLab(t *testing.T, tag, tt string) *skrLab {
	t.Helper()
	return startLab3(t, "skr", tag, tt, nil)
}

// startLab3 brings up the 3-site lab (aws, gcp, azure, one VM each) with
// prefix "<base><pid%100><tag>" and tunnel type tt, sets the
// infrastructure's tunnel costs to costs (nil: the inventory's), starts
// Skyvisor and waits until every bridge has connected and the tunnels are
// provisioned (startSkrLab, startSkfLab).
func startLab3(t *testing.T, base, tag, tt string, costs []infra.Cost) *skrLab {
	t.Helper()
	needLab(t)
	prefix := fmt.Sprintf("%s%02d%s", base, os.Getpid()%100, tag)
	dir := filepath.Join(t.TempDir(), "lab")
	spec, err := lab.Parse([]byte(fmt.Sprintf(`{"prefix":%q,"state_dir":%q,"tunnel_type":%q,
		"sites":[{"name":"aws","vms":1},{"name":"gcp","vms":1},{"name":"azure","vms":1}]}`, prefix, dir, tt)))
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
	if inf.TunnelType != tt {
		t.Fatalf("infrastructure tunnel type %q, want %q", inf.TunnelType, tt)
	}
	if costs != nil {
		inf.Costs = costs
	}
	logw := io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	l := &skrLab{dir: dir, inv: inv, inf: inf, dbPath: filepath.Join(t.TempDir(), base+".db"),
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
	l.inst = l.acc.start(t, inf, l.st, l.log, l.listen)
	l.waitConnected(t, l.inst, 45*time.Second)
	return l
}

// waitConnected waits until every bridge of the inventory has connected to
// in and the tunnels are provisioned.
func (l *skrLab) waitConnected(t *testing.T, in *instance, d time.Duration) {
	t.Helper()
	poll(t, "SwitchUp of every bridge", d, func() bool {
		for _, sw := range l.inv.Switches {
			if !in.rec.has(controller.DPID(sw.DPID)) {
				return false
			}
		}
		return true
	})
	poll(t, "tunnels provisioned", 30*time.Second, func() bool { return checkOK(in.h, "tunnels") })
}

// checkOK reports whether the hypervisor's health check name is ok.
func checkOK(h *hypervisor.Hypervisor, name string) bool {
	for _, c := range h.Health(context.Background()).Checks {
		if c.Name == name {
			return c.Status == api.HealthOK
		}
	}
	return false
}

// skrHost is one host of a test tenant: lab host name, tenant host name,
// cloud, IP (10.0.0.x/24) and MAC.
type skrHost struct {
	lab, name, cloud, ip, mac string
	port                      int
}

// tenantDoc is the topology JSON of tenant name: one virtual switch "big"
// with the learning app and hosts hs.
func tenantDoc(name string, hs []skrHost) string {
	var hosts []string
	for _, h := range hs {
		hosts = append(hosts, fmt.Sprintf(`{"name":%q,"mac":%q,"ip":%q,"switch":"big","port":%d,"cloud":%q}`,
			h.name, h.mac, h.ip+"/24", h.port, h.cloud))
	}
	return fmt.Sprintf(`{"tenant":%q,"apps":["learning"],"switches":[{"name":"big"}],"links":[],"hosts":[%s]}`,
		name, strings.Join(hosts, ","))
}

// threeHosts returns one host per cloud for tenant number n (1..9): lab
// names t<n>a, t<n>g, t<n>z, IPs 10.0.0.1..3, MACs 00:00:00:00:0n:0k.
func threeHosts(n int) []skrHost {
	var hs []skrHost
	for k, c := range []string{"aws", "gcp", "azure"} {
		hs = append(hs, skrHost{lab: fmt.Sprintf("t%d%c", n, "agz"[k]), name: fmt.Sprintf("h%d", k+1), cloud: c,
			ip: fmt.Sprintf("10.0.0.%d", k+1), mac: fmt.Sprintf("00:00:00:00:%02x:%02x", n, k+1), port: k + 1})
	}
	return hs
}

// apply validates doc against the infrastructure and applies it.
func (l *skrLab) apply(t *testing.T, doc string) api.TenantStatus {
	t.Helper()
	ctx := context.Background()
	ti, err := l.inst.h.Infra(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := topology.Load([]byte(doc), ti)
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	s, err := l.inst.h.ApplyTenant(ctx, ts[0])
	if err != nil {
		t.Fatalf("apply %s: %v", ts[0].Tenant, err)
	}
	return s
}

// plug plugs host h of tenant into its cloud's VM and waits for its binding.
func (l *skrLab) plug(t *testing.T, tenant string, h skrHost) {
	t.Helper()
	id := topology.IfaceID(tenant, h.name)
	if _, err := lab.Plug(context.Background(), l.dir, lab.HostSpec{Name: h.lab, Site: h.cloud, VM: "vm1", MAC: h.mac,
		IP: h.ip + "/24", IfaceID: id}); err != nil {
		t.Fatalf("plug %s: %v", h.lab, err)
	}
	poll(t, "binding of "+id, 20*time.Second, func() bool {
		_, err := l.st.GetBinding(id)
		return err == nil
	})
}

// tenant applies a tenant with hosts hs, plugs them and waits until it is
// active.
func (l *skrLab) tenant(t *testing.T, name string, hs []skrHost) {
	t.Helper()
	l.apply(t, tenantDoc(name, hs))
	for _, h := range hs {
		l.plug(t, name, h)
	}
	l.waitActive(t, name)
}

func (l *skrLab) waitActive(t *testing.T, name string) {
	t.Helper()
	poll(t, "tenant "+name+" active", 20*time.Second, func() bool {
		d, err := l.inst.h.Tenant(context.Background(), name)
		return err == nil && d.State == api.TenantActive
	})
}

// allPairs pings from every host to every other one (both directions).
func (l *skrLab) allPairs(t *testing.T, hs []skrHost) {
	t.Helper()
	for _, a := range hs {
		for _, b := range hs {
			if a.lab == b.lab {
				continue
			}
			if err := ping(l.dir, a.lab, b.ip, 8); err != nil {
				dumpFlows(t, l.dir, l.inv)
				t.Fatalf("%s (%s) -> %s (%s): %v", a.lab, a.cloud, b.lab, b.cloud, err)
			}
		}
	}
}

// pingOnce sends one echo request with a 1 s timeout.
func pingOnce(dir, host, ip string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := lab.HostCommand(ctx, dir, host, "ping", "-c", "1", "-W", "1", ip)
	return err == nil && c.Run() == nil
}

// site returns the inventory entry of site name.
func (l *skrLab) site(t *testing.T, name string) lab.SiteInfo {
	t.Helper()
	for _, s := range l.inv.Sites {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no site %s", name)
	return lab.SiteInfo{}
}

// TestTunnelTypes: for each tunnel type the lab's infrastructure names,
// Skyvisor provisions the MST between the three gateways as ports of that
// OVS interface type (2 tunnels = 4 ports, none of another type, key=flow,
// remote_ip = the peer's underlay address) and a tenant with a host in each
// cloud pings between every pair of hosts, through every tunnel port (its
// rx and tx packet counters grew).
func TestTunnelTypes(t *testing.T) {
	all := []string{"vxlan", "gre", "geneve"}
	for k, tt := range all {
		t.Run(tt, func(t *testing.T) {
			l := startSkrLab(t, string("vgn"[k]), tt)
			h := l.inst.h
			if p := h.Plan(); p.Len() != 2 {
				t.Fatalf("plan %v, want 2 tunnels for 3 sites", p)
			}
			total := 0
			for _, s := range l.inv.Sites {
				for _, other := range all {
					out := siteCmd(t, l.dir, s.Name, "ovs-vsctl", "--bare", "--columns=name", "find", "Interface", "type="+other)
					n := len(strings.Fields(out))
					want := 0
					if other == tt {
						want = len(h.Plan().Peers(s.Name))
						total += n
					}
					if n != want {
						t.Errorf("site %s: %d %s interfaces (%q), want %d", s.Name, n, other, out, want)
					}
				}
			}
			if total != 4 {
				t.Errorf("%d %s ports on the gateways, want 4 (2 tunnels)", total, tt)
			}
			// the key is taken from the flow (the tenant's tunnel key)
			for _, s := range l.inv.Sites {
				for _, peer := range h.Plan().Peers(s.Name) {
					port := tunnels.PortName(peer)
					opts := siteCmd(t, l.dir, s.Name, "ovs-vsctl", "get", "Interface", port, "options")
					if !strings.Contains(opts, `key=flow`) || !strings.Contains(opts, l.site(t, peer).UnderlayIP) {
						t.Errorf("%s %s options %s: want key=flow and the peer's underlay address", s.Name, port, opts)
					}
				}
			}
			hs := threeHosts(1)
			l.tenant(t, "ta", hs)
			l.allPairs(t, hs)
			// every tunnel port carried the tenant's traffic both ways
			for _, s := range l.inv.Sites {
				for _, peer := range h.Plan().Peers(s.Name) {
					// (the Interface statistics column lags by up to 5 s;
					// the OpenFlow port counters are live)
					port := tunnels.PortName(peer)
					ofport := siteCmd(t, l.dir, s.Name, "ovs-vsctl", "get", "Interface", port, "ofport")
					out := siteCmd(t, l.dir, s.Name, "ovs-ofctl", "-O", "OpenFlow13", "dump-ports", s.GatewayBridge, ofport)
					for _, dir := range []string{"rx", "tx"} {
						m := regexp.MustCompile(dir + ` pkts=(\d+)`).FindStringSubmatch(out)
						if m == nil || m[1] == "0" {
							t.Errorf("%s %s (%s, ofport %s): no %s packets after the pings:\n%s", s.Name, port, tt, ofport, dir, out)
						}
					}
				}
			}
			resync(t, context.Background(), h, len(l.inv.Switches))
		})
	}
}

// reconverge polls pings between the (from, to) pairs until all answer and
// returns how long that took from t0; it fails the test after d.
func reconverge(t *testing.T, dir string, t0 time.Time, d time.Duration, pairs [][2]skrHost) time.Duration {
	t.Helper()
	deadline := t0.Add(d)
	for {
		ok := true
		for _, p := range pairs {
			if !pingOnce(dir, p[0].lab, p[1].ip) {
				ok = false
				break
			}
		}
		if ok {
			return time.Since(t0)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connectivity %v after the restart", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReconvergeAfterOVSRestart: with a tenant's traffic working, gcp's
// ovs-vswitchd is killed (by the PID the lab recorded) and started again
// as the lab started it: it comes back with empty flow tables; without any
// manual step its bridges reconnect, Skyvisor reconciles them and
// cross-site pings work again, with nothing left to repair. Then gcp's
// ovsdb-server is restarted: Skyvisor's OVSDB client reconnects, so a host
// plugged afterwards on gcp is bound (interface watch) and pings, and a
// Converge afterwards succeeds. Finally azure's two daemons crash (SIGKILL)
// and are started again: its bridges reconnect and traffic resumes.
func TestReconvergeAfterOVSRestart(t *testing.T) {
	l := startSkrLab(t, "r", "vxlan")
	ctx := context.Background()
	hs := threeHosts(1)
	l.tenant(t, "ta", hs)
	l.allPairs(t, hs)
	aws, gcp, azure := hs[0], hs[1], hs[2]
	pairs := [][2]skrHost{{aws, gcp}, {gcp, azure}, {azure, aws}}

	inv, err := lab.Status(l.dir)
	if err != nil {
		t.Fatal(err)
	}
	l.inv = inv
	site := l.site(t, "gcp")
	gcpDPIDs := []uint64{site.GatewayDPID, l.inv.Switch("gcp", "vm1").DPID}
	ups := func(d uint64) int {
		l.inst.rec.mu.Lock()
		defer l.inst.rec.mu.Unlock()
		return l.inst.rec.ups[controller.DPID(d)]
	}
	syncs := l.inst.h.SyncStats()

	// 1. ovs-vswitchd, under a 100 packets/s ping from aws to gcp.
	bg := startPing(t, l.dir, aws.lab, gcp.ip, 400)
	time.Sleep(time.Second) // let the ping run before the restart
	t0 := time.Now()
	pid, err := lab.Restart(ctx, l.dir, "gcp", lab.VSwitchd)
	if err != nil {
		t.Fatal(err)
	}
	if pid == site.VSwitchdPID || site.VSwitchdPID == 0 {
		t.Fatalf("ovs-vswitchd pid %d before, %d after", site.VSwitchdPID, pid)
	}
	restarted := time.Since(t0)
	took := reconverge(t, l.dir, t0, 45*time.Second, pairs)
	t.Logf("ovs-vswitchd of gcp restarted in %v (pid %d -> %d); cross-site pings back %v after the kill",
		restarted, site.VSwitchdPID, pid, took)
	for _, d := range gcpDPIDs {
		if n := ups(d); n < 2 {
			t.Errorf("dpid %#x: %d SwitchUp, want a reconnection (2)", d, n)
		}
	}
	sent, seqs := bg.wait(t)
	lost, gap := sent-len(seqs), longestGap(seqs)
	t.Logf("ping aws -> gcp at 100/s across the ovs-vswitchd restart: %d sent, %d lost, longest gap %d packets (~%d ms)",
		sent, lost, gap, gap*10)
	if len(seqs) == 0 || seqs[len(seqs)-1] < sent-5 {
		t.Errorf("the ping across the restart did not recover: last reply seq %v of %d", seqs[max(len(seqs)-1, 0):], sent)
	}
	after := l.inst.h.SyncStats()
	if after.Added <= syncs.Added {
		t.Errorf("no flow entry re-added after the restart (%+v before, %+v after)", syncs, after)
	}
	t.Logf("reconcile after the restart: %d entries added, %d deleted", after.Added-syncs.Added, after.Deleted-syncs.Deleted)
	for _, peer := range l.inst.h.Plan().Peers("gcp") {
		if out := siteCmd(t, l.dir, "gcp", "ovs-vsctl", "--bare", "--columns=ofport", "find", "Interface", "name="+tunnels.PortName(peer)); out == "" || out == "-1" {
			t.Errorf("tunnel port to %s after the restart: ofport %q", peer, out)
		}
	}
	resync(t, ctx, l.inst.h, len(l.inv.Switches))

	// 2. ovsdb-server, under a 100 packets/s ping from gcp to azure. The
	// datapath does not depend on it: not one packet may be lost while
	// Skyvisor's OVSDB client reconnects (a Converge inside the ping's
	// window succeeds against the new server). Afterwards the watch of gcp's
	// interfaces has resumed: a fourth host plugged on gcp is bound and
	// pings. (The plug is kept out of the ping's window: adding a port to a
	// userspace datapath stalls it for >10 ms: ping -O reports replies late
	// around each plug, and one run lost a packet.)
	bg = startPing(t, l.dir, gcp.lab, azure.ip, 400)
	pingStart := time.Now()
	time.Sleep(time.Second)
	t0 = time.Now()
	pid, err = lab.Restart(ctx, l.dir, "gcp", lab.OVSDBServer)
	if err != nil {
		t.Fatal(err)
	}
	if pid == site.OVSDBServerPID || site.OVSDBServerPID == 0 {
		t.Fatalf("ovsdb-server pid %d before, %d after", site.OVSDBServerPID, pid)
	}
	t.Logf("ovsdb-server of gcp restarted in %v (pid %d -> %d)", time.Since(t0), site.OVSDBServerPID, pid)
	if err := l.inst.h.Converge(ctx); err != nil {
		t.Errorf("Converge after the ovsdb-server restart: %v", err)
	}
	poll(t, "OVSDB health ok", 20*time.Second, func() bool { return checkOK(l.inst.h, "ovsdb") })
	converged := time.Since(pingStart)
	t.Logf("Converge against the new ovsdb-server done %v after the restart began", time.Since(t0))
	sent, seqs = bg.wait(t)
	took = time.Since(pingStart)
	t.Logf("ping gcp -> azure at 100/s across the ovsdb-server restart: %d sent, %d lost", sent, sent-len(seqs))
	if len(seqs) != sent {
		t.Errorf("ovsdb-server restart: %d of %d pings lost (longest gap %d):\n%s", sent-len(seqs), sent, longestGap(seqs), bg.missing())
	}
	if converged >= took {
		t.Errorf("Converge ended %v after the ping started, after the ping ended (%v)", converged, took)
	}
	h4 := skrHost{lab: "t1g4", name: "h4", cloud: "gcp", ip: "10.0.0.4", mac: "00:00:00:00:01:04", port: 4}
	hs4 := append(slices.Clone(hs), h4)
	if s := l.apply(t, tenantDoc("ta", hs4)); s.Generation != 2 {
		t.Errorf("re-applied tenant: generation %d, want 2", s.Generation)
	}
	t1 := time.Now()
	l.plug(t, "ta", h4)
	t.Logf("host plugged after the ovsdb-server restart bound in %v", time.Since(t1))
	l.waitActive(t, "ta")
	for _, dst := range []skrHost{aws, azure, gcp} {
		if err := ping(l.dir, h4.lab, dst.ip, 8); err != nil {
			t.Errorf("new host after the ovsdb-server restart: %v", err)
		}
	}
	poll(t, "OVSDB health ok", 20*time.Second, func() bool { return checkOK(l.inst.h, "ovsdb") })
	resync(t, ctx, l.inst.h, len(l.inv.Switches))

	// 3. Crashes: azure's ovsdb-server and ovs-vswitchd die by SIGKILL
	// (pid files and sockets left behind) and are started again.
	azSite := l.site(t, "azure")
	azDPIDs := []uint64{azSite.GatewayDPID, l.inv.Switch("azure", "vm1").DPID}
	for _, d := range azDPIDs {
		if n := ups(d); n != 1 {
			t.Fatalf("dpid %#x: %d SwitchUp before the crash, want 1", d, n)
		}
	}
	t0 = time.Now()
	for _, d := range []lab.Daemon{lab.OVSDBServer, lab.VSwitchd} {
		if err := lab.Kill(ctx, l.dir, "azure", d); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []lab.Daemon{lab.OVSDBServer, lab.VSwitchd} {
		if _, err := lab.Start(ctx, l.dir, "azure", d); err != nil {
			t.Fatal(err)
		}
	}
	took = reconverge(t, l.dir, t0, 45*time.Second, [][2]skrHost{{aws, azure}, {azure, gcp}, {h4, azure}})
	t.Logf("azure's ovsdb-server and ovs-vswitchd crashed (SIGKILL) and started: cross-site pings back %v after the kill", took)
	for _, d := range azDPIDs {
		if n := ups(d); n < 2 {
			t.Errorf("dpid %#x: %d SwitchUp, want a reconnection (2)", d, n)
		}
	}
	if err := l.inst.h.Converge(ctx); err != nil {
		t.Errorf("Converge after the crash: %v", err)
	}
	poll(t, "OVSDB health ok after the crash", 20*time.Second, func() bool { return checkOK(l.inst.h, "ovsdb") })
	resync(t, ctx, l.inst.h, len(l.inv.Switches))
}

// bgPing is a ping running in the background.
type bgPing struct {
	out    bytes.Buffer
	done   chan error
	cancel context.CancelFunc
}

// startPing starts `ping -i 0.01 -c count ip` (100 packets/s) in host's
// namespace; wait collects it.
func startPing(t *testing.T, dir, host, ip string, count int) *bgPing {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p := &bgPing{done: make(chan error, 1), cancel: cancel}
	t.Cleanup(cancel)
	c, err := lab.HostCommand(ctx, dir, host, "ping", "-D", "-O", "-i", "0.01", "-c", strconv.Itoa(count), "-W", "1", ip)
	if err != nil {
		t.Fatal(err)
	}
	c.Stdout, c.Stderr = &p.out, &p.out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- c.Wait() }()
	return p
}

// replySeq matches one echo reply line of ping.
var replySeq = regexp.MustCompile(`(?m)^(?:\[[0-9.]+\] )?\d+ bytes from .*icmp_seq=(\d+) `)

// wait waits for the ping and returns the number of requests sent and the
// sorted sequence numbers answered.
func (p *bgPing) wait(t *testing.T) (sent int, seqs []int) {
	t.Helper()
	err := <-p.done
	p.cancel()
	m := pingSummary.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no ping summary (%v):\n%s", err, p.out.String())
	}
	sent, _ = strconv.Atoi(m[1])
	for _, r := range replySeq.FindAllStringSubmatch(p.out.String(), -1) {
		n, _ := strconv.Atoi(r[1])
		seqs = append(seqs, n)
	}
	slices.Sort(seqs)
	return sent, slices.Compact(seqs)
}

// missing returns ping's "no answer yet" lines (-O).
func (p *bgPing) missing() string {
	var out []string
	for _, ln := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(ln, "no answer") {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}

// longestGap is the longest run of missing sequence numbers in sorted seqs
// (starting at 1).
func longestGap(seqs []int) int {
	gap, prev := 0, 0
	for _, s := range seqs {
		gap = max(gap, s-prev-1)
		prev = s
	}
	return gap
}

// pingSummary matches ping's summary line.
var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// TestRestartDuringContinuousPing: while a host in aws pings a host in
// azure (across a tunnel) at 100 packets/s, Skyvisor is stopped (controller
// sessions closed, Hypervisor.Run ended, store closed) and a new instance is
// started over the same store file. Not one packet may be lost, and the new
// instance's reconcile of every switch adds and deletes nothing (and sends no
// OVSDB transaction).
func TestRestartDuringContinuousPing(t *testing.T) {
	l := startSkrLab(t, "p", "vxlan")
	hs := threeHosts(1)
	l.tenant(t, "ta", hs)
	l.allPairs(t, hs)

	const count = 600 // 6 s at 100 packets/s (about 9 s on a loaded machine)
	pingStart := time.Now()
	bg := startPing(t, l.dir, hs[0].lab, hs[2].ip, count)
	time.Sleep(time.Second) // let the ping run before the restart

	t0 := time.Now()
	l.acc.stopCurrent()
	if err := l.st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(l.dbPath, store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	l.st = st
	l.inst = l.acc.start(t, l.inf, l.st, l.log, l.listen)
	l.waitConnected(t, l.inst, 30*time.Second)
	poll(t, "reconcile of every switch", 30*time.Second, func() bool {
		return l.inst.h.SyncStats().Syncs >= uint64(len(l.inv.Switches))
	})
	restart := time.Since(t0)
	restartDone := time.Since(pingStart)

	sent, seqs := bg.wait(t)
	pingTook := time.Since(pingStart)
	t.Logf("restart took %v (done %v into a %v ping); %d sent, %d received, %d lost", restart, restartDone, pingTook,
		sent, len(seqs), sent-len(seqs))
	if sent != count || len(seqs) != sent {
		t.Errorf("%d packets sent, %d received: want %d and 0 lost (longest gap %d)", sent, len(seqs), count, longestGap(seqs))
	}
	if restartDone >= pingTook {
		t.Errorf("the restart (done %v after the ping started) did not happen during the ping (%v)", restartDone, pingTook)
	}
	if s := l.inst.h.SyncStats(); s.Added != 0 || s.Deleted != 0 {
		t.Errorf("restarted hypervisor's reconcile: %+v, want nothing added or deleted", s)
	}
	if n := l.inst.h.OVSDBTransactions(); n != 0 {
		t.Errorf("restarted hypervisor sent %d OVSDB transactions, want 0", n)
	}
}

// flowTables returns every bridge's flow table (ovs-ofctl dump-flows
// --no-stats, lines sorted, reply header dropped) keyed "site/bridge".
func (l *skrLab) flowTables(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range l.inv.Sites {
		bridges := []string{s.UnderlayBridge, s.GatewayBridge}
		bridges = append(bridges, s.VMs...)
		for _, b := range bridges {
			dump := siteCmd(t, l.dir, s.Name, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "--no-stats", b)
			var lines []string
			for _, ln := range strings.Split(dump, "\n") {
				if ln = strings.TrimSpace(ln); ln != "" && !strings.HasPrefix(ln, "OFPST_FLOW") {
					lines = append(lines, ln)
				}
			}
			slices.Sort(lines)
			out[s.Name+"/"+b] = strings.Join(lines, "\n")
		}
	}
	return out
}

// TestBadTopologyLeavesNetworkUntouched: with two tenants applied and
// pinging, bad topologies submitted through the REST API (a replace of an
// existing tenant naming an unknown cloud and using a port twice; an
// all-or-nothing document whose second tenant is bad) are refused with 400
// and the JSON path of every problem; afterwards every bridge's flow table
// is byte for byte what it was, both tenants still ping and the store still
// holds the old generations.
func TestBadTopologyLeavesNetworkUntouched(t *testing.T) {
	l := startSkrLab(t, "b", "vxlan")
	ha, hb := threeHosts(1), threeHosts(2)
	l.tenant(t, "ta", ha)
	l.tenant(t, "tb", hb)
	l.allPairs(t, ha)
	l.allPairs(t, hb)
	// quiesce: one more reconcile round leaves nothing to do
	resync(t, context.Background(), l.inst.h, len(l.inv.Switches))
	before := l.flowTables(t)
	old := map[string]*store.Tenant{}
	for _, n := range []string{"ta", "tb"} {
		rec, err := l.st.GetTenant(n)
		if err != nil {
			t.Fatal(err)
		}
		old[n] = rec
	}
	nonEmpty := 0
	for _, v := range before {
		if strings.Contains(v, "cookie=") {
			nonEmpty++
		}
	}
	if nonEmpty < len(l.inv.Switches) {
		t.Fatalf("only %d non-empty flow tables before", nonEmpty)
	}

	const token = "skr-secret"
	srv := httptest.NewServer(api.NewHandler(l.inst.h, api.Options{Token: token}))
	t.Cleanup(srv.Close)
	send := func(method, path, body string) (int, api.ErrorResponse) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.ErrorResponse
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: %d, body %q: %v", method, path, resp.StatusCode, b, err)
		}
		return resp.StatusCode, e
	}
	wantPaths := func(what string, e api.ErrorResponse, paths ...string) {
		t.Helper()
		var got []string
		for _, d := range e.Details {
			got = append(got, d.Path)
		}
		for _, p := range paths {
			if !slices.Contains(got, p) {
				t.Errorf("%s: no error at %s (got %v: %+v)", what, p, got, e.Details)
			}
		}
	}

	// A replace of ta: h2 in an unknown cloud, h3 on h1's port.
	bad := slices.Clone(ha)
	bad[1].cloud = "mars"
	bad[2].port = 1
	code, e := send("PUT", "/v1/tenants/ta", tenantDoc("ta", bad))
	if code != http.StatusBadRequest {
		t.Errorf("PUT bad ta: %d %+v, want 400", code, e)
	}
	wantPaths("PUT bad ta", e, "$.hosts[1].cloud", "$.hosts[2].port")
	if len(e.Details) != 2 {
		t.Errorf("PUT bad ta: %d details, want 2: %+v", len(e.Details), e.Details)
	}
	// All or nothing: a valid change of tb (a new host) with a bad ta.
	more := append(slices.Clone(hb), skrHost{lab: "t2g4", name: "h4", cloud: "gcp", ip: "10.0.0.4", mac: "00:00:00:00:02:04", port: 4})
	code, e = send("POST", "/v1/tenants", `{"tenants":[`+tenantDoc("tb", more)+`,`+tenantDoc("ta", bad)+`]}`)
	if code != http.StatusBadRequest {
		t.Errorf("POST document: %d %+v, want 400", code, e)
	}
	wantPaths("POST document", e, "$.tenants[1].hosts[1].cloud", "$.tenants[1].hosts[2].port")
	for _, d := range e.Details {
		if strings.HasPrefix(d.Path, "$.tenants[0]") {
			t.Errorf("POST document: error in the valid tenant: %+v", d)
		}
	}
	// A bad topology with a wrong token is refused before it is read.
	req, _ := http.NewRequest("PUT", srv.URL+"/v1/tenants/ta", strings.NewReader(tenantDoc("ta", bad)))
	req.Header.Set("Authorization", "Bearer wrong")
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("PUT with a wrong token: %d, want 401", resp.StatusCode)
	}
	// Not JSON at all.
	if code, _ := send("PUT", "/v1/tenants/ta", `{"tenant":"ta","switches":[`); code != http.StatusBadRequest {
		t.Errorf("PUT truncated JSON: %d, want 400", code)
	}

	after := l.flowTables(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: flow table changed after the refused topologies:\n--- before\n%s\n--- after\n%s", k, v, after[k])
		}
	}
	entries := 0
	for _, v := range before {
		entries += strings.Count(v, "\n") + 1
	}
	t.Logf("%d bridges, %d flow entries identical after 4 refused requests", len(before), entries)
	if len(after) != len(before) {
		t.Errorf("%d bridges after, %d before", len(after), len(before))
	}
	for n, rec := range old {
		now, err := l.st.GetTenant(n)
		if err != nil {
			t.Fatal(err)
		}
		if now.Generation != rec.Generation || !bytes.Equal(now.Topology, rec.Topology) || now.ID != rec.ID {
			t.Errorf("store: tenant %s is generation %d (%s), want %d (%s)", n, now.Generation, now.Topology, rec.Generation, rec.Topology)
		}
		d, err := l.inst.h.Tenant(context.Background(), n)
		if err != nil || d.Generation != rec.Generation || d.State != api.TenantActive {
			t.Errorf("tenant %s after the refused requests: generation %d state %s (%v), want %d active", n, d.Generation, d.State, err, rec.Generation)
		}
	}
	l.allPairs(t, ha)
	l.allPairs(t, hb)
	resync(t, context.Background(), l.inst.h, len(l.inv.Switches))
}
