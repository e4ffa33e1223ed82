// Package ovstest runs private, real Open vSwitch instances for tests.
//
// Each Instance is its own network namespace holding its own ovsdb-server and
// ovs-vswitchd (Open vSwitch 3.1, userspace datapath: bridges must use
// datapath_type=netdev because the kernel has no OVS module), with its state
// (database, sockets, logs) in a private directory. Tests that need it live in
// files with the build tag `integration`; Start skips the test, with the
// reason, when the machine cannot run OVS (not root, binaries missing).
//
// The commands follow the recipe in /work/shared/recipes/README.md: one
// ovs-vswitchd per namespace (two would fight over the "ovs-netdev" tap
// device), OVS_RUNDIR set for every ovs-* client, `ethtool -K eth0 tx off` on
// hosts plugged into a userspace bridge, arp_ignore=1 and IPv6 off in every
// namespace.
package ovstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SchemaPath is the Open_vSwitch database schema installed by the Debian
// package openvswitch-common; Start creates each instance's database from it.
const SchemaPath = "/usr/share/openvswitch/vswitch.ovsschema"

// MaxNameLen is the longest instance or host name accepted. Names become
// network namespace names and, for hosts, Linux interface names (at most 15
// bytes), so callers add their own short prefix and keep them brief.
const MaxNameLen = 12

// commandTimeout bounds each ovs-vsctl/ovs-ofctl/ovs-appctl/ip call.
const commandTimeout = 30 * time.Second

// readyTimeout bounds the wait for a daemon to accept requests.
const readyTimeout = 20 * time.Second

// requiredCommands are the programs Start needs; Available reports the first
// that is missing.
func requiredCommands() []string {
	return []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ip"}
}

// Available reports why real-OVS tests cannot run on this machine, or "" if
// they can: the process must be root (network namespaces, veths) and the
// Open vSwitch programs, the schema and iproute2 must be installed
// (Debian: apt-get install openvswitch-switch iproute2 ethtool).
func Available() string {
	if os.Geteuid() != 0 {
		return "ovstest: real Open vSwitch tests need root (network namespaces and veths)"
	}
	for _, c := range requiredCommands() {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Sprintf("ovstest: %s not found in PATH (apt-get install openvswitch-switch iproute2)", c)
		}
	}
	if _, err := os.Stat(SchemaPath); err != nil {
		return fmt.Sprintf("ovstest: schema %s missing (apt-get install openvswitch-switch)", SchemaPath)
	}
	return ""
}

// Instance is one private Open vSwitch: network namespace NetNS (equal to
// Name) running ovsdb-server and ovs-vswitchd, with state under Dir
// (db/conf.db, run/ for sockets and pid files, log/). DBSock is the path of
// the ovsdb-server unix socket (RFC 7047 JSON-RPC). All methods are safe for
// concurrent use.
type Instance struct {
	Name   string // caller-chosen name, also the namespace name
	NetNS  string // network namespace holding both daemons
	Dir    string // state directory: db/, run/, log/, etc/
	DBSock string // unix socket path of ovsdb-server

	t  testing.TB
	mu sync.Mutex
	// ovsdb and vswitchd are the running daemons (nil while stopped).
	ovsdb, vswitchd *daemon
}

// daemon is a process started in the namespace, reaped by its own goroutine.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // exit status, valid after done is closed
}

