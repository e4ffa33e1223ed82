package pipeline

import (
	"bytes"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
)

func frame(dst, src addr.MAC) []byte {
	b := append(append([]byte{}, dst[:]...), src[:]...)
	return append(b, 0x88, 0xb5, 'h', 'i')
}

func TestTranslatePacketOut(t *testing.T) {
	a, b := views(t)
	m := testModel()
	data := frame(addr.Broadcast, mac("00:00:00:00:00:01"))
	po := &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Actions: ofp.Actions{Output(uint32(ofp.PortFlood))}, Data: data}
	br, out, err := TranslatePacketOut(a, m.Bindings, vsA, po)
	if err != nil {
		t.Fatal(err)
	}
	if br != e1 || out.InPort != ofp.PortController || out.Buffer != ofp.NoBuffer {
		t.Errorf("bridge %s in_port %#x", br, uint32(out.InPort))
	}
	if !bytes.Equal(out.Data[6:12], []byte{0x02, 0, 0, 0, 0, 1}) || !bytes.Equal(data[6:12], []byte{0, 0, 0, 0, 0, 1}) {
		t.Errorf("data src %x (input now %x): want the fabric MAC in a copy", out.Data[6:12], data[6:12])
	}
	want := Entry{Instructions: ofp.Instructions{Apply(
		mustClone(t, SetField(EthDst(addr.GroupMAC(t1ID, 2))), Resubmit(20)),
		mustClone(t, SetField(EthDst(addr.GroupMAC(t1ID, 3))), Resubmit(20)))}}
	got := Entry{Instructions: ofp.Instructions{Apply(out.Actions...)}}
	if !got.Equal(&want) {
		t.Errorf("actions %s\nwant    %s", got.String(), want.String())
	}
	// output:TABLE runs the tenant tables with the in-port in the metadata;
	// a host of t2's switch c (h3, e2) picks the bridge.
	po = &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Actions: ofp.Actions{Output(uint32(ofp.PortTable))},
		Data: frame(mac("00:00:00:00:00:01"), mac("00:00:00:00:00:03"))}
	br, out, err = TranslatePacketOut(b, m.Bindings, vsC, po)
	if err != nil {
		t.Fatal(err)
	}
	want = Entry{Instructions: ofp.Instructions{Apply(mustClone(t, metadataSet(MetadataValue(t2ID, 4, 2, false)), Resubmit(5)))}}
	got = Entry{Instructions: ofp.Instructions{Apply(out.Actions...)}}
	if br != e2 || !got.Equal(&want) {
		t.Errorf("TABLE: bridge %s actions %s", br, got.String())
	}
	// Refusals.
	bad := []struct {
		name string
		po   ofp.PacketOut
		typ  ofp.ErrType
		code ofp.ErrCode
	}{
		{"buffered", ofp.PacketOut{Buffer: 7, InPort: 1, Data: data}, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBufferUnknown},
		{"short", ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Data: data[:10]}, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPacket},
		{"foreign source", ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Data: frame(addr.Broadcast, mac("02:01:00:00:00:01"))}, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPacket},
		{"unknown destination", ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Data: frame(mac("00:00:00:00:00:09"), mac("00:00:00:00:00:01"))}, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPacket},
		{"unknown in_port", ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 9, Data: data}, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadPort},
		{"controller", ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Data: data, Actions: ofp.Actions{Output(uint32(ofp.PortController))}}, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort},
		{"table without in_port", ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: ofp.PortController, Data: data, Actions: ofp.Actions{Output(uint32(ofp.PortTable))}}, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionOutPort},
		{"experimenter", ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1, Data: data, Actions: ofp.Actions{Resubmit(31)}}, ofp.ErrTypeBadAction, ofp.ErrCodeBadActionExperimenter},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := TranslatePacketOut(a, m.Bindings, vsA, &c.po)
			wantOFPError(t, err, c.typ, c.code)
		})
	}
}
