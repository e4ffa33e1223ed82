package ofbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	of "github.com/netrack/openflow"
)

// readBufSize is the receive buffer of one emulated switch; it must hold
// at least one maximal OpenFlow message (64 KiB) beyond the unread part.
const readBufSize = 256 << 10

// counters are one switch's monotonically increasing totals, read by the
// coordinator while the switch goroutine updates them.
type counters struct {
	flowMods   atomic.Uint64
	packetOuts atomic.Uint64
	answered   atomic.Uint64
	rttNanos   atomic.Uint64
	timeouts   atomic.Uint64
	lost       atomic.Uint64
	ctrlErrors atomic.Uint64
	ignored    atomic.Uint64 // flow-mods of the fabric's ignored cookies
	_          [8]byte       // keep neighbouring switches off this cache line
}

// snapshot is a copy of counters at one instant.
type snapshot struct {
	flowMods, packetOuts, answered, rttNanos, timeouts, lost, ctrlErrors, ignored uint64
}

func (c *counters) load() snapshot {
	return snapshot{
		flowMods:   c.flowMods.Load(),
		packetOuts: c.packetOuts.Load(),
		answered:   c.answered.Load(),
		rttNanos:   c.rttNanos.Load(),
		timeouts:   c.timeouts.Load(),
		lost:       c.lost.Load(),
		ctrlErrors: c.ctrlErrors.Load(),
		ignored:    c.ignored.Load(),
	}
}

// slot tracks one outstanding packet-in.
type slot struct {
	seq     uint32
	pending bool
	sent    int64 // nanoseconds since the benchmark's epoch
}

// emuSwitch is one emulated OpenFlow 1.3 switch. All fields but ctr,
// started and stopping belong to its own goroutine.
type emuSwitch struct {
	idx   int // 0-based switch index
	dpid  uint64
	cfg   *Config
	conn  net.Conn
	epoch time.Time

	ctr      counters
	started  atomic.Bool // set by the coordinator: send packet-ins
	stopping atomic.Bool // set by the coordinator before closing conn

	rbuf []byte
	out  []byte
	tmpl []byte

	fab     *fabricSwitch // fabric mode, else nil
	dataOff int           // offset of the frame in tmpl
	nhosts  int           // hosts (MACs) of this switch

	handshaken      bool
	helloSeen       bool
	featuresReplied bool
	sending         bool // started has been observed

	seq         uint32 // next sequence number to send
	tail        uint32 // no packet-in below tail is pending
	host        int
	window      int
	refillAt    int // refill once outstanding <= refillAt
	outstanding int
	lastResp    int64 // when the last flow-mod or packet-out arrived
	ring        []slot
	mask        uint32
	sweepEvery  time.Duration
}

func newSwitch(idx int, cfg *Config, epoch time.Time) *emuSwitch {
	w := cfg.window()
	ringSize := 1
	for ringSize < 2*w {
		ringSize <<= 1
	}
	refill := w - max(1, w/4)
	sweep := cfg.Timeout / 4
	if sweep < time.Millisecond {
		sweep = time.Millisecond
	}
	s := &emuSwitch{
		idx:        idx,
		dpid:       uint64(idx + 1),
		cfg:        cfg,
		epoch:      epoch,
		rbuf:       make([]byte, readBufSize),
		out:        make([]byte, 0, 64<<10),
		tmpl:       packetInTemplate(idx),
		dataOff:    pinDataOff,
		nhosts:     cfg.MACs,
		window:     w,
		refillAt:   refill,
		ring:       make([]slot, ringSize),
		mask:       uint32(ringSize - 1),
		sweepEvery: sweep,
	}
	if cfg.Fabric != nil {
		s.fab = newFabricSwitch(cfg.Fabric, idx)
		s.dpid = cfg.Fabric.Switches[idx].DPID
		s.tmpl = fabricPacketInTemplate(idx, cfg.Fabric)
		s.dataOff = fabPinDataOff
		s.nhosts = len(s.fab.hosts)
	}
	return s
}

// name identifies the switch in errors and logs.
func (s *emuSwitch) name() string {
	return fmt.Sprintf("switch %d (dpid %#x)", s.idx+1, s.dpid)
}

func (s *emuSwitch) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf("%s: "+format, append([]any{s.name()}, args...)...)
	}
}

// now returns nanoseconds since the benchmark's epoch (monotonic).
func (s *emuSwitch) now() int64 { return int64(time.Since(s.epoch)) }

// handshakeResult is a switch's report to the coordinator: err is nil
// once the switch has sent its features reply and seen the hello.
type handshakeResult struct {
	idx int
	err error
}

