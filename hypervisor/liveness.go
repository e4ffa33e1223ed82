package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/tunnels"
)

// Tunnel liveness, the way OVN does it: every gateway tunnel port runs BFD
// (RFC 5880, RFC 5881; ovs-vswitchd implements the sessions, in the
// userspace datapath too), the hypervisor watches the ports' bfd_status
// over OVSDB and, when a tunnel of the tree stops forwarding, repairs the
// tree around it (tunnels.Replan: that tunnel out, the cheapest
// reconnecting one in). The failed pair's ports stay on both gateways as a
// probe with BFD running but no traffic; when the session is up again for
// LivenessConfig.UpAfter the pair is readmitted (tunnels.Readmit: back in,
// the most expensive tunnel of its tree path out, if that is cheaper), so
// the tree returns to the minimum spanning tree in one exchange.

// Defaults of LivenessConfig.
const (
	DefaultBFDMinRx          = 500 * time.Millisecond
	DefaultBFDMinTx          = 500 * time.Millisecond
	DefaultBFDMult           = 3
	DefaultTunnelDownUpdates = 2
	DefaultTunnelDownAfter   = 1 * time.Second
	DefaultTunnelUpAfter     = 2 * time.Second
	DefaultTunnelSetupGrace  = 15 * time.Second
	DefaultTunnelResetGrace  = 5 * time.Second
	// tunnelRetryAfter is how long liveness waits before it tries again
	// to route around a tunnel whose repair failed (no other pair can
	// connect the sites).
	tunnelRetryAfter = 5 * time.Second
)

// LivenessConfig configures BFD on the gateway tunnels and the debounce
// between what BFD reports and the hypervisor's reaction. The zero value
// means every default.
type LivenessConfig struct {
	// Disabled leaves BFD off on the tunnel ports (their bfd column
	// empty); then nothing detects a failed tunnel and only TunnelDown
	// changes the tree.
	Disabled bool
	// BFD are the session settings of every tunnel port: MinRx and MinTx
	// (default 500 ms each) and Mult (default 3). A failure is detected
	// by ovs-vswitchd after Mult x max(local MinRx, remote MinTx), 1.5 s
	// with the defaults.
	BFD tunnels.BFDConfig
	// DownUpdates: a tree tunnel is declared down after this many
	// consecutive bfd_status reports (from either end) saying it is not
	// up and forwarding, since it was last up (default 2: both ends
	// reporting a failure, or one end twice).
	DownUpdates int
	// DownAfter: ... or once it has not been up for this long since the
	// first such report (default 1 s): one end alone reporting a failure
	// that does not clear.
	DownAfter time.Duration
	// UpAfter: a pair declared down is readmitted once both of its ports
	// have been up and forwarding for this long (default 2 s).
	UpAfter time.Duration
	// SetupGrace: a tree tunnel whose session has never come up this long
	// after its port appeared is declared down (default 15 s; a new
	// session takes 1-3 s, since BFD sends at most one packet a second
	// until it is up).
	SetupGrace time.Duration
	// ResetGrace replaces DownUpdates and DownAfter when neither end's
	// session timed out (no "Control Detection Time Expired" diagnostic):
	// the peer signalled the session down because it restarted it (an
	// ovs-vswitchd restart, a BFD reconfiguration), so packets do cross
	// and the session is expected back within 1-3 s. Such a tunnel is
	// declared down only if it is not up again after ResetGrace (default
	// 5 s). A path failure times out at the receiving end and is handled
	// by DownUpdates/DownAfter.
	ResetGrace time.Duration
}

// bfdTimeout is the bfd_status diagnostic of a session that went down
// because no control packet arrived in time (RFC 5880 section 4.1, Diag
// 1, as ovs-vswitchd names it).
const bfdTimeout = "Control Detection Time Expired"

