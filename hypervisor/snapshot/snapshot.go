// Package snapshot captures and restores the network state of switches
// (the paper's third requirement, "network snapshot and migration": "The
// first step in snapshotting an SDN switch is the flow table ... traffic
// counters and timers ... the switch configuration and its queues").
//
// A Snapshot holds, per switch, its OVSDB configuration (bridge, ports,
// interfaces with options and OpenFlow port numbers, controllers, QoS and
// queues; RFC 7047 tables of ovs-vswitchd.conf.db(5)) and its flow table as
// an OFPMP_FLOW reply reports it (OpenFlow 1.3.5 §7.3.5.2), including
// counters, durations and experimenter actions byte-exactly. Take captures
// one, Restore re-creates it on the same or a fresh Open vSwitch, and
// Offsets makes counters continue across a restore. Service stores
// snapshots in the bbolt store (hypervisor/store). The JSON format and the
// limits (counters, timeouts) are in docs/snapshot.md.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// Switch is the OpenFlow session of one bridge; controller.Switch
// implements it.
type Switch = reconcile.SyncSwitch

// Target is one bridge to capture or restore onto.
type Target struct {
	// Bridge is the bridge name in the target's Open_vSwitch database.
	Bridge string
	// DPID is the bridge's datapath ID when known; Restore then matches
	// the snapshot's switch by DPID rather than by bridge name (names
	// repeat across VMs, e.g. "br-int" on every one).
	DPID uint64
	// Config reads and writes that database (e.g. *OVSDB).
	Config Config
	// Connect returns the OpenFlow session of the bridge with datapath ID
	// dpid, waiting for it to connect until ctx ends (see WaitSwitch).
	Connect func(ctx context.Context, dpid uint64) (Switch, error)
}

// Take captures the bridges in targets (a tenant's switches: those holding
// its ports; one target for a single switch) into a snapshot with a new ID
// and the current time. For each bridge it reads the OVSDB configuration,
// then the whole flow table through the bridge's session. Errors name the
// bridge. The flow tables of different bridges are read one after the
// other, not atomically.
func Take(ctx context.Context, tenant string, targets []Target, now time.Time) (*Snapshot, error) {
	s := &Snapshot{Version: FormatVersion, ID: NewID(now), Time: now.UTC().Truncate(time.Millisecond), Tenant: tenant}
	seen := map[uint64]bool{}
	for _, tg := range targets {
		bc, err := tg.Config.ReadBridge(ctx, tg.Bridge)
		if err != nil {
			return nil, fmt.Errorf("snapshot: take bridge %q: %w", tg.Bridge, err)
		}
		dpid, err := ovsdb.ParseDatapathID(bc.DatapathID)
		if err != nil {
			return nil, fmt.Errorf("snapshot: take bridge %q: %w", tg.Bridge, err)
		}
		if seen[dpid] {
			return nil, fmt.Errorf("snapshot: take bridge %q: datapath ID %s listed twice", tg.Bridge, bc.DatapathID)
		}
		seen[dpid] = true
		sw, err := tg.Connect(ctx, dpid)
		if err != nil {
			return nil, fmt.Errorf("snapshot: take bridge %q (dpid %s): session: %w", tg.Bridge, bc.DatapathID, err)
		}
		stats, err := sw.FlowStats(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("snapshot: take bridge %q (dpid %s): flow stats: %w", tg.Bridge, bc.DatapathID, err)
		}
		st := SwitchState{DPID: bc.DatapathID, Bridge: bc, Flows: make([]Flow, 0, len(stats))}
		for i := range stats {
			f, err := FlowFromStats(&stats[i])
			if err != nil {
				return nil, fmt.Errorf("snapshot: take bridge %q: flow %d (table %d priority %d): %w", tg.Bridge, i, stats[i].Table, stats[i].Priority, err)
			}
			st.Flows = append(st.Flows, f)
		}
		s.Switches = append(s.Switches, st)
	}
	return s, nil
}

// SwitchReport says what Restore did on one bridge.
type SwitchReport struct {
	Bridge string `json:"bridge"`
	DPID   string `json:"dpid"`
	// Config is the OVSDB change applied ("no change" when none).
	Config string `json:"config"`
	// FlowsAdded is the number of FlowMod ADDs sent (entries already
	// identical on the switch are not re-sent).
	FlowsAdded int `json:"flows_added"`
	// FlowsKept is the number of snapshot entries already present.
	FlowsKept int `json:"flows_kept"`
	// RolledBack is true when flows were added and then removed again
	// because the install or the verification failed.
	RolledBack bool `json:"rolled_back,omitempty"`
	// Done is true when the bridge's flow table equals the snapshot.
	Done bool `json:"done"`
}

