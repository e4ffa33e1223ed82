package ovsdb

import (
	"reflect"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/ovsdb/vswitch"
)

func TestTunnelPortValidate(t *testing.T) {
	good := []TunnelPort{
		{Name: "tun-s2", Type: "vxlan", RemoteIP: "172.31.0.2", Key: "16777215", OFPort: 102},
		{Name: "tun-s3", Type: "gre", RemoteIP: "flow", Key: "4294967295"},
		{Name: "tun-s4", Type: "geneve", RemoteIP: "fd00::4", Key: "flow", OFPort: 65280},
		{Name: "t", Type: "vxlan", RemoteIP: "10.0.0.1", Key: "0"},
	}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	base := TunnelPort{Name: "tun-s2", Type: "vxlan", RemoteIP: "172.31.0.2"}
	cases := []struct {
		mod  func(*TunnelPort)
		want string
	}{
		{func(p *TunnelPort) { p.Name = "" }, "ovsdb: tunnel port name: empty"},
		{func(p *TunnelPort) { p.Name = "tun-0123456789ab" }, "longer than 15 bytes"},
		{func(p *TunnelPort) { p.Type = "stt" }, `ovsdb: tunnel port "tun-s2": type "stt": want vxlan, gre or geneve`},
		{func(p *TunnelPort) { p.RemoteIP = "" }, `remote IP "": want an IP address or "flow"`},
		{func(p *TunnelPort) { p.RemoteIP = "site2" }, `remote IP "site2"`},
		{func(p *TunnelPort) { p.RemoteIP = "0.0.0.0" }, `remote IP "0.0.0.0"`},
		{func(p *TunnelPort) { p.RemoteIP = "fe80::1%eth0" }, `remote IP "fe80::1%eth0"`},
		{func(p *TunnelPort) { p.Key = "16777216" }, `key "16777216": want a decimal number below 2^24`},
		{func(p *TunnelPort) { p.Type = "gre"; p.Key = "4294967296" }, `below 2^32`},
		{func(p *TunnelPort) { p.Key = "-1" }, `key "-1"`},
		{func(p *TunnelPort) { p.Key = "0x10" }, `key "0x10"`},
		{func(p *TunnelPort) { p.Key = "010" }, `key "010"`},
		{func(p *TunnelPort) { p.OFPort = -1 }, `OpenFlow port -1`},
		{func(p *TunnelPort) { p.OFPort = 0xff01 }, `OpenFlow port 65281: want 0 (any) or 1-65280`},
		{func(p *TunnelPort) { p.ExternalIDs = map[string]string{"": "x"} }, `external_ids: empty key`},
	}
	for _, c := range cases {
		p := base
		c.mod(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Validate() = %v, want %q", p, err, c.want)
		}
	}
}

func TestTunnelRoundTrip(t *testing.T) {
	p := TunnelPort{Name: "tun-s2", Type: "gre", RemoteIP: "flow", Key: "7", OFPort: 102, ExternalIDs: map[string]string{"peer": "s2"}}
	i := &vswitch.Interface{UUID: "u", Name: p.Name, Type: p.Type, Options: p.options(), OfportRequest: ptr(102), ExternalIDs: p.ExternalIDs}
	if got := tunnelFromIface(i); !reflect.DeepEqual(got, p) {
		t.Fatalf("tunnelFromIface = %+v", got)
	}
	if _, cols := tunnelIfaceColumns(i, p); len(cols) != 0 {
		t.Fatalf("equal tunnel: columns %v", cols)
	}
	// No key: option absent; no external ids: empty map, not nil.
	q := TunnelPort{Name: "tun-s3", Type: "vxlan", RemoteIP: "10.0.0.3", ExternalIDs: map[string]string{}}
	if _, ok := q.options()["key"]; ok {
		t.Fatal("empty key written as option")
	}
	j := &vswitch.Interface{UUID: "v", Name: q.Name, Type: q.Type, Options: q.options()}
	if got := tunnelFromIface(j); !reflect.DeepEqual(got, q) {
		t.Fatalf("tunnelFromIface = %+v", got)
	}
	q.ExternalIDs = nil
	if _, cols := tunnelIfaceColumns(j, q); len(cols) != 0 {
		t.Fatalf("nil vs empty external_ids: columns %v", cols)
	}
}

func TestTunnelIfaceColumns(t *testing.T) {
	cur := &vswitch.Interface{UUID: "u", Name: "tun-s2", Type: "vxlan", Options: map[string]string{"remote_ip": "10.0.0.2", "key": "5"},
		OfportRequest: ptr(102), ExternalIDs: map[string]string{"a": "b"}}
	p := TunnelPort{Name: "tun-s2", Type: "geneve", RemoteIP: "10.0.0.2", Key: "6", OFPort: 0}
	row, cols := tunnelIfaceColumns(cur, p)
	if !reflect.DeepEqual(cols, []string{"type", "options", "ofport_request", "external_ids"}) {
		t.Fatalf("columns = %v", cols)
	}
	if row.UUID != "u" || row.Type != "geneve" || row.Options["key"] != "6" || row.OfportRequest != nil || len(row.ExternalIDs) != 0 {
		t.Fatalf("row = %+v", row)
	}
	// Only the key changes.
	p = TunnelPort{Name: "tun-s2", Type: "vxlan", RemoteIP: "10.0.0.2", Key: "flow", OFPort: 102, ExternalIDs: map[string]string{"a": "b"}}
	if _, cols := tunnelIfaceColumns(cur, p); !reflect.DeepEqual(cols, []string{"options"}) {
		t.Fatalf("columns = %v", cols)
	}
}
