package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

// sessionError is an error usable as a constant.
type sessionError string

func (e sessionError) Error() string { return string(e) }

// ErrClosed is wrapped by every error a Switch method returns because the
// session ended (disconnect, dead peer, malformed input, replacement,
// shutdown). Test with errors.Is.
const ErrClosed = sessionError("controller: switch session closed")

// maxQueueBytes bounds the bytes queued per switch besides SendQueueLen.
const maxQueueBytes = 16 << 20

// maxCorkDelay bounds how long a message queued while the event
// goroutine dispatches a batch waits for the batch to end.
const maxCorkDelay = 500 * time.Microsecond

// maxMultipartBytes bounds a reassembled multipart reply.
const maxMultipartBytes = 256 << 20

// Session is the Switch of one connected OVS or other OpenFlow switch: one
// OpenFlow session on one connection. All methods are safe for concurrent use.
// After the session ends (Done is closed) sends fail with an error
// wrapping ErrClosed; the handle stays valid for reads (DPID, Ports).
type Session struct {
	c      *Controller
	cfg    *Config
	conn   net.Conn
	remote net.Addr
	logger atomic.Pointer[slog.Logger]
	dpid   atomic.Uint64
	ntab   atomic.Uint32

	ctx      context.Context // session context given to handlers; cancelled at close
	cancel   context.CancelFunc
	done     chan struct{} // closed by close
	finished chan struct{} // closed after SwitchDown handlers ran
	once     sync.Once
	closeErr error // set before done is closed

	helloCh chan error // reader reports the hello negotiation result
	rx      atomic.Uint64
	rxBytes atomic.Uint64
	tx      atomic.Uint64
	txBytes atomic.Uint64
	writes  atomic.Uint64
	drops   atomic.Uint64

	// send queue, guarded by smu
	smu       sync.Mutex
	sbuf      []byte
	scount    int
	xid       uint32
	sclosed   bool
	flushExit bool          // writer closes the session after its next write
	flushErr  error         // the reason it then closes with
	spaceCh   chan struct{} // closed when the writer drains; nil when nobody waits
	wake      chan struct{} // cap 1: wakes the writer
	corked    atomic.Bool   // event goroutine is dispatching a batch and will kick the writer after it
	corkTimer *time.Timer   // kicks the writer maxCorkDelay after a corked message was queued

	// pending requests, guarded by pmu
	pmu          sync.Mutex
	pending      map[uint32]*pending
	npending     atomic.Int32
	lastBarrier  uint32 // xid of the last barrier queued: start of the next barrier's range
	recentErrs   [32]recentErr
	recentErrPos int

	// event queue, guarded by emu
	emu       sync.Mutex
	events    []any
	spare     []any
	eclosed   bool
	itemCond  *sync.Cond
	spaceCond *sync.Cond
	dropped   uint64

	// ports, guarded by portMu
	portMu sync.RWMutex
	ports  map[ofp.PortNo]ofp.Port
}

// pending is a request waiting for its reply.
type pending struct {
	xid        uint32
	multipart  bool
	barrier    bool
	rangeStart uint32   // barrier: errors for xids in (rangeStart, xid) are its own
	parts      []byte   // multipart: bodies received so far
	mpType     uint16   // multipart: request type
	errs       []error  // barrier: collected *OFPError
	ch         chan res // cap 1
}

type res struct {
	reply *Reply
	body  []byte
	err   error
}

// recentErr remembers an unclaimed OFPT_ERROR for a later Barrier.
type recentErr struct {
	valid bool
	err   *OFPError
}

// Reply is a message the switch sent in answer to a Request.
type Reply struct {
	Header of.Header // version, type, length, xid as received
	Body   []byte    // everything after the 8-byte header; owned by the caller
}