// Report is the outcome of Restore, also returned on error: the bridges
// already restored and what happened on the one that failed.
type Report struct {
	ID       string         `json:"id"`
	Switches []SwitchReport `json:"switches"`
	// Offsets are the counter offsets of every restored flow, for Stats.
	Offsets *Offsets `json:"-"`
}

// String summarizes the report, one bridge per clause.
func (r *Report) String() string {
	var parts []string
	for _, s := range r.Switches {
		state := "restored"
		if !s.Done {
			state = "FAILED"
		}
		if s.RolledBack {
			state += ", flows rolled back"
		}
		parts = append(parts, fmt.Sprintf("bridge %s (dpid %s): config: %s; flows added %d, kept %d; %s",
			s.Bridge, s.DPID, s.Config, s.FlowsAdded, s.FlowsKept, state))
	}
	return strings.Join(parts, "; ")
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Controllers, when non-nil, replaces the controller targets of every
	// bridge (the controller may live elsewhere after a VM moved); nil
	// restores the captured targets.
	Controllers []ControllerConfig
	// Tolerate, when non-nil, accepts entries already on the switch that
	// are not in the snapshot, by cookie (e.g. pipeline.IsInfraCookie for
	// the hypervisor's own entries, re-installed by its reconcile when the
	// bridge connects): they neither stop the restore nor fail the
	// verification, and are left alone. nil: the table must be clean.
	Tolerate func(cookie uint64) bool
}

// Restore re-creates snapshot s on targets, matched to the snapshot's
// switches by bridge name (every switch of s must have a target). For each
// bridge, in snapshot order:
//
//  1. OVSDB: the bridge (datapath ID via other_config, type, protocols,
//     fail mode, external_ids), missing ports and interfaces with their
//     options, ofport_request = captured port number, QoS and queues,
//     and the controllers, in one transaction; then wait until every
//     interface has its captured OpenFlow port number.
//  2. The bridge's session (Target.Connect with the captured DPID).
//  3. Flow table: the switch's current entries are read; an entry that is
//     neither in the snapshot nor identical to one fails the restore
//     before any FlowMod (the table must be clean or already part of the
//     snapshot). Missing entries are added (FlowMod ADD with the captured
//     table, priority, cookie, match, instructions, timeouts and flags),
//     then a barrier.
//  4. Verify: the table is read back and compared normalized
//     (reconcile.Diff); any difference is an error.
//
// If step 3 or 4 fails, every entry added is removed again (strict delete
// by cookie and match), so the flow table is as it was before; the OVSDB
// changes of step 1 stay and are listed in the report. Counters cannot be
// written in OpenFlow: the report's Offsets hold the captured counters, see
// Offsets.Apply. The report is returned also on error.
func Restore(ctx context.Context, s *Snapshot, targets []Target, opt RestoreOptions) (*Report, error) {
	rep := &Report{ID: s.ID, Offsets: &Offsets{}}
	matched := make([]Target, len(s.Switches))
	for i := range s.Switches {
		tg, err := matchTarget(&s.Switches[i], targets)
		if err != nil {
			return rep, fmt.Errorf("snapshot %s: restore: %w", s.ID, err)
		}
		matched[i] = tg
	}
	for i := range s.Switches {
		st := &s.Switches[i]
		sr := SwitchReport{Bridge: st.Bridge.Name, DPID: st.DPID, Config: "not applied"}
		err := restoreSwitch(ctx, st, matched[i], opt, &sr)
		rep.Switches = append(rep.Switches, sr)
		if err != nil {
			return rep, fmt.Errorf("snapshot %s: restore: %w (done: %s)", s.ID, err, rep.String())
		}
		rep.Offsets.Add(st)
	}
	return rep, nil
}

// matchTarget finds the target of st: the one with st's DPID, else the
// only one with st's bridge name and no DPID.
func matchTarget(st *SwitchState, targets []Target) (Target, error) {
	dpid, err := ovsdb.ParseDatapathID(st.DPID)
	if err != nil {
		return Target{}, fmt.Errorf("bridge %q: %w", st.Bridge.Name, err)
	}
	var byName []Target
	for _, tg := range targets {
		if tg.DPID == dpid {
			return tg, nil
		}
		if tg.DPID == 0 && tg.Bridge == st.Bridge.Name {
			byName = append(byName, tg)
		}
	}
	switch len(byName) {
	case 0:
		return Target{}, fmt.Errorf("no target for bridge %q (dpid %s)", st.Bridge.Name, st.DPID)
	case 1:
		return byName[0], nil
	}
	return Target{}, fmt.Errorf("bridge %q (dpid %s): %d targets of that name and none with its DPID", st.Bridge.Name, st.DPID, len(byName))
}

