package controller

import (
	"log/slog"
	"time"
)

// TLSConfig names PEM files for a TLS listener (OpenFlow 1.3.5 spec
// section 6.3.3 "Connection Setup": the channel may be TLS).
type TLSConfig struct {
	CertFile string // controller certificate chain, PEM
	KeyFile  string // private key for CertFile, PEM
	CAFile   string // when set, switches must present a certificate signed by this CA (PEM)
}

// Config configures a Controller. Zero fields take the documented
// defaults.
type Config struct {
	// Listen is "HOST:PORT", "tcp:HOST:PORT", "ssl:HOST:PORT" (TLS must be
	// set) or "unix:/path" (OVS accepts unix:PATH controller targets).
	// Default ":6653" (IANA OpenFlow port).
	Listen string
	// TLS enables TLS on the listener; nil means plain TCP.
	TLS *TLSConfig
	// EchoInterval: send an echo request when nothing was received from
	// the switch for this long (spec 6.3.7 "Connection Interruption"). Default 5s.
	EchoInterval time.Duration
	// DeadPeerTimeout: close the session when nothing was received for
	// this long, and bound each batch write. Default 15s.
	DeadPeerTimeout time.Duration
	// HandshakeTimeout bounds hello + features + port description.
	// Default 5s.
	HandshakeTimeout time.Duration
	// RequestTimeout bounds Request, Multipart, Barrier and the typed
	// stats calls when ctx has no deadline. Default 10s.
	RequestTimeout time.Duration
	// SendQueueLen bounds the messages queued but not yet taken by the
	// writer, per switch (the writer holds at most one more such batch
	// while it writes); senders wait beyond it. It also bounds queued
	// packet-in events (see the package documentation). Default 4096.
	SendQueueLen int
	// Logger receives session logs; nil means slog.Default().
	Logger *slog.Logger
}

const (
	defaultListen           = ":6653"
	defaultEchoInterval     = 5 * time.Second
	defaultDeadPeerTimeout  = 15 * time.Second
	defaultHandshakeTimeout = 5 * time.Second
	defaultRequestTimeout   = 10 * time.Second
	defaultSendQueueLen     = 4096
)

// withDefaults returns cfg with zero fields replaced by defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Listen == "" {
		cfg.Listen = defaultListen
	}
	if cfg.EchoInterval <= 0 {
		cfg.EchoInterval = defaultEchoInterval
	}
	if cfg.DeadPeerTimeout <= 0 {
		cfg.DeadPeerTimeout = defaultDeadPeerTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = defaultHandshakeTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.SendQueueLen <= 0 {
		cfg.SendQueueLen = defaultSendQueueLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}
