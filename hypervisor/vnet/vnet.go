// Package vnet runs a tenant's network apps on its virtual view: one
// controller.Switch per virtual switch of the tenant's topology (virtual
// DPID, the port numbers the tenant chose, the tenant's own MACs), driven
// by a controller.Chain of the tenant's apps, with everything the apps send
// translated onto the physical edge bridges (package hypervisor/pipeline,
// docs/pipeline.md):
//
//   - FlowMod -> the virtual switch's flow table (table.go: the entries the
//     apps installed, as installed, with the physical copies of each) and
//     its translation (pipeline.Translate, pipeline.AddEntries, tenant ID
//     in the cookie's top 16 bits), sent to every connected edge bridge of
//     pipeline.EdgeBridges; translation errors are returned to the app
//     (*pipeline.Error) and delivered to its ErrorHandler as an
//     OFPT_ERROR would be (OpenFlow 1.3.5 §7.4.4);
//   - PacketOut -> pipeline.TranslatePacketOut, sent to the edge bridge it
//     names;
//   - LLDP (ethertype 0x88cc, IEEE 802.1AB) packet-outs are virtualized:
//     out of a port that ends a virtual link the frame never reaches a
//     switch, it comes back at once as a packet-in (OFPR_ACTION) on the
//     peer virtual switch at the peer virtual port; out of a host port it
//     goes unchanged to the host's physical port (so a tenant's link
//     discovery sees exactly the virtual links it submitted);
//   - Barrier -> barrier on every connected edge bridge of the switch;
//   - FlowStats -> flow-stats of the edge bridges restricted to the
//     tenant's cookie prefix, each virtual entry reported once as the app
//     installed it (instructions included) with the counters of its
//     physical copies summed (Switch.FlowStats);
//   - flow-removed of the physical copies -> one flow-removed per virtual
//     entry, when its last copy is gone (Tenant.FlowRemoved);
//   - a bridge that connects, reconnects (an ovs-vswitchd restart empties
//     it) or joins a virtual switch gets the switch's entries again, after
//     the deletes it missed, and loses the tenant's entries no table
//     accounts for (Tenant.Replay: Antrea's flow replay).
//   - a live migration's target bridge is a replica of its source from
//     the clone step on (Tenant.Replicate, replica.go): it runs every
//     switch the source runs, and a flow-mod of such a switch goes to
//     every copy in two barrier-acknowledged phases, a to-controller
//     guard and then the update (LIME, SoCC 2014, §4).
//
// Events of one virtual switch are serialized on one goroutine fed by a
// bounded queue; enqueueing never blocks (a full queue drops the
// packet-in, as a switch's packet-in rate limit would), so the physical
// sessions' event loops are never held up by a tenant app. The one
// exception keeps that promise: a packet-in of an idle virtual switch
// whose apps are all InlineSafe and whose only edge bridge sent it runs
// at once on that bridge's session, as a bare app would (inline.go,
// Tenant.PacketInFrom).
//
// The hypervisor (package hypervisor) creates one Tenant per tenant whose
// app list names apps of Builtin (or of its own registry), feeds it the
// demultiplexed packet-ins and flow-removed messages, calls Replay when an
// edge bridge (re)connects and Update when the tenant's view or its hosts'
// bindings change.
package vnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// DefaultQueueLen is the default bound of one virtual switch's event queue.
const DefaultQueueLen = 1024

// Physical is what a tenant runtime needs of the physical fabric: the
// connected OpenFlow session of an edge bridge. The hypervisor implements
// it; tests use fakes.
type Physical interface {
	// Switch returns the connected switch with datapath ID dpid, or nil
	// when it is not connected.
	Switch(dpid controller.DPID) controller.Switch
}

// State is one consistent reading of a tenant's mapping.
type State struct {
	// View indexes the tenant (pipeline.NewView); required.
	View *pipeline.View
	// Bindings place hosts on edge bridges; bindings of other tenants are
	// ignored.
	Bindings []pipeline.Binding
	// Moving names the tenant's hosts a live migration is moving
	// (admitted in the target cloud, hypervisor/migration.go): while one
	// is bound nowhere, its port keeps the state apps saw (holdMoving).
	Moving []string
}