func restoreSwitch(ctx context.Context, st *SwitchState, tg Target, opt RestoreOptions, sr *SwitchReport) error {
	name := st.Bridge.Name
	dpid, err := ovsdb.ParseDatapathID(st.DPID)
	if err != nil {
		return fmt.Errorf("bridge %q: %w", name, err)
	}
	want := restoreConfig(&st.Bridge, opt)
	// Decode the flows before touching anything.
	entries := make([]pipeline.Entry, len(st.Flows))
	for j := range st.Flows {
		if entries[j], err = st.Flows[j].Entry(); err != nil {
			return fmt.Errorf("bridge %q: flow %d (%s): %w", name, j, st.Flows[j].Name(), err)
		}
	}
	plan, err := tg.Config.ApplyBridge(ctx, &want)
	sr.Config = plan.String()
	if err != nil {
		return fmt.Errorf("bridge %q: ovsdb: %w", name, err)
	}
	sw, err := tg.Connect(ctx, dpid)
	if err != nil {
		return fmt.Errorf("bridge %q (dpid %s): session: %w", name, st.DPID, err)
	}
	before, err := sw.FlowStats(ctx, nil)
	if err != nil {
		return fmt.Errorf("bridge %q: read flow table: %w", name, err)
	}
	owns := func(c uint64) bool { return opt.Tolerate == nil || !opt.Tolerate(c) }
	plan0, err := reconcile.Diff(entries, before, reconcile.Options{Owns: owns})
	if err != nil {
		return fmt.Errorf("bridge %q: %w", name, err)
	}
	if len(plan0.Delete) > 0 {
		return fmt.Errorf("bridge %q: flow table not clean, %d entries not in the snapshot, e.g. %s; nothing installed",
			name, len(plan0.Delete), plan0.Delete[0].String())
	}
	// An ADD that replaces an existing entry with the same key would lose
	// it on rollback: refuse as well.
	keys := map[string]pipeline.Entry{}
	for k := range before {
		e := pipeline.FromFlowStats(&before[k])
		keys[e.Key()] = e
	}
	for _, e := range plan0.Add {
		if old, ok := keys[e.Key()]; ok {
			return fmt.Errorf("bridge %q: flow %s exists with other actions, cookie or timeouts (%s); nothing installed", name, e.String(), old.String())
		}
	}
	sr.FlowsKept = len(entries) - len(plan0.Add)
	installErr := install(ctx, sw, plan0.Add)
	sr.FlowsAdded = len(plan0.Add)
	if installErr == nil {
		installErr = verify(ctx, sw, entries, owns)
	}
	if installErr != nil {
		if rbErr := rollback(ctx, sw, plan0.Add); rbErr != nil {
			return fmt.Errorf("bridge %q: %w; rollback failed too: %v", name, installErr, rbErr)
		}
		sr.RolledBack = len(plan0.Add) > 0
		return fmt.Errorf("bridge %q: %w", name, installErr)
	}
	sr.Done = true
	return nil
}

// restoreConfig is the configuration to apply: the captured one with the
// datapath ID pinned through other_config:datapath-id and controllers
// optionally overridden.
func restoreConfig(bc *BridgeConfig, opt RestoreOptions) BridgeConfig {
	want := *bc
	want.OtherConfig = map[string]string{}
	for k, v := range bc.OtherConfig {
		want.OtherConfig[k] = v
	}
	if bc.DatapathID != "" {
		want.OtherConfig["datapath-id"] = bc.DatapathID
	}
	if opt.Controllers != nil {
		want.Controllers = opt.Controllers
	}
	return want
}

// install sends one ADD per entry and a barrier; the error names the first
// entry the switch refused when it can tell.
func install(ctx context.Context, sw Switch, add []pipeline.Entry) error {
	if len(add) == 0 {
		return nil
	}
	for i := range add {
		if err := sw.FlowMod(ctx, add[i].FlowMod()); err != nil {
			return fmt.Errorf("add flow %s: %w", add[i].String(), err)
		}
	}
	if err := sw.Barrier(ctx); err != nil {
		return fmt.Errorf("install %d flows: switch refused%s: %w", len(add), refused(ctx, sw, add), err)
	}
	return nil
}

