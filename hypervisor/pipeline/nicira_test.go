package pipeline

import (
	"bytes"
	"context"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
)

func TestResubmitBytes(t *testing.T) {
	want := []byte{
		0xff, 0xff, 0x00, 0x10, // OFPAT_EXPERIMENTER, len 16
		0x00, 0x00, 0x23, 0x20, // NX_VENDOR_ID
		0x00, 0x0e, // NXAST_RESUBMIT_TABLE
		0xff, 0xf8, // in_port = OFPP_IN_PORT (OpenFlow 1.0 numbering)
		30,      // table
		0, 0, 0, // pad
	}
	got := Resubmit(30)
	if !bytes.Equal(got.Raw, want) {
		t.Fatalf("Resubmit(30) = % x, want % x", got.Raw, want)
	}
	if got.Experimenter != NiciraExperimenter || got.Subtype != NXASTResubmitTable {
		t.Errorf("fields = %#x/%d", got.Experimenter, got.Subtype)
	}
}

func TestCloneBytes(t *testing.T) {
	c, err := Clone(SetField(EthDst(addr.MustParseMAC("02:00:00:00:00:02"))), Resubmit(20))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xff, 0xff, 0x00, 0x30, // OFPAT_EXPERIMENTER, len 16 + 16 + 16
		0x00, 0x00, 0x23, 0x20, // NX_VENDOR_ID
		0x00, 0x2a, // NXAST_CLONE
		0, 0, 0, 0, 0, 0, // pad
		// set_field eth_dst: OFPAT_SET_FIELD len 16, OXM basic eth_dst len 6, 2 pad
		0x00, 0x19, 0x00, 0x10, 0x80, 0x00, 0x06, 0x06, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0, 0,
		// resubmit(,20)
		0xff, 0xff, 0x00, 0x10, 0x00, 0x00, 0x23, 0x20, 0x00, 0x0e, 0xff, 0xf8, 20, 0, 0, 0,
	}
	if !bytes.Equal(c.Raw, want) {
		t.Fatalf("Clone = % x\nwant    % x", c.Raw, want)
	}
	// Nested and empty clones keep lengths consistent.
	empty, err := Clone()
	if err != nil || len(empty.Raw) != 16 || empty.Raw[3] != 16 {
		t.Fatalf("empty clone = % x, %v", empty.Raw, err)
	}
	if _, err := Clone(nil); err == nil {
		t.Error("Clone(nil action) succeeded")
	}
}

// TestNiciraActionsDecodeInOVS feeds a flow-mod holding our resubmit and
// clone encodings to ovs-ofctl ofp-print: Open vSwitch's own decoder must
// read them back as resubmit(,30) and clone(...).
func TestNiciraActionsDecodeInOVS(t *testing.T) {
	if _, err := exec.LookPath("ovs-ofctl"); err != nil {
		t.Skip("ovs-ofctl not installed")
	}
	cl, err := Clone(SetField(EthDst(addr.MustParseMAC("02:00:00:00:00:02"))), Resubmit(20))
	if err != nil {
		t.Fatal(err)
	}
	md, err := Clone(SetField(basic(ofp.XMTypeMetadata, []byte{2, 1, 0, 3, 0, 0, 0, 2}, nil)), Resubmit(10))
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Table: 10, Priority: 7, Cookie: 0x0201000000000042,
		Match:        []ofp.XM{Metadata(0x0201000000000001, 0xffff000080000000|0xffff), EthDst(addr.Broadcast)},
		Instructions: ofp.Instructions{Apply(Resubmit(30), cl, md, Output(uint32(ofp.PortController)))}}
	msg := ofwire.AppendHeader(nil, 14, 0, 1) // OFPT_FLOW_MOD
	msg, err = ofwire.AppendFlowMod(msg, e.FlowMod())
	if err != nil {
		t.Fatal(err)
	}
	if err := ofwire.FinishMessage(msg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ovs-ofctl", "ofp-print", hex.EncodeToString(msg)).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ofctl ofp-print: %v: %s", err, out)
	}
	for _, want := range []string{
		"resubmit(,30)",
		"clone(set_field:02:00:00:00:00:02->eth_dst,resubmit(,20))",
		"clone(set_field:0x201000300000002->metadata,resubmit(,10))",
		"CONTROLLER:65535",
		"metadata=0x201000000000001/0xffff00008000ffff",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ovs-ofctl ofp-print lacks %q:\n%s", want, out)
		}
	}
}
