package pipeline

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// FuzzTranslate feeds arbitrary tenant flow-mods (match and instructions
// decoded from raw OpenFlow bytes) to Translate and checks the isolation
// contract on every physical flow-mod it returns: it never panics; adds go
// to tables 10-13, carry the tenant's cookie prefix and a metadata match
// pinned to the tenant; actions output only to the controller or through
// the hypervisor's own clone(...) sequences; set_field never touches the
// hypervisor's fields; eth_src is only ever set to the tenant's fabric
// MACs; deletes are confined to the tenant's cookie prefix.
func FuzzTranslate(f *testing.F) {
	seed := func(fm *ofp.FlowMod) {
		m := ofwire.AppendMatch(nil, &fm.Match)
		ins, err := ofwire.AppendInstructions(nil, fm.Instructions)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(fm.Command), uint8(fm.Table), fm.Priority, fm.Cookie, uint8(0), m, ins)
	}
	seed(addFM(0, 100, 1, []ofp.XM{EthDst(addr.MustParseMAC("00:00:00:00:00:02"))}, Apply(Output(2))))
	seed(addFM(0, 50, 1, []ofp.XM{EthDst(addr.Broadcast), InPort(1)}, Apply(Output(uint32(ofp.PortFlood)))))
	seed(addFM(1, 0, 7, []ofp.XM{EthSrc(addr.MustParseMAC("00:00:00:00:00:03")), EthType(0x0800)},
		Apply(SetField(EthSrc(addr.MustParseMAC("00:00:00:00:00:01"))), Output(uint32(ofp.PortController))), Goto(3)))
	seed(addFM(0, 1, 0, nil, Apply(Output(10), Output(uint32(ofp.PortAll)))))
	m := testModel()
	v, err := NewView(m.Tenants[1])
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cmd, table uint8, prio uint16, cookie uint64, sw uint8, match, ins []byte) {
		mt, _, err := ofwire.DecodeMatch(match, nil)
		if err != nil {
			return
		}
		is, err := ofwire.DecodeInstructions(ins)
		if err != nil {
			return
		}
		vs := []topology.DPID{vsB, vsC, 0x77}[int(sw)%3]
		fm := &ofp.FlowMod{Command: ofp.FlowModCommand(cmd % 6), Table: ofp.Table(table), Priority: prio, Cookie: cookie,
			CookieMask: cookie >> 3, Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: mt, Instructions: is}
		out, err := Translate(v, vs, fm)
		if err != nil {
			return
		}
		for _, p := range out {
			checkPhysical(t, v, p)
		}
	})
}

func checkPhysical(t *testing.T, v *View, p *ofp.FlowMod) {
	t.Helper()
	tenantBits := uint64(v.ID) << 48
	switch p.Command {
	case ofp.FlowDelete, ofp.FlowDeleteStrict:
		if p.CookieMask>>48 != 0xffff || p.Cookie&MetaTenantMask != tenantBits {
			t.Fatalf("delete not confined to the tenant: cookie %#x/%#x", p.Cookie, p.CookieMask)
		}
		return
	case ofp.FlowAdd:
	default:
		t.Fatalf("unexpected physical command %d", p.Command)
	}
	if p.Table < 10 || p.Table > 13 || p.Cookie>>48 != uint64(v.ID) || p.Priority == 0 {
		t.Fatalf("add: table %d cookie %#x priority %d", p.Table, p.Cookie, p.Priority)
	}
	pinned := false
	for _, f := range p.Match.Fields {
		switch f.Type {
		case ofp.XMTypeMetadata:
			val, mask := binary.BigEndian.Uint64(f.Value), binary.BigEndian.Uint64(f.Mask)
			pinned = mask&MetaTenantMask == MetaTenantMask && val&MetaTenantMask == tenantBits
		case ofp.XMTypeInPort, ofp.XMTypeTunnelID, ofp.XMTypeInPhyPort:
			t.Fatalf("physical match on %s", f.Type)
		}
	}
	if !pinned {
		t.Fatalf("add without the tenant's metadata: %v", p.Match.Fields)
	}
	for _, in := range p.Instructions {
		switch in := in.(type) {
		case *ofp.InstructionApplyActions:
			checkActions(t, v, in.Actions, false)
		case *ofp.InstructionGotoTable:
			if in.Table < 11 || in.Table > 13 {
				t.Fatalf("goto %d", in.Table)
			}
		case *ofp.InstructionClearActions:
		default:
			t.Fatalf("instruction %T", in)
		}
	}
}

func checkActions(t *testing.T, v *View, acts ofp.Actions, inClone bool) {
	t.Helper()
	for _, a := range acts {
		switch a := a.(type) {
		case *ofp.ActionOutput:
			if a.Port != ofp.PortController {
				t.Fatalf("physical output to port %#x", uint32(a.Port))
			}
		case *ofp.ActionSetField:
			switch a.Field.Type {
			case ofp.XMTypeTunnelID, ofp.XMTypeInPort, ofp.XMTypeInPhyPort:
				t.Fatalf("set_field %s", a.Field.Type)
			case ofp.XMTypeMetadata:
				if !inClone || binary.BigEndian.Uint64(a.Field.Value)&MetaTenantMask != uint64(v.ID)<<48 {
					t.Fatalf("set_field metadata %x outside a hypervisor clone", []byte(a.Field.Value))
				}
			case ofp.XMTypeEthSrc:
				if tn, _ := addr.Split(addr.MAC(a.Field.Value)); tn != v.ID {
					t.Fatalf("set eth_src %x", []byte(a.Field.Value))
				}
			case ofp.XMTypeEthDst:
				if tn, _ := addr.Split(addr.MAC(a.Field.Value)); inClone && tn != v.ID {
					t.Fatalf("clone sets eth_dst %x of another tenant", []byte(a.Field.Value))
				}
			}
		case *ofwire.ExperimenterAction:
			switch {
			case !inClone && a.Subtype == NXASTClone && a.Experimenter == NiciraExperimenter:
				nested, err := ofwire.DecodeActions(bytes.Clone(a.Raw[16:]))
				if err != nil || len(nested) != 2 {
					t.Fatalf("clone with %d actions: %v", len(nested), err)
				}
				r, ok := nested[1].(*ofwire.ExperimenterAction)
				if !ok || r.Subtype != NXASTResubmitTable || (r.Raw[12] != TableFabricOut && r.Raw[12] != TableTenant) {
					t.Fatalf("clone does not end in resubmit to 10 or 20: %v", nested)
				}
				checkActions(t, v, nested[:1], true)
			case inClone:
				t.Fatalf("nested experimenter action %d", a.Subtype)
			default:
				t.Fatalf("experimenter action %#x/%d outside the hypervisor's clone", a.Experimenter, a.Subtype)
			}
		case *ofp.ActionGroup, *ofp.ActionSetQueue, *ofwire.RawAction:
			t.Fatalf("action %T", a)
		}
	}
}
