package controller

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

func TestHandshakeAndSwitchUp(t *testing.T) {
	rec := newRecorder("rec")
	h := startSession(t, nil, rec)
	hello := h.sw.expect(of.TypeHello)
	if hello.Raw[0] != 4 {
		t.Fatalf("controller hello version = %d, want 4", hello.Raw[0])
	}
	hl, err := ofwire.DecodeHello(hello.Body)
	if err != nil || !hl.Supports(4) || hl.Supports(1) {
		t.Fatalf("controller hello bitmap = %v (%v), want exactly 1.3", hl.Bitmap, err)
	}
	h.sw.send(of.TypeHello, 1, helloBitmap(4))
	fr := h.sw.expect(of.TypeFeaturesRequest)
	h.sw.send(of.TypeFeaturesReply, fr.Xid, featuresBody(0x2a, 254))
	pd := h.sw.expect(of.TypeMultipartRequest)
	h.sw.send(of.TypeMultipartReply, pd.Xid, mpReply(ofp.MultipartTypePortDescription, false,
		append(portBytes(2, "skc-b"), portBytes(1, "skc-a")...)))
	sw := recv(t, rec.upCh, "SwitchUp")
	if sw.DPID() != 0x2a || sw.NTables() != 254 {
		t.Fatalf("DPID %s tables %d, want 0x2a 254", sw.DPID(), sw.NTables())
	}
	ports := sw.Ports()
	if len(ports) != 2 || ports[0].PortNo != 1 || ports[0].Name != "skc-a" || ports[1].Name != "skc-b" {
		t.Fatalf("ports = %+v", ports)
	}
	if got := h.c.Switches(); len(got) != 1 || got[0] != sw {
		t.Fatalf("Switches() = %v", got)
	}
	// Port status keeps the snapshot current.
	ps := append([]byte{byte(ofp.PortReasonDelete), 0, 0, 0, 0, 0, 0, 0}, portBytes(2, "skc-b")...)
	h.sw.send(of.TypePortStatus, 0, ps)
	ps = append([]byte{byte(ofp.PortReasonAdd), 0, 0, 0, 0, 0, 0, 0}, portBytes(7, "skc-c")...)
	h.sw.send(of.TypePortStatus, 0, ps)
	// A barrier round trip orders after the port statuses.
	go func() {
		b := h.sw.expect(of.TypeBarrierRequest)
		h.sw.send(of.TypeBarrierReply, b.Xid, nil)
	}()
	if err := sw.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := sw.Stats()
	if st.RxMessages < 6 || st.TxMessages < 3 || st.Writes == 0 || st.Writes > st.TxMessages || st.RxBytes < 6*8 || st.TxBytes < 3*8 {
		t.Errorf("stats = %+v", st)
	}
	if _, ok := sw.Port(2); ok {
		t.Error("port 2 still present after delete")
	}
	if p, ok := sw.Port(7); !ok || p.Name != "skc-c" {
		t.Errorf("port 7 = %+v %v", p, ok)
	}
	h.sw.conn.Close()
	down := recv(t, rec.downCh, "SwitchDown")
	if down != sw {
		t.Fatal("SwitchDown for a different handle")
	}
	if _, ok := h.c.Switch(0x2a); ok {
		t.Error("switch still listed after disconnect")
	}
	if err := sw.FlowMod(context.Background(), &ofp.FlowMod{}); !isClosedErr(err) {
		t.Errorf("FlowMod after close = %v, want ErrClosed", err)
	}
	if err := h.sessionErr(t); err != nil {
		t.Errorf("ServeConn after clean EOF = %v, want nil", err)
	}
}

