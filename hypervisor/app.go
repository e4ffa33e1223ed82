package hypervisor

import (
	"context"
	"encoding/binary"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// SwitchUp implements controller.SwitchUpHandler. A switch of the
// infrastructure is recorded as connected and its flow table reconciled at
// once with its desired entries (reconcile.Sync: only the difference is
// sent, so a Skyvisor restart does not flush it). Unknown DPIDs are
// ignored (logged).
func (h *Hypervisor) SwitchUp(ctx context.Context, sw *controller.Switch) {
	d := uint64(sw.DPID())
	h.mu.Lock()
	known := h.inf.SwitchByDPID(d) != nil
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
func (h *Hypervisor) SwitchDown(_ context.Context, sw *controller.Switch) {
	d := uint64(sw.DPID())
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.switches[d] == sw {
		delete(h.switches, d)
		delete(h.synced, d)
	}
}

// lldpType is the LLDP Ethertype (IEEE 802.1AB).
const lldpType = 0x88cc

// PacketIn implements controller.PacketInHandler. Every packet-in from a
// fabric bridge is the hypervisor's: tenant frames (table-miss of the
// tenant tables 10-13, whose metadata names the tenant, virtual switch and
// virtual in-port; docs/pipeline.md "Packet-in and packet-out") and LLDP
// from a host port are consumed (Stop), so physical apps registered after
// the hypervisor never see tenant frames. Only LLDP arriving on a port that
// is not a tenant host's (the physical discovery's own probes) continues
// to later apps. Switches outside the infrastructure are left alone
// (Continue). Delivering tenant packet-ins to tenant apps on a virtual
// view is a follow-up; they are counted per tenant (PacketIns).
func (h *Hypervisor) PacketIn(_ context.Context, sw *controller.Switch, ev *controller.PacketIn) controller.Disposition {
	d := uint64(sw.DPID())
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inf.SwitchByDPID(d) == nil {
		return controller.Continue
	}
	isLLDP := len(ev.Data) >= 14 && binary.BigEndian.Uint16(ev.Data[12:14]) == lldpType
	if isLLDP && !h.hostPortLocked(d, uint32(ev.InPort)) {
		return controller.Continue
	}
	var tenant addr.TenantID
	for _, f := range ev.Match.Fields {
		if f.Type == ofp.XMTypeMetadata && len(f.Value) == 8 {
			tenant = addr.TenantID(binary.BigEndian.Uint64(f.Value) >> pipeline.MetaTenantShift)
		}
	}
	if h.packetIns == nil {
		h.packetIns = map[addr.TenantID]uint64{}
	}
	h.packetIns[tenant]++
	return controller.Stop
}

// hostPortLocked reports whether port of bridge dpid carries a tenant
// host (an interface with an iface-id). h.mu held.
func (h *Hypervisor) hostPortLocked(dpid uint64, port uint32) bool {
	for k, p := range h.ofports {
		if k.dpid == dpid && p == port {
			return true
		}
	}
	return false
}

// PacketIns returns how many packet-ins the hypervisor consumed per tenant
// ID (0: frames with no tenant metadata, e.g. tenant LLDP from a host).
func (h *Hypervisor) PacketIns() map[addr.TenantID]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[addr.TenantID]uint64, len(h.packetIns))
	for k, v := range h.packetIns {
		out[k] = v
	}
	return out
}