// errMalformed marks a message stream that cannot be parsed further.
var errMalformed = errors.New("malformed message from controller")

// run drives the switch until its connection fails or is closed by the
// coordinator. It reports the handshake outcome on ready exactly once.
// The returned error is nil when the coordinator stopped the switch.
func (s *emuSwitch) run(ready chan<- handshakeResult) (err error) {
	reported := false
	report := func(e error) {
		if !reported {
			reported = true
			ready <- handshakeResult{idx: s.idx, err: e}
		}
	}
	defer func() {
		if s.stopping.Load() {
			err = nil
		}
		if err == nil && !reported {
			err = errors.New("stopped before the handshake completed")
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", s.name(), err)
		}
		report(err)
	}()

	if err := s.conn.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout)); err != nil {
		return fmt.Errorf("set handshake deadline: %w", err)
	}
	out, err := encode(s.out[:0], of.TypeHello, 1, helloBody())
	if err != nil {
		return err
	}
	if _, err := s.conn.Write(out); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}

	r, w := 0, 0
	for {
		n, rerr := s.conn.Read(s.rbuf[w:])
		w += n
		now := s.now()
		if rerr != nil {
			var ne net.Error
			if !errors.As(rerr, &ne) || !ne.Timeout() || !s.handshaken {
				if s.stopping.Load() {
					return nil
				}
				if !s.handshaken && errors.Is(rerr, os.ErrDeadlineExceeded) {
					return fmt.Errorf("handshake not completed within %v (hello seen: %v)", s.cfg.HandshakeTimeout, s.helloSeen)
				}
				if errors.Is(rerr, io.EOF) {
					return errors.New("controller closed the connection")
				}
				return fmt.Errorf("read: %w", rerr)
			}
			// Deadline: the coordinator's start signal or our sweep tick.
			if err := s.tick(now); err != nil {
				return err
			}
		}
		s.out = s.out[:0]
		used, err := s.consume(s.rbuf[r:w], now)
		if err != nil {
			return err
		}
		r += used
		if r == w {
			r, w = 0, 0
		} else if len(s.rbuf)-w < 0x10000 {
			w = copy(s.rbuf, s.rbuf[r:w])
			r = 0
		}
		if s.sending && s.outstanding <= s.refillAt {
			s.fill(now)
		}
		if len(s.out) > 0 {
			if _, err := s.conn.Write(s.out); err != nil {
				if s.stopping.Load() {
					return nil
				}
				return fmt.Errorf("write: %w", err)
			}
		}
		if !s.handshaken && s.helloSeen && s.featuresReplied {
			s.handshaken = true
			if err := s.conn.SetReadDeadline(time.Time{}); err != nil {
				return fmt.Errorf("clear handshake deadline: %w", err)
			}
			report(nil)
		}
	}
}

// consume handles every complete message at the start of b and returns
// the number of bytes they take; a trailing partial message is left for the
// next read. Replies are appended to s.out.
func (s *emuSwitch) consume(b []byte, now int64) (int, error) {
	r := 0
	for len(b)-r >= ofpHeaderLen {
		length := int(binary.BigEndian.Uint16(b[r+2:]))
		if length < ofpHeaderLen {
			return r, fmt.Errorf("%w: type %d xid %#x declares length %d < %d",
				errMalformed, b[r+1], binary.BigEndian.Uint32(b[r+4:]), length, ofpHeaderLen)
		}
		if len(b)-r < length {
			break
		}
		if err := s.handle(b[r:r+length], now); err != nil {
			return r, err
		}
		r += length
	}
	return r, nil
}

// tick runs on a read deadline after the handshake: it notices the start
// signal, reclaims timed-out packet-ins and re-arms the sweep deadline.
func (s *emuSwitch) tick(now int64) error {
	if !s.started.Load() {
		// A stale deadline; nothing to do until the start signal.
		return s.conn.SetReadDeadline(time.Time{})
	}
	if !s.sending {
		s.sending = true
	} else {
		s.sweep(now)
	}
	return s.conn.SetReadDeadline(time.Now().Add(s.sweepEvery))
}

// sweep reclaims packet-ins unanswered for longer than the timeout, but
// only while the controller has sent no response for that long: a
// controller still answering is slow, not deaf, and sending replacements
// would only lengthen its queue (congestion collapse). Packet-ins it drops
// while answering others are found by answer.
func (s *emuSwitch) sweep(now int64) {
	limit := now - int64(s.cfg.Timeout)
	if s.lastResp > limit {
		return
	}
	for i := range s.ring {
		sl := &s.ring[i]
		if sl.pending && sl.sent < limit {
			sl.pending = false
			s.outstanding--
			s.ctr.timeouts.Add(1)
			s.logf("packet-in seq %d unanswered after %v", sl.seq, s.cfg.Timeout)
		}
	}
}

