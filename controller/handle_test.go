package controller

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/netrack/openflow/ofp"
)

// stubSwitch is a Switch that is not a session, as the hypervisor's
// virtual switches are.
type stubSwitch struct {
	Switch // nil: only DPID and Logger are called by Chain
	log    *slog.Logger
}

func (s *stubSwitch) DPID() DPID           { return 0x77 }
func (s *stubSwitch) Logger() *slog.Logger { return s.log }

func TestChainOrderStopAndPanic(t *testing.T) {
	var buf bytes.Buffer
	sw := &stubSwitch{log: slog.New(slog.NewTextHandler(&buf, nil))}
	var order []string
	first := newRecorder("first")
	first.onPI = func(ctx context.Context, got Switch, ev *PacketIn) {
		if got != Switch(sw) {
			t.Errorf("handler got switch %v, want the stub", got)
		}
		order = append(order, "first")
	}
	boom := &panicApp{}
	last := newRecorder("last")
	last.onPI = func(ctx context.Context, _ Switch, ev *PacketIn) { order = append(order, "last") }
	last.dispFn = func(*PacketIn) Disposition { return Stop }
	never := newRecorder("never")
	never.onPI = func(ctx context.Context, _ Switch, ev *PacketIn) { order = append(order, "never") }

	ch, err := NewChain(first, boom, last, never)
	if err != nil {
		t.Fatal(err)
	}
	if d := ch.PacketIn(context.Background(), sw, &PacketIn{}); d != Stop {
		t.Errorf("disposition = %v, want Stop", d)
	}
	if strings.Join(order, ",") != "first,last" {
		t.Errorf("order = %v, want first,last (panicking app skipped, Stop ends the walk)", order)
	}
	if !strings.Contains(buf.String(), "app handler panicked") || !strings.Contains(buf.String(), "dpid=") {
		t.Errorf("panic not logged with the DPID: %s", buf.String())
	}
	buf.Reset()
	ch.SwitchError(context.Background(), sw, &ErrorEvent{Type: ofp.ErrTypeBadRequest})
	if strings.Contains(buf.String(), "unclaimed") {
		t.Errorf("error logged as unclaimed although apps handle errors: %s", buf.String())
	}
	bare, err := NewChain(boom)
	if err != nil {
		t.Fatal(err)
	}
	bare.SwitchError(context.Background(), sw, &ErrorEvent{Type: ofp.ErrTypeBadRequest})
	if !strings.Contains(buf.String(), "unclaimed OpenFlow error") {
		t.Errorf("an error no app handles is not logged: %q", buf.String())
	}
}

func TestNewChainRefusesBadApps(t *testing.T) {
	if _, err := NewChain(newRecorder("a"), newRecorder("a")); err == nil || !strings.Contains(err.Error(), `two apps named "a"`) {
		t.Errorf("duplicate names: err = %v", err)
	}
	if _, err := NewChain(nil); err == nil || !strings.Contains(err.Error(), "app 0 is nil") {
		t.Errorf("nil app: err = %v", err)
	}
}
