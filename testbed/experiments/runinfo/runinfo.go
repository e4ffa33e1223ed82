// Package runinfo records where and under what load an experiment's
// figures were measured: the commit of the code that measured them and
// the machine's 1-minute load average. Every skyexp CSV carries both
// (columns "commit" and "load1"), so a figure can be traced to a run.
package runinfo

import (
	"context"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Unknown is the commit recorded when neither the build information nor
// git can tell it.
const Unknown = "unknown"

var (
	commitOnce sync.Once
	commit     string
)

// Commit returns the commit of the code running, as `git describe
// --always --dirty` prints it ("54e19ae", or "54e19ae-dirty" when the
// tree had uncommitted changes): from the binary's build information
// (vcs.revision and vcs.modified, stamped by `go build` in a git
// checkout), else from `git describe --always --dirty` in the current
// directory (`go run`, `go test`), else Unknown. Computed once.
func Commit() string {
	commitOnce.Do(func() {
		commit = fromBuildInfo()
		if commit == "" {
			commit = fromGit()
		}
		if commit == "" {
			commit = Unknown
		}
	})
	return commit
}

func fromBuildInfo() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return FormatRevision(rev, modified)
}

// FormatRevision shortens a full revision to git describe's 7 digits and
// appends "-dirty" when the tree was modified; "" for no revision.
func FormatRevision(rev string, modified bool) string {
	if rev == "" {
		return ""
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if modified {
		rev += "-dirty"
	}
	return rev
}

func fromGit() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Load1 returns the 1-minute load average from /proc/loadavg (proc(5)),
// -1 if it cannot be read.
func Load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	return ParseLoadavg(string(b))
}

// ParseLoadavg returns the first field of /proc/loadavg's content, -1 if
// it is not a number.
func ParseLoadavg(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// Columns maps a CSV header to the index of each column name, for readers
// that accept files written before a column was added.
type Columns map[string]int

// NewColumns indexes header.
func NewColumns(header []string) Columns {
	c := make(Columns, len(header))
	for i, h := range header {
		c[h] = i
	}
	return c
}

// Get returns row's value in column name, "" when the header has no such
// column (an older file) or the row is short.
func (c Columns) Get(row []string, name string) string {
	i, ok := c[name]
	if !ok || i >= len(row) {
		return ""
	}
	return row[i]
}

// HasAll reports whether every name is a column, and the first missing one.
func (c Columns) HasAll(names []string) (bool, string) {
	for _, n := range names {
		if _, ok := c[n]; !ok {
			return false, n
		}
	}
	return true, ""
}

// JoinCommits returns the distinct non-empty commits in first-seen order,
// joined by "+": the commit column of a summary row over measurements
// (normally one commit; several when files of different runs were merged).
func JoinCommits(commits []string) string {
	var out []string
	for _, c := range commits {
		if c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return strings.Join(out, "+")
}
