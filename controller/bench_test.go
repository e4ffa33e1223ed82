package controller

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

// benchApp answers every packet-in like a learning switch that knows the
// destination: one flow mod (in_port + eth_dst + eth_src) and one packet
// out. It reuses one FlowMod and PacketOut per switch (FlowMod and
// PacketOut encode before returning), as a hot-path app should.
type benchApp struct {
	mu  sync.Mutex
	per map[Switch]*benchState
}

type benchState struct {
	fm     ofp.FlowMod
	po     ofp.PacketOut
	fields [3]ofp.XM
	inPort [4]byte
	out    ofp.ActionOutput
	acts   [1]ofp.Action
	instr  ofp.InstructionApplyActions
	ins    [1]ofp.Instruction
}

func (a *benchApp) Name() string { return "skc-bench" }

func (a *benchApp) state(sw Switch) *benchState {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.per[sw]
	if st == nil {
		st = &benchState{}
		st.out = ofp.ActionOutput{Port: 2, MaxLen: 0xffff}
		st.acts[0] = &st.out
		st.instr.Actions = st.acts[:]
		st.ins[0] = &st.instr
		st.fm = ofp.FlowMod{Command: ofp.FlowAdd, Priority: 10, IdleTimeout: 60, OutPort: ofp.PortAny,
			OutGroup: ofp.GroupAny, Instructions: st.ins[:]}
		st.po = ofp.PacketOut{Actions: st.acts[:]}
		a.per[sw] = st
	}
	return st
}

func (a *benchApp) PacketIn(ctx context.Context, sw Switch, ev *PacketIn) Disposition {
	st := a.state(sw)
	if len(ev.Data) < 14 {
		return Continue
	}
	binary.BigEndian.PutUint32(st.inPort[:], uint32(ev.InPort))
	st.fields[0] = ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeInPort, Value: st.inPort[:]}
	st.fields[1] = ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthDst, Value: ev.Data[0:6]}
	st.fields[2] = ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthSrc, Value: ev.Data[6:12]}
	st.fm.Match = ofp.Match{Type: ofp.MatchTypeXM, Fields: st.fields[:]}
	st.fm.Buffer = ev.BufferID
	_ = sw.FlowMod(ctx, &st.fm)
	if ev.BufferID == ofp.NoBuffer {
		st.po.Buffer, st.po.InPort, st.po.Data = ofp.NoBuffer, ev.InPort, ev.Data
		_ = sw.PacketOut(ctx, &st.po)
	}
	return Stop
}

// BenchmarkPacketInToFlowMod measures one packet-in from a fake switch
// to the flow mod + packet out answering it, end to end through a
// session (read, decode, dispatch, encode, batched write), over loopback
// TCP and over net.Pipe, with 1 switch and with 16 switches (cbench's
// default) sharing the b.N packet-ins. The fake switch side does not
// allocate in the timed loop, so the reported allocs/op are the
// controller's. ns/op is per packet-in (1e9/ns = responses per second,
// each response being a flow mod and a packet out).
func BenchmarkPacketInToFlowMod(b *testing.B) {
	for _, tc := range []struct {
		transport string
		switches  int
	}{{"tcp", 1}, {"pipe", 1}, {"tcp", 16}} {
		b.Run(fmt.Sprintf("%s-%dsw", tc.transport, tc.switches), func(b *testing.B) {
			benchPacketIn(b, tc.transport, tc.switches)
		})
	}
}

// benchConn connects one fake switch and completes its handshake.
func benchConn(b *testing.B, c *Controller, ctx context.Context, transport string, dpid uint64, stats *connStats) (net.Conn, *bufio.Reader, chan error) {
	var ctrlSide, swSide net.Conn
	if transport == "pipe" {
		ctrlSide, swSide = net.Pipe()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			conn, _ := ln.Accept()
			accepted <- conn
		}()
		swSide, err = net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		ctrlSide = <-accepted
		ln.Close()
	}
	served := make(chan error, 1)
	cc := &countingConn{Conn: ctrlSide, stats: stats}
	go func() { served <- c.ServeConn(ctx, cc) }()
	br := bufio.NewReaderSize(swSide, 1<<16)
	readMsg := func() (of.Type, uint32) {
		hdr, err := br.Peek(8)
		if err != nil {
			b.Fatal(err)
		}
		l := int(binary.BigEndian.Uint16(hdr[2:]))
		t, xid := of.Type(hdr[1]), binary.BigEndian.Uint32(hdr[4:])
		if _, err := br.Discard(l); err != nil {
			b.Fatal(err)
		}
		return t, xid
	}
	send := func(t of.Type, xid uint32, body []byte) {
		m := []byte{4, byte(t), 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(m[2:], uint16(8+len(body)))
		binary.BigEndian.PutUint32(m[4:], xid)
		if _, err := swSide.Write(append(m, body...)); err != nil {
			b.Fatal(err)
		}
	}
	send(of.TypeHello, 1, helloBitmap(4))
	for up := false; !up; {
		t, xid := readMsg()
		switch t {
		case of.TypeFeaturesRequest:
			send(of.TypeFeaturesReply, xid, featuresBody(dpid, 254))
		case of.TypeMultipartRequest:
			send(of.TypeMultipartReply, xid, mpReply(ofp.MultipartTypePortDescription, false, portBytes(1, "p1")))
			up = true
		}
	}
	return swSide, br, served
}

