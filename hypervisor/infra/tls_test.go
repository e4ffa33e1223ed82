package infra

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/internal/testpki"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// writeSelfSigned writes a self-signed certificate and its key into dir
// and returns files naming it as key, certificate and CA.
func writeSelfSigned(t *testing.T, dir string) ovsdb.TLSFiles {
	key, cert, ca := testpki.SelfSigned(t, dir)
	return ovsdb.TLSFiles{Key: key, Cert: cert, CA: ca}
}

func tlsJSON(t *testing.T, f ovsdb.TLSFiles) string {
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func errorPaths(t *testing.T, err error) map[string]string {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	out := map[string]string{}
	for _, fe := range verr.Errors {
		out[fe.Path] = fe.Msg
	}
	return out
}

func TestOVSDBTLSValidation(t *testing.T) {
	doc := `{"ovsdb_tls":{"cert":"/c.pem","ca":"/ca.pem"},"sites":[
	  {"name":"a","ovsdb":"ssl:10.0.0.1:6640","underlay_ip":"10.9.0.1","gateway_bridge":"gw","gateway_dpid":256},
	  {"name":"b","ovsdb":"ssl:10.0.0.2:6640","ovsdb_tls":{"key":"/k.pem"},"underlay_ip":"10.9.0.2","gateway_bridge":"gw","gateway_dpid":512}],
	 "switches":[]}`
	_, err := Parse([]byte(doc))
	paths := errorPaths(t, err)
	for _, want := range []string{"ovsdb_tls.key", "sites[1].ovsdb_tls.cert", "sites[1].ovsdb_tls.ca"} {
		if !strings.Contains(paths[want], "required") {
			t.Errorf("%s: %q, want required; all: %v", want, paths[want], err)
		}
	}
	if len(paths) != 3 {
		t.Errorf("errors %v, want 3", err)
	}

	// Two sites whose switches share an ssl endpoint must agree on its files.
	doc = `{"sites":[
	  {"name":"a","ovsdb":"ssl:10.0.0.1:6640","ovsdb_tls":{"key":"/a/k","cert":"/a/c","ca":"/a/ca"},"underlay_ip":"10.9.0.1","gateway_bridge":"gw-a","gateway_dpid":256},
	  {"name":"b","ovsdb":"ssl:10.0.0.1:6640","ovsdb_tls":{"key":"/b/k","cert":"/b/c","ca":"/b/ca"},"underlay_ip":"10.9.0.2","gateway_bridge":"gw-b","gateway_dpid":512}],
	 "switches":[]}`
	_, err = Parse([]byte(doc))
	if msg := errorPaths(t, err)["sites[1].ovsdb_tls"]; !strings.Contains(msg, "differs from sites[0].ovsdb_tls") {
		t.Errorf("shared endpoint: %v", err)
	}
	// ssl without files is Validate's business only through CheckOVSDBTLS
	// (the daemon may give them).
	doc = `{"sites":[{"name":"a","ovsdb":"ssl:10.0.0.1:6640","underlay_ip":"10.9.0.1","gateway_bridge":"gw","gateway_dpid":256}],"switches":[]}`
	if _, err := Parse([]byte(doc)); err != nil {
		t.Errorf("ssl without ovsdb_tls: %v", err)
	}
}

func TestCheckOVSDBTLS(t *testing.T) {
	dir := t.TempDir()
	good := writeSelfSigned(t, dir)
	missing := filepath.Join(dir, "missing.pem")
	broken := good
	broken.Cert = missing
	doc := `{"sites":[
	  {"name":"a","ovsdb":"ssl:10.0.0.1:6640","ovsdb_tls":` + tlsJSON(t, good) + `,"underlay_ip":"10.9.0.1","gateway_bridge":"gw","gateway_dpid":256},
	  {"name":"b","ovsdb":"ssl:10.0.0.2:6640","underlay_ip":"10.9.0.2","gateway_bridge":"gw","gateway_dpid":512},
	  {"name":"c","ovsdb":"unix:/run/c.sock","ovsdb_tls":` + tlsJSON(t, broken) + `,"underlay_ip":"10.9.0.3","gateway_bridge":"gw","gateway_dpid":768},
	  {"name":"d","ovsdb":"unix:/run/d.sock","underlay_ip":"10.9.0.4","gateway_bridge":"gw","gateway_dpid":1024}],
	 "switches":[
	  {"site":"d","role":"gateway","bridge":"gw","dpid":1024,"patch_ports":[{"name":"gw-v","ofport":1,"peer":"v-gw","peer_bridge":"v"}]},
	  {"site":"d","role":"vm","vm":"v","bridge":"v","dpid":1025,"ovsdb":"ssl:10.0.0.5:6640",
	   "patch_ports":[{"name":"v-gw","ofport":1,"peer":"gw-v","peer_bridge":"gw"}]}]}`
	inf, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	paths := errorPaths(t, inf.CheckOVSDBTLS(nil))
	if msg := paths["sites[1].ovsdb"]; !strings.Contains(msg, `ssl endpoint "ssl:10.0.0.2:6640" needs ovsdb_tls {key, cert, ca}`) ||
		!strings.Contains(msg, "--ovsdb-tls-key") {
		t.Errorf("sites[1].ovsdb: %q", msg)
	}
	if msg := paths["switches[1].ovsdb"]; !strings.Contains(msg, `ssl endpoint "ssl:10.0.0.5:6640"`) {
		t.Errorf("switches[1].ovsdb: %q", msg)
	}
	if msg := paths["sites[2].ovsdb_tls.cert"]; !strings.Contains(msg, `"`+missing+`": open `+missing+": no such file") {
		t.Errorf("sites[2].ovsdb_tls.cert: %q", msg)
	}
	if len(paths) != 3 {
		t.Errorf("errors %v, want 3", paths)
	}

	// The daemon's files cover the sites without their own; the broken
	// files of site c are still reported.
	paths = errorPaths(t, inf.CheckOVSDBTLS(&good))
	if len(paths) != 1 || paths["sites[2].ovsdb_tls.cert"] == "" {
		t.Errorf("with a fallback: %v", paths)
	}
	inf.Sites[2].OVSDBTLS = nil
	if err := inf.CheckOVSDBTLS(&good); err != nil {
		t.Errorf("all covered: %v", err)
	}
	// A top-level ovsdb_tls covers them too, and is loaded.
	inf.OVSDBTLS = &ovsdb.TLSFiles{Key: good.Key, Cert: good.Cert, CA: missing}
	paths = errorPaths(t, inf.CheckOVSDBTLS(nil))
	if len(paths) != 1 || !strings.Contains(paths["ovsdb_tls.ca"], "no such file") {
		t.Errorf("top level: %v", paths)
	}
}

func TestOVSDBTLSFor(t *testing.T) {
	doc := `{"ovsdb_tls":{"key":"/top/k","cert":"/top/c","ca":"/top/ca"},"sites":[
	  {"name":"a","ovsdb":"ssl:10.0.0.1:6640","ovsdb_tls":{"key":"/a/k","cert":"/a/c","ca":"/a/ca"},"underlay_ip":"10.9.0.1","gateway_bridge":"gw","gateway_dpid":256},
	  {"name":"b","ovsdb":"ssl:10.0.0.2:6640","underlay_ip":"10.9.0.2","gateway_bridge":"gw","gateway_dpid":512}],
	 "switches":[
	  {"site":"a","role":"gateway","bridge":"gw","dpid":256,"patch_ports":[{"name":"gw-v","ofport":1,"peer":"v-gw","peer_bridge":"v"}]},
	  {"site":"a","role":"vm","vm":"v","bridge":"v","dpid":257,"ovsdb":"ssl:10.0.1.1:6640",
	   "patch_ports":[{"name":"v-gw","ofport":1,"peer":"gw-v","peer_bridge":"gw"}]}]}`
	inf, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for ep, want := range map[string]string{
		"ssl:10.0.0.1:6640": "/a/k", // the site's own
		"ssl:10.0.1.1:6640": "/a/k", // a switch of site a
		"ssl:10.0.0.2:6640": "/top/k",
		"ssl:10.0.9.9:6640": "/top/k", // unknown: the top level
	} {
		if got := inf.OVSDBTLSFor(ep); got == nil || got.Key != want {
			t.Errorf("OVSDBTLSFor(%s) = %+v, want key %s", ep, got, want)
		}
	}
	got := inf.OVSDBTLSFor("ssl:10.0.0.1:6640")
	got.Key = "changed"
	if inf.Sites[0].OVSDBTLS.Key != "/a/k" {
		t.Error("OVSDBTLSFor returned the infrastructure's own files")
	}
	c := inf.Clone()
	c.Sites[0].OVSDBTLS.Key, c.OVSDBTLS.Key = "x", "y"
	if inf.Sites[0].OVSDBTLS.Key != "/a/k" || inf.OVSDBTLS.Key != "/top/k" {
		t.Error("Clone shares the TLS files")
	}
	inf.OVSDBTLS = nil
	if got := inf.OVSDBTLSFor("ssl:10.0.0.2:6640"); got != nil {
		t.Errorf("no files: %+v", got)
	}
}
