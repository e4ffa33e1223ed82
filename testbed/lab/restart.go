package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Daemon names one of a site's Open vSwitch daemons.
type Daemon string

// The daemons Restart knows.
const (
	// VSwitchd is the site's ovs-vswitchd (datapath, OpenFlow, tunnels).
	VSwitchd Daemon = "ovs-vswitchd"
	// OVSDBServer is the site's ovsdb-server (the Open_vSwitch database).
	OVSDBServer Daemon = "ovsdb-server"
)

// Restart ends site's daemon d and starts it again the way Up started it, as
// an operator restarting (or upgrading) Open vSwitch would, and returns the
// new process ID. The old process is the PID in the site's pid file (the one
// Status reports as ovs_vswitchd_pid / ovsdb_server_pid); it is signalled
// (SIGTERM, then SIGKILL after 3 s) only if /proc/PID/cmdline is that daemon
// with the lab's state directory, else Restart fails and ends nothing.
//
// ovsdb-server restarts over the same database file (nothing is lost;
// ovs-vswitchd and OVSDB clients reconnect by themselves); Restart (and
// Start) return once a running ovs-vswitchd has reconnected (every gateway and VM bridge has its
// datapath_id again: an ephemeral column, written by ovs-vswitchd). A restarted
// ovs-vswitchd rebuilds every bridge and port from the database with empty
// flow tables; the state the lab keeps outside the database is put back:
// the seeded tunnel neighbour cache (lost with the process: without it the
// first tunnelled packets wait for ARP) and, should the device have been
// recreated, br-phy's underlay address, link state and WireGuard route (OVS
// 3.1 keeps the tap device and its address; both steps are idempotent).
// Errors name the step at fault.
func Restart(ctx context.Context, stateDir, site string, d Daemon) (int, error) {
	s, i, err := siteOf(stateDir, site, d)
	if err != nil {
		return 0, fmt.Errorf("restart: %w", err)
	}
	unlock, err := lockDir(stateDir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := stopDaemon(daemonPidfile(stateDir, i, d), stateDir, d, false); err != nil {
		return 0, fmt.Errorf("restart %s of site %s: %w", d, site, err)
	}
	pid, err := startDaemon(ctx, s, i, d)
	if err != nil {
		return 0, fmt.Errorf("restart %s of site %s: %w", d, site, err)
	}
	return pid, nil
}

// Kill ends site's daemon d with SIGKILL, as a crash would: the daemon
// cleans nothing up (its pid file and sockets stay, ovs-vswitchd's flow
// tables are gone). The same ownership check as Restart applies; a daemon
// that is not running is not an error. Start brings it back.
func Kill(_ context.Context, stateDir, site string, d Daemon) error {
	s, i, err := siteOf(stateDir, site, d)
	if err != nil {
		return err
	}
	unlock, err := lockDir(s.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := stopDaemon(daemonPidfile(stateDir, i, d), stateDir, d, true); err != nil {
		return fmt.Errorf("kill %s of site %s: %w", d, site, err)
	}
	return nil
}

// Start starts site's daemon d the way Up started it (after Kill, or after
// it died) and returns its PID, with the same restoration as Restart. It
// fails if the daemon is running.
func Start(ctx context.Context, stateDir, site string, d Daemon) (int, error) {
	s, i, err := siteOf(stateDir, site, d)
	if err != nil {
		return 0, err
	}
	unlock, err := lockDir(stateDir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if pid := livePID(daemonPidfile(stateDir, i, d), stateDir+"/"); pid != 0 {
		return 0, fmt.Errorf("start %s of site %s: already running as pid %d", d, site, pid)
	}
	pid, err := startDaemon(ctx, s, i, d)
	if err != nil {
		return 0, fmt.Errorf("start %s of site %s: %w", d, site, err)
	}
	return pid, nil
}

// siteOf loads the lab at stateDir and returns its spec and site's index.
func siteOf(stateDir, site string, d Daemon) (*Spec, int, error) {
	if d != VSwitchd && d != OVSDBServer {
		return nil, 0, fmt.Errorf("%s: unknown daemon %q (want %s or %s)", site, d, VSwitchd, OVSDBServer)
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, 0, err
	}
	i := st.Spec.siteIndex(site)
	if i == 0 {
		return nil, 0, fmt.Errorf("no site %q in the lab at %s", site, stateDir)
	}
	return &st.Spec, i, nil
}

// startDaemon starts site i's daemon d, restores what it needs and returns
// its PID.
func startDaemon(ctx context.Context, s *Spec, i int, d Daemon) (int, error) {
	stateDir := s.StateDir
	ns := SiteNetns(s.Prefix, i)
	var err error
	switch d {
	case OVSDBServer:
		err = startOVSDBServer(ctx, stateDir, i, ns)
		if err == nil && livePID(daemonPidfile(stateDir, i, VSwitchd), stateDir+"/") != 0 {
			// wait until a running ovs-vswitchd has reconnected (it
			// rewrites the ephemeral columns: datapath_id, ofport, ...)
			args := []string{"--", "wait-until", "bridge", GatewayBridge, "datapath_id!=[]"}
			for _, vm := range s.Sites[i-1].VMs.List() {
				args = append(args, "--", "wait-until", "bridge", vm, "datapath_id!=[]")
			}
			if _, err = vsctl(ctx, stateDir, i, args...); err != nil {
				err = fmt.Errorf("ovs-vswitchd did not reconnect: %w", err)
			}
		}
	case VSwitchd:
		err = startVSwitchd(ctx, stateDir, i, ns)
		if err == nil {
			err = restoreUnderlay(ctx, s, i, ns)
		}
	}
	if err != nil {
		return 0, err
	}
	pidfile := daemonPidfile(stateDir, i, d)
	pid := livePID(pidfile, stateDir+"/")
	if pid == 0 {
		return 0, fmt.Errorf("no live process in %s after start", pidfile)
	}
	return pid, nil
}

// daemonPidfile is the pid file of site i's daemon d.
func daemonPidfile(stateDir string, i int, d Daemon) string {
	return filepath.Join(RunDir(stateDir, i), string(d)+".pid")
}

// errNotOwned is returned when a pid file names a process that is not the
// lab's daemon (a reused PID): nothing is signalled.
var errNotOwned = errors.New("not the lab's process")

// stopDaemon ends the process named by pidfile if it is daemon d of the lab
// at stateDir (argv[0]'s base name is d and an argument names stateDir/):
// SIGTERM then SIGKILL after 3 s, or with hard SIGKILL at once. A missing
// pid file or a dead process is not an error (nothing to stop).
func stopDaemon(pidfile, stateDir string, d Daemon, hard bool) error {
	pid := readPID(pidfile)
	if pid == 0 || !alive(pid) {
		return nil
	}
	if err := ownedDaemon(pid, stateDir, d); err != nil {
		return err
	}
	if !hard {
		return killPID(pid)
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if !alive(pid) {
			return nil
		}
	}
	return fmt.Errorf("process %d survived SIGKILL", pid)
}

// ownedDaemon checks /proc/PID/cmdline: argv[0] must be daemon d (by base
// name, "ovs-vswitchd: monitoring pid" style rewrites included) and some
// argument must name a path under stateDir.
func ownedDaemon(pid int, stateDir string, d Daemon) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	name := strings.Fields(args[0] + " ")[0]
	name = strings.TrimSuffix(filepath.Base(name), ":")
	if name != string(d) || !bytes.Contains(b, []byte(stateDir+"/")) {
		return fmt.Errorf("pid %d (%q): %w", pid, strings.Join(args, " "), errNotOwned)
	}
	return nil
}

// startOVSDBServer starts site i's ovsdb-server over its existing database
// with the arguments startOVS uses.
func startOVSDBServer(ctx context.Context, stateDir string, i int, ns string) error {
	d := siteDir(stateDir, i)
	rd := filepath.Join(d, "run")
	_, err := nsRun(ctx, ns, ovsEnv(stateDir, i), "ovsdb-server", filepath.Join(d, "db", "conf.db"),
		"--remote=punix:"+filepath.Join(rd, "db.sock"),
		"--pidfile="+filepath.Join(rd, "ovsdb-server.pid"),
		"--unixctl="+filepath.Join(rd, "ovsdb-server.ctl"),
		"--log-file="+filepath.Join(d, "log", "ovsdb-server.log"),
		"--detach", "--no-chdir", "-vconsole:off")
	return err
}

// startVSwitchd starts site i's ovs-vswitchd with the arguments startOVS
// uses and waits until it has built the bridges of the database (the
// underlay bridge's device exists in the site namespace).
func startVSwitchd(ctx context.Context, stateDir string, i int, ns string) error {
	d := siteDir(stateDir, i)
	rd := filepath.Join(d, "run")
	if _, err := nsRun(ctx, ns, ovsEnv(stateDir, i), "ovs-vswitchd", OVSDBEndpoint(stateDir, i),
		"--pidfile="+filepath.Join(rd, "ovs-vswitchd.pid"),
		"--log-file="+filepath.Join(d, "log", "ovs-vswitchd.log"),
		"--detach", "--no-chdir", "-vconsole:off"); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := run(ctx, nil, "ip", "-n", ns, "link", "show", UnderlayBridge); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s did not reappear within 10 s: %w", UnderlayBridge, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// restoreUnderlay puts back what Up set outside the OVS database and a new
// ovs-vswitchd may not have: br-phy's address and link state, the WireGuard
// route and the tunnel neighbour seeds.
func restoreUnderlay(ctx context.Context, s *Spec, i int, ns string) error {
	bits := s.WAN.Subnet[strings.IndexByte(s.WAN.Subnet, '/'):]
	if s.WireGuard {
		bits = "/24"
	}
	if _, err := run(ctx, nil, "ip", "-n", ns, "addr", "replace", TunnelEndpoint(s, i)+bits, "dev", UnderlayBridge); err != nil {
		return fmt.Errorf("underlay address: %w", err)
	}
	if _, err := run(ctx, nil, "ip", "-n", ns, "link", "set", UnderlayBridge, "up"); err != nil {
		return fmt.Errorf("underlay link: %w", err)
	}
	if s.WireGuard {
		if _, err := run(ctx, nil, "ip", "-n", ns, "route", "replace", "10.99.0.0/16", "via", EdgeLANAddr(i)); err != nil {
			return fmt.Errorf("underlay route: %w", err)
		}
		if _, err := appctl(ctx, s.StateDir, i, "tnl/neigh/set", UnderlayBridge, EdgeLANAddr(i), EdgeLANMAC(i).String()); err != nil {
			return fmt.Errorf("seed tunnel neighbour: %w", err)
		}
		return nil
	}
	for k := range s.Sites {
		if k+1 == i {
			continue
		}
		if _, err := appctl(ctx, s.StateDir, i, "tnl/neigh/set", UnderlayBridge, s.Sites[k].PublicIP, UnderlayMAC(k+1).String()); err != nil {
			return fmt.Errorf("seed tunnel neighbour %s: %w", s.Sites[k].PublicIP, err)
		}
	}
	return nil
}