func benchPacketIn(b *testing.B, transport string, switches int) {
	app := &benchApp{per: make(map[Switch]*benchState)}
	c, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, app)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stats := &connStats{}
	conns := make([]net.Conn, switches)
	readers := make([]*bufio.Reader, switches)
	serveds := make([]chan error, switches)
	for i := range switches {
		conns[i], readers[i], serveds[i] = benchConn(b, c, ctx, transport, uint64(i+1), stats)
	}
	defer func() {
		cancel()
		for i := range switches {
			conns[i].Close()
			<-serveds[i]
		}
	}()

	// A batch of 64 packet-ins with different MACs.
	const perBatch = 64
	var batch []byte
	for i := range perBatch {
		frame := make([]byte, 60)
		copy(frame, []byte{2, 0, 0, 0, 1, byte(i), 2, 0, 0, 0, 2, byte(i), 0x08, 0})
		batch = append(batch, packetInMsg(uint32(1+i%4), frame)...)
	}

	b.ReportAllocs()
	stats.reads.Store(0)
	stats.writes.Store(0)
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, 2*switches)
	for i := range switches {
		n := b.N / switches
		if i < b.N%switches {
			n++
		}
		wg.Add(2)
		go func(conn net.Conn, n int) { // fake switch: send n packet-ins
			defer wg.Done()
			for sent := 0; sent < n; sent += perBatch {
				k, end := min(perBatch, n-sent), 0
				for j := 0; j < k; j++ {
					end += int(binary.BigEndian.Uint16(batch[end+2:]))
				}
				if _, err := conn.Write(batch[:end]); err != nil {
					errs <- err
					return
				}
			}
		}(conns[i], n)
		go func(br *bufio.Reader, n int) { // fake switch: count answers
			defer wg.Done()
			var flowMods, packetOuts int
			for flowMods < n || packetOuts < n {
				hdr, err := br.Peek(8)
				if err != nil {
					errs <- err
					return
				}
				switch of.Type(hdr[1]) {
				case of.TypeFlowMod:
					flowMods++
				case of.TypePacketOut:
					packetOuts++
				}
				if _, err := br.Discard(int(binary.BigEndian.Uint16(hdr[2:]))); err != nil {
					errs <- err
					return
				}
			}
		}(readers[i], n)
	}
	wg.Wait()
	b.StopTimer()
	// Load-independent efficiency: controller syscalls per packet-in.
	b.ReportMetric(float64(stats.writes.Load())/float64(b.N), "writes/op")
	b.ReportMetric(float64(stats.reads.Load())/float64(b.N), "reads/op")
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// connStats counts the controller side's Read and Write calls.
type connStats struct{ reads, writes atomic.Int64 }

type countingConn struct {
	net.Conn
	stats *connStats
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.stats.reads.Add(1)
	return c.Conn.Read(p)
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.stats.writes.Add(1)
	return c.Conn.Write(p)
}

// BenchmarkPacketInRoundTrip is cbench's latency mode: one packet-in
// outstanding at a time over loopback TCP; ns/op is the round trip from
// writing the packet-in to reading both the flow mod and the packet out.
func BenchmarkPacketInRoundTrip(b *testing.B) {
	app := &benchApp{per: make(map[Switch]*benchState)}
	c, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, app)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stats := &connStats{}
	conn, br, served := benchConn(b, c, ctx, "tcp", 1, stats)
	defer func() {
		cancel()
		conn.Close()
		<-served
	}()
	frame := make([]byte, 60)
	copy(frame, []byte{2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 2, 2, 0x08, 0})
	pi := packetInMsg(1, frame)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := conn.Write(pi); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < 2; got++ {
			hdr, err := br.Peek(8)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := br.Discard(int(binary.BigEndian.Uint16(hdr[2:]))); err != nil {
				b.Fatal(err)
			}
		}
	}
}
