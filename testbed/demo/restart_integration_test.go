//go:build integration

package demo

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// TestDaemonRestartDuringContinuousPing is issue 4's "a Skyvisor restart
// during a continuous ping loses no packet" on the real daemon process:
// the demo's 3-cloud lab (examples/labs/demo.json, prefix "skj"), the
// skyvisor binary started as the demo starts it (StartDaemon), the two
// tenants of examples/two-tenants.json applied with skyctl. Two pings at
// 100 packets/s (ping -i 0.01) run across clouds, one per tenant
// (tenant1 h1 aws -> h3 azure, tenant2 h2 gcp -> h3 azure), while the
// daemon is (a) stopped with SIGTERM, (b) killed with SIGKILL (a crash),
// kept down for restartDown, and started again on the same state
// directory (bbolt store). Each time: both pings keep getting replies while
// no skyvisor runs (fail_mode secure keeps the flow entries); the new
// daemon gets healthy (GET /v1/health ok); its resync of every switch adds,
// replaces and deletes nothing: every bridge's flow table, without
// counters, is what it was before the stop, every entry's duration is
// older than the stop (nothing re-installed), and the new log has no
// "reconciled switch" (logged only for a non-empty plan) nor a failed
// reconcile; then the pings end with every request answered. A third
// restart (SIGKILL) is the control that the resync runs and is done when
// the test looks: while the daemon is down a stale entry with the
// hypervisor's cookie (staleEntry, matching no traffic) goes into one
// bridge; the new daemon must delete it, and only it ("reconciled switch
// ... added=0 deleted=1" once in its log), still without a lost packet;
// the time from its start to the deletion is the time to resync.
func TestDaemonRestartDuringContinuousPing(t *testing.T) {
	needRoot(t)
	const prefix = "skj"
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, ln := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(ln, prefix+"-") {
				t.Fatalf("network namespace %q exists already: another run of this test, or a clash of prefix %q", strings.Fields(ln)[0], prefix)
			}
		}
	}
	bin := buildBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stateDir := filepath.Join(t.TempDir(), "lab")
	t.Cleanup(func() {
		if err := Down(context.Background(), prefix, stateDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	spec, err := LoadSpec(Config{LabFile: "../../examples/labs/demo.json", Prefix: prefix, StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := lab.Up(ctx, spec)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	const tenantsFile = "../../examples/two-tenants.json"
	doc, err := os.ReadFile(tenantsFile)
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := planHosts(doc, inv.Hosts)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Host{}
	for _, h := range hosts {
		byName[h.Tenant+"/"+h.Name] = h
		if h.LabMAC != h.MAC { // as the demo: tenant2's hosts get the tenant's MACs
			hostOut(t, ctx, stateDir, h.Lab, "ip", "link", "set", "dev", lab.HostIface, "address", h.MAC)
		}
	}
	dcfg := DaemonConfig{BinDir: bin, APIListen: freePort(t), Timeout: 60 * time.Second}
	d, err := StartDaemon(ctx, inv, stateDir, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WaitHealthy(ctx); err != nil {
		t.Fatalf("%v\n%s", err, tail(d.LogPath(), 30))
	}
	if err := d.Apply(ctx, tenantsFile, doc); err != nil {
		t.Fatalf("apply: %v\n%s", err, tail(d.LogPath(), 30))
	}
	pairs := [][2]Host{
		{byName["tenant1/h1"], byName["tenant1/h3"]}, // aws -> azure
		{byName["tenant2/h2"], byName["tenant2/h3"]}, // gcp -> azure
	}
	for _, p := range pairs {
		pingOnce(t, ctx, stateDir, p[0], p[1], 45*time.Second)
	}
	// The learning apps' entries settle with the first pings; wait until
	// the flow tables (without counters) stop changing.
	stableTables(t, ctx, stateDir, inv, 30*time.Second)

	for _, ph := range []struct {
		name  string
		sig   syscall.Signal
		stale bool
	}{{"SIGTERM", syscall.SIGTERM, false}, {"SIGKILL", syscall.SIGKILL, false}, {"SIGKILL+stale", syscall.SIGKILL, true}} {
		d = restartPhase(t, ctx, d, ph.name, ph.sig, ph.stale, inv, stateDir, dcfg, pairs)
	}
	if _, err := d.Signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Error(err)
	}
}

// restartCount is the echo requests of each ping of one restart phase:
// 30 s at 100 packets/s, about 45 s on a loaded machine; the restart is
// done long before.
const restartCount = 3000

// restartDown is how long the daemon stays down before it is started
// again.
const restartDown = 2 * time.Second

// staleEntry is the entry the control restart adds while skyvisor is
// down: the hypervisor's infrastructure cookie (pipeline.InfraCookie(0,
// 0), 0x5359 in the top 16 bits) so the resync owns it, and an Ethertype
// nobody sends (0x88b5, IEEE 802 local experimental).
const staleEntry = "cookie=0x5359000000000000,table=0,priority=2,dl_type=0x88b5,actions=drop"

// restartPhase runs one restart (stop with sig, restartDown, start again)
// during a ping of every pair and checks it; it returns the new daemon.
// With stale, staleEntry goes into the first switch while the daemon is
// down and the resync must delete it (and do nothing else).
func restartPhase(t *testing.T, ctx context.Context, d *Daemon, name string, sig syscall.Signal, stale bool, inv *lab.Inventory,
	stateDir string, dcfg DaemonConfig, pairs [][2]Host) *Daemon {
	t.Helper()
	before := flowTables(t, ctx, stateDir, inv)
	var pings []*contPing
	for _, p := range pairs {
		pings = append(pings, startContPing(t, ctx, stateDir, p[0], p[1].IP, restartCount))
	}
	pingStart := time.Now()
	time.Sleep(time.Second)

	oldPID := d.PID()
	t0 := time.Now()
	state, err := d.Signal(sig, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	downAt := time.Now()
	stopTook := downAt.Sub(t0)
	oldLog, _ := os.ReadFile(d.LogPath())
	if sig == syscall.SIGTERM && (state != "exit status 0" || !bytes.Contains(oldLog, []byte("skyvisor stopped"))) {
		t.Errorf("%s: skyvisor pid %d ended with %q (want exit status 0 and \"skyvisor stopped\" logged):\n%s", name, oldPID, state, lastLines(oldLog, 15))
	}
	time.Sleep(restartDown)
	if got := flowTables(t, ctx, stateDir, inv); !equalTables(before, got) {
		t.Errorf("%s: flow tables changed while skyvisor was down:\n%s", name, diffTables(before, got))
	}
	staleSw := inv.Switches[0]
	if stale {
		c, err := lab.SiteCommand(ctx, stateDir, staleSw.Site, "ovs-ofctl", "-O", "OpenFlow13", "add-flow", staleSw.Bridge, staleEntry)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: add the stale entry to %s/%s: %v\n%s", name, staleSw.Site, staleSw.Bridge, err, out)
		}
		if got := flowTables(t, ctx, stateDir, inv); equalTables(before, got) {
			t.Fatalf("%s: the stale entry is not in %s/%s", name, staleSw.Site, staleSw.Bridge)
		}
	}
	upAt := time.Now()
	d, err = StartDaemon(ctx, inv, stateDir, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WaitHealthy(ctx); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, tail(d.LogPath(), 30))
	}
	healthy := time.Since(upAt)
	var staleGone time.Duration
	if stale {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if equalTables(before, flowTables(t, ctx, stateDir, inv)) {
				staleGone = time.Since(upAt)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the stale entry is still in %s/%s 30 s after the restart\n%s", name, staleSw.Site, staleSw.Bridge, tail(d.LogPath(), 30))
			}
		}
	}
	// The resync runs when each switch connects (health needs them all
	// connected); give the last one time to finish, then look.
	time.Sleep(3 * time.Second)
	after := flowTablesStats(t, ctx, stateDir, inv)
	sinceStop := time.Since(t0)
	if got := stripTables(after); !equalTables(before, got) {
		t.Errorf("%s: the restarted daemon's resync changed the flow tables:\n%s", name, diffTables(before, got))
	}
	young := 0
	for sw, lines := range after {
		for _, ln := range lines {
			if dur, ok := entryDuration(ln); ok && dur < sinceStop-time.Second {
				if young++; young <= 5 {
					t.Errorf("%s: %s: entry installed %v ago, after the stop %v ago: %s", name, sw, dur, sinceStop, ln)
				}
			}
		}
	}
	newLog, _ := os.ReadFile(d.LogPath())
	if bad := "reconcile on connect failed"; bytes.Contains(newLog, []byte(bad)) {
		t.Errorf("%s: the restarted daemon logged %q:\n%s", name, bad, grepLines(newLog, bad))
	}
	const reconciled = "hypervisor: reconciled switch"
	if got := grepLines(newLog, reconciled); !stale && got != "" {
		t.Errorf("%s: the restarted daemon reconciled:\n%s", name, got)
	} else if stale {
		lines := strings.Split(got, "\n")
		if want := "dpid=" + controller.DPID(staleSw.DPID).String(); got == "" || len(lines) != 1 || !strings.Contains(got, want) ||
			!strings.Contains(got, "added=0") || !strings.Contains(got, "deleted=1") {
			t.Errorf("%s: want one %q of %s with added=0 deleted=1, got:\n%s", name, reconciled, want, got)
		}
	}
	connected := bytes.Count(newLog, []byte("switch connected"))
	resynced := time.Since(pingStart)

	var results []string
	for i, p := range pings {
		r := p.wait(t)
		pingTook := time.Since(pingStart)
		inDown := r.repliesBetween(downAt, upAt)
		results = append(results, fmt.Sprintf("%s->%s %d sent in %v, %d received, %d lost, %d replies in the %v down",
			pairs[i][0].Lab, pairs[i][1].Lab, r.sent, pingTook.Round(100*time.Millisecond), len(r.seqs), r.sent-len(r.seqs), inDown,
			upAt.Sub(downAt).Round(time.Millisecond)))
		if r.sent != restartCount || len(r.seqs) != r.sent {
			t.Errorf("%s: ping %s -> %s: %d sent, %d received, want %d and none lost (longest gap %d)\n%s",
				name, pairs[i][0].Lab, pairs[i][1].Lab, r.sent, len(r.seqs), restartCount, r.longestGap(), r.missing())
		}
		if inDown == 0 {
			t.Errorf("%s: ping %s -> %s: no reply while skyvisor was down", name, pairs[i][0].Lab, pairs[i][1].Lab)
		}
		if resynced >= pingTook {
			t.Errorf("%s: the restart (done %v after the ping started) did not happen during the ping (%v)", name, resynced, pingTook)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	resync := "none added or deleted"
	if stale {
		resync = fmt.Sprintf("the stale entry deleted %v after the start, nothing else", staleGone.Round(time.Millisecond))
	}
	t.Logf("%s: pid %d ended (%s) in %v; down %v; new pid %d healthy %v after its start (%d switch connections), tables checked %v after the stop; %d entries, %s; %s; load %s",
		name, oldPID, state, stopTook.Round(time.Millisecond), upAt.Sub(downAt).Round(time.Millisecond), d.PID(),
		healthy.Round(time.Millisecond), connected, sinceStop.Round(time.Millisecond), countEntries(after), resync, strings.Join(results, "; "),
		strings.Join(strings.Fields(string(load))[:3], " "))
	return d
}

// hostOut runs argv in a lab host's namespace and returns its output.
func hostOut(t *testing.T, ctx context.Context, stateDir, host string, argv ...string) string {
	t.Helper()
	c, err := lab.HostCommand(ctx, stateDir, host, argv...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", host, strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// pingOnce pings dst from src, one echo at a time, until one is answered.
func pingOnce(t *testing.T, ctx context.Context, stateDir string, src, dst Host, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := lab.HostCommand(ctx, stateDir, src.Lab, "ping", "-c", "1", "-W", "1", dst.IP)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s -> %s (%s) does not ping after %v: %v\n%s", src.Lab, dst.Lab, dst.IP, timeout, err, out)
		}
	}
}

// contPing is `ping -D -O -i 0.01 -c count` (100 packets/s) running in a
// host's namespace.
type contPing struct {
	out  bytes.Buffer
	done chan error
}

func startContPing(t *testing.T, ctx context.Context, stateDir string, src Host, ip string, count int) *contPing {
	t.Helper()
	c, err := lab.HostCommand(ctx, stateDir, src.Lab, "ping", "-D", "-O", "-i", "0.01", "-W", "1", "-c", strconv.Itoa(count), ip)
	if err != nil {
		t.Fatal(err)
	}
	p := &contPing{done: make(chan error, 1)}
	c.Stdout, c.Stderr = &p.out, &p.out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- c.Wait() }()
	return p
}

// pingResult is a finished ping: requests sent, answered sequence numbers
// (sorted, unique) and the time of each reply (ping -D).
type pingResult struct {
	sent  int
	seqs  []int
	times []time.Time
	out   string
}

var (
	contReply   = regexp.MustCompile(`(?m)^\[(\d+)\.(\d+)\] \d+ bytes from .*icmp_seq=(\d+) `)
	contSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
)

func (p *contPing) wait(t *testing.T) pingResult {
	t.Helper()
	err := <-p.done
	out := p.out.String()
	m := contSummary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ping summary (%v):\n%s", err, lastLines([]byte(out), 20))
	}
	r := pingResult{out: out}
	r.sent, _ = strconv.Atoi(m[1])
	for _, mm := range contReply.FindAllStringSubmatch(out, -1) {
		sec, _ := strconv.ParseInt(mm[1], 10, 64)
		frac := mm[2]
		for len(frac) < 9 {
			frac += "0"
		}
		ns, _ := strconv.ParseInt(frac[:9], 10, 64)
		r.times = append(r.times, time.Unix(sec, ns))
		n, _ := strconv.Atoi(mm[3])
		r.seqs = append(r.seqs, n)
	}
	slices.Sort(r.seqs)
	r.seqs = slices.Compact(r.seqs)
	return r
}

// repliesBetween counts the replies received in [from, to].
func (r pingResult) repliesBetween(from, to time.Time) int {
	n := 0
	for _, at := range r.times {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// longestGap is the longest run of unanswered sequence numbers.
func (r pingResult) longestGap() int {
	gap, prev := 0, 0
	for _, s := range r.seqs {
		gap = max(gap, s-prev-1)
		prev = s
	}
	return max(gap, r.sent-prev)
}

// missing returns ping's "no answer yet" lines (-O), at most 20.
func (r pingResult) missing() string {
	var out []string
	for _, ln := range strings.Split(r.out, "\n") {
		if strings.Contains(ln, "no answer") && len(out) < 20 {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}

// flowTablesStats dumps every switch's flow table (ovs-ofctl -O
// OpenFlow13 dump-flows, with counters), lines sorted, keyed
// "site/bridge".
func flowTablesStats(t *testing.T, ctx context.Context, stateDir string, inv *lab.Inventory) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, sw := range inv.Switches {
		c, err := lab.SiteCommand(ctx, stateDir, sw.Site, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", sw.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s/%s: dump-flows: %v\n%s", sw.Site, sw.Bridge, err, b)
		}
		var lines []string
		for _, ln := range strings.Split(string(b), "\n") {
			if ln = strings.TrimSpace(ln); ln != "" && !strings.HasPrefix(ln, "OFPST_FLOW") {
				lines = append(lines, ln)
			}
		}
		slices.Sort(lines)
		out[sw.Site+"/"+sw.Bridge] = lines
	}
	return out
}

// statField matches the counters and ages of a dump-flows line.
var statField = regexp.MustCompile(`\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]*,?\s*`)

// stripTables drops the counters and ages of every entry (as
// dump-flows --no-stats), lines re-sorted.
func stripTables(in map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, lines := range in {
		var s []string
		for _, ln := range lines {
			s = append(s, strings.TrimSpace(statField.ReplaceAllString(ln, "")))
		}
		slices.Sort(s)
		out[k] = s
	}
	return out
}

func flowTables(t *testing.T, ctx context.Context, stateDir string, inv *lab.Inventory) map[string][]string {
	t.Helper()
	return stripTables(flowTablesStats(t, ctx, stateDir, inv))
}

// stableTables waits until two dumps 2 s apart are equal.
func stableTables(t *testing.T, ctx context.Context, stateDir string, inv *lab.Inventory, timeout time.Duration) {
	t.Helper()
	prev := flowTables(t, ctx, stateDir, inv)
	for deadline := time.Now().Add(timeout); ; {
		time.Sleep(2 * time.Second)
		cur := flowTables(t, ctx, stateDir, inv)
		if equalTables(prev, cur) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("flow tables still changing after %v:\n%s", timeout, diffTables(prev, cur))
		}
		prev = cur
	}
}

func equalTables(a, b map[string][]string) bool {
	return maps.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// diffTables lists the entries only in a ("-") or only in b ("+"), by
// switch, at most 40 lines.
func diffTables(a, b map[string][]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		for _, ln := range a[k] {
			if !slices.Contains(b[k], ln) {
				out = append(out, "- "+k+": "+ln)
			}
		}
		for _, ln := range b[k] {
			if !slices.Contains(a[k], ln) {
				out = append(out, "+ "+k+": "+ln)
			}
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("... %d more", len(out)-40))
	}
	return strings.Join(out, "\n")
}

var durationField = regexp.MustCompile(`\bduration=([0-9.]+)s`)

// entryDuration is a dump-flows line's duration.
func entryDuration(ln string) (time.Duration, bool) {
	m := durationField.FindStringSubmatch(ln)
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

func countEntries(tables map[string][]string) int {
	n := 0
	for _, l := range tables {
		n += len(l)
	}
	return n
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, ln := range strings.Split(string(b), "\n") {
		if strings.Contains(ln, s) && len(out) < 10 {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}
