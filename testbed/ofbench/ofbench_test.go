package ofbench

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

// startResponder serves r on a fresh loopback port and returns its address.
func startResponder(t *testing.T, r *Responder) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("responder: %v", err)
		}
	})
	return l.Addr().String()
}

// quick returns a config for short test runs against addr.
func quick(addr string) Config {
	c := DefaultConfig()
	c.Controller = addr
	c.Switches = 3
	c.MACs = 1000
	c.Duration = 150 * time.Millisecond
	c.Runs = 2
	c.Warmup = 1
	c.ConnectInterval = time.Millisecond
	c.StartDelay = 10 * time.Millisecond
	c.HandshakeTimeout = 5 * time.Second
	return c
}

func TestLatencyModeAgainstResponder(t *testing.T) {
	r := &Responder{}
	cfg := quick(startResponder(t, r))
	var lines []string
	cfg.OnRun = func(rs RunStats) { lines = append(lines, rs.String()) }
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Switches != 3 || len(res.SwitchErrors) != 0 {
		t.Fatalf("switches = %d, errors %v; want 3, none", res.Switches, res.SwitchErrors)
	}
	if len(res.Warmups) != 1 || len(res.Runs) != 2 || len(lines) != 3 {
		t.Fatalf("got %d warmups, %d runs, %d OnRun calls; want 1, 2, 3", len(res.Warmups), len(res.Runs), len(lines))
	}
	if !strings.HasPrefix(lines[0], "warmup 1: 3 switches, ") || !strings.HasPrefix(lines[2], "run 2: 3 switches, ") {
		t.Errorf("run lines: %q", lines)
	}
	// Totals over all runs: a loaded machine may stall a whole process
	// for a run or two, so single runs may legitimately be empty.
	all := totals(res)
	if all.PacketOuts == 0 || all.FlowMods != 0 {
		t.Errorf("%d packet-outs, %d flow-mods; want >0, 0", all.PacketOuts, all.FlowMods)
	}
	// One packet-out per packet-in, each identified by its frame (a
	// snapshot may split a packet-out from its answer count: 1 per switch).
	if diff := int64(all.PacketOuts) - int64(all.Answered); diff < 0 || diff > 3 {
		t.Errorf("%d packet-outs but %d answered", all.PacketOuts, all.Answered)
	}
	for i, n := range all.PerSwitch {
		if n == 0 {
			t.Errorf("switch %d got no response: %v", i+1, all.PerSwitch)
		}
	}
	if all.AvgRTT() <= 0 || res.AvgRTT <= 0 {
		t.Errorf("avg rtt %v / %v", all.AvgRTT(), res.AvgRTT)
	}
	if res.Timeouts != 0 {
		t.Errorf("%d timeouts", res.Timeouts)
	}
	// Every packet-in the responder saw was sent by us; all answered ones
	// were seen.
	if got := r.PacketIns(); got < all.Answered {
		t.Errorf("responder saw %d packet-ins, fewer than the %d answered", got, all.Answered)
	}
}

// totals sums the figures of every run, warmups included.
func totals(res Result) RunStats {
	var t RunStats
	for _, rs := range append(append([]RunStats(nil), res.Warmups...), res.Runs...) {
		if t.PerSwitch == nil {
			t.PerSwitch = make([]uint64, len(rs.PerSwitch))
		}
		for i, n := range rs.PerSwitch {
			t.PerSwitch[i] += n
		}
		t.Elapsed += rs.Elapsed
		t.FlowMods += rs.FlowMods
		t.PacketOuts += rs.PacketOuts
		t.Answered += rs.Answered
		t.RTTSum += rs.RTTSum
		t.Timeouts += rs.Timeouts
		t.Lost += rs.Lost
		t.IgnoredFlowMods += rs.IgnoredFlowMods
	}
	return t
}

