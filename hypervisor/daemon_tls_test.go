package hypervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/internal/testpki"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// TestDaemonOVSDBTLS: the "ovsdb_tls" subsection is checked up front
// (all three files, readable) together with the infrastructure's ssl
// endpoints, and errors name the key and flag or the JSON path.
func TestDaemonOVSDBTLS(t *testing.T) {
	dir := t.TempDir()
	key, cert, ca := testpki.SelfSigned(t, dir)
	infraFile := filepath.Join(dir, "infra.json")
	doc := `{"sites":[{"name":"a","ovsdb":"ssl:192.0.2.1:6640","underlay_ip":"10.9.0.1","gateway_bridge":"gw","gateway_dpid":256}],"switches":[]}`
	if err := os.WriteFile(infraFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	section := func(tls map[string]any) map[string]any {
		s := map[string]any{"infra": infraFile, "state_dir": filepath.Join(dir, "state"), "api_listen": ""}
		if tls != nil {
			s["ovsdb_tls"] = tls
		}
		return s
	}
	cases := []struct {
		tls  map[string]any
		want string
	}{
		{nil, `infra: invalid infrastructure: sites[0].ovsdb: ssl endpoint "ssl:192.0.2.1:6640" needs ovsdb_tls`},
		{map[string]any{"key": key, "cert": cert}, "ovsdb_tls.ca (--ovsdb-tls-ca): required"},
		{map[string]any{"key": key}, "ovsdb_tls.cert (--ovsdb-tls-cert): required"},
		{map[string]any{"key": "/nonexistent/k.pem", "cert": cert, "ca": ca}, `ovsdb_tls.key (--ovsdb-tls-key) "/nonexistent/k.pem": open`},
		{map[string]any{"key": key, "cert": cert, "ca": key}, `ovsdb_tls.ca (--ovsdb-tls-ca) "` + key + `": no PEM CERTIFICATE block`},
		{map[string]any{"key": key, "cert": cert, "ca": ca, "crl": "x"}, "crl"},
	}
	for _, c := range cases {
		_, err := Factory(apps.Options{Logger: quietLogger(), Decode: decoder(section(c.tls))})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ovsdb_tls %v: err %v, want %q", c.tls, err, c.want)
		}
	}
	app, err := Factory(apps.Options{Logger: quietLogger(), Decode: decoder(section(map[string]any{"key": key, "cert": cert, "ca": ca}))})
	if err != nil {
		t.Fatal(err)
	}
	d := app.(*Daemon)
	defer d.store.Close()
	if d.cfg.OVSDBTLS.Key != key || d.cfg.OVSDBTLS.CA != ca {
		t.Fatalf("decoded %+v", d.cfg.OVSDBTLS)
	}
	// The daemon's dialer uses the files (nothing listens on port 1: the
	// dial fails after the TLS setup), and without files says so.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := dialOVSDB(ctx, "ssl:127.0.0.1:1", d.Hypervisor); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("dial with files: %v", err)
	}
	if tc, err := d.OVSDBTLSConfig("tcp:127.0.0.1:1"); tc != nil || err != nil {
		t.Fatalf("tcp endpoint: TLS config %v, %v; want none", tc, err)
	}
	d.Hypervisor.cfg.OVSDBTLS = ovsdb.TLSFiles{}
	if _, err := dialOVSDB(ctx, "ssl:127.0.0.1:1", d.Hypervisor); err == nil || !strings.Contains(err.Error(), "no ovsdb_tls") {
		t.Fatalf("dial without files: %v", err)
	}
}
