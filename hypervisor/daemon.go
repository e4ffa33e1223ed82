package hypervisor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/tunnels"
)

// StoreFile is the name of the state file inside DaemonConfig.StateDir.
const StoreFile = "skyvisor.db"

// DaemonConfig is the "hypervisor" section of the skyvisor daemon's
// configuration (viper / mapstructure keys in snake_case; flags and
// SKYVISOR_HYPERVISOR_* environment variables map onto them).
type DaemonConfig struct {
	// Infra is the infrastructure file (infra.Load: a lab inventory from
	// `skylab status --json` or a hand-written file). Required.
	Infra string `mapstructure:"infra"`
	// StateDir holds the store (StoreFile); created (0700) if missing.
	StateDir string `mapstructure:"state_dir"`
	// APIListen is the REST API's address ("127.0.0.1:8080"); "" disables
	// the API.
	APIListen string `mapstructure:"api_listen"`
	// APIToken is the bearer token writes need; APITokenFile reads it from
	// a file (trailing whitespace trimmed). Without either the API is
	// read-only (api.Options.Token).
	APIToken     string `mapstructure:"api_token"`
	APITokenFile string `mapstructure:"api_token_file"`
	// APIAuthReads requires the token on reads too.
	APIAuthReads bool `mapstructure:"api_auth_reads"`
	// ControllerTarget overrides the infrastructure's controller target
	// for every bridge (Config.ControllerTarget).
	ControllerTarget string `mapstructure:"controller_target"`
	// RetryInterval is Config.RetryInterval.
	RetryInterval time.Duration `mapstructure:"retry_interval"`
	// AuditInterval is Config.AuditInterval (0 = default 30 s, < 0 = off).
	AuditInterval time.Duration `mapstructure:"audit_interval"`
	// TunnelMesh joins the gateways with a full mesh of tunnels instead of
	// the minimum spanning tree (Config.TunnelMesh; the baseline of the
	// setup-time experiment, docs/experiments.md).
	TunnelMesh bool `mapstructure:"tunnel_mesh"`
	// Liveness configures BFD on the gateway tunnels (Config.Liveness);
	// the "liveness" subsection, e.g.
	// liveness: {bfd_min_rx: 300ms, bfd_min_tx: 300ms, bfd_mult: 3}.
	Liveness DaemonLiveness `mapstructure:"liveness"`
	// OVSDBTLS is the private key, certificate and CA certificate (PEM
	// paths, ovsdb.TLSFiles) of the "ssl:" OVSDB endpoints for which the
	// infrastructure file gives none (its site's or top-level ovsdb_tls
	// win); the "ovsdb_tls" subsection {key, cert, ca}, flags
	// --ovsdb-tls-key, --ovsdb-tls-cert, --ovsdb-tls-ca. All three or none.
	OVSDBTLS ovsdb.TLSFiles `mapstructure:"ovsdb_tls"`
}

// DaemonLiveness is the "liveness" subsection of DaemonConfig: BFD on the
// gateway tunnels (RFC 5880; LivenessConfig, liveness.go). Zero fields
// take the LivenessConfig defaults.
type DaemonLiveness struct {
	// Disabled leaves BFD off on the tunnel ports (LivenessConfig.Disabled).
	Disabled bool `mapstructure:"disabled"`
	// BFDMinRx and BFDMinTx are bfd:min_rx and bfd:min_tx of every tunnel
	// port (0 or 1 ms to 2^31-1 ms; default 500 ms each); BFDMult is
	// bfd:mult (0 or 1-255; default 3). A failure is detected after
	// BFDMult x max(local min_rx, remote min_tx).
	BFDMinRx time.Duration `mapstructure:"bfd_min_rx"`
	BFDMinTx time.Duration `mapstructure:"bfd_min_tx"`
	BFDMult  int           `mapstructure:"bfd_mult"`
	// DownUpdates, DownAfter, UpAfter, SetupGrace and ResetGrace are the
	// LivenessConfig fields of the same names (>= 0; 0 = default).
	DownUpdates int           `mapstructure:"down_updates"`
	DownAfter   time.Duration `mapstructure:"down_after"`
	UpAfter     time.Duration `mapstructure:"up_after"`
	SetupGrace  time.Duration `mapstructure:"setup_grace"`
	ResetGrace  time.Duration `mapstructure:"reset_grace"`
}