func TestThroughputModeWithFlowMods(t *testing.T) {
	r := &Responder{FlowMod: true}
	cfg := quick(startResponder(t, r))
	cfg.Mode = ModeThroughput
	cfg.Window = 16
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	all := totals(res)
	if all.FlowMods == 0 || all.PacketOuts == 0 {
		t.Fatalf("%d flow-mods, %d packet-outs; want both > 0", all.FlowMods, all.PacketOuts)
	}
	// Flow-mod + packet-out per packet-in: twice as many responses.
	if ratio := all.Rate() / all.AnsweredRate(); ratio < 1.9 || ratio > 2.1 {
		t.Errorf("responses/answered = %.2f, want 2", ratio)
	}
	if !regexp.MustCompile(`^ofbench: mode=throughput switches=3 median=\d+ resp/s( [a-z_]+=\S+)+$`).MatchString(res.Summary()) {
		t.Errorf("summary %q", res.Summary())
	}
	if !strings.Contains(res.Summary(), " window=16 ") {
		t.Errorf("summary lacks window=16: %q", res.Summary())
	}
}

func TestBufferedPacketIns(t *testing.T) {
	r := &Responder{}
	cfg := quick(startResponder(t, r))
	cfg.Buffered = true
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if all := totals(res); all.Answered == 0 || all.Answered+3 < all.PacketOuts {
		t.Errorf("%d answered of %d packet-outs (answers carry buffer ids)", all.Answered, all.PacketOuts)
	}
}

// silentController completes handshakes and counts packet-ins per
// connection without ever answering them.
type silentController struct {
	mu   sync.Mutex
	pins map[int]int // connection number -> packet-ins received
}

func (s *silentController) serve(t *testing.T) string {
	t.Helper()
	s.pins = map[int]int{}
	return serveScripted(t, func(n int, c net.Conn) {
		writeMsg(t, c, of.TypeHello, 1, helloBody())
		writeMsg(t, c, of.TypeFeaturesRequest, 2, nil)
		for {
			h, _, err := readMsg(c)
			if err != nil {
				return
			}
			if h == of.TypePacketIn {
				s.mu.Lock()
				s.pins[n]++
				s.mu.Unlock()
			}
		}
	})
}

func TestWindowBoundsOutstandingPacketIns(t *testing.T) {
	for _, tc := range []struct {
		mode   Mode
		window int
		want   int
	}{
		{ModeLatency, 64, 1},
		{ModeThroughput, 5, 5},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			sc := &silentController{}
			cfg := quick(sc.serve(t))
			cfg.Mode, cfg.Window = tc.mode, tc.window
			cfg.Switches = 2
			cfg.Timeout = time.Minute // nothing is reclaimed during the test
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			sc.mu.Lock()
			defer sc.mu.Unlock()
			if len(sc.pins) != 2 {
				t.Fatalf("packet-ins per connection %v, want 2 connections", sc.pins)
			}
			for n, got := range sc.pins {
				if got != tc.want {
					t.Errorf("connection %d: %d packet-ins without answers, want exactly the window %d", n, got, tc.want)
				}
			}
			if res.Median != 0 {
				t.Errorf("median %v resp/s from a silent controller", res.Median)
			}
		})
	}
}

