package ovsdb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/skyvisor/skyvisor/ovsdb/vswitch"
)

// ErrClosed is returned by every method of a Client after Close.
var ErrClosed = errors.New("ovsdb: client closed")

// ErrNotFound is wrapped by errors about a bridge or port that does not
// exist (errors.Is(err, ErrNotFound)).
var ErrNotFound = errors.New("not found")

// Reconnection schedule after the connection to ovsdb-server drops: the
// first retry after retryMin, doubling up to retryMax between attempts, each
// attempt bounded by reconnectTimeout. Retries never give up.
const (
	retryMin         = 50 * time.Millisecond
	retryMax         = 1 * time.Second
	reconnectTimeout = 5 * time.Second
)

// closedEndpoint is an address libovsdb rejects without dialing.
const closedEndpoint = "closed:"

// Client is a connection to one ovsdb-server holding the Open_vSwitch
// database (RFC 7047). It monitors the Open_vSwitch, Bridge, Port,
// Interface and Controller tables (RFC 7047 section 4.1.5, via libovsdb's
// monitor_cond_since) into a local cache that all reads use, and reconnects
// and re-monitors by itself when the server goes away (libovsdb's
// WithReconnect): calls made meanwhile block until the connection is back or
// their context ends. Writes are transactions (RFC 7047 section 4.1.3) whose
// results are checked operation by operation. A Client is safe for
// concurrent use; its read-modify-write operations are serialized.
type Client struct {
	lib      client.Client
	endpoint Endpoint
	log      *slog.Logger

	closeOnce sync.Once
	closed    atomic.Bool
	done      chan struct{} // closed by Close

	opMu sync.Mutex // serializes read-modify-write operations of this client

	txns atomic.Uint64 // committed transactions

	changeMu sync.Mutex
	changeCh chan struct{} // closed and replaced on every cache change
}

// Option configures Dial.
type Option func(*options)

type options struct {
	logger *slog.Logger
	probe  time.Duration
	tls    *tls.Config
}

// WithLogger sets the logger of the client and of libovsdb inside it
// (libovsdb's verbosity V(n) becomes slog level -n, so its chatter appears
// only at Debug and below; its errors are logged at Error). The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithInactivityProbe makes the client send an RFC 7047 echo (section
// 4.1.11) when the connection was idle for d and reconnect when no reply
// comes within another d; useful over TCP, where a dead peer is otherwise
// noticed late. 0 (the default) disables probing.
func WithInactivityProbe(d time.Duration) Option { return func(o *options) { o.probe = d } }

// Dial connects to the ovsdb-server at endpoint ("unix:/abs/path",
// "tcp:HOST:PORT" or "ssl:HOST:PORT", see ParseEndpoint), checks that it
// serves the Open_vSwitch database with a schema compatible with the
// generated models, and starts monitoring. An ssl endpoint needs WithTLS
// (mutual TLS: TLSFiles.Load); a server whose certificate does not verify,
// or that refuses the client's, fails the connection. ctx bounds the first
// connection and monitor setup only. Errors name the endpoint.
func Dial(ctx context.Context, endpoint string, opts ...Option) (*Client, error) {
	ep, err := ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if ep.IsSSL() && o.tls == nil {
		return nil, fmt.Errorf("ovsdb: endpoint %s: ssl needs a private key, certificate and CA certificate (WithTLS)", ep)
	}
	dbModel, err := vswitch.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("ovsdb: database model: %w", err)
	}
	c := &Client{
		endpoint: ep,
		log:      o.logger.With("ovsdb", ep.String()),
		done:     make(chan struct{}),
		changeCh: make(chan struct{}),
	}
	lg := logr.FromSlogHandler(warnCap{c.log.Handler()}).WithName("libovsdb")
	bo := &retryBackoff{closed: &c.closed}
	libOpts := []client.Option{client.WithEndpoint(ep.libovsdbAddress()), client.WithLogger(&lg)}
	if ep.IsSSL() {
		libOpts = append(libOpts, client.WithTLSConfig(o.tls))
	}
	if o.probe > 0 {
		libOpts = append(libOpts, client.WithInactivityCheck(o.probe, reconnectTimeout, bo))
	} else {
		libOpts = append(libOpts, client.WithReconnect(reconnectTimeout, bo))
	}
	c.lib, err = client.NewOVSDBClient(dbModel, libOpts...)
	if err != nil {
		return nil, fmt.Errorf("ovsdb: %s: %w", ep, err)
	}
	if err := c.lib.Connect(ctx); err != nil {
		return nil, fmt.Errorf("ovsdb: connect %s: %w", ep, err)
	}
	// The cache object survives reconnections (libovsdb purges and refills
	// it), so the handler is registered once.
	c.lib.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(string, model.Model) { c.notifyChange() },
		UpdateFunc: func(string, model.Model, model.Model) { c.notifyChange() },
		DeleteFunc: func(string, model.Model) { c.notifyChange() },
	})
	// Only the columns this package reads: vswitchd rewrites others
	// (Interface statistics every 5 s, status maps) and each rewrite would
	// wake every watcher. bfd_status is rewritten only when a BFD session
	// changes (bridge.c iface_refresh_ofproto_status asks ofproto for the
	// status without force).
	root, br, port := &vswitch.OpenvSwitch{}, &vswitch.Bridge{}, &vswitch.Port{}
	ctl, iface := &vswitch.Controller{}, &vswitch.Interface{}
	mon := c.lib.NewMonitor(
		client.WithTable(root, &root.Bridges, &root.ExternalIDs),
		client.WithTable(br, &br.Name, &br.DatapathID, &br.DatapathType, &br.Protocols, &br.FailMode,
			&br.Controller, &br.Ports, &br.OtherConfig, &br.ExternalIDs),
		client.WithTable(port, &port.Name, &port.Interfaces, &port.ExternalIDs),
		client.WithTable(ctl, &ctl.Target, &ctl.ConnectionMode, &ctl.IsConnected, &ctl.Role),
		client.WithTable(iface, &iface.Name, &iface.Type, &iface.Options, &iface.Ofport,
			&iface.OfportRequest, &iface.ExternalIDs, &iface.MACInUse, &iface.AdminState,
			&iface.LinkState, &iface.Error, &iface.BFD, &iface.BFDStatus),
	)
	if _, err := c.lib.Monitor(ctx, mon); err != nil {
		c.Close()
		return nil, fmt.Errorf("ovsdb: monitor %s: %w", ep, err)
	}
	c.log.Debug("ovsdb connected")
	return c, nil
}

