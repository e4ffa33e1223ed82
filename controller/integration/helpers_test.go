//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller"
)

// syncBuffer is a goroutine-safe log sink whose content the test prints only
// when it failed (so no t.Log after the test ends).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger returns a debug logger whose output is shown if t fails.
func testLogger(t *testing.T) *slog.Logger {
	b := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// event is a switch lifecycle event seen by the recorder app.
type event struct {
	up   bool
	dpid controller.DPID
}

// recorder is an app that reports SwitchUp/SwitchDown on a channel.
type recorder struct{ ch chan event }

func newRecorder() *recorder { return &recorder{ch: make(chan event, 64)} }

func (r *recorder) Name() string { return "skb-recorder" }

func (r *recorder) SwitchUp(_ context.Context, sw controller.Switch) {
	r.put(event{up: true, dpid: sw.DPID()})
}

func (r *recorder) SwitchDown(_ context.Context, sw controller.Switch) {
	r.put(event{up: false, dpid: sw.DPID()})
}

// put queues e without ever blocking the switch's event goroutine; a full
// queue (64 unread events) is a test bug and panics loudly.
func (r *recorder) put(e event) {
	select {
	case r.ch <- e:
	default:
		panic("skb-recorder: event queue full")
	}
}

// wait returns once an event with up/dpid arrives, failing after timeout.
func (r *recorder) wait(t *testing.T, up bool, dpid controller.DPID, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-r.ch:
			if e.up == up && e.dpid == dpid {
				return
			}
		case <-deadline:
			t.Fatalf("no Switch%s for %v within %v", map[bool]string{true: "Up", false: "Down"}[up], dpid, timeout)
		}
	}
}

// startController runs a controller with apps on listen until the test ends.
func startController(t *testing.T, listen string, apps ...controller.App) *controller.Controller {
	t.Helper()
	c, _ := controllertest.Start(t, controller.Config{Listen: listen, Logger: testLogger(t),
		EchoInterval: time.Second, DeadPeerTimeout: 3 * time.Second}, apps...)
	return c
}

// eventually polls f every 100 ms until it returns nil or timeout passes,
// then fails with f's last error.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// flowLines returns the flow entries of an ovs-ofctl dump-flows output that
// contain every one of the substrings.
func flowLines(dump string, substrings ...string) []string {
	var out []string
	for _, l := range strings.Split(dump, "\n") {
		ok := true
		for _, s := range substrings {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// hex16 formats a cookie the way ovs-ofctl prints it.
func hex16(v uint64) string { return fmt.Sprintf("0x%x", v) }