func TestVersionNegotiation(t *testing.T) {
	cases := []struct {
		name    string
		version uint8
		body    []byte
		ok      bool
		offered string // switch_versions in the debug log when ok
	}{
		{"1.3 with bitmap", 4, helloBitmap(4), true, "switch_versions=1.3"},
		{"1.0+1.3+1.5 bitmap", 6, helloBitmap(1, 4, 6), true, "switch_versions=1.0,1.3,1.5"},
		{"1.3 header without bitmap", 4, nil, true, `switch_versions="up to 1.3 (no bitmap)"`},
		{"1.5 header without bitmap", 6, nil, true, `switch_versions="up to 1.5 (no bitmap)"`},
		{"1.0 only, no bitmap", 1, nil, false, ""},
		{"1.0 and 1.1 bitmap", 2, helloBitmap(1, 2), false, ""},
		{"1.4 and 1.5 bitmap", 6, helloBitmap(5, 6), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder("rec")
			h := startSession(t, nil, rec)
			h.sw.expect(of.TypeHello)
			h.sw.sendVersion(tc.version, of.TypeHello, 9, tc.body)
			if tc.ok {
				fr := h.sw.expect(of.TypeFeaturesRequest)
				if fr.Raw[0] != 4 {
					t.Fatalf("features request version %d, want 4", fr.Raw[0])
				}
				if !h.log.containsAll("hello: negotiated OpenFlow 1.3", tc.offered) {
					t.Errorf("no debug log of the negotiation with %s; log:\n%s", tc.offered, h.log)
				}
				return
			}
			got := h.sw.expectClosed()
			var errMsg *msg
			for i := range got {
				if got[i].Type == of.TypeError {
					errMsg = &got[i]
				}
				if got[i].Type == of.TypeFeaturesRequest {
					t.Fatal("features request sent to an incompatible peer")
				}
			}
			if errMsg == nil {
				t.Fatalf("no OFPT_ERROR before close; got %d messages", len(got))
			}
			et, code := binary.BigEndian.Uint16(errMsg.Body), binary.BigEndian.Uint16(errMsg.Body[2:])
			if et != 0 || code != 0 {
				t.Fatalf("error type/code = %d/%d, want HELLO_FAILED/INCOMPATIBLE 0/0", et, code)
			}
			if errMsg.Xid != 9 {
				t.Errorf("error xid = %d, want the hello's 9", errMsg.Xid)
			}
			reason := string(errMsg.Body[4:])
			if !strings.Contains(reason, "1.3") {
				t.Errorf("reason %q does not mention 1.3", reason)
			}
			for _, c := range errMsg.Body[4:] {
				if c < 0x20 || c > 0x7e {
					t.Fatalf("reason %q is not printable ASCII", reason)
				}
			}
			if err := h.sessionErr(t); err == nil || !strings.Contains(err.Error(), "hello failed") {
				t.Errorf("ServeConn = %v, want hello failed", err)
			}
			if len(rec.upCh) != 0 {
				t.Error("SwitchUp called for a failed handshake")
			}
		})
	}
}

func TestEchoReplyAndKeepalive(t *testing.T) {
	cfg := &Config{EchoInterval: 40 * time.Millisecond, DeadPeerTimeout: 2 * time.Second}
	rec := newRecorder("rec")
	h := startSession(t, cfg, rec)
	h.sw.handshake(1)
	recv(t, rec.upCh, "SwitchUp")
	h.sw.send(of.TypeEchoRequest, 77, []byte("skc-payload"))
	rep := h.sw.expect(of.TypeEchoReply)
	if rep.Xid != 77 || string(rep.Body) != "skc-payload" {
		t.Fatalf("echo reply xid %d body %q, want 77 skc-payload", rep.Xid, rep.Body)
	}
	// Idle: the controller sends its own echo request.
	req := h.sw.expect(of.TypeEchoRequest)
	if req.Raw[0] != 4 {
		t.Fatalf("echo request version %d", req.Raw[0])
	}
}