// Config returns the LivenessConfig of l, or an error naming the key at
// fault (negative values, BFD intervals or multiplier out of range).
func (l DaemonLiveness) Config() (LivenessConfig, error) {
	c := LivenessConfig{Disabled: l.Disabled, BFD: tunnels.BFDConfig{MinRx: l.BFDMinRx, MinTx: l.BFDMinTx, Mult: l.BFDMult},
		DownUpdates: l.DownUpdates, DownAfter: l.DownAfter, UpAfter: l.UpAfter, SetupGrace: l.SetupGrace, ResetGrace: l.ResetGrace}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"down_after", l.DownAfter}, {"up_after", l.UpAfter}, {"setup_grace", l.SetupGrace}, {"reset_grace", l.ResetGrace}} {
		if d.v < 0 {
			return LivenessConfig{}, fmt.Errorf("liveness.%s %v: want >= 0 (0 = default)", d.key, d.v)
		}
	}
	if l.DownUpdates < 0 {
		return LivenessConfig{}, fmt.Errorf("liveness.down_updates %d: want >= 0 (0 = default)", l.DownUpdates)
	}
	if err := c.BFD.Validate(); err != nil {
		return LivenessConfig{}, fmt.Errorf("liveness (bfd_min_rx, bfd_min_tx, bfd_mult): %w", err)
	}
	return c, nil
}

// DefaultDaemonConfig returns the defaults: state in /var/lib/skyvisor,
// API on 127.0.0.1:8080.
func DefaultDaemonConfig() DaemonConfig {
	return DaemonConfig{StateDir: "/var/lib/skyvisor", APIListen: "127.0.0.1:8080", RetryInterval: DefaultRetryInterval}
}

// Daemon is the Hypervisor as the skyvisor daemon runs it: with its own
// store and REST API server. It is a controller.App (the embedded
// Hypervisor's handlers); Run runs the Hypervisor and serves the API until
// ctx ends, then closes the store.
type Daemon struct {
	*Hypervisor
	cfg   DaemonConfig
	store *store.Store
	api   http.Handler
}

// Factory is the apps.Factory of the "hypervisor" app: it decodes the
// app's configuration section into a DaemonConfig and builds a Daemon
// (NewDaemon). The daemon must call Run on the returned app (it implements
// interface{ Run(context.Context) error }) once its OpenFlow listener is up.
func Factory(o apps.Options) (controller.App, error) {
	cfg := DefaultDaemonConfig()
	if o.Decode != nil {
		if err := o.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("app %q: config: %w", AppName, err)
		}
	}
	return NewDaemon(cfg, o.Logger)
}

