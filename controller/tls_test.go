package controller

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate (both signed by the CA) under dir.
type testPKI struct {
	caFile, certFile, keyFile string
	clientCert                tls.Certificate
	caPool                    *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skc-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(cn string, usage x509.ExtKeyUsage, serial int64) ([]byte, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := leaf("skc-controller", x509.ExtKeyUsageServerAuth, 2)
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cliDER, cliKey := leaf("skc-switch", x509.ExtKeyUsageClientAuth, 3)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		caFile:     write("ca.pem", "CERTIFICATE", caDER),
		certFile:   write("srv.pem", "CERTIFICATE", srvDER),
		keyFile:    write("srv.key", "EC PRIVATE KEY", srvKeyDER),
		clientCert: tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey},
		caPool:     pool,
	}
}

func TestTLSListenerWithClientCertificates(t *testing.T) {
	pki := newTestPKI(t)
	rec := newRecorder("rec")
	cfg := testConfig(&logSink{})
	cfg.Listen = "ssl:127.0.0.1:0"
	cfg.TLS = &TLSConfig{CertFile: pki.certFile, KeyFile: pki.keyFile, CAFile: pki.caFile}
	c, err := New(cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- c.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve = %v", err)
		}
	}()

	// Without a client certificate the TLS handshake fails.
	bad, err := tls.Dial("tcp", c.Addr().String(), &tls.Config{RootCAs: pki.caPool})
	if err == nil {
		_ = bad.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = bad.Read(make([]byte, 1))
		bad.Close()
	}
	if err == nil {
		t.Fatal("switch without a client certificate was accepted")
	}

	conn, err := tls.Dial("tcp", c.Addr().String(), &tls.Config{RootCAs: pki.caPool, Certificates: []tls.Certificate{pki.clientCert}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fs := newFakeSwitch(t, conn)
	fs.handshake(0x5, 1)
	if sw := recv(t, rec.upCh, "SwitchUp over TLS"); sw.DPID() != 5 {
		t.Fatal(sw.DPID())
	}
}

func TestNewRejectsMissingTLSFiles(t *testing.T) {
	_, err := New(Config{TLS: &TLSConfig{CertFile: "/nonexistent/skc.pem", KeyFile: "/nonexistent/skc.key"}}, newRecorder("x"))
	if err == nil {
		t.Fatal("missing TLS files accepted")
	}
}
