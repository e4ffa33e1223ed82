// Package hypervisor is Skyvisor's core: it glues the physical
// infrastructure (package hypervisor/infra), the desired state (tenants and
// host bindings in hypervisor/store), the data-plane compiler
// (hypervisor/pipeline) and reconciler (hypervisor/reconcile), the gateway
// tunnels (package tunnels) and the OVSDB (package ovsdb) and OpenFlow
// (package controller) sessions together, and serves the REST API
// (hypervisor/api.Service).
//
// A Hypervisor
//
//   - connects to every site's OVSDB endpoint and ensures every gateway and
//     VM bridge (DPID, OpenFlow13, fail_mode secure, the controller target,
//     out-of-band), so every OVS connects back over OpenFlow;
//   - joins the gateways with a minimum spanning tree of tunnels
//     (tunnels.MST over the infrastructure's costs) and provisions them
//     (tunnels.Provisioner) with BFD on every tunnel port; AddSite,
//     RemoveSite, TunnelDown and a tunnel that BFD reports down repair the
//     tree with tunnels.Replan (liveness.go);
//   - watches the interfaces of every VM bridge: an interface carrying
//     external_ids:iface-id "<tenant>/<host>" becomes a binding in the store
//     (the paper's hosts plugged into cloud VMs);
//   - is a controller.App: when a known switch connects its flow table is
//     reconciled with the compiled desired entries (docs/pipeline.md,
//     "Reconcile"); packet-ins from fabric bridges never reach the apps
//     registered after it, except the physical discovery's own LLDP;
//   - implements api.Service.
//
// Tenant apps: a tenant whose topology lists the "learning" app gets
// proactive L2 entries on its virtual switches (every host's MAC toward
// its port, broadcast flooded), compiled with pipeline.AddEntries: the
// hypervisor knows where every host is, so no packet-in is needed. Every
// other app of the list ("learning-reactive", "discovery", ...) runs on
// the tenant's virtual switches (package hypervisor/vnet, wired in
// tenantapps.go): packet-ins of the tenant tables go to it, its flow-mods
// and packet-outs are translated onto the edge bridges, and LLDP is
// virtualized.
package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/tunnels"
)

// AppName is the name of the hypervisor's controller app (and of its
// section in the daemon configuration).
const AppName = "hypervisor"

// DefaultRetryInterval is how long Run waits before retrying a failed
// convergence of the OVSDB side (a site unreachable, a tunnel not created).
const DefaultRetryInterval = 5 * time.Second

// DefaultAuditInterval is how often Run re-checks a converged fabric:
// OVSDB (Converge: a deleted tunnel port or a changed bridge setting is
// put back) and every flow table (Resync: entries deleted or added behind
// Skyvisor's back are repaired).
const DefaultAuditInterval = 30 * time.Second

// OVSDB is what the hypervisor needs of one OVSDB connection: exactly the
// methods of *ovsdb.Client it calls (tests use a fake). See package ovsdb
// for their semantics.
type OVSDB interface {
	tunnels.GatewayPorts
	EnsureBridge(ctx context.Context, spec ovsdb.BridgeSpec) error
	Interfaces(ctx context.Context, bridge string) ([]ovsdb.Interface, error)
	WatchInterfaces(ctx context.Context, bridge string) (<-chan ovsdb.InterfaceEvent, error)
	Connected() bool
	Transactions() uint64
	Close()
}

// Dialer opens an OVSDB connection to endpoint ("unix:/path",
// "tcp:HOST:PORT" or "ssl:HOST:PORT"; ovsdb.ParseEndpoint).
type Dialer func(ctx context.Context, endpoint string) (OVSDB, error)

