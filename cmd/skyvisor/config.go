package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// settings is the daemon's effective configuration.
type settings struct {
	Listen          string
	Apps            []string
	TLS             *controller.TLSConfig
	LogLevel        slog.Level
	LogFormat       string
	DebugAddr       string
	EchoInterval    time.Duration
	DeadPeerTimeout time.Duration
	v               *viper.Viper
	registry        map[string]apps.Factory
}

// topLevelKeys returns the configuration keys that are not app sections.
func topLevelKeys() []string {
	return []string{"listen", "apps", "tls", "log", "debug_addr", "echo_interval", "dead_peer_timeout"}
}

// loadSettings parses args, the environment (SKYVISOR_*) and the config
// file into settings. Errors name the flag, key or file at fault. It returns
// pflag.ErrHelp after printing usage to stdout for -h/--help.
func loadSettings(args []string, stdout io.Writer, registry map[string]apps.Factory) (*settings, error) {
	fs := pflag.NewFlagSet("skyvisor", pflag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.String("config", "", "config file (YAML, JSON or TOML, chosen by extension; env SKYVISOR_CONFIG)")
	fs.String("listen", ":6653", `OpenFlow listener: "HOST:PORT", "tcp:HOST:PORT", "ssl:HOST:PORT" or "unix:/path"`)
	fs.String("apps", "learning,discovery", "comma-separated apps, in event order (known: "+strings.Join(sortedNames(registry), ", ")+")")
	fs.String("tls-cert", "", "TLS certificate chain (PEM); with --tls-key enables TLS")
	fs.String("tls-key", "", "TLS private key (PEM)")
	fs.String("tls-ca", "", "CA (PEM) that must sign switch certificates")
	fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.String("log-format", "text", "log format: text or json")
	fs.String("debug-addr", "", "HTTP debug endpoint (GET /debug/links, /debug/switches), e.g. 127.0.0.1:6060; empty = off")
	fs.Duration("echo-interval", 5*time.Second, "echo request after this much silence from a switch")
	fs.Duration("dead-peer-timeout", 15*time.Second, "drop a switch silent for this long")
	fs.Duration("discovery-probe-interval", 5*time.Second, "LLDP probe period (discovery app)")
	fs.Duration("discovery-link-timeout", 15*time.Second, "link expiry without probes (discovery app)")
	fs.Duration("learning-idle-timeout", 60*time.Second, "idle timeout of learned flow entries (learning app)")
	hd := hypervisor.DefaultDaemonConfig()
	fs.String("infra", "", "infrastructure `FILE` (the lab inventory \"skylab status --json\" prints, docs/infra.md); required by the hypervisor app")
	fs.String("state-dir", hd.StateDir, "hypervisor state directory (tenants, bindings: "+hypervisor.StoreFile+"); created 0700")
	fs.String("api-listen", hd.APIListen, `hypervisor REST API address (docs/api.md); "" = no API`)
	fs.String("api-token", "", "bearer token the REST API wants for writes (prefer --api-token-file: keeps it out of the process list)")
	fs.String("api-token-file", "", "file holding the REST API token (trailing whitespace trimmed)")
	fs.Bool("tunnel-mesh", false, "join the gateways with a full mesh of tunnels instead of the minimum spanning tree")
	fs.Duration("bfd-min-rx", hypervisor.DefaultBFDMinRx, "BFD min_rx of every gateway tunnel port (RFC 5880; hypervisor.liveness.bfd_min_rx)")
	fs.Duration("bfd-min-tx", hypervisor.DefaultBFDMinTx, "BFD min_tx of every gateway tunnel port (hypervisor.liveness.bfd_min_tx)")
	fs.Int("bfd-mult", hypervisor.DefaultBFDMult, "BFD detection multiplier, 1-255: a tunnel is down after mult x max(min_rx, peer min_tx) (hypervisor.liveness.bfd_mult)")
	fs.Bool("no-bfd", false, "no BFD on the gateway tunnels: nothing detects a failed tunnel (hypervisor.liveness.disabled)")
	fs.String("ovsdb-tls-key", "", "private key (PEM) for ssl: OVSDB endpoints whose infrastructure file gives no ovsdb_tls (hypervisor.ovsdb_tls.key)")
	fs.String("ovsdb-tls-cert", "", "certificate (PEM) for ssl: OVSDB endpoints (hypervisor.ovsdb_tls.cert)")
	fs.String("ovsdb-tls-ca", "", "CA certificate (PEM) that must sign ovsdb-server's certificate (hypervisor.ovsdb_tls.ca)")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: skyvisor [flags]\n\nSettings also come from SKYVISOR_<KEY> environment variables and --config.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (all settings are flags)", fs.Args())
	}

	v := viper.New()
	v.SetEnvPrefix("SKYVISOR")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	binds := map[string]string{
		"listen": "listen", "apps": "apps", "tls.cert": "tls-cert", "tls.key": "tls-key", "tls.ca": "tls-ca",
		"log.level": "log-level", "log.format": "log-format", "debug_addr": "debug-addr",
		"echo_interval": "echo-interval", "dead_peer_timeout": "dead-peer-timeout",
		"discovery.probe_interval": "discovery-probe-interval", "discovery.link_timeout": "discovery-link-timeout",
		"learning.idle_timeout": "learning-idle-timeout",
		"hypervisor.infra":      "infra", "hypervisor.state_dir": "state-dir", "hypervisor.api_listen": "api-listen",
		"hypervisor.api_token": "api-token", "hypervisor.api_token_file": "api-token-file",
		"hypervisor.tunnel_mesh":         "tunnel-mesh",
		"hypervisor.liveness.bfd_min_rx": "bfd-min-rx", "hypervisor.liveness.bfd_min_tx": "bfd-min-tx",
		"hypervisor.liveness.bfd_mult": "bfd-mult", "hypervisor.liveness.disabled": "no-bfd",
		"hypervisor.ovsdb_tls.key": "ovsdb-tls-key", "hypervisor.ovsdb_tls.cert": "ovsdb-tls-cert",
		"hypervisor.ovsdb_tls.ca": "ovsdb-tls-ca",
	}
	for key, flag := range binds {
		if err := v.BindPFlag(key, fs.Lookup(flag)); err != nil {
			return nil, fmt.Errorf("bind flag --%s: %w", flag, err)
		}
	}
	file, _ := fs.GetString("config")
	if file == "" {
		file = os.Getenv("SKYVISOR_CONFIG")
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config file %s: %w", file, err)
		}
		for _, k := range v.AllKeys() {
			top, _, _ := strings.Cut(k, ".")
			// hypervisor.* keys always exist (its flags are always bound).
			if !slices.Contains(topLevelKeys(), top) && registry[top] == nil && top != hypervisor.AppName {
				return nil, fmt.Errorf("config file %s: unknown key %q (top-level keys: %s, or an app name)", file, k, strings.Join(topLevelKeys(), ", "))
			}
		}
	}

	s := &settings{v: v, registry: registry}
	s.Listen = v.GetString("listen")
	if s.Listen == "" {
		return nil, fmt.Errorf("--listen / listen is empty")
	}
	switch raw := v.Get("apps").(type) {
	case string:
		s.Apps = apps.ParseNames(raw)
	case []any:
		for _, x := range raw {
			s.Apps = append(s.Apps, apps.ParseNames(fmt.Sprint(x))...)
		}
	case []string:
		s.Apps = apps.ParseNames(raw...)
	default:
		return nil, fmt.Errorf("apps: want a comma-separated string or a list, got %T", raw)
	}
	for _, n := range s.Apps {
		if registry[n] == nil {
			return nil, fmt.Errorf("--apps / apps %q: unknown app %q (known: %s)", v.GetString("apps"), n, strings.Join(sortedNames(registry), ", "))
		}
	}
	s.Apps = hypervisorFirst(s.Apps)
	if err := checkHypervisor(v, s.Apps); err != nil {
		return nil, err
	}
	if cert, key, ca := v.GetString("tls.cert"), v.GetString("tls.key"), v.GetString("tls.ca"); cert != "" || key != "" || ca != "" {
		if cert == "" || key == "" {
			return nil, fmt.Errorf("--tls-cert and --tls-key must be given together (cert %q, key %q)", cert, key)
		}
		s.TLS = &controller.TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca}
	}
	if err := s.LogLevel.UnmarshalText([]byte(v.GetString("log.level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", v.GetString("log.level"))
	}
	s.LogFormat = v.GetString("log.format")
	if s.LogFormat != "text" && s.LogFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", s.LogFormat)
	}
	s.DebugAddr = v.GetString("debug_addr")
	var err error
	if s.EchoInterval, err = duration(v, "echo_interval"); err != nil {
		return nil, err
	}
	if s.DeadPeerTimeout, err = duration(v, "dead_peer_timeout"); err != nil {
		return nil, err
	}
	return s, nil
}