// Start creates the namespace name (at most MaxNameLen characters of
// [A-Za-z0-9_-]; the caller picks a prefix unique to its package), a state
// directory under t.TempDir() (or under os.TempDir() when the test directory
// would make the socket path longer than a unix socket allows), starts
// ovsdb-server (remote punix:<Dir>/run/db.sock) and ovs-vswitchd in the
// namespace, and waits until vswitchd has applied the database. Cleanup kills
// both daemons by PID, deletes the namespace and every host namespace made by
// AddHost, and, if the test failed, logs the tail of the daemons' logs. A
// namespace of the same name left by an earlier crashed run is removed first
// (its processes are killed). Start calls t.Skip(Available()) when real OVS
// cannot run here and t.Fatal on any other failure.
func Start(t testing.TB, name string) *Instance {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip(why)
	}
	if err := checkName(name); err != nil {
		t.Fatalf("ovstest: instance %v", err)
	}
	dir := stateDir(t, name)
	inst := &Instance{
		Name:   name,
		NetNS:  name,
		Dir:    dir,
		DBSock: filepath.Join(dir, "run", "db.sock"),
		t:      t,
	}
	for _, sub := range []string{"db", "run", "log", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatalf("ovstest: %v", err)
		}
	}
	removeNetNS(t, name) // leftover of a crashed run
	if err := newNetNS(name); err != nil {
		t.Fatalf("ovstest: %v", err)
	}
	t.Cleanup(func() { removeNetNS(t, name) })
	t.Cleanup(inst.stopAll)

	if out, err := exec.Command("ovsdb-tool", "create", inst.dbFile(), SchemaPath).CombinedOutput(); err != nil {
		t.Fatalf("ovstest: ovsdb-tool create: %v: %s", err, out)
	}
	if err := inst.startOVSDB(); err != nil {
		t.Fatalf("ovstest: %s: %v", name, err)
	}
	if _, err := inst.Vsctl("--no-wait", "--", "init", "--", "set", "Open_vSwitch", ".",
		"external_ids:system-id="+name); err != nil {
		t.Fatalf("ovstest: %s: %v", name, err)
	}
	if err := inst.startVswitchd(); err != nil {
		t.Fatalf("ovstest: %s: %v", name, err)
	}
	return inst
}

func checkName(name string) error {
	valid := len(name) > 0 && len(name) <= MaxNameLen && name[0] != '-' && name[0] != '_'
	for _, r := range name {
		valid = valid && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}
	if !valid {
		return fmt.Errorf("name %q: want 1-%d characters of [A-Za-z0-9_-]", name, MaxNameLen)
	}
	return nil
}