func newSwitch(c *Controller, conn net.Conn, ctx context.Context) *Session {
	s := &Session{
		c: c, cfg: &c.cfg, conn: conn, remote: conn.RemoteAddr(),
		done: make(chan struct{}), finished: make(chan struct{}),
		helloCh: make(chan error, 1), wake: make(chan struct{}, 1),
		pending: make(map[uint32]*pending), ports: make(map[ofp.PortNo]ofp.Port),
		sbuf: make([]byte, 0, 4096),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.corkTimer = time.AfterFunc(time.Hour, s.kick)
	s.corkTimer.Stop()
	s.itemCond = sync.NewCond(&s.emu)
	s.spaceCond = sync.NewCond(&s.emu)
	s.logger.Store(c.log.With("remote", addrString(s.remote)))
	return s
}

// DPID returns the datapath ID from the features reply (spec 7.3.1).
func (s *Session) DPID() DPID { return DPID(s.dpid.Load()) }

// NTables returns n_tables from the features reply (spec 7.3.1).
func (s *Session) NTables() uint8 { return uint8(s.ntab.Load()) }

// Ports returns a snapshot of the switch ports sorted by port number,
// from the port description reply at handshake, kept current from
// OFPT_PORT_STATUS (spec 7.4.3).
func (s *Session) Ports() []ofp.Port {
	s.portMu.RLock()
	out := make([]ofp.Port, 0, len(s.ports))
	for _, p := range s.ports {
		out = append(out, p)
	}
	s.portMu.RUnlock()
	slices.SortFunc(out, portSorter)
	return out
}

// Port returns one port by number from the snapshot Ports describes.
func (s *Session) Port(no ofp.PortNo) (ofp.Port, bool) {
	s.portMu.RLock()
	defer s.portMu.RUnlock()
	p, ok := s.ports[no]
	return p, ok
}

// RemoteAddr returns the switch's address.
func (s *Session) RemoteAddr() net.Addr { return s.remote }

// Logger returns a logger tagged with the remote address and DPID.
func (s *Session) Logger() *slog.Logger { return s.logger.Load() }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it runs.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.closeErr
	default:
		return nil
	}
}

// SwitchStats are counters of one session since it started.
type SwitchStats struct {
	RxMessages    uint64 // messages received from the switch
	RxBytes       uint64 // their bytes, headers included
	TxMessages    uint64 // messages written to the switch
	TxBytes       uint64 // their bytes
	Writes        uint64 // batched writes (TxMessages/Writes is the batching factor)
	DroppedEvents uint64 // events dropped because the event queue was full
}

// Stats returns the session's counters.
func (s *Session) Stats() SwitchStats {
	return SwitchStats{
		RxMessages: s.rx.Load(), RxBytes: s.rxBytes.Load(),
		TxMessages: s.tx.Load(), TxBytes: s.txBytes.Load(),
		Writes: s.writes.Load(), DroppedEvents: s.drops.Load(),
	}
}

// String returns the DPID and remote address, for logs.
func (s *Session) String() string {
	return fmt.Sprintf("switch %s (%s)", s.DPID(), addrString(s.remote))
}

// flowModMatchOffset is the offset of ofp_match in an ofp_flow_mod body.
const flowModMatchOffset = 40

// FlowMod queues an OFPT_FLOW_MOD (spec 7.3.4.1), encoded without
// reflection. A Match.Type of 0 (netrack's zero value, OFPMT_STANDARD,
// which OpenFlow 1.3 switches reject with OFPBMC_BAD_LEN/BAD_TYPE) is sent
// as OFPMT_OXM (1): netrack's Match can only hold OXM fields anyway. It returns once the message is queued; an OFPT_ERROR for it
// goes to a Barrier queued after it (if one is pending or called soon,
// see Barrier) or else to the ErrorHandler apps. fm is encoded before
// FlowMod returns, so the caller may reuse or modify it afterwards (a
// hot-path app can keep one FlowMod per switch). It waits while the send
// queue is full and fails when ctx is done or the session ends.
func (s *Session) FlowMod(ctx context.Context, fm *ofp.FlowMod) error {
	if fm == nil {
		return errors.New("controller: FlowMod: nil *ofp.FlowMod")
	}
	_, err := s.enqueue(ctx, uint8(of.TypeFlowMod), fm, nil)
	return err
}

// GroupMod queues an OFPT_GROUP_MOD (spec 7.3.4.2); see FlowMod for
// queueing and errors.
func (s *Session) GroupMod(ctx context.Context, gm *ofp.GroupMod) error {
	if gm == nil {
		return errors.New("controller: GroupMod: nil *ofp.GroupMod")
	}
	_, err := s.enqueue(ctx, uint8(of.TypeGroupMod), gm, nil)
	return err
}

