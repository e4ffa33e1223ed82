package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options tune Up beyond the lab file.
type Options struct {
	// RelayCommand is the argv prefix that runs the WAN delay relay; Up
	// appends the relay flags. Default: the running executable + "wan-relay"
	// (cmd/skylab's hidden subcommand; other binaries and test binaries call
	// MaybeRunRelay first thing in main/TestMain).
	RelayCommand []string
	// Logger receives progress (default: discard).
	Logger *slog.Logger
	// DirectWAN gives every site's gateway bridge a port straight into the
	// WAN, next to the tunnels (DirectPort, DirectPeer; direct.go).
	DirectWAN bool
	// crashAfter, when set (tests), makes Up return right after the named
	// stage without cleaning up, as if the process had died there.
	crashAfter string
}

// errCrash is returned by Up when Options.crashAfter fired.
var errCrash = errors.New("simulated crash")

// Up builds the lab of spec (validated and defaulted on a copy) and returns
// its inventory. Sites are built in parallel. On failure everything Up made is
// removed (as by Down) and the error returned. Up refuses to start when the
// state directory already holds a lab or namespaces with the lab's prefix
// exist. Needs root, iproute2, ethtool and Open vSwitch 3.x binaries.
func Up(ctx context.Context, spec *Spec) (*Inventory, error) {
	return UpWith(ctx, spec, Options{})
}

// UpWith is Up with options.
func UpWith(ctx context.Context, spec *Spec, opt Options) (*Inventory, error) {
	t0 := time.Now()
	s := cloneSpec(spec)
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(opt.RelayCommand) == 0 && s.UsesRelay() {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the relay executable: %w", err)
		}
		opt.RelayCommand = []string{exe, RelayArg}
	}
	if err := checkPrereqs(s); err != nil {
		return nil, err
	}
	dir := s.StateDir
	if _, err := os.Stat(statePath(dir)); err == nil {
		return nil, fmt.Errorf("a lab is already up at %s: run `skylab down --state-dir %s` first", dir, dir)
	}
	if left, err := labNetns(ctx, s.Prefix); err != nil {
		return nil, err
	} else if len(left) > 0 {
		return nil, fmt.Errorf("namespaces of prefix %q exist (%s): run `skylab down --prefix %s` first", s.Prefix, strings.Join(left, ", "), s.Prefix)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	hosts := s.Hosts
	st := &labState{Version: 1, Phase: "building", Spec: *s, Hosts: []HostSpec{}}
	if err := st.save(); err != nil {
		return nil, err
	}
	b := &builder{st: st, s: &st.Spec, opt: opt, log: opt.Logger}
	err = b.build(ctx, hosts)
	if err == nil && s.WAN.MeasureRTT {
		t1 := time.Now()
		if st.Costs, err = measureRTT(ctx, s); err == nil {
			st.RTTNanos = int64(time.Since(t1))
			b.log.Info("rtt measured", "pairs", len(st.Costs), "took", time.Since(t1))
		}
	}
	if err != nil {
		if errors.Is(err, errCrash) {
			return nil, err
		}
		b.mu.Lock()
		made := append([]string{}, b.created...)
		b.mu.Unlock()
		cerr := down(context.WithoutCancel(ctx), dir, s.Prefix, made)
		if cerr != nil {
			return nil, errors.Join(fmt.Errorf("lab up: %w", err), fmt.Errorf("cleanup after failed up: %w", cerr))
		}
		return nil, fmt.Errorf("lab up (cleaned up): %w", err)
	}
	st.Phase = "up"
	st.UpNanos = int64(time.Since(t0))
	if err := st.save(); err != nil {
		return nil, err
	}
	b.log.Info("lab up", "prefix", s.Prefix, "sites", len(s.Sites), "took", time.Since(t0))
	return inventory(ctx, st)
}