// stateDir returns t.TempDir(), or a shorter directory when t.TempDir() would
// make <dir>/run/ovs-vswitchd.ctl or a bridge's .mgmt socket longer than the
// 107 bytes a unix socket path may have.
func stateDir(t testing.TB, name string) string {
	dir := t.TempDir()
	if len(dir) <= 60 {
		return dir
	}
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		t.Fatalf("ovstest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (i *Instance) dbFile() string { return filepath.Join(i.Dir, "db", "conf.db") }
func (i *Instance) runDir() string { return filepath.Join(i.Dir, "run") }
func (i *Instance) logDir() string { return filepath.Join(i.Dir, "log") }

// VswitchdCtl is the unixctl socket of ovs-vswitchd (for ovs-appctl -t).
func (i *Instance) VswitchdCtl() string { return filepath.Join(i.runDir(), "ovs-vswitchd.ctl") }

// OVSDBCtl is the unixctl socket of ovsdb-server (for ovs-appctl -t).
func (i *Instance) OVSDBCtl() string { return filepath.Join(i.runDir(), "ovsdb-server.ctl") }

// DBEndpoint is the OVSDB endpoint of the instance in libovsdb's syntax,
// "unix:<DBSock>".
func (i *Instance) DBEndpoint() string { return "unix:" + i.DBSock }

// env is the environment of every command run for the instance: the OVS_*
// directories point at the instance so no client talks to the system OVS.
func (i *Instance) env() []string {
	return append(os.Environ(),
		"OVS_RUNDIR="+i.runDir(),
		"OVS_DBDIR="+filepath.Join(i.Dir, "db"),
		"OVS_LOGDIR="+i.logDir(),
		"OVS_SYSCONFDIR="+filepath.Join(i.Dir, "etc"),
	)
}

// Exec runs name with args inside the instance's namespace with the OVS_*
// environment set, and returns its standard output without the final
// newline. On failure the error includes the command and its standard error.
func (i *Instance) Exec(ctx context.Context, name string, args ...string) (string, error) {
	return run(ctx, i.env(), append([]string{"ip", "netns", "exec", i.NetNS, name}, args...)...)
}

func (i *Instance) exec(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return i.Exec(ctx, name, args...)
}

// Vsctl runs ovs-vsctl against the instance's database (--db and
// --timeout=20 are added; commands that change the configuration wait until
// ovs-vswitchd applied them unless the caller passes --no-wait).
func (i *Instance) Vsctl(args ...string) (string, error) {
	return i.exec("ovs-vsctl", append([]string{"--db=" + i.DBEndpoint(), "--timeout=20"}, args...)...)
}

// Ofctl runs ovs-ofctl in the namespace; it reaches bridges through their
// <OVS_RUNDIR>/<bridge>.mgmt sockets. The caller passes the protocol,
// e.g. Ofctl("-O", "OpenFlow13", "dump-flows", "br").
func (i *Instance) Ofctl(args ...string) (string, error) {
	return i.exec("ovs-ofctl", args...)
}

// Appctl runs ovs-appctl against the instance's ovs-vswitchd.
func (i *Instance) Appctl(args ...string) (string, error) {
	return i.exec("ovs-appctl", append([]string{"-t", i.VswitchdCtl()}, args...)...)
}

// AddBridge adds bridge br with datapath_type=netdev, protocols=OpenFlow13
// and fail_mode=secure; extra are further ovs-vsctl "column=value" settings
// for the bridge (e.g. "other_config:datapath-id=0000000000000001"). The
// bridge is deleted with the instance. Fails the test on error.
func (i *Instance) AddBridge(t testing.TB, br string, extra ...string) {
	t.Helper()
	args := []string{"add-br", br, "--", "set", "Bridge", br,
		"datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure"}
	args = append(args, extra...)
	if _, err := i.Vsctl(args...); err != nil {
		t.Fatalf("ovstest: %s: add bridge %s: %v", i.Name, br, err)
	}
}

// AddHost plugs a simulated machine into bridge: network namespace host
// (MaxNameLen characters at most) with interface eth0 (MAC mac, address cidr
// e.g. "10.0.0.1/24", transmit checksum offload off so TCP works over the
// userspace datapath), linked by a veth to interface host in the instance's
// namespace, which is added to bridge as port host with the given
// Interface external_ids (e.g. iface-id, attached-mac). An empty mac or cidr
// leaves the kernel's choice / no address. Cleanup deletes the host
// namespace (and so the veth). Fails the test on error.
func (i *Instance) AddHost(t testing.TB, host, bridge string, mac, cidr string, externalIDs map[string]string) {
	t.Helper()
	if err := checkName(host); err != nil {
		t.Fatalf("ovstest: host %v", err)
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("ovstest: ethtool not found in PATH (apt-get install ethtool)")
	}
	removeNetNS(t, host)
	if err := newNetNS(host); err != nil {
		t.Fatalf("ovstest: %v", err)
	}
	t.Cleanup(func() { removeNetNS(t, host) })
	steps := [][]string{
		{"ip", "link", "add", host, "netns", i.NetNS, "type", "veth", "peer", "name", "eth0", "netns", host},
		{"ip", "netns", "exec", host, "ethtool", "-K", "eth0", "tx", "off"},
		{"ip", "netns", "exec", i.NetNS, "ethtool", "-K", host, "tx", "off"},
	}
	if mac != "" {
		steps = append(steps, []string{"ip", "netns", "exec", host, "ip", "link", "set", "eth0", "address", mac})
	}
	if cidr != "" {
		steps = append(steps, []string{"ip", "netns", "exec", host, "ip", "addr", "add", cidr, "dev", "eth0"})
	}
	steps = append(steps,
		[]string{"ip", "netns", "exec", host, "ip", "link", "set", "eth0", "up"},
		[]string{"ip", "netns", "exec", i.NetNS, "ip", "link", "set", host, "up"},
	)
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		_, err := run(ctx, nil, s...)
		cancel()
		if err != nil {
			t.Fatalf("ovstest: add host %s: %v", host, err)
		}
	}
	args := []string{"add-port", bridge, host}
	if len(externalIDs) > 0 {
		args = append(args, "--", "set", "Interface", host)
		keys := make([]string, 0, len(externalIDs))
		for k := range externalIDs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, fmt.Sprintf("external_ids:%s=%q", k, externalIDs[k]))
		}
	}
	if _, err := i.Vsctl(args...); err != nil {
		t.Fatalf("ovstest: add host %s to %s: %v", host, bridge, err)
	}
}