// MeterMod queues an OFPT_METER_MOD (spec 7.3.4.4); see FlowMod for
// queueing and errors.
func (s *Session) MeterMod(ctx context.Context, mm *ofp.MeterMod) error {
	if mm == nil {
		return errors.New("controller: MeterMod: nil *ofp.MeterMod")
	}
	_, err := s.enqueue(ctx, uint8(of.TypeMeterMod), mm, nil)
	return err
}

// PacketOut queues an OFPT_PACKET_OUT (spec 7.3.7), encoded without
// reflection; see FlowMod for queueing, reuse of po and errors.
func (s *Session) PacketOut(ctx context.Context, po *ofp.PacketOut) error {
	if po == nil {
		return errors.New("controller: PacketOut: nil *ofp.PacketOut")
	}
	_, err := s.enqueue(ctx, uint8(of.TypePacketOut), po, nil)
	return err
}

// Send queues any message of type t with the given body (nil for none)
// and returns the xid it was given. *ofp.FlowMod and *ofp.PacketOut
// bodies use the fast encoders; other bodies are written with their
// WriteTo before the queue lock is taken. Replies to it are not waited
// for (use Request); an OFPT_ERROR for it goes where FlowMod's would.
func (s *Session) Send(ctx context.Context, t of.Type, body io.WriterTo) (uint32, error) {
	return s.enqueue(ctx, uint8(t), body, nil)
}

// Barrier queues an OFPT_BARRIER_REQUEST (spec 6.2, 7.3.8) and waits for
// the reply. It returns nil when the switch reported no error for the
// messages queued on this session between the previous Barrier and this
// one, or errors.Join of their *OFPError otherwise (errors that arrived
// shortly before Barrier was called are included; they were also given
// to the ErrorHandler apps). It fails when ctx is done (RequestTimeout
// applies when ctx has no deadline) or the session ends.
func (s *Session) Barrier(ctx context.Context) error {
	ctx, cancel := s.requestCtx(ctx)
	defer cancel()
	p := &pending{barrier: true, ch: make(chan res, 1)}
	xid, err := s.enqueue(ctx, uint8(of.TypeBarrierRequest), nil, p)
	if err != nil {
		return err
	}
	r, err := s.wait(ctx, p, xid, "barrier")
	if err != nil {
		return err
	}
	return r.err
}

// Request sends a message of type t and waits for the message with the
// same xid (spec 6.2: replies carry the request's xid). It returns
// *OFPError when the switch answers with OFPT_ERROR, and fails when ctx
// is done (RequestTimeout applies when ctx has no deadline) or the
// session ends. For a multipart request it returns only the first part;
// use Multipart to reassemble.
func (s *Session) Request(ctx context.Context, t of.Type, body io.WriterTo) (*Reply, error) {
	ctx, cancel := s.requestCtx(ctx)
	defer cancel()
	p := &pending{ch: make(chan res, 1)}
	xid, err := s.enqueue(ctx, uint8(t), body, p)
	if err != nil {
		return nil, err
	}
	r, err := s.wait(ctx, p, xid, t.String())
	if err != nil {
		return nil, err
	}
	return r.reply, r.err
}

// rawBody is a pre-encoded message body.
type rawBody []byte

