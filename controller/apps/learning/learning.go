// Package learning is a reactive L2 learning switch for OpenFlow 1.3
// switches, as a controller.App.
//
// Per switch it keeps a bounded MAC table (source MAC -> ingress port). On a
// packet-in it learns the source; if the destination is a known unicast
// address it installs a flow entry in table 0
//
//	priority=Config.Priority, cookie=Config.Cookie,
//	idle_timeout=Config.IdleTimeout, hard_timeout=Config.HardTimeout,
//	match in_port=<packet's in_port>, eth_dst=<dst>, actions=output:<port>
//
// and sends the packet out of that port (by buffer_id if the switch buffered
// it, else with its data). Unknown, broadcast and multicast destinations are
// flooded with a packet-out to FLOOD.
//
// The match includes in_port on purpose: a flow keyed on eth_dst alone would
// also catch frames from hosts the controller has never seen, so their source
// addresses would never be learned and every reply to them would be flooded
// through the controller. With in_port+eth_dst each new (ingress port,
// destination) pair misses once and teaches the table its source.
//
// SwitchUp removes the flow entries left by an earlier session (same cookie)
// and installs the table-miss flow entry (priority 0, empty match,
// output:CONTROLLER with max_len NO_BUFFER): Open vSwitch in OpenFlow 1.3
// mode has no default table-miss entry (OpenFlow 1.3.5 section 5.4 drops
// table misses by default).
//
// LLDP frames (ethertype 0x88cc) are left to other apps (Continue); every
// other frame is handled and Stop is returned.
package learning

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
)

// Name is the app's name in the registry and in logs.
const Name = "learning"

// DefaultCookie marks the flow entries of this app: ASCII "learn" in the top
// five bytes.
const DefaultCookie uint64 = 0x6c6561726e000000

// EtherTypeLLDP is the LLDP ethertype (IEEE 802.1AB).
const EtherTypeLLDP = 0x88cc

// Config tunes the app. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// IdleTimeout of learned flow entries (whole seconds are used; default
	// 60 s; negative = never expire).
	IdleTimeout time.Duration `mapstructure:"idle_timeout" json:"idle_timeout"`
	// HardTimeout of learned flow entries (default 0 = none).
	HardTimeout time.Duration `mapstructure:"hard_timeout" json:"hard_timeout"`
	// Priority of learned flow entries (default 1; the table-miss entry is 0).
	Priority uint16 `mapstructure:"priority" json:"priority"`
	// TableSize bounds each switch's MAC table (default 4096 addresses).
	TableSize int `mapstructure:"table_size" json:"table_size"`
	// Cookie of every flow entry this app installs (default DefaultCookie).
	Cookie uint64 `mapstructure:"cookie" json:"cookie"`
	// Logger (default slog.Default()).
	Logger *slog.Logger `mapstructure:"-" json:"-"`
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{IdleTimeout: 60 * time.Second, Priority: 1, TableSize: 4096, Cookie: DefaultCookie}
}

// App is the learning switch. Create it with New; safe for concurrent use by
// many switch sessions.
type App struct {
	cfg  Config
	idle uint16
	hard uint16
	log  *slog.Logger

	pool sync.Pool // of *scratch

	mu     sync.RWMutex
	tables map[controller.DPID]session
}

// session is the MAC table of one switch session.
type session struct {
	sw controller.Switch // the session that owns the table
	t  *Table
}

// New returns the app with cfg (zero fields defaulted). It fails if a timeout
// does not fit the 16-bit seconds field of a flow-mod.
func New(cfg Config) (*App, error) {
	def := DefaultConfig()
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = def.IdleTimeout
	}
	if cfg.Priority == 0 {
		cfg.Priority = def.Priority
	}
	if cfg.TableSize <= 0 {
		cfg.TableSize = def.TableSize
	}
	if cfg.Cookie == 0 {
		cfg.Cookie = def.Cookie
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	idle, err := seconds16("idle_timeout", cfg.IdleTimeout)
	if err != nil {
		return nil, err
	}
	hard, err := seconds16("hard_timeout", cfg.HardTimeout)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, idle: idle, hard: hard, log: cfg.Logger.With("app", Name),
		tables: make(map[controller.DPID]session)}
	a.pool.New = func() any { return a.newScratch() }
	return a, nil
}

// seconds16 converts d to the 16-bit seconds of an OpenFlow timeout;
// negative means 0 (permanent).
func seconds16(field string, d time.Duration) (uint16, error) {
	if d < 0 {
		return 0, nil
	}
	s := d / time.Second
	if s > 0xffff {
		return 0, fmt.Errorf("learning: %s %v exceeds 65535 s", field, d)
	}
	return uint16(s), nil
}

// Name returns "learning".
func (a *App) Name() string { return Name }

// InlineSafe reports true: the handlers only update the MAC table (short,
// under a mutex) and send a flow-mod and a packet-out, waiting for nothing
// else, so the hypervisor may run the app on a tenant's virtual switch on
// the physical session's event goroutine, as it runs bare (package
// hypervisor/vnet, PacketInFrom).
func (a *App) InlineSafe() bool { return true }

// Config returns the effective configuration.
func (a *App) Config() Config { return a.cfg }

// Table returns the MAC table of the switch with dpid, or nil if the switch
// is not connected.
func (a *App) Table(dpid controller.DPID) *Table {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.tables[dpid].t
}