func TestDeadPeerTimeout(t *testing.T) {
	cfg := &Config{EchoInterval: 50 * time.Millisecond, DeadPeerTimeout: 500 * time.Millisecond}
	rec := newRecorder("rec")
	h := startSession(t, cfg, rec)
	start := time.Now() // before the last message the controller receives
	h.sw.handshake(1)
	recv(t, rec.upCh, "SwitchUp")
	// The fake switch reads (so writes do not block) but never answers.
	go func() {
		for range h.sw.in {
		}
	}()
	recv(t, rec.downCh, "SwitchDown")
	if el := time.Since(start); el < 450*time.Millisecond {
		t.Errorf("session closed after %s, before the dead-peer timeout", el)
	}
	if err := h.sessionErr(t); err == nil || !strings.Contains(err.Error(), "dead peer") {
		t.Errorf("ServeConn = %v, want dead peer", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	h := startSession(t, &Config{HandshakeTimeout: 100 * time.Millisecond})
	h.sw.expect(of.TypeHello)
	// never answer
	if err := h.sessionErr(t); err == nil || !strings.Contains(err.Error(), "no hello") {
		t.Errorf("ServeConn = %v, want handshake timeout", err)
	}
}

func upSession(t *testing.T, cfg *Config, apps ...App) (*harness, *Session) {
	t.Helper()
	h := startSession(t, cfg, apps...)
	h.sw.handshake(0x1)
	return h, waitSwitch(t, h.c, 1)
}

func TestRequestXidMatchingOutOfOrder(t *testing.T) {
	h, sw := upSession(t, nil, newRecorder("rec"))
	type result struct {
		rep *Reply
		err error
	}
	results := make([]chan result, 3)
	for i := range results {
		results[i] = make(chan result, 1)
		go func(i int) {
			rep, err := sw.Request(context.Background(), of.TypeEchoRequest, rawBody([]byte{byte(i)}))
			results[i] <- result{rep, err}
		}(i)
	}
	var reqs []msg
	for range 3 {
		reqs = append(reqs, h.sw.expect(of.TypeEchoRequest))
	}
	// Answer in reverse order; payload tells which caller it is.
	for i := len(reqs) - 1; i >= 0; i-- {
		h.sw.send(of.TypeEchoReply, reqs[i].Xid, append([]byte("r"), reqs[i].Body...))
	}
	for i := range results {
		r := recv(t, results[i], "request result")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !bytes.Equal(r.rep.Body, []byte{'r', byte(i)}) {
			t.Errorf("caller %d got body %q", i, r.rep.Body)
		}
		if r.rep.Header.Type != of.TypeEchoReply {
			t.Errorf("reply type %s", r.rep.Header.Type)
		}
	}
}

func TestMultipartReassembly(t *testing.T) {
	h, sw := upSession(t, nil, newRecorder("rec"))
	done := make(chan []ofp.Port, 1)
	errc := make(chan error, 1)
	go func() {
		p, err := sw.PortDesc(context.Background())
		errc <- err
		done <- p
	}()
	req := h.sw.expect(of.TypeMultipartRequest)
	// An unrelated reply in between must not disturb reassembly.
	for i := uint32(1); i <= 5; i++ {
		h.sw.send(of.TypeMultipartReply, req.Xid, mpReply(ofp.MultipartTypePortDescription, i < 5, portBytes(i, "skc-x")))
		h.sw.send(of.TypeEchoReply, 999999, nil)
	}
	if err := recv(t, errc, "PortDesc"); err != nil {
		t.Fatal(err)
	}
	ports := <-done
	if len(ports) != 5 {
		t.Fatalf("got %d ports, want 5 from 5 parts", len(ports))
	}
	for i, p := range ports {
		if p.PortNo != ofp.PortNo(i+1) {
			t.Errorf("port %d = %d", i, p.PortNo)
		}
	}
}

func TestMultipartTypeMismatch(t *testing.T) {
	h, sw := upSession(t, nil, newRecorder("rec"))
	errc := make(chan error, 1)
	go func() { _, err := sw.GroupDesc(context.Background()); errc <- err }()
	req := h.sw.expect(of.TypeMultipartRequest)
	h.sw.send(of.TypeMultipartReply, req.Xid, mpReply(ofp.MultipartTypeFlow, false, nil))
	if err := recv(t, errc, "GroupDesc"); err == nil || !strings.Contains(err.Error(), "answered with type") {
		t.Fatalf("err = %v, want type mismatch", err)
	}
}

func errBody(t, code uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, t)
	b = binary.BigEndian.AppendUint16(b, code)
	return append(b, data...)
}

func TestErrorRouting(t *testing.T) {
	rec := newRecorder("rec")
	h, sw := upSession(t, nil, rec)
	ctx := context.Background()

	// 1. An error with a pending request's xid goes to that request.
	errc := make(chan error, 1)
	go func() { _, err := sw.Request(ctx, of.TypeGetConfigRequest, nil); errc <- err }()
	req := h.sw.expect(of.TypeGetConfigRequest)
	h.sw.send(of.TypeError, req.Xid, errBody(1, 1, req.Raw))
	err := recv(t, errc, "request error")
	var oe *OFPError
	if !errors.As(err, &oe) || oe.Type != 1 || oe.Code != 1 || oe.Xid != req.Xid {
		t.Fatalf("request err = %v, want *OFPError 1/1", err)
	}

	// 2. An error for an async message with no barrier goes to ErrorHandler.
	if err := sw.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd}); err != nil {
		t.Fatal(err)
	}
	fm := h.sw.expect(of.TypeFlowMod)
	h.sw.send(of.TypeError, fm.Xid, errBody(5, 2, fm.Raw))
	ev := recv(t, rec.errCh, "ErrorHandler")
	if ev.Xid != fm.Xid || ev.Type != 5 || ev.Code != 2 || !bytes.Equal(ev.Data, fm.Raw) {
		t.Fatalf("error event = %+v", ev)
	}

	// 3. ... and also to the next Barrier, since its flow mod was queued
	// before that barrier (the error arrived before Barrier was called).
	go func() { errc <- sw.Barrier(ctx) }()
	br := h.sw.expect(of.TypeBarrierRequest)
	h.sw.send(of.TypeBarrierReply, br.Xid, nil)
	if err := recv(t, errc, "barrier"); !errors.As(err, &oe) || oe.Code != 2 {
		t.Fatalf("barrier = %v, want the earlier error code 2", err)
	}

	// 4. Errors for messages queued before a barrier, arriving while it is
	// pending, go to that barrier only.
	if err := sw.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 1}); err != nil {
		t.Fatal(err)
	}
	if err := sw.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 2}); err != nil {
		t.Fatal(err)
	}
	go func() { errc <- sw.Barrier(ctx) }()
	fm1 := h.sw.expect(of.TypeFlowMod)
	fm2 := h.sw.expect(of.TypeFlowMod)
	br = h.sw.expect(of.TypeBarrierRequest)
	h.sw.send(of.TypeError, fm1.Xid, errBody(5, 1, nil))
	h.sw.send(of.TypeError, fm2.Xid, errBody(5, 3, nil))
	h.sw.send(of.TypeBarrierReply, br.Xid, nil)
	err = recv(t, errc, "barrier")
	if err == nil {
		t.Fatal("barrier returned nil, want the two flow-mod errors")
	}
	var codes []ofp.ErrCode
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var oe *OFPError
		if errors.As(e, &oe) {
			codes = append(codes, oe.Code)
		}
	}
	if len(codes) != 2 || codes[0] != 1 || codes[1] != 3 {
		t.Fatalf("barrier errors codes = %v, want [1 3]", codes)
	}
	select {
	case ev := <-rec.errCh:
		t.Fatalf("error claimed by barrier also reached ErrorHandler: %+v", ev)
	default:
	}

	// 5. A barrier with nothing before it returns nil; errors for messages
	// queued after a barrier are not its own.
	go func() { errc <- sw.Barrier(ctx) }()
	br = h.sw.expect(of.TypeBarrierRequest)
	if err := sw.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 4}); err != nil {
		t.Fatal(err)
	}
	fm4 := h.sw.expect(of.TypeFlowMod)
	h.sw.send(of.TypeError, fm4.Xid, errBody(5, 7, nil))
	recv(t, rec.errCh, "error for a message after the barrier")
	h.sw.send(of.TypeBarrierReply, br.Xid, nil)
	if err := recv(t, errc, "barrier"); err != nil {
		t.Fatalf("clean barrier = %v", err)
	}
}

