// Package discovery finds the links between the switches the controller
// controls with LLDP (IEEE 802.1AB) probes, as a controller.App.
//
// Every ProbeInterval each connected switch sends one probe out of each of
// its ports (packet-out; the LOCAL port and ports that are down are skipped);
// the probe names the sending switch (chassis ID "dpid:<16 hex digits>") and
// port (port ID, 4-byte port number), see EncodeProbe. SwitchUp installs a
// flow entry that sends every LLDP frame (eth_type=0x88cc) to the controller
// at Config.Priority. A probe that comes back as a packet-in on switch B,
// port q, sent by switch A from port p, confirms the directed link
// (A,p)->(B,q). Links not confirmed for LinkTimeout expire; links touching a
// port that goes down or a switch that disconnects are removed at once.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
)

// Name is the app's name in the registry and in logs.
const Name = "discovery"

// DefaultCookie marks this app's flow entries: ASCII "lldp" in the top four
// bytes.
const DefaultCookie uint64 = 0x6c6c647000000000

// Config tunes the app. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// ProbeInterval between two rounds of probes on a switch (default 5 s).
	ProbeInterval time.Duration `mapstructure:"probe_interval" json:"probe_interval"`
	// LinkTimeout after the last probe that confirmed a link before the link
	// expires (default 15 s; should be a few probe intervals).
	LinkTimeout time.Duration `mapstructure:"link_timeout" json:"link_timeout"`
	// Priority of the LLDP-to-controller flow entry (default 65000).
	Priority uint16 `mapstructure:"priority" json:"priority"`
	// Cookie of that flow entry (default DefaultCookie).
	Cookie uint64 `mapstructure:"cookie" json:"cookie"`
	// OnChange, if set, is called for every link that comes up or goes
	// away, outside the app's locks, from the goroutine that noticed it. It
	// must not block for long.
	OnChange func(LinkEvent) `mapstructure:"-" json:"-"`
	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time `mapstructure:"-" json:"-"`
	// Logger (default slog.Default()).
	Logger *slog.Logger `mapstructure:"-" json:"-"`
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{ProbeInterval: 5 * time.Second, LinkTimeout: 15 * time.Second, Priority: 65000, Cookie: DefaultCookie}
}

// App is the discovery app. Create it with New.
type App struct {
	cfg   Config
	log   *slog.Logger
	links *linkTable

	mu       sync.Mutex
	switches map[uint64]*prober
}

// prober is the probing goroutine of one connected switch.
type prober struct {
	sw   controller.Switch
	stop chan struct{}
	done chan struct{}
}

// New returns the app with cfg (zero fields defaulted). It fails if
// LinkTimeout is not longer than ProbeInterval.
func New(cfg Config) (*App, error) {
	def := DefaultConfig()
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = def.ProbeInterval
	}
	if cfg.LinkTimeout <= 0 {
		cfg.LinkTimeout = def.LinkTimeout
	}
	if cfg.Priority == 0 {
		cfg.Priority = def.Priority
	}
	if cfg.Cookie == 0 {
		cfg.Cookie = def.Cookie
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LinkTimeout <= cfg.ProbeInterval {
		return nil, fmt.Errorf("discovery: link_timeout %v must be longer than probe_interval %v", cfg.LinkTimeout, cfg.ProbeInterval)
	}
	return &App{cfg: cfg, log: cfg.Logger.With("app", Name), links: newLinkTable(),
		switches: make(map[uint64]*prober)}, nil
}

// Name returns "discovery".
func (a *App) Name() string { return Name }

// Config returns the effective configuration.
func (a *App) Config() Config { return a.cfg }

// Links returns the known directed links sorted by source DPID, source port,
// destination DPID, destination port (a new slice on every call).
func (a *App) Links() []Link {
	a.Expire()
	return a.links.list()
}

// Expire removes the links not confirmed within LinkTimeout of Config.Now();
// the probers call it every ProbeInterval, Links calls it too.
func (a *App) Expire() {
	a.emit(a.links.expire(a.cfg.Now(), a.cfg.LinkTimeout))
}

// emit logs and reports events.
func (a *App) emit(ev []LinkEvent) {
	for _, e := range ev {
		if e.Up {
			a.log.Info("link up", "src", e.Link.Src.String(), "dst", e.Link.Dst.String())
		} else {
			a.log.Info("link down", "src", e.Link.Src.String(), "dst", e.Link.Dst.String(), "reason", e.Reason)
		}
		if a.cfg.OnChange != nil {
			a.cfg.OnChange(e)
		}
	}
}

// SwitchUp installs the LLDP flow entry and starts probing the switch.
func (a *App) SwitchUp(ctx context.Context, sw controller.Switch) {
	dpid := uint64(sw.DPID())
	fm := &ofp.FlowMod{
		Cookie: a.cfg.Cookie, Table: 0, Command: ofp.FlowAdd, Priority: a.cfg.Priority,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{
			{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthType, Value: ofp.XMValue{0x88, 0xcc}},
		}},
		Instructions: ofp.Instructions{&ofp.InstructionApplyActions{Actions: ofp.Actions{
			&ofp.ActionOutput{Port: ofp.PortController, MaxLen: ofp.ContentLenNoBuffer},
		}}},
	}
	if err := sw.FlowMod(ctx, fm); err != nil {
		sw.Logger().Error("discovery: install LLDP flow entry failed", "app", Name, "err", err)
	}
	p := &prober{sw: sw, stop: make(chan struct{}), done: make(chan struct{})}
	a.mu.Lock()
	old := a.switches[dpid]
	a.switches[dpid] = p
	a.mu.Unlock()
	if old != nil {
		old.halt()
	}
	go a.probeLoop(p)
}

