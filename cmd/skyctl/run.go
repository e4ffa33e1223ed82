package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/api"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the request failed
	exitUsage = 2 // bad command line
)

// defaultServer is the API address when neither --server nor SKYCTL_SERVER
// is set: skyvisor's default listen address.
const defaultServer = "http://127.0.0.1:8080"

const usageText = `usage: skyctl [flags] <command> [args]

Commands:
  apply -f FILE           create or replace tenants from FILE ("-" for stdin):
                          one topology or {"tenants": [...]}, all or nothing
  get tenants             list tenants
  get tenant NAME         one tenant's status line
  describe tenant NAME    tenant status, hosts (fabric MACs, bindings),
                          the virtual-to-physical mapping and, if the
                          tenant runs "discovery", the links it found
  delete tenant NAME      delete a tenant
  topology physical       sites, switches, links and gateway tunnels
  health                  the daemon's health (exit 1 if unavailable)
  snapshot create TENANT  snapshot a tenant's switches (flow tables with
                          counters and timeouts, OVSDB config, queues)
  snapshot create --switch DPID|BRIDGE
                          snapshot one switch (every flow entry)
  snapshot list           stored snapshots, oldest first
  snapshot show ID        one snapshot: bridges, ports, queues, flow entries
  snapshot delete ID      delete a snapshot
  snapshot restore ID     rebuild a snapshot's switches (same or fresh OVS)
  flows DPID|BRIDGE       a switch's flow entries with the counters the
                          hypervisor reports (--tenant NAME: its entries)
  migrate SWITCH --to CLOUD [--vm VM] [--lab DIR] [--fail-after STEP]
                          live-migrate a VM bridge (DPID or site/vm) and its
                          hosts to CLOUD, printing each step with its time;
                          --lab DIR moves the hosts in the lab at DIR

Flags (before or after the command):
  --server URL     API base URL (env SKYCTL_SERVER; default ` + defaultServer + `)
  --token TOKEN    bearer token for writes (env SKYCTL_TOKEN)
  --token-file F   read the token from file F instead (env SKYCTL_TOKEN_FILE;
                   keeps it out of the process list and shell history)
  -o FORMAT        output: table (default) or json (the API's JSON)
  --timeout DUR    give up after DUR (default 30s)
  -f FILE          input file for apply
  --switch S       snapshot create: the switch (DPID or bridge name)
  --tenant NAME    flows: only this tenant's entries

Exit status: 0 success, 1 request failed, 2 usage error.
`

// usageError is a command-line mistake: exit 2 with the message and a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// options are the parsed flags.
type options struct {
	server    string
	token     string
	tokenFile string
	output    string
	timeout   time.Duration
	file      string
	switchRef string // --switch, snapshot create (snapshot.go)
	tenant    string // --tenant, flows (snapshot.go)
	to        string // --to, migrate (migrate.go)
	vm        string // --vm, migrate
	lab       string // --lab, migrate
	failAfter string // --fail-after, migrate
}

