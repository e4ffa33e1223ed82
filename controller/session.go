package controller

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller/ofwire"
)

// Error types and codes this package sends (spec 7.4.4).
const (
	errTypeHelloFailed      ofp.ErrType = 0 // OFPET_HELLO_FAILED
	errCodeHelloIncompatble ofp.ErrCode = 0 // OFPHFC_INCOMPATIBLE
	errTypeBadRequest       ofp.ErrType = 1 // OFPET_BAD_REQUEST
	errCodeBadVersion       ofp.ErrCode = 0 // OFPBRC_BAD_VERSION
)

// ServeConn runs one OpenFlow session on conn (hello, features, port
// description, SwitchUp, events until the connection ends, SwitchDown)
// and returns when it has ended and its SwitchDown handlers have run. It
// closes conn. The returned error says why the session ended; it is nil
// when ctx was cancelled or the switch closed the connection cleanly
// after the handshake.
func (c *Controller) ServeConn(ctx context.Context, conn net.Conn) error {
	s := newSwitch(c, conn, ctx)
	stop := context.AfterFunc(ctx, func() { s.close(fmt.Errorf("controller shutting down: %w", context.Cause(ctx))) })
	defer stop()

	writerDone := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { defer close(writerDone); s.writeLoop() }()
	s.enqueueRaw(ofwire.AppendHello(nil, s.nextXid()))
	go func() {
		defer close(readerDone)
		err := s.readLoop()
		s.close(err)
	}()
	go s.keepalive()

	up := false
	err := s.handshake()
	if err != nil {
		s.close(err)
	} else {
		up = true
		c.register(s)
		s.Logger().Info("switch connected", "n_tables", s.NTables(), "ports", len(s.Ports()))
		c.chain.SwitchUp(s.ctx, s)
		s.eventLoop()
	}
	<-s.done
	<-writerDone
	<-readerDone
	if up {
		c.unregister(s)
		// SwitchDown gets a fresh context bounded by RequestTimeout (the
		// session context is already cancelled).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.RequestTimeout)
		c.chain.SwitchDown(ctx, s)
		cancel()
		s.Logger().Info("switch disconnected", "reason", s.closeErr)
	} else {
		s.Logger().Warn("openflow handshake failed", "err", s.closeErr)
	}
	close(s.finished)
	if ctx.Err() != nil || (up && errors.Is(s.closeErr, io.EOF)) {
		return nil
	}
	return s.closeErr
}

// close ends the session once: records err, closes Done and the
// connection, wakes every goroutine and fails pending requests.
func (s *Session) close(err error) {
	s.once.Do(func() {
		if err == nil {
			err = errors.New("session closed")
		}
		s.closeErr = err
		close(s.done)
		s.cancel()
		s.conn.Close()
		s.smu.Lock()
		s.sclosed = true
		if s.spaceCh != nil {
			close(s.spaceCh)
			s.spaceCh = nil
		}
		s.smu.Unlock()
		s.corkTimer.Stop()
		s.emu.Lock()
		s.eclosed = true
		s.events = nil
		s.itemCond.Broadcast()
		s.spaceCond.Broadcast()
		s.emu.Unlock()
		s.pmu.Lock()
		cerr := fmt.Errorf("controller: request to %s: %w: %v", s.DPID(), ErrClosed, err)
		for xid, p := range s.pending {
			p.ch <- res{err: cerr}
			delete(s.pending, xid)
		}
		s.npending.Store(0)
		s.pmu.Unlock()
	})
}

// flushThenClose lets the writer send what is queued (e.g. a
// HELLO_FAILED error), then closes the session; bounded by one second.
func (s *Session) flushThenClose(err error) {
	s.smu.Lock()
	s.flushExit = true
	s.flushErr = err
	s.smu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
	}
	s.close(err)
}

