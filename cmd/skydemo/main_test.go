package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--no-such-flag"}, 2, "flag provided but not defined: -no-such-flag"},
		{[]string{"extra"}, 2, `unexpected arguments ["extra"]`},
		{[]string{"--timeout", "soon"}, 2, "invalid value"},
		{[]string{"-h"}, 0, "-keep"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errb); code != c.code {
			t.Errorf("%q: exit %d, want %d (stderr %s)", c.args, code, c.code, errb.String())
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: stderr %q lacks %q", c.args, errb.String(), c.want)
		}
	}
}
