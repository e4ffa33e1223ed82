package ovsdb

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TLSFiles names the PEM files of an "ssl:HOST:PORT" connection, as
// ovsdb-server's and ovs-vsctl's --private-key, --certificate and
// --ca-cert options do (ovsdb-server(1), "Public Key Infrastructure
// Options"; RFC 7047 section 6 leaves the security of the transport to
// TLS). The connection is mutual: ovsdb-server, given --ca-cert, refuses
// a client without a certificate signed by its CA, and the client accepts
// only a server certificate signed by CA.
type TLSFiles struct {
	// Key is the client's private key (PEM: PKCS #8, PKCS #1 RSA or SEC 1
	// EC; unencrypted).
	Key string `json:"key" mapstructure:"key"`
	// Cert is the client's certificate (PEM), optionally followed by the
	// intermediate certificates up to the CA the server trusts.
	Cert string `json:"cert" mapstructure:"cert"`
	// CA holds the certificate(s) (PEM) of the CA that must have signed
	// ovsdb-server's certificate (ovs-pki's switchca/cacert.pem, or
	// controllerca when the server's certificate came from ovs-pki's
	// "controller" type).
	CA string `json:"ca" mapstructure:"ca"`
}

// TLS file fields, as TLSFileError.Field names them (the JSON and
// configuration keys).
const (
	TLSFieldKey  = "key"
	TLSFieldCert = "cert"
	TLSFieldCA   = "ca"
)

// IsZero reports whether no file is named.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

// Missing returns the fields ("key", "cert", "ca") that are empty, in that
// order; an ssl connection needs all three.
func (f TLSFiles) Missing() []string {
	var out []string
	for _, x := range []struct{ name, v string }{{TLSFieldKey, f.Key}, {TLSFieldCert, f.Cert}, {TLSFieldCA, f.CA}} {
		if strings.TrimSpace(x.v) == "" {
			out = append(out, x.name)
		}
	}
	return out
}

// TLSFileError is a problem with one of the files of a TLSFiles.
type TLSFileError struct {
	Field string // TLSFieldKey, TLSFieldCert or TLSFieldCA
	File  string // the path ("" when the field is empty)
	Err   error
}

// Error implements error.
func (e *TLSFileError) Error() string {
	if e.File == "" {
		return e.Field + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s %q: %v", e.Field, e.File, e.Err)
}

// Unwrap returns the underlying error (e.g. an *fs.PathError).
func (e *TLSFileError) Unwrap() error { return e.Err }

// errRequired is wrapped by a TLSFileError for an empty field.
var errRequired = errors.New("required (PEM file path)")

// Load reads and checks the three files and returns the client TLS
// configuration of an ssl: endpoint: the key pair is presented to the
// server, and the server's certificate chain must verify against CA (any
// extended key usage). Like Open vSwitch's stream-ssl (which checks the
// peer's chain, not its name), the server's host name is not compared with
// its certificate: certificates made by ovs-pki carry no DNS or IP names,
// so every certificate signed by CA is accepted — use a CA dedicated to
// OVSDB. TLS 1.2 is the minimum. The files are read once, here.
//
// Errors are *TLSFileError naming the field and file: empty field,
// unreadable file, no PEM certificate in cert or ca, a key that does not
// parse or does not match the certificate.
func (f TLSFiles) Load() (*tls.Config, error) {
	if m := f.Missing(); len(m) > 0 {
		return nil, &TLSFileError{Field: m[0], Err: errRequired}
	}
	read := func(field, file string) ([]byte, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, &TLSFileError{Field: field, File: file, Err: err}
		}
		return b, nil
	}
	keyPEM, err := read(TLSFieldKey, f.Key)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(TLSFieldCert, f.Cert)
	if err != nil {
		return nil, err
	}
	caPEM, err := read(TLSFieldCA, f.CA)
	if err != nil {
		return nil, err
	}
	if _, err := parseCerts(certPEM); err != nil {
		return nil, &TLSFileError{Field: TLSFieldCert, File: f.Cert, Err: err}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &TLSFileError{Field: TLSFieldKey, File: f.Key, Err: fmt.Errorf("with certificate %s: %w", f.Cert, err)}
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, &TLSFileError{Field: TLSFieldCA, File: f.CA, Err: err}
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return clientTLSConfig(pair, pool), nil
}

// parseCerts returns every CERTIFICATE block of a PEM file; at least one
// is required and each must parse.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// clientTLSConfig presents pair and verifies the server's chain against
// roots without a host name check (see TLSFiles.Load).
func clientTLSConfig(pair tls.Certificate, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Always present the certificate (Go's default sends it only if
		// its issuer is among the CAs the server lists), so that the
		// server decides and a mismatch reads as its refusal.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil },
		RootCAs:              roots,
		// The standard verification also checks the name; the chain is
		// verified in VerifyConnection instead, which runs on every
		// handshake whatever InsecureSkipVerify says.
		InsecureSkipVerify: true, //nolint:gosec // chain verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServerChain(cs.PeerCertificates, roots)
		},
	}
}

// verifyServerChain checks that certs (leaf first, as sent by the server)
// chain up to one of roots.
func verifyServerChain(certs []*x509.Certificate, roots *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("ovsdb: tls: server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("ovsdb: tls: server certificate (subject %q): %w", certs[0].Subject.String(), err)
	}
	return nil
}

// WithTLS sets the TLS configuration of "ssl:" endpoints (see
// TLSFiles.Load); Dial refuses an ssl endpoint without one and ignores it
// for unix and tcp endpoints. The configuration is used as is for every
// (re)connection and must not be modified afterwards.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }
