package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestMigrationFlags: bad sizes are usage errors (exit 2) naming the
// flag, before any lab is built; -h exits 0.
func TestMigrationFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"migration", "-flows", "x"}, 2, "-flows"},
		{[]string{"migration", "-hosts", "9"}, 2, "hosts 9"},
		{[]string{"migration", "-delays", "-5"}, 2, "delay -5"},
		{[]string{"migration", "-prefix", "Bad"}, 2, "prefix"},
		{[]string{"migration", "-nope"}, 2, "not defined"},
		{[]string{"migration", "-h"}, 0, "-full"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != c.code || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%v: exit %d (want %d)\n%s%s", c.args, code, c.code, out.String(), errb.String())
		}
	}
	if v, err := ints("1, 2,4"); err != nil || len(v) != 3 || v[1] != 2 {
		t.Errorf("ints: %v %v", v, err)
	}
}
