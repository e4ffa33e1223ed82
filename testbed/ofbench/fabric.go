package ofbench

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
)

// Fabric makes the emulated switches play the edge bridges of a network
// hypervisor instead of plain switches (Config.Fabric): every packet-in
// looks like one of the hypervisor's own pipeline would send to its
// controller — from a given table, with an OXM metadata field naming the
// virtual context, from a host's physical port, with the frame's addresses
// as the pipeline rewrote them (for Skyvisor: docs/pipeline.md, "Packet-in
// and packet-out"; table 10, metadata tenant|vport|switch, source = the
// host's fabric MAC, destination = the other host's own MAC). Counting is
// as in the plain mode (flow-mods + packet-outs, answers identified by the
// frame's sequence number), except that flow-mods whose cookie matches
// IgnoreCookieMask/IgnoreCookieValue are not responses: they are the
// hypervisor's proactive pipeline entries (installed when a switch
// connects), not answers to packet-ins. They are counted apart
// (RunStats.IgnoredFlowMods).
//
// The JSON form (cmd/ofbench -fabric FILE) uses the field names below;
// MACs are written "02:00:00:00:00:01".
type Fabric struct {
	// Table is the table_id of every packet-in (OpenFlow 1.3.5 §7.4.1).
	Table uint8 `json:"table"`
	// Cookie is the cookie of every packet-in: the cookie of the flow
	// entry that sent it (e.g. the hypervisor's table-miss entry).
	Cookie uint64 `json:"cookie"`
	// IgnoreCookieMask and IgnoreCookieValue select the flow-mods that are
	// not counted as responses: cookie & mask == value. A zero mask
	// ignores nothing.
	IgnoreCookieMask  uint64 `json:"ignore_cookie_mask"`
	IgnoreCookieValue uint64 `json:"ignore_cookie_value"`
	// Switches are the emulated switches in order; Config.Switches must be
	// 0 or len(Switches).
	Switches []FabricSwitch `json:"switches"`
}

// FabricSwitch is one emulated edge bridge.
type FabricSwitch struct {
	// DPID is its datapath ID (features reply), not 0, unique.
	DPID uint64 `json:"dpid"`
	// Ports are the port numbers listed in its port description (1 to
	// 0xffffff00, unique, at most MaxPorts); every host's port must be
	// among them.
	Ports []uint32 `json:"ports"`
	// Hosts are the hosts behind it, at least 2. Packet-in k comes from
	// host k mod len(Hosts) and is addressed to host (k-1) mod len(Hosts),
	// the previous sender, as in the plain mode.
	Hosts []FabricHost `json:"hosts"`
}

// FabricHost is one host behind an emulated edge bridge.
type FabricHost struct {
	// Port is the physical in_port of its packet-ins.
	Port uint32 `json:"port"`
	// Metadata is the OXM_OF_METADATA value of its packet-ins.
	Metadata uint64 `json:"metadata"`
	// SrcMAC is the frame's source MAC when this host sends (for Skyvisor
	// the host's fabric MAC); DstMAC is the frame's destination MAC when
	// another host sends to it (the host's own MAC).
	SrcMAC string `json:"src_mac"`
	DstMAC string `json:"dst_mac"`
}

// maxFabricPort is OFPP_MAX (OpenFlow 1.3.5 §7.2.1).
const maxFabricPort = 0xffffff00

// LoadFabric reads a Fabric from a JSON file (unknown fields are an error)
// and validates it.
func LoadFabric(path string) (*Fabric, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ofbench: fabric: %w", err)
	}
	defer f.Close()
	fab, err := DecodeFabric(f)
	if err != nil {
		return nil, fmt.Errorf("ofbench: fabric %s: %w", path, err)
	}
	return fab, nil
}

// DecodeFabric decodes a Fabric from JSON (unknown fields are an error)
// and validates it.
func DecodeFabric(r io.Reader) (*Fabric, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var fab Fabric
	if err := dec.Decode(&fab); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := fab.Validate(); err != nil {
		return nil, err
	}
	return &fab, nil
}

