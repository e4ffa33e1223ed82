package topology

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem in a topology document: Path is a JSON path in
// the dotted form "$.hosts[3].port" ("$" is the document root), Msg says what
// is wrong with the value there.
type FieldError struct {
	Path string `json:"path"`
	Msg  string `json:"message"`
}

// Error returns "<path>: <message>".
func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// ValidationError carries every problem found in a document (up to
// MaxErrors), sorted by path (array indices compared as numbers, so
// $.hosts[2] precedes $.hosts[10]).
// Parse, ParseDocument, Validate and Load return it as *ValidationError; use
// errors.As to get at the list (e.g. to return it as JSON from the REST API).
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

// Error lists every problem, one per line after a count.
func (e *ValidationError) Error() string {
	if len(e.Errors) == 1 {
		return "invalid topology: " + e.Errors[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid topology: %d problems:", len(e.Errors))
	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Paths returns the paths of all errors in order (convenient in tests).
func (e *ValidationError) Paths() []string {
	p := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		p[i] = fe.Path
	}
	return p
}

// errList accumulates FieldErrors.
type errList []FieldError

func (l *errList) add(path, format string, args ...any) {
	*l = append(*l, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// MaxErrors is the most FieldErrors one ValidationError lists; beyond it the
// first MaxErrors (by path) are kept and a last entry with path "$" says how
// many more there were.
const MaxErrors = 500

// err returns nil for an empty list, else a sorted *ValidationError.
func (l errList) err() error {
	if len(l) == 0 {
		return nil
	}
	out := append([]FieldError(nil), l...)
	sort.SliceStable(out, func(i, j int) bool {
		if c := comparePaths(out[i].Path, out[j].Path); c != 0 {
			return c < 0
		}
		return out[i].Msg < out[j].Msg
	})
	if len(out) > MaxErrors {
		more := len(out) - MaxErrors
		out = append(out[:MaxErrors:MaxErrors], FieldError{Path: "$", Msg: fmt.Sprintf("%d more problems not listed", more)})
	}
	return &ValidationError{Errors: out}
}

// comparePaths orders JSON paths with runs of digits compared numerically.
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) - len(nb)
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