// SwitchUp gives the switch a fresh MAC table, deletes this app's flow
// entries from an earlier session and installs the table-miss entry.
func (a *App) SwitchUp(ctx context.Context, sw controller.Switch) {
	a.mu.Lock()
	a.tables[sw.DPID()] = session{sw: sw, t: NewTable(a.cfg.TableSize)}
	a.mu.Unlock()
	if err := a.setup(ctx, sw); err != nil {
		sw.Logger().Error("learning: switch setup failed", "app", Name, "err", err)
	}
}

// setup sends the flow-mods of SwitchUp.
func (a *App) setup(ctx context.Context, sw switchConn) error {
	del := &ofp.FlowMod{
		Cookie: a.cfg.Cookie, CookieMask: ^uint64(0), Table: ofp.TableAll,
		Command: ofp.FlowDelete, Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match: ofp.Match{Type: ofp.MatchTypeXM},
	}
	if err := sw.FlowMod(ctx, del); err != nil {
		return fmt.Errorf("delete old flow entries: %w", err)
	}
	miss := &ofp.FlowMod{
		Cookie: a.cfg.Cookie, Table: 0, Command: ofp.FlowAdd, Priority: 0,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match: ofp.Match{Type: ofp.MatchTypeXM},
		Instructions: ofp.Instructions{&ofp.InstructionApplyActions{Actions: ofp.Actions{
			&ofp.ActionOutput{Port: ofp.PortController, MaxLen: ofp.ContentLenNoBuffer},
		}}},
	}
	if err := sw.FlowMod(ctx, miss); err != nil {
		return fmt.Errorf("install table-miss flow entry: %w", err)
	}
	return nil
}

// SwitchDown drops the switch's MAC table (unless a newer session of the
// same DPID already replaced it).
func (a *App) SwitchDown(_ context.Context, sw controller.Switch) {
	a.mu.Lock()
	if a.tables[sw.DPID()].sw == sw { // a newer session of the DPID keeps its table
		delete(a.tables, sw.DPID())
	}
	a.mu.Unlock()
}

// PortStatus forgets the addresses learned on a port that was deleted or
// went down. The flow entries pointing at it time out by themselves.
func (a *App) PortStatus(_ context.Context, sw controller.Switch, ps *controller.PortStatus) {
	if ps.Reason != ofp.PortReasonDelete && ps.Port.Config&ofp.PortConfigDown == 0 &&
		ps.Port.State&ofp.PortStateLinkDown == 0 {
		return
	}
	if t := a.Table(sw.DPID()); t != nil {
		t.ForgetPort(ps.Port.PortNo)
	}
}

// PacketIn runs the learning switch for one packet-in. It returns Continue
// for LLDP and for frames too short to carry an Ethernet header, Stop
// otherwise.
func (a *App) PacketIn(ctx context.Context, sw controller.Switch, pi *controller.PacketIn) controller.Disposition {
	return a.handle(ctx, sw, a.Table(sw.DPID()), pi)
}

// switchConn is what the handler needs from a switch: controller.Switch,
// or a recorder in tests.
type switchConn interface {
	FlowMod(ctx context.Context, fm *ofp.FlowMod) error
	PacketOut(ctx context.Context, po *ofp.PacketOut) error
}

// handle is PacketIn on an explicit table.
func (a *App) handle(ctx context.Context, sw switchConn, t *Table, pi *controller.PacketIn) controller.Disposition {
	d := pi.Data
	if len(d) < 14 {
		return controller.Continue
	}
	etype := binary.BigEndian.Uint16(d[12:14])
	if etype == 0x8100 && len(d) >= 18 {
		etype = binary.BigEndian.Uint16(d[16:18])
	}
	if etype == EtherTypeLLDP {
		return controller.Continue
	}
	if t == nil { // packet-in raced with SwitchUp/SwitchDown
		return controller.Stop
	}
	dst, src := macFromBytes(d[0:6]), macFromBytes(d[6:12])
	var out ofp.PortNo
	known := false
	if src.IsGroup() {
		// A group source address is invalid (IEEE 802-2014 8.2): never learn it.
		out, known = t.Lookup(dst)
	} else {
		out, known = t.LearnLookup(src, pi.InPort, dst)
	}
	if dst.IsGroup() || !known {
		a.packetOut(ctx, sw, pi, ofp.PortFlood)
		return controller.Stop
	}
	if out == pi.InPort {
		// Destination sits behind the ingress port: the switch would drop
		// an output to in_port anyway.
		return controller.Stop
	}
	sc := a.pool.Get().(*scratch)
	defer a.pool.Put(sc)
	defer sc.release()
	if err := sw.FlowMod(ctx, sc.flowMod(pi.InPort, d[0:6], out)); err != nil {
		a.log.Debug("flow-mod failed", "err", err)
		return controller.Stop
	}
	a.packetOutWith(ctx, sw, sc, pi, out)
	return controller.Stop
}

// packetOut sends the packet of pi out of port, by buffer_id when the
// switch buffered it.
func (a *App) packetOut(ctx context.Context, sw switchConn, pi *controller.PacketIn, port ofp.PortNo) {
	sc := a.pool.Get().(*scratch)
	a.packetOutWith(ctx, sw, sc, pi, port)
	sc.release()
	a.pool.Put(sc)
}

// packetOutWith is packetOut with a scratch the caller holds.
func (a *App) packetOutWith(ctx context.Context, sw switchConn, sc *scratch, pi *controller.PacketIn, port ofp.PortNo) {
	if err := sw.PacketOut(ctx, sc.packetOut(pi.BufferID, pi.InPort, port, pi.Data)); err != nil {
		a.log.Debug("packet-out failed", "err", err)
	}
}