func TestTimeoutsReclaimUnansweredPacketIns(t *testing.T) {
	sc := &silentController{}
	cfg := quick(sc.serve(t))
	cfg.Switches = 1
	cfg.Timeout = 100 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Timeouts == 0 {
		t.Fatalf("no timeouts reported against a silent controller: %+v", res.Runs)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.pins[0] < 2 {
		t.Errorf("only %d packet-ins sent; timed-out ones should be replaced", sc.pins[0])
	}
}

func TestDroppedAnswersCountedLostWithoutStalling(t *testing.T) {
	addr := serveScripted(t, func(_ int, c net.Conn) {
		writeMsg(t, c, of.TypeHello, 1, helloBody())
		writeMsg(t, c, of.TypeFeaturesRequest, 2, nil)
		n := 0
		for {
			typ, m, err := readMsg(c)
			if err != nil {
				return
			}
			if typ != of.TypePacketIn {
				continue
			}
			n++
			if n%3 == 0 {
				continue // dropped, as an overloaded controller does
			}
			if _, err := c.Write(appendAnswer(nil, m, 7, false)); err != nil {
				return
			}
		}
	})
	cfg := quick(addr)
	cfg.Mode = ModeThroughput
	cfg.Window = 8
	cfg.Timeout = time.Minute // only in-order loss detection can free slots
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	all := totals(res)
	if all.Timeouts != 0 {
		t.Errorf("%d timeouts, want 0", all.Timeouts)
	}
	// Two answered per lost; the last window of each switch may be open.
	if d := int64(all.Answered) - 2*int64(all.Lost); all.Lost == 0 || d < -int64(3*cfg.Window) || d > int64(3*cfg.Window) {
		t.Errorf("answered %d, lost %d: want about 2:1", all.Answered, all.Lost)
	}
	if all.Answered < 100 {
		t.Errorf("only %d answered: dropped answers stalled the window", all.Answered)
	}
}

func TestSlowControllerIsNotTimedOut(t *testing.T) {
	// The controller answers one packet-in every 10 ms, in order: with 16
	// outstanding each waits ~160 ms in its queue, beyond the 100 ms
	// timeout, yet responses keep coming. Reclaiming and resending would
	// only lengthen the queue. The controller is never silent for more
	// than 10 ms, so only a stall of 10x that (a loaded machine running
	// -race) could make it look silent.
	const per = 10 * time.Millisecond
	addr := serveScripted(t, func(_ int, c net.Conn) {
		writeMsg(t, c, of.TypeHello, 1, helloBody())
		writeMsg(t, c, of.TypeFeaturesRequest, 2, nil)
		queue := make(chan []byte, 4096)
		go func() {
			for m := range queue {
				time.Sleep(per)
				if _, err := c.Write(appendAnswer(nil, m, 7, false)); err != nil {
					return
				}
			}
		}()
		defer close(queue)
		for {
			typ, m, err := readMsg(c)
			if err != nil {
				return
			}
			if typ == of.TypePacketIn {
				queue <- m
			}
		}
	})
	cfg := quick(addr)
	cfg.Switches = 1
	cfg.Mode = ModeThroughput
	cfg.Window = 16
	cfg.Timeout = 100 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	all := totals(res)
	if all.Timeouts != 0 || all.Answered == 0 {
		t.Errorf("%d timeouts, %d answered: a slow but answering controller must not be timed out", all.Timeouts, all.Answered)
	}
	if rtt := all.AvgRTT(); rtt < 8*per {
		t.Errorf("avg rtt %v, want about 16 x %v of queueing", rtt, per)
	}
}

func TestUnreachableController(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := quick(addr)
	_, err = Run(context.Background(), cfg)
	if err == nil {
		t.Fatal("Run against a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "cannot connect to controller "+addr) {
		t.Errorf("error %q does not name the unreachable controller", err)
	}
}

func TestInvalidConfigNamesField(t *testing.T) {
	for field, mutate := range map[string]func(*Config){
		"mode":       func(c *Config) { c.Mode = "fast" },
		"switches":   func(c *Config) { c.Switches = -1 },
		"macs":       func(c *Config) { c.MACs = 1 },
		"controller": func(c *Config) { c.Controller = "localhost" },
		"warmup":     func(c *Config) { c.Warmup = -2 },
		"window":     func(c *Config) { c.Window = MaxWindow + 1 },
	} {
		c := DefaultConfig()
		mutate(&c)
		_, err := Run(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v does not name the field", field, err)
		}
	}
}

func TestMalformedMessageFailsOnlyThatSwitch(t *testing.T) {
	var conns atomic.Int32
	addr := serveScripted(t, func(n int, c net.Conn) {
		conns.Add(1)
		writeMsg(t, c, of.TypeHello, 1, helloBody())
		writeMsg(t, c, of.TypeFeaturesRequest, 2, nil)
		answered := 0
		for {
			h, m, err := readMsg(c)
			if err != nil {
				return
			}
			if h != of.TypePacketIn {
				continue
			}
			if n == 0 && answered == 5 {
				// Declares 4 bytes: the stream cannot be resynchronised.
				_, _ = c.Write([]byte{ofpVersion, byte(of.TypePacketOut), 0, 4, 0, 0, 0, 9})
				continue
			}
			answered++
			if _, err := c.Write(appendAnswer(nil, m, 7, false)); err != nil {
				return
			}
		}
	})
	cfg := quick(addr)
	cfg.Switches = 2
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res.SwitchErrors) != 1 || !IsMalformed(res.SwitchErrors[0]) {
		t.Fatalf("switch errors %v, want one malformed-message error", res.SwitchErrors)
	}
	if !strings.Contains(res.SwitchErrors[0].Error(), "switch 1 ") || !strings.Contains(res.SwitchErrors[0].Error(), "length 4") {
		t.Errorf("error %q does not name the switch and the bad length", res.SwitchErrors[0])
	}
	if all := totals(res); all.PerSwitch[0] > 5 || all.PerSwitch[1] <= 5 {
		t.Errorf("responses per switch %v: want switch 1 dead after 5, switch 2 counting", all.PerSwitch)
	}
}

func TestControllerRequestsAnswered(t *testing.T) {
	type exchange struct {
		name     string
		send     func(c net.Conn)
		wantType of.Type
		check    func(t *testing.T, body []byte)
	}
	errCode := func(typ ofp.ErrType, code ofp.ErrCode) func(*testing.T, []byte) {
		return func(t *testing.T, b []byte) {
			if len(b) < 4 || binary.BigEndian.Uint16(b) != uint16(typ) || binary.BigEndian.Uint16(b[2:]) != uint16(code) {
				t.Errorf("error body % x, want type %d code %d", b, typ, code)
			}
		}
	}
	multipart := func(mt ofp.MultipartType) func(c net.Conn) {
		return func(c net.Conn) {
			writeMsg(t, c, of.TypeMultipartRequest, 42, &ofp.MultipartRequest{Type: mt})
		}
	}
	exchanges := []exchange{
		{"echo", func(c net.Conn) { writeMsg(t, c, of.TypeEchoRequest, 42, rawBody("ping")) },
			of.TypeEchoReply, func(t *testing.T, b []byte) {
				if string(b) != "ping" {
					t.Errorf("echo reply body %q", b)
				}
			}},
		{"barrier", func(c net.Conn) { writeMsg(t, c, of.TypeBarrierRequest, 42, nil) }, of.TypeBarrierReply, nil},
		{"port desc", multipart(ofp.MultipartTypePortDescription), of.TypeMultipartReply,
			func(t *testing.T, b []byte) {
				var ports ofp.Ports
				if _, err := ports.ReadFrom(strings.NewReader(string(b[8:]))); err != nil {
					t.Fatal(err)
				}
				if len(ports) != DefaultPorts || ports[0].PortNo != 1 || !strings.HasPrefix(ports[0].Name, "ofb0-p1") {
					t.Errorf("ports %+v", ports)
				}
			}},
		{"flow stats", multipart(ofp.MultipartTypeFlow), of.TypeMultipartReply,
			func(t *testing.T, b []byte) {
				if len(b) != 8 || binary.BigEndian.Uint16(b) != uint16(ofp.MultipartTypeFlow) {
					t.Errorf("flow stats reply body % x, want empty reply", b)
				}
			}},
		{"desc", multipart(ofp.MultipartTypeDescription), of.TypeMultipartReply,
			func(t *testing.T, b []byte) {
				if len(b) != 8+1056 {
					t.Errorf("desc reply body %d bytes, want 8+1056", len(b))
				}
			}},
		{"meter features", multipart(ofp.MultipartTypeMeterFeatures), of.TypeError,
			errCode(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadMultipart)},
		{"get config", func(c net.Conn) { writeMsg(t, c, of.TypeGetConfigRequest, 42, nil) }, of.TypeGetConfigReply, nil},
		{"role", func(c net.Conn) {
			writeMsg(t, c, of.TypeRoleRequest, 42, &ofp.RoleRequest{Role: ofp.ControllerRoleMaster, GenerationID: 7})
		}, of.TypeRoleReply, func(t *testing.T, b []byte) {
			if binary.BigEndian.Uint32(b) != uint32(ofp.ControllerRoleMaster) || binary.BigEndian.Uint64(b[8:]) != 7 {
				t.Errorf("role reply % x", b)
			}
		}},
		{"unknown type", func(c net.Conn) { writeMsg(t, c, of.Type(99), 42, rawBody("junk")) }, of.TypeError,
			errCode(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadType)},
		{"experimenter", func(c net.Conn) { writeMsg(t, c, of.TypeExperiment, 42, rawBody(make([]byte, 8))) }, of.TypeError,
			errCode(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadExperimenter)},
		{"short multipart", func(c net.Conn) { writeMsg(t, c, of.TypeMultipartRequest, 42, rawBody{0, 13}) }, of.TypeError,
			errCode(ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestLen)},
	}

	results := make(chan string, 1)
	addr := serveScripted(t, func(_ int, c net.Conn) {
		defer close(results)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		writeMsg(t, c, of.TypeHello, 1, helloBody())
		writeMsg(t, c, of.TypeFeaturesRequest, 2, nil)
		// The switch's hello and features reply come first.
		if typ, m, err := readMsg(c); err != nil || typ != of.TypeHello {
			results <- "no hello: " + errString(err)
			return
		} else if ok, err := helloAccepts(m); !ok || err != nil {
			results <- "hello does not offer 1.3"
			return
		}
		typ, m, err := readMsg(c)
		if err != nil || typ != of.TypeFeaturesReply {
			results <- "no features reply: " + errString(err)
			return
		}
		var f ofp.SwitchFeatures
		if _, err := f.ReadFrom(strings.NewReader(string(m[8:]))); err != nil || f.DatapathID != 1 || f.NumTables == 0 {
			results <- "bad features reply"
			return
		}
		for _, ex := range exchanges {
			ex.send(c)
			for {
				typ, m, err := readMsg(c)
				if err != nil {
					results <- ex.name + ": " + err.Error()
					return
				}
				if typ == of.TypePacketIn {
					continue // not answered: the switch keeps one outstanding
				}
				if typ != ex.wantType || binary.BigEndian.Uint32(m[4:]) != 42 {
					results <- ex.name + ": got " + typ.String()
					return
				}
				if ex.check != nil {
					t.Run(ex.name, func(t *testing.T) { ex.check(t, m[8:]) })
				}
				break
			}
		}
		results <- "ok"
	})
	cfg := quick(addr)
	cfg.Switches = 1
	cfg.Runs = 1000 // stopped by ctx once the script is done
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, cfg)
		done <- err
	}()
	if got := <-results; got != "ok" {
		t.Errorf("script: %s", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v, want context.Canceled", err)
	}
}

