package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
)

const token = "t0ken"

func topoJSON(name string) string {
	return fmt.Sprintf(`{"tenant": %q, "apps": ["learning"], "switches": [{"name": "s1"}, {"name": "s2"}],
		"links": [{"a": {"switch": "s1", "port": 2}, "b": {"switch": "s2", "port": 1}}],
		"hosts": [{"name": "h1", "mac": "00:00:00:00:00:01", "ip": "10.0.0.1/24", "switch": "s1", "port": 1, "cloud": "aws"}]}`, name)
}

type harness struct {
	t    *testing.T
	fake *apitest.Fake
	url  string
}

func newHarness(t *testing.T, opts api.Options) *harness {
	t.Helper()
	t.Setenv("SKYCTL_SERVER", "")
	t.Setenv("SKYCTL_TOKEN", "")
	t.Setenv("SKYCTL_TOKEN_FILE", "")
	fake := apitest.New()
	srv := httptest.NewServer(api.NewHandler(fake, opts))
	t.Cleanup(srv.Close)
	return &harness{t: t, fake: fake, url: srv.URL}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs skyctl against the harness server (and token) plus args.
func (h *harness) run(stdin string, args ...string) result {
	h.t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--server", h.url, "--token", token}, args...)
	code := run(context.Background(), full, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (h *harness) mustRun(stdin string, args ...string) string {
	h.t.Helper()
	r := h.run(stdin, args...)
	if r.code != 0 {
		h.t.Fatalf("skyctl %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "topo.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyGetDescribeDelete(t *testing.T) {
	h := newHarness(t, api.Options{Token: token})
	out := h.mustRun("", "apply", "-f", writeFile(t, topoJSON("acme")))
	if want := "tenant/acme applied: tenant ID 512(02:00), generation 1, active\n"; out != want {
		t.Fatalf("apply output %q, want %q", out, want)
	}
	// A tenants document on stdin, flags after the command.
	out = h.mustRun(`{"tenants": [`+topoJSON("beta")+`, `+topoJSON("acme")+`]}`, "apply", "-f", "-")
	want := "tenant/beta applied: tenant ID 513(02:01), generation 1, active\n" +
		"tenant/acme applied: tenant ID 512(02:00), generation 2, active\n"
	if out != want {
		t.Fatalf("apply document output:\n%s\nwant:\n%s", out, want)
	}

	out = h.mustRun("", "get", "tenants")
	want = "" +
		"TENANT  ID          STATE   GENERATION  SWITCHES  LINKS  BOUND/HOSTS  UPDATED\n" +
		"acme    512(02:00)  active  2           2         1      1/1          2026-11-22T05:00:00Z\n" +
		"beta    513(02:01)  active  1           2         1      1/1          2026-11-22T05:00:00Z\n"
	if out != want {
		t.Fatalf("get tenants:\n%s\nwant:\n%s", out, want)
	}

	out = h.mustRun("", "get", "tenant", "beta")
	if !strings.HasPrefix(out, "TENANT") || !strings.Contains(out, "\nbeta    513(02:01)") || strings.Count(out, "\n") != 2 {
		t.Fatalf("get tenant beta:\n%s", out)
	}

	out = h.mustRun("", "describe", "tenant", "acme")
	want = `Tenant:     acme
Tenant ID:  512 (fabric MAC prefix 02:00)
State:      active
Generation: 2
Updated:    2026-11-22T05:00:00Z
Apps:       learning
Topology:   2 switches, 1 links, 1 hosts (1 bound)

Hosts:
  NAME  MAC                FABRIC MAC         IP           SWITCH:PORT  SITE  BINDING  PHYSICAL
  h1    00:00:00:00:00:01  02:00:00:00:00:01  10.0.0.1/24  s1:1         aws   bound    00:00:00:00:00:00:01:01 port 5

Switches:
  NAME  VIRTUAL DPID             SITE  PORT  KIND    PHYSICAL DPID            PHYS PORT  TUNNEL     PEER
  s1    00:00:00:00:00:00:00:01  aws   1     local   00:00:00:00:00:00:01:01  5          -          host:h1
                                       2     tunnel  00:00:00:00:00:00:01:00  102        aws-azure  switch:s2:1

Links:
  A     B     TUNNELS    PATH (DPID[IN>OUT])
  s1:2  s2:1  aws-azure  00:00:00:00:00:00:01:01[5>1] 00:00:00:00:00:00:01:00[1>102]
`
	if out != want {
		t.Fatalf("describe tenant:\n%s\nwant:\n%s", out, want)
	}

	out = h.mustRun("", "delete", "tenant", "acme")
	if out != "tenant/acme deleted\n" {
		t.Fatalf("delete: %q", out)
	}
	r := h.run("", "describe", "tenant", "acme")
	if r.code != 1 || r.stdout != "" || r.stderr != "skyctl: tenant \"acme\": not found\n" {
		t.Fatalf("describe deleted tenant: %+v", r)
	}
	r = h.run("", "delete", "tenant", "acme")
	if r.code != 1 || !strings.Contains(r.stderr, "delete tenant acme: ") || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("delete twice: %+v", r)
	}
}

func TestJSONOutputIsTheAPIs(t *testing.T) {
	h := newHarness(t, api.Options{Token: token})
	h.mustRun("", "apply", "-f", writeFile(t, topoJSON("acme")))
	for _, c := range []struct {
		args []string
		path string
	}{
		{[]string{"get", "tenants"}, "/v1/tenants"},
		{[]string{"get", "tenant", "acme"}, "/v1/tenants/acme"},
		{[]string{"describe", "tenant", "acme"}, "/v1/tenants/acme"},
		{[]string{"topology", "physical"}, "/v1/topology/physical"},
		{[]string{"health"}, "/v1/health"},
	} {
		out := h.mustRun("", append([]string{"-o", "json"}, c.args...)...)
		client, _ := api.NewClient(h.url, "", nil)
		var raw json.RawMessage
		if err := client.Do(context.Background(), "GET", c.path, nil, &raw); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != strings.TrimSpace(string(raw)) {
			t.Errorf("skyctl -o json %v:\n%s\nAPI %s:\n%s", c.args, out, c.path, raw)
		}
	}
	out := h.mustRun("", "apply", "-o", "json", "-f", writeFile(t, topoJSON("beta")))
	var res api.ApplyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Tenants) != 1 || res.Tenants[0].Tenant != "beta" {
		t.Fatalf("apply -o json: %s (%v)", out, err)
	}
	if out := h.mustRun("", "delete", "tenant", "beta", "-o", "json"); out != "" {
		t.Fatalf("delete -o json printed %q", out)
	}
}

func TestValidationErrorsOnePerLine(t *testing.T) {
	h := newHarness(t, api.Options{Token: token})
	bad := strings.Replace(strings.Replace(topoJSON("acme"), `"cloud": "aws"`, `"cloud": "mars"`, 1), `"switch": "s2"`, `"switch": "s9"`, 1)
	path := writeFile(t, bad)
	r := h.run("", "apply", "-f", path)
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 3 || lines[0] != "skyctl: apply "+path+": invalid topology: 2 errors" ||
		!strings.HasPrefix(lines[1], "  $.hosts[0].cloud: ") || !strings.Contains(lines[1], `"mars"`) ||
		!strings.HasPrefix(lines[2], "  $.links[0].b.switch: ") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	if strings.Contains(fmt.Sprint(h.fake.Calls()), "Apply") {
		t.Fatal("invalid topology was applied")
	}
	// Not JSON at all.
	r = h.run("", "apply", "-f", writeFile(t, "{nope"))
	if r.code != 1 || !strings.Contains(r.stderr, "invalid topology") {
		t.Fatalf("garbage: %+v", r)
	}
}

func TestAuthErrors(t *testing.T) {
	h := newHarness(t, api.Options{Token: "other"})
	r := h.run("", "delete", "tenant", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "invalid bearer token") || !strings.Contains(r.stderr, "hint: pass the API token with --token or SKYCTL_TOKEN") {
		t.Fatalf("wrong token: %+v", r)
	}
	h2 := newHarness(t, api.Options{})
	r = h2.run("", "apply", "-f", writeFile(t, topoJSON("acme")))
	if r.code != 1 || !strings.Contains(r.stderr, "no API token configured") {
		t.Fatalf("no token configured: %+v", r)
	}
	// The token from the environment is used.
	h3 := newHarness(t, api.Options{Token: "from-env"})
	t.Setenv("SKYCTL_TOKEN", "from-env")
	t.Setenv("SKYCTL_SERVER", h3.url)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"apply", "-f", writeFile(t, topoJSON("acme"))}, nil, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "tenant/acme applied") {
		t.Fatalf("env token/server: %d %s %s", code, out.String(), errb.String())
	}
	// --token-file wins over the environment; surrounding whitespace is
	// trimmed.
	h4 := newHarness(t, api.Options{Token: "from-file"})
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SKYCTL_TOKEN", "from-env")
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"--server", h4.url, "--token-file", tf, "delete", "tenant", "nobody"}, nil, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "not found") {
		t.Fatalf("--token-file: %d %q (want 404, i.e. authorized)", code, errb.String())
	}
}

