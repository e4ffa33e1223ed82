//go:build integration

package ovsdb

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
)

// tcpProxy forwards 127.0.0.1:<port> to ovsdb-server's unix socket. While
// frozen it swallows traffic in both directions without closing anything:
// a peer that went silent, which only an inactivity probe detects.
type tcpProxy struct {
	ln       net.Listener
	frozen   atomic.Bool
	accepted atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
}

func startProxy(t *testing.T, sock string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			u, err := net.Dial("unix", sock)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	return p
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func TestTCPEndpointAndInactivityProbe(t *testing.T) {
	inst := ovstest.Start(t, "sko-tcp")
	proxy := startProxy(t, inst.DBSock)
	ctx := testCtx(t)
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	endpoint := "tcp:" + proxy.ln.Addr().String()
	c, err := Dial(ctx, endpoint, WithInactivityProbe(200*time.Millisecond), WithLogger(newTestLogger(w)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if c.Endpoint().String() != endpoint {
		t.Fatalf("Endpoint = %s", c.Endpoint())
	}
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-br0", DatapathType: "netdev"}); err != nil {
		t.Fatal(err)
	}
	if o := vsctl(t, inst, "list-br"); o != "sko-br0" {
		t.Fatalf("bridges = %q", o)
	}

	// The peer goes silent: the echo probe notices and the client drops
	// the connection, then reconnects once traffic flows again.
	proxy.frozen.Store(true)
	t0 := time.Now()
	eventually(t, "client to notice the silent peer", func() (bool, string) { return !c.Connected(), "connected" })
	// Connected blocks while libovsdb's first reconnection attempt holds its
	// lock (up to reconnectTimeout against a silent peer), so this is an
	// upper bound of the detection time.
	t.Logf("Connected() false %v after the peer went silent (probe 200 ms)", time.Since(t0))
	proxy.frozen.Store(false)
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-br0", ExternalIDs: map[string]string{"after": "probe"}}); err != nil {
		t.Fatal(err)
	}
	if !c.Connected() || proxy.accepted.Load() < 2 {
		t.Fatalf("connected %v after %d connections", c.Connected(), proxy.accepted.Load())
	}
	if o := vsctl(t, inst, "get", "Bridge", "sko-br0", "external_ids:after"); o != "probe" {
		t.Fatalf("external_ids:after = %s", o)
	}
}