func TestRequestTimeoutAndDisconnectFailsPending(t *testing.T) {
	h, sw := upSession(t, nil, newRecorder("rec"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := sw.Request(ctx, of.TypeGetConfigRequest, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- sw.Barrier(context.Background()) }()
	h.sw.expect(of.TypeBarrierRequest)
	h.sw.conn.Close()
	if err := recv(t, errc, "barrier"); !isClosedErr(err) {
		t.Fatalf("pending barrier after disconnect = %v, want ErrClosed", err)
	}
}

func TestMalformedInputClosesSession(t *testing.T) {
	// reason is what the session's error and its "switch disconnected"
	// log line must say.
	cases := map[string]struct {
		raw    []byte
		reason string
	}{
		"length below 8":    {[]byte{4, 10, 0, 4, 0, 0, 0, 1}, "header length 4 below 8"},
		"truncated message": {[]byte{4, 10, 0, 200, 0, 0, 0, 1, 1, 2, 3}, "read 200-byte message type 10: unexpected EOF"},
		"garbage OXM":       {append([]byte{4, 10, 0, 42, 0, 0, 0, 1}, append(make([]byte, 16), 0, 1, 0, 12, 0x80, 0, 0, 40, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)...), "malformed packet-in xid 1"},
		"short port status": {[]byte{4, 12, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0}, "malformed port status"},
		"short error":       {[]byte{4, 1, 0, 10, 0, 0, 0, 1, 0, 1}, "malformed error message"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder("rec")
			h, _ := upSession(t, nil, rec)
			h.sw.write(tc.raw)
			if name == "truncated message" {
				h.sw.conn.Close()
			}
			recv(t, rec.downCh, "SwitchDown")
			err := h.sessionErr(t) // returns after the disconnect is logged
			if err == nil {
				t.Fatal("ServeConn returned nil for malformed input")
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("session error %q does not say %q", err, tc.reason)
			}
			if !h.log.containsAll("switch disconnected", "reason=", tc.reason) {
				t.Errorf("no \"switch disconnected\" log line with reason %q; log:\n%s", tc.reason, h.log)
			}
		})
	}
}

func TestWrongVersionAfterHandshakeGetsBadVersion(t *testing.T) {
	h, _ := upSession(t, nil, newRecorder("rec"))
	h.sw.sendVersion(1, of.TypeEchoRequest, 5, nil)
	e := h.sw.expect(of.TypeError)
	if e.Xid != 5 || binary.BigEndian.Uint16(e.Body) != 1 || binary.BigEndian.Uint16(e.Body[2:]) != 0 {
		t.Fatalf("error = xid %d body %x, want BAD_REQUEST/BAD_VERSION", e.Xid, e.Body)
	}
}

// blockingApp blocks in SwitchUp until released.
type panicApp struct{ n int }

func (p *panicApp) Name() string { return "skc-panicky" }
func (p *panicApp) PacketIn(ctx context.Context, sw Switch, ev *PacketIn) Disposition {
	p.n++
	panic("skc boom")
}

func TestPanicInAppRecovered(t *testing.T) {
	pa := &panicApp{}
	rec := newRecorder("rec")
	h, _ := upSession(t, nil, pa, rec)
	h.sw.send(of.TypePacketIn, 0, packetInBody(3, []byte("frame-1")))
	h.sw.send(of.TypePacketIn, 0, packetInBody(3, []byte("frame-2")))
	a := recv(t, rec.piCh, "packet-in after panic")
	b := recv(t, rec.piCh, "second packet-in after panic")
	if string(a.Data) != "frame-1" || string(b.Data) != "frame-2" || a.InPort != 3 {
		t.Fatalf("got %q %q in_port %d", a.Data, b.Data, a.InPort)
	}
	if !h.log.contains("skc-panicky") || !h.log.contains("skc boom") || !h.log.contains("dpid=00:00:00:00:00:00:00:01") {
		t.Error("panic log lacks app name, panic value or DPID")
	}
}

func TestStopDisposition(t *testing.T) {
	first, second := newRecorder("first"), newRecorder("second")
	first.dispFn = func(ev *PacketIn) Disposition {
		if string(ev.Data) == "stop" {
			return Stop
		}
		return Continue
	}
	h, _ := upSession(t, nil, first, second)
	h.sw.send(of.TypePacketIn, 0, packetInBody(1, []byte("stop")))
	h.sw.send(of.TypePacketIn, 0, packetInBody(1, []byte("go")))
	recv(t, first.piCh, "packet-in at first app")
	recv(t, first.piCh, "second packet-in at first app")
	got := recv(t, second.piCh, "packet-in at second app")
	if string(got.Data) != "go" {
		t.Fatalf("second app saw %q first; the stopped packet-in leaked", got.Data)
	}
}

func TestOrderOfApps(t *testing.T) {
	var order []string
	mk := func(name string) *recorder {
		r := newRecorder(name)
		r.onPI = func(ctx context.Context, sw Switch, ev *PacketIn) { order = append(order, name) }
		return r
	}
	a, b, c := mk("a"), mk("b"), mk("c")
	h, _ := upSession(t, nil, a, b, c)
	h.sw.send(of.TypePacketIn, 0, packetInBody(1, []byte("x")))
	recv(t, c.piCh, "packet-in at last app")
	if strings.Join(order, ",") != "a,b,c" {
		t.Fatalf("order = %v", order)
	}
}

func TestSecondConnectionSameDPIDReplacesOld(t *testing.T) {
	sink := &logSink{}
	rec := newRecorder("rec")
	c, err := New(testConfig(sink), rec)
	if err != nil {
		t.Fatal(err)
	}
	h1 := attach(t, c, sink)
	h1.sw.handshake(7)
	old := recv(t, rec.upCh, "first SwitchUp")
	h2 := attach(t, c, sink)
	h2.sw.handshake(7)
	down := recv(t, rec.downCh, "SwitchDown of replaced session")
	if down != old {
		t.Fatal("SwitchDown not for the old session")
	}
	nw := recv(t, rec.upCh, "second SwitchUp")
	if nw == old {
		t.Fatal("same handle")
	}
	if got, _ := c.Switch(7); got != nw {
		t.Fatal("registry does not hold the new session")
	}
	if !sink.contains("replaces") {
		t.Error("replacement not logged")
	}
	if err := h1.sessionErr(t); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("old session err = %v", err)
	}
}

