package pipeline

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// Metadata layout (OXM_OF_METADATA, 64 bits) of the edge pipeline; see
// docs/pipeline.md, "Metadata".
const (
	MetaTenantShift        = 48
	MetaTenantMask  uint64 = 0xffff << MetaTenantShift // bits 63-48: tenant ID
	MetaVPortShift         = 32
	MetaVPortMask   uint64 = 0xffff << MetaVPortShift // bits 47-32: virtual port index (1-based)
	MetaGroup       uint64 = 1 << 31                  // bit 31: original destination was a group address
	MetaSwitchMask  uint64 = 0xffff                   // bits 15-0: virtual switch index (1-based)
)

// MetadataValue packs the metadata fields; group sets MetaGroup.
func MetadataValue(t addr.TenantID, vport, sw uint16, group bool) uint64 {
	v := uint64(t)<<MetaTenantShift | uint64(vport)<<MetaVPortShift | uint64(sw)
	if group {
		v |= MetaGroup
	}
	return v
}

// VPort is one port of one of a tenant's virtual switches.
type VPort struct {
	Index  uint16 // 1-based index in the tenant's port list (metadata bits 47-32)
	Switch uint16 // 1-based virtual switch index (metadata bits 15-0)
	Port   uint32 // the port number the tenant chose
	// Host is the host attached to the port, or nil for a link port.
	Host *HostInfo
	// Peer is the virtual port at the other end of the link (0 for a host port).
	Peer uint16
}

// HostInfo is one host of a tenant.
type HostInfo struct {
	Name  string
	MAC   addr.MAC // the host's own MAC
	Index addr.HostIndex
	VPort uint16 // index of the host's virtual port
}

// VSwitch is one of a tenant's virtual switches.
type VSwitch struct {
	Index uint16 // 1-based, switches sorted by name
	Name  string
	DPID  topology.DPID
	Ports []uint16 // vport indices, ascending by port number
}

// View is the pipeline's indexing of one tenant: virtual switch and port
// indices for the metadata, and its hosts' addresses. Indices are derived
// deterministically from the topology (switches sorted by name, ports by
// (switch, port number)), so they are the same after a restart; changing
// the topology may renumber them, and the compiled entries change with it.
// A View is immutable and safe for concurrent use.
type View struct {
	ID         addr.TenantID
	Name       string
	Switches   []VSwitch // Switches[i].Index == i+1
	Ports      []VPort   // Ports[i].Index == i+1
	Hosts      []HostInfo
	hostByName map[string]int
	hostByMAC  map[addr.MAC]int
	byDPID     map[topology.DPID]uint16
	portIdx    map[[2]uint32]uint16 // (switch index, port number) -> vport index

	// xlat holds translation parts that depend on the view only, built on
	// the first translation of a tenant app's flow-mod or packet-out (most
	// views, those of tenants without apps on the virtual view, never need
	// them). nil in a View not made by NewView: translation then builds
	// the parts every time.
	xlat *xlatCache
}

// xlatCache is the per-view part of translating tenant apps' messages
// (translate.go), shared read-only by every translated flow-mod and
// packet-out of the view: the physical session encodes them, nothing
// modifies them. It saves the per-message allocation and encoding of the
// same NXAST_CLONE actions and fabric MAC OXMs on the packet-in hot path.
type xlatCache struct {
	once sync.Once
	err  error
	// toPort[vi-1][g] is toVPort(vport vi, group bit g).
	toPort [][2]ofp.Action
	// srcXM[h] is EthSrc(fabric MAC) of host slot h (View.Hosts order);
	// setSrc[h] is SetField of it.
	srcXM  []ofp.XM
	setSrc []ofp.Action
}

// cache returns the view's translation cache, built on first use, or nil
// when the view has none or building it failed (callers then build the
// parts themselves, with the error where it belongs).
func (v *View) cache() *xlatCache {
	c := v.xlat
	if c == nil {
		return nil
	}
	c.once.Do(func() {
		c.toPort = make([][2]ofp.Action, len(v.Ports))
		for i := range v.Ports {
			for g := range 2 {
				a, err := buildToVPort(v, uint16(i+1), g == 1)
				if err != nil {
					c.err = err
					return
				}
				c.toPort[i][g] = a
			}
		}
		c.srcXM = make([]ofp.XM, len(v.Hosts))
		c.setSrc = make([]ofp.Action, len(v.Hosts))
		for i := range v.Hosts {
			c.srcXM[i] = EthSrc(addr.FabricMAC(v.ID, v.Hosts[i].Index))
			c.setSrc[i] = SetField(c.srcXM[i])
		}
	})
	if c.err != nil {
		return nil
	}
	return c
}

// fabricSrcXM returns EthSrc(fabric MAC) of the host at slot i of v.Hosts.
func (v *View) fabricSrcXM(i int) ofp.XM {
	if c := v.cache(); c != nil {
		return c.srcXM[i]
	}
	return EthSrc(addr.FabricMAC(v.ID, v.Hosts[i].Index))
}

