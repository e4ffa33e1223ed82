package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/skyvisor/skyvisor/ovsdb/vswitch"
)

// Connection modes of the Controller table (ovs-vswitchd.conf.db(5)).
const (
	ConnectionModeOutOfBand = "out-of-band"
	ConnectionModeInBand    = "in-band"
)

// DefaultControllerPort is the OpenFlow port OVS assumes for "tcp:IP".
const DefaultControllerPort = 6653

// maxIfaceName is the longest port/interface name accepted (IFNAMSIZ-1).
const maxIfaceName = 15

// BridgeSpec is the desired configuration of one bridge (Bridge table of
// ovs-vswitchd.conf.db(5)). Zero-valued fields are not managed: EnsureBridge
// leaves them as they are on an existing bridge and lets OVS choose on a new
// one.
type BridgeSpec struct {
	// Name of the bridge and of its internal port; required, at most 15
	// bytes, no '/' or whitespace.
	Name string
	// DatapathID is 16 hex digits, not all zero (other_config:datapath-id);
	// OVS reports it as OpenFlow datapath ID in its features reply.
	DatapathID string
	// DatapathType is "netdev" (userspace) or "system" (kernel module).
	DatapathType string
	// Protocols are the OpenFlow versions the bridge speaks, e.g.
	// []string{"OpenFlow13"}; compared as a set.
	Protocols []string
	// FailMode is "secure" (no flows added without a controller) or
	// "standalone".
	FailMode string
	// Controllers are OpenFlow controller targets, "tcp:IP[:PORT]" (port
	// 6653 by default, IPv6 in brackets) or "unix:/abs/path". nil = not
	// managed; to remove all controllers use SetControllers(ctx, name, nil).
	// ovs-vswitchd (bridge.c) ignores unix: targets outside its OVS_RUNDIR
	// (it logs "Not adding Unix domain socket controller"): put the socket,
	// or a symlink to it, there. The target must be reachable from the
	// network namespace of ovs-vswitchd.
	Controllers []string
	// ConnectionMode of every controller when Controllers is managed: ""
	// means out-of-band (in-band adds hidden priority-180000 flows), or
	// "in-band".
	ConnectionMode string
	// ExternalIDs are set on the bridge; keys not listed are left alone.
	ExternalIDs map[string]string
}

// Validate checks every field and returns an error naming the first field at
// fault, e.g. `ovsdb: bridge "br-x": datapath ID "zz": not 16 hex digits`.
func (s BridgeSpec) Validate() error {
	if err := checkIfaceName(s.Name); err != nil {
		return fmt.Errorf("ovsdb: bridge name: %w", err)
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("ovsdb: bridge %q: %s", s.Name, fmt.Sprintf(format, a...))
	}
	if s.DatapathID != "" {
		if _, err := ParseDatapathID(s.DatapathID); err != nil {
			return fail("%v", err)
		}
	}
	switch s.DatapathType {
	case "", "netdev", "system":
	default:
		return fail("datapath type %q: want netdev or system", s.DatapathType)
	}
	seen := map[string]bool{}
	for _, p := range s.Protocols {
		switch p {
		case vswitch.BridgeProtocolsOpenflow10, vswitch.BridgeProtocolsOpenflow11, vswitch.BridgeProtocolsOpenflow12,
			vswitch.BridgeProtocolsOpenflow13, vswitch.BridgeProtocolsOpenflow14, vswitch.BridgeProtocolsOpenflow15:
		default:
			return fail("protocol %q: want OpenFlow10 ... OpenFlow15", p)
		}
		if seen[p] {
			return fail("protocol %q listed twice", p)
		}
		seen[p] = true
	}
	switch s.FailMode {
	case "", vswitch.BridgeFailModeSecure, vswitch.BridgeFailModeStandalone:
	default:
		return fail("fail mode %q: want secure or standalone", s.FailMode)
	}
	if err := checkControllers(s.Controllers); err != nil {
		return fail("%v", err)
	}
	switch s.ConnectionMode {
	case "", ConnectionModeOutOfBand, ConnectionModeInBand:
	default:
		return fail("connection mode %q: want out-of-band or in-band", s.ConnectionMode)
	}
	for k := range s.ExternalIDs {
		if k == "" {
			return fail("external_ids: empty key")
		}
	}
	return nil
}