// TestSendQueueBoundDoesNotBlockOtherSwitches: a switch that stops
// reading fills its bounded queue; senders to it wait and fail on ctx;
// another switch's session carries on.
func TestSendQueueBoundDoesNotBlockOtherSwitches(t *testing.T) {
	sink := &logSink{}
	cfg := testConfig(sink)
	cfg.SendQueueLen = 8
	cfg.DeadPeerTimeout = time.Minute
	rec := newRecorder("rec")
	c, err := New(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	slow := attach(t, c, sink)
	slow.sw.handshake(1)
	fast := attach(t, c, sink)
	fast.sw.handshake(2)
	s1, s2 := waitSwitch(t, c, 1), waitSwitch(t, c, 2)
	if all := c.Switches(); len(all) != 2 || all[0] != s1 || all[1] != s2 {
		t.Fatalf("Switches() = %v, want [1 2] sorted by DPID", all)
	}
	// Stop the slow fake switch's reader: net.Pipe writes now block.
	slowConn := slow.sw.conn
	_ = slowConn
	blockReads(slow.sw)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var sendErr error
	n := 0
	for ; n < 1000; n++ {
		if sendErr = s1.FlowMod(ctx, &ofp.FlowMod{Command: ofp.FlowAdd}); sendErr != nil {
			break
		}
	}
	if sendErr == nil || !errors.Is(sendErr, context.DeadlineExceeded) {
		t.Fatalf("after %d flow mods to a stuck switch err = %v, want deadline exceeded", n, sendErr)
	}
	if n > 8+8+1 { // queue + one batch in the writer
		t.Errorf("queued %d messages to a stuck switch, bound is 8 (+ one batch being written)", n)
	}
	// The other switch is unaffected.
	for i := range 50 {
		if err := s2.FlowMod(context.Background(), &ofp.FlowMod{Command: ofp.FlowAdd, Priority: uint16(i)}); err != nil {
			t.Fatal(err)
		}
		fast.sw.expect(of.TypeFlowMod)
	}
}

// blockReads makes the fake switch stop draining its connection.
func blockReads(f *fakeSwitch) {
	// The reader goroutine blocks once its channel is full; replace the
	// channel consumer by nothing and fill it.
	for {
		select {
		case f.in <- msg{}:
		default:
			return
		}
	}
}

func TestPacketInDecodedFields(t *testing.T) {
	rec := newRecorder("rec")
	h, sw := upSession(t, nil, rec)
	body := packetInBody(0xfffffffe, []byte{1, 2, 3, 4})
	binary.BigEndian.PutUint32(body, 0x1234)
	body[6], body[7] = 1, 3
	binary.BigEndian.PutUint64(body[8:], 0xdeadbeef)
	h.sw.send(of.TypePacketIn, 0, body)
	ev := recv(t, rec.piCh, "packet-in")
	if ev.BufferID != 0x1234 || ev.TotalLen != 4 || ev.Reason != 1 || ev.TableID != 3 || ev.Cookie != 0xdeadbeef ||
		ev.InPort != 0xfffffffe || !bytes.Equal(ev.Data, []byte{1, 2, 3, 4}) || len(ev.Match.Fields) != 1 {
		t.Fatalf("packet-in = %+v", ev)
	}
	_ = sw
}

func TestListenServeTCPAndUnix(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "tcp:127.0.0.1:0", "unix:" + t.TempDir() + "/skc.sock"} {
		t.Run(listen, func(t *testing.T) {
			rec := newRecorder("rec")
			cfg := testConfig(&logSink{})
			cfg.Listen = listen
			c, err := New(cfg, rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Listen(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- c.Serve(ctx) }()
			addr := c.Addr()
			conn, err := net.Dial(addr.Network(), addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fs := newFakeSwitch(t, conn)
			fs.handshake(0x99, 1)
			sw := recv(t, rec.upCh, "SwitchUp")
			if sw.DPID() != 0x99 {
				t.Fatal(sw.DPID())
			}
			cancel()
			recv(t, rec.downCh, "SwitchDown on shutdown")
			if err := recv(t, served, "Serve return"); err != nil {
				t.Fatalf("Serve = %v, want nil on cancel", err)
			}
		})
	}
}

func TestNewRejectsBadApps(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil {
		t.Error("nil app accepted")
	}
	if _, err := New(Config{}, newRecorder("x"), newRecorder("x")); err == nil {
		t.Error("duplicate names accepted")
	}
	if _, err := New(Config{}, nameOnly{}); err == nil {
		t.Error("app without handlers accepted")
	}
	c, _ := New(Config{Listen: "ssl:127.0.0.1:0"}, newRecorder("x"))
	if err := c.Listen(); err == nil {
		t.Error("ssl: without TLS config accepted")
	}
}

type nameOnly struct{}

func (nameOnly) Name() string { return "skc-name-only" }

func TestDPIDStringParse(t *testing.T) {
	d := DPID(0x0102030405060708)
	if d.String() != "01:02:03:04:05:06:07:08" {
		t.Fatal(d.String())
	}
	for _, s := range []string{"01:02:03:04:05:06:07:08", "0102030405060708", "0x102030405060708", "72623859790382856"} {
		got, err := ParseDPID(s)
		if err != nil || got != d {
			t.Errorf("ParseDPID(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "01:02", "zz:02:03:04:05:06:07:08", "0xg", "1:2:3:4:5:6:7:8"} {
		if _, err := ParseDPID(s); err == nil {
			t.Errorf("ParseDPID(%q) accepted", s)
		}
	}
}

// TestRequestFromHandlerWithFullEventQueue: a handler waiting for a reply
// while packet-ins fill the event queue must not deadlock the reader.
func TestRequestFromHandlerWithFullEventQueue(t *testing.T) {
	rec := newRecorder("rec")
	barrierErr := make(chan error, 1)
	first := true
	rec.onPI = func(ctx context.Context, sw Switch, ev *PacketIn) {
		if first {
			first = false
			barrierErr <- sw.Barrier(ctx)
		}
	}
	h, _ := upSession(t, &Config{SendQueueLen: 2}, rec)
	go func() {
		for i := range 20 {
			h.sw.send(of.TypePacketIn, 0, packetInBody(1, []byte{byte(i)}))
		}
	}()
	br := h.sw.expect(of.TypeBarrierRequest)
	time.Sleep(50 * time.Millisecond) // let the packet-ins fill the queue
	h.sw.send(of.TypeBarrierReply, br.Xid, nil)
	if err := recv(t, barrierErr, "barrier from handler"); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		recv(t, rec.piCh, "packet-in")
	}
}

// TestFlowModStandardMatchSentAsOXM: netrack's zero Match.Type
// (OFPMT_STANDARD) goes on the wire as OFPMT_OXM; the caller's value is
// untouched and the rest matches netrack's encoding.
func TestFlowModStandardMatchSentAsOXM(t *testing.T) {
	h, sw := upSession(t, nil, newRecorder("rec"))
	fm := &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 3, Match: ofp.Match{Fields: []ofp.XM{
		{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeInPort, Value: ofp.XMValue{0, 0, 0, 1}}}}}
	if err := sw.FlowMod(context.Background(), fm); err != nil {
		t.Fatal(err)
	}
	got := h.sw.expect(of.TypeFlowMod)
	if fm.Match.Type != ofp.MatchTypeStandard {
		t.Fatal("caller's FlowMod modified")
	}
	var want bytes.Buffer
	if _, err := fm.WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	w := want.Bytes()
	w[41] = 1
	if !bytes.Equal(got.Body, w) {
		t.Fatalf("flow mod body\n got %x\nwant %x", got.Body, w)
	}
}

func TestFlowRemovedAndPortStatusDispatch(t *testing.T) {
	rec := newRecorder("rec")
	h, sw := upSession(t, nil, rec)
	// ofp_flow_removed (7.4.2): cookie, priority, reason, table,
	// duration sec/nsec, idle, hard, packets, bytes, match.
	fr := binary.BigEndian.AppendUint64(nil, 0xc0ffee)
	fr = binary.BigEndian.AppendUint16(fr, 7)
	fr = append(fr, byte(ofp.FlowReasonIdleTimeout), 2)
	fr = binary.BigEndian.AppendUint32(fr, 12)
	fr = binary.BigEndian.AppendUint32(fr, 34)
	fr = binary.BigEndian.AppendUint16(fr, 60)
	fr = binary.BigEndian.AppendUint16(fr, 0)
	fr = binary.BigEndian.AppendUint64(fr, 5)
	fr = binary.BigEndian.AppendUint64(fr, 500)
	fr = append(fr, 0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0)
	h.sw.send(of.TypeFlowRemoved, 0, fr)
	h.sw.send(of.TypePortStatus, 0, append([]byte{byte(ofp.PortReasonModify), 0, 0, 0, 0, 0, 0, 0}, portBytes(1, "skc-m")...))
	go func() {
		b := h.sw.expect(of.TypeBarrierRequest)
		h.sw.send(of.TypeBarrierReply, b.Xid, nil)
	}()
	if err := sw.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Events are dispatched asynchronously; poll.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		n, m := len(rec.frs), len(rec.ports)
		rec.mu.Unlock()
		if n == 1 && m == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d flow removed, %d port status", n, m)
		}
		time.Sleep(time.Millisecond)
	}
	got := rec.frs[0]
	if got.Cookie != 0xc0ffee || got.Priority != 7 || got.Reason != ofp.FlowReasonIdleTimeout || got.Table != 2 ||
		got.DurationSec != 12 || got.DurationNSec != 34 || got.IdleTimeout != 60 || got.PacketCount != 5 || got.ByteCount != 500 ||
		len(got.Match.Fields) != 1 {
		t.Fatalf("flow removed = %+v", got)
	}
	if ps := rec.ports[0]; ps.Reason != ofp.PortReasonModify || ps.Port.Name != "skc-m" || ps.Port.PortNo != 1 {
		t.Fatalf("port status = %+v", ps)
	}
	if p, _ := sw.Port(1); p.Name != "skc-m" {
		t.Fatalf("snapshot not updated: %+v", p)
	}
}