// run is skyctl without the process: it parses args, calls the API and
// writes to stdout/stderr, returning the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, pos, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	if err == nil {
		err = checkCommand(pos, opts)
	}
	if err != nil {
		fmt.Fprintf(stderr, "skyctl: %v\nRun 'skyctl --help' for usage.\n", err)
		return exitUsage
	}
	client, err := api.NewClient(opts.server, opts.token, &http.Client{})
	if err != nil {
		fmt.Fprintf(stderr, "skyctl: --server: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	c := &cli{client: client, opts: opts, stdin: stdin, stdout: stdout, stderr: stderr}
	if err := c.dispatch(ctx, pos); err != nil {
		c.printError(err)
		return exitFail
	}
	return c.exit
}

// parseArgs parses flags anywhere on the command line (Go's flag package
// stops at the first positional argument, so parsing resumes after each).
func parseArgs(args []string) (options, []string, error) {
	opts := options{
		server:    envOr("SKYCTL_SERVER", defaultServer),
		token:     os.Getenv("SKYCTL_TOKEN"),
		tokenFile: os.Getenv("SKYCTL_TOKEN_FILE"),
		output:    "table",
		timeout:   30 * time.Second,
	}
	fs := flag.NewFlagSet("skyctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.server, "server", opts.server, "")
	fs.StringVar(&opts.token, "token", opts.token, "")
	fs.StringVar(&opts.tokenFile, "token-file", opts.tokenFile, "")
	fs.StringVar(&opts.output, "o", opts.output, "")
	fs.StringVar(&opts.output, "output", opts.output, "")
	fs.DurationVar(&opts.timeout, "timeout", opts.timeout, "")
	fs.StringVar(&opts.file, "f", "", "")
	fs.StringVar(&opts.file, "filename", "", "")
	fs.StringVar(&opts.switchRef, "switch", "", "")
	fs.StringVar(&opts.tenant, "tenant", "", "")
	fs.StringVar(&opts.to, "to", "", "")
	fs.StringVar(&opts.vm, "vm", "", "")
	fs.StringVar(&opts.lab, "lab", "", "")
	fs.StringVar(&opts.failAfter, "fail-after", "", "")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return opts, nil, err
			}
			return opts, nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if opts.output != "table" && opts.output != "json" {
		return opts, nil, usagef("-o %q: want table or json", opts.output)
	}
	if opts.timeout <= 0 {
		return opts, nil, usagef("--timeout %v: must be positive", opts.timeout)
	}
	if opts.tokenFile != "" {
		b, err := os.ReadFile(opts.tokenFile)
		if err != nil {
			return opts, nil, usagef("--token-file: %v", err)
		}
		opts.token = strings.TrimSpace(string(b))
		if opts.token == "" {
			return opts, nil, usagef("--token-file %s: file is empty", opts.tokenFile)
		}
	}
	return opts, pos, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// command is one form of the grammar: its fixed words, then args NAMEs.
type command struct {
	words []string // e.g. {"describe", "tenant"}
	args  int      // further positional arguments
	file  bool     // needs -f
}

// commands is the grammar checkCommand enforces and dispatch relies on.
func commands() []command {
	return []command{
		{words: []string{"apply"}, file: true},
		{words: []string{"get", "tenants"}},
		{words: []string{"get", "tenant"}, args: 1},
		{words: []string{"describe", "tenant"}, args: 1},
		{words: []string{"delete", "tenant"}, args: 1},
		{words: []string{"topology", "physical"}},
		{words: []string{"health"}},
	}
}

// checkCommand validates the positional arguments against the grammar.
func checkCommand(pos []string, opts options) error {
	if len(pos) == 0 {
		return usagef("no command given")
	}
	if pos[0] == "snapshot" || pos[0] == "flows" {
		return checkSnapshot(pos, opts) // snapshot.go
	}
	if pos[0] == "migrate" {
		return checkMigrate(pos, opts) // migrate.go
	}
	if opts.switchRef != "" || opts.tenant != "" {
		return usagef("--switch and --tenant are only for snapshot create and flows")
	}
	var verbMatched bool
	for _, c := range commands() {
		if pos[0] != c.words[0] {
			continue
		}
		verbMatched = true
		if len(pos) < len(c.words) || strings.Join(pos[:len(c.words)], " ") != strings.Join(c.words, " ") {
			continue
		}
		rest := pos[len(c.words):]
		switch {
		case len(rest) < c.args:
			return usagef("%s: missing NAME", strings.Join(c.words, " "))
		case len(rest) > c.args:
			return usagef("%s: unexpected argument %q", strings.Join(c.words, " "), rest[c.args])
		case c.file && opts.file == "":
			return usagef("%s: -f FILE is required (\"-\" for stdin)", strings.Join(c.words, " "))
		case !c.file && opts.file != "":
			return usagef("%s: -f is only for apply", strings.Join(c.words, " "))
		}
		return nil
	}
	if verbMatched {
		var forms []string
		for _, c := range commands() {
			if c.words[0] == pos[0] {
				forms = append(forms, strings.Join(c.words, " "))
			}
		}
		return usagef("unknown command %q (did you mean: %s?)", strings.Join(pos, " "), strings.Join(forms, ", "))
	}
	return usagef("unknown command %q", pos[0])
}

// cli runs one command.
type cli struct {
	client *api.Client
	opts   options
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// exit is the status when the command itself succeeded (health may
	// still report the daemon unavailable).
	exit int
}

// dispatch runs the command pos, already checked by checkCommand.
func (c *cli) dispatch(ctx context.Context, pos []string) error {
	switch pos[0] {
	case "apply":
		return c.apply(ctx)
	case "health":
		return c.health(ctx)
	case "snapshot", "flows":
		return c.snapshot(ctx, pos) // snapshot.go
	case "migrate":
		return c.migrate(ctx, pos) // migrate.go
	}
	switch pos[0] + " " + pos[1] {
	case "get tenants":
		return c.getTenants(ctx)
	case "get tenant":
		return c.getTenant(ctx, pos[2])
	case "describe tenant":
		return c.describeTenant(ctx, pos[2])
	case "delete tenant":
		return c.deleteTenant(ctx, pos[2])
	case "topology physical":
		return c.physical(ctx)
	}
	return usagef("unknown command %q", strings.Join(pos, " "))
}

// fetch GETs path; in json mode it prints the body verbatim and returns
// (false, nil), else it decodes into out and returns (true, nil).
func (c *cli) fetch(ctx context.Context, path string, out any) (bool, error) {
	var raw json.RawMessage
	if err := c.client.Do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return false, err
	}
	if c.opts.output == "json" {
		c.printJSON(raw)
		return false, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, fmt.Errorf("decoding %s: %w", path, err)
	}
	return true, nil
}

func (c *cli) printJSON(raw []byte) {
	raw = []byte(strings.TrimRight(string(raw), "\n"))
	c.stdout.Write(raw)
	io.WriteString(c.stdout, "\n")
}

func (c *cli) apply(ctx context.Context) error {
	var (
		data []byte
		err  error
		name = c.opts.file
	)
	if name == "-" {
		data, err = io.ReadAll(c.stdin)
		name = "stdin"
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return fmt.Errorf("apply: reading %s: %w", name, err)
	}
	var raw json.RawMessage
	if err := c.client.Do(ctx, http.MethodPost, "/v1/tenants", data, &raw); err != nil {
		return fmt.Errorf("apply %s: %w", name, err)
	}
	if c.opts.output == "json" {
		c.printJSON(raw)
		return nil
	}
	var res api.ApplyResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("apply %s: decoding response: %w", name, err)
	}
	for _, st := range res.Tenants {
		fmt.Fprintf(c.stdout, "tenant/%s applied: tenant ID %s, generation %d, %s\n", st.Tenant, st.TenantID, st.Generation, stateText(st))
	}
	return nil
}

