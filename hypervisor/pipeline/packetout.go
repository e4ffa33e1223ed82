package pipeline

import (
	"bytes"
	"encoding/binary"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// TranslatePacketOut translates a tenant app's OFPT_PACKET_OUT (OpenFlow
// 1.3.5 §7.3.7) on virtual switch vdpid into a packet-out for one edge
// bridge, returned with it (docs/pipeline.md, "Packet-in and packet-out"):
//
//   - the frame (po.Data, unbuffered: Buffer must be OFP_NO_BUFFER) must
//     carry one of the tenant's host MACs as source, and as destination one
//     of them or a group address (design.md drops other unicast
//     destinations); it is copied with the
//     source rewritten to that host's fabric MAC (only known sources are
//     restored at egress);
//   - po.InPort is a port of vdpid or OFPP_CONTROLLER; the bridge is the
//     in-port host's (when bound), else the first of EdgeBridges;
//   - actions as for flow entries (outputs become clone(...) sequences
//     through table 20 or across virtual links; FLOOD/ALL leave out the
//     in-port), with the group copy when the frame's destination is a group
//     address; output:TABLE runs the destination check (table 5) and the
//     tenant's tables with the in-port in the metadata (needs a port in_port); output:CONTROLLER is
//     refused (the hypervisor hands such frames back to the app itself).
//
// The physical packet-out has in_port OFPP_CONTROLLER. Errors are *Error.
func TranslatePacketOut(v *View, bindings []Binding, vdpid topology.DPID, po *ofp.PacketOut) (DPID, *ofp.PacketOut, error) {
	sw, ok := v.SwitchByDPID(vdpid)
	if !ok {
		return 0, nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPort, "tenant %q has no virtual switch %s", v.Name, vdpid)
	}
	if po.Buffer != ofp.NoBuffer {
		return 0, nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBufferUnknown, "buffer %d: the hypervisor does not buffer packets", po.Buffer)
	}
	if len(po.Data) < 14 {
		return 0, nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPacket, "packet of %d bytes has no Ethernet header", len(po.Data))
	}
	src, dst := addr.MAC(po.Data[6:12]), addr.MAC(po.Data[0:6])
	h, ok := v.HostByMAC(src)
	if !ok {
		return 0, nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPacket, "source %v is not one of the tenant's host MACs", src)
	}
	var inPort uint16
	switch p := po.InPort; {
	case p == ofp.PortController:
	case p <= ofp.PortMax:
		vi, ok := v.PortOf(sw.Index, uint32(p))
		if !ok {
			return 0, nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPort, "in_port %d is not a port of virtual switch %s", p, vdpid)
		}
		inPort = vi
	default:
		return 0, nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPort, "in_port %#x is not supported", uint32(p))
	}
	bridge, found := DPID(0), false
	if inPort != 0 && v.Ports[inPort-1].Host != nil {
		for _, b := range bindings {
			if b.Tenant == v.Name && b.Host == v.Ports[inPort-1].Host.Name {
				bridge, found = b.Bridge, true
			}
		}
	}
	if !found {
		bs := EdgeBridges(v, bindings, vdpid)
		if len(bs) == 0 {
			return 0, nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPort, "virtual switch %s has no bound host", vdpid)
		}
		bridge = bs[0]
	}
	if _, ok := v.HostByMAC(dst); dst.IsUnicast() && !ok {
		return 0, nil, errf(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPacket, "unicast destination %v is not one of the tenant's host MACs", dst)
	}
	group := dst.IsMulticast()
	// One allocation for the packet-out, its actions and its frame unless
	// they are large: the hot path of every packet-out of a tenant app.
	out := &packetOutBuf{}
	acts := out.acts[:0]
	if n := actionsBound(sw, po.Actions); n > len(out.acts) {
		acts = make(ofp.Actions, 0, n)
	}
	for _, a := range po.Actions {
		if o, ok := a.(*ofp.ActionOutput); ok {
			switch o.Port {
			case ofp.PortController:
				return 0, nil, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort, "packet-out to CONTROLLER is not supported")
			case ofp.PortTable:
				if inPort == 0 {
					return 0, nil, errf(ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort, "output:TABLE needs a virtual in_port")
				}
				md := MetadataValue(v.ID, inPort, sw.Index, group)
				c, err := Clone(SetField(basic(ofp.XMTypeMetadata, binary.BigEndian.AppendUint64(nil, md), nil)), Resubmit(TableDestCheck))
				if err != nil {
					return 0, nil, err
				}
				acts = append(acts, c)
				continue
			}
		}
		if _, err := checkAction(v, sw, a); err != nil {
			return 0, nil, err
		}
		var err error
		if acts, err = appendAction(acts, v, sw, a, inPort, group); err != nil {
			return 0, nil, err
		}
	}
	if len(acts) == 0 {
		acts = nil
	}
	var data []byte
	if len(po.Data) <= len(out.frame) {
		data = out.frame[:len(po.Data):len(po.Data)]
		copy(data, po.Data)
	} else {
		data = bytes.Clone(po.Data)
	}
	fab := addr.FabricMAC(v.ID, h.Index)
	copy(data[6:12], fab[:])
	out.po = ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: ofp.PortController, Actions: acts, Data: data}
	return bridge, &out.po, nil
}

// packetOutBuf is a translated packet-out with room for two actions and a
// frame of up to 128 bytes (ARP, a TCP SYN, ofbench's frames).
type packetOutBuf struct {
	po    ofp.PacketOut
	acts  [2]ofp.Action
	frame [128]byte
}
