package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/skyvisor/skyvisor/ovsdb/vswitch"
)

// Well-known Interface external_ids keys (the integration guide of Open
// vSwitch, Documentation/topics/integration.rst): a hypervisor sets them on
// the interface of a VM NIC so the controller can bind it to a tenant port.
const (
	ExternalIDIfaceID     = "iface-id"     // logical (tenant) port the interface plugs in
	ExternalIDAttachedMAC = "attached-mac" // MAC of the VM NIC behind the interface
)

// Interface is one interface of a bridge (Interface table), as the
// database holds it.
type Interface struct {
	Name        string
	Port        string // name of the port holding it
	Bridge      string // name of the bridge holding the port
	Type        string // "" (system device), "internal", "vxlan", ...
	OFPort      int    // OpenFlow port number; 0 = not yet assigned, -1 = failed
	MAC         string // mac_in_use, e.g. "02:00:00:00:00:01" ("" until known)
	AdminState  string // "up", "down" or "" (unknown)
	LinkState   string // "up", "down" or ""
	Error       string // why OVS could not open the interface, "" if fine
	ExternalIDs map[string]string
	// BFD is the interface's BFD session as vswitchd reports it
	// (bfd_status); zero when BFD is off or not yet reported.
	BFD  BFDStatus
	uuid string
}

// IfaceID returns external_ids:iface-id ("" if unset).
func (i Interface) IfaceID() string { return i.ExternalIDs[ExternalIDIfaceID] }

// AttachedMAC returns external_ids:attached-mac ("" if unset).
func (i Interface) AttachedMAC() string { return i.ExternalIDs[ExternalIDAttachedMAC] }

func (i Interface) equal(o Interface) bool {
	return i.Name == o.Name && i.Port == o.Port && i.Bridge == o.Bridge && i.Type == o.Type &&
		i.OFPort == o.OFPort && i.MAC == o.MAC && i.AdminState == o.AdminState &&
		i.LinkState == o.LinkState && i.Error == o.Error && maps.Equal(i.ExternalIDs, o.ExternalIDs) &&
		i.BFD == o.BFD
}

