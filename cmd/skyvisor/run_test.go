package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	t.Setenv("SKYVISOR_CONFIG", file)
	t.Setenv("SKYVISOR_LISTEN", "")
	if s, err = load(t); err != nil || strings.Join(s.Apps, ",") != "learning,discovery" || s.LogLevel.String() != "DEBUG" {
		t.Fatalf("SKYVISOR_CONFIG not read: %v %+v", err, s)
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

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("decode %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// TestRunServesAndShutsDown runs the daemon in-process: the OpenFlow
// listener accepts connections, the debug endpoint answers, and cancelling
// the context (what SIGINT/SIGTERM do in main) makes run return nil.
func TestRunServesAndShutsDown(t *testing.T) {
	debug := freeAddr(t)
	sock := filepath.Join(t.TempDir(), "of.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuf
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "unix:" + sock, "--debug-addr", debug, "--log-format", "json"}, &bytes.Buffer{}, &logs)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OpenFlow listener %s not up: %v\n%s", sock, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var links struct {
		Links []discovery.Link `json:"links"`
	}
	var sws struct {
		Switches []switchInfo `json:"switches"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := http.Get("http://" + debug + "/debug/links"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("debug endpoint not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := getJSON(t, "http://"+debug+"/debug/links", &links); code != http.StatusOK || links.Links == nil || len(links.Links) != 0 {
		t.Fatalf("/debug/links: %d %+v (want 200 and an empty list)", code, links)
	}
	if code := getJSON(t, "http://"+debug+"/debug/switches", &sws); code != http.StatusOK || sws.Switches == nil || len(sws.Switches) != 0 {
		t.Fatalf("/debug/switches: %d %+v", code, sws)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return 10 s after cancel")
	}
	for _, want := range []string{`"msg":"skyvisor listening"`, `"apps":["learning","discovery"]`, `"msg":"skyvisor stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

func TestDebugLinksWithoutDiscovery(t *testing.T) {
	srv := httptest.NewServer(debugHandler(nil, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/debug/links")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d want 404 without a discovery app", resp.StatusCode)
	}
	resp, err = http.Post(srv.URL+"/debug/links", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST status %d want 405", resp.StatusCode)
	}
}

func TestRunListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"--listen", ln.Addr().String()}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "listen "+ln.Addr().String()) {
		t.Fatalf("err %v, want a listen error naming the address", err)
	}
}

// syncBuf is a goroutine-safe bytes.Buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeSelfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and
// its key as PEM files in dir.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skyvisor-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestRunTLS: --tls-cert/--tls-key make the OpenFlow listener speak TLS;
// the switch side sees the controller's certificate and an OpenFlow hello.
func TestRunTLS(t *testing.T) {
	cert, key := writeSelfSigned(t, t.TempDir())
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs syncBuf
	go func() {
		done <- run(ctx, []string{"--listen", addr, "--tls-cert", cert, "--tls-key", key, "--apps", "learning"}, &bytes.Buffer{}, &logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var conn *tls.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS dial %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "skyvisor-test" {
		t.Fatalf("peer certificate CN %q", cn)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		t.Fatalf("read OpenFlow hello over TLS: %v", err)
	}
	if hdr[0] != 4 || hdr[1] != 0 {
		t.Fatalf("first message version %d type %d, want an OpenFlow 1.3 hello (4, 0)", hdr[0], hdr[1])
	}
}