// fabricSetSrc returns set_field eth_src=<fabric MAC> of the host at slot
// i of v.Hosts.
func (v *View) fabricSetSrc(i int) ofp.Action {
	if c := v.cache(); c != nil {
		return c.setSrc[i]
	}
	return SetField(EthSrc(addr.FabricMAC(v.ID, v.Hosts[i].Index)))
}

// toVPort returns the actions that send the packet out of vport vi: a
// clone that sets the destination fabric MAC (the group MAC when group)
// and resubmits to table 20 for a host port; a clone that moves the
// packet to the peer port's switch and resubmits to table 10 for a link
// port. The action is shared (see xlatCache): callers must not modify it.
func toVPort(v *View, vi uint16, group bool) (ofp.Action, error) {
	if c := v.cache(); c != nil {
		if group {
			return c.toPort[vi-1][1], nil
		}
		return c.toPort[vi-1][0], nil
	}
	return buildToVPort(v, vi, group)
}

// buildToVPort builds toVPort's action.
func buildToVPort(v *View, vi uint16, group bool) (ofp.Action, error) {
	p := &v.Ports[vi-1]
	if p.Host != nil {
		dst := addr.FabricMAC(v.ID, p.Host.Index)
		if group {
			dst = addr.GroupMAC(v.ID, p.Host.Index)
		}
		return Clone(SetField(EthDst(dst)), Resubmit(TableFabricOut))
	}
	peer := &v.Ports[p.Peer-1]
	md := MetadataValue(v.ID, peer.Index, peer.Switch, group)
	return Clone(SetField(basic(ofp.XMTypeMetadata, binary.BigEndian.AppendUint64(nil, md), nil)), Resubmit(TableTenant))
}

// NewView indexes tenant t. It fails if the tenant ID is invalid, the
// topology is missing, a host has no index or a bad MAC, or the topology
// exceeds 65,535 switches or ports.
func NewView(t Tenant) (*View, error) {
	if !addr.IsValidTenantID(t.ID) {
		return nil, fmt.Errorf("tenant ID %v is not valid", t.ID)
	}
	tp := t.Topology
	if tp == nil {
		return nil, fmt.Errorf("tenant %v: no topology", t.ID)
	}
	v := &View{ID: t.ID, Name: tp.Tenant, hostByName: map[string]int{}, hostByMAC: map[addr.MAC]int{},
		byDPID: map[topology.DPID]uint16{}, portIdx: map[[2]uint32]uint16{}, xlat: &xlatCache{}}
	sws := slices.Clone(tp.Switches)
	slices.SortFunc(sws, func(a, b topology.Switch) int { return cmp.Compare(a.Name, b.Name) })
	if len(sws) > 0xffff {
		return nil, fmt.Errorf("tenant %q: %d virtual switches, at most 65535", tp.Tenant, len(sws))
	}
	swIdx := map[string]uint16{}
	for i, s := range sws {
		if _, dup := swIdx[s.Name]; dup {
			return nil, fmt.Errorf("tenant %q: duplicate virtual switch %q", tp.Tenant, s.Name)
		}
		idx := uint16(i + 1)
		swIdx[s.Name] = idx
		if _, dup := v.byDPID[s.VirtualDPID()]; dup {
			return nil, fmt.Errorf("tenant %q: duplicate virtual DPID %s", tp.Tenant, s.VirtualDPID())
		}
		v.byDPID[s.VirtualDPID()] = idx
		v.Switches = append(v.Switches, VSwitch{Index: idx, Name: s.Name, DPID: s.VirtualDPID()})
	}
	type pk struct {
		sw   uint16
		port uint32
	}
	var keys []pk
	addPort := func(sw string, port uint32, what string) error {
		i, ok := swIdx[sw]
		if !ok {
			return fmt.Errorf("tenant %q: %s names unknown virtual switch %q", tp.Tenant, what, sw)
		}
		k := pk{i, port}
		if slices.Contains(keys, k) {
			return fmt.Errorf("tenant %q: %s: port %d of switch %q used twice", tp.Tenant, what, port, sw)
		}
		keys = append(keys, k)
		return nil
	}
	for i, h := range tp.Hosts {
		if err := addPort(h.Switch, h.Port, fmt.Sprintf("hosts[%d] (%s)", i, h.Name)); err != nil {
			return nil, err
		}
	}
	for i, l := range tp.Links {
		if err := addPort(l.A.Switch, l.A.Port, fmt.Sprintf("links[%d].a", i)); err != nil {
			return nil, err
		}
		if err := addPort(l.B.Switch, l.B.Port, fmt.Sprintf("links[%d].b", i)); err != nil {
			return nil, err
		}
	}
	if len(keys) > 0xffff {
		return nil, fmt.Errorf("tenant %q: %d virtual ports, at most 65535", tp.Tenant, len(keys))
	}
	slices.SortFunc(keys, func(a, b pk) int {
		if a.sw != b.sw {
			return cmp.Compare(a.sw, b.sw)
		}
		return cmp.Compare(a.port, b.port)
	})
	for i, k := range keys {
		idx := uint16(i + 1)
		v.portIdx[[2]uint32{uint32(k.sw), k.port}] = idx
		v.Ports = append(v.Ports, VPort{Index: idx, Switch: k.sw, Port: k.port})
		v.Switches[k.sw-1].Ports = append(v.Switches[k.sw-1].Ports, idx)
	}
	for i, h := range tp.Hosts {
		mac, err := h.ParsedMAC()
		if err != nil {
			return nil, fmt.Errorf("tenant %q: hosts[%d] (%s): %w", tp.Tenant, i, h.Name, err)
		}
		if mac.IsMulticast() || mac.IsZero() {
			return nil, fmt.Errorf("tenant %q: hosts[%d] (%s): MAC %v is not a unicast address", tp.Tenant, i, h.Name, mac)
		}
		hi, ok := t.Hosts[h.Name]
		if !ok || hi == addr.NoHost || hi > addr.MaxHostIndex {
			return nil, fmt.Errorf("tenant %q: hosts[%d] (%s): no valid host index (got %d)", tp.Tenant, i, h.Name, hi)
		}
		if _, dup := v.hostByMAC[mac]; dup {
			return nil, fmt.Errorf("tenant %q: hosts[%d] (%s): MAC %v used twice", tp.Tenant, i, h.Name, mac)
		}
		if _, dup := v.hostByName[h.Name]; dup {
			return nil, fmt.Errorf("tenant %q: hosts[%d]: duplicate host name %q", tp.Tenant, i, h.Name)
		}
		vp := v.portIdx[[2]uint32{uint32(swIdx[h.Switch]), h.Port}]
		v.Hosts = append(v.Hosts, HostInfo{Name: h.Name, MAC: mac, Index: hi, VPort: vp})
		v.hostByName[h.Name] = len(v.Hosts) - 1
		v.hostByMAC[mac] = len(v.Hosts) - 1
	}
	seenIdx := map[addr.HostIndex]string{}
	for i := range v.Hosts {
		h := &v.Hosts[i]
		if other, dup := seenIdx[h.Index]; dup {
			return nil, fmt.Errorf("tenant %q: host index %d given to both %s and %s", tp.Tenant, h.Index, other, h.Name)
		}
		seenIdx[h.Index] = h.Name
		v.Ports[h.VPort-1].Host = h
	}
	for _, l := range tp.Links {
		a := v.portIdx[[2]uint32{uint32(swIdx[l.A.Switch]), l.A.Port}]
		b := v.portIdx[[2]uint32{uint32(swIdx[l.B.Switch]), l.B.Port}]
		v.Ports[a-1].Peer, v.Ports[b-1].Peer = b, a
	}
	return v, nil
}