func TestIncompatibleHelloFailsHandshake(t *testing.T) {
	got := make(chan []byte, 1)
	addr := serveScripted(t, func(_ int, c net.Conn) {
		// OpenFlow 1.0 hello without a bitmap.
		_, _ = c.Write([]byte{0x01, 0, 0, 8, 0, 0, 0, 1})
		for {
			typ, m, err := readMsg(c)
			if err != nil {
				got <- nil
				return
			}
			if typ == of.TypeError {
				got <- m
				return
			}
		}
	})
	cfg := quick(addr)
	cfg.Switches = 1
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does not offer OpenFlow 1.3") {
		t.Errorf("Run: %v, want a handshake error about the version", err)
	}
	m := <-got
	if len(m) < 12 || binary.BigEndian.Uint16(m[8:]) != uint16(ofp.ErrTypeHelloFailed) {
		t.Errorf("controller got % x, want OFPET_HELLO_FAILED", m)
	}
}

func TestHelloAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		ok   bool
		err  bool
	}{
		{"1.3 no bitmap", []byte{4, 0, 0, 8, 0, 0, 0, 0}, true, false},
		{"1.5 no bitmap", []byte{6, 0, 0, 8, 0, 0, 0, 0}, true, false},
		{"1.0 no bitmap", []byte{1, 0, 0, 8, 0, 0, 0, 0}, false, false},
		{"1.5 bitmap 1.0+1.5", []byte{6, 0, 0, 16, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0x42}, false, false},
		{"1.0 bitmap with 1.3", []byte{1, 0, 0, 16, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0x12}, true, false},
		{"unknown element then bitmap", []byte{6, 0, 0, 24, 0, 0, 0, 0, 0, 9, 0, 5, 1, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0x10}, true, false},
		{"truncated element", []byte{4, 0, 0, 10, 0, 0, 0, 0, 0, 1}, false, true},
		{"element length past end", []byte{4, 0, 0, 16, 0, 0, 0, 0, 0, 1, 0, 40, 0, 0, 0, 0x10}, false, true},
	} {
		ok, err := helloAccepts(tc.msg)
		if ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("%s: ok=%v err=%v, want ok=%v err=%v", tc.name, ok, err, tc.ok, tc.err)
		}
	}
}