// Config configures New.
type Config struct {
	// Infra is the physical infrastructure (required, validated).
	Infra *infra.Infra
	// Store holds tenants and bindings (required). The Hypervisor does
	// not close it.
	Store *store.Store
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// ControllerTarget, when set, overrides the infrastructure's
	// controller target for every bridge ("unix:/path", "tcp:IP:PORT").
	ControllerTarget string
	// Dial opens OVSDB connections; nil means ovsdb.Dial with Logger.
	Dial Dialer
	// OVSDBTLS are the TLS files for "ssl:" OVSDB endpoints the
	// infrastructure gives none for (the daemon's --ovsdb-tls-*); see
	// OVSDBTLSConfig.
	OVSDBTLS ovsdb.TLSFiles
	// RetryInterval is the pause between failed convergence attempts in
	// Run; 0 means DefaultRetryInterval.
	RetryInterval time.Duration
	// AuditInterval is the period of Run's drift repair (see
	// DefaultAuditInterval); 0 means the default, < 0 disables it.
	AuditInterval time.Duration
	// SyncTimeout bounds one switch's reconciliation (flow-stats, adds,
	// deletes, barrier); 0 means 30 s.
	SyncTimeout time.Duration
	// Version is reported by Health.
	Version string
	// TunnelMesh joins the gateways with a full mesh of tunnels
	// (tunnels.FullMesh, N(N-1)/2 tunnels; frames take the direct tunnel)
	// instead of the minimum spanning tree: the baseline of the paper's
	// setup-time experiment (Fig. 2). AddSite, RemoveSite, TunnelDown and
	// tunnel liveness then keep the full mesh of the pairs not down.
	TunnelMesh bool
	// Liveness configures BFD on the gateway tunnels and how a failed
	// tunnel is routed around and readmitted (liveness.go); the zero
	// value enables it with the defaults (BFD min_rx/min_tx 500 ms).
	Liveness LivenessConfig
	// TenantPacketIn, if set, receives every packet-in of a tenant's
	// virtual switch (a table miss or controller output of the tenant
	// tables, demultiplexed by its metadata). It runs on the physical
	// switch's event goroutine and must not block. This is the seam for
	// tenant apps on a virtual OpenFlow view.
	TenantPacketIn func(TenantPacketIn)
	// TenantApps is the registry of the apps tenants may run on their
	// virtual view (every name of a topology's "apps" but "learning", which
	// the hypervisor realizes natively); nil means vnet.Builtin()
	// ("learning-reactive", "discovery"). See tenantapps.go.
	TenantApps map[string]apps.Factory
}

// Hypervisor is the core; create it with New, start it with Run, register
// it with the controller (it is a controller.App) and serve it with
// api.NewHandler (it is an api.Service). All methods are safe for
// concurrent use.
type Hypervisor struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	started time.Time

	// applyMu serializes changes of the desired state (tenant applies and
	// deletes, binding changes, tunnel plan changes) with their push.
	applyMu sync.Mutex

	mu          sync.Mutex
	inf         *infra.Infra
	clients     map[string]OVSDB              // by endpoint
	plan        tunnels.Plan                  // current tunnel tree
	planned     bool                          // plan computed
	tunnelPorts map[string]map[string]uint32  // site -> peer -> OpenFlow port of the tunnel port
	down        map[tunnels.Pair]bool         // pairs marked down (TunnelDown)
	watching    map[uint64]bool               // VM DPIDs whose interfaces are watched
	portIDs     map[portKey]string            // iface-id last seen on (DPID, port name)
	ofports     map[portKey]uint32            // OpenFlow port of those interfaces
	packetIns   map[addr.TenantID]uint64      // packet-ins consumed, per tenant
	views       map[addr.TenantID]*tenantView // of the installed desired state, for packet-ins
	known       knownDPIDs                    // app.go: the DPIDs of inf, for packet-ins
	switches    map[uint64]controller.Switch
	desired     map[uint64][]pipeline.Entry
	fingerprint map[uint64]string // of desired, per DPID
	synced      map[uint64]string // fingerprint last reconciled on the current session
	inc         incState          // desired.go: compile cache, parts desired and last reconciled
	convergeErr error
	runCtx      context.Context
	swLocks     map[uint64]*sync.Mutex
	snaps       snapshotState // snapshots.go: counter offsets and adopted entries of restores
	tapps       *tenantApps   // tenant apps on the virtual view (tenantapps.go)

	// live is the tunnel liveness monitor (liveness.go).
	live liveState

	// migration holds live migrations and the admission of moving hosts
	// (migration.go).
	migration migrationState

	running atomic.Bool
	stats   struct{ syncs, added, deleted atomic.Uint64 }
	kick    chan struct{} // coalesced refresh requests from OVSDB events
}

type portKey struct {
	dpid uint64
	port string
}

// Compile-time checks of the interfaces the Hypervisor implements.
var (
	_ api.Service                  = (*Hypervisor)(nil)
	_ controller.SwitchUpHandler   = (*Hypervisor)(nil)
	_ controller.SwitchDownHandler = (*Hypervisor)(nil)
	_ controller.PacketInHandler   = (*Hypervisor)(nil)
	_ OVSDB                        = (*ovsdb.Client)(nil)
)