// Validate reports every problem of f, naming the field
// ("switches[2].hosts[0].src_mac: ...").
func (f *Fabric) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(f.Switches) == 0 {
		bad("switches: none")
	}
	if len(f.Switches) > MaxSwitches {
		bad("switches: %d, at most %d", len(f.Switches), MaxSwitches)
	}
	dpids := map[uint64]int{}
	for i, sw := range f.Switches {
		p := fmt.Sprintf("switches[%d]", i)
		if sw.DPID == 0 {
			bad("%s.dpid: 0", p)
		} else if j, dup := dpids[sw.DPID]; dup {
			bad("%s.dpid: %#x also at switches[%d]", p, sw.DPID, j)
		} else {
			dpids[sw.DPID] = i
		}
		if len(sw.Ports) == 0 || len(sw.Ports) > MaxPorts {
			bad("%s.ports: %d ports, want 1..%d", p, len(sw.Ports), MaxPorts)
		}
		seen := map[uint32]bool{}
		for j, port := range sw.Ports {
			if port == 0 || port > maxFabricPort {
				bad("%s.ports[%d]: %d out of range 1..%d", p, j, port, uint32(maxFabricPort))
			}
			if seen[port] {
				bad("%s.ports[%d]: %d listed twice", p, j, port)
			}
			seen[port] = true
		}
		if len(sw.Hosts) < 2 || len(sw.Hosts) > MaxMACs {
			bad("%s.hosts: %d hosts, want 2..%d", p, len(sw.Hosts), MaxMACs)
		}
		for j, h := range sw.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", p, j)
			if !seen[h.Port] {
				bad("%s.port: %d is not among the switch's ports", hp, h.Port)
			}
			if _, err := parseMAC(h.SrcMAC); err != nil {
				bad("%s.src_mac: %v", hp, err)
			}
			if _, err := parseMAC(h.DstMAC); err != nil {
				bad("%s.dst_mac: %v", hp, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fabric: %w", err)
	}
	return nil
}

// parseMAC parses a 6-octet MAC address.
func parseMAC(s string) ([6]byte, error) {
	var out [6]byte
	m, err := net.ParseMAC(s)
	if err != nil {
		return out, err
	}
	if len(m) != 6 {
		return out, fmt.Errorf("%q: want 6 octets, got %d", s, len(m))
	}
	copy(out[:], m)
	return out, nil
}

// ignores reports whether a flow-mod with this cookie is not a response.
func (f *Fabric) ignores(cookie uint64) bool {
	return f.IgnoreCookieMask != 0 && cookie&f.IgnoreCookieMask == f.IgnoreCookieValue
}

// Fabric packet-in layout (OpenFlow 1.3.5 §7.4.1): header, buffer_id,
// total_len, reason, table_id, cookie, match (OXM in_port + OXM metadata:
// 4 + 8 + 12 = 24 bytes, no padding), 2 pad bytes, the frame.
const (
	fabPinMatchLen   = 4 + 8 + 12
	fabPinMetaOff    = 24 + 4 + 8 + 4 // value of the OXM metadata TLV
	fabPinDataOff    = 24 + fabPinMatchLen + 2
	fabPacketInLen   = fabPinDataOff + frameLen
	oxmMetadata      = 0x80000408 // OXM_OF_METADATA, 8 bytes (class 0x8000, field 2)
	flowModCookieOff = 8          // ofp_flow_mod.cookie (§7.3.4.1)
)

// fabricHost is a FabricHost with its MACs parsed.
type fabricHost struct {
	port     uint32
	metadata uint64
	src, dst [6]byte
}

// fabricSwitch is the per-switch state of the fabric mode.
type fabricSwitch struct {
	table  *Fabric
	ports  []uint32
	hosts  []fabricHost
	cookie uint64
}

// newFabricSwitch prepares switch i of f (validated).
func newFabricSwitch(f *Fabric, i int) *fabricSwitch {
	sw := f.Switches[i]
	fs := &fabricSwitch{table: f, ports: slices.Clone(sw.Ports), cookie: f.Cookie}
	for _, h := range sw.Hosts {
		src, _ := parseMAC(h.SrcMAC)
		dst, _ := parseMAC(h.DstMAC)
		fs.hosts = append(fs.hosts, fabricHost{port: h.Port, metadata: h.Metadata, src: src, dst: dst})
	}
	return fs
}

// fabricPacketInTemplate returns the fabric packet-in of switch sw with
// the fields that never change; fill patches xid, buffer_id, in_port,
// metadata, the two MACs and the sequence number.
func fabricPacketInTemplate(sw int, f *Fabric) []byte {
	plain := packetInTemplate(sw)
	b := make([]byte, fabPacketInLen)
	copy(b, plain[:24]) // header .. cookie
	binary.BigEndian.PutUint16(b[2:], fabPacketInLen)
	b[15] = f.Table
	binary.BigEndian.PutUint64(b[16:], f.Cookie)
	binary.BigEndian.PutUint16(b[24:], 1) // OFPMT_OXM
	binary.BigEndian.PutUint16(b[26:], fabPinMatchLen)
	binary.BigEndian.PutUint32(b[28:], 0x80000004) // OXM_OF_IN_PORT
	binary.BigEndian.PutUint32(b[36:], oxmMetadata)
	copy(b[fabPinDataOff:], plain[pinDataOff:])
	return b
}

// fillFabric writes the variable fields of packet-in m (a copy of the
// fabric template) for sender host src and receiver host dst.
func (fs *fabricSwitch) fillFabric(m []byte, src, dst int) {
	s, d := &fs.hosts[src], &fs.hosts[dst]
	binary.BigEndian.PutUint32(m[pinInPortOff:], s.port)
	binary.BigEndian.PutUint64(m[fabPinMetaOff:], s.metadata)
	f := m[fabPinDataOff:]
	copy(f[frameDstOff:], d.dst[:])
	copy(f[frameSrcOff:], s.src[:])
}

// isIgnoredFlowMod reports whether flow-mod m (whole message) carries an
// ignored cookie.
func (fs *fabricSwitch) isIgnoredFlowMod(m []byte) bool {
	if len(m) < flowModCookieOff+8 {
		return false
	}
	return fs.table.ignores(binary.BigEndian.Uint64(m[flowModCookieOff:]))
}

// FabricPacketIn returns the packet-in an emulated switch of fabric mode
// sends as its k-th request (k from 0) with sequence number seq: host
// k mod len(Hosts) to host (k-1) mod len(Hosts) of switch i. It lets
// tests check the encoding against a controller's decoder. f must be
// valid.
func FabricPacketIn(f *Fabric, i int, k int, seq uint32) []byte {
	fs := newFabricSwitch(f, i)
	m := fabricPacketInTemplate(i, f)
	binary.BigEndian.PutUint32(m[4:], seq)
	src := k % len(fs.hosts)
	dst := (k - 1 + len(fs.hosts)) % len(fs.hosts)
	fs.fillFabric(m, src, dst)
	binary.BigEndian.PutUint32(m[fabPinDataOff+frameSeqOff:], seq)
	return m
}