// handshake waits for the hello negotiation, then requests features and
// the port description (spec 6.3.3), bounded by HandshakeTimeout.
func (s *Session) handshake() error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	select {
	case err := <-s.helloCh:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return fmt.Errorf("handshake: no hello from switch within %s", s.cfg.HandshakeTimeout)
	case <-s.done:
		return s.closeErr
	}
	rep, err := s.Request(ctx, of.TypeFeaturesRequest, nil)
	if err != nil {
		return fmt.Errorf("handshake: features request: %w", err)
	}
	if rep.Header.Type != of.TypeFeaturesReply {
		return fmt.Errorf("handshake: features request answered by message type %s", rep.Header.Type)
	}
	f, err := ofwire.DecodeFeatures(rep.Body)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if f.AuxiliaryID != 0 {
		return fmt.Errorf("handshake: auxiliary connection %d of datapath %s is not supported", f.AuxiliaryID, DPID(f.DatapathID))
	}
	s.dpid.Store(f.DatapathID)
	s.ntab.Store(uint32(f.NumTables))
	s.logger.Store(s.Logger().With("dpid", DPID(f.DatapathID).String()))
	ports, err := s.PortDesc(ctx)
	if err != nil {
		return fmt.Errorf("handshake: port description: %w", err)
	}
	s.portMu.Lock()
	for _, p := range ports {
		s.ports[p.PortNo] = p
	}
	s.portMu.Unlock()
	return nil
}

// writeLoop is the session's only writer: it takes everything queued,
// writes it with one Write, and repeats.
func (s *Session) writeLoop() {
	var out []byte
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		s.smu.Lock()
		out, s.sbuf = s.sbuf, out[:0]
		n := s.scount
		s.scount = 0
		if s.spaceCh != nil {
			close(s.spaceCh)
			s.spaceCh = nil
		}
		exit, exitErr := s.flushExit, s.flushErr
		s.smu.Unlock()
		if len(out) > 0 {
			_ = s.conn.SetWriteDeadline(time.Now().Add(s.cfg.DeadPeerTimeout))
			if _, err := s.conn.Write(out); err != nil {
				s.close(fmt.Errorf("write: %w", err))
				return
			}
			s.tx.Add(uint64(n))
			s.txBytes.Add(uint64(len(out)))
			s.writes.Add(1)
		}
		if exit {
			s.close(exitErr)
			return
		}
		if cap(out) > 1<<20 {
			out = nil // do not keep a burst-sized buffer
		}
	}
}

// keepalive sends echo requests when the switch is idle (spec 6.3.7) and
// closes the session after DeadPeerTimeout without input.
func (s *Session) keepalive() {
	period := min(s.cfg.EchoInterval, s.cfg.DeadPeerTimeout) / 4
	period = max(period, time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	last, lastChange, lastEcho := s.rx.Load(), time.Now(), time.Time{}
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			if n := s.rx.Load(); n != last {
				last, lastChange = n, now
				continue
			}
			idle := now.Sub(lastChange)
			if idle >= s.cfg.DeadPeerTimeout {
				s.close(fmt.Errorf("dead peer: nothing received for %s", idle.Round(time.Millisecond)))
				return
			}
			if idle >= s.cfg.EchoInterval && now.Sub(lastEcho) >= s.cfg.EchoInterval {
				lastEcho = now
				s.enqueueRaw(ofwire.AppendHeader(nil, uint8(of.TypeEchoRequest), 8, s.nextXid()))
			}
		}
	}
}

// readLoop reads and handles messages until the connection fails or a
// message is malformed. It never panics on input.
func (s *Session) readLoop() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error handling switch input: %v\n%s", r, debug.Stack())
		}
	}()
	br := bufio.NewReaderSize(s.conn, ofwire.MaxMessageLen+1)
	first := true
	for {
		hdr, err := br.Peek(ofwire.HeaderLen)
		if err != nil {
			if errors.Is(err, io.EOF) && len(hdr) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read: %w", err)
		}
		l := int(hdr[2])<<8 | int(hdr[3])
		if l < ofwire.HeaderLen {
			return fmt.Errorf("malformed message: header length %d below 8 (type %d)", l, hdr[1])
		}
		msg, err := br.Peek(l)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read %d-byte message type %d: %w", l, hdr[1], err)
		}
		s.rx.Add(1)
		s.rxBytes.Add(uint64(l))
		if first {
			first = false
			if err := s.handleHello(msg); err != nil {
				return err
			}
		} else if err := s.handle(msg); err != nil {
			return err
		}
		if _, err := br.Discard(l); err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
}