func TestPhysicalAndHealthTables(t *testing.T) {
	h := newHarness(t, api.Options{})
	out := h.mustRun("", "topology", "physical")
	want := `Sites:
  NAME  CLOUD  GATEWAY                  ENDPOINT
  aws   aws    00:00:00:00:00:00:01:00  172.31.0.1

Switches:
  DPID                     ROLE     SITE  VM   CONNECTED  ADDRESS          PORTS
  00:00:00:00:00:00:01:00  gateway  aws   -    yes        127.0.0.1:40000  3
  00:00:00:00:00:00:01:01  vm       aws   vm1  no         -                2

Links:
  SRC DPID                 SRC PORT  DST DPID                 DST PORT
  00:00:00:00:00:00:01:00  1         00:00:00:00:00:00:01:01  1

Tunnels:
  NAME       TYPE   A    B      LOCAL IP    REMOTE IP   KEY   STATE  TREE           BFD
  aws-azure  vxlan  aws  azure  172.31.0.1  172.31.0.2  flow  up     yes            up
  aws-gcp    vxlan  aws  gcp    172.31.0.1  172.31.0.3  flow  up     routed around  down (Control Detection Time Expired)
`
	if out != want {
		t.Fatalf("topology physical:\n%s\nwant:\n%s", out, want)
	}
	out = h.mustRun("", "health")
	if want := "Status:  ok\nVersion: test\nUptime:  13s\n"; out != want {
		t.Fatalf("health:\n%q\nwant:\n%q", out, want)
	}
	h.fake.HealthValue = api.Health{Status: api.HealthUnavailable, UptimeSeconds: 1,
		Checks: []api.HealthCheck{{Name: "store", Status: api.HealthUnavailable, Message: "closed"}, {Name: "controller", Status: api.HealthOK}}}
	r := h.run("", "health")
	want = "Status: unavailable\nUptime: 1s\n\nChecks:\n  NAME        STATUS       MESSAGE\n  store       unavailable  closed\n  controller  ok           -\n"
	if r.code != 1 || r.stdout != want {
		t.Fatalf("unavailable health: exit %d\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	empty := newHarness(t, api.Options{})
	empty.fake.Physical = api.PhysicalTopology{}
	if out := empty.mustRun("", "topology", "physical"); out != "Sites:\n  (none)\n\nSwitches:\n  (none)\n\nLinks:\n  (none)\n\nTunnels:\n  (none)\n" {
		t.Fatalf("empty physical:\n%s", out)
	}
	if out := empty.mustRun("", "get", "tenants"); out != "No tenants.\n" {
		t.Fatalf("no tenants: %q", out)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("SKYCTL_SERVER", "")
	t.Setenv("SKYCTL_TOKEN", "")
	t.Setenv("SKYCTL_TOKEN_FILE", "")
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"get"}, `unknown command "get" (did you mean: get tenants, get tenant?)`},
		{[]string{"get", "tenants", "extra"}, `get tenants: unexpected argument "extra"`},
		{[]string{"describe", "tenant"}, "describe tenant: missing NAME"},
		{[]string{"delete", "tenant", "a", "b"}, `delete tenant: unexpected argument "b"`},
		{[]string{"apply"}, "apply: -f FILE is required"},
		{[]string{"get", "tenants", "-f", "x"}, "get tenants: -f is only for apply"},
		{[]string{"-o", "yaml", "get", "tenants"}, `-o "yaml": want table or json`},
		{[]string{"--bogus", "health"}, "flag provided but not defined: -bogus"},
		{[]string{"--timeout", "0s", "health"}, "--timeout 0s: must be positive"},
		{[]string{"--server", "ftp://x", "health"}, "--server: server URL \"ftp://x\": scheme must be http or https"},
		{[]string{"--token-file", "/nonexistent/token", "health"}, "--token-file: open /nonexistent/token: no such file or directory"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), c.args, nil, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.msg) || out.Len() != 0 {
			t.Errorf("skyctl %v: exit %d, stderr %q; want exit 2 with %q", c.args, code, errb.String(), c.msg)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "describe tenant NAME") {
		t.Errorf("--help: %d %q", code, out.String())
	}
}