// HostExec runs a command inside host namespace host (made by AddHost) and
// returns its standard output, e.g. HostExec(ctx, "h1", "ping", "-c1", ip).
func HostExec(ctx context.Context, host, name string, args ...string) (string, error) {
	return run(ctx, nil, append([]string{"ip", "netns", "exec", host, name}, args...)...)
}

// RestartVswitchd stops ovs-vswitchd (SIGTERM, then SIGKILL after 5 s) and
// starts it again on the same database, waiting until it applied the
// configuration. Bridges and ports persist in the database; flow tables do
// not. Fails the test on error.
func (i *Instance) RestartVswitchd(t testing.TB) {
	t.Helper()
	i.mu.Lock()
	d := i.vswitchd
	i.vswitchd = nil
	i.mu.Unlock()
	d.stop()
	if err := i.startVswitchd(); err != nil {
		t.Fatalf("ovstest: %s: restart: %v", i.Name, err)
	}
}

// RestartOVSDB stops ovsdb-server and starts it again on the same database
// file and socket path, waiting until it answers. Clients (ovs-vswitchd,
// libovsdb) see their connection drop and must reconnect. Fails the test on
// error.
func (i *Instance) RestartOVSDB(t testing.TB) {
	t.Helper()
	i.StopOVSDB(t)
	i.StartOVSDB(t)
}

// StopOVSDB stops ovsdb-server (SIGTERM, then SIGKILL after 5 s) and waits
// until it has exited; StartOVSDB starts it again. Between the two, clients
// cannot reach the database.
func (i *Instance) StopOVSDB(t testing.TB) {
	t.Helper()
	i.mu.Lock()
	d := i.ovsdb
	i.ovsdb = nil
	i.mu.Unlock()
	d.stop()
}

// StartOVSDB starts ovsdb-server on the instance's database file and socket
// path after StopOVSDB, waiting until it answers. Fails the test on error.
func (i *Instance) StartOVSDB(t testing.TB) {
	t.Helper()
	i.mu.Lock()
	running := i.ovsdb != nil
	i.mu.Unlock()
	if running {
		t.Fatalf("ovstest: %s: ovsdb-server already running", i.Name)
	}
	if err := i.startOVSDB(); err != nil {
		t.Fatalf("ovstest: %s: start ovsdb-server: %v", i.Name, err)
	}
}

// AppctlOVSDB runs ovs-appctl against the instance's ovsdb-server (e.g.
// "memory/show", "ovsdb-server/list-dbs").
func (i *Instance) AppctlOVSDB(args ...string) (string, error) {
	return i.exec("ovs-appctl", append([]string{"-t", i.OVSDBCtl()}, args...)...)
}

// OVSDBPID and VswitchdPID return the daemons' process IDs (0 if stopped).
func (i *Instance) OVSDBPID() int { return i.pid(func() *daemon { return i.ovsdb }) }

// VswitchdPID returns the process ID of ovs-vswitchd (0 if stopped).
func (i *Instance) VswitchdPID() int { return i.pid(func() *daemon { return i.vswitchd }) }

func (i *Instance) pid(get func() *daemon) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if d := get(); d != nil {
		return d.cmd.Process.Pid
	}
	return 0
}

func (i *Instance) startOVSDB() error {
	d, err := i.spawn("ovsdb-server", i.dbFile(),
		"--remote=punix:"+i.DBSock,
		"--unixctl="+i.OVSDBCtl(),
		"--pidfile="+filepath.Join(i.runDir(), "ovsdb-server.pid"),
		"--log-file="+filepath.Join(i.logDir(), "ovsdb-server.log"),
		"--no-chdir", "-vconsole:off")
	if err != nil {
		return err
	}
	i.mu.Lock()
	i.ovsdb = d
	i.mu.Unlock()
	// Ready when a client can read the database.
	return i.waitReady(d, func() error {
		_, err := i.exec("ovs-vsctl", "--db="+i.DBEndpoint(), "--timeout=2", "--no-wait", "show")
		return err
	})
}

