//go:build integration

package ovsdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
)

// sslServer is a private ovsdb-server (no ovs-vswitchd) serving a fresh
// Open_vSwitch database on a unix socket and on pssl:PORT:127.0.0.1 with
// --private-key, --certificate and --ca-cert, like a cloud's ovsdb-server
// reachable over the WAN.
type sslServer struct {
	dir   string
	sock  string
	port  int
	files TLSFiles // the server's key, certificate and CA (of its clients)
	cmd   *exec.Cmd
	done  chan struct{}
}

// sslPortBase and sslPorts: the TLS tests' port range (17300-17399).
const (
	sslPortBase = 17300
	sslPorts    = 100
)

// freeSSLPort returns a port of 17300-17399 that is free on 127.0.0.1 now,
// starting at one derived from the PID so that parallel test binaries
// rarely collide.
func freeSSLPort(t *testing.T) int {
	t.Helper()
	start := os.Getpid() % sslPorts
	for i := range sslPorts {
		p := sslPortBase + (start+i)%sslPorts
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatalf("no free port in %d-%d", sslPortBase, sslPortBase+sslPorts-1)
	return 0
}

// startSSLServer creates the database and starts ovsdb-server with the
// server's files; it is stopped (by its PID) when the test ends.
func startSSLServer(t *testing.T, files TLSFiles) *sslServer {
	t.Helper()
	for _, p := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vsctl"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed (Debian: openvswitch-switch)", p)
		}
	}
	if _, err := os.Stat(ovstest.SchemaPath); err != nil {
		t.Skipf("schema: %v", err)
	}
	dir, err := os.MkdirTemp("", "sko-ssl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &sslServer{dir: dir, sock: filepath.Join(dir, "db.sock"), port: freeSSLPort(t), files: files}
	if out, err := exec.Command("ovsdb-tool", "create", filepath.Join(dir, "conf.db"), ovstest.SchemaPath).CombinedOutput(); err != nil {
		t.Fatalf("ovsdb-tool create: %v: %s", err, out)
	}
	s.start(t)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "ovsdb-server.log"))
			t.Logf("ovsdb-server.log:\n%s", b)
		}
	})
	// The root row: ovs-vswitchd's init script would create it.
	s.vsctl(t, "--no-wait", "init")
	return s
}

func (s *sslServer) endpoint() string { return fmt.Sprintf("ssl:127.0.0.1:%d", s.port) }

// start runs ovsdb-server in the foreground (as a child killed with the
// test binary) and waits until the unix socket answers and the TLS port
// accepts connections.
func (s *sslServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command("ovsdb-server", filepath.Join(s.dir, "conf.db"),
		"--remote=punix:"+s.sock,
		fmt.Sprintf("--remote=pssl:%d:127.0.0.1", s.port),
		"--private-key="+s.files.Key, "--certificate="+s.files.Cert, "--ca-cert="+s.files.CA,
		"--unixctl="+filepath.Join(s.dir, "ovsdb-server.ctl"),
		"--pidfile="+filepath.Join(s.dir, "ovsdb-server.pid"),
		"--log-file="+filepath.Join(s.dir, "ovsdb-server.log"),
		"--no-chdir", "-vconsole:off")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.done = make(chan struct{})
	started := make(chan error, 1)
	// Pdeathsig fires when the starting thread exits: keep it locked for
	// the process's lifetime.
	go func(cmd *exec.Cmd, done chan struct{}) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	if err := <-started; err != nil {
		t.Fatalf("start ovsdb-server: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, uerr := exec.Command("ovs-vsctl", "--db=unix:"+s.sock, "--timeout=2", "--no-wait", "show").CombinedOutput()
		c, terr := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second)
		if terr == nil {
			c.Close()
		}
		if uerr == nil && terr == nil {
			return
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(s.dir, "ovsdb-server.log"))
			t.Fatalf("ovsdb-server exited during start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ovsdb-server not ready: unix %v, tcp %v", uerr, terr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop terminates the ovsdb-server this test started (SIGTERM, then
// SIGKILL after 5 s) and waits for it.
func (s *sslServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func (s *sslServer) vsctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ovs-vsctl", append([]string{"--db=unix:" + s.sock, "--timeout=10"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-vsctl %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestSSLEndpoint runs the client against a real ovsdb-server over mutual
// TLS: a CA signs the server's and the client's certificates (ECDSA P-256,
// made here), the client connects to ssl:127.0.0.1:PORT and creates a
// bridge, and reconnects over TLS after a server restart. A client whose
// certificate comes from another CA is refused by ovsdb-server, and a
// client that trusts another CA refuses the server.
func TestSSLEndpoint(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newTestCA(t, "skyvisor-ovsdb-ca"), newTestCA(t, "rogue-ca")
	srv := startSSLServer(t, ca.writeFiles(t, dir, "server", "ovsdb-server"))
	client := ca.writeFiles(t, dir, "client", "skyvisor")

	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	cfg, err := client.Load()
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	t0 := time.Now()
	c, err := Dial(ctx, srv.endpoint(), WithTLS(cfg), WithLogger(newTestLogger(w)))
	if err != nil {
		t.Fatalf("Dial %s: %v", srv.endpoint(), err)
	}
	t.Cleanup(c.Close)
	t.Logf("connected over TLS in %v", time.Since(t0))
	if got := c.Endpoint().String(); got != srv.endpoint() {
		t.Fatalf("Endpoint = %s", got)
	}
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-ssl0", ExternalIDs: map[string]string{"via": "ssl"}}); err != nil {
		t.Fatal(err)
	}
	if got := srv.vsctl(t, "list-br"); got != "sko-ssl0" {
		t.Fatalf("bridges = %q", got)
	}
	if got := srv.vsctl(t, "get", "Bridge", "sko-ssl0", "external_ids:via"); got != `ssl` {
		t.Fatalf("external_ids:via = %s", got)
	}

	// Restart: the client reconnects over TLS with the same configuration.
	srv.stop()
	srv.start(t)
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-ssl0", ExternalIDs: map[string]string{"via": "ssl-again"}}); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got := srv.vsctl(t, "get", "Bridge", "sko-ssl0", "external_ids:via"); got != "ssl-again" {
		t.Fatalf("after restart: external_ids:via = %s", got)
	}

	refused := func(name string, f TLSFiles, want string) {
		t.Helper()
		cfg, err := f.Load()
		if err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := Dial(dctx, srv.endpoint(), WithTLS(cfg), WithLogger(newTestLogger(w)))
		if err == nil {
			c.Close()
			t.Fatalf("%s: connected", name)
		}
		if want != "" && !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want an error containing %q", name, err, want)
		}
		t.Logf("%s: refused: %v", name, err)
	}
	// A certificate of another CA: ovsdb-server refuses it. With TLS 1.3
	// the client learns it after its handshake, from the alert
	// unknown_ca or, when the server closed first, a broken pipe; the
	// server's log tells.
	other := rogue.writeFiles(t, dir, "rogue", "skyvisor")
	refused("client certificate of another CA", TLSFiles{Key: other.Key, Cert: other.Cert, CA: client.CA}, "")
	eventually(t, "ovsdb-server to log the refused certificate", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(srv.dir, "ovsdb-server.log"))
		return strings.Contains(string(b), "certificate verify failed"), "no \"certificate verify failed\" in ovsdb-server.log"
	})
	// The right certificate, but trusting another CA: the client refuses
	// the server's certificate.
	refused("server certificate of another CA", TLSFiles{Key: client.Key, Cert: client.Cert, CA: other.CA}, "certificate signed by unknown authority")

	// The refusals changed nothing.
	if got := srv.vsctl(t, "list-br"); got != "sko-ssl0" {
		t.Fatalf("bridges = %q", got)
	}
}

