package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netrack/openflow/ofp"
)

// Controller accepts OpenFlow 1.3 switch connections and runs one session
// per connection (see the package documentation for the lifecycle).
// Create it with New. Its methods are safe for concurrent use.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	chain *Chain

	mu       sync.Mutex
	ln       net.Listener
	switches map[DPID]*Session // sessions past the handshake, by DPID
	wg       sync.WaitGroup    // sessions started by Serve
}

// hook pairs a handler with its app's name for logs.
type hook[T any] struct {
	name string
	h    T
}

// hooks are the handler interfaces found on the apps, in registration
// order.
type hooks struct {
	up          []hook[SwitchUpHandler]
	down        []hook[SwitchDownHandler]
	portStatus  []hook[PortStatusHandler]
	packetIn    []hook[PacketInHandler]
	flowRemoved []hook[FlowRemovedHandler]
	errs        []hook[ErrorHandler]
}

// New returns a Controller that dispatches events to apps in the given
// order. It fails when an app is nil, two apps share a name, an app
// implements no handler interface, or the TLS files cannot be loaded.
func New(cfg Config, apps ...App) (*Controller, error) {
	cfg = cfg.withDefaults()
	c := &Controller{cfg: cfg, log: cfg.Logger, switches: make(map[DPID]*Session)}
	ch, err := NewChain(apps...)
	if err != nil {
		return nil, err
	}
	c.chain = ch
	if cfg.TLS != nil {
		if _, err := cfg.tlsConfig(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// tlsConfig loads the TLS files.
func (cfg Config) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("controller: load TLS certificate %q / key %q: %w", cfg.TLS.CertFile, cfg.TLS.KeyFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("controller: read TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("controller: TLS CA file %q holds no PEM certificate", cfg.TLS.CAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// parseListen splits Config.Listen into a network and an address.
func parseListen(s string) (network, addr string, wantTLS bool, err error) {
	switch {
	case strings.HasPrefix(s, "unix:"):
		network, addr = "unix", strings.TrimPrefix(s, "unix:")
	case strings.HasPrefix(s, "tcp:"):
		network, addr = "tcp", strings.TrimPrefix(s, "tcp:")
	case strings.HasPrefix(s, "ssl:"):
		network, addr, wantTLS = "tcp", strings.TrimPrefix(s, "ssl:"), true
	case strings.HasPrefix(s, "tls:"):
		network, addr, wantTLS = "tcp", strings.TrimPrefix(s, "tls:"), true
	default:
		network, addr = "tcp", s
	}
	if addr == "" {
		return "", "", false, fmt.Errorf("controller: listen address %q has an empty address", s)
	}
	if network == "tcp" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", "", false, fmt.Errorf("controller: listen address %q: %w", s, err)
		}
	}
	return network, addr, wantTLS, nil
}

// Listen binds Config.Listen (TCP, or a unix socket, with TLS when
// Config.TLS is set). After it returns nil, Addr is valid. A stale unix
// socket file at the path is removed first.
func (c *Controller) Listen() error {
	network, addr, wantTLS, err := parseListen(c.cfg.Listen)
	if err != nil {
		return err
	}
	if wantTLS && c.cfg.TLS == nil {
		return fmt.Errorf("controller: listen address %q asks for TLS but Config.TLS is nil", c.cfg.Listen)
	}
	if network == "unix" {
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(addr)
		}
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return fmt.Errorf("controller: listen %s: %w", c.cfg.Listen, err)
	}
	if c.cfg.TLS != nil {
		tc, err := c.cfg.tlsConfig()
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		ln.Close()
		return fmt.Errorf("controller: Listen called twice")
	}
	c.ln = ln
	c.log.Info("openflow controller listening", "addr", ln.Addr().String(), "tls", c.cfg.TLS != nil)
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (c *Controller) Addr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln == nil {
		return nil
	}
	return c.ln.Addr()
}

// Serve accepts switches until ctx is done, then closes the listener and
// all sessions it started, waits for their SwitchDown handlers, and
// returns nil. It returns an error when Listen was not called or Accept
// fails permanently.
func (c *Controller) Serve(ctx context.Context) error {
	c.mu.Lock()
	ln := c.ln
	c.mu.Unlock()
	if ln == nil {
		return errors.New("controller: Serve called before Listen")
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer c.wg.Wait()
	backoff := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("controller: accept: %w", err)
		}
		backoff = 5 * time.Millisecond
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := c.ServeConn(ctx, conn); err != nil {
				c.log.Debug("openflow session ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Run is Listen followed by Serve.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.Listen(); err != nil {
		return err
	}
	return c.Serve(ctx)
}

// Switches returns the connected switches whose handshake completed,
// sorted by DPID.
func (c *Controller) Switches() []*Session {
	c.mu.Lock()
	out := make([]*Session, 0, len(c.switches))
	for _, s := range c.switches {
		if s.Err() == nil { // not yet unlisted but already ended
			out = append(out, s)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b *Session) int {
		switch {
		case a.DPID() < b.DPID():
			return -1
		case a.DPID() > b.DPID():
			return 1
		}
		return 0
	})
	return out
}

// Switch returns the connected switch with the given DPID (handshake
// completed, session not ended).
func (c *Controller) Switch(dpid DPID) (*Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.switches[dpid]
	if !ok || s.Err() != nil {
		return nil, false
	}
	return s, true
}

// register publishes s under its DPID. An older session with the same
// DPID is closed, and register waits (bounded by HandshakeTimeout) until
// its SwitchDown handlers ran, so apps see Down(old) before Up(new).
func (c *Controller) register(s *Session) {
	c.mu.Lock()
	old := c.switches[s.DPID()]
	c.switches[s.DPID()] = s
	c.mu.Unlock()
	if old == nil || old == s {
		return
	}
	s.Logger().Warn("new connection replaces the session of the same DPID", "old_remote", addrString(old.remote))
	old.close(fmt.Errorf("replaced by a new connection with the same DPID from %s", addrString(s.remote)))
	t := time.NewTimer(c.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case <-old.finished:
	case <-t.C:
		s.Logger().Warn("old session's SwitchDown handlers still running; continuing")
	}
}

// unregister removes s unless a newer session replaced it.
func (c *Controller) unregister(s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.switches[s.DPID()] == s {
		delete(c.switches, s.DPID())
	}
}

// addrString formats a possibly nil address.
func addrString(a net.Addr) string {
	if a == nil {
		return "<nil>"
	}
	return a.String()
}

// portSorter orders ports by number.
func portSorter(a, b ofp.Port) int {
	switch {
	case a.PortNo < b.PortNo:
		return -1
	case a.PortNo > b.PortNo:
		return 1
	}
	return 0
}