// halt stops the prober and waits for it.
func (p *prober) halt() {
	close(p.stop)
	<-p.done
}

// probeLoop probes p.sw every ProbeInterval until stopped or disconnected.
func (a *App) probeLoop(p *prober) {
	defer close(p.done)
	t := time.NewTicker(a.cfg.ProbeInterval)
	defer t.Stop()
	for {
		a.probe(p.sw)
		a.Expire()
		select {
		case <-p.stop:
			return
		case <-p.sw.Done():
			return
		case <-t.C:
		}
	}
}

// probe sends one probe out of every live port of sw.
func (a *App) probe(sw controller.Switch) {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ProbeInterval)
	defer cancel()
	ttl := uint16(min((a.cfg.LinkTimeout+time.Second-1)/time.Second, 0xffff))
	for _, port := range sw.Ports() {
		if !probePort(port) {
			continue
		}
		frame, err := EncodeProbe(Probe{DPID: uint64(sw.DPID()), Port: uint32(port.PortNo), TTL: ttl}, port.HWAddr)
		if err != nil {
			a.log.Error("encode probe", "err", err)
			return
		}
		po := &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: ofp.PortController,
			Actions: ofp.Actions{&ofp.ActionOutput{Port: port.PortNo}}, Data: frame}
		if err := sw.PacketOut(ctx, po); err != nil {
			a.log.Debug("probe packet-out failed", "dpid", fmt.Sprintf("%016x", uint64(sw.DPID())), "port", uint32(port.PortNo), "err", err)
			return
		}
	}
}

// probePort reports whether probes go out of port: a physical port number
// (not LOCAL or another reserved port) that is not down.
func probePort(p ofp.Port) bool {
	return p.PortNo > 0 && p.PortNo <= ofp.PortMax && p.Config&ofp.PortConfigDown == 0 && p.State&ofp.PortStateLinkDown == 0
}

// SwitchDown stops probing the switch and removes its links.
func (a *App) SwitchDown(_ context.Context, sw controller.Switch) {
	dpid := uint64(sw.DPID())
	a.mu.Lock()
	p := a.switches[dpid]
	if p != nil && p.sw == sw {
		delete(a.switches, dpid)
	} else {
		p = nil // a newer session of the same DPID owns the entry
	}
	a.mu.Unlock()
	if p == nil {
		return
	}
	p.halt()
	a.emit(a.links.removeIf("switch down", func(l Link, _ time.Time) bool {
		return l.Src.DPID == dpid || l.Dst.DPID == dpid
	}))
}

// PortStatus removes the links of a port that was deleted or went down.
func (a *App) PortStatus(_ context.Context, sw controller.Switch, ps *controller.PortStatus) {
	if ps.Reason != ofp.PortReasonDelete && ps.Port.Config&ofp.PortConfigDown == 0 &&
		ps.Port.State&ofp.PortStateLinkDown == 0 {
		return
	}
	a.portDown(Endpoint{DPID: uint64(sw.DPID()), Port: uint32(ps.Port.PortNo)})
}

// portDown removes the links with an end at e.
func (a *App) portDown(e Endpoint) {
	a.emit(a.links.removeIf("port down", func(l Link, _ time.Time) bool { return l.Src == e || l.Dst == e }))
}

// PacketIn records the link a returning probe confirms and returns Stop for
// our probes; every other frame gets Continue.
func (a *App) PacketIn(_ context.Context, sw controller.Switch, pi *controller.PacketIn) controller.Disposition {
	return a.packetIn(uint64(sw.DPID()), pi)
}

// packetIn is PacketIn with the receiving switch's DPID.
func (a *App) packetIn(dpid uint64, pi *controller.PacketIn) controller.Disposition {
	d := pi.Data
	if len(d) < 14 || d[12] != 0x88 || d[13] != 0xcc {
		return controller.Continue
	}
	p, err := ParseProbe(d)
	if errors.Is(err, ErrNotProbe) {
		return controller.Continue
	}
	if err != nil {
		a.log.Debug("malformed LLDP frame", "dpid", fmt.Sprintf("%016x", dpid), "in_port", uint32(pi.InPort), "err", err)
		return controller.Stop
	}
	if pi.InPort > ofp.PortMax || pi.InPort == 0 {
		return controller.Stop
	}
	a.mu.Lock()
	_, known := a.switches[p.DPID]
	a.mu.Unlock()
	if !known {
		return controller.Stop // a probe of a switch we no longer (or never) control
	}
	l := Link{Src: Endpoint{DPID: p.DPID, Port: p.Port}, Dst: Endpoint{DPID: dpid, Port: uint32(pi.InPort)}}
	a.emit(a.links.seen(l, a.cfg.Now()))
	return controller.Stop
}
