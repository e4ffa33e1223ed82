package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nolab")
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"status", "--state-dir", dir}, "no lab at " + dir},
		{[]string{"up"}, "want exactly one lab file"},
		{[]string{"up", filepath.Join(dir, "missing.json")}, "read lab file"},
		{[]string{"unplug", "--state-dir", dir}, "want one host name"},
		{[]string{"move", "h1", "--site", "a", "--vm", "v", "--state-dir", dir}, "no lab at"},
		{[]string{"exec", "--state-dir", dir, "h1", "ls"}, "want NAME -- COMMAND"},
		{[]string{"exec", "--state-dir", dir, "h1", "--", "ls"}, "no lab at"},
		{[]string{"ovs", "--state-dir", dir, "aws", "--", "ovs-vsctl", "show"}, "no lab at"},
		{[]string{"plug", "--state-dir", dir, "--host", "h1", "extra"}, "unexpected arguments"},
		{[]string{"status", "--bogus"}, "flag provided but not defined"},
		{[]string{"wan-relay", "only-one-iface"}, "need at least 2"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		err := run(c.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("skylab %v: error %v, want it to contain %q", c.args, err, c.want)
		}
	}
}

func TestDownOfMissingLabIsIdempotent(t *testing.T) {
	var out, errb bytes.Buffer
	dir := filepath.Join(t.TempDir(), "gone")
	if err := run([]string{"down", "--state-dir", dir}, &out, &errb); err != nil {
		t.Fatalf("down of a missing lab: %v", err)
	}
	if !strings.Contains(out.String(), "is down") {
		t.Fatalf("output %q", out.String())
	}
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"help"}, &out, &errb); err != nil || !strings.Contains(out.String(), "skylab up LAB.json") {
		t.Fatalf("help: %v %q", err, out.String())
	}
}