// duration reads a duration key with an error naming it.
func duration(v *viper.Viper, key string) (time.Duration, error) {
	raw := v.Get(key)
	d, err := toDuration(raw)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}

// toDuration accepts a time.Duration, a Go duration string or a number of
// nanoseconds.
func toDuration(raw any) (time.Duration, error) {
	switch x := raw.(type) {
	case time.Duration:
		return x, nil
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q (want e.g. 5s, 250ms)", x)
		}
		return d, nil
	case int:
		return time.Duration(x), nil
	case int64:
		return time.Duration(x), nil
	case float64:
		return time.Duration(x), nil
	default:
		return 0, fmt.Errorf("bad duration %v (%T)", raw, raw)
	}
}

// appOptions returns the apps.Options of app name: its logger and a Decode
// that fills the app's config from every setting under "name." (file,
// environment, flags), rejecting unknown keys.
func (s *settings) appOptions(logger *slog.Logger) func(name string) apps.Options {
	return func(name string) apps.Options {
		return apps.Options{
			Logger: logger.With("app", name),
			Decode: func(out any) error {
				section := map[string]any{}
				for _, k := range s.v.AllKeys() {
					if rest, ok := strings.CutPrefix(k, name+"."); ok {
						setNested(section, rest, s.v.Get(k))
					}
				}
				dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
					DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
					WeaklyTypedInput: true,
					ErrorUnused:      true,
					Result:           out,
				})
				if err != nil {
					return err
				}
				if err := dec.Decode(section); err != nil {
					return fmt.Errorf("section %q: %w", name, err)
				}
				return nil
			},
		}
	}
}