func cloneSpec(in *Spec) *Spec {
	s := *in
	s.Sites = append([]SiteSpec(nil), in.Sites...)
	for i := range s.Sites {
		if in.Sites[i].VMs.Names != nil {
			s.Sites[i].VMs.Names = append([]string(nil), in.Sites[i].VMs.Names...)
		}
	}
	s.WAN.Pairs = append([]PairSpec(nil), in.WAN.Pairs...)
	s.Hosts = append([]HostSpec(nil), in.Hosts...)
	return &s
}

func checkPrereqs(s *Spec) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces, veths)")
	}
	bins := []string{"ip", "ethtool", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl"}
	if s.WAN.RateMbit > 0 {
		bins = append(bins, "tc")
	}
	for _, st := range s.Sites {
		if st.RateMbit > 0 {
			bins = append(bins, "tc")
			break
		}
	}
	var missing []string
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing programs %s (apt-get install openvswitch-switch iproute2 ethtool)", strings.Join(missing, ", "))
	}
	if s.WireGuard {
		for _, b := range []string{"wireguard-go", "wg", "ping"} {
			if _, err := exec.LookPath(b); err != nil {
				missing = append(missing, b)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing programs %s (apt-get install wireguard-go wireguard-tools iputils-ping)", strings.Join(missing, ", "))
		}
		if _, err := os.Stat("/dev/net/tun"); err != nil {
			return fmt.Errorf("wireguard-go needs /dev/net/tun: %w", err)
		}
	}
	if _, err := os.Stat(ovsSchema); err != nil {
		return fmt.Errorf("OVS schema: %w", err)
	}
	return nil
}

// ovsSchema is the Open_vSwitch database schema of the installed OVS.
const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

type builder struct {
	st  *labState
	s   *Spec
	opt Options
	log *slog.Logger
	mu  sync.Mutex // guards st.Hosts, st.save and created
	// created lists the namespaces this Up made (removed if it fails)
	created []string
}

// netns makes a namespace and records it for the cleanup of a failed Up.
func (b *builder) netns(ctx context.Context, name string) error {
	if err := newNetns(ctx, name); err != nil {
		return err
	}
	b.mu.Lock()
	b.created = append(b.created, name)
	b.mu.Unlock()
	return nil
}

func (b *builder) crash(stage string) error {
	if b.opt.crashAfter == stage {
		return errCrash
	}
	return nil
}

