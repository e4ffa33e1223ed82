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

// Tunnel interface types (Interface type column, ovs-vswitchd.conf.db(5)).
const (
	TunnelVXLAN  = "vxlan"
	TunnelGRE    = "gre"
	TunnelGeneve = "geneve"
)

// FlowOption is the value of options:remote_ip or options:key that makes
// OpenFlow actions choose it per packet (set_field:...->tun_dst/tun_id).
const FlowOption = "flow"

// maxOFPortRequest is the highest port number a switch may assign
// (OFPP_MAX, OpenFlow 1.3.5 section 7.2.1).
const maxOFPortRequest = 0xff00

// TunnelPort is one tunnel port of a bridge: a Port with a single Interface
// of the same name whose type is a tunnel protocol.
type TunnelPort struct {
	Name        string            // Port and Interface name, e.g. "tun-s2"
	Type        string            // "vxlan", "gre" or "geneve"
	RemoteIP    string            // options:remote_ip: an IP address, or "flow"
	Key         string            // options:key: decimal tunnel key/VNI, or "flow"; "" = none
	OFPort      int               // ofport_request; 0 = OVS chooses
	ExternalIDs map[string]string // Interface external_ids
	// BFD enables Bidirectional Forwarding Detection on the interface
	// with these settings (Interface bfd column); nil = BFD off (the
	// column is empty). Read back from the database, only enable=true
	// makes it non-nil. The session's state is Interface.BFD.
	BFD *BFDConfig
}

// Validate checks p and returns an error naming the field at fault. Keys are
// at most 24 bits for vxlan and geneve (the VNI) and 32 bits for gre; OFPort
// is 0 or 1-65280 (OFPP_MAX).
func (p TunnelPort) Validate() error {
	if err := checkIfaceName(p.Name); err != nil {
		return fmt.Errorf("ovsdb: tunnel port name: %w", err)
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("ovsdb: tunnel port %q: %s", p.Name, fmt.Sprintf(format, a...))
	}
	keyBits := 24
	switch p.Type {
	case TunnelVXLAN, TunnelGeneve:
	case TunnelGRE:
		keyBits = 32
	default:
		return fail("type %q: want vxlan, gre or geneve", p.Type)
	}
	if p.RemoteIP != FlowOption {
		a, err := netip.ParseAddr(p.RemoteIP)
		if err != nil || a.Zone() != "" || a.IsUnspecified() {
			return fail("remote IP %q: want an IP address or \"flow\"", p.RemoteIP)
		}
	}
	if p.BFD != nil {
		if err := p.BFD.Validate(); err != nil {
			return fail("%v", err)
		}
	}
	if p.Key != "" && p.Key != FlowOption {
		if _, err := strconv.ParseUint(p.Key, 10, keyBits); err != nil || (len(p.Key) > 1 && p.Key[0] == '0') {
			return fail("key %q: want a decimal number below 2^%d, \"flow\" or empty", p.Key, keyBits)
		}
	}
	if p.OFPort < 0 || p.OFPort > maxOFPortRequest {
		return fail("OpenFlow port %d: want 0 (any) or 1-%d", p.OFPort, maxOFPortRequest)
	}
	for k := range p.ExternalIDs {
		if k == "" {
			return fail("external_ids: empty key")
		}
	}
	return nil
}

// options returns the Interface options column for p.
func (p TunnelPort) options() map[string]string {
	o := map[string]string{"remote_ip": p.RemoteIP}
	if p.Key != "" {
		o["key"] = p.Key
	}
	return o
}

func isTunnelType(t string) bool {
	return t == TunnelVXLAN || t == TunnelGRE || t == TunnelGeneve
}

// tunnelFromIface reads a tunnel interface back into a TunnelPort.
func tunnelFromIface(i *vswitch.Interface) TunnelPort {
	p := TunnelPort{
		Name:        i.Name,
		Type:        i.Type,
		RemoteIP:    i.Options["remote_ip"],
		Key:         i.Options["key"],
		ExternalIDs: maps.Clone(i.ExternalIDs),
		BFD:         parseBFDConfig(i.BFD),
	}
	if i.OfportRequest != nil {
		p.OFPort = *i.OfportRequest
	}
	if p.ExternalIDs == nil {
		p.ExternalIDs = map[string]string{}
	}
	return p
}