func (b rawBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// Multipart sends an OFPT_MULTIPART_REQUEST of type t (spec 7.3.5) with
// the given body (nil for none) and returns the concatenated bodies of
// all reply parts (after each part's 8-byte multipart header), following
// OFPMPF_REPLY_MORE. It returns *OFPError when the switch answers with
// OFPT_ERROR, and an error when a part has a different multipart type,
// the reply exceeds 256 MiB, ctx is done or the session ends.
func (s *Session) Multipart(ctx context.Context, t ofp.MultipartType, body io.WriterTo) ([]byte, error) {
	msg := ofwire.AppendMultipartRequest(make([]byte, 0, 64), t, 0)
	if body != nil {
		var err error
		if msg, err = ofwire.AppendWriterTo(msg, body); err != nil {
			return nil, fmt.Errorf("controller: encode %s request body: %w", t, err)
		}
	}
	ctx, cancel := s.requestCtx(ctx)
	defer cancel()
	p := &pending{multipart: true, mpType: uint16(t), ch: make(chan res, 1)}
	xid, err := s.enqueue(ctx, uint8(of.TypeMultipartRequest), rawBody(msg), p)
	if err != nil {
		return nil, err
	}
	r, err := s.wait(ctx, p, xid, t.String())
	if err != nil {
		return nil, err
	}
	return r.body, r.err
}

// FlowStats sends an OFPMP_FLOW request (spec 7.3.5.2) and decodes every
// entry with all its fields. Actions netrack cannot decode (Nicira
// resubmit, learn, ct, ...) are kept as *ExperimenterAction, so no entry
// is lost. A nil req asks for all flows in all tables. A Match.Type of
// 0 is sent as OFPMT_OXM (see FlowMod).
func (s *Session) FlowStats(ctx context.Context, req *ofp.FlowStatsRequest) ([]FlowStats, error) {
	if req == nil {
		req = &ofp.FlowStatsRequest{Table: ofp.TableAll, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny}
	}
	if req.Match.Type == ofp.MatchTypeStandard {
		r := *req
		r.Match.Type = ofp.MatchTypeXM // see FlowMod
		req = &r
	}
	body, err := s.Multipart(ctx, ofp.MultipartTypeFlow, req)
	if err != nil {
		return nil, err
	}
	fs, err := ofwire.DecodeFlowStats(body)
	if err != nil {
		return nil, fmt.Errorf("controller: flow stats reply from %s: %w", s.DPID(), err)
	}
	return fs, nil
}

// GroupDesc sends an OFPMP_GROUP_DESC request (spec 7.3.5.10) and
// decodes every group with its buckets.
func (s *Session) GroupDesc(ctx context.Context) ([]GroupDesc, error) {
	body, err := s.Multipart(ctx, ofp.MultipartTypeGroupDescription, nil)
	if err != nil {
		return nil, err
	}
	gd, err := ofwire.DecodeGroupDescs(body)
	if err != nil {
		return nil, fmt.Errorf("controller: group desc reply from %s: %w", s.DPID(), err)
	}
	return gd, nil
}

// MeterConfig sends an OFPMP_METER_CONFIG request for all meters (spec
// 7.3.5.13) and decodes every meter with its bands.
func (s *Session) MeterConfig(ctx context.Context) ([]MeterConfig, error) {
	body, err := s.Multipart(ctx, ofp.MultipartTypeMeterConfig, &ofp.MeterConfigRequest{Meter: ofp.MeterAll})
	if err != nil {
		return nil, err
	}
	mc, err := ofwire.DecodeMeterConfigs(body)
	if err != nil {
		return nil, fmt.Errorf("controller: meter config reply from %s: %w", s.DPID(), err)
	}
	return mc, nil
}

// PortDesc sends an OFPMP_PORT_DESC request (spec 7.3.5.7) and returns
// the ports (names without NUL padding). It does not change the Ports
// snapshot.
func (s *Session) PortDesc(ctx context.Context) ([]ofp.Port, error) {
	body, err := s.Multipart(ctx, ofp.MultipartTypePortDescription, nil)
	if err != nil {
		return nil, err
	}
	ports, err := ofwire.DecodePorts(body)
	if err != nil {
		return nil, fmt.Errorf("controller: port desc reply from %s: %w", s.DPID(), err)
	}
	return ports, nil
}

// requestCtx applies RequestTimeout when ctx has no deadline.
func (s *Session) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// wait blocks until p is answered, ctx is done or the session ends.
func (s *Session) wait(ctx context.Context, p *pending, xid uint32, what string) (res, error) {
	select {
	case r := <-p.ch:
		return r, nil
	case <-ctx.Done():
		s.dropPending(xid)
		// The reply may have raced the cancellation.
		select {
		case r := <-p.ch:
			return r, nil
		default:
		}
		return res{}, fmt.Errorf("controller: %s xid %d to %s: no reply: %w", what, xid, s.DPID(), ctx.Err())
	}
}

// enqueue appends one message to the send queue and returns its xid. p,
// when not nil, is registered as pending under the xid before the
// message can reach the switch. It waits while the queue is full.
func (s *Session) enqueue(ctx context.Context, t uint8, body io.WriterTo, p *pending) (uint32, error) {
	// Bodies without a fast encoder run their WriteTo outside the lock.
	switch body.(type) {
	case nil, *ofp.FlowMod, *ofp.PacketOut, rawBody:
	default:
		b, err := ofwire.AppendWriterTo(nil, body)
		if err != nil {
			return 0, fmt.Errorf("controller: encode %s body (%T): %w", of.Type(t), body, err)
		}
		body = rawBody(b)
	}
	s.smu.Lock()
	for {
		if s.sclosed {
			s.smu.Unlock()
			return 0, s.closedErr(fmt.Sprintf("send %s", of.Type(t)))
		}
		if s.scount < s.cfg.SendQueueLen && len(s.sbuf) < maxQueueBytes {
			break
		}
		if s.spaceCh == nil {
			s.spaceCh = make(chan struct{})
		}
		ch := s.spaceCh
		s.smu.Unlock()
		s.kick() // the queue may be full of corked messages
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("controller: send %s to %s: send queue full: %w", of.Type(t), s.DPID(), ctx.Err())
		case <-s.done:
		}
		s.smu.Lock()
	}
	s.xid++
	if s.xid == 0 {
		s.xid = 1
	}
	xid := s.xid
	start := len(s.sbuf)
	b := ofwire.AppendHeader(s.sbuf, t, 0, xid)
	var err error
	switch m := body.(type) {
	case nil:
	case *ofp.FlowMod:
		b, err = ofwire.AppendFlowMod(b, m)
		if err == nil && m.Match.Type == ofp.MatchTypeStandard {
			b[start+ofwire.HeaderLen+flowModMatchOffset+1] = byte(ofp.MatchTypeXM)
		}
	case *ofp.PacketOut:
		b, err = ofwire.AppendPacketOut(b, m)
	case rawBody:
		b = append(b, m...)
	}
	if err == nil {
		err = ofwire.FinishMessage(b[start:])
	}
	if err != nil {
		s.sbuf = b[:start]
		s.smu.Unlock()
		return 0, fmt.Errorf("controller: encode %s: %w", of.Type(t), err)
	}
	s.sbuf = b
	if p != nil {
		p.xid = xid
		s.pmu.Lock()
		if p.barrier {
			p.rangeStart = s.lastBarrier
			s.lastBarrier = xid
			s.claimRecentLocked(p)
		}
		s.pending[xid] = p
		s.npending.Add(1)
		s.pmu.Unlock()
	}
	s.scount++
	first := s.scount == 1
	s.smu.Unlock()
	// While the event goroutine is corked (dispatching a batch) it wakes
	// the writer itself at the end of the batch; requests go out at once.
	// The cork timer bounds the delay when a handler is slow.
	switch {
	case p != nil:
		s.kick()
	case first && s.corked.Load():
		s.corkTimer.Reset(maxCorkDelay)
	case first:
		s.kick()
	}
	if p != nil {
		// A reader waiting for event-queue space must resume reading to
		// deliver this reply (see push).
		s.emu.Lock()
		s.spaceCond.Broadcast()
		s.emu.Unlock()
	}
	return xid, nil
}

