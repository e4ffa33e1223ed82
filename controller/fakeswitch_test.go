package controller

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

// msg is one OpenFlow message seen by the fake switch.
type msg struct {
	Type of.Type
	Xid  uint32
	Raw  []byte // whole message
	Body []byte
}

// fakeSwitch plays the switch side of a session over a net.Conn.
type fakeSwitch struct {
	t    testing.TB
	conn net.Conn
	in   chan msg
	wmu  sync.Mutex
	rerr chan error
}

func newFakeSwitch(t testing.TB, conn net.Conn) *fakeSwitch {
	f := &fakeSwitch{t: t, conn: conn, in: make(chan msg, 1<<16), rerr: make(chan error, 1)}
	go f.readLoop()
	return f
}

func (f *fakeSwitch) readLoop() {
	defer close(f.in)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(f.conn, hdr[:]); err != nil {
			f.rerr <- err
			return
		}
		l := int(binary.BigEndian.Uint16(hdr[2:]))
		raw := make([]byte, l)
		copy(raw, hdr[:])
		if _, err := io.ReadFull(f.conn, raw[8:]); err != nil {
			f.rerr <- err
			return
		}
		f.in <- msg{Type: of.Type(raw[1]), Xid: binary.BigEndian.Uint32(raw[4:]), Raw: raw, Body: raw[8:]}
	}
}

// send writes one message with version 1.3.
func (f *fakeSwitch) send(t of.Type, xid uint32, body []byte) {
	f.sendVersion(ofwire.Version13, t, xid, body)
}

func (f *fakeSwitch) sendVersion(v uint8, t of.Type, xid uint32, body []byte) {
	b := make([]byte, 8, 8+len(body))
	b[0], b[1] = v, uint8(t)
	binary.BigEndian.PutUint16(b[2:], uint16(8+len(body)))
	binary.BigEndian.PutUint32(b[4:], xid)
	f.write(append(b, body...))
}

func (f *fakeSwitch) write(b []byte) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_ = f.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := f.conn.Write(b); err != nil {
		f.t.Logf("fake switch write: %v", err)
	}
}

// expect returns the next message of type t, skipping others (echo
// requests are answered).
func (f *fakeSwitch) expect(t of.Type) msg {
	f.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-f.in:
			if !ok {
				f.t.Fatalf("fake switch: connection closed while waiting for %s", t)
			}
			if m.Type == t {
				return m
			}
			if m.Type == of.TypeEchoRequest {
				f.send(of.TypeEchoReply, m.Xid, m.Body)
			}
		case <-timeout:
			f.t.Fatalf("fake switch: no %s within 5s", t)
		}
	}
}

// expectClosed waits until the controller closes the connection and
// returns the messages received before.
func (f *fakeSwitch) expectClosed() []msg {
	f.t.Helper()
	var got []msg
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-f.in:
			if !ok {
				return got
			}
			got = append(got, m)
		case <-timeout:
			f.t.Fatalf("fake switch: connection still open after 5s")
		}
	}
}

// helloBitmap builds a hello body with one version bitmap element.
func helloBitmap(versions ...uint8) []byte {
	var bm uint32
	for _, v := range versions {
		bm |= 1 << v
	}
	b := []byte{0, 1, 0, 8, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], bm)
	return b
}

func featuresBody(dpid uint64, ntables uint8) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, dpid)
	binary.BigEndian.PutUint32(b[8:], 256)
	b[12] = ntables
	binary.BigEndian.PutUint32(b[16:], 0x4f)
	return b
}

func portBytes(no uint32, name string) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b, no)
	copy(b[8:14], []byte{0x02, 0, 0, 0, 0, byte(no)})
	copy(b[16:32], name)
	binary.BigEndian.PutUint32(b[36:], 4) // live
	binary.BigEndian.PutUint32(b[56:], 10000000)
	return b
}

// mpReply builds a multipart reply body.
func mpReply(t ofp.MultipartType, more bool, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint16(b, uint16(t))
	if more {
		b[3] = 1
	}
	return append(b, body...)
}

// handshake plays hello, features and port description as a 1.3 switch.
func (f *fakeSwitch) handshake(dpid uint64, ports ...uint32) {
	f.t.Helper()
	f.expect(of.TypeHello)
	f.send(of.TypeHello, 1, helloBitmap(1, 4))
	fr := f.expect(of.TypeFeaturesRequest)
	f.send(of.TypeFeaturesReply, fr.Xid, featuresBody(dpid, 254))
	pd := f.expect(of.TypeMultipartRequest)
	if got := ofp.MultipartType(binary.BigEndian.Uint16(pd.Body)); got != ofp.MultipartTypePortDescription {
		f.t.Fatalf("handshake multipart type = %s, want port description", got)
	}
	var body []byte
	for _, p := range ports {
		body = append(body, portBytes(p, "skc-p"+string(rune('0'+p%10)))...)
	}
	f.send(of.TypeMultipartReply, pd.Xid, mpReply(ofp.MultipartTypePortDescription, false, body))
}