// withDefaults fills in the zero fields.
func (c LivenessConfig) withDefaults() LivenessConfig {
	if c.BFD.MinRx == 0 {
		c.BFD.MinRx = DefaultBFDMinRx
	}
	if c.BFD.MinTx == 0 {
		c.BFD.MinTx = DefaultBFDMinTx
	}
	if c.BFD.Mult == 0 {
		c.BFD.Mult = DefaultBFDMult
	}
	if c.DownUpdates <= 0 {
		c.DownUpdates = DefaultTunnelDownUpdates
	}
	if c.DownAfter <= 0 {
		c.DownAfter = DefaultTunnelDownAfter
	}
	if c.UpAfter <= 0 {
		c.UpAfter = DefaultTunnelUpAfter
	}
	if c.SetupGrace <= 0 {
		c.SetupGrace = DefaultTunnelSetupGrace
	}
	if c.ResetGrace <= 0 {
		c.ResetGrace = DefaultTunnelResetGrace
	}
	return c
}

// liveState is the liveness part of the Hypervisor (its own lock: never
// held while taking applyMu or h.mu).
type liveState struct {
	mu       sync.Mutex
	started  bool                              // the evaluation loop runs
	events   chan liveEvent                    // from the gateway watchers
	watching map[string]OVSDB                  // gateway watches by site: the client watched
	ports    map[liveEnd]*livePort             // tunnel ports seen, by (site, peer)
	down     map[tunnels.Pair]bool             // pairs declared down by BFD (kept as probes)
	retry    map[tunnels.Pair]time.Time        // no repair attempt before
	declared map[tunnels.Pair]time.Time        // when each pair was declared down
	notify   map[chan TunnelLivenessEvent]bool // subscribers (tests)
}

// liveEnd is one end of a tunnel: the port on site's gateway toward peer.
type liveEnd struct{ site, peer string }

// livePort is what liveness knows of one tunnel port.
type livePort struct {
	bfd    ovsdb.BFDStatus
	up     bool      // bfd says up and forwarding
	everUp bool      // up at least once since the port appeared
	seen   time.Time // port appeared
	since  time.Time // current up / not-up condition began
	notUp  int       // consecutive not-up reports since last up
}

type liveEvent struct {
	site string
	ev   ovsdb.InterfaceEvent
	at   time.Time
}

// TunnelLivenessEvent is a decision of the liveness monitor.
type TunnelLivenessEvent struct {
	Pair tunnels.Pair
	// Down is true when the pair was declared down (and routed around),
	// false when it was readmitted.
	Down bool
	// At is when the decision was taken; Took is how long the repair
	// (replan, provisioning, flow push) took.
	At   time.Time
	Took time.Duration
	// Diff is the change of the tunnel tree, Err the repair's error.
	Diff tunnels.Diff
	Err  error
}

// liveCfg returns the configuration with defaults.
func (h *Hypervisor) liveCfg() LivenessConfig { return h.cfg.Liveness.withDefaults() }

// tunnelBFD returns the BFD settings for the provisioner, nil if disabled.
func (h *Hypervisor) tunnelBFD() *tunnels.BFDConfig {
	if h.cfg.Liveness.Disabled {
		return nil
	}
	b := h.liveCfg().BFD
	return &b
}

// probePairs returns the pairs declared down by BFD whose ports are kept
// as probes.
func (h *Hypervisor) probePairs() map[tunnels.Pair]bool {
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	return maps.Clone(h.live.down)
}

// LivenessDown returns the pairs currently declared down by BFD, sorted.
func (h *Hypervisor) LivenessDown() []tunnels.Pair {
	ps := slices.Collect(maps.Keys(h.probePairs()))
	slices.SortFunc(ps, tunnels.ComparePairs)
	return ps
}

// LivenessEvents returns a channel that receives every later liveness
// decision (buffered; decisions are dropped when it is full) and a
// function that stops the subscription.
func (h *Hypervisor) LivenessEvents() (<-chan TunnelLivenessEvent, func()) {
	ch := make(chan TunnelLivenessEvent, 64)
	h.live.mu.Lock()
	if h.live.notify == nil {
		h.live.notify = map[chan TunnelLivenessEvent]bool{}
	}
	h.live.notify[ch] = true
	h.live.mu.Unlock()
	return ch, func() {
		h.live.mu.Lock()
		delete(h.live.notify, ch)
		h.live.mu.Unlock()
	}
}

// TunnelStatus is the BFD state of one gateway tunnel port.
type TunnelStatus struct {
	Site, Peer string
	BFD        ovsdb.BFDStatus
	// Probe is true for a port kept only to detect that a pair declared
	// down is back.
	Probe bool
}

