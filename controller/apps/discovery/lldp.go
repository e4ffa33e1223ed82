package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// lldpMulticast returns the destination of every probe: the nearest-bridge
// group address 01:80:c2:00:00:0e (IEEE 802.1AB-2016 7.1), which bridges
// never forward.
func lldpMulticast() net.HardwareAddr { return net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e} }

// chassisPrefix starts the locally assigned chassis ID of our probes
// ("dpid:" + 16 hex digits, the form Ryu and os-ken use).
const chassisPrefix = "dpid:"

// ErrNotProbe is returned by ParseProbe for an LLDP frame that is not one of
// our probes (other chassis ID or port ID subtype).
var ErrNotProbe = errors.New("discovery: not a skyvisor LLDP probe")

// Probe is the content of one LLDP probe: the sending switch and port.
type Probe struct {
	DPID uint64 // datapath ID of the sending switch
	Port uint32 // OpenFlow port number the probe was sent from
	TTL  uint16 // LLDP time to live, seconds
}

// EncodeProbe returns the Ethernet frame of p: destination
// 01:80:c2:00:00:0e, source src (6 bytes; a locally administered address
// derived from the DPID and port if src is not 6 bytes), ethertype 0x88cc,
// and the LLDPDU with chassis ID TLV (subtype 7 locally assigned,
// "dpid:%016x"), port ID TLV (subtype 2 port component, 4-byte big-endian
// port number) and TTL TLV (IEEE 802.1AB-2016 8.5).
func EncodeProbe(p Probe, src net.HardwareAddr) ([]byte, error) {
	if len(src) != 6 {
		src = net.HardwareAddr{0x02, byte(p.DPID >> 8), byte(p.DPID), byte(p.Port >> 16), byte(p.Port >> 8), byte(p.Port)}
	}
	port := make([]byte, 4)
	binary.BigEndian.PutUint32(port, p.Port)
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: lldpMulticast(), EthernetType: layers.EthernetTypeLinkLayerDiscovery}
	lldp := &layers.LinkLayerDiscovery{
		ChassisID: layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeLocal, ID: []byte(fmt.Sprintf("%s%016x", chassisPrefix, p.DPID))},
		PortID:    layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypePortComp, ID: port},
		TTL:       p.TTL,
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, lldp); err != nil {
		return nil, fmt.Errorf("discovery: encode LLDP probe: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseProbe decodes an Ethernet frame carrying one of our LLDP probes. It
// returns ErrNotProbe (wrapped) for a valid LLDP frame from someone else and
// another error for a frame that is not LLDP or is malformed.
func ParseProbe(frame []byte) (Probe, error) {
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(frame, gopacket.NilDecodeFeedback); err != nil {
		return Probe{}, fmt.Errorf("discovery: decode Ethernet header: %w", err)
	}
	if eth.EthernetType != layers.EthernetTypeLinkLayerDiscovery {
		return Probe{}, fmt.Errorf("discovery: ethertype %#04x is not LLDP", uint16(eth.EthernetType))
	}
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	if el := pkt.ErrorLayer(); el != nil {
		return Probe{}, fmt.Errorf("discovery: decode LLDPDU: %w", el.Error())
	}
	lldp, ok := pkt.Layer(layers.LayerTypeLinkLayerDiscovery).(*layers.LinkLayerDiscovery)
	if !ok {
		return Probe{}, errors.New("discovery: decode LLDPDU: no LLDP layer")
	}
	id := string(lldp.ChassisID.ID)
	if lldp.ChassisID.Subtype != layers.LLDPChassisIDSubTypeLocal || !strings.HasPrefix(id, chassisPrefix) {
		return Probe{}, fmt.Errorf("%w: chassis ID subtype %d %q", ErrNotProbe, lldp.ChassisID.Subtype, id)
	}
	dpid, err := strconv.ParseUint(id[len(chassisPrefix):], 16, 64)
	if err != nil || len(id) != len(chassisPrefix)+16 {
		return Probe{}, fmt.Errorf("%w: chassis ID %q is not dpid:<16 hex digits>", ErrNotProbe, id)
	}
	if lldp.PortID.Subtype != layers.LLDPPortIDSubtypePortComp || len(lldp.PortID.ID) != 4 {
		return Probe{}, fmt.Errorf("%w: port ID subtype %d length %d", ErrNotProbe, lldp.PortID.Subtype, len(lldp.PortID.ID))
	}
	return Probe{DPID: dpid, Port: binary.BigEndian.Uint32(lldp.PortID.ID), TTL: lldp.TTL}, nil
}
