// Package migration is the live-migration experiment (`skyexp migration`,
// issue "Network snapshot and live migration by switch cloning"): on the
// lab (package testbed/lab) with Skyvisor running in process, a VM bridge
// of cloud "aws" carrying H hosts of a tenant and F tenant-app flow entries
// migrates to cloud "gcp" and back (hypervisor.Migrate, package
// hypervisor/migrate; hosts moved with lab.Move) while its first host
// pings a host in "azure" at 100 packets/s. Per migration it records the
// time of every step, the total, the mean host move and the packets lost,
// for every WAN one-way delay D, F and H of the configuration.
//
// The lab: aws has one VM per host count (vm<k> carries Hosts[k-1] hosts),
// gcp one VM (the target), azure one VM with the ping peer. The tenant
// runs the reactive learning app on its virtual view, so its entries are
// tenant-app state that the migration clones (the F synthetic entries are
// of the same kind: table 10, the tenant's cookie prefix, idle timeout
// 600 s, so they are frozen and restored too).
package migration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// Config is one run of the experiment.
type Config struct {
	// Prefix of the lab's namespaces ([a-z][a-z0-9]{0,5}); default "skmx".
	Prefix string
	// DelaysMS are the WAN one-way delays (ms); default 0, 10, 50.
	DelaysMS []int
	// Flows are the numbers of synthetic tenant entries on the migrating
	// bridge; default 0, 100, 1000.
	Flows []int
	// Hosts are the numbers of hosts on the migrating bridge; default 1,
	// 2, 4 (at most 8 each).
	Hosts []int
	// Reps is the number of round trips (out to gcp and back) per point;
	// default 1.
	Reps int
	// PingCount is the number of 100 packets/s pings around each
	// migration; default 300 (3 s).
	PingCount int
	// Progress receives one line per migration (nil: none).
	Progress io.Writer
	// Logger for Skyvisor (nil: discard).
	Logger *slog.Logger
}