// Config configures New.
type Config struct {
	// Apps are the tenant's apps, in the order they see events (at least
	// one). They are this tenant's own instances: the Tenant does not share
	// them with others.
	Apps []controller.App
	// Physical looks up edge bridges (required).
	Physical Physical
	// Logger; nil means slog.Default(). The tenant name is added.
	Logger *slog.Logger
	// QueueLen bounds each virtual switch's event queue (0:
	// DefaultQueueLen).
	QueueLen int
	// StopTimeout bounds how long Update and Close wait for one virtual
	// switch's SwitchDown handlers (0: 5 s); a stuck app is abandoned
	// (logged), not waited for forever.
	StopTimeout time.Duration
	// Hold, if set, makes Replay leave bridge b alone while Hold(b) is
	// true (the hypervisor: a snapshot restore is writing b's flow table);
	// nothing is sent and the deletes b missed are kept.
	Hold func(b controller.DPID) bool
	// Foreign, if set, names cookies of the tenant's entries that are not
	// its apps' (the hypervisor's natively realized learning): a replay
	// never deletes them.
	Foreign func(cookie uint64) bool
}

// Tenant runs one tenant's apps on its virtual switches. Create it with
// New; all methods are safe for concurrent use.
type Tenant struct {
	name  string
	id    addr.TenantID
	apps  []controller.App
	chain *controller.Chain
	phys  Physical
	hold  func(controller.DPID) bool // Config.Hold
	alien func(uint64) bool          // Config.Foreign
	log   *slog.Logger
	qlen  int
	stopT time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	snap atomic.Pointer[snapshot]

	mu        sync.Mutex // serializes Update and Close
	structure string     // structureKey of the running switches
	closed    bool
	last      State                               // the State the snapshot was built from (mu)
	replicas  map[controller.DPID]controller.DPID // replica -> source bridge (replica.go; mu)

	dropped  atomic.Uint64 // events dropped on full queues
	lldpLoop atomic.Uint64 // LLDP frames looped back over virtual links
	replays  atomic.Uint64 // Replay runs

	replayDeleted atomic.Uint64 // entries replays deleted

	replayMu sync.Mutex // serializes Replay
}

// snapshot is the immutable state the hot paths read.
type snapshot struct {
	view     *pipeline.View
	bindings []pipeline.Binding
	bridges  [][]pipeline.DPID           // by switch index-1: EdgeBridges
	bound    map[uint16]pipeline.Binding // by host vport index
	ports    [][]ofp.Port                // by switch index-1: the ports apps see
	switches []*Switch                   // by switch index-1
	fabric   map[addr.HostIndex]addr.MAC // host index -> own MAC (stats mapping)
	// replicated, by switch index-1: a replica bridge runs the switch
	// next to its source (replica.go), so its flow-mods are guarded.
	replicated []bool
}