func (i *Instance) startVswitchd() error {
	d, err := i.spawn("ovs-vswitchd", i.DBEndpoint(),
		"--unixctl="+i.VswitchdCtl(),
		"--pidfile="+filepath.Join(i.runDir(), "ovs-vswitchd.pid"),
		"--log-file="+filepath.Join(i.logDir(), "ovs-vswitchd.log"),
		"--no-chdir", "-vconsole:off")
	if err != nil {
		return err
	}
	i.mu.Lock()
	i.vswitchd = d
	i.mu.Unlock()
	// Ready when vswitchd has applied a configuration change: ovs-vsctl
	// bumps next_cfg and waits until vswitchd reports it in cur_cfg.
	return i.waitReady(d, func() error {
		_, err := i.exec("ovs-vsctl", "--db="+i.DBEndpoint(), "--timeout=5",
			"set", "Open_vSwitch", ".", "external_ids:ovstest-ready="+fmt.Sprint(time.Now().UnixNano()))
		return err
	})
}

// spawn starts name in the namespace. The process is started from a locked
// OS thread that lives as long as the process, so Pdeathsig (SIGKILL when
// that thread dies) fires only when the test binary exits without cleanup
// (timeout, crash), never earlier.
func (i *Instance) spawn(name string, args ...string) (*daemon, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", i.NetNS, name}, args...)...)
	cmd.Env = i.env()
	stderr, err := os.OpenFile(filepath.Join(i.logDir(), name+".stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer stderr.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.err = cmd.Wait()
		close(d.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return d, nil
}

// waitReady polls probe until it succeeds, the daemon exits or readyTimeout
// passes.
func (i *Instance) waitReady(d *daemon, probe func() error) error {
	deadline := time.Now().Add(readyTimeout)
	delay := 5 * time.Millisecond
	for {
		select {
		case <-d.done:
			return fmt.Errorf("%s exited during start (%v): %s", d.name, d.err, i.logTail(d.name, 10))
		default:
		}
		err := probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w", d.name, readyTimeout, err)
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// stop terminates the daemon: SIGTERM, then SIGKILL if it has not exited
// within 5 s. It waits until the process is reaped.
func (d *daemon) stop() {
	if d == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// stopAll stops both daemons (vswitchd first) and logs their log tails if
// the test failed.
func (i *Instance) stopAll() {
	i.mu.Lock()
	vs, db := i.vswitchd, i.ovsdb
	i.vswitchd, i.ovsdb = nil, nil
	i.mu.Unlock()
	vs.stop()
	db.stop()
	if i.t.Failed() {
		for _, n := range []string{"ovs-vswitchd", "ovsdb-server"} {
			i.t.Logf("ovstest: %s: last lines of %s.log:\n%s", i.Name, n, i.logTail(n, 25))
		}
	}
}

// logTail returns the last n lines of the daemon's log file.
func (i *Instance) logTail(daemon string, n int) string {
	b, err := os.ReadFile(filepath.Join(i.logDir(), daemon+".log"))
	if err != nil {
		b, _ = os.ReadFile(filepath.Join(i.logDir(), daemon+".stderr"))
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// newNetNS creates namespace name with lo up, IPv6 off and arp_ignore=1
// (so the kernel does not answer ARP for addresses of other interfaces).
func newNetNS(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	for _, s := range [][]string{
		{"ip", "netns", "add", name},
		{"ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", name, "sysctl", "-qw",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
			"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.default.arp_ignore=1"},
	} {
		if _, err := run(ctx, nil, s...); err != nil {
			return fmt.Errorf("namespace %s: %w", name, err)
		}
	}
	return nil
}

// removeNetNS kills the processes still inside namespace name (only ours:
// the name carries the caller's prefix) and deletes it. Missing is fine.
func removeNetNS(t testing.TB, name string) {
	if _, err := os.Stat(filepath.Join("/run/netns", name)); errors.Is(err, os.ErrNotExist) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if out, err := run(ctx, nil, "ip", "netns", "pids", name); err == nil {
		for _, f := range strings.Fields(out) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if _, err := run(ctx, nil, "ip", "netns", "del", name); err != nil {
		t.Logf("ovstest: %v", err)
	}
}

// run executes argv with env (nil = inherit) and returns standard output
// without its final newline; errors carry the command and standard error.
func run(ctx context.Context, env []string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSuffix(stdout.String(), "\n"), nil
}
