package runinfo

import (
	"strings"
	"testing"
)

func TestFormatRevision(t *testing.T) {
	for _, c := range []struct {
		rev  string
		mod  bool
		want string
	}{
		{"", false, ""},
		{"", true, ""},
		{"54e19ae0123456789abcdef0123456789abcdef0", false, "54e19ae"},
		{"54e19ae0123456789abcdef0123456789abcdef0", true, "54e19ae-dirty"},
		{"abc", false, "abc"},
	} {
		if got := FormatRevision(c.rev, c.mod); got != c.want {
			t.Errorf("FormatRevision(%q, %v) = %q, want %q", c.rev, c.mod, got, c.want)
		}
	}
}

func TestCommit(t *testing.T) {
	c := Commit()
	if c == "" || strings.ContainsAny(c, " \n,") {
		t.Fatalf("Commit() = %q: want one word", c)
	}
	if Commit() != c {
		t.Fatal("Commit() changed between calls")
	}
}

func TestParseLoadavg(t *testing.T) {
	if v := ParseLoadavg("6.29 3.67 1.80 3/512 1234\n"); v != 6.29 {
		t.Errorf("got %v", v)
	}
	for _, s := range []string{"", "x y"} {
		if v := ParseLoadavg(s); v != -1 {
			t.Errorf("ParseLoadavg(%q) = %v, want -1", s, v)
		}
	}
	if v := Load1(); v < 0 {
		t.Logf("no /proc/loadavg here (%v)", v)
	}
}

func TestColumns(t *testing.T) {
	c := NewColumns([]string{"a", "b", "load1"})
	row := []string{"1", "2", "3.5"}
	if c.Get(row, "b") != "2" || c.Get(row, "commit") != "" || c.Get([]string{"1"}, "load1") != "" {
		t.Fatal("Get")
	}
	if ok, miss := c.HasAll([]string{"a", "commit"}); ok || miss != "commit" {
		t.Fatalf("HasAll = %v %q", ok, miss)
	}
	if ok, _ := c.HasAll([]string{"a", "b"}); !ok {
		t.Fatal("HasAll a, b")
	}
}

func TestJoinCommits(t *testing.T) {
	if got := JoinCommits([]string{"a1", "", "b2", "a1"}); got != "a1+b2" {
		t.Fatalf("got %q", got)
	}
	if got := JoinCommits(nil); got != "" {
		t.Fatalf("got %q", got)
	}
}
