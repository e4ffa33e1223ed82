package addr

import (
	"errors"
	"fmt"
)

// Errors returned (wrapped) by the TenantMap rewrite functions; a caller drops
// the frame on any of them.
var (
	// ErrShortFrame: fewer than 12 octets, so no Ethernet header.
	ErrShortFrame = errors.New("frame shorter than an Ethernet header")
	// ErrUnknownHost: a unicast MAC that is not one of the tenant's hosts.
	ErrUnknownHost = errors.New("MAC is not a host of this tenant")
	// ErrForeignTenant: a fabric MAC whose prefix is another tenant's.
	ErrForeignTenant = errors.New("fabric MAC belongs to another tenant")
)

// TenantMap is the address map of one tenant: its tenant ID and a bijection
// between its hosts' own MACs (as the tenant wrote them in its topology) and
// their host indices. It performs the edge rewrites of docs/design.md,
// "Address layout", on raw Ethernet frames — the same rewrites OVS does with
// set_field on the data path, needed by the hypervisor for packet-in and
// packet-out payloads. A TenantMap is immutable after NewTenantMap and safe
// for concurrent use.
type TenantMap struct {
	id      TenantID
	byMAC   map[MAC]HostIndex
	byIndex map[HostIndex]MAC
}

// NewTenantMap builds the map of tenant id from hosts (own MAC → host index).
// It fails if id is not valid, a MAC is a group address or all-zero, an index
// is NoHost, or two MACs share an index.
func NewTenantMap(id TenantID, hosts map[MAC]HostIndex) (*TenantMap, error) {
	if !IsValidTenantID(id) {
		return nil, fmt.Errorf("tenant ID %v is not valid", id)
	}
	m := &TenantMap{id: id, byMAC: make(map[MAC]HostIndex, len(hosts)), byIndex: make(map[HostIndex]MAC, len(hosts))}
	for mac, h := range hosts {
		switch {
		case mac.IsMulticast() || mac.IsZero():
			return nil, fmt.Errorf("tenant %v: host MAC %v is not a unicast address", id, mac)
		case h == NoHost || h > MaxHostIndex:
			return nil, fmt.Errorf("tenant %v: host MAC %v has reserved or out-of-range host index %d", id, mac, h)
		}
		if other, dup := m.byIndex[h]; dup {
			return nil, fmt.Errorf("tenant %v: host index %d given to both %v and %v", id, h, other, mac)
		}
		m.byMAC[mac] = h
		m.byIndex[h] = mac
	}
	return m, nil
}

// ID returns the tenant ID.
func (m *TenantMap) ID() TenantID { return m.id }

// Len returns the number of hosts.
func (m *TenantMap) Len() int { return len(m.byMAC) }

// ToFabric maps a tenant's own MAC to its fabric MAC. Group addresses
// (broadcast, multicast) are returned unchanged; a unicast MAC that is not one
// of the tenant's hosts yields ok == false (the frame must be dropped: passing
// it through could alias another tenant's fabric MAC).
func (m *TenantMap) ToFabric(own MAC) (fabric MAC, ok bool) {
	if own.IsMulticast() {
		return own, true
	}
	h, ok := m.byMAC[own]
	if !ok {
		return MAC{}, false
	}
	return FabricMAC(m.id, h), true
}

// ToOwn maps a fabric MAC of this tenant back to the host's own MAC. Group
// addresses are returned unchanged; a group-marked fabric MAC of a known host
// (GroupMAC) becomes ff:ff:ff:ff:ff:ff; a MAC of another tenant or an unknown
// host index yields ok == false.
func (m *TenantMap) ToOwn(fabric MAC) (own MAC, ok bool) {
	if fabric.IsMulticast() {
		return fabric, true
	}
	t, h := Split(fabric)
	if t != m.id {
		return MAC{}, false
	}
	own, ok = m.byIndex[h&^GroupMark]
	if ok && h&GroupMark != 0 {
		return Broadcast, true
	}
	return own, ok
}

// Ingress rewrites, in place, a frame a tenant host sent into the fabric
// (edge ingress): source MAC → fabric MAC (always; the source must be a
// host of this tenant), destination MAC → fabric MAC if unicast, unchanged if
// group. frame starts at the Ethernet destination address; VLAN tags and the
// payload (including ARP sender/target hardware addresses) are not touched.
// On error the frame is left unmodified.
func (m *TenantMap) Ingress(frame []byte) error {
	if len(frame) < 12 {
		return fmt.Errorf("tenant %v ingress: %w (%d octets)", m.id, ErrShortFrame, len(frame))
	}
	dst, src := MAC(frame[0:6]), MAC(frame[6:12])
	if src.IsMulticast() {
		return fmt.Errorf("tenant %v ingress: source %v is a group address: %w", m.id, src, ErrUnknownHost)
	}
	fsrc, ok := m.ToFabric(src)
	if !ok {
		return fmt.Errorf("tenant %v ingress: source %v: %w", m.id, src, ErrUnknownHost)
	}
	fdst, ok := m.ToFabric(dst)
	if !ok {
		return fmt.Errorf("tenant %v ingress: destination %v: %w", m.id, dst, ErrUnknownHost)
	}
	copy(frame[0:6], fdst[:])
	copy(frame[6:12], fsrc[:])
	return nil
}

// Egress rewrites, in place, a fabric frame about to leave toward one of this
// tenant's hosts (edge egress, or a packet-in handed to the tenant's apps):
// both MACs back to the hosts' own MACs, group destinations unchanged, a
// group-marked destination (GroupMAC) to ff:ff:ff:ff:ff:ff. It
// fails with ErrForeignTenant if the source MAC's prefix is not this tenant's
// — the isolation check — and ErrUnknownHost for an unknown host index. On
// error the frame is left unmodified.
func (m *TenantMap) Egress(frame []byte) error {
	if len(frame) < 12 {
		return fmt.Errorf("tenant %v egress: %w (%d octets)", m.id, ErrShortFrame, len(frame))
	}
	dst, src := MAC(frame[0:6]), MAC(frame[6:12])
	if t, _ := Split(src); t != m.id || src.IsMulticast() {
		return fmt.Errorf("tenant %v egress: source %v: %w", m.id, src, ErrForeignTenant)
	}
	osrc, ok := m.ToOwn(src)
	if !ok {
		return fmt.Errorf("tenant %v egress: source %v: %w", m.id, src, ErrUnknownHost)
	}
	if t, _ := Split(dst); dst.IsUnicast() && t != m.id {
		return fmt.Errorf("tenant %v egress: destination %v: %w", m.id, dst, ErrForeignTenant)
	}
	odst, ok := m.ToOwn(dst)
	if !ok {
		return fmt.Errorf("tenant %v egress: destination %v: %w", m.id, dst, ErrUnknownHost)
	}
	copy(frame[0:6], odst[:])
	copy(frame[6:12], osrc[:])
	return nil
}

// TenantOfFrame returns the tenant of a frame inside the fabric, read from the
// prefix of its SOURCE MAC, which edge ingress always rewrites (destination
// MACs of broadcast/multicast frames carry no prefix). ok is false for a
// frame shorter than 12 octets or a source without a valid tenant prefix.
func TenantOfFrame(frame []byte) (TenantID, bool) {
	if len(frame) < 12 {
		return 0, false
	}
	return TenantOf(MAC(frame[6:12]))
}