// New starts the tenant's apps on every virtual switch of st.View: each
// virtual switch gets SwitchUp on its own goroutine. It fails on a missing
// view, physical lookup or app, or an app set controller.NewChain refuses.
func New(cfg Config, st State) (*Tenant, error) {
	if st.View == nil {
		return nil, errors.New("vnet: State.View is required")
	}
	if cfg.Physical == nil {
		return nil, errors.New("vnet: Config.Physical is required")
	}
	if len(cfg.Apps) == 0 {
		return nil, fmt.Errorf("vnet: tenant %q: no apps", st.View.Name)
	}
	chain, err := controller.NewChain(cfg.Apps...)
	if err != nil {
		return nil, fmt.Errorf("vnet: tenant %q: %w", st.View.Name, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	t := &Tenant{name: st.View.Name, id: st.View.ID, apps: slices.Clone(cfg.Apps), chain: chain, phys: cfg.Physical, hold: cfg.Hold, alien: cfg.Foreign,
		log: cfg.Logger.With("tenant", st.View.Name), qlen: cfg.QueueLen, stopT: cfg.StopTimeout}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.Lock()
	defer t.mu.Unlock()
	t.start(st)
	return t, nil
}

// Name returns the tenant's name.
func (t *Tenant) Name() string { return t.name }

// Apps returns the tenant's app instances (for reading their state, e.g.
// a discovery app's links).
func (t *Tenant) Apps() []controller.App { return slices.Clone(t.apps) }

// Dropped returns how many events were dropped because a virtual switch's
// queue was full.
func (t *Tenant) Dropped() uint64 { return t.dropped.Load() }

// LLDPLoopbacks returns how many LLDP packet-outs were handed back as
// packet-ins over virtual links.
func (t *Tenant) LLDPLoopbacks() uint64 { return t.lldpLoop.Load() }

// Switches returns the running virtual switches, by switch index.
func (t *Tenant) Switches() []*Switch {
	s := t.snap.Load()
	if s == nil {
		return nil
	}
	return slices.Clone(s.switches)
}

// Switch returns the running virtual switch with virtual DPID d.
func (t *Tenant) Switch(d topology.DPID) (*Switch, bool) {
	s := t.snap.Load()
	if s == nil {
		return nil, false
	}
	vs, ok := s.view.SwitchByDPID(d)
	if !ok {
		return nil, false
	}
	return s.switches[vs.Index-1], true
}

// Update makes st the tenant's mapping. When only bindings changed, the
// apps keep their switches (host ports whose link state changed get an
// OFPT_PORT_STATUS, spec 7.4.3, except the ports of st.Moving hosts while
// they are bound nowhere: holdMoving; a bridge that became an edge bridge of a
// switch gets its entries, Replay in the background; copies on a bridge
// that no longer is one are forgotten); when the virtual switches, their ports or
// links changed, every virtual switch goes down (SwitchDown) and the new
// ones come up (SwitchUp). A closed Tenant ignores Update. It fails on a
// nil view or a view of another tenant.
func (t *Tenant) Update(st State) error {
	if st.View == nil {
		return errors.New("vnet: Update: State.View is required")
	}
	if st.View.Name != t.name || st.View.ID != t.id {
		return fmt.Errorf("vnet: Update: view of tenant %q (%v), runtime of %q (%v)", st.View.Name, st.View.ID, t.name, t.id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	for _, b := range t.apply(st) { // a host of a switch is now on b: b needs the switch's entries
		go func() {
			if err := t.Replay(t.ctx, b); err != nil && t.ctx.Err() == nil {
				t.log.Warn("vnet: replay onto a joining bridge failed", "bridge", b, "err", err)
			}
		}()
	}
	return nil
}

// apply makes st the tenant's mapping (Update; t.mu held, not closed) and
// returns the bridges that joined a switch's edge bridges (they need a
// Replay).
func (t *Tenant) apply(st State) []controller.DPID {
	old := t.snap.Load()
	if structureKey(st.View) != t.structure {
		t.stopAll(old)
		t.start(st)
		return nil
	}
	t.last = st
	ns := t.build(st, old.switches)
	ns.holdMoving(old, st.Moving) // moving.go
	t.snap.Store(ns)
	var joined []controller.DPID
	for i, sw := range ns.switches {
		for _, b := range old.bridges[i] {
			if !slices.Contains(ns.bridges[i], b) {
				sw.dropBridge(b)
			}
		}
		for _, b := range ns.bridges[i] {
			if !slices.Contains(old.bridges[i], b) && !slices.Contains(joined, b) {
				joined = append(joined, b)
			}
		}
	}
	for i, sw := range ns.switches {
		for j, p := range ns.ports[i] {
			if p.State != old.ports[i][j].State {
				sw.enqueue(event{ps: &controller.PortStatus{Reason: ofp.PortReasonModify, Port: p}})
			}
		}
	}
	return joined
}

// Close takes every virtual switch down (SwitchDown), waits for their
// goroutines (each at most Config.StopTimeout) and cancels the context the
// apps got. It is idempotent.
func (t *Tenant) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	t.stopAll(t.snap.Load())
	t.cancel()
}

// start creates and starts the switches of st (t.mu held).
func (t *Tenant) start(st State) {
	sws := make([]*Switch, len(st.View.Switches))
	for i, vs := range st.View.Switches {
		sws[i] = &Switch{t: t, dpid: controller.DPID(vs.DPID), name: vs.Name, index: vs.Index,
			log:    t.log.With("vswitch", vs.Name, "vdpid", vs.DPID.String()),
			events: make(chan event, t.qlen), done: make(chan struct{}), exited: make(chan struct{})}
	}
	t.last = st
	t.snap.Store(t.build(st, sws))
	t.structure = structureKey(st.View)
	for _, sw := range sws {
		go sw.run()
	}
}

// stopAll closes every switch of s and waits for each (t.mu held).
func (t *Tenant) stopAll(s *snapshot) {
	if s == nil {
		return
	}
	for _, sw := range s.switches {
		sw.closeOnce.Do(func() { close(sw.done) })
	}
	deadline := time.NewTimer(t.stopT)
	defer deadline.Stop()
	for _, sw := range s.switches {
		select {
		case <-sw.exited:
		case <-deadline.C:
			t.log.Error("vnet: virtual switch did not stop in time; abandoned", "vswitch", sw.name, "timeout", t.stopT)
			return
		}
	}
}

// build computes the snapshot of st for switches sws.
func (t *Tenant) build(st State, sws []*Switch) *snapshot {
	v := st.View
	var mine []pipeline.Binding
	for _, b := range st.Bindings {
		if b.Tenant == v.Name {
			mine = append(mine, b)
		}
	}
	s := &snapshot{view: v, bindings: mine, switches: sws, bound: map[uint16]pipeline.Binding{},
		fabric: make(map[addr.HostIndex]addr.MAC, len(v.Hosts))}
	for _, h := range v.Hosts {
		s.fabric[h.Index] = h.MAC
	}
	for _, b := range mine {
		if h, ok := v.HostByName(b.Host); ok {
			s.bound[h.VPort] = b
		}
	}
	s.bridges = make([][]pipeline.DPID, len(v.Switches))
	s.ports = make([][]ofp.Port, len(v.Switches))
	s.replicated = make([]bool, len(v.Switches))
	for i, vs := range v.Switches {
		s.bridges[i], s.replicated[i] = t.withReplicas(pipeline.EdgeBridges(v, mine, vs.DPID)) // replica.go
		for _, pi := range vs.Ports {
			s.ports[i] = append(s.ports[i], s.portDesc(pi))
		}
	}
	return s
}

// portDesc describes virtual port pi as apps see it (spec 7.2.1): name
// after the host or the link's far end, a locally administered MAC
// 02:<switch index>:<port number low 24 bits>, 10 Gb/s copper full
// duplex; a host port whose host is not bound is link-down.
func (s *snapshot) portDesc(pi uint16) ofp.Port {
	p := s.view.Ports[pi-1]
	hw := []byte{0x02, byte(p.Switch >> 8), byte(p.Switch), byte(p.Port >> 16), byte(p.Port >> 8), byte(p.Port)}
	var name string
	state := ofp.PortStateLive
	if p.Host != nil {
		name = p.Host.Name
		if _, ok := s.bound[pi]; !ok {
			state = ofp.PortStateLinkDown
		}
	} else if p.Peer != 0 {
		peer := s.view.Ports[p.Peer-1]
		name = fmt.Sprintf("%s-%d", s.view.Switches[peer.Switch-1].Name, peer.Port)
	}
	if len(name) > 15 { // OFP_MAX_PORT_NAME_LEN 16, NUL-terminated
		name = name[:15]
	}
	feat := ofp.PortFeature10GbitFullDuplex | ofp.PortFeatureCopper
	return ofp.Port{PortNo: ofp.PortNo(p.Port), HWAddr: hw, Name: name, State: state,
		Curr: feat, Advertised: feat, Supported: feat, CurrSpeed: 10_000_000, MaxSpeed: 10_000_000}
}

// structureKey identifies what the apps see of a view: switches (name,
// DPID) and their ports with what they connect to. Bindings are not part
// of it.
func structureKey(v *pipeline.View) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v;", v.ID)
	for _, s := range v.Switches {
		fmt.Fprintf(&b, "%s=%s:", s.Name, s.DPID)
		for _, pi := range s.Ports {
			p := v.Ports[pi-1]
			switch {
			case p.Host != nil:
				fmt.Fprintf(&b, "%d>h%s,", p.Port, p.Host.Name)
			case p.Peer != 0:
				fmt.Fprintf(&b, "%d>p%d,", p.Port, p.Peer)
			}
		}
		b.WriteByte(';')
	}
	return b.String()
}

// PacketIn queues a packet-in on virtual switch vdpid (spec 7.4.1, in the
// virtual view): in_port = inPort (a port number the tenant chose), table
// = the virtual table, cookie = the app's cookie (low 48 bits), frame =
// the Ethernet frame with the tenant's own MACs (the Tenant keeps it).
// The packet-in has no buffer (OFP_NO_BUFFER) and reason OFPR_NO_MATCH
// when cookie is 0 (the hypervisor's table-miss), else OFPR_ACTION. It
// returns false if the switch is unknown or its queue is full (dropped,
// counted in Dropped). It never blocks.
func (t *Tenant) PacketIn(vdpid topology.DPID, inPort uint32, table uint8, cookie uint64, frame []byte) bool {
	return t.PacketInFrom(noBridge, vdpid, inPort, table, cookie, frame)
}

// noBridge is the "from" of PacketIn: no edge bridge has DPID 0 (the
// infrastructure refuses it), so PacketInFrom always queues.
const noBridge controller.DPID = 0

// newPacketIn builds a controller.PacketIn of the virtual view, with its
// in_port OXM, in one allocation (the packet-in hot path).
func newPacketIn(inPort uint32, table uint8, cookie uint64, reason ofp.PacketInReason, frame []byte) *controller.PacketIn {
	b := &struct {
		pi     controller.PacketIn
		fields [1]ofp.XM
		port   [4]byte
	}{port: [4]byte{byte(inPort >> 24), byte(inPort >> 16), byte(inPort >> 8), byte(inPort)}}
	b.fields[0] = ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeInPort, Value: b.port[:]} // pipeline.InPort
	b.pi = controller.PacketIn{BufferID: ofp.NoBuffer, TotalLen: uint16(min(len(frame), 0xffff)), Reason: reason,
		TableID: table, Cookie: cookie, InPort: ofp.PortNo(inPort), Data: frame,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: b.fields[:]}}
	return &b.pi
}

