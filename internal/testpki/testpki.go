// Package testpki writes throwaway certificates for tests of TLS
// configuration (OVSDB "ssl:" endpoints, docs/infra.md "OVSDB over TLS").
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SelfSigned writes into dir a self-signed ECDSA P-256 certificate valid
// from an hour ago to an hour from now (privkey.pem: PKCS #8 key,
// cert.pem, and cacert.pem: the same certificate as its own CA) and
// returns the three paths. It fails t on any error.
func SelfSigned(t testing.TB, dir string) (key, cert, ca string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skyvisor"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, ca = filepath.Join(dir, "privkey.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "cacert.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for p, b := range map[string][]byte{key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), cert: certPEM, ca: certPEM} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return key, cert, ca
}
