package controller

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
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
	per map[*Switch]*benchState
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

func (a *benchApp) state(sw *Switch) *benchState {
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

func (a *benchApp) PacketIn(ctx context.Context, sw *Switch, ev *PacketIn) Disposition {
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
// TCP and over net.Pipe. The fake switch side does not allocate, so the
// reported allocs/op are the controller's.
func BenchmarkPacketInToFlowMod(b *testing.B) {
	for _, transport := range []string{"tcp", "pipe"} {
		b.Run(transport, func(b *testing.B) { benchPacketIn(b, transport) })
	}
}

func benchPacketIn(b *testing.B, transport string) {
	app := &benchApp{per: make(map[*Switch]*benchState)}
	c, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, app)
	if err != nil {
		b.Fatal(err)
	}
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
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- c.ServeConn(ctx, ctrlSide) }()
	defer func() {
		cancel()
		swSide.Close()
		<-served
	}()

	// Handshake by hand, then switch to an allocation-free reader.
	br := bufio.NewReaderSize(swSide, 1<<16)
	readMsg := func() (of.Type, uint32, []byte) {
		hdr, err := br.Peek(8)
		if err != nil {
			b.Fatal(err)
		}
		l := int(binary.BigEndian.Uint16(hdr[2:]))
		m, err := br.Peek(l)
		if err != nil {
			b.Fatal(err)
		}
		t, xid := of.Type(m[1]), binary.BigEndian.Uint32(m[4:])
		body := append([]byte(nil), m[8:]...)
		_, _ = br.Discard(l)
		return t, xid, body
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
		t, xid, _ := readMsg()
		switch t {
		case of.TypeFeaturesRequest:
			send(of.TypeFeaturesReply, xid, featuresBody(1, 254))
		case of.TypeMultipartRequest:
			send(of.TypeMultipartReply, xid, mpReply(ofp.MultipartTypePortDescription, false, portBytes(1, "p1")))
			up = true
		}
	}

	// A batch of 64 packet-ins with different MACs.
	var batch []byte
	for i := range 64 {
		frame := make([]byte, 60)
		copy(frame, []byte{2, 0, 0, 0, 1, byte(i), 2, 0, 0, 0, 2, byte(i), 0x08, 0})
		batch = append(batch, packetInMsg(uint32(1+i%4), frame)...)
	}
	perBatch := 64

	var flowMods, packetOuts int
	readDone := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		defer close(readDone)
		for flowMods < b.N || packetOuts < b.N {
			hdr, err := br.Peek(8)
			if err != nil {
				return
			}
			l := int(binary.BigEndian.Uint16(hdr[2:]))
			switch of.Type(hdr[1]) {
			case of.TypeFlowMod:
				flowMods++
			case of.TypePacketOut:
				packetOuts++
			}
			if _, err := br.Discard(l); err != nil {
				return
			}
		}
	}()
	for sent := 0; sent < b.N; sent += perBatch {
		n := min(perBatch, b.N-sent)
		end := 0
		for i := 0; i < n; i++ {
			end += int(binary.BigEndian.Uint16(batch[end+2:]))
		}
		if _, err := swSide.Write(batch[:end]); err != nil {
			b.Fatal(err)
		}
	}
	<-readDone
	b.StopTimer()
	if flowMods < b.N || packetOuts < b.N {
		b.Fatalf("got %d flow mods and %d packet outs for %d packet-ins", flowMods, packetOuts, b.N)
	}
}