// tunnelIfaceColumns returns the Interface columns that differ between cur
// and p (type, options, ofport_request, external_ids, bfd), with the
// desired values in row.
func tunnelIfaceColumns(cur *vswitch.Interface, p TunnelPort) (row vswitch.Interface, cols []string) {
	row = vswitch.Interface{UUID: cur.UUID, Name: cur.Name}
	if cur.Type != p.Type {
		row.Type = p.Type
		cols = append(cols, "type")
	}
	if opts := p.options(); !maps.Equal(cur.Options, opts) {
		row.Options = opts
		cols = append(cols, "options")
	}
	curReq := 0
	if cur.OfportRequest != nil {
		curReq = *cur.OfportRequest
	}
	if curReq != p.OFPort {
		if p.OFPort != 0 {
			req := p.OFPort
			row.OfportRequest = &req
		}
		cols = append(cols, "ofport_request")
	}
	want := p.ExternalIDs
	if want == nil {
		want = map[string]string{}
	}
	if !maps.Equal(cur.ExternalIDs, want) {
		row.ExternalIDs = maps.Clone(want)
		cols = append(cols, "external_ids")
	}
	if bfd := bfdColumn(p.BFD); !maps.Equal(cur.BFD, bfd) {
		row.BFD = bfd
		cols = append(cols, "bfd")
	}
	return row, cols
}

// EnsureTunnelPort creates tunnel port p on bridge, or updates an existing
// one in place (only the columns that differ; none: no transaction). The
// Interface's options are set to exactly remote_ip and key, its
// external_ids to exactly p.ExternalIDs, and its bfd column to exactly
// p.BFD's (empty when nil). Errors name the bridge and port; it
// refuses to touch a port of that name that is on another bridge or is not a
// tunnel. The error wraps ErrNotFound if the bridge does not exist.
func (c *Client) EnsureTunnelPort(ctx context.Context, bridge string, p TunnelPort) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%w (bridge %q)", err, bridge)
	}
	what := fmt.Sprintf("bridge %q: tunnel port %q", bridge, p.Name)
	c.opMu.Lock()
	defer c.opMu.Unlock()
	v, err := c.view(ctx)
	if err != nil {
		return err
	}
	br := v.bridges[bridge]
	if br == nil {
		return fmt.Errorf("ovsdb: %s: bridge %w", what, ErrNotFound)
	}
	port, iface := v.portsBy[p.Name], v.ifaceBy[p.Name]
	if port != nil || iface != nil {
		if err := v.checkOwnTunnel(bridge, port, iface); err != nil {
			return fmt.Errorf("ovsdb: %s: %w", what, err)
		}
		row, cols := tunnelIfaceColumns(iface, p)
		if len(cols) == 0 {
			return nil
		}
		var fields []any
		for _, col := range cols {
			switch col {
			case "type":
				fields = append(fields, &row.Type)
			case "options":
				fields = append(fields, &row.Options)
			case "ofport_request":
				fields = append(fields, &row.OfportRequest)
			case "external_ids":
				fields = append(fields, &row.ExternalIDs)
			case "bfd":
				fields = append(fields, &row.BFD)
			}
		}
		ops, err := c.lib.Where(&vswitch.Interface{UUID: row.UUID}).Update(&row, fields...)
		if err != nil {
			return fmt.Errorf("ovsdb: %s: %w", what, err)
		}
		return c.transact(ctx, what, ops)
	}
	iface = &vswitch.Interface{
		UUID:        "skyiface",
		Name:        p.Name,
		Type:        p.Type,
		Options:     p.options(),
		ExternalIDs: maps.Clone(p.ExternalIDs),
	}
	if p.BFD != nil {
		iface.BFD = p.BFD.column()
	}
	if p.OFPort != 0 {
		req := p.OFPort
		iface.OfportRequest = &req
	}
	port = &vswitch.Port{UUID: "skyport", Name: p.Name, Interfaces: []string{iface.UUID}}
	ops, err := c.lib.Create(iface, port)
	if err != nil {
		return fmt.Errorf("ovsdb: %s: %w", what, err)
	}
	b := &vswitch.Bridge{UUID: br.UUID}
	mut, err := c.lib.Where(b).Mutate(b, model.Mutation{
		Field: &b.Ports, Mutator: libovsdb.MutateOperationInsert, Value: []string{port.UUID},
	})
	if err != nil {
		return fmt.Errorf("ovsdb: %s: %w", what, err)
	}
	return c.transact(ctx, what, append(ops, mut...))
}

