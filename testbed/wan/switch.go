// Package wan is the lab's WAN emulator: a learning Ethernet switch that holds
// every frame for a configured one-way delay per pair of ports before sending
// it on. It stands in for `tc qdisc ... netem delay`, which the lab's kernel
// lacks (CONFIG_NET_SCH_NETEM unset). A pair of ports may also get a rate
// limit (SetRate: a token bucket per (ingress, egress) queue, like tc tbf
// but per pair); the lab's per-site rate limits stay with tc tbf on the WAN
// veths. The Relay runs the Switch on AF_PACKET sockets inside the lab's
// WAN namespace (packet(7)); the Switch itself has no sockets and is unit
// tested with a fake clock.
package wan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Stats are the relay's counters (frames).
type Stats struct {
	// RX counts frames received on all ports.
	RX uint64 `json:"rx"`
	// TX counts frames sent on all ports (a flooded frame counts once per port).
	TX uint64 `json:"tx"`
	// Dropped counts frame copies refused because their (ingress, egress) queue was full.
	Dropped uint64 `json:"dropped"`
	// RateDropped counts frame copies refused by a pair's rate limit
	// (SetRate: the copy would have waited longer than the backlog bound).
	RateDropped uint64 `json:"rate_dropped,omitempty"`
	// Filtered counts frames whose destination was learned on their ingress port.
	Filtered uint64 `json:"filtered"`
	// Lost counts frames dropped on purpose by the random loss (SetLoss).
	Lost uint64 `json:"lost"`
	// TXErrors counts failed sends.
	TXErrors uint64 `json:"tx_errors"`
	// Queued is the number of frames waiting now.
	Queued int `json:"queued"`
	// MACs is the number of learned addresses.
	MACs int `json:"macs"`
}

type entry struct {
	due   time.Time
	frame []byte
}

// fifo is a bounded ring of frames with non-decreasing due times.
type fifo struct {
	buf     []entry
	head, n int
	limit   int
	shape   *bucket // nil = no rate limit
}

// bucket is a token bucket that computes each frame's departure time when
// the frame arrives (the frames of one queue leave in order, so departures
// never decrease). Tokens are bytes; the bucket holds at most burst and
// fills at rate bytes per second. A frame of L bytes leaves as soon as the
// bucket holds L tokens (for L > burst: as soon as the deficit is refilled),
// which takes them. Over any interval T at most burst + rate*T bytes leave.
type bucket struct {
	rate       float64       // bytes per second, > 0
	burst      float64       // bytes, > 0
	maxBacklog time.Duration // a frame that would wait longer is refused
	tokens     float64       // tokens at time at (after the last departure)
	at         time.Time     // last departure; zero = never (bucket full)
}

// depart returns when a frame of size bytes arriving at now may leave, and
// takes its tokens; ok is false (and the bucket unchanged) when it would
// wait longer than maxBacklog.
func (b *bucket) depart(now time.Time, size int) (time.Time, bool) {
	start, tok := now, b.burst
	if !b.at.IsZero() {
		if b.at.After(start) {
			start = b.at // FIFO: not before the previous frame
		}
		tok = b.tokens + b.rate*start.Sub(b.at).Seconds()
		if tok > b.burst {
			tok = b.burst
		}
	}
	need := float64(size)
	dep := start
	if tok >= need {
		tok -= need
	} else {
		dep = start.Add(time.Duration((need - tok) / b.rate * float64(time.Second)))
		tok = 0
	}
	if dep.Sub(now) > b.maxBacklog {
		return time.Time{}, false
	}
	b.tokens, b.at = tok, dep
	return dep, true
}