// TestSSLEndpointOVSPKI uses certificates made by ovs-pki as docs/infra.md
// describes (RSA, SAN "NAME id:UUID" that is no host name): the server's
// of type switch (switchca), Skyvisor's of type controller (controllerca).
func TestSSLEndpointOVSPKI(t *testing.T) {
	if _, err := exec.LookPath("ovs-pki"); err != nil {
		t.Skip("ovs-pki not installed (Debian: openvswitch-common)")
	}
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	for _, args := range [][]string{
		{"init", "--dir=" + pki},
		{"req+sign", "ovsdb-aws", "switch", "--dir=" + pki},
		{"req+sign", "skyvisor", "controller", "--dir=" + pki},
	} {
		cmd := exec.Command("ovs-pki", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ovs-pki %v: %v: %s", args, err, out)
		}
	}
	srv := startSSLServer(t, TLSFiles{Key: filepath.Join(dir, "ovsdb-aws-privkey.pem"), Cert: filepath.Join(dir, "ovsdb-aws-cert.pem"),
		CA: filepath.Join(pki, "controllerca", "cacert.pem")})
	client := TLSFiles{Key: filepath.Join(dir, "skyvisor-privkey.pem"), Cert: filepath.Join(dir, "skyvisor-cert.pem"),
		CA: filepath.Join(pki, "switchca", "cacert.pem")}
	cfg, err := client.Load()
	if err != nil {
		t.Fatal(err)
	}
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	ctx := testCtx(t)
	c, err := Dial(ctx, srv.endpoint(), WithTLS(cfg), WithLogger(newTestLogger(w)))
	if err != nil {
		t.Fatalf("Dial %s: %v", srv.endpoint(), err)
	}
	t.Cleanup(c.Close)
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-pki0"}); err != nil {
		t.Fatal(err)
	}
	if got := srv.vsctl(t, "list-br"); got != "sko-pki0" {
		t.Fatalf("bridges = %q", got)
	}
	// Trusting controllerca instead of switchca: the server is refused.
	client.CA = filepath.Join(pki, "controllerca", "cacert.pem")
	if cfg, err = client.Load(); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if c2, err := Dial(dctx, srv.endpoint(), WithTLS(cfg), WithLogger(newTestLogger(w))); err == nil {
		c2.Close()
		t.Fatal("connected to a server whose certificate is not of the trusted CA")
	} else if !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("wrong CA: %v", err)
	}
}
