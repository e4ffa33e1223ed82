//go:build integration

package demo

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/internal/ovstest"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the demo needs root (network namespaces, Open vSwitch)")
	}
	for _, b := range []string{"go", "ip", "ethtool", "ping", "tcpdump", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed (make deps)", b)
		}
	}
}

// buildBins builds skyvisor and skyctl into a temporary directory, or
// returns $SKYDEMO_BIN when set (a directory holding both binaries, e.g.
// built from a clean checkout while the working tree is mid-change).
func buildBins(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("SKYDEMO_BIN"); dir != "" {
		for _, b := range []string{"skyvisor", "skyctl"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				t.Fatalf("SKYDEMO_BIN: %v", err)
			}
		}
		t.Logf("using the binaries in SKYDEMO_BIN=%s", dir)
		return dir
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/skyvisor", "./cmd/skyctl")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return dir
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDemo runs the demo end to end twice with prefix "skdt": first with
// Keep (skyvisor and the lab must still run afterwards), then again
// without, which must clean the kept demo up first (idempotent start) and
// tear everything down at the end. Both runs: every intra-tenant pair
// pings, zero frames cross tenants (with the control capture non-empty),
// none of the four spoofed MACs (unbound, another host's, the other
// tenant's fabric MAC, its own fabric MAC) gets a frame through and the
// edge drop entries count every frame sent. Between the runs, on the kept
// lab, unplugReplug unplugs and re-plugs t1-h1.
func TestDemo(t *testing.T) {
	needRoot(t)
	bin := buildBins(t)
	prefix := "skdt"
	stateDir := filepath.Join(t.TempDir(), "lab")
	t.Cleanup(func() {
		if err := Down(context.Background(), prefix, stateDir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	cfg := Config{LabFile: "../../examples/labs/demo.json", TenantsFile: "../../examples/two-tenants.json", BinDir: bin,
		Prefix: prefix, StateDir: stateDir, APIListen: freePort(t), Keep: true, Timeout: 45 * time.Second}
	check := func(name string, sum *Summary, out *bytes.Buffer) {
		t.Helper()
		if f := sum.Failures(); len(f) > 0 {
			t.Fatalf("%s: failures %q\n%s", name, f, out.String())
		}
		if len(sum.Pairs) != 12 {
			t.Errorf("%s: %d pairs, want 12", name, len(sum.Pairs))
		}
		for _, p := range sum.Pairs {
			if !p.OK {
				t.Errorf("%s: %+v", name, p)
			}
		}
		if len(sum.Isolation) != 2 {
			t.Errorf("%s: %d isolation checks, want 2", name, len(sum.Isolation))
		}
		for _, c := range sum.Isolation {
			if c.Leaked != 0 || c.Control == 0 || !c.WANChecked || c.WANFrames == 0 || c.WANForeign != 0 {
				t.Errorf("%s: isolation %+v", name, c)
			}
		}
		if len(sum.Spoofs) != 4 {
			t.Errorf("%s: %d spoof checks, want 4 (unbound, another host's, the other tenant's fabric, own fabric MAC)", name, len(sum.Spoofs))
		}
		for _, sp := range sum.Spoofs {
			if !sp.blocked() || !sp.Restored {
				t.Errorf("%s: spoof %+v", name, sp)
			}
		}
		for _, want := range []string{"skyctl get tenants", "tenant2  513(02:01)  active", "aws~gcp", "PASS: every expectation held",
			"as 00:00:00:00:00:5f (unbound MAC)", "as 00:00:00:00:00:02 (MAC of t1-h2 = t2-h2)", "(fabric MAC of tenant2/h3)", "(own fabric MAC, tenant1/h3)"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: output lacks %q", name, want)
			}
		}
	}

	var out bytes.Buffer
	cfg.Out = &out
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	check("kept run", sum, &out)
	pid := readPID(filepath.Join(stateDir, PIDFile))
	if pid == 0 || !alive(pid) {
		t.Fatalf("kept run: skyvisor pid %d not running", pid)
	}
	if left := ovstest.Leftovers(t, prefix, stateDir); len(left) == 0 {
		t.Fatal("kept run: nothing of the lab is left running")
	}
	if !strings.Contains(out.String(), "--down --prefix skdt") {
		t.Errorf("kept run: no stop instructions:\n%s", out.String())
	}
	if testing.Verbose() {
		t.Logf("kept run:\n%s", out.String())
	}
	unplugReplug(t, stateDir, cfg.APIListen)

	out.Reset()
	cfg.Keep = false
	sum, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	check("second run", sum, &out)
	if alive(pid) {
		t.Errorf("the kept run's skyvisor (pid %d) survived the second run", pid)
	}
	if left := ovstest.Leftovers(t, prefix, stateDir); len(left) > 0 {
		t.Errorf("after teardown: %q", left)
	}
	if testing.Verbose() {
		t.Logf("second run:\n%s", out.String())
	}
}

// unplugReplug works on the kept demo: it unplugs t1-h1 the way `skylab
// unplug` does (lab.Unplug: its OVS port and namespace go), checks that
// skyvisor reports it unbound and that no entry of its VM bridge (aws/vm1,
// which also carries t2-h1) names its fabric MAC or its group-marked
// fabric MAC any more, while t2-h1 on the same bridge keeps pinging; then
// plugs it back (lab.Plug, same MAC, IP and iface-id) and checks that its
// entries return and that it pings both other tenant1 hosts and is pinged
// by them.
func unplugReplug(t *testing.T, stateDir, apiListen string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const host, tenant, name = "t1-h1", "tenant1", "h1"
	inv, err := lab.Status(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	h := inv.Host(host)
	if h == nil {
		t.Fatalf("no lab host %s", host)
	}
	spec := lab.HostSpec{Name: h.Name, Site: h.Site, VM: h.VM, MAC: h.MAC, IP: h.IP, IfaceID: h.IfaceID}
	tok, err := os.ReadFile(filepath.Join(stateDir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := api.NewClient("http://"+apiListen, strings.TrimSpace(string(tok)), nil)
	if err != nil {
		t.Fatal(err)
	}
	binding := func() (api.HostMapping, error) {
		m, err := cli.Mapping(ctx, tenant)
		if err != nil {
			return api.HostMapping{}, err
		}
		for _, hm := range m.Hosts {
			if hm.Name == name {
				if tid, _ := addr.Split(hm.FabricMAC); tid != m.TenantID {
					return hm, fmt.Errorf("fabric MAC %s does not carry tenant ID %s", hm.FabricMAC, m.TenantID)
				}
				return hm, nil
			}
		}
		return api.HostMapping{}, fmt.Errorf("mapping of %s: no host %s", tenant, name)
	}
	hm, err := binding()
	if err != nil {
		t.Fatal(err)
	}
	tid, idx := addr.Split(hm.FabricMAC)
	macs := []string{addr.FabricMAC(tid, idx).String(), addr.GroupMAC(tid, idx).String()}
	dump := func() string {
		c, err := lab.SiteCommand(ctx, stateDir, h.Site, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", h.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Output()
		if err != nil {
			t.Fatalf("dump-flows %s/%s: %v", h.Site, h.Bridge, err)
		}
		return strings.ToLower(string(out))
	}
	naming := func(d string) (n int) {
		for _, l := range strings.Split(d, "\n") {
			for _, m := range macs {
				if strings.Contains(l, m) {
					n++
					break
				}
			}
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 30 s; %s/%s flows:\n%s", what, h.Site, h.Bridge, dump())
			}
		}
	}
	ping := func(from, ip string) error {
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var c *exec.Cmd
			if c, err = lab.HostCommand(ctx, stateDir, from, "ping", "-n", "-c", "1", "-W", "1", ip); err != nil {
				return err
			}
			var out []byte
			if out, err = c.CombinedOutput(); err == nil {
				return nil
			}
			err = fmt.Errorf("%s: ping %s: %w: %s", from, ip, err, out)
		}
		return err
	}

	before := naming(dump())
	if hm.Binding != api.BindingBound || before == 0 {
		t.Fatalf("before unplug: %s is %s, %d entries of %s/%s name %v", host, hm.Binding, before, h.Site, h.Bridge, macs)
	}
	t0 := time.Now()
	if err := lab.Unplug(ctx, stateDir, host); err != nil {
		t.Fatal(err)
	}
	waitFor("unbound and its entries removed", func() bool {
		hm, err := binding()
		return err == nil && hm.Binding == api.BindingUnbound && naming(dump()) == 0
	})
	t.Logf("unplug %s: unbound and the %d entries of %s/%s naming %v gone after %s", host, before, h.Site, h.Bridge, macs, time.Since(t0).Round(10*time.Millisecond))
	if err := ping("t2-h1", "10.0.0.2"); err != nil {
		t.Errorf("t2-h1 on the same bridge after the unplug: %v", err)
	}

	t0 = time.Now()
	if _, err := lab.Plug(ctx, stateDir, spec); err != nil {
		t.Fatal(err)
	}
	waitFor("bound again with its entries back", func() bool {
		hm, err := binding()
		return err == nil && hm.Binding == api.BindingBound && naming(dump()) > 0
	})
	after := naming(dump())
	for _, p := range [][2]string{{host, "10.0.0.2"}, {host, "10.0.0.3"}, {"t1-h2", "10.0.0.1"}, {"t1-h3", "10.0.0.1"}} {
		if err := ping(p[0], p[1]); err != nil {
			t.Errorf("after re-plug: %v", err)
		}
	}
	t.Logf("re-plug %s: bound, %d entries name it again, pings both ways, after %s", host, after, time.Since(t0).Round(10*time.Millisecond))
}
