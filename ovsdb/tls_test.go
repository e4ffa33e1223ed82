package ovsdb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTLSFilesMissing(t *testing.T) {
	if got := (TLSFiles{}).Missing(); strings.Join(got, ",") != "key,cert,ca" {
		t.Fatalf("Missing() = %v", got)
	}
	if got := (TLSFiles{Key: "k", CA: " "}).Missing(); strings.Join(got, ",") != "cert,ca" {
		t.Fatalf("Missing() = %v", got)
	}
	if !(TLSFiles{}).IsZero() || (TLSFiles{CA: "x"}).IsZero() {
		t.Fatal("IsZero")
	}
}

func TestTLSFilesLoadErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	good := ca.writeFiles(t, dir, "good", "client")
	other := newTestCA(t, "other").writeFiles(t, dir, "other", "client")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "does-not-exist.pem")
	cases := []struct {
		name  string
		f     TLSFiles
		field string
		want  string
	}{
		{"no key", TLSFiles{Cert: good.Cert, CA: good.CA}, "key", "key: required"},
		{"no cert", TLSFiles{Key: good.Key, CA: good.CA}, "cert", "cert: required"},
		{"no ca", TLSFiles{Key: good.Key, Cert: good.Cert}, "ca", "ca: required"},
		{"unreadable key", TLSFiles{Key: missing, Cert: good.Cert, CA: good.CA}, "key", `key "` + missing + `": open`},
		{"unreadable cert", TLSFiles{Key: good.Key, Cert: missing, CA: good.CA}, "cert", "no such file"},
		{"unreadable ca", TLSFiles{Key: good.Key, Cert: good.Cert, CA: missing}, "ca", `ca "` + missing + `"`},
		{"cert not PEM", TLSFiles{Key: good.Key, Cert: junk, CA: good.CA}, "cert", "no PEM CERTIFICATE block"},
		{"key not PEM", TLSFiles{Key: junk, Cert: good.Cert, CA: good.CA}, "key", "with certificate"},
		{"key of another cert", TLSFiles{Key: other.Key, Cert: good.Cert, CA: good.CA}, "key", "does not match"},
		{"ca not PEM", TLSFiles{Key: good.Key, Cert: good.Cert, CA: junk}, "ca", "no PEM CERTIFICATE block"},
		{"ca is a key", TLSFiles{Key: good.Key, Cert: good.Cert, CA: good.Key}, "ca", "no PEM CERTIFICATE block"},
	}
	for _, c := range cases {
		_, err := c.f.Load()
		var fe *TLSFileError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Load() = %v, want a %s error containing %q", c.name, err, c.field, c.want)
		}
	}
	_, err := TLSFiles{Key: missing, Cert: good.Cert, CA: good.CA}.Load()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unreadable file: %v does not wrap fs.ErrNotExist", err)
	}
	if _, err := good.Load(); err != nil {
		t.Fatalf("good files: %v", err)
	}
}

// tlsServer accepts one TLS connection with cert, requiring a client
// certificate signed by clientCA, and reports the handshake's result.
func tlsServer(t *testing.T, cert tls.Certificate, clientCA *x509.CertPool) (addr string, result <-chan error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCA,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		ch <- c.(*tls.Conn).Handshake()
	}()
	return ln.Addr().String(), ch
}

// TestTLSConfigVerifiesServer checks the configuration Load returns against
// a Go TLS server behaving like ovsdb-server with --ca-cert: the handshake
// succeeds with a server certificate of the CA (although it names no host),
// fails when the server's certificate comes from another CA, and the server
// refuses a client whose certificate comes from another CA.
func TestTLSConfigVerifiesServer(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newTestCA(t, "ovsdb-ca"), newTestCA(t, "rogue-ca")
	client := ca.writeFiles(t, dir, "client", "skyvisor")
	rogueClient := rogue.writeFiles(t, dir, "rogue", "skyvisor")
	rogueClient.CA = client.CA // trusts the right CA, presents the wrong certificate
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	pair := func(c *testCA) tls.Certificate {
		certPEM, keyPEM := c.issue(t, "ovsdb-server")
		p, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	dial := func(f TLSFiles, addr string) error {
		cfg, err := f.Load()
		if err != nil {
			t.Fatal(err)
		}
		d := tls.Dialer{Config: cfg}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}

	addr, res := tlsServer(t, pair(ca), pool)
	if err := dial(client, addr); err != nil {
		t.Fatalf("good server: %v", err)
	}
	if err := <-res; err != nil {
		t.Fatalf("good server: server side: %v", err)
	}

	addr, _ = tlsServer(t, pair(rogue), pool)
	err := dial(client, addr)
	if err == nil || !strings.Contains(err.Error(), "server certificate") || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("server of another CA: %v, want an unknown-authority error", err)
	}

	addr, res = tlsServer(t, pair(ca), pool)
	_ = dial(rogueClient, addr)
	if err := <-res; err == nil {
		t.Fatal("server accepted a client certificate of another CA")
	}
}
