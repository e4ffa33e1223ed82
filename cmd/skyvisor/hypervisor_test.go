package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor"
)

// testInfra is a lab inventory the hypervisor accepts (no switch needs to
// be reachable: the daemon only retries OVSDB in the background).
const testInfra = "../../hypervisor/infra/testdata/lab-inventory.json"

func loadReg(t *testing.T, args ...string) (*settings, error) {
	t.Helper()
	return loadSettings(args, &bytes.Buffer{}, registry())
}

func TestHypervisorFlags(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("skd-secret\n"), 0o600)
	s, err := loadReg(t, "--apps", "learning,hypervisor", "--infra", testInfra, "--state-dir", filepath.Join(dir, "st"),
		"--api-listen", "127.0.0.1:18999", "--api-token-file", tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Apps, ","); got != "hypervisor,learning" {
		t.Fatalf("apps %q: the hypervisor must come first", got)
	}
	cfg := hypervisor.DefaultDaemonConfig()
	if err := s.appOptions(s.newLogger(&bytes.Buffer{}))(hypervisor.AppName).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Infra != testInfra || cfg.StateDir != filepath.Join(dir, "st") || cfg.APIListen != "127.0.0.1:18999" ||
		cfg.APITokenFile != tok || cfg.APIToken != "" || cfg.RetryInterval != hypervisor.DefaultRetryInterval {
		t.Fatalf("hypervisor section %+v", cfg)
	}

	// Environment SKYVISOR_HYPERVISOR_*; flags beat it.
	t.Setenv("SKYVISOR_APPS", "hypervisor")
	t.Setenv("SKYVISOR_HYPERVISOR_INFRA", testInfra)
	t.Setenv("SKYVISOR_HYPERVISOR_API_LISTEN", "127.0.0.1:18998")
	t.Setenv("SKYVISOR_HYPERVISOR_API_TOKEN", "envtok")
	s, err = loadReg(t, "--state-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg = hypervisor.DefaultDaemonConfig()
	if err := s.appOptions(s.newLogger(&bytes.Buffer{}))(hypervisor.AppName).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Infra != testInfra || cfg.APIListen != "127.0.0.1:18998" || cfg.APIToken != "envtok" || cfg.StateDir != dir {
		t.Fatalf("env section %+v", cfg)
	}

	// A config file section.
	file := filepath.Join(dir, "sky.yaml")
	os.WriteFile(file, []byte("apps: [hypervisor]\nhypervisor:\n  infra: "+testInfra+"\n  retry_interval: 250ms\n  api_auth_reads: true\n  tunnel_mesh: true\n"), 0o600)
	t.Setenv("SKYVISOR_APPS", "")
	t.Setenv("SKYVISOR_HYPERVISOR_INFRA", "")
	s, err = loadReg(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	cfg = hypervisor.DefaultDaemonConfig()
	if err := s.appOptions(s.newLogger(&bytes.Buffer{}))(hypervisor.AppName).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Infra != testInfra || cfg.RetryInterval != 250*time.Millisecond || !cfg.APIAuthReads || !cfg.TunnelMesh || cfg.StateDir != "/var/lib/skyvisor" {
		t.Fatalf("file section %+v", cfg)
	}
}

func TestHypervisorFlagErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--apps", "hypervisor"}, "--infra / hypervisor.infra: required"},
		{[]string{"--apps", "hypervisor", "--infra", filepath.Join(dir, "missing.json")}, "--infra / hypervisor.infra: stat " + filepath.Join(dir, "missing.json") + ": no such file"},
		{[]string{"--apps", "hypervisor", "--infra", dir}, "--infra / hypervisor.infra: " + dir + " is a directory"},
		{[]string{"--apps", "learning", "--infra", testInfra}, `lacks "hypervisor"`},
		{[]string{"--apps", "hypervisor", "--infra", testInfra, "--api-token-file", filepath.Join(dir, "tok")}, "--api-token-file / hypervisor.api_token_file"},
		{[]string{"--apps", "hypervisor", "--infra", testInfra, "--state-dir", ""}, "--state-dir / hypervisor.state_dir is empty"},
		{[]string{"--apps", "hypervisor,learning,hypervisor", "--infra", testInfra, "--state-dir", dir}, `app "hypervisor" listed twice`},
	}
	for _, c := range cases {
		var err error
		if strings.Contains(c.want, "twice") {
			err = run(context.Background(), append(c.args, "--listen", "127.0.0.1:0", "--api-listen", ""), &bytes.Buffer{}, &bytes.Buffer{})
		} else {
			_, err = loadReg(t, c.args...)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.args, err, c.want)
		}
	}
	// An infrastructure file that is not one: the error names the flag and
	// the field.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"sites": 3}`), 0o600)
	err := run(context.Background(), []string{"--apps", "hypervisor", "--infra", bad, "--state-dir", dir, "--listen", "127.0.0.1:0"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--infra / hypervisor.infra: ") || !strings.Contains(err.Error(), "sites") {
		t.Errorf("bad infra file: err %v", err)
	}
}

// TestRunHypervisor runs the daemon with the hypervisor and learning apps:
// the REST API answers /v1/health, writes need the token from the file,
// and cancelling makes run return nil (the store is closed: a second run
// over the same state dir starts).
func TestRunHypervisor(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("skd-secret\n"), 0o600)
	for round := 0; round < 2; round++ {
		api := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		var logs syncBuf
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"--apps", "learning,hypervisor", "--infra", testInfra, "--state-dir", filepath.Join(dir, "state"),
				"--listen", "unix:" + filepath.Join(dir, "of.sock"), "--api-listen", api, "--api-token-file", tok, "--log-format", "json"},
				&bytes.Buffer{}, &logs)
		}()
		var resp *http.Response
		for deadline := time.Now().Add(10 * time.Second); ; {
			var err error
			resp, err = http.Get("http://" + api + "/v1/health")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("API not up: %v\n%s", err, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/v1/health: %d", resp.StatusCode)
		}
		for _, auth := range []string{"", "Bearer skd-secret"} {
			req, _ := http.NewRequest(http.MethodPut, "http://"+api+"/v1/tenants/t1", strings.NewReader(`{`))
			req.Header.Set("Content-Type", "application/json")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			want := http.StatusUnauthorized
			if auth != "" {
				want = http.StatusBadRequest // authorized; the body is malformed
			}
			if r.StatusCode != want {
				t.Errorf("PUT with %q: %d, want %d", auth, r.StatusCode, want)
			}
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run: %v\n%s", err, logs.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("run did not return after cancel")
		}
		if !strings.Contains(logs.String(), `"apps":["hypervisor","learning"]`) {
			t.Errorf("log lacks the app order hypervisor,learning:\n%s", logs.String())
		}
	}
}

// TestRunHypervisorAPIBusy: an API address already in use stops the
// daemon with an error naming it.
func TestRunHypervisorAPIBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"--apps", "hypervisor", "--infra", testInfra, "--state-dir", dir,
			"--listen", "unix:" + filepath.Join(dir, "of.sock"), "--api-listen", ln.Addr().String()}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "api_listen "+ln.Addr().String()) {
			t.Fatalf("err %v, want the API address named", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run kept going with its API address taken")
	}
}
