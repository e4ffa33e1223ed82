package hypervisor

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
)

// mpSwitch answers Multipart with fixed bodies per type; other methods
// are not called (nil embedded Switch).
type mpSwitch struct {
	controller.Switch
	dpid   controller.DPID
	bodies map[ofp.MultipartType][]byte
}

func (s *mpSwitch) DPID() controller.DPID { return s.dpid }
func (s *mpSwitch) Multipart(_ context.Context, t ofp.MultipartType, _ io.WriterTo) ([]byte, error) {
	return s.bodies[t], nil
}

// countersView's Multipart gives an OFPMP_FLOW reply the restored
// counters, as its FlowStats does, and passes other types through.
func TestCounterSwitchMultipart(t *testing.T) {
	h, _, _ := newTest(t)
	const dpid = 257
	a := entry(0, 100, pipeline.InfraCookie(tA, 1), 1, 2)
	other := entry(0, 80, pipeline.InfraCookie(tA, 1), 3, 1)
	fa, _ := snapshot.FlowFromEntry(a)
	fa.PacketCount, fa.ByteCount, fa.DurationSec = 10, 1000, 60
	var o snapshot.Offsets
	o.Add(&snapshot.SwitchState{DPID: "0000000000000101", Flows: []snapshot.Flow{fa}})
	h.snaps.offsets = map[uint64]*restoredOffsets{dpid: {o: &o, at: time.Now().Add(-30 * time.Second)}}

	var raw []byte
	for _, fs := range []ofwire.FlowStats{stats(other, 5, time.Hour), stats(a, 3, 30*time.Second)} {
		var err error
		if raw, err = ofwire.AppendFlowStats(raw, &fs); err != nil {
			t.Fatal(err)
		}
	}
	ports := ofwire.AppendPort(nil, &ofp.Port{PortNo: 1, Name: "p1"})
	sw := h.countersView(&mpSwitch{dpid: dpid, bodies: map[ofp.MultipartType][]byte{
		ofp.MultipartTypeFlow: raw, ofp.MultipartTypePortDescription: ports}})

	body, err := sw.Multipart(context.Background(), ofp.MultipartTypeFlow, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ofwire.DecodeFlowStats(body)
	if err != nil || len(out) != 2 {
		t.Fatalf("flow reply through countersView: %d entries, %v", len(out), err)
	}
	if out[0].PacketCount != 5 || out[1].PacketCount != 13 || out[1].ByteCount != 1300 || out[1].DurationSec != 90 {
		t.Errorf("counters %d, %d packets (%d bytes, %d s); want 5 and 13 (1300 bytes, 90 s)",
			out[0].PacketCount, out[1].PacketCount, out[1].ByteCount, out[1].DurationSec)
	}
	pd, err := sw.Multipart(context.Background(), ofp.MultipartTypePortDescription, nil)
	if err != nil || string(pd) != string(ports) {
		t.Errorf("port desc through countersView changed: %x, %v", pd, err)
	}
}