// setNested sets m[a][b]...[z] = val for the dotted key "a.b...z",
// creating the intermediate maps, so that a subsection of an app's section
// (hypervisor.liveness.bfd_mult) decodes into a nested struct.
func setNested(m map[string]any, key string, val any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = val
}

// newLogger builds the slog logger of s writing to w.
func (s *settings) newLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.LogLevel}
	if s.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// sortedNames returns the registry's names, sorted.
func sortedNames(reg map[string]apps.Factory) []string {
	out := make([]string, 0, len(reg))
	for n := range reg {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// hypervisorFirst moves the hypervisor app to the front of names: it must
// see every event first, because it consumes tenant packet-ins (Stop) that
// physical apps such as learning must never act on.
func hypervisorFirst(names []string) []string {
	i := slices.Index(names, hypervisor.AppName)
	if i <= 0 {
		return names
	}
	out := append([]string{hypervisor.AppName}, names[:i]...)
	return append(out, names[i+1:]...)
}

// checkHypervisor checks the hypervisor settings early, naming the flag
// (and key) at fault: with the hypervisor app, --infra is required and must
// be a valid infrastructure file (infra.Load) whose ssl: OVSDB endpoints
// have loadable TLS files, its own or --ovsdb-tls-* (hypervisor.CheckOVSDBTLS);
// without it, --infra makes no sense and is refused
// (it would be silently ignored otherwise).
func checkHypervisor(v *viper.Viper, names []string) error {
	infraFile := v.GetString("hypervisor.infra")
	if !slices.Contains(names, hypervisor.AppName) {
		if infraFile != "" {
			return fmt.Errorf("--infra / hypervisor.infra %q given but --apps %q lacks %q", infraFile, strings.Join(names, ","), hypervisor.AppName)
		}
		return nil
	}
	if infraFile == "" {
		return fmt.Errorf("--infra / hypervisor.infra: required with the %q app (the infrastructure file, e.g. `skylab status --json` output; docs/infra.md)", hypervisor.AppName)
	}
	st, err := os.Stat(infraFile)
	if err != nil {
		return fmt.Errorf("--infra / hypervisor.infra: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("--infra / hypervisor.infra: %s is a directory, want a JSON file", infraFile)
	}
	inf, err := infra.Load(infraFile)
	if err != nil {
		return fmt.Errorf("--infra / hypervisor.infra: %w", err)
	}
	tlsFiles := ovsdb.TLSFiles{Key: v.GetString("hypervisor.ovsdb_tls.key"), Cert: v.GetString("hypervisor.ovsdb_tls.cert"),
		CA: v.GetString("hypervisor.ovsdb_tls.ca")}
	if err := hypervisor.CheckOVSDBTLS(inf, tlsFiles); err != nil {
		return fmt.Errorf("hypervisor.%w", err)
	}
	if f := v.GetString("hypervisor.api_token_file"); f != "" {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("--api-token-file / hypervisor.api_token_file: %w", err)
		}
	}
	if v.GetString("hypervisor.state_dir") == "" {
		return fmt.Errorf("--state-dir / hypervisor.state_dir is empty")
	}
	return nil
}