// ParseDatapathID parses a datapath ID written as 16 hex digits (the syntax
// of other_config:datapath-id and of the datapath_id column), not all zero
// (OVS ignores a zero ID).
func ParseDatapathID(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("datapath ID %q: not 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("datapath ID %q: not 16 hex digits", s)
	}
	if v == 0 {
		return 0, fmt.Errorf("datapath ID %q: must not be zero", s)
	}
	return v, nil
}

// FormatDatapathID writes dpid as 16 lower-case hex digits.
func FormatDatapathID(dpid uint64) string { return fmt.Sprintf("%016x", dpid) }

func checkIfaceName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty")
	case len(name) > maxIfaceName:
		return fmt.Errorf("%q: longer than %d bytes", name, maxIfaceName)
	case strings.ContainsAny(name, "/ \t\n\x00"), name == ".", name == "..":
		return fmt.Errorf("%q: contains '/', whitespace or NUL", name)
	}
	return nil
}

// checkControllers validates controller targets: tcp:IP[:PORT] or
// unix:/abs/path, no duplicates.
func checkControllers(targets []string) error {
	seen := map[string]bool{}
	for _, t := range targets {
		if err := checkControllerTarget(t); err != nil {
			return err
		}
		if seen[t] {
			return fmt.Errorf("controller %q listed twice", t)
		}
		seen[t] = true
	}
	return nil
}

func checkControllerTarget(t string) error {
	method, rest, _ := strings.Cut(t, ":")
	switch method {
	case "tcp":
		if ap, err := netip.ParseAddrPort(rest); err == nil {
			if ap.Port() == 0 || ap.Addr().Zone() != "" {
				return fmt.Errorf("controller %q: want tcp:IP[:PORT], port 1-65535, no zone", t)
			}
			return nil
		}
		host, v6 := strings.CutPrefix(rest, "[")
		if v6 {
			var ok bool
			if host, ok = strings.CutSuffix(host, "]"); !ok {
				return fmt.Errorf("controller %q: unbalanced brackets", t)
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" || a.Is6() != v6 {
			return fmt.Errorf("controller %q: want tcp:IP[:PORT] (IPv6 in brackets)", t)
		}
		return nil
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return fmt.Errorf("controller %q: want unix:/absolute/path", t)
		}
		if len(rest) > maxUnixPath {
			return fmt.Errorf("controller %q: path longer than %d bytes", t, maxUnixPath)
		}
		return nil
	default:
		return fmt.Errorf("controller %q: want tcp:IP[:PORT] or unix:/path", t)
	}
}

// bridgePlan is what EnsureBridge changes on an existing bridge (or creates).
type bridgePlan struct {
	create bool
	// columns of the Bridge row to update, with desired values in row.
	columns []string
	row     vswitch.Bridge
	// Controller changes: setControllers replaces the bridge's controller
	// column by keep + newly created rows for add; fixMode lists existing
	// controller rows whose connection_mode must change.
	setControllers bool
	keep           []string
	add            []string
	fixMode        []string
	mode           string
}

func (p bridgePlan) empty() bool {
	return !p.create && len(p.columns) == 0 && !p.setControllers && len(p.fixMode) == 0
}