// Defaults fills the zero fields.
func (c *Config) Defaults() {
	if c.Prefix == "" {
		c.Prefix = "skmx"
	}
	if c.DelaysMS == nil {
		c.DelaysMS = []int{0, 10, 50}
	}
	if c.Flows == nil {
		c.Flows = []int{0, 100, 1000}
	}
	if c.Hosts == nil {
		c.Hosts = []int{1, 2, 4}
	}
	if c.Reps <= 0 {
		c.Reps = 1
	}
	if c.PingCount <= 0 {
		c.PingCount = 300
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration (after Defaults).
func (c *Config) Validate() error {
	if !regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`).MatchString(c.Prefix) {
		return fmt.Errorf("prefix %q: want [a-z][a-z0-9]{0,5}", c.Prefix)
	}
	for _, d := range c.DelaysMS {
		if d < 0 || d > 1000 {
			return fmt.Errorf("delay %d ms: want 0..1000", d)
		}
	}
	for _, f := range c.Flows {
		if f < 0 || f > 100000 {
			return fmt.Errorf("flows %d: want 0..100000", f)
		}
	}
	for _, h := range c.Hosts {
		if h < 1 || h > 8 {
			return fmt.Errorf("hosts %d: want 1..8", h)
		}
	}
	if len(c.Hosts) > 8 {
		return fmt.Errorf("%d host counts: at most 8 (one aws VM each)", len(c.Hosts))
	}
	return nil
}

// Row is one migration.
type Row struct {
	DelayMS   int    `json:"delay_ms"`
	Flows     int    `json:"flows"`
	Hosts     int    `json:"hosts"`
	Rep       int    `json:"rep"`
	Direction string `json:"direction"` // "out" (aws -> gcp) or "back"
	// TotalMS is the whole migration; StepMS each step's time, in
	// migrate.Steps order.
	TotalMS    float64   `json:"total_ms"`
	StepMS     []float64 `json:"step_ms"`
	HostMoveMS float64   `json:"host_move_ms"` // mean per host (lab.Move + binding + reconcile)
	Cloned     int       `json:"cloned"`
	Frozen     int       `json:"frozen"`
	PingSent   int       `json:"ping_sent"`
	PingLost   int       `json:"ping_lost"`
	Err        string    `json:"error,omitempty"`
	// Load1 is the 1-minute load average when the migration started;
	// Commit the commit of the code that measured (runinfo.Commit).
	Load1  float64 `json:"load1"`
	Commit string  `json:"commit"`
}

// tenant is the experiment's tenant.
const tenant = "mx"

// Run runs every point and returns the rows (also those before an error).
func Run(ctx context.Context, cfg Config) ([]Row, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var rows []Row
	for _, d := range cfg.DelaysMS {
		rs, err := runDelay(ctx, &cfg, d)
		rows = append(rows, rs...)
		if err != nil {
			return rows, fmt.Errorf("delay %d ms: %w", d, err)
		}
	}
	return rows, nil
}

// host is one lab host of the experiment.
type host struct {
	lab, name, site, vm, ip, mac string
	port                         int
}

func hostsOf(cfg *Config) (srcs [][]host, peer host) {
	n := 0
	for k, c := range cfg.Hosts {
		var hs []host
		for i := 0; i < c; i++ {
			n++
			hs = append(hs, host{lab: fmt.Sprintf("x%d", n), name: fmt.Sprintf("h%d", n), site: "aws", vm: fmt.Sprintf("vm%d", k+1),
				ip: fmt.Sprintf("10.9.0.%d", n), mac: fmt.Sprintf("00:00:00:09:00:%02x", n), port: n})
		}
		srcs = append(srcs, hs)
	}
	peer = host{lab: "xp", name: "peer", site: "azure", vm: "vm1", ip: "10.9.0.200", mac: "00:00:00:09:00:c8", port: 200}
	return srcs, peer
}

// runDelay builds the lab with WAN delay d, starts Skyvisor, and migrates
// every (flows, hosts) point there and back.
func runDelay(ctx context.Context, cfg *Config, d int) (_ []Row, err error) {
	dir, err := os.MkdirTemp("", cfg.Prefix+"-lab-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	stateDir := filepath.Join(dir, "lab")
	specJSON := fmt.Sprintf(`{"prefix":%q,"state_dir":%q,"tunnel_type":"vxlan","wan":{"delay_ms":%d},
		"sites":[{"name":"aws","vms":%d},{"name":"gcp","vms":1},{"name":"azure","vms":1}]}`, cfg.Prefix, stateDir, d, len(cfg.Hosts))
	spec, err := lab.Parse([]byte(specJSON))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	inv, err := lab.Up(ctx, spec)
	defer func() {
		if derr := lab.Down(context.WithoutCancel(ctx), stateDir); derr != nil {
			err = errors.Join(err, fmt.Errorf("lab down: %w", derr))
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	sv, err := startSkyvisor(ctx, inv, spec.Controller, filepath.Join(dir, "sky.db"), cfg.Logger)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, sv.stop()) }()
	if err := sv.waitUp(ctx, inv, 60*time.Second); err != nil {
		return nil, err
	}
	srcs, peer := hostsOf(cfg)
	all := []host{peer}
	for _, hs := range srcs {
		all = append(all, hs...)
	}
	if err := sv.tenant(ctx, stateDir, all); err != nil {
		return nil, err
	}
	tid, err := sv.tenantID()
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, f := range cfg.Flows {
		for k, hs := range srcs {
			src := inv.Switches[switchIndex(inv, "aws", hs[0].vm)]
			dst := inv.Switches[switchIndex(inv, "gcp", "vm1")]
			for rep := 1; rep <= cfg.Reps; rep++ {
				if err := addFlows(ctx, stateDir, "aws", hs[0].vm, tid, f); err != nil {
					return rows, err
				}
				base := Row{DelayMS: d, Flows: f, Hosts: cfg.Hosts[k], Rep: rep, Commit: runinfo.Commit()}
				out := base
				out.Direction, out.Load1 = "out", runinfo.Load1()
				out = sv.measure(ctx, cfg, stateDir, hs[0], peer, migrate.Request{Switch: src.DPID, To: "gcp"}, out)
				rows = append(rows, out)
				fmt.Fprintln(cfg.Progress, out.String())
				back := base
				back.Direction, back.Load1 = "back", runinfo.Load1()
				back = sv.measure(ctx, cfg, stateDir, hs[0], peer, migrate.Request{Switch: dst.DPID, To: "aws", VM: hs[0].vm}, back)
				rows = append(rows, back)
				fmt.Fprintln(cfg.Progress, back.String())
				for _, where := range [][2]string{{"aws", hs[0].vm}, {"gcp", "vm1"}} {
					if err := delFlows(ctx, stateDir, where[0], where[1], tid); err != nil {
						return rows, err
					}
				}
				if out.Err != "" || back.Err != "" {
					return rows, fmt.Errorf("migration failed: %s %s", out.Err, back.Err)
				}
				if err := ctx.Err(); err != nil {
					return rows, err
				}
			}
		}
	}
	return rows, nil
}

// String is the progress line of a row.
func (r Row) String() string {
	s := fmt.Sprintf("migration: delay %3d ms, %5d flows, %d hosts, rep %d, %-4s: %7.1f ms (move %.1f ms/host), cloned %d, lost %d/%d pings",
		r.DelayMS, r.Flows, r.Hosts, r.Rep, r.Direction, r.TotalMS, r.HostMoveMS, r.Cloned, r.PingLost, r.PingSent)
	if r.Err != "" {
		s += " ERROR " + r.Err
	}
	return s
}

func switchIndex(inv *lab.Inventory, site, vm string) int {
	for i, s := range inv.Switches {
		if s.Site == site && s.VM == vm && s.Role == "vm" {
			return i
		}
	}
	return -1
}

// skyvisor is Skyvisor in this process: a Hypervisor over the lab's
// inventory with a bbolt store, the first app of a controller listening on
// the lab's controller socket.
type skyvisor struct {
	h      *hypervisor.Hypervisor
	st     *store.Store
	c      *controller.Controller
	ups    *upApp
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// upApp records which switches are up.
type upApp struct {
	mu  sync.Mutex
	ups map[controller.DPID]bool
}

func (u *upApp) Name() string { return "skm-up" }
func (u *upApp) SwitchUp(_ context.Context, sw controller.Switch) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ups[sw.DPID()] = true
}
func (u *upApp) has(d uint64) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ups[controller.DPID(d)]
}

func startSkyvisor(ctx context.Context, inv *lab.Inventory, target, dbPath string, log *slog.Logger) (*skyvisor, error) {
	b, err := json.Marshal(inv)
	if err != nil {
		return nil, err
	}
	inf, err := infra.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("inventory as infrastructure: %w", err)
	}
	s := &skyvisor{ups: &upApp{ups: map[controller.DPID]bool{}}}
	if s.st, err = store.Open(dbPath, store.WithNoSync()); err != nil {
		return nil, err
	}
	if s.h, err = hypervisor.New(hypervisor.Config{Infra: inf, Store: s.st, Logger: log, RetryInterval: 500 * time.Millisecond}); err != nil {
		s.st.Close()
		return nil, err
	}
	if s.c, err = controller.New(controller.Config{Listen: target, Logger: log}, s.h, s.ups); err != nil {
		s.st.Close()
		return nil, err
	}
	if _, err := os.Stat(strings.TrimPrefix(target, "unix:")); err == nil {
		os.Remove(strings.TrimPrefix(target, "unix:"))
	}
	if err := s.c.Listen(); err != nil {
		s.st.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = s.c.Serve(runCtx) }()
	go func() { defer s.wg.Done(); _ = s.h.Run(runCtx) }()
	return s, nil
}

func (s *skyvisor) stop() error {
	s.cancel()
	s.wg.Wait()
	return s.st.Close()
}

func poll(ctx context.Context, what string, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// waitUp waits for every bridge's session and the tunnels.
func (s *skyvisor) waitUp(ctx context.Context, inv *lab.Inventory, d time.Duration) error {
	if err := poll(ctx, "every bridge connected", d, func() bool {
		for _, sw := range inv.Switches {
			if !s.ups.has(sw.DPID) {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	return poll(ctx, "tunnels provisioned", d, func() bool {
		for _, c := range s.h.Health(ctx).Checks {
			if c.Name == "tunnels" {
				return c.Status == api.HealthOK
			}
		}
		return false
	})
}

// tenant applies the experiment's tenant (one virtual switch, the reactive
// learning app), plugs its hosts and waits until every source's first host
// pings the peer (the app has learned).
func (s *skyvisor) tenant(ctx context.Context, dir string, hs []host) error {
	var parts []string
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf(`{"name":%q,"mac":%q,"ip":%q,"switch":"sw","port":%d,"cloud":%q}`, h.name, h.mac, h.ip+"/24", h.port, h.site))
	}
	doc := fmt.Sprintf(`{"tenant":%q,"apps":["learning-reactive"],"switches":[{"name":"sw"}],"links":[],"hosts":[%s]}`, tenant, strings.Join(parts, ","))
	ti, err := s.h.Infra(ctx)
	if err != nil {
		return err
	}
	ts, err := topology.Load([]byte(doc), ti)
	if err != nil {
		return err
	}
	if _, err := s.h.ApplyTenant(ctx, ts[0]); err != nil {
		return err
	}
	for _, h := range hs {
		if _, err := lab.Plug(ctx, dir, lab.HostSpec{Name: h.lab, Site: h.site, VM: h.vm, MAC: h.mac, IP: h.ip + "/24",
			IfaceID: topology.IfaceID(tenant, h.name)}); err != nil {
			return fmt.Errorf("plug %s: %w", h.lab, err)
		}
	}
	if err := poll(ctx, "tenant active", 30*time.Second, func() bool {
		d, err := s.h.Tenant(ctx, tenant)
		return err == nil && d.State == api.TenantActive
	}); err != nil {
		return err
	}
	peer := hs[0]
	for _, h := range hs[1:] {
		if err := pingUntil(ctx, dir, h.lab, peer.ip, 20*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (s *skyvisor) tenantID() (uint16, error) {
	t, err := s.st.GetTenant(tenant)
	if err != nil {
		return 0, err
	}
	return uint16(t.ID), nil
}

// pingUntil pings once a second until an answer or d.
func pingUntil(ctx context.Context, dir, from, ip string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := lab.HostCommand(ctx, dir, from, "ping", "-c", "1", "-W", "1", ip)
		if err != nil {
			return err
		}
		if c.Run() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s cannot ping %s after %v", from, ip, d)
		}
	}
}

// measure runs one migration while src pings peer at 100 packets/s.
func (s *skyvisor) measure(ctx context.Context, cfg *Config, dir string, src, peer host, req migrate.Request, r Row) Row {
	pctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.PingCount)*20*time.Millisecond+30*time.Second)
	defer cancel()
	c, err := lab.HostCommand(pctx, dir, src.lab, "ping", "-i", "0.01", "-c", strconv.Itoa(cfg.PingCount), "-W", "1", peer.ip)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	var out strings.Builder
	c.Stdout = &out
	if err := c.Start(); err != nil {
		r.Err = err.Error()
		return r
	}
	time.Sleep(500 * time.Millisecond)
	mover := migrate.MoverFunc(func(ctx context.Context, h migrate.Host, _, to migrate.Bridge) error {
		_, err := lab.Move(ctx, dir, strings.TrimPrefix(h.Port, "h-"), to.Site, to.VM)
		return err
	})
	res, err := s.h.Migrate(ctx, req, migrate.Options{Mover: mover, HostTimeout: 30 * time.Second})
	_ = c.Wait()
	if err != nil {
		r.Err = err.Error()
	}
	if res != nil {
		r.TotalMS = ms(res.Took)
		r.Cloned, r.Frozen = res.Cloned, res.Frozen
		for _, st := range migrate.Steps() {
			v := 0.0
			for _, rec := range res.Steps {
				if rec.Step == st {
					v = ms(rec.Took)
				}
			}
			r.StepMS = append(r.StepMS, v)
			if st == migrate.StepMove && len(res.Plan.Hosts) > 0 {
				r.HostMoveMS = v / float64(len(res.Plan.Hosts))
			}
		}
	}
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out.String())
	if m != nil {
		sent, _ := strconv.Atoi(m[1])
		recv, _ := strconv.Atoi(m[2])
		r.PingSent, r.PingLost = sent, sent-recv
	} else if r.Err == "" {
		r.Err = "no ping summary"
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// addFlows installs n synthetic tenant-app entries on site/vm: table 10,
// priority 7, the tenant's cookie prefix with app cookie 0x5e0000+i, a
// source MAC no frame carries, idle timeout 600 s, action drop.
func addFlows(ctx context.Context, dir, site, vm string, tid uint16, n int) error {
	if n == 0 {
		return nil
	}
	f, err := os.CreateTemp("", "skm-flows-*.txt")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	for i := 0; i < n; i++ {
		fmt.Fprintf(f, "table=10,priority=7,cookie=0x%04x0000005e%04x,dl_src=02:ee:00:00:%02x:%02x,idle_timeout=600,actions=drop\n",
			tid, i, i>>8, i&0xff)
	}
	if err := f.Close(); err != nil {
		return err
	}
	c, err := lab.SiteCommand(ctx, dir, site, "ovs-ofctl", "-O", "OpenFlow13", "add-flows", vm, f.Name())
	if err != nil {
		return err
	}
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("add-flows on %s/%s: %v: %s", site, vm, err, out)
	}
	return nil
}

// delFlows deletes the synthetic entries from site/vm.
func delFlows(ctx context.Context, dir, site, vm string, tid uint16) error {
	c, err := lab.SiteCommand(ctx, dir, site, "ovs-ofctl", "-O", "OpenFlow13", "del-flows", vm,
		fmt.Sprintf("cookie=0x%04x0000005e0000/0xffffffffffff0000", tid))
	if err != nil {
		return err
	}
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("del-flows on %s/%s: %v: %s", site, vm, err, out)
	}
	return nil
}