// SwitchByDPID returns the virtual switch with virtual DPID d.
func (v *View) SwitchByDPID(d topology.DPID) (*VSwitch, bool) {
	i, ok := v.byDPID[d]
	if !ok {
		return nil, false
	}
	return &v.Switches[i-1], true
}

// PortOf returns the vport index of port number port of switch sw (index).
func (v *View) PortOf(sw uint16, port uint32) (uint16, bool) {
	i, ok := v.portIdx[[2]uint32{uint32(sw), port}]
	return i, ok
}

// HostByMAC returns the host whose own MAC is m.
func (v *View) HostByMAC(m addr.MAC) (*HostInfo, bool) {
	i, ok := v.hostByMAC[m]
	if !ok {
		return nil, false
	}
	return &v.Hosts[i], true
}

// hostSlot returns the position in v.Hosts of the host whose own MAC is m.
func (v *View) hostSlot(m addr.MAC) (int, bool) {
	i, ok := v.hostByMAC[m]
	return i, ok
}

// HostByName returns the host called name.
func (v *View) HostByName(name string) (*HostInfo, bool) {
	i, ok := v.hostByName[name]
	if !ok {
		return nil, false
	}
	return &v.Hosts[i], true
}

// DecodeMetadata reads a packet-in's metadata (tables 10-13): the virtual
// switch, the virtual in-port and the group bit. ok is false when the
// tenant field is not this tenant or an index is out of range.
func (v *View) DecodeMetadata(md uint64) (sw *VSwitch, port *VPort, group bool, ok bool) {
	if addr.TenantID(md>>MetaTenantShift) != v.ID {
		return nil, nil, false, false
	}
	si, pi := int(md&MetaSwitchMask), int(md&MetaVPortMask>>MetaVPortShift)
	if si < 1 || si > len(v.Switches) || pi < 1 || pi > len(v.Ports) || v.Ports[pi-1].Switch != uint16(si) {
		return nil, nil, false, false
	}
	return &v.Switches[si-1], &v.Ports[pi-1], md&MetaGroup != 0, true
}