// planBridge compares the current bridge (nil if absent) and its controller
// rows with spec, which must be valid.
func planBridge(cur *vswitch.Bridge, ctrls map[string]*vswitch.Controller, spec BridgeSpec) bridgePlan {
	p := bridgePlan{mode: spec.ConnectionMode}
	if p.mode == "" {
		p.mode = ConnectionModeOutOfBand
	}
	if cur == nil {
		p.create = true
		p.row = vswitch.Bridge{Name: spec.Name, DatapathType: spec.DatapathType, Protocols: slices.Clone(spec.Protocols)}
		if spec.FailMode != "" {
			fm := spec.FailMode
			p.row.FailMode = &fm
		}
		p.row.OtherConfig = map[string]string{}
		if spec.DatapathID != "" {
			p.row.OtherConfig["datapath-id"] = strings.ToLower(spec.DatapathID)
		}
		p.row.ExternalIDs = maps.Clone(spec.ExternalIDs)
		p.add = slices.Clone(spec.Controllers)
		return p
	}
	p.row = vswitch.Bridge{UUID: cur.UUID}
	if spec.DatapathType != "" && cur.DatapathType != spec.DatapathType {
		p.columns = append(p.columns, "datapath_type")
		p.row.DatapathType = spec.DatapathType
	}
	if spec.Protocols != nil && !sameSet(cur.Protocols, spec.Protocols) {
		p.columns = append(p.columns, "protocols")
		p.row.Protocols = slices.Clone(spec.Protocols)
	}
	if spec.FailMode != "" && (cur.FailMode == nil || *cur.FailMode != spec.FailMode) {
		p.columns = append(p.columns, "fail_mode")
		fm := spec.FailMode
		p.row.FailMode = &fm
	}
	if spec.DatapathID != "" && !strings.EqualFold(cur.OtherConfig["datapath-id"], spec.DatapathID) {
		p.columns = append(p.columns, "other_config")
		p.row.OtherConfig = maps.Clone(cur.OtherConfig)
		if p.row.OtherConfig == nil {
			p.row.OtherConfig = map[string]string{}
		}
		p.row.OtherConfig["datapath-id"] = strings.ToLower(spec.DatapathID)
	}
	if ext, changed := mergeMap(cur.ExternalIDs, spec.ExternalIDs); changed {
		p.columns = append(p.columns, "external_ids")
		p.row.ExternalIDs = ext
	}
	if spec.Controllers != nil {
		p.planControllers(cur.Controller, ctrls, spec.Controllers)
	}
	return p
}

// planControllers keeps existing controller rows whose target is wanted
// (fixing their connection mode in place), and replaces the bridge's
// controller column only when the set of targets changes: that column
// going from empty to non-empty (or back) makes ovs-vswitchd flush the
// bridge's flow table.
func (p *bridgePlan) planControllers(curUUIDs []string, ctrls map[string]*vswitch.Controller, want []string) {
	wanted := map[string]bool{}
	for _, t := range want {
		wanted[t] = true
	}
	have := map[string]bool{}
	for _, u := range curUUIDs {
		ct, ok := ctrls[u]
		if !ok || !wanted[ct.Target] || have[ct.Target] {
			p.setControllers = true // dropped: unwanted, duplicate or dangling
			continue
		}
		have[ct.Target] = true
		p.keep = append(p.keep, u)
		if ct.ConnectionMode == nil || *ct.ConnectionMode != p.mode {
			p.fixMode = append(p.fixMode, u)
		}
	}
	for _, t := range want {
		if !have[t] {
			p.add = append(p.add, t)
			p.setControllers = true
		}
	}
}

// mergeMap returns cur with the keys of set applied, and whether that
// differs from cur.
func mergeMap(cur, set map[string]string) (map[string]string, bool) {
	changed := false
	for k, v := range set {
		if old, ok := cur[k]; !ok || old != v {
			changed = true
			break
		}
	}
	if !changed {
		return cur, false
	}
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, set)
	return out, true
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// EnsureBridge makes the bridge match spec, in one transaction, creating it
// (with its internal port, added to the Open_vSwitch row's bridges) if
// absent. It is idempotent: it sends no transaction when nothing differs, and
// it never rewrites the controller column when the set of targets is already
// right (setting a bridge's first controller makes ovs-vswitchd flush its
// flow table). Errors name the bridge and field.
func (c *Client) EnsureBridge(ctx context.Context, spec BridgeSpec) error {
	return c.ensureBridge(ctx, spec, false)
}

// ensureBridge is EnsureBridge; with mustExist it refuses to create the
// bridge (the error wraps ErrNotFound).
func (c *Client) ensureBridge(ctx context.Context, spec BridgeSpec, mustExist bool) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	v, err := c.view(ctx)
	if err != nil {
		return err
	}
	cur := v.bridges[spec.Name]
	if cur == nil && mustExist {
		return fmt.Errorf("ovsdb: bridge %q: %w", spec.Name, ErrNotFound)
	}
	if cur == nil {
		// A port of another bridge with this name would collide with the
		// bridge's internal port.
		if p := v.portsBy[spec.Name]; p != nil {
			if b := v.bridgeOf(p); b != nil {
				return fmt.Errorf("ovsdb: bridge %q: a port of that name exists on bridge %q", spec.Name, b.Name)
			}
		}
	}
	plan := planBridge(cur, v.ctrls, spec)
	if plan.empty() {
		return nil
	}
	what := fmt.Sprintf("bridge %q", spec.Name)
	ops, err := c.bridgeOps(v, plan)
	if err != nil {
		return fmt.Errorf("ovsdb: %s: %w", what, err)
	}
	return c.transact(ctx, what, ops)
}

