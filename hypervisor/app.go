package hypervisor

import (
	"context"
	"encoding/binary"
	"slices"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// SwitchUp implements controller.SwitchUpHandler. A switch of the
// infrastructure is recorded as connected and its flow table reconciled at
// once with its desired entries (reconcile.Sync: only the difference is
// sent, so a Skyvisor restart does not flush it). Unknown DPIDs are
// ignored (logged).
func (h *Hypervisor) SwitchUp(ctx context.Context, sw controller.Switch) {
	d := uint64(sw.DPID())
	h.mu.Lock()
	known := h.knownLocked(d)
	if known {
		h.switches[d] = sw
		delete(h.synced, d)
	}
	h.mu.Unlock()
	if !known {
		sw.Logger().Info("hypervisor: switch not in the infrastructure; ignored", "dpid", sw.DPID())
		return
	}
	if _, err := h.syncSwitch(ctx, d); err != nil {
		sw.Logger().Warn("hypervisor: reconcile on connect failed", "err", err)
	}
}

// SwitchDown implements controller.SwitchDownHandler.
func (h *Hypervisor) SwitchDown(_ context.Context, sw controller.Switch) {
	d := uint64(sw.DPID())
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.switches[d] == sw {
		delete(h.switches, d)
		delete(h.synced, d)
	}
}

// knownDPIDs indexes the switch DPIDs of one infrastructure (h.inf is
// replaced, never modified, when the infrastructure changes).
type knownDPIDs struct {
	inf   *infra.Infra
	dpids map[uint64]bool
}

// knownLocked reports whether d is a switch of h.inf
// (infra.SwitchByDPID != nil) without scanning the switches on every
// packet-in. h.mu held.
func (h *Hypervisor) knownLocked(d uint64) bool {
	if h.known.inf != h.inf {
		m := make(map[uint64]bool, len(h.inf.Switches))
		for i := range h.inf.Switches {
			m[h.inf.Switches[i].DPID] = true
		}
		h.known = knownDPIDs{inf: h.inf, dpids: m}
	}
	return h.known.dpids[d]
}

// lldpType is the LLDP Ethertype (IEEE 802.1AB).
const lldpType = 0x88cc

// PacketIn implements controller.PacketInHandler. Every packet-in from a
// fabric bridge is the hypervisor's: tenant frames (table-miss or
// controller output of the tenant tables 10-13, whose metadata names the
// tenant, virtual switch and virtual in-port; docs/pipeline.md "Packet-in
// and packet-out") and LLDP from a host port are consumed (Stop), so
// physical apps registered after the hypervisor never see tenant frames.
// Only LLDP arriving on a port that is not a tenant host's (the physical
// discovery's own probes) continues to later apps. Switches outside the
// infrastructure are left alone (Continue). Tenant packet-ins are counted
// per tenant (PacketIns) and handed to Config.TenantPacketIn; a host's
// LLDP goes there too, as a packet-in on the host's virtual port
// (docs/pipeline.md: tenants see LLDP of their own network only).
func (h *Hypervisor) PacketIn(_ context.Context, sw controller.Switch, ev *controller.PacketIn) controller.Disposition {
	return h.packetIn(uint64(sw.DPID()), ev)
}

// TenantPacketIn is a packet-in of a tenant's virtual switch.
type TenantPacketIn struct {
	Tenant   string
	TenantID addr.TenantID
	// Switch and VirtualDPID name the virtual switch; InPort is the
	// virtual port number the tenant chose; Group says the frame's
	// destination was a group address.
	Switch      string
	VirtualDPID topology.DPID
	InPort      uint32
	Group       bool
	// Table is the virtual table (physical table - pipeline.TableTenant);
	// Cookie the tenant app's cookie (low 48 bits).
	Table  uint8
	Cookie uint64
	// PhysicalDPID and PhysicalInPort say where the frame entered.
	PhysicalDPID   topology.DPID
	PhysicalInPort uint32
	// Frame is the Ethernet frame with its source MAC restored to the
	// sending host's own MAC (the fabric MAC never reaches tenant apps).
	Frame []byte
}

// packetIn is PacketIn for the switch with datapath ID d.
func (h *Hypervisor) packetIn(d uint64, ev *controller.PacketIn) controller.Disposition {
	// What needs no state is decoded before taking h.mu, which every
	// session's packet-ins share (held here for two map lookups and a
	// count).
	isLLDP := len(ev.Data) >= 14 && binary.BigEndian.Uint16(ev.Data[12:14]) == lldpType
	var md uint64
	var haveMD bool
	if !isLLDP {
		for _, f := range ev.Match.Fields {
			if f.Type == ofp.XMTypeMetadata && len(f.Value) == 8 {
				md, haveMD = binary.BigEndian.Uint64(f.Value), true
			}
		}
	}
	h.mu.Lock()
	if !h.knownLocked(d) {
		h.mu.Unlock()
		return controller.Continue
	}
	if isLLDP {
		ifaceID := h.hostPortLocked(d, uint32(ev.InPort))
		if ifaceID == "" {
			h.mu.Unlock()
			return controller.Continue // the physical discovery's probe
		}
		// A tenant host's LLDP: to its tenant only, as a packet-in on the
		// host's virtual port.
		tn, host, _ := topology.SplitIfaceID(ifaceID)
		var tv *tenantView
		for _, v := range h.views {
			if v.view.Name == tn {
				tv = v
			}
		}
		hook := h.deliverTenantPacketIn
		if tv != nil {
			h.packetInsLocked(tv.view.ID)
		}
		h.mu.Unlock()
		if tv == nil || hook == nil {
			return controller.Stop
		}
		if hi, ok := tv.view.HostByName(host); ok {
			port := tv.view.Ports[hi.VPort-1]
			sw := tv.view.Switches[port.Switch-1]
			hook(TenantPacketIn{Tenant: tn, TenantID: tv.view.ID, Switch: sw.Name, VirtualDPID: sw.DPID, InPort: port.Port,
				Group: true, PhysicalDPID: topology.DPID(d), PhysicalInPort: uint32(ev.InPort), Frame: slices.Clone(ev.Data)})
		}
		return controller.Stop
	}
	tenant := addr.TenantID(md >> pipeline.MetaTenantShift)
	h.packetInsLocked(tenant)
	tv := h.views[tenant]
	hook := h.deliverTenantPacketIn
	h.mu.Unlock()
	if !haveMD || tv == nil || hook == nil || ev.TableID < pipeline.TableTenant || ev.TableID >= pipeline.TableTenant+pipeline.NumTenantTables {
		return controller.Stop
	}
	if tp, ok := tv.demux(d, md, ev); ok {
		hook(tp)
	}
	return controller.Stop
}

// tenantView is what demultiplexing a tenant's packet-ins needs.
type tenantView struct {
	view  *pipeline.View
	addrs *addr.TenantMap
}

// demux decodes a packet-in of the tenant tables into a TenantPacketIn; ok
// is false if the metadata or the source MAC do not belong to the tenant.
func (tv *tenantView) demux(d, md uint64, ev *controller.PacketIn) (TenantPacketIn, bool) {
	sw, port, group, ok := tv.view.DecodeMetadata(md)
	if !ok || len(ev.Data) < 12 {
		return TenantPacketIn{}, false
	}
	frame := slices.Clone(ev.Data)
	own, ok := tv.addrs.ToOwn(addr.MAC(frame[6:12]))
	if !ok {
		return TenantPacketIn{}, false
	}
	copy(frame[6:12], own[:])
	var cookie uint64
	if !pipeline.IsInfraCookie(ev.Cookie) { // a tenant app's entry, not the table-miss
		cookie = ev.Cookie & (1<<48 - 1)
	}
	return TenantPacketIn{Tenant: tv.view.Name, TenantID: tv.view.ID, Switch: sw.Name, VirtualDPID: sw.DPID, InPort: port.Port,
		Group: group, Table: ev.TableID - pipeline.TableTenant, Cookie: cookie,
		PhysicalDPID: topology.DPID(d), PhysicalInPort: uint32(ev.InPort), Frame: frame}, true
}

// hostPortLocked returns the iface-id of the tenant host interface at
// port of bridge dpid ("" if none). h.mu held.
func (h *Hypervisor) hostPortLocked(dpid uint64, port uint32) string {
	for k, p := range h.ofports {
		if k.dpid == dpid && p == port {
			return h.portIDs[k]
		}
	}
	return ""
}

// packetInsLocked counts one consumed packet-in of tenant. h.mu held.
func (h *Hypervisor) packetInsLocked(tenant addr.TenantID) {
	if h.packetIns == nil {
		h.packetIns = map[addr.TenantID]uint64{}
	}
	h.packetIns[tenant]++
}

// PacketIns returns how many packet-ins the hypervisor consumed per tenant
// ID (0: frames with no tenant metadata from a port without a tenant host).
func (h *Hypervisor) PacketIns() map[addr.TenantID]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[addr.TenantID]uint64, len(h.packetIns))
	for k, v := range h.packetIns {
		out[k] = v
	}
	return out
}
