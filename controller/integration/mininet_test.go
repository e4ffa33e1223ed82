//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/internal/daemontest"
	"github.com/skyvisor/skyvisor/internal/ovstest"
)

// ovsCtl is the Debian script that starts the system Open vSwitch.
const ovsCtl = "/usr/share/openvswitch/scripts/ovs-ctl"

// rootEnv is the environment for commands that must reach the SYSTEM Open
// vSwitch (root namespace, /var/run/openvswitch): no OVS_* overrides.
func rootEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "OVS_") {
			env = append(env, e)
		}
	}
	return env
}

// sysRun runs argv against the system OVS and returns its output.
func sysRun(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = rootEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// ensureSystemOVS starts the system ovsdb-server and ovs-vswitchd with
// ovs-ctl when they are not running (Mininet only drives the system OVS).
// The kernel has no OVS module; ovs-ctl skips modprobe and the userspace
// datapath works.
func ensureSystemOVS(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := sysRun(ctx, "ovs-vsctl", "--timeout=3", "show"); err == nil {
		if _, err := sysRun(ctx, "ovs-appctl", "-t", "ovs-vswitchd", "version"); err == nil {
			return
		}
	}
	if _, err := os.Stat(ovsCtl); err != nil {
		t.Skipf("system Open vSwitch is not running and %s is missing (apt-get install openvswitch-switch)", ovsCtl)
	}
	out, err := sysRun(ctx, ovsCtl, "start", "--system-id=random")
	if err != nil {
		t.Fatalf("start system Open vSwitch: %v", err)
	}
	t.Logf("started the system Open vSwitch with ovs-ctl:\n%s", out)
	if _, err := sysRun(ctx, "ovs-vsctl", "--timeout=10", "show"); err != nil {
		t.Fatalf("system Open vSwitch not answering after ovs-ctl start: %v", err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// descendants returns the PIDs of every living descendant of pid (from
// /proc/*/stat parent links), deepest first.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, cut after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			walk(c)
			out = append(out, c)
		}
	}
	walk(pid)
	return out
}

// startSkyvisor builds cmd/skyvisor and runs it with args until the test
// ends (daemontest.Start: SIGTERM by PID in cleanup) and returns the path
// of its log, which is printed if the test fails.
func startSkyvisor(t *testing.T, args ...string) string {
	t.Helper()
	return daemontest.Start(t, daemontest.Build(t, t.TempDir(), "github.com/skyvisor/skyvisor/cmd/skyvisor"), args...)
}

// helloLines returns switch_versions of every "hello: negotiated" line in
// the daemon's log.
func helloLines(t *testing.T, logFile string) []string {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	re := regexp.MustCompile(`switch_versions=("[^"]*"|\S+)`)
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "hello: negotiated OpenFlow 1.3") {
			continue
		}
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, strings.Trim(m[1], `"`))
		}
	}
	return out
}

// mininetNames matches what `mn --topo tree,2,2` creates in the root
// namespace: bridges s1..s3 and their veths s<i>-eth<j>.
var mininetNames = regexp.MustCompile(`^s[1-3](-eth[0-9]+)?$`)

// mininetLeftovers lists bridges and links named like Mininet's tree,2,2.
func mininetLeftovers() (bridges, links []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := sysRun(ctx, "ovs-vsctl", "--timeout=5", "list-br"); err == nil {
		for _, b := range strings.Fields(out) {
			if mininetNames.MatchString(b) {
				bridges = append(bridges, b)
			}
		}
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if mininetNames.MatchString(i.Name) && strings.Contains(i.Name, "-eth") {
			links = append(links, i.Name)
		}
	}
	return bridges, links
}

