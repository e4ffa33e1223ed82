package vnet

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

// An app gets multipart replies through controller.Switch on a virtual
// switch: the virtual ports, the virtual flow table, and ErrUnsupported
// for what is not virtualized.
func TestMultipartOnVirtualSwitch(t *testing.T) {
	phys := newTablePhys(e1, e3)
	tn := startTenant(t, phys, newRecorder("rec"))
	s1, _ := tn.Switch(vs1)
	var sw controller.Switch = s1
	ctx := context.Background()

	ports, err := sw.PortDesc(ctx)
	if err != nil || !reflect.DeepEqual(ports, sw.Ports()) || len(ports) == 0 {
		t.Fatalf("PortDesc = %+v, %v; want the virtual ports %+v", ports, err, sw.Ports())
	}
	raw, err := sw.Multipart(ctx, ofp.MultipartTypePortDescription, nil)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := ofwire.DecodePorts(raw)
	if err != nil || len(decoded) != len(ports) {
		t.Fatalf("OFPMP_PORT_DESC body decodes to %d ports (%v), want %d", len(decoded), err, len(ports))
	}
	for i := range ports {
		if decoded[i].PortNo != ports[i].PortNo || decoded[i].Name != ports[i].Name || decoded[i].State != ports[i].State {
			t.Errorf("port %d: %+v, want %+v", i, decoded[i], ports[i])
		}
	}

	if err := sw.FlowMod(ctx, linkEntry(0)); err != nil {
		t.Fatal(err)
	}
	want, err := sw.FlowStats(ctx, nil)
	if err != nil || len(want) != 1 {
		t.Fatalf("FlowStats = %d entries, %v; want 1", len(want), err)
	}
	for name, req := range map[string]*ofp.FlowStatsRequest{
		"nil":     nil,
		"table 1": {Table: 1, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: ofp.Match{Type: ofp.MatchTypeXM}},
	} {
		var raw []byte
		if req == nil {
			raw, err = sw.Multipart(ctx, ofp.MultipartTypeFlow, nil)
		} else {
			raw, err = sw.Multipart(ctx, ofp.MultipartTypeFlow, req)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fs, err := ofwire.DecodeFlowStats(raw)
		if err != nil || len(fs) != 1 || fs[0].Cookie != want[0].Cookie || fs[0].Priority != want[0].Priority || fs[0].Table != 1 {
			t.Fatalf("%s: OFPMP_FLOW body decodes to %+v (%v), want %+v", name, fs, err, want)
		}
	}
	// An encoded request (what a generic app sends) selects the table too.
	raw, err = sw.Multipart(ctx, ofp.MultipartTypeFlow, rawRequest(t, &ofp.FlowStatsRequest{Table: 2,
		OutPort: ofp.PortAny, OutGroup: ofp.GroupAny, Match: ofp.Match{Type: ofp.MatchTypeXM}}))
	if err != nil || len(raw) != 0 {
		t.Fatalf("flow stats of empty table 2: %d bytes, %v", len(raw), err)
	}

	for name, call := range map[string]func() error{
		"GroupDesc":   func() error { _, err := sw.GroupDesc(ctx); return err },
		"MeterConfig": func() error { _, err := sw.MeterConfig(ctx); return err },
		"OFPMP_DESC":  func() error { _, err := sw.Multipart(ctx, ofp.MultipartTypeDescription, nil); return err },
	} {
		err := call()
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "vnet: ") {
			t.Errorf("%s: %v, want a vnet error wrapping errors.ErrUnsupported", name, err)
		}
	}

	tn.Close()
	if _, err := sw.PortDesc(ctx); !errors.Is(err, controller.ErrClosed) {
		t.Errorf("PortDesc after close: %v, want ErrClosed", err)
	}
	if _, err := sw.Multipart(ctx, ofp.MultipartTypeDescription, nil); !errors.Is(err, controller.ErrClosed) {
		t.Errorf("Multipart after close: %v, want ErrClosed", err)
	}
}

// rawBytes is an encoded request body, not an *ofp.FlowStatsRequest.
type rawBytes []byte

func (b rawBytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// rawRequest returns req encoded.
func rawRequest(t *testing.T, req *ofp.FlowStatsRequest) rawBytes {
	t.Helper()
	b, err := ofwire.AppendWriterTo(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	return rawBytes(b)
}