func TestPacketInTemplate(t *testing.T) {
	s := newSwitch(2, &Config{MACs: 10, Ports: 4, Mode: ModeLatency, Timeout: time.Second}, time.Now())
	s.host = 5
	s.fill(0)
	m := s.out
	if len(m) != packetInLen || m[0] != 4 || of.Type(m[1]) != of.TypePacketIn || int(binary.BigEndian.Uint16(m[2:])) != len(m) {
		t.Fatalf("header % x", m[:8])
	}
	var pin ofp.PacketIn
	if _, err := pin.ReadFrom(strings.NewReader(string(m[8:]))); err != nil {
		t.Fatalf("netrack cannot decode our packet-in: %v", err)
	}
	if pin.Buffer != ofpNoBuffer || pin.Length != frameLen || len(pin.Data) != frameLen {
		t.Errorf("buffer %#x length %d data %d", pin.Buffer, pin.Length, len(pin.Data))
	}
	if len(pin.Match.Fields) != 1 || binary.BigEndian.Uint32(pin.Match.Fields[0].Value) != hostPort(5, 4) {
		t.Errorf("match %+v, want in_port %d", pin.Match, hostPort(5, 4))
	}
	f := pin.Data
	if got := net.HardwareAddr(f[6:12]).String(); got != "02:00:02:00:00:05" {
		t.Errorf("src MAC %s", got)
	}
	if got := net.HardwareAddr(f[0:6]).String(); got != "02:00:02:00:00:04" {
		t.Errorf("dst MAC %s, want the previous source", got)
	}
	if ipChecksum(f[14:34]) != 0 {
		t.Errorf("IPv4 header checksum does not verify")
	}
	if seq, ok := frameSeq(f); !ok || seq != 0 {
		t.Errorf("frameSeq = %d, %v", seq, ok)
	}
}