// handleHello negotiates the version (spec 6.3.1). On failure it sends
// OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE with an ASCII reason, flushes
// and returns the reason.
func (s *Session) handleHello(msg []byte) error {
	xid := uint32(msg[4])<<24 | uint32(msg[5])<<16 | uint32(msg[6])<<8 | uint32(msg[7])
	var err error
	if of.Type(msg[1]) != of.TypeHello {
		err = fmt.Errorf("first message from switch is type %d, not hello", msg[1])
	} else {
		err = ofwire.NegotiateVersion(msg[0], msg[ofwire.HeaderLen:])
	}
	if err != nil {
		reason := fmt.Sprintf("skyvisor: %v", err)
		s.enqueueRaw(ofwire.AppendError(nil, xid, errTypeHelloFailed, errCodeHelloIncompatble, []byte(reason)))
		go s.flushThenClose(fmt.Errorf("hello failed: %w", err))
		<-s.done
		return fmt.Errorf("hello failed: %w", err)
	}
	if s.Logger().Enabled(s.ctx, slog.LevelDebug) {
		s.Logger().Debug("hello: negotiated OpenFlow 1.3", "switch_hello_version", msg[0],
			"switch_versions", offeredVersions(msg[0], msg[ofwire.HeaderLen:]))
	}
	s.helloCh <- nil
	return nil
}

// offeredVersions lists the versions a switch's hello offers (spec
// 6.3.1), for the debug log: its version bitmap as "1.0,1.3,1.4", or
// "up to 1.5 (no bitmap)".
func offeredVersions(hdr uint8, body []byte) string {
	name := func(v uint8) string {
		if v >= 1 && v <= 6 {
			return fmt.Sprintf("1.%d", v-1)
		}
		return fmt.Sprintf("0x%02x", v)
	}
	h, err := ofwire.DecodeHello(body)
	if err != nil || h.Bitmap == nil {
		return "up to " + name(hdr) + " (no bitmap)"
	}
	var vs []string
	for v := 1; v < 32*len(h.Bitmap) && v < 256; v++ {
		if h.Supports(uint8(v)) {
			vs = append(vs, name(uint8(v)))
		}
	}
	return strings.Join(vs, ",")
}

// handle processes one message after the hello. msg aliases the read
// buffer: anything kept must be copied. A returned error closes the
// session.
func (s *Session) handle(msg []byte) error {
	t := of.Type(msg[1])
	xid := uint32(msg[4])<<24 | uint32(msg[5])<<16 | uint32(msg[6])<<8 | uint32(msg[7])
	body := msg[ofwire.HeaderLen:]
	if msg[0] != ofwire.Version13 {
		// Spec 7.4.4: OFPBRC_BAD_VERSION, first 64 bytes of the message.
		s.enqueueRaw(ofwire.AppendError(nil, xid, errTypeBadRequest, errCodeBadVersion, msg[:min(len(msg), 64)]))
		s.Logger().Warn("ignoring message with wrong version", "version", msg[0], "type", t)
		return nil
	}
	switch t {
	case of.TypePacketIn:
		pi, err := decodePacketIn(body)
		if err != nil {
			return fmt.Errorf("malformed packet-in xid %d: %w", xid, err)
		}
		s.push(pi, true)
	case of.TypeEchoRequest:
		b := ofwire.AppendHeader(make([]byte, 0, len(msg)), uint8(of.TypeEchoReply), uint16(len(msg)), xid)
		s.enqueueRaw(append(b, body...))
	case of.TypePortStatus:
		reason, port, err := ofwire.DecodePortStatus(body)
		if err != nil {
			return fmt.Errorf("malformed port status: %w", err)
		}
		s.portMu.Lock()
		if reason == ofp.PortReasonDelete {
			delete(s.ports, port.PortNo)
		} else {
			s.ports[port.PortNo] = port
		}
		s.portMu.Unlock()
		s.push(&PortStatus{Reason: reason, Port: port}, false)
	case of.TypeFlowRemoved:
		fr, err := ofwire.DecodeFlowRemoved(append([]byte(nil), body...))
		if err != nil {
			return fmt.Errorf("malformed flow removed: %w", err)
		}
		s.push(fr, false)
	case of.TypeError:
		em, err := ofwire.DecodeError(body)
		if err != nil {
			return fmt.Errorf("malformed error message: %w", err)
		}
		s.handleError(&OFPError{Xid: xid, Type: em.Type, Code: em.Code, Data: append([]byte(nil), em.Data...)})
	case of.TypeMultipartReply:
		mp, err := ofwire.DecodeMultipartReply(body)
		if err != nil {
			return fmt.Errorf("malformed multipart reply: %w", err)
		}
		s.handleMultipart(msg, xid, mp)
	case of.TypeHello:
		// A second hello is harmless; ignore it.
	case of.TypeEchoReply, of.TypeFeaturesReply, of.TypeGetConfigReply, of.TypeBarrierReply,
		of.TypeQueueGetConfigReply, of.TypeRoleReply, of.TypeGetAsyncReply, of.TypeExperiment:
		s.handleReply(msg, t, xid)
	default:
		s.Logger().Debug("ignoring unexpected message from switch", "type", t, "xid", xid)
	}
	return nil
}