// TunnelStatuses returns the BFD state of every gateway tunnel port seen,
// sorted by site and peer.
func (h *Hypervisor) TunnelStatuses() []TunnelStatus {
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	out := make([]TunnelStatus, 0, len(h.live.ports))
	for e, p := range h.live.ports {
		out = append(out, TunnelStatus{Site: e.site, Peer: e.peer, BFD: p.bfd, Probe: h.live.down[tunnels.MakePair(e.site, e.peer)]})
	}
	slices.SortFunc(out, func(a, b TunnelStatus) int {
		if a.Site != b.Site {
			if a.Site < b.Site {
				return -1
			}
			return 1
		}
		if a.Peer < b.Peer {
			return -1
		}
		if a.Peer > b.Peer {
			return 1
		}
		return 0
	})
	return out
}

// watchGateways starts (once per site) watching the interfaces of every
// gateway that has a connection in clients, feeding BFD state changes of
// its tunnel ports to the liveness loop. Nothing happens before Run or
// with liveness disabled. applyMu must be held.
func (h *Hypervisor) watchGateways(inf *infra.Infra, clients map[string]OVSDB) {
	if h.cfg.Liveness.Disabled {
		return
	}
	h.mu.Lock()
	ctx := h.runCtx
	h.mu.Unlock()
	if ctx == nil {
		return
	}
	h.startLiveness(ctx)
	for _, s := range inf.Sites {
		gw := inf.Gateway(s.Name)
		c := clients[gw.OVSDB]
		if c == nil {
			continue
		}
		site := s.Name
		// One watch per site and connection: a site removed and added
		// again (RemoveSite closed its connection) is watched anew.
		unwatch := func() {
			h.live.mu.Lock()
			if h.live.watching[site] == c {
				delete(h.live.watching, site)
			}
			h.live.mu.Unlock()
		}
		h.live.mu.Lock()
		watched := h.live.watching[site] == c
		h.live.mu.Unlock()
		if watched {
			continue
		}
		// Callers hold applyMu: no other watch of site starts meanwhile.
		events, err := c.WatchInterfaces(ctx, gw.Bridge)
		if err != nil {
			h.log.Warn("hypervisor: liveness: watch gateway", "site", site, "bridge", gw.Bridge, "err", err)
			continue
		}
		h.live.mu.Lock()
		h.live.watching[site] = c
		h.live.mu.Unlock()
		go func() {
			defer unwatch()
			for ev := range events {
				if _, ok := ev.Interface.ExternalIDs[tunnels.ExternalIDTunnel]; !ok {
					continue
				}
				select {
				case h.live.events <- liveEvent{site: site, ev: ev, at: time.Now()}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
}

// startLiveness starts the evaluation loop once.
func (h *Hypervisor) startLiveness(ctx context.Context) {
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	if h.live.started {
		return
	}
	h.live.started = true
	h.initLiveLocked()
	go h.livenessLoop(ctx)
}

func (h *Hypervisor) initLiveLocked() {
	if h.live.events == nil {
		h.live.events = make(chan liveEvent, 64)
	}
	if h.live.watching == nil {
		h.live.watching = map[string]OVSDB{}
		h.live.ports = map[liveEnd]*livePort{}
		h.live.down = map[tunnels.Pair]bool{}
		h.live.retry = map[tunnels.Pair]time.Time{}
		h.live.declared = map[tunnels.Pair]time.Time{}
	}
}

// livenessLoop applies port events and takes decisions until ctx ends.
func (h *Hypervisor) livenessLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-h.live.events:
			h.livePortEvent(ev)
			// Take every event already queued before deciding.
		drain:
			for {
				select {
				case ev := <-h.live.events:
					h.livePortEvent(ev)
				default:
					break drain
				}
			}
		case <-timer.C:
		}
		downs, ups, next := h.liveDecide(time.Now())
		for _, p := range downs {
			h.livenessDown(ctx, p)
		}
		for _, p := range ups {
			h.livenessUp(ctx, p)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		d := time.Hour
		if !next.IsZero() {
			d = max(time.Until(next), time.Millisecond)
		}
		if len(downs)+len(ups) > 0 {
			d = time.Millisecond // re-evaluate after the repair
		}
		timer.Reset(d)
	}
}

// livePortEvent updates the state of one tunnel port.
func (h *Hypervisor) livePortEvent(le liveEvent) {
	i := le.ev.Interface
	e := liveEnd{site: le.site, peer: i.ExternalIDs[tunnels.ExternalIDTunnel]}
	if s := i.ExternalIDs[tunnels.ExternalIDSite]; s != "" && s != le.site {
		return
	}
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	if le.ev.Type == ovsdb.InterfaceRemoved {
		delete(h.live.ports, e)
		return
	}
	p := h.live.ports[e]
	if p == nil {
		p = &livePort{seen: le.at, since: le.at}
		h.live.ports[e] = p
	}
	if p.bfd == i.BFD && le.ev.Type != ovsdb.InterfaceAdded {
		return // another column changed
	}
	p.bfd = i.BFD
	if !i.BFD.Reported() {
		return // BFD not (yet) running: no information
	}
	up := i.BFD.Up()
	switch {
	case up && !p.up:
		p.up, p.everUp, p.since, p.notUp = true, true, le.at, 0
	case !up && p.up:
		p.up, p.since, p.notUp = false, le.at, 1
	case !up:
		if p.everUp {
			p.notUp++
		}
	}
}

// liveDecide returns the tree pairs to declare down, the probe pairs to
// readmit, and when to decide again (zero: nothing pending).
func (h *Hypervisor) liveDecide(now time.Time) (downs, ups []tunnels.Pair, next time.Time) {
	cfg := h.liveCfg()
	tree := h.Plan()
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, t := range tree.Tunnels {
		p := t.Pair()
		if h.live.down[p] {
			continue
		}
		if r, ok := h.live.retry[p]; ok && now.Before(r) {
			later(r)
			continue
		}
		ends := []*livePort{h.live.ports[liveEnd{p.A, p.B}], h.live.ports[liveEnd{p.B, p.A}]}
		var notUp int
		var since time.Time
		fail, timedOut := false, false
		for _, e := range ends {
			if e == nil {
				continue
			}
			switch {
			case e.up:
			case e.everUp:
				notUp += e.notUp
				if since.IsZero() || e.since.Before(since) {
					since = e.since
				}
				timedOut = timedOut || e.bfd.Diagnostic == bfdTimeout
			default: // never up since the port appeared
				if dl := e.seen.Add(cfg.SetupGrace); !now.Before(dl) {
					fail = true
				} else {
					later(dl)
				}
			}
		}
		switch {
		case since.IsZero():
		case timedOut: // packets stopped arriving: a path failure
			if notUp >= cfg.DownUpdates || !now.Before(since.Add(cfg.DownAfter)) {
				fail = true
			} else {
				later(since.Add(cfg.DownAfter))
			}
		default: // the peer reset the session: give it time to come back
			if dl := since.Add(cfg.ResetGrace); !now.Before(dl) {
				fail = true
			} else {
				later(dl)
			}
		}
		if fail {
			downs = append(downs, p)
		}
	}
	for p := range h.live.down {
		a, b := h.live.ports[liveEnd{p.A, p.B}], h.live.ports[liveEnd{p.B, p.A}]
		if a == nil || b == nil || !a.up || !b.up {
			continue
		}
		since := a.since
		if b.since.After(since) {
			since = b.since
		}
		if dl := since.Add(cfg.UpAfter); now.Before(dl) {
			later(dl)
			continue
		}
		ups = append(ups, p)
	}
	slices.SortFunc(ups, tunnels.ComparePairs)
	return downs, ups, next
}

// livenessDown routes around pair p, declared down by BFD: p becomes a
// probe (its ports stay, BFD keeps running) and the tree is repaired with
// tunnels.Replan. If no other pair can connect the sites the plan stays
// and the attempt is repeated after tunnelRetryAfter.
func (h *Hypervisor) livenessDown(ctx context.Context, p tunnels.Pair) {
	start := time.Now()
	h.applyMu.Lock()
	inf := h.Infrastructure()
	cur := h.Plan()
	before := h.provisioned(inf, cur)
	h.live.mu.Lock()
	a, b := h.live.ports[liveEnd{p.A, p.B}], h.live.ports[liveEnd{p.B, p.A}]
	state := fmt.Sprintf("%s: %v; %s: %v", p.A, portState(a), p.B, portState(b))
	h.live.down[p] = true
	h.live.declared[p] = start
	h.live.mu.Unlock()
	err := h.replanFrom(ctx, inf, before, func(sites []tunnels.Site, costs tunnels.Costs, down map[tunnels.Pair]bool) (tunnels.Plan, tunnels.Diff, error) {
		return h.repairTunnels(cur, sites, costs, down)
	})
	var de *tunnels.DisconnectedError
	if errors.As(err, &de) {
		h.live.mu.Lock()
		delete(h.live.down, p)
		h.live.retry[p] = time.Now().Add(tunnelRetryAfter)
		h.live.mu.Unlock()
	}
	next := h.Plan()
	h.applyMu.Unlock()
	ev := TunnelLivenessEvent{Pair: p, Down: true, At: start, Took: time.Since(start), Diff: tunnels.Compare(cur, next), Err: err}
	if err != nil {
		h.log.Error("hypervisor: liveness: tunnel down, repair failed", "tunnel", p.String(), "bfd", state, "err", err)
	} else {
		h.log.Warn("hypervisor: liveness: tunnel down (BFD), routed around", "tunnel", p.String(), "bfd", state,
			"added", tunnelList(ev.Diff.Add), "removed", tunnelList(ev.Diff.Remove), "took", ev.Took)
	}
	h.liveRecord(ev)
}

// livenessUp readmits pair p, up again for UpAfter: tunnels.Readmit puts
// it back into the tree when that is cheaper (one tunnel in, one out).
func (h *Hypervisor) livenessUp(ctx context.Context, p tunnels.Pair) {
	start := time.Now()
	h.applyMu.Lock()
	inf := h.Infrastructure()
	cur := h.Plan()
	before := h.provisioned(inf, cur)
	h.live.mu.Lock()
	delete(h.live.down, p)
	delete(h.live.retry, p)
	downFor := start.Sub(h.live.declared[p])
	delete(h.live.declared, p)
	h.live.mu.Unlock()
	err := h.replanFrom(ctx, inf, before, func(sites []tunnels.Site, costs tunnels.Costs, down map[tunnels.Pair]bool) (tunnels.Plan, tunnels.Diff, error) {
		return h.readmitTunnel(cur, sites, costs, down, p)
	})
	next := h.Plan()
	h.applyMu.Unlock()
	ev := TunnelLivenessEvent{Pair: p, At: start, Took: time.Since(start), Diff: tunnels.Compare(cur, next), Err: err}
	if err != nil {
		h.log.Error("hypervisor: liveness: tunnel up, readmission failed", "tunnel", p.String(), "err", err)
	} else {
		h.log.Info("hypervisor: liveness: tunnel up again (BFD)", "tunnel", p.String(), "down_for", downFor,
			"added", tunnelList(ev.Diff.Add), "removed", tunnelList(ev.Diff.Remove), "took", ev.Took)
	}
	h.liveRecord(ev)
}

func portState(p *livePort) string {
	if p == nil {
		return "no port"
	}
	return p.bfd.String()
}

func tunnelList(ts []tunnels.Tunnel) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Pair().String()
	}
	return out
}

// liveRecord hands ev to the subscribers (LivenessEvents).
func (h *Hypervisor) liveRecord(ev TunnelLivenessEvent) {
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	for ch := range h.live.notify {
		select {
		case ch <- ev:
		default:
		}
	}
}

// forgetSiteLiveness drops the liveness state of a site leaving the
// fabric (RemoveSite).
func (h *Hypervisor) forgetSiteLiveness(site string) {
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	for e := range h.live.ports {
		if e.site == site || e.peer == site {
			delete(h.live.ports, e)
		}
	}
	for p := range h.live.down {
		if p.A == site || p.B == site {
			delete(h.live.down, p)
			delete(h.live.retry, p)
			delete(h.live.declared, p)
		}
	}
}