func TestRunStatsAndSummaryFormat(t *testing.T) {
	rs := RunStats{Index: 3, Elapsed: time.Second, PerSwitch: []uint64{100, 300}, FlowMods: 200, PacketOuts: 200,
		Answered: 200, RTTSum: 200 * 250 * time.Microsecond}
	if got, want := rs.String(), "run 3: 2 switches, 400 responses/s (min/max per switch 100/300), 200 answered/s, rtt 0.250 ms, 0 lost, 0 timeouts"; got != want {
		t.Errorf("String()\n got %q\nwant %q", got, want)
	}
	res := Result{Config: DefaultConfig(), Switches: 16}
	for i, rate := range []uint64{1000, 3000, 2000} {
		res.Runs = append(res.Runs, RunStats{Index: i + 1, Elapsed: time.Second, PerSwitch: []uint64{rate}, PacketOuts: rate, Answered: rate, RTTSum: time.Duration(rate) * time.Millisecond})
	}
	res.finish()
	if res.Median != 2000 || res.Mean != 2000 || res.Min != 1000 || res.Max != 3000 || res.AvgRTT != time.Millisecond {
		t.Errorf("summary figures %+v", res)
	}
	want := "ofbench: mode=latency switches=16 median=2000 resp/s mean=2000 min=1000 max=3000 stddev=816 answered=2000 rtt_ms=1.0000 lost=0 timeouts=0 ctrl_errors=0 switch_errors=0 self_cpu_pct=0 runs=3 duration_ms=1000 window=1 macs=100000 buffered=false"
	if got := res.Summary(); got != want {
		t.Errorf("Summary()\n got %q\nwant %q", got, want)
	}
}