// enqueueRaw queues a complete, pre-built message (hello, echo reply,
// error) without waiting for space: the reader must not block on a
// switch that does not read. It is dropped when the session is closed or
// the queue holds maxQueueBytes already.
func (s *Session) enqueueRaw(msg []byte) {
	s.smu.Lock()
	if s.sclosed || len(s.sbuf) >= maxQueueBytes {
		s.smu.Unlock()
		return
	}
	s.sbuf = append(s.sbuf, msg...)
	s.scount++
	first := s.scount == 1
	s.smu.Unlock()
	if first {
		s.kick()
	}
}

// kick wakes the writer.
func (s *Session) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// nextXid allocates an xid for a message built outside enqueue.
func (s *Session) nextXid() uint32 {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.xid++
	if s.xid == 0 {
		s.xid = 1
	}
	return s.xid
}

// closedErr wraps ErrClosed with the reason the session ended.
func (s *Session) closedErr(op string) error {
	<-s.done // sclosed is set only after done is closed
	return fmt.Errorf("controller: %s to %s: %w: %v", op, s.DPID(), ErrClosed, s.closeErr)
}

// dropPending forgets a request whose caller gave up.
func (s *Session) dropPending(xid uint32) {
	s.pmu.Lock()
	if _, ok := s.pending[xid]; ok {
		delete(s.pending, xid)
		s.npending.Add(-1)
	}
	s.pmu.Unlock()
}
