package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// run executes name with args (extra environment env appended to ours) and
// returns its standard output. Errors carry the command line and its stderr.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// nsRun runs a command inside network namespace ns (ip netns exec).
func nsRun(ctx context.Context, ns string, env []string, name string, args ...string) (string, error) {
	return run(ctx, env, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// vsctl runs ovs-vsctl against site i's database (never the system OVS).
func vsctl(ctx context.Context, stateDir string, i int, args ...string) (string, error) {
	a := append([]string{"--db=" + OVSDBEndpoint(stateDir, i), "--timeout=20"}, args...)
	return run(ctx, ovsEnv(stateDir, i), "ovs-vsctl", a...)
}

// appctl runs ovs-appctl against site i's ovs-vswitchd.
func appctl(ctx context.Context, stateDir string, i int, args ...string) (string, error) {
	return run(ctx, ovsEnv(stateDir, i), "ovs-appctl", append([]string{"--timeout=10"}, args...)...)
}

// ovsTable is one table of `ovs-vsctl --format=json list ...` output.
type ovsTable struct {
	Headings []string            `json:"headings"`
	Data     [][]json.RawMessage `json:"data"`
}

// ovsRow maps column name to its raw OVSDB JSON value (RFC 7047 section 5.1 notation).
type ovsRow map[string]json.RawMessage

// parseVsctlJSON splits the output of one ovs-vsctl call with several
// `--format=json list` commands into tables of rows.
func parseVsctlJSON(out string) ([][]ovsRow, error) {
	dec := json.NewDecoder(strings.NewReader(out))
	var tables [][]ovsRow
	for dec.More() {
		var t ovsTable
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("parse ovs-vsctl json: %w", err)
		}
		rows := make([]ovsRow, 0, len(t.Data))
		for _, d := range t.Data {
			if len(d) != len(t.Headings) {
				return nil, fmt.Errorf("parse ovs-vsctl json: row has %d values for %d headings", len(d), len(t.Headings))
			}
			r := ovsRow{}
			for k, h := range t.Headings {
				r[h] = d[k]
			}
			rows = append(rows, r)
		}
		tables = append(tables, rows)
	}
	return tables, nil
}

// atoms returns the members of an OVSDB value: a set ["set",[...]] gives its
// members, any other value (atom or ["uuid",...]) gives itself.
func atoms(v json.RawMessage) []json.RawMessage {
	var arr []json.RawMessage
	if json.Unmarshal(v, &arr) == nil && len(arr) == 2 {
		var tag string
		if json.Unmarshal(arr[0], &tag) == nil && tag == "set" {
			var members []json.RawMessage
			_ = json.Unmarshal(arr[1], &members)
			return members
		}
	}
	return []json.RawMessage{v}
}

// str returns a string atom (or the single member of a set), "" otherwise.
func (r ovsRow) str(col string) string {
	for _, a := range atoms(r[col]) {
		var s string
		if json.Unmarshal(a, &s) == nil {
			return s
		}
	}
	return ""
}

// num returns an integer atom (or the single member of a set), -1 when empty.
func (r ovsRow) num(col string) int64 {
	for _, a := range atoms(r[col]) {
		var n int64
		if json.Unmarshal(a, &n) == nil {
			return n
		}
	}
	return -1
}

// uuids returns the UUIDs of a uuid or set-of-uuid column (also _uuid).
func (r ovsRow) uuids(col string) []string {
	var out []string
	for _, a := range atoms(r[col]) {
		var pair []string
		if json.Unmarshal(a, &pair) == nil && len(pair) == 2 && pair[0] == "uuid" {
			out = append(out, pair[1])
		}
	}
	return out
}

// smap returns a map column ["map",[[k,v],...]] with string values.
func (r ovsRow) smap(col string) map[string]string {
	var arr []json.RawMessage
	out := map[string]string{}
	if json.Unmarshal(r[col], &arr) != nil || len(arr) != 2 {
		return out
	}
	var pairs [][2]json.RawMessage
	if json.Unmarshal(arr[1], &pairs) != nil {
		return out
	}
	for _, p := range pairs {
		var k, v string
		if json.Unmarshal(p[0], &k) != nil {
			continue
		}
		if json.Unmarshal(p[1], &v) != nil {
			var n int64
			if json.Unmarshal(p[1], &n) == nil {
				v = strconv.FormatInt(n, 10)
			}
		}
		out[k] = v
	}
	return out
}
