package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/controller/apps/learning"
)

func load(t *testing.T, args ...string) (*settings, error) {
	t.Helper()
	return loadSettings(args, &bytes.Buffer{}, apps.Builtin())
}

func TestDefaults(t *testing.T) {
	s, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != ":6653" || strings.Join(s.Apps, ",") != "learning,discovery" || s.TLS != nil ||
		s.LogFormat != "text" || s.DebugAddr != "" || s.EchoInterval != 5*time.Second {
		t.Fatalf("defaults %+v", s)
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sky.yaml")
	os.WriteFile(file, []byte(`
listen: 127.0.0.1:7000
apps: [discovery]
log:
  level: debug
discovery:
  probe_interval: 2s
  link_timeout: 9s
learning:
  idle_timeout: 30s
`), 0o600)
	s, err := load(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != "127.0.0.1:7000" || strings.Join(s.Apps, ",") != "discovery" || s.LogLevel.String() != "DEBUG" {
		t.Fatalf("file not applied: %+v", s)
	}
	var dc discovery.Config
	if err := s.appOptions(s.newLogger(&bytes.Buffer{}))("discovery").Decode(&dc); err != nil {
		t.Fatal(err)
	}
	if dc.ProbeInterval != 2*time.Second || dc.LinkTimeout != 9*time.Second {
		t.Fatalf("discovery section from file: %+v", dc)
	}

	// Environment beats the file, flags beat the environment.
	t.Setenv("SKYVISOR_LISTEN", "unix:/tmp/skb-env.sock")
	t.Setenv("SKYVISOR_APPS", "learning,discovery")
	t.Setenv("SKYVISOR_DISCOVERY_PROBE_INTERVAL", "3s")
	s, err = load(t, "--config", file, "--discovery-link-timeout", "20s", "--learning-idle-timeout=45s")
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != "unix:/tmp/skb-env.sock" || strings.Join(s.Apps, ",") != "learning,discovery" {
		t.Fatalf("env not applied: listen %q apps %q", s.Listen, s.Apps)
	}
	opts := s.appOptions(s.newLogger(&bytes.Buffer{}))
	dc = discovery.DefaultConfig()
	if err := opts("discovery").Decode(&dc); err != nil {
		t.Fatal(err)
	}
	if dc.ProbeInterval != 3*time.Second || dc.LinkTimeout != 20*time.Second {
		t.Fatalf("discovery config env/flag: %+v", dc)
	}
	lc := learning.DefaultConfig()
	if err := opts("learning").Decode(&lc); err != nil {
		t.Fatal(err)
	}
	if lc.IdleTimeout != 45*time.Second || lc.Priority != 1 {
		t.Fatalf("learning config: %+v", lc)
	}
	s, err = load(t, "--listen", "127.0.0.1:7001")
	if err != nil || s.Listen != "127.0.0.1:7001" {
		t.Fatalf("flag must beat env: %v %+v", err, s)
	}
}

func TestJSONAndTOMLFiles(t *testing.T) {
	dir := t.TempDir()
	j := filepath.Join(dir, "c.json")
	os.WriteFile(j, []byte(`{"listen":"127.0.0.1:7100","apps":"learning","log":{"format":"json"}}`), 0o600)
	s, err := load(t, "--config", j)
	if err != nil || s.Listen != "127.0.0.1:7100" || s.LogFormat != "json" || strings.Join(s.Apps, ",") != "learning" {
		t.Fatalf("json: %v %+v", err, s)
	}
	tm := filepath.Join(dir, "c.toml")
	os.WriteFile(tm, []byte("listen = \"127.0.0.1:7200\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n"), 0o600)
	s, err = load(t, "--config", tm)
	if err != nil || s.Listen != "127.0.0.1:7200" || s.TLS == nil || s.TLS.CertFile != "c.pem" || s.TLS.KeyFile != "k.pem" {
		t.Fatalf("toml: %v %+v", err, s)
	}
}

func TestSettingErrors(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("lisen: :1\n"), 0o600)
	badSection := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badSection, []byte("discovery:\n  probe_intervl: 1s\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--apps", "learning,bogus"}, `--apps / apps "learning,bogus": unknown app "bogus" (known: discovery, learning)`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--log-format", "xml"}, `--log-format "xml"`},
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key must be given together"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "read config file"},
		{[]string{"--config", typo}, `unknown key "lisen"`},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
	}
	for _, c := range cases {
		_, err := load(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.args, err, c.want)
		}
	}
	// A typo inside an app section fails when the app is built.
	err := run(context.Background(), []string{"--config", badSection, "--listen", "127.0.0.1:0"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "probe_intervl") {
		t.Errorf("bad section: err %v, want it to name probe_intervl", err)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &out, &bytes.Buffer{})
	if !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("err %v want ErrHelp", err)
	}
	for _, f := range []string{"--listen", "--apps", "--debug-addr", "--discovery-probe-interval", "SKYVISOR_"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("usage lacks %s:\n%s", f, out.String())
		}
	}
}

func TestRunUnknownApp(t *testing.T) {
	err := run(context.Background(), []string{"--apps", "learning,nope"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `"learning,nope"`) || !strings.Contains(err.Error(), `unknown app "nope"`) {
		t.Fatalf("err %v: want the flag value and the unknown name", err)
	}
}
