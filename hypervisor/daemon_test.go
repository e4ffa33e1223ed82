package hypervisor

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor/api"
)

// decoder mimics cmd/skyvisor's Decode: the app section as a map, strict.
func decoder(section map[string]any) func(any) error {
	return func(out any) error {
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			DecodeHook: mapstructure.StringToTimeDurationHookFunc(), WeaklyTypedInput: true, ErrorUnused: true, Result: out})
		if err != nil {
			return err
		}
		return dec.Decode(section)
	}
}

func TestFactoryErrors(t *testing.T) {
	cases := []struct {
		section map[string]any
		want    string
	}{
		{map[string]any{}, "infra (--infra FILE) is required"},
		{map[string]any{"infra": "/nonexistent/skg.json"}, "no such file"},
		{map[string]any{"infra": "infra/testdata/lab-inventory.json", "state_dir": ""}, "state_dir"},
		{map[string]any{"infra": "x", "bogus": 1}, "bogus"},
		{map[string]any{"infra": "infra/testdata/lab-inventory.json", "state_dir": t.TempDir(), "api_token_file": "/nonexistent/tok"}, "api_token_file"},
	}
	for _, c := range cases {
		_, err := Factory(apps.Options{Logger: quietLogger(), Decode: decoder(c.section)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("section %v: err %v, want %q", c.section, err, c.want)
		}
	}
}

// TestDaemonRun builds the app through the apps registry as the daemon
// does, serves the REST API with the token from a file and shuts down
// cleanly, closing the store (a second daemon can open it).
func TestDaemonRun(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("skg-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	section := map[string]any{"infra": "infra/testdata/lab-inventory.json", "state_dir": filepath.Join(dir, "state"),
		"api_listen": addr, "api_token_file": tokFile, "retry_interval": "50ms"}
	reg := apps.Builtin()
	reg[AppName] = Factory
	built, err := apps.Build(reg, []string{AppName}, func(string) apps.Options {
		return apps.Options{Logger: quietLogger(), Decode: decoder(section)}
	})
	if err != nil {
		t.Fatal(err)
	}
	runner, ok := built[0].(interface{ Run(context.Context) error })
	if !ok {
		t.Fatal("the hypervisor app has no Run method")
	}
	if _, ok := built[0].(controller.SwitchUpHandler); !ok {
		t.Fatal("the hypervisor app is not a SwitchUpHandler")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	c, err := api.NewClient("http://"+addr, "skg-secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Tenants(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("API never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ti, err := built[0].(*Daemon).Infra(ctx)
	if err != nil || len(ti.Clouds) != 3 {
		t.Fatalf("infra %v %v", ti, err)
	}
	// Writes need the token read from the file.
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+addr+"/v1/tenants/nobody", nil)
	req.Header.Set("Authorization", "Bearer skg-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE unknown tenant with token: %d, want 404", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := c.Tenants(context.Background()); err == nil {
		t.Error("API still answers after Run returned")
	}
	// The store was closed: a new daemon opens it at once.
	d2, err := NewDaemon(DaemonConfig{Infra: "infra/testdata/lab-inventory.json", StateDir: filepath.Join(dir, "state")}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	d2.store.Close()
	var busy net.Listener
	if busy, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	d3, err := NewDaemon(DaemonConfig{Infra: "infra/testdata/lab-inventory.json", StateDir: filepath.Join(dir, "state"), APIListen: busy.Addr().String()}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := d3.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "api_listen") {
		t.Errorf("busy API address: %v", err)
	}
}