// checkOwnTunnel verifies that the existing port/interface pair of one name
// is a single-interface tunnel port on bridge.
func (v *view) checkOwnTunnel(bridge string, port *vswitch.Port, iface *vswitch.Interface) error {
	if port == nil {
		return fmt.Errorf("an interface of that name exists without a port of that name")
	}
	if b := v.bridgeOf(port); b == nil || b.Name != bridge {
		other := "(none)"
		if b != nil {
			other = strconv.Quote(b.Name)
		}
		return fmt.Errorf("the port exists on bridge %s", other)
	}
	if iface == nil || len(port.Interfaces) != 1 || port.Interfaces[0] != iface.UUID {
		return fmt.Errorf("the port does not hold exactly one interface of its name")
	}
	if !isTunnelType(iface.Type) {
		return fmt.Errorf("the port exists with interface type %q, not a tunnel", iface.Type)
	}
	return nil
}

// DeleteTunnelPort removes tunnel port name from bridge (its Interface is
// garbage-collected). A port that does not exist on that bridge is not an
// error; a port that is not a tunnel is refused.
func (c *Client) DeleteTunnelPort(ctx context.Context, bridge, name string) error {
	what := fmt.Sprintf("bridge %q: delete tunnel port %q", bridge, name)
	c.opMu.Lock()
	defer c.opMu.Unlock()
	v, err := c.view(ctx)
	if err != nil {
		return err
	}
	port := v.portsBy[name]
	br := v.bridges[bridge]
	if port == nil || br == nil || v.bridgeOf(port) != br {
		return nil
	}
	for _, u := range port.Interfaces {
		if i := v.ifaces[u]; i != nil && !isTunnelType(i.Type) {
			return fmt.Errorf("ovsdb: %s: interface type %q is not a tunnel", what, i.Type)
		}
	}
	b := &vswitch.Bridge{UUID: br.UUID}
	ops, err := c.lib.Where(b).Mutate(b, model.Mutation{
		Field: &b.Ports, Mutator: libovsdb.MutateOperationDelete, Value: []string{port.UUID},
	})
	if err != nil {
		return fmt.Errorf("ovsdb: %s: %w", what, err)
	}
	return c.transact(ctx, what, ops)
}

// TunnelPorts returns the tunnel ports (vxlan, gre, geneve interfaces) of
// bridge, sorted by name. OFPort is the requested port number
// (ofport_request), as EnsureTunnelPort sets it; Interfaces reports the
// assigned one. The error wraps ErrNotFound if the bridge does not exist.
func (c *Client) TunnelPorts(ctx context.Context, bridge string) ([]TunnelPort, error) {
	v, err := c.view(ctx)
	if err != nil {
		return nil, err
	}
	br := v.bridges[bridge]
	if br == nil {
		return nil, fmt.Errorf("ovsdb: bridge %q: %w", bridge, ErrNotFound)
	}
	var out []TunnelPort
	for _, pu := range br.Ports {
		port := v.ports[pu]
		if port == nil {
			continue
		}
		for _, iu := range port.Interfaces {
			if i := v.ifaces[iu]; i != nil && isTunnelType(i.Type) {
				out = append(out, tunnelFromIface(i))
			}
		}
	}
	slices.SortFunc(out, func(a, b TunnelPort) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