// FlowRemoved accounts a physical OFPT_FLOW_REMOVED (spec 7.4.2) from
// edge bridge b of one of the tenant's translated entries to the virtual
// switch named by its metadata (table.go): the copies of one virtual
// entry (group copies, in-port variants, one per edge bridge) are removed
// one by one, and the apps get one flow-removed per virtual entry, when
// its last copy is gone, with the virtual table, priority and match, the
// app's cookie and the summed counters (only if the app set
// OFPFF_SEND_FLOW_REM). It returns false if the entry is not this tenant's
// or not a copy the virtual switch knows.
func (t *Tenant) FlowRemoved(b controller.DPID, fr *ofp.FlowRemoved) bool {
	s := t.snap.Load()
	if s == nil || addr.TenantID(fr.Cookie>>48) != t.id {
		return false
	}
	if uint8(fr.Table) < pipeline.TableTenant || uint8(fr.Table) >= pipeline.TableTenant+pipeline.NumTenantTables {
		return false
	}
	idx, _, ok := s.mapMatch(fr.Match.Fields)
	if !ok {
		return false
	}
	return s.switches[idx-1].flowRemoved(b, fr)
}

// Replay brings edge bridge b, which just connected (or reconnected, e.g.
// after an ovs-vswitchd restart emptied its flow table) or joined a
// virtual switch's edge bridges, up to date with the tenant's virtual
// switches that span it: it sends the deletes b missed while it was away,
// reads b's entries of the tenant (flow-stats, cookie prefix), adds every
// translated entry of the switches' tables that b lacks or holds with
// other instructions (entries b holds unchanged keep their counters) and
// deletes (strict, by exact cookie) the tenant's entries on b that are no
// copy of a table entry of a switch spanning b and not Config.Foreign:
// entries an app deleted while b was not an edge bridge of its switch,
// entries of an earlier run of Skyvisor or of an earlier topology, a
// snapshot's app entries (docs/snapshot.md). b then holds exactly the
// apps' tables. It does nothing when b is not connected, spans none of the
// tenant's switches or is held (Config.Hold). Replays are serialized per
// tenant. Errors: the
// bridge's flow-stats or flow-mod errors, wrapped.
func (t *Tenant) Replay(ctx context.Context, b controller.DPID) error {
	return t.replay(ctx, b, false)
}