// TestMininetTreePingall runs the skyvisor daemon (apps learning and
// discovery) as the remote controller of `mn --topo tree,2,2` on the system
// Open vSwitch with the userspace datapath: pingall must drop nothing, and
// the discovery app must report exactly the tree's two cables, as four
// directed links, on GET /debug/links. Subtest OpenFlow13 restricts the
// bridges to 1.3 (protocols=OpenFlow13); subtest default-versions leaves
// OVS's default version list (1.0-1.5: OVS 3.1 sends a 1.5 hello without a
// bitmap, the list being contiguous) and the session negotiates 1.3 (spec
// 6.3.1; the offered versions are checked in the daemon's debug log).
func TestMininetTreePingall(t *testing.T) {
	if why := ovstest.Available(); why != "" {
		t.Skip(why)
	}
	if _, err := exec.LookPath("mn"); err != nil {
		t.Skip("mn not found in PATH (apt-get install mininet)")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not in PATH: needed to build cmd/skyvisor")
	}
	ovstest.LockMininet(t)
	ensureSystemOVS(t)
	t.Run("OpenFlow13", func(t *testing.T) { mininetTreePingall(t, "OpenFlow13") })
	t.Run("default-versions", func(t *testing.T) { mininetTreePingall(t, "") })
}

// mininetTreePingall is one TestMininetTreePingall run; protocols is the
// bridges' protocols option ("" for OVS's default).
func mininetTreePingall(t *testing.T, protocols string) {
	if br, ln := mininetLeftovers(); len(br)+len(ln) > 0 {
		t.Fatalf("the system OVS already has Mininet-named bridges %q / links %q (another Mininet running, or a crashed run: "+
			"remove them with ovs-vsctl del-br / ip link del; never `mn -c`, it deletes every bridge)", br, ln)
	}

	ofPort, debugPort := freePort(t), freePort(t)
	debugAddr := fmt.Sprintf("127.0.0.1:%d", debugPort)
	logFile := startSkyvisor(t, "--listen", fmt.Sprintf("127.0.0.1:%d", ofPort), "--apps", "learning,discovery",
		"--debug-addr", debugAddr, "--discovery-probe-interval", "500ms", "--discovery-link-timeout", "3s",
		"--log-level", "debug")
	eventually(t, 15*time.Second, "skyvisor debug endpoint", func() error {
		_, err := daemontest.Links(debugAddr)
		return err
	})

	// The --post CLI script runs after pingall: it marks that point and holds
	// the network up until the test has read the links (60 s at most).
	dir := t.TempDir()
	atPost, release := filepath.Join(dir, "at-post"), filepath.Join(dir, "release")
	post := filepath.Join(dir, "post.cli")
	script := fmt.Sprintf("sh touch %s\nsh for i in $(seq 600); do [ -e %s ] && break; sleep 0.1; done\n", atPost, release)
	if err := os.WriteFile(post, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var mnOut bytes.Buffer
	sw := "ovs,datapath=user"
	if protocols != "" {
		sw += ",protocols=" + protocols
	}
	mn := exec.Command("mn", "--switch", sw,
		"--controller", fmt.Sprintf("remote,ip=127.0.0.1,port=%d", ofPort),
		"--topo", "tree,2,2", "--twait", "60", "--test", "pingall", "--post", post)
	mn.Env = rootEnv()
	mn.Stdout, mn.Stderr = &mnOut, &mnOut
	start := time.Now()
	if err := mn.Start(); err != nil {
		t.Fatal(err)
	}
	mnDone := make(chan error, 1)
	go func() { mnDone <- mn.Wait() }()
	finished := false
	t.Cleanup(func() {
		os.WriteFile(release, nil, 0o644)
		if !finished {
			// Let mn stop the network itself first; kill it (and its
			// children, by PID) only if it does not.
			select {
			case <-mnDone:
			case <-time.After(20 * time.Second):
				pids := descendants(mn.Process.Pid)
				_ = syscall.Kill(mn.Process.Pid, syscall.SIGKILL)
				for _, p := range pids {
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
				<-mnDone
			}
		}
		// Remove only what tree,2,2 creates, if mn left it behind.
		br, ln := mininetLeftovers()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, b := range br {
			if _, err := sysRun(ctx, "ovs-vsctl", "--timeout=10", "--if-exists", "del-br", b); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
		for _, l := range ln {
			if _, err := sysRun(ctx, "ip", "link", "del", l); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
		if len(br)+len(ln) > 0 {
			t.Logf("cleanup removed Mininet leftovers: bridges %q links %q", br, ln)
		}
		if t.Failed() {
			t.Logf("mn output:\n%s", mnOut.String())
		}
	})

	// Wait for the post script (pingall done) or an early mn exit.
	for {
		if _, err := os.Stat(atPost); err == nil {
			break
		}
		select {
		case err := <-mnDone:
			finished = true
			t.Fatalf("mn exited before the post script (%v)", err)
		case <-ctx.Done():
			t.Fatalf("mn did not finish pingall within 4 minutes")
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("mn start + pingall took %v", time.Since(start))

	// tree,2,2: s1 has s2 on port 1 and s3 on port 2; s2 and s3 have their
	// two hosts on ports 1-2 and s1 on port 3 (TreeTopo adds the children's
	// host links before the uplink; Mininet sets ofport_request to the port
	// number). DPIDs come from the names.
	ep := func(d uint64, p uint32) discovery.Endpoint { return discovery.Endpoint{DPID: d, Port: p} }
	want := []discovery.Link{
		{Src: ep(1, 1), Dst: ep(2, 3)},
		{Src: ep(1, 2), Dst: ep(3, 3)},
		{Src: ep(2, 3), Dst: ep(1, 1)},
		{Src: ep(3, 3), Dst: ep(1, 2)},
	}
	var got []discovery.Link
	eventually(t, 10*time.Second, "discovered links", func() error {
		var err error
		got, err = daemontest.Links(debugAddr)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("links %v want %v", got, want)
		}
		return nil
	})
	t.Logf("links: %v", got)
	// What the switches offered in their hellos; the bridges' protocols
	// column is what mn set (empty: OVS's default list).
	qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer qcancel()
	for _, b := range []string{"s1", "s2", "s3"} {
		out, err := sysRun(qctx, "ovs-vsctl", "--timeout=5", "get", "bridge", b, "protocols")
		if err != nil {
			t.Fatal(err)
		}
		want := "[]"
		if protocols != "" {
			want = "[" + protocols + "]"
		}
		if strings.TrimSpace(out) != want {
			t.Errorf("bridge %s protocols = %s, want %s", b, strings.TrimSpace(out), want)
		}
	}
	hellos := helloLines(t, logFile)
	t.Logf("hellos: %q", hellos)
	if len(hellos) < 3 {
		t.Errorf("%d hello negotiations in the daemon log, want one per switch (3)", len(hellos))
	}
	for _, h := range hellos {
		// OVS 3.1's default list is 1.0-1.5, contiguous: its hello has
		// header version 1.5 and no bitmap (implied, spec 6.3.1), and the
		// session takes the lower version, 1.3.
		offersMore := strings.HasPrefix(h, "up to 1.4 ") || strings.HasPrefix(h, "up to 1.5 ") ||
			(strings.Contains(h, "1.3") && strings.Contains(h, ","))
		if protocols == "" && !offersMore {
			t.Errorf("switch offered %q with OVS's default versions, want versions beyond 1.3", h)
		}
		if protocols != "" && h != "1.3" {
			t.Errorf("switch offered %q with protocols=%s, want 1.3", h, protocols)
		}
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-mnDone:
		finished = true
		if err != nil {
			t.Fatalf("mn failed: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("mn did not exit after the post script")
	}
	t.Logf("whole mn run took %v", time.Since(start))
	out := mnOut.String()
	m := regexp.MustCompile(`Results: (\d+)% dropped \((\d+)/(\d+) received\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no pingall result in mn output")
	}
	if m[1] != "0" || m[2] != "12" || m[3] != "12" {
		t.Fatalf("pingall: %s", m[0])
	}
}
