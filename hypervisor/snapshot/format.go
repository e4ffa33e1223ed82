package snapshot

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// FormatVersion is the "version" field written in every snapshot document;
// Decode refuses other versions rather than misread them.
const FormatVersion = 1

// Snapshot is the network state of one or more switches at one instant
// (the paper, section "network snapshot and migration": flow table with
// counters and timers, switch configuration and queues). Its JSON form is
// documented in docs/snapshot.md.
type Snapshot struct {
	Version  int           `json:"version"`          // FormatVersion
	ID       string        `json:"id"`               // see NewID
	Time     time.Time     `json:"time"`             // UTC time the capture started
	Tenant   string        `json:"tenant,omitempty"` // tenant whose switches these are, "" for a single switch
	Switches []SwitchState `json:"switches"`         // one per bridge, in the order captured
}

// SwitchState is one switch: its OVSDB configuration and its flow table.
type SwitchState struct {
	// DPID is the OpenFlow datapath ID, 16 lower-case hex digits.
	DPID   string       `json:"dpid"`
	Bridge BridgeConfig `json:"bridge"`
	Flows  []Flow       `json:"flows"`
}

// BridgeConfig is the configuration of one bridge as the Open_vSwitch
// database holds it (ovs-vswitchd.conf.db(5), tables Bridge, Port,
// Interface, Controller, QoS, Queue).
type BridgeConfig struct {
	Name         string             `json:"name"`
	DatapathID   string             `json:"datapath_id"`   // 16 hex digits (datapath_id column)
	DatapathType string             `json:"datapath_type"` // "netdev", "system" or ""
	Protocols    []string           `json:"protocols"`     // sorted, e.g. ["OpenFlow13"]
	FailMode     string             `json:"fail_mode"`     // "secure", "standalone" or ""
	OtherConfig  map[string]string  `json:"other_config,omitempty"`
	ExternalIDs  map[string]string  `json:"external_ids,omitempty"`
	Controllers  []ControllerConfig `json:"controllers,omitempty"` // sorted by target
	Ports        []PortConfig       `json:"ports"`                 // sorted by name, incl. the bridge's internal port
}

// ControllerConfig is one row of the Controller table.
type ControllerConfig struct {
	Target         string `json:"target"`                    // e.g. "tcp:127.0.0.1:6653", "unix:sk.sock"
	ConnectionMode string `json:"connection_mode,omitempty"` // "out-of-band", "in-band" or "" (OVS default, in-band)
}

// PortConfig is one row of the Port table with its interfaces and QoS.
type PortConfig struct {
	Name        string            `json:"name"`
	ExternalIDs map[string]string `json:"external_ids,omitempty"`
	OtherConfig map[string]string `json:"other_config,omitempty"`
	Tag         *int              `json:"tag,omitempty"` // access VLAN, nil = none
	QoS         *QoSConfig        `json:"qos,omitempty"`
	Interfaces  []InterfaceConfig `json:"interfaces"` // sorted by name
}

// InterfaceConfig is one row of the Interface table.
type InterfaceConfig struct {
	Name        string            `json:"name"`
	Type        string            `json:"type,omitempty"` // "" (system device), "internal", "vxlan", ...
	Options     map[string]string `json:"options,omitempty"`
	OFPort      int               `json:"ofport"`                // OpenFlow port number at capture (restored as ofport_request)
	MAC         string            `json:"mac,omitempty"`         // mac_in_use at capture (informational)
	MACRequest  string            `json:"mac_request,omitempty"` // the "mac" column (restored)
	MTURequest  *int              `json:"mtu_request,omitempty"`
	ExternalIDs map[string]string `json:"external_ids,omitempty"`
	OtherConfig map[string]string `json:"other_config,omitempty"`
}

// QoSConfig is one row of the QoS table with its queues, keyed by queue
// number (the OpenFlow queue_id of set_queue / enqueue).
type QoSConfig struct {
	Type        string              `json:"type"` // e.g. "linux-htb", "egress-policer"
	OtherConfig map[string]string   `json:"other_config,omitempty"`
	ExternalIDs map[string]string   `json:"external_ids,omitempty"`
	Queues      map[int]QueueConfig `json:"queues,omitempty"`
}

// QueueConfig is one row of the Queue table.
type QueueConfig struct {
	DSCP        *int              `json:"dscp,omitempty"`
	OtherConfig map[string]string `json:"other_config,omitempty"` // min-rate, max-rate, burst, priority
	ExternalIDs map[string]string `json:"external_ids,omitempty"`
}

// Flow is one flow entry as an OFPMP_FLOW reply reports it (OpenFlow 1.3.5
// §7.3.5.2). Match and Instructions hold the wire encoding (ofp_match with
// its padding, then the instruction list), base64 in JSON, so experimenter
// (Nicira) actions are kept and re-sent byte-exactly; Text is a readable
// rendering that Decode ignores.
type Flow struct {
	Table        uint8  `json:"table"`
	Priority     uint16 `json:"priority"`
	Cookie       uint64 `json:"cookie"`
	IdleTimeout  uint16 `json:"idle_timeout"` // seconds, 0 = none
	HardTimeout  uint16 `json:"hard_timeout"` // seconds, 0 = none
	Flags        uint16 `json:"flags"`        // OFPFF_*
	DurationSec  uint32 `json:"duration_sec"`
	DurationNSec uint32 `json:"duration_nsec"`
	PacketCount  uint64 `json:"packet_count"`
	ByteCount    uint64 `json:"byte_count"`
	Match        []byte `json:"match"`
	Instructions []byte `json:"instructions"`
	Text         string `json:"text,omitempty"`
}