// handleReply hands a reply to the request waiting for its xid.
func (s *Session) handleReply(msg []byte, t of.Type, xid uint32) {
	s.pmu.Lock()
	p, ok := s.pending[xid]
	if ok {
		delete(s.pending, xid)
		s.npending.Add(-1)
	}
	s.pmu.Unlock()
	if !ok {
		if t != of.TypeEchoReply {
			s.Logger().Debug("reply without a waiting request", "type", t, "xid", xid)
		}
		return
	}
	r := res{reply: &Reply{
		Header: of.Header{Version: msg[0], Type: t, Length: uint16(len(msg)), Transaction: xid},
		Body:   append([]byte(nil), msg[ofwire.HeaderLen:]...),
	}}
	if p.barrier && len(p.errs) > 0 {
		r.err = errors.Join(p.errs...)
	}
	p.ch <- r
}

// handleMultipart reassembles OFPMPF_REPLY_MORE parts (spec 7.3.5).
func (s *Session) handleMultipart(msg []byte, xid uint32, mp ofwire.MultipartReply) {
	s.pmu.Lock()
	p, ok := s.pending[xid]
	if !ok {
		s.pmu.Unlock()
		s.Logger().Debug("multipart reply without a waiting request", "xid", xid, "type", mp.Type)
		return
	}
	if !p.multipart {
		s.pmu.Unlock()
		s.handleReply(msg, of.TypeMultipartReply, xid)
		return
	}
	var r *res
	switch {
	case uint16(mp.Type) != p.mpType:
		r = &res{err: fmt.Errorf("controller: multipart request type %s xid %d answered with type %s", ofp.MultipartType(p.mpType), xid, mp.Type)}
	case len(p.parts)+len(mp.Body) > maxMultipartBytes:
		r = &res{err: fmt.Errorf("controller: multipart reply xid %d exceeds %d bytes", xid, maxMultipartBytes)}
	default:
		p.parts = append(p.parts, mp.Body...)
		if mp.Flags&ofwire.MultipartReplyMore == 0 {
			body := p.parts
			if body == nil {
				body = []byte{}
			}
			r = &res{body: body}
		}
	}
	if r != nil {
		delete(s.pending, xid)
		s.npending.Add(-1)
	}
	s.pmu.Unlock()
	if r != nil {
		p.ch <- *r
	}
}