// NewDaemon loads the infrastructure file, opens the store in StateDir and
// builds the Hypervisor and its API handler, logging to log (nil:
// slog.Default()). Errors name the setting at fault.
func NewDaemon(cfg DaemonConfig, log *slog.Logger) (*Daemon, error) {
	if cfg.Infra == "" {
		return nil, fmt.Errorf("hypervisor: infra (--infra FILE) is required")
	}
	inf, err := infra.Load(cfg.Infra)
	if err != nil {
		return nil, fmt.Errorf("hypervisor: infra: %w", err)
	}
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("hypervisor: state_dir (--state-dir) is empty")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("hypervisor: state_dir: %w", err)
	}
	live, err := cfg.Liveness.Config()
	if err != nil {
		return nil, fmt.Errorf("hypervisor: %w", err)
	}
	if err := CheckOVSDBTLS(inf, cfg.OVSDBTLS); err != nil {
		return nil, fmt.Errorf("hypervisor: %w", err)
	}
	token := cfg.APIToken
	if cfg.APITokenFile != "" {
		b, err := os.ReadFile(cfg.APITokenFile)
		if err != nil {
			return nil, fmt.Errorf("hypervisor: api_token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	st, err := store.Open(filepath.Join(cfg.StateDir, StoreFile))
	if err != nil {
		return nil, fmt.Errorf("hypervisor: state_dir: %w", err)
	}
	var h *Hypervisor // set before Run, the first to dial
	h, err = New(Config{Infra: inf, Store: st, Logger: log, ControllerTarget: cfg.ControllerTarget,
		RetryInterval: cfg.RetryInterval, AuditInterval: cfg.AuditInterval, TunnelMesh: cfg.TunnelMesh,
		Liveness: live, Dial: func(ctx context.Context, endpoint string) (OVSDB, error) {
			return dialOVSDB(ctx, endpoint, h)
		}, OVSDBTLS: cfg.OVSDBTLS})
	if err != nil {
		st.Close()
		return nil, err
	}
	d := &Daemon{Hypervisor: h, cfg: cfg, store: st}
	d.api = api.NewHandler(h, api.Options{Token: token, AuthReads: cfg.APIAuthReads, Logger: h.log.With("component", "api")})
	return d, nil
}

// CheckOVSDBTLS checks the daemon's OVSDB TLS files (all three or none,
// and they must load: ovsdb.TLSFiles.Load) and the infrastructure's
// (infra.CheckOVSDBTLS, with the daemon's files as the fallback of ssl
// endpoints that have none). Errors name the key and flag, or the JSON
// path in the infrastructure file.
func CheckOVSDBTLS(inf *infra.Infra, files ovsdb.TLSFiles) error {
	var fallback *ovsdb.TLSFiles
	if !files.IsZero() {
		if m := files.Missing(); len(m) > 0 {
			return fmt.Errorf("ovsdb_tls.%s (--ovsdb-tls-%s): required with the other ovsdb_tls files (key, cert and ca)", m[0], m[0])
		}
		if _, err := files.Load(); err != nil {
			var fe *ovsdb.TLSFileError
			if errors.As(err, &fe) {
				return fmt.Errorf("ovsdb_tls.%s (--ovsdb-tls-%s) %q: %w", fe.Field, fe.Field, fe.File, fe.Err)
			}
			return fmt.Errorf("ovsdb_tls: %w", err)
		}
		fallback = &files
	}
	if err := inf.CheckOVSDBTLS(fallback); err != nil {
		return fmt.Errorf("infra: %w", err)
	}
	return nil
}

// dialOVSDB is the daemon's Dialer: ovsdb.Dial with h's logger and, for an
// "ssl:" endpoint, the TLS configuration of h.OVSDBTLSConfig (read anew at
// every dial: renewed certificates apply from the next dial).
func dialOVSDB(ctx context.Context, endpoint string, h *Hypervisor) (OVSDB, error) {
	opts := []ovsdb.Option{ovsdb.WithLogger(h.log)}
	tc, err := h.OVSDBTLSConfig(endpoint)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, ovsdb.WithTLS(tc))
	}
	c, err := ovsdb.Dial(ctx, endpoint, opts...)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// OVSDBTLSConfig returns the client TLS configuration for an "ssl:" OVSDB
// endpoint: the files of the current infrastructure
// (infra.OVSDBTLSFor, so sites added later count) or else Config.OVSDBTLS,
// loaded now (ovsdb.TLSFiles.Load). Other endpoints get nil. Errors name
// the endpoint and what is missing or unreadable.
func (h *Hypervisor) OVSDBTLSConfig(endpoint string) (*tls.Config, error) {
	if !strings.HasPrefix(endpoint, "ssl:") {
		return nil, nil
	}
	files := h.Infrastructure().OVSDBTLSFor(endpoint)
	if files == nil && !h.cfg.OVSDBTLS.IsZero() {
		fb := h.cfg.OVSDBTLS
		files = &fb
	}
	if files == nil {
		return nil, fmt.Errorf("ovsdb %s: no ovsdb_tls (infrastructure file or --ovsdb-tls-key, --ovsdb-tls-cert, --ovsdb-tls-ca)", endpoint)
	}
	tc, err := files.Load()
	if err != nil {
		return nil, fmt.Errorf("ovsdb %s: ovsdb_tls: %w", endpoint, err)
	}
	return tc, nil
}

// Handler returns the REST API handler (api.NewHandler over the
// Hypervisor).
func (d *Daemon) Handler() http.Handler { return d.api }

// Run serves the REST API (if APIListen is set) and runs the Hypervisor
// until ctx is done; then it shuts the API down and closes the store. It
// fails at once if the API address cannot be bound.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.store.Close()
	var srvDone chan error
	if d.cfg.APIListen != "" {
		ln, err := net.Listen("tcp", d.cfg.APIListen)
		if err != nil {
			return fmt.Errorf("hypervisor: api_listen %s: %w", d.cfg.APIListen, err)
		}
		d.log.Info("hypervisor: REST API listening", "addr", ln.Addr().String())
		srv := api.NewServer(d.cfg.APIListen, d.api)
		srvDone = make(chan error, 1)
		go func() { srvDone <- srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			if err := <-srvDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("hypervisor: REST API", "err", err)
			}
		}()
	}
	return d.Hypervisor.Run(ctx)
}