func str[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// interfaces returns the interfaces of bridge ("" = every bridge) in v,
// sorted by name.
func (v *view) interfaces(bridge string) []Interface {
	var out []Interface
	for _, vi := range v.ifaces {
		port := v.ifPort[vi.UUID]
		if port == nil {
			continue
		}
		br := v.bridgeOf(port)
		if br == nil || (bridge != "" && br.Name != bridge) {
			continue
		}
		i := Interface{
			Name:        vi.Name,
			Port:        port.Name,
			Bridge:      br.Name,
			Type:        vi.Type,
			MAC:         str(vi.MACInUse),
			AdminState:  str(vi.AdminState),
			LinkState:   str(vi.LinkState),
			Error:       str(vi.Error),
			ExternalIDs: maps.Clone(vi.ExternalIDs),
			BFD:         ParseBFDStatus(vi.BFDStatus),
			uuid:        vi.UUID,
		}
		if i.ExternalIDs == nil {
			i.ExternalIDs = map[string]string{}
		}
		if vi.Ofport != nil {
			i.OFPort = *vi.Ofport
		}
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b Interface) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Interfaces returns the interfaces of bridge, sorted by name; bridge ""
// returns those of every bridge. The error wraps ErrNotFound if the bridge
// does not exist.
func (c *Client) Interfaces(ctx context.Context, bridge string) ([]Interface, error) {
	v, err := c.view(ctx)
	if err != nil {
		return nil, err
	}
	if bridge != "" && v.bridges[bridge] == nil {
		return nil, fmt.Errorf("ovsdb: bridge %q: %w", bridge, ErrNotFound)
	}
	return v.interfaces(bridge), nil
}

// InterfaceEventType says what happened to an interface.
type InterfaceEventType int

// Interface event types.
const (
	InterfaceAdded   InterfaceEventType = iota + 1 // appeared on the bridge (or present when the watch began)
	InterfaceUpdated                               // a reported field changed (OFPort, MAC, states, external_ids, BFD status, ...)
	InterfaceRemoved                               // left the bridge; Interface is its last known state
)

func (t InterfaceEventType) String() string {
	switch t {
	case InterfaceAdded:
		return "added"
	case InterfaceUpdated:
		return "updated"
	case InterfaceRemoved:
		return "removed"
	}
	return fmt.Sprintf("InterfaceEventType(%d)", int(t))
}

// InterfaceEvent is one change seen by WatchInterfaces.
type InterfaceEvent struct {
	Type      InterfaceEventType
	Interface Interface // new state (last known state for InterfaceRemoved)
}

// WatchInterfaces reports the interfaces of bridge ("" = every bridge) and
// their changes. It first sends InterfaceAdded for every interface present,
// then, as the monitor cache changes, InterfaceAdded / InterfaceUpdated /
// InterfaceRemoved (removals first, then additions, then updates, each
// sorted by name). Events are computed by comparing snapshots, so nothing is
// lost when the consumer is slow (quick successive changes merge into one
// event) or when the connection to ovsdb-server is re-established (an
// interface deleted meanwhile is reported removed). An interface deleted and
// re-created under the same name between two snapshots is reported removed
// then added. The channel is closed when ctx ends or the client is closed.
func (c *Client) WatchInterfaces(ctx context.Context, bridge string) (<-chan InterfaceEvent, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	out := make(chan InterfaceEvent, 16)
	go func() {
		defer close(out)
		known := map[string]Interface{} // by row UUID
		for {
			ch := c.changed()
			v, err := c.view(ctx)
			if err != nil {
				if ctx.Err() == nil && !c.closed.Load() {
					c.log.Error("ovsdb: interface watch stopped", "bridge", bridge, "err", err)
				}
				return
			}
			cur := map[string]Interface{}
			for _, i := range v.interfaces(bridge) {
				cur[i.uuid] = i
			}
			for _, ev := range diffInterfaces(known, cur) {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				case <-c.done:
					return
				}
			}
			known = cur
			select {
			case <-ch:
			case <-ctx.Done():
				return
			case <-c.done:
				return
			}
		}
	}()
	return out, nil
}

// diffInterfaces returns the events turning old into cur (both keyed by
// row UUID): removals, additions, updates, each sorted by name.
func diffInterfaces(old, cur map[string]Interface) []InterfaceEvent {
	var removed, added, updated []InterfaceEvent
	for u, o := range old {
		if _, ok := cur[u]; !ok {
			removed = append(removed, InterfaceEvent{Type: InterfaceRemoved, Interface: o})
		}
	}
	for u, n := range cur {
		o, ok := old[u]
		switch {
		case !ok:
			added = append(added, InterfaceEvent{Type: InterfaceAdded, Interface: n})
		case !o.equal(n):
			updated = append(updated, InterfaceEvent{Type: InterfaceUpdated, Interface: n})
		}
	}
	byName := func(a, b InterfaceEvent) int { return strings.Compare(a.Interface.Name, b.Interface.Name) }
	slices.SortFunc(removed, byName)
	slices.SortFunc(added, byName)
	slices.SortFunc(updated, byName)
	return append(append(removed, added...), updated...)
}

// WaitInterface waits until interface name is on bridge and ovs-vswitchd
// has given it an OpenFlow port number, and returns it. It fails at once
// when vswitchd reports the interface failed (OFPort -1; the error carries
// the Interface error column), and with ctx's error (plus the last state
// seen) when ctx ends first. Use it before installing flows that output to
// a port just created.
func (c *Client) WaitInterface(ctx context.Context, bridge, name string) (Interface, error) {
	var got Interface
	last := "absent"
	err := c.waitFor(ctx, func(v *view) (bool, error) {
		for _, i := range v.interfaces(bridge) {
			if i.Name != name {
				continue
			}
			got = i
			switch {
			case i.OFPort > 0:
				return true, nil
			case i.OFPort < 0:
				return false, fmt.Errorf("ovsdb: bridge %q: interface %q failed: %s", bridge, name, i.Error)
			}
			last = "no OpenFlow port yet"
			return false, nil
		}
		last = "absent"
		return false, nil
	})
	if err != nil && ctx.Err() != nil && got.OFPort <= 0 {
		return got, fmt.Errorf("ovsdb: bridge %q: interface %q (%s): %w", bridge, name, last, err)
	}
	return got, err
}

// SetInterfaceExternalIDs sets the given external_ids keys of interface
// name (keys with value "" are removed; other keys are left alone), e.g. to
// mark an interface bound to a tenant port. No transaction is sent when
// nothing changes. The error wraps ErrNotFound if the interface does not
// exist.
func (c *Client) SetInterfaceExternalIDs(ctx context.Context, name string, ids map[string]string) error {
	what := fmt.Sprintf("interface %q: external_ids", name)
	for k := range ids {
		if k == "" {
			return fmt.Errorf("ovsdb: %s: empty key", what)
		}
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	v, err := c.view(ctx)
	if err != nil {
		return err
	}
	cur := v.ifaceBy[name]
	if cur == nil {
		return fmt.Errorf("ovsdb: interface %q: %w", name, ErrNotFound)
	}
	next := maps.Clone(cur.ExternalIDs)
	if next == nil {
		next = map[string]string{}
	}
	for k, val := range ids {
		if val == "" {
			delete(next, k)
		} else {
			next[k] = val
		}
	}
	if maps.Equal(next, cur.ExternalIDs) {
		return nil
	}
	row := &vswitch.Interface{UUID: cur.UUID, ExternalIDs: next}
	ops, err := c.lib.Where(row).Update(row, &row.ExternalIDs)
	if err != nil {
		return fmt.Errorf("ovsdb: %s: %w", what, err)
	}
	return c.transact(ctx, what, ops)
}
