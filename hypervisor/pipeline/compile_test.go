package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/tunnels"
)

func mustCompile(t *testing.T, m *Model) map[DPID][]Entry {
	t.Helper()
	out, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// find returns the entries of es in table with priority whose normalized
// match equals match (any order).
func find(t *testing.T, es []Entry, table uint8, prio uint16, match ...ofp.XM) Entry {
	t.Helper()
	probe := Entry{Table: table, Priority: prio, Match: match}
	for _, e := range es {
		if e.Key() == probe.Key() {
			return e
		}
	}
	var all []string
	for _, e := range es {
		if e.Table == table {
			all = append(all, e.String())
		}
	}
	t.Fatalf("no entry table=%d priority=%d match=%v; table has:\n%s", table, prio, NormalizeMatch(match), strings.Join(all, "\n"))
	return Entry{}
}

func absent(t *testing.T, es []Entry, table uint8, prio uint16, match ...ofp.XM) {
	t.Helper()
	probe := Entry{Table: table, Priority: prio, Match: match}
	for _, e := range es {
		if e.Key() == probe.Key() {
			t.Fatalf("unexpected entry %s", e.String())
		}
	}
}

func sameInstructions(t *testing.T, e Entry, want ...ofp.Instruction) {
	t.Helper()
	w := Entry{Table: e.Table, Priority: e.Priority, Match: e.Match, Cookie: e.Cookie, Instructions: want}
	if !e.Equal(&w) {
		t.Errorf("entry %s\nwant instructions of %s", e.String(), w.String())
	}
}

func mac(s string) addr.MAC { return addr.MustParseMAC(s) }

func TestCompileEdgeClassify(t *testing.T) {
	out := mustCompile(t, testModel())
	es := out[e1]
	lldp := find(t, es, 0, PrioLLDP, EthType(0x88cc))
	sameInstructions(t, lldp, Apply(Output(uint32(ofp.PortController))))
	if lldp.Cookie != 0x5359000000000000 {
		t.Errorf("LLDP cookie %#x", lldp.Cookie)
	}
	find(t, es, 0, PrioLinkLocalDrop, EthDstMasked(mac("01:80:c2:00:00:00"), mac("ff:ff:ff:ff:ff:f0")))
	// t1/h1 (port 1) and t2/h1 (port 3) have the same own MAC but get
	// different fabric MACs and metadata.
	own := mac("00:00:00:00:00:01")
	u1 := find(t, es, 0, PrioHostUnicast, InPort(1), EthSrc(own))
	sameInstructions(t, u1, Apply(SetField(EthSrc(mac("02:00:00:00:00:01")))),
		WriteMetadata(MetadataValue(t1ID, 1, 1, false), ^uint64(0)), Goto(5))
	if u1.Cookie != InfraCookie(t1ID, 1) || u1.Cookie != 0x5359020000000001 {
		t.Errorf("cookie %#x", u1.Cookie)
	}
	g1e := find(t, es, 0, PrioHostGroup, InPort(1), EthSrc(own), EthDstMasked(mac("01:00:00:00:00:00"), mac("01:00:00:00:00:00")))
	sameInstructions(t, g1e, Apply(SetField(EthSrc(mac("02:00:00:00:00:01")))),
		WriteMetadata(MetadataValue(t1ID, 1, 1, true), ^uint64(0)), Goto(5))
	u2 := find(t, es, 0, PrioHostUnicast, InPort(3), EthSrc(own))
	// t2's ports: b/1 (h1) = 1, b/2 (h2) = 2, b/10 = 3, c/1 (h3) = 4, c/10 = 5.
	sameInstructions(t, u2, Apply(SetField(EthSrc(mac("02:01:00:00:00:01")))),
		WriteMetadata(MetadataValue(t2ID, 1, 1, false), ^uint64(0)), Goto(5))
	for _, p := range []uint32{1, 2, 3} {
		d := find(t, es, 0, PrioHostDrop, InPort(p))
		if len(d.Instructions) != 0 {
			t.Errorf("drop entry has instructions: %s", d.String())
		}
	}
	// Uplink: only hosts bound here, group mark masked.
	find(t, es, 0, PrioFromUplink, InPort(uplink), EthDstMasked(mac("02:00:00:00:00:02"), addr.HostMask))
	find(t, es, 0, PrioFromUplink, InPort(uplink), EthDstMasked(mac("02:01:00:00:00:01"), addr.HostMask))
	absent(t, es, 0, PrioFromUplink, InPort(uplink), EthDstMasked(mac("02:00:00:00:00:03"), addr.HostMask))
	absent(t, es, 0, PrioFromUplink, InPort(uplink), EthDstMasked(mac("02:01:00:00:00:02"), addr.HostMask))
	miss := find(t, es, 0, PrioMiss)
	if len(miss.Instructions) != 0 {
		t.Errorf("table 0 miss is not a drop: %s", miss.String())
	}
}

func TestCompileEdgeTenantAndEgressTables(t *testing.T) {
	out := mustCompile(t, testModel())
	es := out[e1]
	for tt := uint8(10); tt < 14; tt++ {
		sameInstructions(t, find(t, es, tt, PrioMiss), Apply(Output(uint32(ofp.PortController))))
	}
	// Table 5: own MACs of the tenant's hosts (identical MACs, separate
	// entries per tenant), group destinations; anything else dropped.
	sameInstructions(t, find(t, es, 5, PrioHost, EthDstMasked(mac("01:00:00:00:00:00"), mac("01:00:00:00:00:00"))), Goto(10))
	for _, id := range []addr.TenantID{t1ID, t2ID} {
		for _, own := range []string{"00:00:00:00:00:01", "00:00:00:00:00:02", "00:00:00:00:00:03"} {
			sameInstructions(t, find(t, es, 5, PrioHost, Metadata(uint64(id)<<48, MetaTenantMask), EthDst(mac(own))), Goto(10))
		}
	}
	absent(t, es, 5, PrioHost, Metadata(uint64(t1ID)<<48, MetaTenantMask), EthDst(mac("00:00:00:00:00:04")))
	if len(find(t, es, 5, PrioMiss).Instructions) != 0 {
		t.Error("table 5 miss is not a drop")
	}
	sameInstructions(t, find(t, es, 20, PrioMiss), Apply(Output(uplink)))
	sameInstructions(t, find(t, es, 20, PrioHost, EthDstMasked(mac("02:00:00:00:00:01"), addr.HostMask)), Goto(30))
	absent(t, es, 20, PrioHost, EthDstMasked(mac("02:00:00:00:00:03"), addr.HostMask))
	// Table 30: every host of both tenants (both have a host on e1),
	// bound here or not; recording the source tenant.
	n30 := 0
	for _, e := range es {
		if e.Table == 30 && e.Priority == PrioHost {
			n30++
		}
	}
	if n30 != 6 {
		t.Errorf("table 30 has %d host entries on e1, want 6", n30)
	}
	sameInstructions(t, find(t, es, 30, PrioHost, EthSrc(mac("02:01:00:00:00:03"))),
		Apply(SetField(EthSrc(mac("00:00:00:00:00:03")))), WriteMetadata(uint64(t2ID)<<48, MetaTenantMask), Goto(31))
	// Table 31: delivery only for the destination's own tenant.
	md := Metadata(uint64(t2ID)<<48, MetaTenantMask)
	sameInstructions(t, find(t, es, 31, PrioHost, md, EthDst(mac("02:01:00:00:00:01"))),
		Apply(SetField(EthDst(mac("00:00:00:00:00:01"))), Output(3)))
	sameInstructions(t, find(t, es, 31, PrioHost, md, EthDst(mac("02:01:80:00:00:01"))),
		Apply(SetField(EthDst(addr.Broadcast)), Output(3)))
	// e3 (gcp) holds only t1/h3: table 30 has t1's three hosts only.
	n30 = 0
	for _, e := range out[e3] {
		if e.Table == 30 && e.Priority == PrioHost {
			n30++
			if tn, _ := addr.Split(addr.MAC(e.Match[0].Value)); tn != t1ID {
				t.Errorf("e3 restores a foreign source: %s", e.String())
			}
		}
	}
	if n30 != 3 {
		t.Errorf("table 30 on e3 has %d host entries, want 3", n30)
	}
}

// TestCompileIsolationInvariants checks, on every edge bridge, the two
// facts isolation rests on: a host port only admits the bound host's own
// source MAC, and table 31 delivers a destination only when the recorded
// source tenant equals the destination's tenant.
func TestCompileIsolationInvariants(t *testing.T) {
	m := testModel()
	out := mustCompile(t, m)
	views := map[string]*View{}
	for _, tn := range m.Tenants {
		v, err := NewView(tn)
		if err != nil {
			t.Fatal(err)
		}
		views[v.Name] = v
	}
	for _, b := range m.Bindings {
		h, _ := views[b.Tenant].HostByName(b.Host)
		for _, e := range out[b.Bridge] {
			if e.Table != 0 || len(e.Instructions) == 0 {
				continue
			}
			var inPort uint32
			var src *addr.MAC
			for _, f := range e.Match {
				switch f.Type {
				case ofp.XMTypeInPort:
					inPort = uint32(f.Value[0])<<24 | uint32(f.Value[1])<<16 | uint32(f.Value[2])<<8 | uint32(f.Value[3])
				case ofp.XMTypeEthSrc:
					m := addr.MAC(f.Value)
					src = &m
				}
			}
			if inPort == b.Port && (src == nil || *src != h.MAC) {
				t.Errorf("%s/%s: port %d admits %s", b.Tenant, b.Host, b.Port, e.String())
			}
		}
	}
	for d, es := range out {
		for _, e := range es {
			if e.Table != 31 || e.Priority == PrioMiss {
				continue
			}
			var mdT, dstT addr.TenantID
			for _, f := range e.Match {
				switch f.Type {
				case ofp.XMTypeMetadata:
					mdT = addr.TenantID(uint16(f.Value[0])<<8 | uint16(f.Value[1]))
					if f.Mask[0] != 0xff || f.Mask[1] != 0xff {
						t.Errorf("%s: metadata tenant not fully matched: %s", d, e.String())
					}
				case ofp.XMTypeEthDst:
					dstT, _ = addr.Split(addr.MAC(f.Value))
				}
			}
			if mdT == 0 || mdT != dstT {
				t.Errorf("%s: table 31 entry without tenant check: %s", d, e.String())
			}
		}
	}
}

func TestCompileGateways(t *testing.T) {
	out := mustCompile(t, testModel())
	gw := out[g1]
	sameInstructions(t, find(t, gw, 0, PrioHost, InPort(1)), Goto(1))
	sameInstructions(t, find(t, gw, 0, PrioHost, InPort(2)), Goto(1))
	for _, id := range []addr.TenantID{t1ID, t2ID} {
		v, m := addr.TenantMatch(id)
		e := find(t, gw, 0, PrioHost, InPort(tunToGCP), TunnelID(uint64(id)), EthSrcMasked(v, m))
		sameInstructions(t, e, Goto(1))
	}
	find(t, gw, 0, PrioTunnelDrop, InPort(tunToGCP))
	hm := addr.HostMask
	// t1/h1 on e1 (downlink 1), t2/h2 on e2 (downlink 2), t1/h3 at gcp.
	sameInstructions(t, find(t, gw, 1, PrioHost, EthDstMasked(mac("02:00:00:00:00:01"), hm)), Apply(Output(1)))
	sameInstructions(t, find(t, gw, 1, PrioHost, EthDstMasked(mac("02:01:00:00:00:02"), hm)), Apply(Output(2)))
	sameInstructions(t, find(t, gw, 1, PrioHost, EthDstMasked(mac("02:00:00:00:00:03"), hm)),
		Apply(SetField(TunnelID(0x0200)), Output(tunToGCP)))
	sameInstructions(t, find(t, out[g2], 1, PrioHost, EthDstMasked(mac("02:00:00:00:00:03"), hm)), Apply(Output(1)))
	sameInstructions(t, find(t, out[g2], 1, PrioHost, EthDstMasked(mac("02:01:00:00:00:01"), hm)),
		Apply(SetField(TunnelID(0x0201)), Output(tunToAWS)))
	if len(find(t, gw, 1, PrioMiss).Instructions) != 0 {
		t.Error("gateway table 1 miss is not a drop")
	}
}

func TestCompileTransitSite(t *testing.T) {
	// Chain aws - gcp - azure: aws reaches azure through gcp.
	m := testModel()
	m.Sites[1].Gateway.Tunnels["azure"] = 32803
	m.Sites = append(m.Sites, Site{Name: "azure", Gateway: Gateway{DPID: 0x93, Downlinks: map[DPID]uint32{0xe4: 1},
		Tunnels: map[string]uint32{"gcp": 32801}}, Edges: []EdgeBridge{{DPID: 0xe4, Uplink: uplink}}})
	m.Tree.Tunnels = append(m.Tree.Tunnels, tunnels.Tunnel{A: "azure", B: "gcp", Cost: 1})
	m.Bindings[2].Bridge = 0xe4 // t1/h3 now at azure
	out := mustCompile(t, m)
	hm := addr.HostMask
	sameInstructions(t, find(t, out[g1], 1, PrioHost, EthDstMasked(mac("02:00:00:00:00:03"), hm)),
		Apply(SetField(TunnelID(0x0200)), Output(tunToGCP)))
	sameInstructions(t, find(t, out[g2], 1, PrioHost, EthDstMasked(mac("02:00:00:00:00:03"), hm)),
		Apply(SetField(TunnelID(0x0200)), Output(32803)))
	sameInstructions(t, find(t, out[0x93], 1, PrioHost, EthDstMasked(mac("02:00:00:00:00:01"), hm)),
		Apply(SetField(TunnelID(0x0200)), Output(32801)))
}

func TestCompileDeterministicAndUniqueKeys(t *testing.T) {
	a, b := mustCompile(t, testModel()), mustCompile(t, testModel())
	if len(a) != 5 {
		t.Fatalf("%d bridges, want 5", len(a))
	}
	for d, es := range a {
		keys := map[string]bool{}
		for i := range es {
			if keys[es[i].Key()] {
				t.Errorf("%s: duplicate key %s", d, es[i].String())
			}
			keys[es[i].Key()] = true
			if !es[i].Equal(&b[d][i]) {
				t.Errorf("%s entry %d differs between runs", d, i)
			}
			if !IsInfraCookie(es[i].Cookie) {
				t.Errorf("%s: entry without the infrastructure cookie: %s", d, es[i].String())
			}
		}
	}
	if !reflect.DeepEqual(len(a[e1]), len(b[e1])) {
		t.Error("lengths differ")
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name string
		mut  func(m *Model)
		want string
	}{
		{"duplicate site", func(m *Model) { m.Sites[1].Name = "aws" }, "duplicate site"},
		{"edge without downlink", func(m *Model) { delete(m.Sites[0].Gateway.Downlinks, e2) }, "no downlink to edge"},
		{"duplicate edge", func(m *Model) { m.Sites[1].Edges[0].DPID = e1 }, "duplicate edge DPID"},
		{"uplink 0", func(m *Model) { m.Sites[0].Edges[0].Uplink = 0 }, "uplink port 0"},
		{"tunnel port missing", func(m *Model) { delete(m.Sites[1].Gateway.Tunnels, "aws") }, "no tunnel port toward \"aws\""},
		{"tree unknown site", func(m *Model) { m.Tree.Tunnels[0].B = "mars" }, "unknown site \"mars\""},
		{"tree cycle", func(m *Model) {
			m.Tree.Tunnels = append(m.Tree.Tunnels, tunnels.Tunnel{A: "gcp", B: "aws"})
		}, "cycle"},
		{"bad tenant ID", func(m *Model) { m.Tenants[0].ID = 0x0100 }, "not valid"},
		{"duplicate tenant ID", func(m *Model) { m.Tenants[1].ID = t1ID }, "duplicate tenant ID"},
		{"missing host index", func(m *Model) { m.Tenants[0].Hosts = map[string]addr.HostIndex{"h1": 1} }, "no valid host index"},
		{"unknown tenant", func(m *Model) { m.Bindings[0].Tenant = "t9" }, "unknown tenant"},
		{"unknown host", func(m *Model) { m.Bindings[0].Host = "h9" }, "no host \"h9\""},
		{"unknown bridge", func(m *Model) { m.Bindings[0].Bridge = 0x99 }, "unknown edge bridge"},
		{"port is uplink", func(m *Model) { m.Bindings[0].Port = uplink }, "not a host port"},
		{"port bound twice", func(m *Model) { m.Bindings[1].Port = 1 }, "already bound"},
		{"host bound twice", func(m *Model) { m.Bindings = append(m.Bindings, m.Bindings[0]) }, "bound twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := testModel()
			c.mut(m)
			_, err := Compile(m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Compile = %v, want error containing %q", err, c.want)
			}
			var te *Error
			if errors.As(err, &te) {
				t.Errorf("model error is a translation *Error: %v", err)
			}
		})
	}
}

func TestUnboundHostHasNoRoute(t *testing.T) {
	m := testModel()
	m.Bindings = m.Bindings[1:] // t1/h1 unbound
	out := mustCompile(t, m)
	absent(t, out[g1], 1, PrioHost, EthDstMasked(mac("02:00:00:00:00:01"), addr.HostMask))
	absent(t, out[e1], 0, PrioHostUnicast, InPort(1), EthSrc(mac("00:00:00:00:00:01")))
	// Its source is still restored where its tenant has hosts.
	find(t, out[e1], 30, PrioHost, EthSrc(mac("02:00:00:00:00:01")))
}
