package ofbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	of "github.com/netrack/openflow"
)

// Responder is the smallest useful OpenFlow 1.3 controller: it completes
// the handshake (hello, features request) and answers every packet-in with
// one packet-out that floods the packet (buffer id, or the frame itself for
// OFP_NO_BUFFER), preceded by a flow-mod when FlowMod is set. It keeps no
// state per MAC, so it bounds what ofbench itself can measure on a machine
// (the recipe's "trivial Go packet-in -> packet-out responder"), and it is
// the fake controller of the package's tests.
type Responder struct {
	// FlowMod sends an OFPT_FLOW_MOD (add, empty match, no instructions)
	// before each packet-out, as a learning switch with a known
	// destination does.
	FlowMod bool
	// Logf, if set, receives connection errors.
	Logf func(format string, args ...any)

	packetIns atomic.Uint64
}

// PacketIns returns the number of packet-ins received so far.
func (r *Responder) PacketIns() uint64 { return r.packetIns.Load() }

// Serve accepts connections on l until ctx is done or l fails, serving
// each in its own goroutine, and closes l and every connection on return.
// It returns nil when ctx ended it.
func (r *Responder) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		_ = l.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	defer func() {
		close(done)
		wg.Wait()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("responder: accept: %w", err)
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.serveConn(c); err != nil && ctx.Err() == nil && r.Logf != nil {
				r.Logf("responder: %v: %v", c.RemoteAddr(), err)
			}
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			_ = c.Close()
		}()
	}
}

// serveConn runs one switch connection.
func (r *Responder) serveConn(c net.Conn) error {
	out, err := encode(nil, of.TypeHello, 1, helloBody())
	if err != nil {
		return err
	}
	if out, err = encode(out, of.TypeFeaturesRequest, 2, nil); err != nil {
		return err
	}
	if _, err := c.Write(out); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	buf := make([]byte, readBufSize)
	out = make([]byte, 0, 64<<10)
	var xid uint32 = 2
	rd, wr := 0, 0
	for {
		n, err := c.Read(buf[wr:])
		wr += n
		if err != nil {
			return err
		}
		out = out[:0]
		for wr-rd >= ofpHeaderLen {
			length := int(binary.BigEndian.Uint16(buf[rd+2:]))
			if length < ofpHeaderLen {
				return errors.New("malformed message: length < 8")
			}
			if wr-rd < length {
				break
			}
			m := buf[rd : rd+length]
			rd += length
			switch of.Type(m[1]) {
			case of.TypeEchoRequest:
				out = append(out, m...)
				out[len(out)-length+1] = byte(of.TypeEchoReply)
			case of.TypePacketIn:
				r.packetIns.Add(1)
				xid++
				out = appendAnswer(out, m, xid, r.FlowMod)
			}
		}
		if rd == wr {
			rd, wr = 0, 0
		} else if len(buf)-wr < 0x10000 {
			wr = copy(buf, buf[rd:wr])
			rd = 0
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return err
			}
		}
	}
}

// appendAnswer appends the answer to packet-in pin: optionally a flow-mod,
// then a packet-out flooding the packet.
func appendAnswer(out, pin []byte, xid uint32, flowMod bool) []byte {
	if len(pin) < 26 {
		return out
	}
	bufID := binary.BigEndian.Uint32(pin[8:])
	matchLen := int(binary.BigEndian.Uint16(pin[26:]))
	inPort := uint32(0xfffffffd) // OFPP_CONTROLLER when the match lacks in_port
	if matchLen >= 12 && len(pin) >= 36 && binary.BigEndian.Uint32(pin[28:]) == 0x80000004 {
		inPort = binary.BigEndian.Uint32(pin[32:])
	}
	dataOff := 24 + (matchLen+7)&^7 + 2
	var data []byte
	if bufID == ofpNoBuffer && dataOff <= len(pin) {
		data = pin[dataOff:]
	}
	if flowMod {
		// ofp_flow_mod with an empty OXM match, no instructions (56 bytes).
		fm := make([]byte, 56)
		fm[0], fm[1] = ofpVersion, byte(of.TypeFlowMod)
		binary.BigEndian.PutUint16(fm[2:], 56)
		binary.BigEndian.PutUint32(fm[4:], xid)
		binary.BigEndian.PutUint16(fm[30:], 0x8000) // priority
		binary.BigEndian.PutUint32(fm[flowModBufferIDOff:], ofpNoBuffer)
		binary.BigEndian.PutUint32(fm[36:], 0xffffffff) // out_port ANY
		binary.BigEndian.PutUint32(fm[40:], 0xffffffff) // out_group ANY
		binary.BigEndian.PutUint16(fm[48:], 1)          // match type OXM
		binary.BigEndian.PutUint16(fm[50:], 4)          // match length
		out = append(out, fm...)
	}
	n := packetOutActionsOff + 16 + len(data)
	start := len(out)
	out = append(out, make([]byte, n)...)
	po := out[start:]
	po[0], po[1] = ofpVersion, byte(of.TypePacketOut)
	binary.BigEndian.PutUint16(po[2:], uint16(n))
	binary.BigEndian.PutUint32(po[4:], xid)
	binary.BigEndian.PutUint32(po[packetOutBufferIDOff:], bufID)
	binary.BigEndian.PutUint32(po[12:], inPort)
	binary.BigEndian.PutUint16(po[packetOutActLenOff:], 16)
	a := po[packetOutActionsOff:]
	binary.BigEndian.PutUint16(a[0:], 0)          // OFPAT_OUTPUT
	binary.BigEndian.PutUint16(a[2:], 16)         // length
	binary.BigEndian.PutUint32(a[4:], 0xfffffffb) // OFPP_FLOOD
	binary.BigEndian.PutUint16(a[8:], 0xffff)     // max_len OFPCML_NO_BUFFER
	copy(po[packetOutActionsOff+16:], data)
	return out
}