// replay is Replay; with prune it also runs when b spans none of the
// tenant's switches, deleting all of the tenant's entries on b but the
// Config.Foreign ones (Unreplicate of a replica that was the tenant's
// only reason to be on b).
func (t *Tenant) replay(ctx context.Context, b controller.DPID, prune bool) error {
	t.replayMu.Lock()
	defer t.replayMu.Unlock()
	snap := t.snap.Load()
	if snap == nil || t.hold != nil && t.hold(b) {
		return nil
	}
	var sws []*Switch
	for i, bs := range snap.bridges {
		if slices.Contains(bs, b) {
			sws = append(sws, snap.switches[i])
		}
	}
	psw := t.phys.Switch(b)
	if len(sws) == 0 && !prune || psw == nil {
		return nil
	}
	for _, s := range sws {
		for _, f := range s.takePending(b) {
			if err := psw.FlowMod(ctx, f); err != nil {
				return fmt.Errorf("vnet: replay on bridge %s: missed delete: %w", b, err)
			}
		}
	}
	fs, err := psw.FlowStats(ctx, &ofp.FlowStatsRequest{Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Cookie: pipeline.TenantCookie(t.id, 0), CookieMask: pipeline.MetaTenantMask, Match: ofp.Match{Type: ofp.MatchTypeXM}})
	if err != nil {
		return fmt.Errorf("vnet: replay on bridge %s: flow stats: %w", b, err)
	}
	present := make(map[string]*controller.FlowStats, len(fs))
	for i := range fs {
		p := &fs[i]
		if uint8(p.Table) < pipeline.TableTenant || uint8(p.Table) >= pipeline.TableTenant+pipeline.NumTenantTables ||
			addr.TenantID(p.Cookie>>48) != t.id {
			continue
		}
		present[(&pipeline.Entry{Table: uint8(p.Table), Priority: p.Priority, Match: p.Match.Fields}).Key()] = p
	}
	// Every virtual switch of the tenant is locked (index order; nothing
	// else takes two) while the replay is decided and sent, so an app's
	// flow-mod is entirely before or after it.
	for _, s := range snap.switches {
		s.mu.Lock()
	}
	defer func() {
		for _, s := range snap.switches {
			s.mu.Unlock()
		}
	}()
	now := time.Now()
	claimed := map[string]bool{}
	var adds []*ofp.FlowMod
	for _, s := range sws {
		adds = append(adds, s.replayLocked(b, present, claimed, now)...)
	}
	var dels []*ofp.FlowMod
	for k, p := range present {
		if !claimed[k] && (t.alien == nil || !t.alien(p.Cookie)) {
			e := pipeline.FromFlowStats(p)
			dels = append(dels, e.DeleteStrict())
		}
	}
	for _, f := range append(dels, adds...) {
		if err := psw.FlowMod(ctx, f); err != nil {
			return fmt.Errorf("vnet: replay on bridge %s: %w", b, err)
		}
	}
	t.replays.Add(1)
	t.replayDeleted.Add(uint64(len(dels)))
	return nil
}

// ReplayDeleted returns how many entries replays deleted from bridges
// (entries that were no copy of an app's table entry).
func (t *Tenant) ReplayDeleted() uint64 { return t.replayDeleted.Load() }

// Replays returns how many bridge replays ran (Replay calls that found
// the bridge connected and spanning a switch).
func (t *Tenant) Replays() uint64 { return t.replays.Load() }