// FlowFromStats encodes one flow-stats entry. It fails only if an
// instruction cannot be encoded.
func FlowFromStats(fs *ofwire.FlowStats) (Flow, error) {
	m := fs.Match
	if m.Type == ofp.MatchTypeStandard {
		m.Type = ofp.MatchTypeXM
	}
	ins, err := ofwire.AppendInstructions(nil, fs.Instructions)
	if err != nil {
		return Flow{}, fmt.Errorf("encode instructions: %w", err)
	}
	e := pipeline.FromFlowStats(fs)
	return Flow{
		Table: uint8(fs.Table), Priority: fs.Priority, Cookie: fs.Cookie,
		IdleTimeout: fs.IdleTimeout, HardTimeout: fs.HardTimeout, Flags: uint16(fs.Flags),
		DurationSec: fs.DurationSec, DurationNSec: fs.DurationNSec,
		PacketCount: fs.PacketCount, ByteCount: fs.ByteCount,
		Match: ofwire.AppendMatch(nil, &m), Instructions: ins, Text: e.String(),
	}, nil
}

// FlowFromEntry encodes a flow entry with zero counters and duration
// (for snapshots built by hand, e.g. in tests).
func FlowFromEntry(e pipeline.Entry) (Flow, error) {
	return FlowFromStats(&ofwire.FlowStats{Table: ofp.Table(e.Table), Priority: e.Priority, Cookie: e.Cookie,
		IdleTimeout: e.IdleTimeout, HardTimeout: e.HardTimeout, Flags: e.Flags,
		Match: ofp.Match{Type: ofp.MatchTypeXM, Fields: e.Match}, Instructions: e.Instructions})
}

// Entry decodes the flow into a pipeline.Entry (what a FlowMod ADD
// installs). Errors name the part that does not decode.
func (f *Flow) Entry() (pipeline.Entry, error) {
	m, n, err := ofwire.DecodeMatch(f.Match, nil)
	if err != nil {
		return pipeline.Entry{}, fmt.Errorf("match: %w", err)
	}
	if n != len(f.Match) {
		return pipeline.Entry{}, fmt.Errorf("match: %d trailing bytes", len(f.Match)-n)
	}
	ins, err := ofwire.DecodeInstructions(f.Instructions)
	if err != nil {
		return pipeline.Entry{}, fmt.Errorf("instructions: %w", err)
	}
	return pipeline.Entry{
		Table: f.Table, Priority: f.Priority, Match: m.Fields, Instructions: ins, Cookie: f.Cookie,
		IdleTimeout: f.IdleTimeout, HardTimeout: f.HardTimeout, Flags: ofp.FlowModFlag(f.Flags),
	}, nil
}

// Name identifies the flow in errors: table, priority, cookie and text.
func (f *Flow) Name() string {
	if f.Text != "" {
		return f.Text
	}
	return fmt.Sprintf("cookie=%#x table=%d priority=%d", f.Cookie, f.Table, f.Priority)
}

// idPattern is the shape NewID produces.
var idPattern = regexp.MustCompile(`^snap-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// NewID returns a snapshot ID "snap-YYYYMMDDTHHMMSSZ-<8 hex>" for time t
// (UTC, second resolution) with 32 random bits, so IDs sort by time and two
// snapshots taken in the same second do not collide.
func NewID(t time.Time) string {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic(fmt.Sprintf("snapshot: crypto/rand: %v", err)) // crypto/rand.Read does not fail on Linux
	}
	return "snap-" + t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:])
}

// ValidID reports whether id has the shape NewID produces.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Encode returns the JSON document of s (indented, stable field order).
func Encode(s *Snapshot) ([]byte, error) {
	if s.Version != FormatVersion {
		return nil, fmt.Errorf("snapshot %s: version %d, want %d", s.ID, s.Version, FormatVersion)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "->" readable in flow texts
	enc.SetIndent("", " ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("snapshot %s: encode: %w", s.ID, err)
	}
	return buf.Bytes(), nil
}

// Decode parses a snapshot document, checks its version and that every
// flow decodes; errors name the switch and flow at fault.
func Decode(b []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("snapshot: decode: %w", err)
	}
	if s.Version != FormatVersion {
		return nil, fmt.Errorf("snapshot %s: version %d not supported (want %d)", s.ID, s.Version, FormatVersion)
	}
	for i := range s.Switches {
		sw := &s.Switches[i]
		if sw.Bridge.Name == "" {
			return nil, fmt.Errorf("snapshot %s: switch %d (dpid %s): bridge name empty", s.ID, i, sw.DPID)
		}
		for j := range sw.Flows {
			if _, err := sw.Flows[j].Entry(); err != nil {
				return nil, fmt.Errorf("snapshot %s: switch %s: flow %d (%s): %w", s.ID, sw.Bridge.Name, j, sw.Flows[j].Name(), err)
			}
		}
	}
	return &s, nil
}