func (c *cli) getTenants(ctx context.Context) error {
	var l api.TenantList
	if ok, err := c.fetch(ctx, "/v1/tenants", &l); !ok {
		return err
	}
	if len(l.Tenants) == 0 {
		fmt.Fprintln(c.stdout, "No tenants.")
		return nil
	}
	writeTenantTable(c.stdout, l.Tenants)
	return nil
}

func (c *cli) getTenant(ctx context.Context, name string) error {
	var d api.TenantDetail
	if ok, err := c.fetch(ctx, "/v1/tenants/"+url.PathEscape(name), &d); !ok {
		return err
	}
	writeTenantTable(c.stdout, []api.TenantStatus{d.TenantStatus})
	return nil
}

func (c *cli) describeTenant(ctx context.Context, name string) error {
	var d api.TenantDetail
	if ok, err := c.fetch(ctx, "/v1/tenants/"+url.PathEscape(name), &d); !ok {
		return err
	}
	writeTenantDetail(c.stdout, d)
	return c.writeDiscoveredLinks(ctx, d) // links.go
}

func (c *cli) deleteTenant(ctx context.Context, name string) error {
	if err := c.client.DeleteTenant(ctx, name); err != nil {
		return fmt.Errorf("delete tenant %s: %w", name, err)
	}
	if c.opts.output == "table" {
		fmt.Fprintf(c.stdout, "tenant/%s deleted\n", name)
	}
	return nil
}

func (c *cli) physical(ctx context.Context) error {
	var p api.PhysicalTopology
	if ok, err := c.fetch(ctx, "/v1/topology/physical", &p); !ok {
		return err
	}
	writePhysical(c.stdout, p)
	return nil
}

func (c *cli) health(ctx context.Context) error {
	h, err := c.client.Health(ctx)
	if err != nil {
		return err
	}
	if h.Status != api.HealthOK && h.Status != api.HealthDegraded {
		c.exit = exitFail
	}
	if c.opts.output == "json" {
		b, err := json.MarshalIndent(h, "", "  ")
		if err != nil {
			return err
		}
		c.printJSON(b)
		return nil
	}
	writeHealth(c.stdout, h)
	return nil
}

// printError writes err to stderr: the message, then for API errors every
// detail on its own line as "  <JSON path>: <message>", and a hint for
// authentication failures.
func (c *cli) printError(err error) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		fmt.Fprintf(c.stderr, "skyctl: %v\n", err)
		return
	}
	// The wrapping context ("apply topo.json: ") without the API error's
	// own multi-line text.
	prefix := strings.TrimSuffix(err.Error(), ae.Error())
	msg := ae.ErrorResponse.Error
	if ae.RequestID != "" && ae.StatusCode >= 500 {
		msg += " (request ID " + ae.RequestID + ")"
	}
	fmt.Fprintf(c.stderr, "skyctl: %s%s\n", prefix, msg)
	for _, d := range ae.Details {
		fmt.Fprintf(c.stderr, "  %s: %s\n", d.Path, d.Message)
	}
	if ae.StatusCode == http.StatusUnauthorized {
		fmt.Fprintln(c.stderr, "hint: pass the API token with --token or SKYCTL_TOKEN")
	}
}