// slowApp blocks packet-ins from one DPID until released.
type slowApp struct {
	block   DPID
	release chan struct{}
	seen    chan DPID
}

func (a *slowApp) Name() string { return "skc-slow" }
func (a *slowApp) PacketIn(ctx context.Context, sw Switch, ev *PacketIn) Disposition {
	if sw.DPID() == a.block {
		<-a.release
	}
	a.seen <- sw.DPID()
	return Continue
}

// TestSlowAppSlowsOnlyItsSwitch: handlers run per switch, so an app
// stuck on one switch does not delay another switch's events.
func TestSlowAppSlowsOnlyItsSwitch(t *testing.T) {
	app := &slowApp{block: 1, release: make(chan struct{}), seen: make(chan DPID, 4)}
	sink := &logSink{}
	c, err := New(testConfig(sink), app)
	if err != nil {
		t.Fatal(err)
	}
	h1 := attach(t, c, sink)
	h1.sw.handshake(1)
	h2 := attach(t, c, sink)
	h2.sw.handshake(2)
	waitSwitch(t, c, 1)
	waitSwitch(t, c, 2)
	h1.sw.send(of.TypePacketIn, 0, packetInBody(1, []byte("a")))
	time.Sleep(10 * time.Millisecond)
	h2.sw.send(of.TypePacketIn, 0, packetInBody(1, []byte("b")))
	if got := recv(t, app.seen, "packet-in from the fast switch"); got != 2 {
		t.Fatalf("first handled packet-in came from %s, want switch 2", got)
	}
	close(app.release)
	if got := recv(t, app.seen, "packet-in from the released switch"); got != 1 {
		t.Fatalf("got %s", got)
	}
}

