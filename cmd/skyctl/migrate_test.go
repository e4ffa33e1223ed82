package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
)

// migrationFake is the API fake plus api.MigrationService: a migration
// advances one step per GET; with fail_after it rolls back.
type migrationFake struct {
	*apitest.Fake
	mu   sync.Mutex
	req  api.MigrationRequest
	gets int
}

func (f *migrationFake) StartMigration(_ context.Context, r api.MigrationRequest) (api.Migration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.To == "nowhere" {
		return api.Migration{}, fmt.Errorf("unknown cloud %q: %w", r.To, api.ErrInvalid)
	}
	f.req, f.gets = r, 0
	return f.state(), nil
}

func (f *migrationFake) state() api.Migration {
	m := api.Migration{ID: "mig-1", State: "running", Source: api.MigrationBridge{DPID: "0000000000000101", Site: "aws", VM: "vm1"},
		Target: api.MigrationBridge{DPID: "0000000000000202", Site: f.req.To, VM: "vm2"}, Path: []string{"aws", f.req.To},
		Hosts: []api.MigrationHost{{IfaceID: "t/h1", Port: "h-h1"}}}
	steps := []string{"plan", "freeze", "clone", "connect", "move-hosts", "retire", "unfreeze", "commit"}
	for i := 0; i < len(steps) && i <= f.gets; i++ {
		m.Steps = append(m.Steps, api.MigrationStep{Step: steps[i], Status: "done", TookMS: float64(i) + 0.5})
		m.Events = append(m.Events, api.MigrationEvent{Step: steps[i], Status: "done", TookMS: float64(i) + 0.5, Detail: "ok " + steps[i]})
		if f.req.FailAfter == steps[i] {
			m.Events = append(m.Events, api.MigrationEvent{Step: steps[i], Status: "rolled-back", Detail: "undone"})
			m.State, m.Error = "rolled-back", "injected failure"
			return m
		}
	}
	if f.gets >= len(steps)-1 {
		m.State, m.Moved, m.Cloned = "done", []string{"t/h1"}, 3
	}
	return m
}

func (f *migrationFake) Migration(_ context.Context, id string) (api.Migration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != "mig-1" {
		return api.Migration{}, fmt.Errorf("migration %q: %w", id, api.ErrNotFound)
	}
	f.gets++
	return f.state(), nil
}

func (f *migrationFake) Migrations(context.Context) ([]api.Migration, error) { return nil, nil }

// TestMigrate: skyctl migrate follows the migration to its end, printing
// every step with its time; a rolled-back migration exits 1; bad usage
// exits 2; a refused request names the problem.
func TestMigrate(t *testing.T) {
	t.Setenv("SKYCTL_SERVER", "")
	t.Setenv("SKYCTL_TOKEN", "")
	t.Setenv("SKYCTL_TOKEN_FILE", "")
	fake := &migrationFake{Fake: apitest.New()}
	srv := httptest.NewServer(api.NewHandler(fake, api.Options{Token: token}))
	defer srv.Close()
	h := &harness{t: t, fake: fake.Fake, url: srv.URL}
	out := h.mustRun("", "migrate", "aws/vm1", "--to", "gcp")
	for _, w := range []string{"migration mig-1: aws/vm1 (0000000000000101) -> gcp/vm2", "gateway path aws~gcp",
		"  commit     done                  7.5 ms  ok commit", "STEP", "move-hosts  done    4.5",
		"migration mig-1: done (32.0 ms in steps; cloned 3 entries, froze 0, moved t/h1)"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if fake.req.Switch != "aws/vm1" || fake.req.To != "gcp" {
		t.Errorf("request %+v", fake.req)
	}
	r := h.run("", "migrate", "0x101", "--to", "gcp", "--fail-after", "clone")
	if r.code != exitFail || !strings.Contains(r.stdout, "clone      rolled-back") || !strings.Contains(r.stderr, "rolled-back: injected failure") {
		t.Errorf("rolled-back migration: code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := h.run("", "migrate", "aws/vm1"); r.code != exitUsage || !strings.Contains(r.stderr, "--to CLOUD is required") {
		t.Errorf("missing --to: %d %s", r.code, r.stderr)
	}
	if r := h.run("", "migrate"); r.code != exitUsage {
		t.Errorf("missing switch: %d %s", r.code, r.stderr)
	}
	if r := h.run("", "migrate", "aws/vm1", "--to", "nowhere"); r.code != exitFail || !strings.Contains(r.stderr, `unknown cloud "nowhere"`) {
		t.Errorf("refused: %d %s", r.code, r.stderr)
	}
}