func (q *fifo) push(e entry) bool {
	if q.n >= q.limit {
		return false
	}
	if q.n == len(q.buf) {
		size := 2 * len(q.buf)
		if size < 16 {
			size = 16
		}
		if size > q.limit {
			size = q.limit
		}
		nb := make([]entry, size)
		for k := 0; k < q.n; k++ {
			nb[k] = q.buf[(q.head+k)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	return true
}

func (q *fifo) peek() (entry, bool) {
	if q.n == 0 {
		return entry{}, false
	}
	return q.buf[q.head], true
}

func (q *fifo) pop() entry {
	e := q.buf[q.head]
	q.buf[q.head] = entry{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return e
}

// Switch is a learning switch with one bounded FIFO per (ingress, egress)
// port pair. The delay of a pair is constant and a pair's rate limit
// (SetRate) gives non-decreasing departure times, so each FIFO's due times
// never decrease and frames between two ports keep their order. Safe for
// concurrent use.
type Switch struct {
	mu     sync.Mutex
	n      int
	delay  [][]time.Duration // [in][out]
	queues [][]fifo          // [in][out]
	macs   map[[6]byte]int
	stats  Stats
	notify []chan struct{} // per egress port, capacity 1
	loss   float64         // probability in [0,1) that a received frame is lost
	rnd    func() float64  // uniform in [0,1)
}

// SetLoss makes the switch drop each received frame with probability p
// (0 <= p < 1) before learning or queueing it, drawing from rnd (uniform in
// [0,1); nil = math/rand/v2). Like netem loss, but per frame received.
func (s *Switch) SetLoss(p float64, rnd func() float64) error {
	if p < 0 || p >= 1 || p != p {
		return fmt.Errorf("wan switch: loss probability %v outside [0,1)", p)
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	s.mu.Lock()
	s.loss, s.rnd = p, rnd
	s.mu.Unlock()
	return nil
}

// NewSwitch makes a switch of n ports (n >= 2). delay[i][o] is the one-way
// delay from port i to port o (n x n, non-negative); limit bounds each
// (ingress, egress) queue in frames (>= 1).
func NewSwitch(n int, delay [][]time.Duration, limit int) (*Switch, error) {
	if n < 2 {
		return nil, fmt.Errorf("wan switch: %d ports, need at least 2", n)
	}
	if limit < 1 {
		return nil, fmt.Errorf("wan switch: queue limit %d, need at least 1", limit)
	}
	if len(delay) != n {
		return nil, fmt.Errorf("wan switch: delay matrix has %d rows for %d ports", len(delay), n)
	}
	s := &Switch{n: n, delay: make([][]time.Duration, n), queues: make([][]fifo, n),
		macs: map[[6]byte]int{}, notify: make([]chan struct{}, n)}
	for i := 0; i < n; i++ {
		if len(delay[i]) != n {
			return nil, fmt.Errorf("wan switch: delay row %d has %d entries for %d ports", i, len(delay[i]), n)
		}
		s.delay[i] = make([]time.Duration, n)
		s.queues[i] = make([]fifo, n)
		for o := 0; o < n; o++ {
			if delay[i][o] < 0 {
				return nil, fmt.Errorf("wan switch: negative delay %v from port %d to %d", delay[i][o], i, o)
			}
			s.delay[i][o] = delay[i][o]
			s.queues[i][o].limit = limit
		}
		s.notify[i] = make(chan struct{}, 1)
	}
	return s, nil
}

// Defaults of SetRate.
const (
	// DefaultMaxBacklog bounds how long a frame may wait for tokens (like
	// the latency parameter of tc tbf); later frames are dropped, which is
	// what makes TCP find the rate.
	DefaultMaxBacklog = 100 * time.Millisecond
	// minBurst is two full Ethernet frames (bytes).
	minBurst = 2 * 1514
)

// DefaultBurst returns the bucket size SetRate uses for burst 0: the bytes
// of 4 ms at the rate, at least two full-size Ethernet frames (3028 bytes).
func DefaultBurst(bitsPerSec float64) int {
	b := int(bitsPerSec / 8 * 0.004)
	if b < minBurst {
		b = minBurst
	}
	return b
}

// SetRate limits the frames from port in to port out to bitsPerSec (frame
// bytes from the Ethernet header on, no preamble or FCS) with a token bucket
// of burst bytes (0 = DefaultBurst) in front of the pair's delay: a frame
// waits for its tokens, then for the pair's delay. A frame that would wait
// more than maxBacklog for tokens (0 = DefaultMaxBacklog) is dropped and
// counted in Stats.RateDropped. bitsPerSec 0 removes the limit. It applies
// to frames that arrive from now on. Errors: no such port, in == out,
// negative or NaN values.
func (s *Switch) SetRate(in, out int, bitsPerSec float64, burst int, maxBacklog time.Duration) error {
	if in < 0 || in >= s.n || out < 0 || out >= s.n || in == out {
		return fmt.Errorf("wan switch: rate for port pair (%d, %d) of %d ports", in, out, s.n)
	}
	if !(bitsPerSec >= 0) || burst < 0 || maxBacklog < 0 {
		return fmt.Errorf("wan switch: rate %v bit/s, burst %d, backlog %v: want non-negative values", bitsPerSec, burst, maxBacklog)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bitsPerSec == 0 {
		s.queues[in][out].shape = nil
		return nil
	}
	if burst == 0 {
		burst = DefaultBurst(bitsPerSec)
	}
	if maxBacklog == 0 {
		maxBacklog = DefaultMaxBacklog
	}
	s.queues[in][out].shape = &bucket{rate: bitsPerSec / 8, burst: float64(burst), maxBacklog: maxBacklog}
	return nil
}

// DelayMatrix returns an n x n matrix filled with d (the diagonal too).
func DelayMatrix(n int, d time.Duration) [][]time.Duration {
	m := make([][]time.Duration, n)
	for i := range m {
		m[i] = make([]time.Duration, n)
		for o := range m[i] {
			m[i][o] = d
		}
	}
	return m
}

// ErrShortFrame is returned by Ingress for frames shorter than an Ethernet header.
var ErrShortFrame = errors.New("wan switch: frame shorter than 14 bytes")

// Ingress accepts a frame received on port in at time now: it learns the
// source MAC (unicast only) and queues the frame for the learned port of its
// destination, or for every other port when the destination is multicast,
// broadcast or unknown. It returns how many copies were queued. The frame is
// kept (not copied): the caller must not reuse it.
func (s *Switch) Ingress(in int, frame []byte, now time.Time) (int, error) {
	if in < 0 || in >= s.n {
		return 0, fmt.Errorf("wan switch: no port %d", in)
	}
	if len(frame) < 14 {
		return 0, ErrShortFrame
	}
	var dst, src [6]byte
	copy(dst[:], frame[0:6])
	copy(src[:], frame[6:12])
	s.mu.Lock()
	s.stats.RX++
	if s.loss > 0 && s.rnd() < s.loss {
		s.stats.Lost++
		s.mu.Unlock()
		return 0, nil
	}
	if src[0]&1 == 0 {
		s.macs[src] = in
	}
	outs := -1 // -1 = flood
	if dst[0]&1 == 0 {
		if o, ok := s.macs[dst]; ok {
			outs = o
		}
	}
	if outs == in {
		s.stats.Filtered++
		s.mu.Unlock()
		return 0, nil
	}
	queued := 0
	var wake []int
	for o := 0; o < s.n; o++ {
		if o == in || (outs >= 0 && o != outs) {
			continue
		}
		q := &s.queues[in][o]
		wasEmpty := q.n == 0
		if q.n >= q.limit {
			s.stats.Dropped++
			continue
		}
		leave := now
		if q.shape != nil {
			var ok bool
			if leave, ok = q.shape.depart(now, len(frame)); !ok {
				s.stats.RateDropped++
				continue
			}
		}
		q.push(entry{due: leave.Add(s.delay[in][o]), frame: frame})
		queued++
		s.stats.Queued++
		if wasEmpty {
			// only a new head can be due earlier than what the egress
			// sender already waits for: behind a head it never is (FIFO)
			wake = append(wake, o)
		}
	}
	s.mu.Unlock()
	for _, o := range wake {
		select {
		case s.notify[o] <- struct{}{}:
		default:
		}
	}
	return queued, nil
}

// Next returns the next frame due on egress port out at time now. When no
// frame is due yet it returns ok=false and wait = the time until the earliest
// queued frame for out is due, or -1 when nothing is queued for out.
func (s *Switch) Next(out int, now time.Time) (frame []byte, wait time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := -1
	var bestDue time.Time
	for in := 0; in < s.n; in++ {
		e, has := s.queues[in][out].peek()
		if has && (best < 0 || e.due.Before(bestDue)) {
			best, bestDue = in, e.due
		}
	}
	if best < 0 {
		return nil, -1, false
	}
	if bestDue.After(now) {
		return nil, bestDue.Sub(now), false
	}
	e := s.queues[best][out].pop()
	s.stats.Queued--
	return e.frame, 0, true
}

// Wake returns the channel that gets a token when a frame becomes the head
// of one of egress port out's queues (capacity 1: tokens coalesce). A frame
// queued behind another is due no earlier, so it needs no token.
func (s *Switch) Wake(out int) <-chan struct{} { return s.notify[out] }

// CountTX records a sent frame (err == nil) or a failed send.
func (s *Switch) CountTX(err error) {
	s.mu.Lock()
	if err == nil {
		s.stats.TX++
	} else {
		s.stats.TXErrors++
	}
	s.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (s *Switch) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.MACs = len(s.macs)
	return st
}