func TestFirstMessageNotHello(t *testing.T) {
	h := startSession(t, nil, newRecorder("rec"))
	h.sw.expect(of.TypeHello)
	h.sw.send(of.TypeEchoRequest, 3, nil)
	got := h.sw.expectClosed()
	found := false
	for _, m := range got {
		if m.Type == of.TypeError && binary.BigEndian.Uint16(m.Body) == 0 {
			found = true
		}
	}
	if !found {
		t.Fatal("no HELLO_FAILED error for a non-hello first message")
	}
	if err := h.sessionErr(t); err == nil || !strings.Contains(err.Error(), "not hello") {
		t.Fatalf("ServeConn = %v", err)
	}
}

// TestSendDuringSlowHandlerNotHeldByCork: while a handler is busy, a
// message queued by another goroutine still goes out promptly.
func TestSendDuringSlowHandlerNotHeldByCork(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder("rec")
	rec.onPI = func(ctx context.Context, sw Switch, ev *PacketIn) { <-release }
	h, sw := upSession(t, nil, rec)
	defer close(release)
	h.sw.send(of.TypePacketIn, 0, packetInBody(1, []byte("x")))
	// Wait until the handler is running (the event loop is corked).
	deadline := time.Now().Add(5 * time.Second)
	for !sw.corked.Load() {
		if time.Now().After(deadline) {
			t.Fatal("event loop never corked")
		}
		time.Sleep(time.Millisecond)
	}
	if err := sw.FlowMod(context.Background(), &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 42}); err != nil {
		t.Fatal(err)
	}
	h.sw.expect(of.TypeFlowMod) // fails after 5s if held until the handler returns
}