// fill appends packet-ins until the window is full.
func (s *emuSwitch) fill(now int64) {
	for s.outstanding < s.window {
		seq := s.seq
		s.seq++
		sl := &s.ring[seq&s.mask]
		if sl.pending {
			// Unanswered for a whole ring cycle: give up on it.
			s.ctr.timeouts.Add(1)
			s.outstanding--
		}
		sl.seq, sl.pending, sl.sent = seq, true, now
		s.outstanding++

		src := s.host
		dst := src - 1
		if dst < 0 {
			dst = s.nhosts - 1
		}
		s.host++
		if s.host == s.nhosts {
			s.host = 0
		}

		start := len(s.out)
		s.out = append(s.out, s.tmpl...)
		m := s.out[start:]
		binary.BigEndian.PutUint32(m[4:], seq)
		if s.cfg.Buffered {
			binary.BigEndian.PutUint32(m[pinBufferIDOff:], seq&0x7fffffff)
		}
		if s.fab != nil {
			s.fab.fillFabric(m, src, dst)
		} else {
			binary.BigEndian.PutUint32(m[pinInPortOff:], hostPort(src, s.cfg.Ports))
			f := m[pinDataOff:]
			hostMAC(f[frameDstOff:], s.idx, dst)
			hostMAC(f[frameSrcOff:], s.idx, src)
		}
		binary.BigEndian.PutUint32(m[s.dataOff+frameSeqOff:], seq)
	}
}

// answer marks packet-in seq answered, if it is outstanding. Controllers
// answer one switch's packet-ins in order (one TCP connection, processed
// sequentially), so packet-ins sent before seq and still unanswered were
// dropped by the controller (ovs-testcontroller discards replies beyond 10
// queued per switch): their slots are reclaimed at once and counted as
// lost instead of blocking the window until the timeout.
func (s *emuSwitch) answer(seq uint32, now int64) {
	sl := &s.ring[seq&s.mask]
	if !sl.pending || sl.seq != seq {
		return
	}
	sl.pending = false
	s.outstanding--
	s.ctr.answered.Add(1)
	s.ctr.rttNanos.Add(uint64(now - sl.sent))
	for ; int32(seq-s.tail) > 0; s.tail++ {
		if old := &s.ring[s.tail&s.mask]; old.pending && old.seq == s.tail {
			old.pending = false
			s.outstanding--
			s.ctr.lost.Add(1)
		}
	}
	s.tail = seq + 1
}

// answerBuffer maps a buffer id back to an outstanding sequence number.
func (s *emuSwitch) answerBuffer(id uint32, now int64) {
	if id == ofpNoBuffer || !s.cfg.Buffered {
		return
	}
	// Buffer ids are seq & 0x7fffffff; the ring slot decides.
	sl := &s.ring[id&s.mask]
	if sl.pending && sl.seq&0x7fffffff == id {
		s.answer(sl.seq, now)
	}
}

// handle processes one complete message. Only a stream that cannot be
// parsed further is an error; bad requests get an OFPT_ERROR reply.
func (s *emuSwitch) handle(m []byte, now int64) error {
	t := of.Type(m[1])
	switch t {
	case of.TypeFlowMod:
		if s.fab != nil && s.fab.isIgnoredFlowMod(m) {
			s.ctr.ignored.Add(1)
			return nil
		}
		s.ctr.flowMods.Add(1)
		s.lastResp = now
		if len(m) >= flowModBufferIDOff+4 {
			s.answerBuffer(binary.BigEndian.Uint32(m[flowModBufferIDOff:]), now)
		}
		return nil
	case of.TypePacketOut:
		s.ctr.packetOuts.Add(1)
		s.lastResp = now
		if len(m) < packetOutActionsOff {
			return nil
		}
		if id := binary.BigEndian.Uint32(m[packetOutBufferIDOff:]); id != ofpNoBuffer {
			s.answerBuffer(id, now)
			return nil
		}
		data := packetOutActionsOff + int(binary.BigEndian.Uint16(m[packetOutActLenOff:]))
		if data < len(m) {
			if seq, ok := frameSeq(m[data:]); ok {
				s.answer(seq, now)
			}
		}
		return nil
	}
	return s.handleControl(t, m)
}