// Close disconnects and stops reconnecting. It is idempotent. If the
// connection is down at that moment, libovsdb's retry loop (which cannot be
// cancelled without a panic in libovsdb v0.7.0) is pointed at an endpoint
// that always fails and put to sleep: one goroutine and timer remain.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
		c.lib.Close()
		// If the connection was down, libovsdb keeps retrying: point it at
		// an endpoint that fails at once so no attempt can succeed.
		c.lib.UpdateEndpoints([]string{closedEndpoint})
	})
}

// Endpoint returns the endpoint the client was dialed with.
func (c *Client) Endpoint() Endpoint { return c.endpoint }

// Connected reports whether the connection to ovsdb-server is up now. It
// may block while libovsdb makes a reconnection attempt (at most 5 s, the
// attempt's timeout).
func (c *Client) Connected() bool {
	return !c.closed.Load() && c.lib.Connected() && c.lib.CurrentEndpoint() != ""
}

// Transactions returns how many transactions this client committed so far
// (every successful write is one). Idempotent operations that find nothing
// to change send none, which tests and metrics can observe.
func (c *Client) Transactions() uint64 { return c.txns.Load() }

// notifyChange wakes everyone waiting for the cache to change.
func (c *Client) notifyChange() {
	c.changeMu.Lock()
	close(c.changeCh)
	c.changeCh = make(chan struct{})
	c.changeMu.Unlock()
}

// changed returns a channel closed on the next cache change. Take it before
// reading the cache so no change is missed.
func (c *Client) changed() <-chan struct{} {
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	return c.changeCh
}

// waitFor evaluates cond on fresh views of the cache until it returns true
// or an error, ctx ends or the client is closed.
func (c *Client) waitFor(ctx context.Context, cond func(v *view) (bool, error)) error {
	for {
		ch := c.changed()
		v, err := c.view(ctx)
		if err != nil {
			return err
		}
		if ok, err := cond(v); ok || err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrClosed
		}
	}
}

// transact sends ops as one transaction and checks every result; what names
// the object for error messages (e.g. `bridge "br-int"`).
func (c *Client) transact(ctx context.Context, what string, ops []libovsdb.Operation) error {
	if len(ops) == 0 {
		return nil
	}
	if c.closed.Load() {
		return ErrClosed
	}
	res, err := c.lib.Transact(ctx, ops...)
	if err != nil {
		return fmt.Errorf("ovsdb: %s: transact: %w", what, err)
	}
	opErrs, err := libovsdb.CheckOperationResults(res, ops)
	if err != nil {
		msgs := make([]string, 0, len(opErrs))
		for _, e := range opErrs {
			msgs = append(msgs, e.Error())
		}
		if len(msgs) > 0 {
			return fmt.Errorf("ovsdb: %s: %w: %s", what, err, strings.Join(msgs, "; "))
		}
		return fmt.Errorf("ovsdb: %s: %w", what, err)
	}
	c.txns.Add(1)
	c.log.Debug("ovsdb transaction committed", "object", what, "operations", len(ops))
	return nil
}