// handleError routes an OFPT_ERROR: to the request with its xid, else to
// the barrier whose range holds the xid, else to the ErrorHandler apps
// (and the recent-error ring a later Barrier can claim).
func (s *Session) handleError(e *OFPError) {
	s.pmu.Lock()
	if p, ok := s.pending[e.Xid]; ok {
		delete(s.pending, e.Xid)
		s.npending.Add(-1)
		s.pmu.Unlock()
		p.ch <- res{err: e}
		return
	}
	for _, p := range s.pending {
		if p.barrier && xidBetween(p.rangeStart, e.Xid, p.xid) {
			p.errs = append(p.errs, e)
			s.pmu.Unlock()
			return
		}
	}
	s.recentErrs[s.recentErrPos] = recentErr{valid: true, err: e}
	s.recentErrPos = (s.recentErrPos + 1) % len(s.recentErrs)
	s.pmu.Unlock()
	s.push(&ErrorEvent{Xid: e.Xid, Type: e.Type, Code: e.Code, Data: e.Data}, false)
}

// claimRecentLocked moves recent unclaimed errors in p's range to p.
// Caller holds pmu.
func (s *Session) claimRecentLocked(p *pending) {
	for i := range s.recentErrs {
		r := &s.recentErrs[i]
		if r.valid && xidBetween(p.rangeStart, r.err.Xid, p.xid) {
			p.errs = append(p.errs, r.err)
			r.valid = false
		}
	}
}

// xidBetween reports lo < x < hi in serial-number order (xids wrap).
func xidBetween(lo, x, hi uint32) bool {
	return int32(x-lo) > 0 && int32(hi-x) > 0
}

// push queues an event for the event goroutine. Packet-ins wait while
// the queue holds SendQueueLen events (backpressure through TCP), unless
// a request is pending: then the reader must keep reading to deliver its
// reply. Other events never wait. Any event beyond 16x SendQueueLen
// queued events is dropped (logged at powers of two).
func (s *Session) push(ev any, packetIn bool) {
	s.emu.Lock()
	limit := s.cfg.SendQueueLen
	if packetIn {
		for len(s.events) >= limit && !s.eclosed && s.npending.Load() == 0 {
			s.spaceCond.Wait()
		}
	}
	if len(s.events) >= 16*limit {
		s.dropped++
		s.drops.Add(1)
		if s.dropped&(s.dropped-1) == 0 {
			s.Logger().Warn("event queue full, dropping events", "dropped", s.dropped, "event", fmt.Sprintf("%T", ev))
		}
		s.emu.Unlock()
		return
	}
	if s.eclosed {
		s.emu.Unlock()
		return
	}
	s.events = append(s.events, ev)
	if len(s.events) == 1 {
		s.itemCond.Signal()
	}
	s.emu.Unlock()
}

// eventLoop dispatches queued events to the apps until the session ends.
func (s *Session) eventLoop() {
	for {
		s.emu.Lock()
		for len(s.events) == 0 && !s.eclosed {
			s.itemCond.Wait()
		}
		if s.eclosed {
			s.emu.Unlock()
			return
		}
		batch := s.events
		s.events = s.spare[:0]
		s.spaceCond.Broadcast()
		s.emu.Unlock()
		// Cork the writer while dispatching: the handlers' flow mods and
		// packet outs go out in one write per up to 64 events.
		s.corked.Store(true)
		for i, ev := range batch {
			s.dispatch(ev)
			batch[i] = nil
			if i&63 == 63 {
				s.kick()
				select {
				case <-s.done:
					s.corked.Store(false)
					return
				default:
				}
			}
		}
		s.corked.Store(false)
		s.corkTimer.Stop()
		s.kick()
		s.emu.Lock()
		s.spare = batch[:0]
		s.emu.Unlock()
	}
}

// dispatch calls the handlers for one event in registration order.
func (s *Session) dispatch(ev any) {
	switch ev := ev.(type) {
	case *PacketIn:
		s.c.chain.PacketIn(s.ctx, s, ev)
	case *PortStatus:
		s.c.chain.PortStatus(s.ctx, s, ev)
	case *ofp.FlowRemoved:
		s.c.chain.FlowRemoved(s.ctx, s, ev)
	case *ErrorEvent:
		s.c.chain.SwitchError(s.ctx, s, ev)
	}
}
