package ovsdb

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/ovsdb/vswitch"
)

func TestParseBFDStatus(t *testing.T) {
	// As ovs-vswitchd 3.1 writes it for a session whose peer went silent.
	col := map[string]string{"diagnostic": "Control Detection Time Expired", "flap_count": "3", "forwarding": "false",
		"remote_diagnostic": "No Diagnostic", "remote_state": "up", "state": "down"}
	s := ParseBFDStatus(col)
	want := BFDStatus{State: BFDStateDown, Diagnostic: "Control Detection Time Expired", RemoteState: BFDStateUp,
		RemoteDiagnostic: "No Diagnostic", FlapCount: 3}
	if s != want {
		t.Fatalf("ParseBFDStatus = %+v, want %+v", s, want)
	}
	if !s.Reported() || s.Up() {
		t.Fatalf("down session: Reported %v Up %v", s.Reported(), s.Up())
	}
	if got := s.String(); got != "down (Control Detection Time Expired), remote up" {
		t.Fatalf("String = %q", got)
	}
	up := ParseBFDStatus(map[string]string{"state": "up", "forwarding": "true", "remote_state": "up", "diagnostic": "No Diagnostic", "flap_count": "x"})
	if !up.Up() || up.FlapCount != 0 || up.String() != "up/forwarding" {
		t.Fatalf("up session: %+v %q", up, up.String())
	}
	// Up but not forwarding (remote signals concatenated path down).
	if (BFDStatus{State: BFDStateUp}).Up() {
		t.Fatal("up without forwarding reported Up")
	}
	var none BFDStatus
	if ParseBFDStatus(nil) != none || none.Reported() || none.String() != "unreported" {
		t.Fatal("empty column")
	}
}

func TestBFDConfigColumn(t *testing.T) {
	b := BFDConfig{MinRx: 500 * time.Millisecond, MinTx: 300 * time.Millisecond, Mult: 4}
	col := b.column()
	want := map[string]string{"enable": "true", "min_rx": "500", "min_tx": "300", "mult": "4"}
	if !reflect.DeepEqual(col, want) {
		t.Fatalf("column = %v", col)
	}
	if got := parseBFDConfig(col); got == nil || *got != b {
		t.Fatalf("parseBFDConfig = %+v", got)
	}
	if got := (BFDConfig{}).column(); !reflect.DeepEqual(got, map[string]string{"enable": "true"}) {
		t.Fatalf("defaults column = %v", got)
	}
	if parseBFDConfig(map[string]string{"enable": "false", "min_rx": "5"}) != nil || parseBFDConfig(nil) != nil {
		t.Fatal("disabled BFD read as enabled")
	}
	if len(bfdColumn(nil)) != 0 {
		t.Fatal("nil config: non-empty column")
	}
	for _, bad := range []BFDConfig{{MinRx: time.Microsecond}, {MinTx: -time.Millisecond}, {Mult: 256}, {Mult: -1}, {MinRx: time.Duration(1<<31) * time.Millisecond}} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "bfd") {
			t.Errorf("%+v: Validate = %v", bad, err)
		}
		p := TunnelPort{Name: "tun-a", Type: "vxlan", RemoteIP: "10.0.0.1", BFD: &bad}
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: TunnelPort.Validate accepted it", bad)
		}
	}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTunnelBFDColumns(t *testing.T) {
	b := &BFDConfig{MinRx: 500 * time.Millisecond, MinTx: 500 * time.Millisecond}
	p := TunnelPort{Name: "tun-s2", Type: "geneve", RemoteIP: "10.0.0.2", Key: "flow", OFPort: 102, ExternalIDs: map[string]string{}, BFD: b}
	i := &vswitch.Interface{UUID: "u", Name: p.Name, Type: p.Type, Options: p.options(), OfportRequest: ptr(102), BFD: b.column()}
	if got := tunnelFromIface(i); !reflect.DeepEqual(got, p) {
		t.Fatalf("tunnelFromIface = %+v", got)
	}
	if _, cols := tunnelIfaceColumns(i, p); len(cols) != 0 {
		t.Fatalf("equal: columns %v", cols)
	}
	// Changed interval: only bfd.
	q := p
	q.BFD = &BFDConfig{MinRx: 200 * time.Millisecond, MinTx: 500 * time.Millisecond}
	row, cols := tunnelIfaceColumns(i, q)
	if !reflect.DeepEqual(cols, []string{"bfd"}) || row.BFD["min_rx"] != "200" {
		t.Fatalf("changed bfd: columns %v row %v", cols, row.BFD)
	}
	// BFD off: the column is emptied.
	q.BFD = nil
	row, cols = tunnelIfaceColumns(i, q)
	if !reflect.DeepEqual(cols, []string{"bfd"}) || row.BFD == nil || len(row.BFD) != 0 {
		t.Fatalf("bfd off: columns %v row %v", cols, row.BFD)
	}
	// A port without BFD read back has BFD nil and needs no change.
	j := &vswitch.Interface{UUID: "v", Name: p.Name, Type: p.Type, Options: p.options(), OfportRequest: ptr(102)}
	if got := tunnelFromIface(j); got.BFD != nil {
		t.Fatalf("no bfd read as %+v", got.BFD)
	}
	if _, cols := tunnelIfaceColumns(j, q); len(cols) != 0 {
		t.Fatalf("no bfd wanted, none there: columns %v", cols)
	}
}

func TestDiffInterfacesBFD(t *testing.T) {
	a := Interface{Name: "tun-b", OFPort: 40000, BFD: BFDStatus{State: BFDStateUp, Forwarding: true}}
	a2 := a
	a2.BFD = BFDStatus{State: BFDStateDown, Diagnostic: "Control Detection Time Expired", FlapCount: 1}
	ev := diffInterfaces(map[string]Interface{"u": a}, map[string]Interface{"u": a2})
	if len(ev) != 1 || ev[0].Type != InterfaceUpdated || ev[0].Interface.BFD.State != BFDStateDown {
		t.Fatalf("bfd change gave %+v", ev)
	}
}