// refused names the entries of add that are not in sw's table after a
// failed install (the ones the switch rejected), as " flow X, flow Y", or
// "" when the table cannot be read.
func refused(ctx context.Context, sw Switch, add []pipeline.Entry) string {
	after, err := sw.FlowStats(ctx, nil)
	if err != nil {
		return ""
	}
	have := map[string]bool{}
	for i := range after {
		e := pipeline.FromFlowStats(&after[i])
		c, err := e.Canonical()
		if err == nil {
			have[c] = true
		}
	}
	var names []string
	for i := range add {
		if c, err := add[i].Canonical(); err == nil && !have[c] {
			names = append(names, "flow "+add[i].String())
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " " + strings.Join(names, ", ")
}

// verify reads the table back and compares it, normalized, with entries.
func verify(ctx context.Context, sw Switch, entries []pipeline.Entry, owns func(uint64) bool) error {
	after, err := sw.FlowStats(ctx, nil)
	if err != nil {
		return fmt.Errorf("verify: read flow table: %w", err)
	}
	d, err := reconcile.Diff(entries, after, reconcile.Options{Owns: owns})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !d.Empty() {
		var msg []string
		for _, e := range d.Add {
			msg = append(msg, "missing or different: "+e.String())
		}
		for _, e := range d.Delete {
			msg = append(msg, "unexpected: "+e.String())
		}
		return fmt.Errorf("verify: flow table differs from the snapshot: %s", strings.Join(msg, "; "))
	}
	return nil
}

// rollback removes the entries added (strict delete with their cookie),
// then waits for a barrier.
func rollback(ctx context.Context, sw Switch, added []pipeline.Entry) error {
	if len(added) == 0 {
		return nil
	}
	// The restore's ctx may be what failed; give the rollback its own time.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var errs []error
	for i := range added {
		if err := sw.FlowMod(rctx, added[i].DeleteStrict()); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", added[i].String(), err))
		}
	}
	if err := sw.Barrier(rctx); err != nil {
		errs = append(errs, fmt.Errorf("barrier: %w", err))
	}
	return errors.Join(errs...)
}

// Offsets are the counters of restored flow entries at capture time, by
// switch and flow (table, priority, normalized match, cookie). OpenFlow
// cannot set a flow's packet/byte counters or duration (§7.3.4.1 has no
// such field), so a restored entry starts from zero; Apply adds the
// captured values so that the tenant sees counters that continue. The
// zero value is empty and ready to use; not safe for concurrent writes.
type Offsets struct {
	m map[string]flowOffset
}

type flowOffset struct {
	packets, bytes uint64
	duration       time.Duration
}

func offsetKey(dpid uint64, e *pipeline.Entry) string {
	return fmt.Sprintf("%016x/%x/%x", dpid, e.Key(), e.Cookie)
}

// Add records the counters of every flow of st (later calls for the same
// flow replace earlier ones). Flows that do not decode are skipped
// (Restore decodes them all before it gets here).
func (o *Offsets) Add(st *SwitchState) {
	dpid, err := ovsdb.ParseDatapathID(st.DPID)
	if err != nil {
		return
	}
	if o.m == nil {
		o.m = map[string]flowOffset{}
	}
	for i := range st.Flows {
		f := &st.Flows[i]
		e, err := f.Entry()
		if err != nil {
			continue
		}
		o.m[offsetKey(dpid, &e)] = flowOffset{packets: f.PacketCount, bytes: f.ByteCount,
			duration: time.Duration(f.DurationSec)*time.Second + time.Duration(f.DurationNSec)}
	}
}

// Len is the number of flows with an offset.
func (o *Offsets) Len() int { return len(o.m) }

// Apply returns a copy of stats (a flow-stats reply of the switch with
// datapath ID dpid) in which every entry restored from a snapshot has the
// captured packet and byte counts and duration added: restored stats =
// switch stats + snapshot offsets. Entries not restored are unchanged.
func (o *Offsets) Apply(dpid uint64, stats []ofwire.FlowStats) []ofwire.FlowStats {
	out := make([]ofwire.FlowStats, len(stats))
	copy(out, stats)
	for i := range out {
		e := pipeline.FromFlowStats(&out[i])
		off, ok := o.m[offsetKey(dpid, &e)]
		if !ok {
			continue
		}
		out[i].PacketCount += off.packets
		out[i].ByteCount += off.bytes
		d := out[i].Duration() + off.duration
		out[i].DurationSec = uint32(d / time.Second)
		out[i].DurationNSec = uint32(d % time.Second)
	}
	return out
}

// Stats reads sw's flow table (all tables) and applies the offsets: the
// continuous counters a tenant should see after a restore.
func (o *Offsets) Stats(ctx context.Context, dpid uint64, sw reconcile.FlowStatser) ([]ofwire.FlowStats, error) {
	fs, err := sw.FlowStats(ctx, &ofp.FlowStatsRequest{Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny})
	if err != nil {
		return nil, fmt.Errorf("snapshot: stats of %016x: %w", dpid, err)
	}
	return o.Apply(dpid, fs), nil
}