// New checks cfg and returns a Hypervisor that has not touched the network
// yet. It computes the desired state from the store once, so the first
// switch to connect is reconciled at once. Errors: missing Infra or Store,
// an invalid infrastructure, an unreadable store.
func New(cfg Config) (*Hypervisor, error) {
	if cfg.Infra == nil {
		return nil, errors.New("hypervisor: config: Infra is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("hypervisor: config: Store is required")
	}
	inf := cfg.Infra.Clone()
	if err := inf.Validate(); err != nil {
		return nil, fmt.Errorf("hypervisor: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.AuditInterval == 0 {
		cfg.AuditInterval = DefaultAuditInterval
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 30 * time.Second
	}
	if cfg.Dial == nil {
		log := cfg.Logger
		cfg.Dial = func(ctx context.Context, endpoint string) (OVSDB, error) {
			c, err := ovsdb.Dial(ctx, endpoint, ovsdb.WithLogger(log))
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	h := &Hypervisor{
		cfg: cfg, log: cfg.Logger, store: cfg.Store, started: time.Now(), inf: inf,
		clients: map[string]OVSDB{}, tunnelPorts: map[string]map[string]uint32{}, down: map[tunnels.Pair]bool{},
		watching: map[uint64]bool{}, portIDs: map[portKey]string{}, ofports: map[portKey]uint32{}, switches: map[uint64]controller.Switch{},
		desired: map[uint64][]pipeline.Entry{}, fingerprint: map[uint64]string{}, synced: map[uint64]string{}, swLocks: map[uint64]*sync.Mutex{},
		kick: make(chan struct{}, 1), tapps: newTenantApps(cfg.TenantApps),
	}
	// The desired state from the store, so the first switch to connect is
	// reconciled at once (nothing is connected yet: nothing is sent).
	desired, st, err := h.compute("")
	if err == nil {
		err = h.install(context.Background(), desired, st)
	}
	if err != nil {
		return nil, fmt.Errorf("hypervisor: initial desired state: %w", err)
	}
	return h, nil
}

// Name implements controller.App.
func (h *Hypervisor) Name() string { return AppName }

// Infrastructure returns a copy of the current infrastructure.
func (h *Hypervisor) Infrastructure() *infra.Infra {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inf.Clone()
}

// Plan returns the current gateway tunnel tree (empty before Run planned
// it).
func (h *Hypervisor) Plan() tunnels.Plan {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.plan
}

// OVSDBTransactions returns the number of OVSDB transactions committed by
// all of the hypervisor's connections so far (ovsdb.Client.Transactions):
// a converged fabric sends none on a further Converge.
func (h *Hypervisor) OVSDBTransactions() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n uint64
	for _, c := range h.clients {
		n += c.Transactions()
	}
	return n
}

// SyncStats counts the flow-table reconciliations of one Hypervisor.
type SyncStats struct {
	// Syncs is the number of reconcile.Sync calls that succeeded.
	Syncs uint64
	// Added and Deleted are the flow entries they added (or replaced) and
	// deleted in total.
	Added, Deleted uint64
}

// SyncStats returns the reconciliation counters since New. After a
// restart over a converged fabric, Added and Deleted stay 0: switches are
// not flushed or rewritten.
func (h *Hypervisor) SyncStats() SyncStats {
	return SyncStats{Syncs: h.stats.syncs.Load(), Added: h.stats.added.Load(), Deleted: h.stats.deleted.Load()}
}

// Run converges the OVSDB side (Converge), retrying every RetryInterval
// until it succeeds, watches VM bridges' interfaces for bindings and
// recomputes and pushes the desired state when they change, and every
// AuditInterval repairs drift (Converge, then Resync of every connected
// switch; repairs are logged), until ctx is done. It closes its OVSDB
// connections when it returns (nil on cancellation). Run may be called
// once.
func (h *Hypervisor) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("hypervisor: Run called twice")
	}
	h.mu.Lock()
	h.runCtx = ctx
	h.mu.Unlock()
	// migrations the store holds unfinished (the last process died during
	// them) are undone or completed in the background (migration.go)
	h.recoverMigrations(ctx)
	defer h.closeClients()
	defer h.closeTenantApps()
	retry := time.NewTimer(0)
	defer retry.Stop()
	var auditC <-chan time.Time
	if h.cfg.AuditInterval > 0 {
		audit := time.NewTicker(h.cfg.AuditInterval)
		defer audit.Stop()
		auditC = audit.C
	}
	converged := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C:
			if err := h.Converge(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				h.log.Warn("hypervisor: converge failed; retrying", "err", err, "in", h.cfg.RetryInterval)
				retry.Reset(h.cfg.RetryInterval)
				continue
			}
			converged = true
		case <-h.kick:
			if err := h.refresh(ctx); err != nil && ctx.Err() == nil {
				h.log.Warn("hypervisor: push desired state", "err", err)
			}
		case <-auditC:
			if converged {
				h.audit(ctx)
			}
		}
	}
}