// testLogger returns a logger that writes to t.Log and records lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *logSink) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// containsAll reports whether one logged line contains every s.
func (l *logSink) containsAll(subs ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		all := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// String returns everything logged, for failure messages.
func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

// harness runs one session over net.Pipe.
type harness struct {
	c    *Controller
	sw   *fakeSwitch
	done chan error
	log  *logSink
	stop context.CancelFunc
}

func testConfig(sink *logSink) Config {
	return Config{
		Logger:           slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HandshakeTimeout: 3 * time.Second,
		RequestTimeout:   3 * time.Second,
	}
}

func startSession(t testing.TB, cfg *Config, apps ...App) *harness {
	t.Helper()
	sink := &logSink{}
	c0 := testConfig(sink)
	if cfg != nil {
		c0.EchoInterval, c0.DeadPeerTimeout, c0.SendQueueLen = cfg.EchoInterval, cfg.DeadPeerTimeout, cfg.SendQueueLen
		if cfg.HandshakeTimeout != 0 {
			c0.HandshakeTimeout = cfg.HandshakeTimeout
		}
	}
	c, err := New(c0, apps...)
	if err != nil {
		t.Fatal(err)
	}
	return attach(t, c, sink)
}

func attach(t testing.TB, c *Controller, sink *logSink) *harness {
	ctx, cancel := context.WithCancel(context.Background())
	a, b := net.Pipe()
	h := &harness{c: c, sw: newFakeSwitch(t, b), done: make(chan error, 1), log: sink, stop: cancel}
	go func() { h.done <- c.ServeConn(ctx, a) }()
	t.Cleanup(func() {
		cancel()
		b.Close()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Errorf("session did not end within 5s of cleanup")
		}
	})
	return h
}

// waitSwitch polls until the controller lists dpid.
func waitSwitch(t testing.TB, c *Controller, dpid DPID) *Session {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := c.Switch(dpid); ok {
			return s
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("switch %s not up within 5s", dpid)
	return nil
}

// sessionErr waits for ServeConn to return.
func (h *harness) sessionErr(t testing.TB) error {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end within 5s")
		return nil
	}
}

// recorder is an app that records events.
type recorder struct {
	name   string
	mu     sync.Mutex
	ups    []*Session
	downs  []*Session
	pis    []*PacketIn
	ports  []*PortStatus
	frs    []*ofp.FlowRemoved
	errs   []*ErrorEvent
	upCh   chan *Session
	downCh chan *Session
	piCh   chan *PacketIn
	errCh  chan *ErrorEvent
	dispFn func(*PacketIn) Disposition
	onPI   func(ctx context.Context, sw Switch, ev *PacketIn)
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, upCh: make(chan *Session, 16), downCh: make(chan *Session, 16),
		piCh: make(chan *PacketIn, 1024), errCh: make(chan *ErrorEvent, 64)}
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) SwitchUp(ctx context.Context, sw Switch) {
	r.mu.Lock()
	r.ups = append(r.ups, sw.(*Session))
	r.mu.Unlock()
	r.upCh <- sw.(*Session)
}
func (r *recorder) SwitchDown(ctx context.Context, sw Switch) {
	r.mu.Lock()
	r.downs = append(r.downs, sw.(*Session))
	r.mu.Unlock()
	r.downCh <- sw.(*Session)
}
func (r *recorder) PacketIn(ctx context.Context, sw Switch, ev *PacketIn) Disposition {
	if r.onPI != nil {
		r.onPI(ctx, sw, ev)
	}
	r.mu.Lock()
	r.pis = append(r.pis, ev)
	r.mu.Unlock()
	r.piCh <- ev
	if r.dispFn != nil {
		return r.dispFn(ev)
	}
	return Continue
}
func (r *recorder) PortStatus(ctx context.Context, sw Switch, ev *PortStatus) {
	r.mu.Lock()
	r.ports = append(r.ports, ev)
	r.mu.Unlock()
}
func (r *recorder) FlowRemoved(ctx context.Context, sw Switch, ev *ofp.FlowRemoved) {
	r.mu.Lock()
	r.frs = append(r.frs, ev)
	r.mu.Unlock()
}
func (r *recorder) SwitchError(ctx context.Context, sw Switch, ev *ErrorEvent) {
	r.mu.Lock()
	r.errs = append(r.errs, ev)
	r.mu.Unlock()
	r.errCh <- ev
}

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
		var zero T
		return zero
	}
}

// packetInBody builds an OFPT_PACKET_IN body with in_port and a frame.
func packetInBody(inPort uint32, frame []byte) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b, ofp.NoBuffer)
	binary.BigEndian.PutUint16(b[4:], uint16(len(frame)))
	b[6] = 0 // no match
	b[7] = 0
	binary.BigEndian.PutUint64(b[8:], 0)
	// match: OXM in_port
	b = append(b, 0, 1, 0, 12, 0x80, 0, 0, 4)
	b = binary.BigEndian.AppendUint32(b, inPort)
	b = append(b, 0, 0, 0, 0) // pad match to 16
	b = append(b, 0, 0)       // pad
	return append(b, frame...)
}

func isClosedErr(err error) bool { return errors.Is(err, ErrClosed) }