func (b *builder) build(ctx context.Context, hosts []HostSpec) error {
	s := b.s
	ctl, _ := ParseController(s.Controller, len(s.Sites))
	wan := WANNetns(s.Prefix)
	if err := b.netns(ctx, wan); err != nil {
		return err
	}
	if !s.UsesRelay() {
		if _, err := run(ctx, nil, "ip", "-n", wan, "link", "add", "br-wan", "type", "bridge"); err != nil {
			return err
		}
		if _, err := run(ctx, nil, "ip", "-n", wan, "link", "set", "br-wan", "up"); err != nil {
			return err
		}
	}
	if ctl.Kind == "tcp" {
		m := MgmtNetns(s.Prefix)
		if err := b.netns(ctx, m); err != nil {
			return err
		}
		for _, a := range [][]string{
			{"-n", m, "link", "add", "br-mgmt", "type", "bridge"},
			{"-n", m, "addr", "add", ctl.Addr.Addr().String() + "/24", "dev", "br-mgmt"},
			{"-n", m, "link", "set", "br-mgmt", "up"},
		} {
			if _, err := run(ctx, nil, "ip", a...); err != nil {
				return err
			}
		}
	}
	if err := parallel(len(s.Sites), func(idx int) error { return b.site(ctx, idx, ctl) }); err != nil {
		return err
	}
	if err := b.crash("sites"); err != nil {
		return err
	}
	if s.UsesRelay() {
		if err := b.startRelay(ctx); err != nil {
			return err
		}
	}
	if err := b.crash("wan"); err != nil {
		return err
	}
	for idx := range s.Sites {
		if r := siteRate(s, idx); r > 0 {
			if _, err := run(ctx, nil, "tc", "-n", wan, "qdisc", "add", "dev", WANPeer(idx+1), "root", "tbf",
				"rate", strconv.FormatFloat(r, 'f', -1, 64)+"mbit", "burst", "256kb", "latency", "100ms"); err != nil {
				return fmt.Errorf("rate limit site %s: %w", s.Sites[idx].Name, err)
			}
		}
	}
	if s.WireGuard {
		if err := b.wgPeers(ctx); err != nil {
			return err
		}
	}
	// Pre-seed every gateway's tunnel neighbour cache with the other sites'
	// underlay MACs, so the first tunnelled packets are not dropped while OVS
	// ARPs for the next hop (recipe gotcha; OVS snoops ARP only while tunnel
	// ports exist, and Skyvisor adds those later).
	if err := parallel(len(s.Sites), func(idx int) error {
		if s.WireGuard { // the only next hop is the site's edge
			if _, err := appctl(ctx, s.StateDir, idx+1, "tnl/neigh/set", UnderlayBridge, EdgeLANAddr(idx+1),
				EdgeLANMAC(idx+1).String()); err != nil {
				return fmt.Errorf("site %s: seed tunnel neighbour: %w", s.Sites[idx].Name, err)
			}
			return nil
		}
		for k := range s.Sites {
			if k == idx {
				continue
			}
			if _, err := appctl(ctx, s.StateDir, idx+1, "tnl/neigh/set", UnderlayBridge, s.Sites[k].PublicIP,
				UnderlayMAC(k+1).String()); err != nil {
				return fmt.Errorf("site %s: seed tunnel neighbour %s: %w", s.Sites[idx].Name, s.Sites[k].PublicIP, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := b.crash("neigh"); err != nil {
		return err
	}
	err := parallel(len(hosts), func(k int) error {
		h := hosts[k]
		if err := plug(ctx, s, &h, b.netns); err != nil {
			return fmt.Errorf("hosts[%d] %s: %w", k, h.Name, err)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.st.Hosts = append(b.st.Hosts, h)
		return b.st.save()
	})
	// keep the lab file's host order
	order := map[string]int{}
	for k, h := range hosts {
		order[h.Name] = k
	}
	sort.Slice(b.st.Hosts, func(x, y int) bool { return order[b.st.Hosts[x].Name] < order[b.st.Hosts[y].Name] })
	return err
}

// site builds site idx (0-based): namespace, WAN (and management) veth,
// ovsdb-server + ovs-vswitchd, br-phy with the underlay address, the gateway
// and VM bridges joined by patch ports, controller targets.
func (b *builder) site(ctx context.Context, idx int, ctl Controller) error {
	s := b.s
	i := idx + 1
	site := s.Sites[idx]
	ns := SiteNetns(s.Prefix, i)
	wan := WANNetns(s.Prefix)
	t0 := time.Now()
	if err := b.netns(ctx, ns); err != nil {
		return err
	}
	wanNS := ns // namespace holding the WAN port: the site, or its edge (WireGuard)
	if s.WireGuard {
		wanNS = EdgeNetns(s.Prefix, i)
		if err := b.netns(ctx, wanNS); err != nil {
			return err
		}
		if err := setSysctls(wanNS, []string{"net/ipv4/ip_forward"}); err != nil {
			return err
		}
	}
	if err := veth(ctx, wanNS, WANPort, wan, WANPeer(i), "", 0); err != nil {
		return fmt.Errorf("site %s WAN link: %w", site.Name, err)
	}
	if !s.UsesRelay() {
		if _, err := run(ctx, nil, "ip", "-n", wan, "link", "set", WANPeer(i), "master", "br-wan"); err != nil {
			return err
		}
	}
	if ctl.Kind == "tcp" {
		m := MgmtNetns(s.Prefix)
		if err := veth(ctx, ns, MgmtPort, m, MgmtPeer(i), "", 0); err != nil {
			return fmt.Errorf("site %s management link: %w", site.Name, err)
		}
		if _, err := run(ctx, nil, "ip", "-n", m, "link", "set", MgmtPeer(i), "master", "br-mgmt"); err != nil {
			return err
		}
		if _, err := run(ctx, nil, "ip", "-n", ns, "addr", "add", mgmtAddr(ctl, i).String()+"/24", "dev", MgmtPort); err != nil {
			return err
		}
	}
	if err := startOVS(ctx, s.StateDir, i, ns); err != nil {
		return fmt.Errorf("site %s: %w", site.Name, err)
	}
	tStart := time.Since(t0)
	phyPort := WANPort
	bits := s.WAN.Subnet[strings.IndexByte(s.WAN.Subnet, '/'):]
	if s.WireGuard {
		phyPort = UplinkPort
		if err := b.edge(ctx, i, bits); err != nil {
			return fmt.Errorf("site %s edge: %w", site.Name, err)
		}
	}

	target, err := siteControllerTarget(s.StateDir, i, ctl)
	if err != nil {
		return fmt.Errorf("site %s: %w", site.Name, err)
	}
	vms := site.VMs.List()
	args := []string{
		"--", "set", "Open_vSwitch", ".", "external_ids:system-id=" + s.Prefix + "-" + site.Name,
		"--", "add-br", UnderlayBridge,
		"--", "set", "bridge", UnderlayBridge, "datapath_type=netdev", "fail_mode=standalone",
		"other-config:hwaddr=\"" + UnderlayMAC(i).String() + "\"",
		"--", "add-port", UnderlayBridge, phyPort,
	}
	bridge := func(name string, dpid uint64) {
		args = append(args, "--", "add-br", name,
			"--", "set", "bridge", name, "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure",
			"other-config:datapath-id="+DPIDString(dpid), "other-config:disable-in-band=true")
		if ctl.Kind != "none" {
			id := "@c_" + strings.ReplaceAll(name, "-", "_")
			args = append(args, "--", "--id="+id, "create", "Controller", "target=\""+target+"\"",
				"connection-mode=out-of-band", "--", "set", "bridge", name, "controller="+id)
		}
	}
	bridge(GatewayBridge, GatewayDPID(i))
	for j, vm := range vms {
		bridge(vm, VMDPID(i, j+1))
		args = append(args,
			"--", "add-port", vm, VMPatch(vm), "--", "set", "interface", VMPatch(vm), "type=patch",
			"options:peer="+GatewayPatch(vm), "ofport_request="+strconv.Itoa(VMUplinkOFPort),
			"--", "add-port", GatewayBridge, GatewayPatch(vm), "--", "set", "interface", GatewayPatch(vm), "type=patch",
			"options:peer="+VMPatch(vm), "ofport_request="+strconv.Itoa(j+1))
	}
	if _, err := vsctl(ctx, s.StateDir, i, args...); err != nil {
		return fmt.Errorf("site %s bridges: %w", site.Name, err)
	}
	if err := b.directWAN(ctx, i); err != nil {
		return fmt.Errorf("site %s: %w", site.Name, err)
	}
	if s.WireGuard {
		bits = "/24"
	}
	if _, err := run(ctx, nil, "ip", "-n", ns, "addr", "add", TunnelEndpoint(s, i)+bits, "dev", UnderlayBridge); err != nil {
		return err
	}
	if _, err := run(ctx, nil, "ip", "-n", ns, "link", "set", UnderlayBridge, "up"); err != nil {
		return err
	}
	if s.WireGuard {
		if _, err := run(ctx, nil, "ip", "-n", ns, "route", "add", "10.99.0.0/16", "via", EdgeLANAddr(i)); err != nil {
			return err
		}
	}
	b.log.Info("site up", "site", site.Name, "ovs_start", tStart, "total", time.Since(t0))
	return nil
}

// siteControllerTarget returns the OVS controller target of site i's
// bridges. ovs-vswitchd refuses unix: targets outside its OVS_RUNDIR ("Not
// connecting to socket controller ... due to possibility for remote
// exploit"), so for a unix target the lab links <run>/controller.sock to the
// lab's socket path (the link may dangle until the controller listens) and
// uses that.
func siteControllerTarget(stateDir string, i int, ctl Controller) (string, error) {
	if ctl.Kind != "unix" {
		return ctl.Target, nil
	}
	link := filepath.Join(RunDir(stateDir, i), "controller.sock")
	if err := os.Symlink(ctl.Path, link); err != nil {
		return "", fmt.Errorf("controller socket link: %w", err)
	}
	return "unix:" + link, nil
}

// SiteControllerTarget is the controller target OVS holds for site i's
// bridges: the lab's target, or for unix targets "unix:<run dir>/controller.sock"
// (a symlink to the lab's socket path).
func SiteControllerTarget(stateDir string, i int, labTarget string) string {
	if strings.HasPrefix(labTarget, "unix:") {
		return "unix:" + filepath.Join(RunDir(stateDir, i), "controller.sock")
	}
	return labTarget
}

// startOVS creates site i's database and starts ovsdb-server and
// ovs-vswitchd inside namespace ns (state below <state>/s<i>).
func startOVS(ctx context.Context, stateDir string, i int, ns string) error {
	d := siteDir(stateDir, i)
	for _, sub := range []string{"run", "db", "log", "etc"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return fmt.Errorf("create OVS dirs: %w", err)
		}
	}
	env := ovsEnv(stateDir, i)
	db := filepath.Join(d, "db", "conf.db")
	run_ := filepath.Join(d, "run")
	if _, err := run(ctx, env, "ovsdb-tool", "create", db, ovsSchema); err != nil {
		return err
	}
	if _, err := nsRun(ctx, ns, env, "ovsdb-server", db,
		"--remote=punix:"+filepath.Join(run_, "db.sock"),
		"--pidfile="+filepath.Join(run_, "ovsdb-server.pid"),
		"--unixctl="+filepath.Join(run_, "ovsdb-server.ctl"),
		"--log-file="+filepath.Join(d, "log", "ovsdb-server.log"),
		"--detach", "--no-chdir", "-vconsole:off"); err != nil {
		return err
	}
	if _, err := vsctl(ctx, stateDir, i, "--no-wait", "init"); err != nil {
		return err
	}
	if _, err := nsRun(ctx, ns, env, "ovs-vswitchd", OVSDBEndpoint(stateDir, i),
		"--pidfile="+filepath.Join(run_, "ovs-vswitchd.pid"),
		"--log-file="+filepath.Join(d, "log", "ovs-vswitchd.log"),
		"--detach", "--no-chdir", "-vconsole:off"); err != nil {
		return err
	}
	return nil
}

// startRelay starts the WAN delay relay in the WAN namespace and waits for
// its pid file (written once its sockets are bound).
func (b *builder) startRelay(ctx context.Context) error {
	s := b.s
	pidfile := relayPidfile(s.StateDir)
	args := append([]string(nil), b.opt.RelayCommand[1:]...)
	args = append(args, "--netns", WANNetns(s.Prefix), "--pidfile", pidfile,
		"--delay", strconv.FormatFloat(s.WAN.DelayMS, 'f', -1, 64),
		"--queue", strconv.Itoa(s.WAN.QueueFrames), "--loss", strconv.FormatFloat(s.WAN.LossPercent, 'f', -1, 64))
	for _, p := range s.WAN.Pairs {
		a, b := WANPeer(s.siteIndex(p.A)), WANPeer(s.siteIndex(p.B))
		args = append(args, "--pair", fmt.Sprintf("%s,%s=%s", a, b, strconv.FormatFloat(p.DelayMS, 'f', -1, 64)))
		if p.RateMbit > 0 {
			args = append(args, "--rate", fmt.Sprintf("%s,%s=%s", a, b, strconv.FormatFloat(p.RateMbit, 'f', -1, 64)))
		}
	}
	args = append(args, b.directRelayArgs()...)
	for i := range s.Sites {
		args = append(args, WANPeer(i+1))
	}
	logf, err := os.OpenFile(filepath.Join(s.StateDir, "wan-relay.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("relay log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(b.opt.RelayCommand[0], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start WAN relay: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reap it if it dies while we live
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if readPID(pidfile) == cmd.Process.Pid {
			b.log.Info("wan relay up", "pid", cmd.Process.Pid)
			return nil
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(filepath.Join(s.StateDir, "wan-relay.log"))
			return fmt.Errorf("WAN relay exited (%v): %s", err, strings.TrimSpace(string(out)))
		case <-deadline.C:
			return errors.New("WAN relay did not write its pid file within 10 s")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// newNetns creates namespace name with lo up, IPv6 off and arp_ignore=1 (so
// the kernel does not answer ARP for br-phy's address out of wan0).
// A namespace that cannot be set up is deleted again.
func newNetns(ctx context.Context, name string) error {
	if _, err := run(ctx, nil, "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := run(ctx, nil, "ip", "-n", name, "link", "set", "lo", "up")
	if err == nil {
		err = setSysctls(name, netnsSysctls)
	}
	if err != nil {
		_ = delNetns(context.WithoutCancel(ctx), name)
	}
	return err
}

// netnsSysctls are set in every lab namespace: IPv6 off (no router
// solicitations or MLD noise on the fabric) and arp_ignore=1 (the site kernel
// must not answer ARP for br-phy's address out of wan0: peers would then send
// tunnel packets to wan0's MAC, which OVS does not decapsulate).
var netnsSysctls = []string{
	"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6",
	"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/default/arp_ignore",
}

// setSysctls writes "1" to each /proc/sys path (relative) inside namespace
// ns. /proc/sys/net follows the network namespace of the calling thread, so
// a locked OS thread enters ns and is discarded afterwards (a goroutine that
// exits while locked ends its thread), leaving every other thread untouched.
func setSysctls(ns string, paths []string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", ns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		for _, p := range paths {
			if err := os.WriteFile(filepath.Join("/proc/sys", p), []byte("1"), 0o644); err != nil {
				errc <- fmt.Errorf("netns %s: sysctl %s: %w", ns, p, err)
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}

// veth creates a veth pair aName (in aNS, with MAC mac if given) <-> bName
// (in bNS), turns checksum/segmentation offloads off on both ends (the
// userspace datapath reads frames by AF_PACKET and loses the checksum
// offload state: TCP would fail) and sets both up, with MTU mtu if > 0.
func veth(ctx context.Context, aNS, aName, bNS, bName, mac string, mtu int) error {
	args := []string{"link", "add", aName, "netns", aNS}
	if mac != "" {
		args = append(args, "address", mac)
	}
	if mtu > 0 {
		args = append(args, "mtu", strconv.Itoa(mtu))
	}
	args = append(args, "type", "veth", "peer", "name", bName, "netns", bNS)
	if mtu > 0 {
		args = append(args, "mtu", strconv.Itoa(mtu))
	}
	if _, err := run(ctx, nil, "ip", args...); err != nil {
		return err
	}
	for _, e := range [][2]string{{aNS, aName}, {bNS, bName}} {
		if _, err := nsRun(ctx, e[0], nil, "ethtool", "-K", e[1], "tx", "off", "tso", "off", "gso", "off", "gro", "off"); err != nil {
			return err
		}
		if _, err := run(ctx, nil, "ip", "-n", e[0], "link", "set", e[1], "up"); err != nil {
			return err
		}
	}
	return nil
}

// parallel runs f(0..n-1) concurrently and joins the errors.
func parallel(n int, f func(int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = f(k)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