// view is a snapshot of the monitored tables, indexed for lookups.
type view struct {
	ovs     *vswitch.OpenvSwitch           // the root row (nil if the database is not initialized)
	bridges map[string]*vswitch.Bridge     // by name
	ports   map[string]*vswitch.Port       // by UUID
	ifaces  map[string]*vswitch.Interface  // by UUID
	ctrls   map[string]*vswitch.Controller // by UUID
	portBr  map[string]*vswitch.Bridge     // port UUID -> bridge
	ifPort  map[string]*vswitch.Port       // interface UUID -> port
	portsBy map[string]*vswitch.Port       // by name
	ifaceBy map[string]*vswitch.Interface  // by name
}

// view reads the cache. The tables are read one after the other, so a
// reference may point at a row not (yet) in the snapshot; lookups treat such
// rows as absent.
func (c *Client) view(ctx context.Context) (*view, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	var (
		ovss    []*vswitch.OpenvSwitch
		bridges []*vswitch.Bridge
		ports   []*vswitch.Port
		ifaces  []*vswitch.Interface
		ctrls   []*vswitch.Controller
	)
	for _, l := range []any{&ovss, &bridges, &ports, &ifaces, &ctrls} {
		if err := c.lib.List(ctx, l); err != nil {
			return nil, fmt.Errorf("ovsdb: read cache: %w", err)
		}
	}
	v := &view{
		bridges: make(map[string]*vswitch.Bridge, len(bridges)),
		ports:   make(map[string]*vswitch.Port, len(ports)),
		ifaces:  make(map[string]*vswitch.Interface, len(ifaces)),
		ctrls:   make(map[string]*vswitch.Controller, len(ctrls)),
		portBr:  make(map[string]*vswitch.Bridge, len(ports)),
		ifPort:  make(map[string]*vswitch.Port, len(ifaces)),
		portsBy: make(map[string]*vswitch.Port, len(ports)),
		ifaceBy: make(map[string]*vswitch.Interface, len(ifaces)),
	}
	if len(ovss) > 0 {
		v.ovs = ovss[0]
	}
	for _, b := range bridges {
		v.bridges[b.Name] = b
		for _, p := range b.Ports {
			v.portBr[p] = b
		}
	}
	for _, p := range ports {
		v.ports[p.UUID] = p
		v.portsBy[p.Name] = p
		for _, i := range p.Interfaces {
			v.ifPort[i] = p
		}
	}
	for _, i := range ifaces {
		v.ifaces[i.UUID] = i
		v.ifaceBy[i.Name] = i
	}
	for _, ct := range ctrls {
		v.ctrls[ct.UUID] = ct
	}
	return v, nil
}

// bridgeOf returns the bridge holding the port, or nil.
func (v *view) bridgeOf(p *vswitch.Port) *vswitch.Bridge { return v.portBr[p.UUID] }

// retryBackoff is the reconnection schedule given to libovsdb: exponential
// from retryMin to retryMax, never giving up (libovsdb v0.7.0 panics when a
// backoff stops), and dormant once the client is closed.
type retryBackoff struct {
	closed *atomic.Bool
	mu     sync.Mutex
	next   time.Duration
}

// NextBackOff implements backoff.BackOff.
func (b *retryBackoff) NextBackOff() time.Duration {
	if b.closed.Load() {
		return 365 * 24 * time.Hour
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next < retryMin {
		b.next = retryMin
	}
	d := b.next
	b.next = min(2*b.next, retryMax)
	return d
}

// Reset implements backoff.BackOff.
func (b *retryBackoff) Reset() {
	b.mu.Lock()
	b.next = retryMin
	b.mu.Unlock()
}

// warnCap caps libovsdb's log records at Warn: it logs expected conditions
// (a failed reconnection attempt while ovsdb-server restarts) as errors,
// while the failures that matter reach callers as returned errors.
type warnCap struct{ slog.Handler }

func (h warnCap) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, min(l, slog.LevelWarn))
}

func (h warnCap) Handle(ctx context.Context, r slog.Record) error {
	r.Level = min(r.Level, slog.LevelWarn)
	return h.Handler.Handle(ctx, r)
}

func (h warnCap) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnCap{h.Handler.WithAttrs(attrs)}
}

func (h warnCap) WithGroup(name string) slog.Handler { return warnCap{h.Handler.WithGroup(name)} }