// serveScripted accepts connections on a fresh loopback port and runs
// script for each (n counts connections from 0) until the test ends.
func serveScripted(t *testing.T, script func(n int, c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				script(n, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// writeMsg sends one OpenFlow 1.3 message; errors end the script quietly
// (the switch side may already be gone).
func writeMsg(t *testing.T, c net.Conn, typ of.Type, xid uint32, body io.WriterTo) {
	m, err := encode(nil, typ, xid, body)
	if err != nil {
		t.Errorf("encode: %v", err)
		return
	}
	_, _ = c.Write(m)
}

// readMsg reads one whole message.
func readMsg(c net.Conn) (of.Type, []byte, error) {
	h := make([]byte, ofpHeaderLen)
	if _, err := io.ReadFull(c, h); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n < ofpHeaderLen {
		return 0, nil, errors.New("bad length")
	}
	m := make([]byte, n)
	copy(m, h)
	if _, err := io.ReadFull(c, m[ofpHeaderLen:]); err != nil {
		return 0, nil, err
	}
	return of.Type(m[1]), m, nil
}

func errString(err error) string {
	if err == nil {
		return "wrong message"
	}
	return err.Error()
}

// BenchmarkHotPath measures ofbench's own cost per packet-in: building it
// in a batch and parsing the packet-out that answers it. It must stay far
// below a controller's cost (about 10 µs per packet-in for the fastest
// peer), so that ofbench is never the bottleneck.
func BenchmarkHotPath(b *testing.B) {
	cfg := &Config{MACs: DefaultMACs, Ports: DefaultPorts, Mode: ModeThroughput, Window: 64, Timeout: time.Second}
	s := newSwitch(0, cfg, time.Now())
	var answers []byte
	b.ReportAllocs()
	for b.Loop() {
		s.out = s.out[:0]
		s.fill(1)
		answers = answers[:0]
		for off := 0; off < len(s.out); off += packetInLen {
			answers = appendAnswer(answers, s.out[off:off+packetInLen], 1, true)
		}
		for off := 0; off < len(answers); {
			n := int(binary.BigEndian.Uint16(answers[off+2:]))
			if err := s.handle(answers[off:off+n], 2); err != nil {
				b.Fatal(err)
			}
			off += n
		}
		if s.outstanding != 0 {
			b.Fatalf("%d packet-ins left unanswered", s.outstanding)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/packet-in")
}

// discardConn is a net.Conn whose writes vanish (only Write is used by
// the message handlers).
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

// FuzzConsume feeds arbitrary controller byte streams to an emulated
// switch: it must never panic, must consume only whole messages and must
// stop exactly at a malformed length.
func FuzzConsume(f *testing.F) {
	hello, _ := encode(nil, of.TypeHello, 1, helloBody())
	feat, _ := encode(nil, of.TypeFeaturesRequest, 2, nil)
	mp, _ := encode(nil, of.TypeMultipartRequest, 3, &ofp.MultipartRequest{Type: ofp.MultipartTypePortDescription})
	po := appendAnswer(nil, packetInTemplate(0), 4, true)
	f.Add(append(append(append(hello, feat...), mp...), po...))
	f.Add([]byte{4, 0, 0, 4, 0, 0, 0, 0})
	f.Add([]byte{4, 99, 0, 8, 0, 0, 0, 1, 4, 18, 0, 9})
	f.Add([]byte{1, 0, 0, 16, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, buffered := range []bool{false, true} {
			cfg := &Config{MACs: 10, Ports: 4, Mode: ModeThroughput, Window: 4, Timeout: time.Second, Buffered: buffered}
			s := newSwitch(0, cfg, time.Now())
			s.conn = discardConn{}
			s.sending = true
			s.fill(0)
			s.out = s.out[:0]
			n, err := s.consume(b, 1)
			if n < 0 || n > len(b) {
				t.Fatalf("consumed %d of %d bytes", n, len(b))
			}
			// Whole messages only: the consumed prefix parses as such.
			for off := 0; off < n; {
				l := int(binary.BigEndian.Uint16(b[off+2:]))
				if l < ofpHeaderLen || off+l > n {
					t.Fatalf("consumed %d bytes but a message at %d has length %d", n, off, l)
				}
				off += l
			}
			if err == nil && len(b)-n >= ofpHeaderLen {
				if l := int(binary.BigEndian.Uint16(b[n+2:])); l <= len(b)-n {
					t.Fatalf("stopped at %d with a complete %d-byte message left and no error", n, l)
				}
			}
			if s.outstanding < 0 || s.outstanding > s.window {
				t.Fatalf("outstanding %d outside 0..%d", s.outstanding, s.window)
			}
		}
	})
}