// bridgeOps turns a plan into transaction operations.
func (c *Client) bridgeOps(v *view, plan bridgePlan) ([]libovsdb.Operation, error) {
	var ops []libovsdb.Operation
	add := func(o []libovsdb.Operation, err error) error {
		ops = append(ops, o...)
		return err
	}
	// New controller rows, referenced by named UUID.
	ctrlUUIDs := slices.Clone(plan.keep)
	for i, t := range plan.add {
		mode := plan.mode
		ct := &vswitch.Controller{UUID: fmt.Sprintf("skyctl%d", i), Target: t, ConnectionMode: &mode}
		if err := add(c.lib.Create(ct)); err != nil {
			return nil, err
		}
		ctrlUUIDs = append(ctrlUUIDs, ct.UUID)
	}
	for _, u := range plan.fixMode {
		mode := plan.mode
		ct := &vswitch.Controller{UUID: u, ConnectionMode: &mode}
		if err := add(c.lib.Where(ct).Update(ct, &ct.ConnectionMode)); err != nil {
			return nil, err
		}
	}
	row := plan.row
	if plan.create {
		if v.ovs == nil {
			return nil, fmt.Errorf("Open_vSwitch table has no row (database not initialized: ovs-vsctl init)")
		}
		iface := &vswitch.Interface{UUID: "skyiface", Name: row.Name, Type: "internal"}
		port := &vswitch.Port{UUID: "skyport", Name: row.Name, Interfaces: []string{iface.UUID}}
		row.UUID = "skybridge"
		row.Ports = []string{port.UUID}
		row.Controller = ctrlUUIDs
		if err := add(c.lib.Create(iface, port, &row)); err != nil {
			return nil, err
		}
		root := &vswitch.OpenvSwitch{UUID: v.ovs.UUID}
		return ops, add(c.lib.Where(root).Mutate(root, model.Mutation{
			Field: &root.Bridges, Mutator: libovsdb.MutateOperationInsert, Value: []string{row.UUID},
		}))
	}
	var fields []any
	for _, col := range plan.columns {
		switch col {
		case "datapath_type":
			fields = append(fields, &row.DatapathType)
		case "protocols":
			fields = append(fields, &row.Protocols)
		case "fail_mode":
			fields = append(fields, &row.FailMode)
		case "other_config":
			fields = append(fields, &row.OtherConfig)
		case "external_ids":
			fields = append(fields, &row.ExternalIDs)
		}
	}
	if plan.setControllers {
		row.Controller = ctrlUUIDs
		fields = append(fields, &row.Controller)
	}
	if len(fields) > 0 {
		if err := add(c.lib.Where(&row).Update(&row, fields...)); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// SetControllers replaces the bridge's OpenFlow controllers by targets
// (tcp:IP[:PORT] or unix:/abs/path), connection mode out-of-band; nil or
// empty removes them all (which makes ovs-vswitchd flush the flow table).
// Targets already configured keep their Controller rows. No transaction is
// sent when nothing changes. The error wraps ErrNotFound if the bridge does
// not exist.
func (c *Client) SetControllers(ctx context.Context, bridge string, targets []string) error {
	if targets == nil {
		targets = []string{}
	}
	return c.ensureBridge(ctx, BridgeSpec{Name: bridge, Controllers: targets}, true)
}

// DeleteBridge removes the bridge, its ports and interfaces (they are
// garbage-collected, RFC 7047 section 3.2). A missing bridge is not an error.
func (c *Client) DeleteBridge(ctx context.Context, name string) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	v, err := c.view(ctx)
	if err != nil {
		return err
	}
	b := v.bridges[name]
	if b == nil || v.ovs == nil {
		return nil
	}
	root := &vswitch.OpenvSwitch{UUID: v.ovs.UUID}
	ops, err := c.lib.Where(root).Mutate(root, model.Mutation{
		Field: &root.Bridges, Mutator: libovsdb.MutateOperationDelete, Value: []string{b.UUID},
	})
	if err != nil {
		return fmt.Errorf("ovsdb: delete bridge %q: %w", name, err)
	}
	return c.transact(ctx, fmt.Sprintf("delete bridge %q", name), ops)
}

// Bridge is the state of one bridge as the database holds it.
type Bridge struct {
	Name         string
	DatapathID   string // datapath_id column written by ovs-vswitchd ("" until it has)
	DatapathType string
	Protocols    []string // sorted
	FailMode     string
	Controllers  []Controller // sorted by target
	ExternalIDs  map[string]string
	OtherConfig  map[string]string
	Ports        []string // port names, sorted (including the bridge's internal port)
}

// Controller is one OpenFlow controller of a bridge (Controller table).
type Controller struct {
	Target         string
	ConnectionMode string // "" = OVS default (in-band)
	Connected      bool   // is_connected, reported by ovs-vswitchd
	Role           string // "master", "slave", "other" or "" (reported)
}

// Bridges returns every bridge, sorted by name.
func (c *Client) Bridges(ctx context.Context) ([]Bridge, error) {
	v, err := c.view(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Bridge, 0, len(v.bridges))
	for _, b := range v.bridges {
		out = append(out, v.bridge(b))
	}
	slices.SortFunc(out, func(a, b Bridge) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Bridge returns one bridge; the error wraps ErrNotFound if it is absent.
func (c *Client) Bridge(ctx context.Context, name string) (Bridge, error) {
	v, err := c.view(ctx)
	if err != nil {
		return Bridge{}, err
	}
	b := v.bridges[name]
	if b == nil {
		return Bridge{}, fmt.Errorf("ovsdb: bridge %q: %w", name, ErrNotFound)
	}
	return v.bridge(b), nil
}

func (v *view) bridge(b *vswitch.Bridge) Bridge {
	out := Bridge{
		Name:         b.Name,
		DatapathType: b.DatapathType,
		Protocols:    slices.Sorted(slices.Values(b.Protocols)),
		ExternalIDs:  maps.Clone(b.ExternalIDs),
		OtherConfig:  maps.Clone(b.OtherConfig),
	}
	if b.DatapathID != nil {
		out.DatapathID = *b.DatapathID
	}
	if b.FailMode != nil {
		out.FailMode = *b.FailMode
	}
	for _, u := range b.Controller {
		ct, ok := v.ctrls[u]
		if !ok {
			continue
		}
		c := Controller{Target: ct.Target, Connected: ct.IsConnected}
		if ct.ConnectionMode != nil {
			c.ConnectionMode = *ct.ConnectionMode
		}
		if ct.Role != nil {
			c.Role = *ct.Role
		}
		out.Controllers = append(out.Controllers, c)
	}
	slices.SortFunc(out.Controllers, func(a, b Controller) int { return strings.Compare(a.Target, b.Target) })
	for _, u := range b.Ports {
		if p, ok := v.ports[u]; ok {
			out.Ports = append(out.Ports, p.Name)
		}
	}
	slices.Sort(out.Ports)
	return out
}

// BridgeDatapathID returns the OpenFlow datapath ID ovs-vswitchd uses for
// the bridge (datapath_id column). If vswitchd has not reported it yet the
// call waits for it until ctx ends. The error wraps ErrNotFound if the
// bridge does not exist.
func (c *Client) BridgeDatapathID(ctx context.Context, bridge string) (uint64, error) {
	var dpid uint64
	err := c.waitFor(ctx, func(v *view) (bool, error) {
		b := v.bridges[bridge]
		if b == nil {
			return false, fmt.Errorf("ovsdb: bridge %q: %w", bridge, ErrNotFound)
		}
		if b.DatapathID == nil || *b.DatapathID == "" {
			return false, nil
		}
		d, err := ParseDatapathID(*b.DatapathID)
		if err != nil {
			return false, fmt.Errorf("ovsdb: bridge %q: datapath_id column: %w", bridge, err)
		}
		dpid = d
		return true, nil
	})
	if err != nil && dpid == 0 && ctx.Err() != nil {
		return 0, fmt.Errorf("ovsdb: bridge %q: datapath ID not reported by ovs-vswitchd: %w", bridge, err)
	}
	return dpid, err
}
