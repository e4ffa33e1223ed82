package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/internal/testpki"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// writeOVSDBTLSFiles writes a self-signed certificate (also the CA) and its
// key into dir.
func writeOVSDBTLSFiles(t *testing.T, dir string) ovsdb.TLSFiles {
	key, cert, ca := testpki.SelfSigned(t, dir)
	return ovsdb.TLSFiles{Key: key, Cert: cert, CA: ca}
}

// TestOVSDBTLSSettings: --ovsdb-tls-key/-cert/-ca, the config file's
// hypervisor.ovsdb_tls section and SKYVISOR_HYPERVISOR_OVSDB_TLS_* reach
// DaemonConfig.OVSDBTLS.
func TestOVSDBTLSSettings(t *testing.T) {
	dir := t.TempDir()
	f := writeOVSDBTLSFiles(t, dir)
	base := []string{"--apps", "hypervisor", "--infra", testInfra, "--state-dir", dir}
	s, err := loadReg(t, append(base, "--ovsdb-tls-key", f.Key, "--ovsdb-tls-cert", f.Cert, "--ovsdb-tls-ca", f.CA)...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeHypervisor(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OVSDBTLS != f {
		t.Fatalf("flags: %+v, want %+v", cfg.OVSDBTLS, f)
	}

	other := writeOVSDBTLSFiles(t, t.TempDir())
	file := filepath.Join(dir, "sky.yaml")
	os.WriteFile(file, []byte("apps: [hypervisor]\nhypervisor:\n  infra: "+testInfra+"\n  state_dir: "+dir+"\n  ovsdb_tls:\n"+
		"    key: "+f.Key+"\n    cert: "+f.Cert+"\n    ca: "+f.CA+"\n"), 0o600)
	t.Setenv("SKYVISOR_HYPERVISOR_OVSDB_TLS_CA", other.CA)
	if s, err = loadReg(t, "--config", file); err != nil {
		t.Fatal(err)
	}
	if cfg, err = decodeHypervisor(t, s); err != nil {
		t.Fatal(err)
	}
	if want := (ovsdb.TLSFiles{Key: f.Key, Cert: f.Cert, CA: other.CA}); cfg.OVSDBTLS != want {
		t.Fatalf("file + env: %+v, want %+v", cfg.OVSDBTLS, want)
	}
}

func TestOVSDBTLSSettingErrors(t *testing.T) {
	dir := t.TempDir()
	f := writeOVSDBTLSFiles(t, dir)
	sslInfra := filepath.Join(dir, "infra.json")
	os.WriteFile(sslInfra, []byte(`{"sites":[{"name":"a","ovsdb":"ssl:192.0.2.1:6640","underlay_ip":"10.9.0.1","gateway_bridge":"gw","gateway_dpid":256}],"switches":[]}`), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--ovsdb-tls-key", f.Key}, "hypervisor.ovsdb_tls.cert (--ovsdb-tls-cert): required"},
		{[]string{"--ovsdb-tls-key", f.Key, "--ovsdb-tls-cert", f.Cert}, "hypervisor.ovsdb_tls.ca (--ovsdb-tls-ca): required"},
		{[]string{"--ovsdb-tls-key", missing, "--ovsdb-tls-cert", f.Cert, "--ovsdb-tls-ca", f.CA},
			`hypervisor.ovsdb_tls.key (--ovsdb-tls-key) "` + missing + `": open ` + missing + ": no such file"},
		{[]string{"--ovsdb-tls-key", f.Key, "--ovsdb-tls-cert", f.Key, "--ovsdb-tls-ca", f.CA},
			`hypervisor.ovsdb_tls.cert (--ovsdb-tls-cert) "` + f.Key + `": no PEM CERTIFICATE block`},
		{[]string{"--infra", sslInfra}, `hypervisor.infra: invalid infrastructure: sites[0].ovsdb: ssl endpoint "ssl:192.0.2.1:6640" needs ovsdb_tls`},
	}
	for _, c := range cases {
		args := append([]string{"--apps", "hypervisor", "--infra", testInfra, "--state-dir", dir}, c.args...)
		_, err := loadReg(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.args, err, c.want)
		}
	}
	// The daemon's files make the ssl endpoint acceptable.
	if _, err := loadReg(t, "--apps", "hypervisor", "--infra", sslInfra, "--state-dir", dir,
		"--ovsdb-tls-key", f.Key, "--ovsdb-tls-cert", f.Cert, "--ovsdb-tls-ca", f.CA); err != nil {
		t.Fatal(err)
	}
}