// audit repairs drift: OVSDB (Converge) and flow tables (Resync).
func (h *Hypervisor) audit(ctx context.Context) {
	before := h.OVSDBTransactions()
	if err := h.Converge(ctx); err != nil && ctx.Err() == nil {
		h.log.Warn("hypervisor: audit: converge", "err", err)
	}
	if n := h.OVSDBTransactions() - before; n > 0 {
		h.log.Warn("hypervisor: audit repaired OVSDB drift", "transactions", n)
	}
	plans, err := h.Resync(ctx)
	if err != nil && ctx.Err() == nil {
		h.log.Warn("hypervisor: audit: resync", "err", err)
	}
	for d, p := range plans {
		if !p.Empty() {
			h.log.Warn("hypervisor: audit repaired flow-table drift", "dpid", pipeline.DPID(d), "added", len(p.Add), "deleted", len(p.Delete))
		}
	}
}

func (h *Hypervisor) closeClients() {
	h.mu.Lock()
	cs := h.clients
	h.clients = map[string]OVSDB{}
	h.watching = map[uint64]bool{}
	h.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// requestRefresh asks Run to recompute and push the desired state soon;
// requests coalesce.
func (h *Hypervisor) requestRefresh() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Converge makes the OVSDB side match the infrastructure: it dials every
// endpoint not yet connected, ensures every bridge, plans the tunnel tree
// (once; later changes go through AddSite and TunnelDown) and provisions
// it, starts watching the VM bridges, then recomputes and pushes the
// desired flow entries. It is idempotent: on a converged fabric it sends no
// OVSDB transaction. Errors from every site are joined; what succeeded
// stays.
func (h *Hypervisor) Converge(ctx context.Context) error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	err := h.converge(ctx)
	h.mu.Lock()
	h.convergeErr = err
	h.mu.Unlock()
	if perr := h.pushLocked(ctx); perr != nil {
		err = errors.Join(err, perr)
	}
	return err
}

func (h *Hypervisor) converge(ctx context.Context) error {
	inf := h.Infrastructure()
	var errs []error
	clients := map[string]OVSDB{}
	for _, sw := range inf.Switches {
		if _, ok := clients[sw.OVSDB]; ok {
			continue
		}
		c, err := h.client(ctx, sw.OVSDB)
		if err != nil {
			errs = append(errs, fmt.Errorf("site %s: %w", sw.Site, err))
			continue
		}
		clients[sw.OVSDB] = c
	}
	for _, sw := range inf.Switches {
		c := clients[sw.OVSDB]
		if c == nil {
			continue
		}
		if err := c.EnsureBridge(ctx, h.bridgeSpec(inf, &sw)); err != nil {
			errs = append(errs, fmt.Errorf("site %s: bridge %s: %w", sw.Site, sw.Bridge, err))
		}
	}
	if err := h.provision(ctx, inf, clients, nil); err != nil {
		errs = append(errs, err)
	}
	for _, sw := range inf.Switches {
		if c := clients[sw.OVSDB]; c != nil && sw.Role == infra.RoleVM {
			if err := h.watch(c, sw); err != nil {
				errs = append(errs, fmt.Errorf("site %s: watch bridge %s: %w", sw.Site, sw.Bridge, err))
			}
		}
	}
	return errors.Join(errs...)
}

// client returns the connection to endpoint, dialing it if needed.
func (h *Hypervisor) client(ctx context.Context, endpoint string) (OVSDB, error) {
	h.mu.Lock()
	c := h.clients[endpoint]
	h.mu.Unlock()
	if c != nil {
		return c, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := h.cfg.Dial(dctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("ovsdb %s: %w", endpoint, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.clients[endpoint]; old != nil {
		c.Close()
		return old, nil
	}
	h.clients[endpoint] = c
	return c, nil
}

// bridgeSpec is the desired OVSDB configuration of one switch.
func (h *Hypervisor) bridgeSpec(inf *infra.Infra, sw *infra.Switch) ovsdb.BridgeSpec {
	spec := ovsdb.BridgeSpec{
		Name:         sw.Bridge,
		DatapathID:   ovsdb.FormatDatapathID(sw.DPID),
		DatapathType: inf.DatapathType,
		Protocols:    []string{"OpenFlow13"},
		FailMode:     "secure",
	}
	target := h.cfg.ControllerTarget
	if target == "" {
		target = inf.ControllerTarget(sw.Site)
	}
	if target != "" {
		spec.Controllers = []string{target}
		spec.ConnectionMode = ovsdb.ConnectionModeOutOfBand
	}
	return spec
}
