package ovsdb

import (
	"fmt"
	"strconv"
	"time"
)

// BFD session states reported in Interface bfd_status:state (RFC 5880
// section 4.1, "Sta"; ovs-vswitchd.conf.db(5), "BFD Status").
const (
	BFDStateAdminDown = "admin_down"
	BFDStateDown      = "down"
	BFDStateInit      = "init"
	BFDStateUp        = "up"
)

// BFDConfig is the Bidirectional Forwarding Detection configuration of an
// interface (Interface bfd column, RFC 5880/5881; ovs-vswitchd.conf.db(5),
// "BFD Configuration"). ovs-vswitchd runs the session itself: on a tunnel
// port the control packets (UDP 3784, 169.254.1.1 -> 169.254.1.0 by
// default) travel inside the tunnel with tunnel key 0 and are consumed by
// the receiving vswitchd before the OpenFlow tables, so both ends of a
// tunnel need BFD enabled. A session is declared down when Mult
// consecutive control packets fail to arrive: after Mult x the negotiated
// receive interval (the larger of the local MinRx and the remote MinTx).
// While a session is not up, OVS sends at most one packet per second
// (RFC 5880 section 6.8.3), so bringing a session up takes 1-3 s.
//
// Zero fields are not written and OVS uses its defaults (min_rx 1000 ms,
// min_tx 100 ms, mult 3). Durations are written in whole milliseconds.
type BFDConfig struct {
	// MinRx is bfd:min_rx, the shortest interval at which this end
	// offers to receive control packets; at least 1 ms.
	MinRx time.Duration
	// MinTx is bfd:min_tx, the shortest interval at which this end is
	// willing to send them; at least 1 ms.
	MinTx time.Duration
	// Mult is bfd:mult, the detection multiplier, 1-255.
	Mult int
}

// Validate checks the fields: durations 0 or at least 1 ms and at most
// 2^31-1 ms, Mult 0 or 1-255.
func (b BFDConfig) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"min_rx", b.MinRx}, {"min_tx", b.MinTx}} {
		if d.v != 0 && (d.v < time.Millisecond || d.v.Milliseconds() > 1<<31-1) {
			return fmt.Errorf("ovsdb: bfd %s %v: want 0 (default) or 1 ms to 2^31-1 ms", d.name, d.v)
		}
	}
	if b.Mult < 0 || b.Mult > 255 {
		return fmt.Errorf("ovsdb: bfd mult %d: want 0 (default) or 1-255", b.Mult)
	}
	return nil
}

// column returns the bfd column value for b: enable=true and the fields
// that are set.
func (b BFDConfig) column() map[string]string {
	m := map[string]string{"enable": "true"}
	if b.MinRx > 0 {
		m["min_rx"] = strconv.FormatInt(b.MinRx.Milliseconds(), 10)
	}
	if b.MinTx > 0 {
		m["min_tx"] = strconv.FormatInt(b.MinTx.Milliseconds(), 10)
	}
	if b.Mult > 0 {
		m["mult"] = strconv.Itoa(b.Mult)
	}
	return m
}

// bfdColumn returns the bfd column for an optional configuration (nil:
// empty, BFD off).
func bfdColumn(b *BFDConfig) map[string]string {
	if b == nil {
		return map[string]string{}
	}
	return b.column()
}

// parseBFDConfig reads a bfd column back; nil unless enable=true.
// Malformed numbers read as 0 (then the column differs from any
// BFDConfig's and EnsureTunnelPort rewrites it).
func parseBFDConfig(col map[string]string) *BFDConfig {
	if col["enable"] != "true" {
		return nil
	}
	ms := func(k string) time.Duration {
		n, err := strconv.ParseInt(col[k], 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return time.Duration(n) * time.Millisecond
	}
	b := &BFDConfig{MinRx: ms("min_rx"), MinTx: ms("min_tx")}
	if n, err := strconv.Atoi(col["mult"]); err == nil && n > 0 {
		b.Mult = n
	}
	return b
}

// BFDStatus is what ovs-vswitchd reports of an interface's BFD session
// (Interface bfd_status column; ovs-vswitchd.conf.db(5), "BFD Status").
// vswitchd rewrites the column only when the session changes, and clears
// it when BFD is disabled. The zero value (State "") means no BFD status
// is reported: BFD off, or vswitchd has not written it yet.
type BFDStatus struct {
	// State is the local session state: BFDStateAdminDown, BFDStateDown,
	// BFDStateInit, BFDStateUp, or "" (not reported).
	State string
	// Forwarding is bfd_status:forwarding: the session believes the
	// interface can forward (local state up and the remote end signals no
	// problem such as a concatenated path down).
	Forwarding bool
	// Diagnostic and RemoteDiagnostic are the local and remote reasons
	// for the last state change, as text (RFC 5880 section 4.1, "Diag"),
	// e.g. "Control Detection Time Expired"; "" or "No Diagnostic" when
	// none.
	Diagnostic, RemoteDiagnostic string
	// RemoteState is the remote end's session state as it last signalled
	// it (same values as State).
	RemoteState string
	// FlapCount counts the changes of Forwarding since vswitchd started
	// the session.
	FlapCount uint64
}

// Reported reports whether vswitchd reports a BFD session (State set).
func (s BFDStatus) Reported() bool { return s.State != "" }

// Up reports whether the session is up and forwarding.
func (s BFDStatus) Up() bool { return s.State == BFDStateUp && s.Forwarding }

// ParseBFDStatus reads an Interface bfd_status column. Missing or
// malformed keys leave their field at its zero value.
func ParseBFDStatus(col map[string]string) BFDStatus {
	s := BFDStatus{
		State:            col["state"],
		Forwarding:       col["forwarding"] == "true",
		Diagnostic:       col["diagnostic"],
		RemoteState:      col["remote_state"],
		RemoteDiagnostic: col["remote_diagnostic"],
	}
	if n, err := strconv.ParseUint(col["flap_count"], 10, 64); err == nil {
		s.FlapCount = n
	}
	return s
}

// String formats s for logs, e.g. "up/forwarding" or
// "down (Control Detection Time Expired), remote down".
func (s BFDStatus) String() string {
	if !s.Reported() {
		return "unreported"
	}
	out := s.State
	if s.Forwarding {
		out += "/forwarding"
	}
	if s.Diagnostic != "" && s.Diagnostic != "No Diagnostic" {
		out += " (" + s.Diagnostic + ")"
	}
	if s.RemoteState != "" && s.RemoteState != s.State {
		out += ", remote " + s.RemoteState
	}
	return out
}