func TestApplyFileErrors(t *testing.T) {
	h := newHarness(t, api.Options{Token: token})
	r := h.run("", "apply", "-f", filepath.Join(t.TempDir(), "missing.json"))
	if r.code != 1 || !strings.Contains(r.stderr, "apply: reading ") || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("missing file: %+v", r)
	}
}

func TestServerUnreachable(t *testing.T) {
	t.Setenv("SKYCTL_SERVER", "")
	var out, errb bytes.Buffer
	srv := httptest.NewServer(nil)
	dead := srv.URL
	srv.Close()
	code := run(context.Background(), []string{"--server", dead, "get", "tenants"}, nil, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "cannot reach the API") || !strings.Contains(errb.String(), dead) {
		t.Fatalf("unreachable: %d %q", code, errb.String())
	}
}

func TestBFDText(t *testing.T) {
	for _, c := range []struct {
		in   *api.TunnelBFD
		want string
	}{
		{nil, ""},
		{&api.TunnelBFD{}, "unreported"},
		{&api.TunnelBFD{State: "up", Forwarding: true}, "up"},
		{&api.TunnelBFD{State: "up"}, "up, not forwarding"},
		{&api.TunnelBFD{State: "init"}, "init"},
		{&api.TunnelBFD{State: "down", Diagnostic: "Neighbor Signaled Session Down"}, "down (Neighbor Signaled Session Down)"},
	} {
		if got := bfdText(c.in); got != c.want {
			t.Errorf("bfdText(%+v) = %q, want %q", c.in, got, c.want)
		}
	}
}
