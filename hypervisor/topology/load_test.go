package topology

import (
	"errors"
	"strings"
	"testing"
)

// manyBadHosts is a topology whose hosts array holds n numbers instead of
// objects: n shape errors, and the semantic checks of n empty hosts under them.
func manyBadHosts(n int) []byte {
	return []byte(`{"tenant":"a","switches":[{"name":"s1"}],"hosts":[` +
		strings.TrimSuffix(strings.Repeat("1,", n), ",") + `]}`)
}

// TestLoadSuppressesErrorsUnderShapeErrors checks that a value with a shape
// error (a host that is not an object) gets that one error, not also the
// semantic errors of the empty host it decodes to.
func TestLoadSuppressesErrorsUnderShapeErrors(t *testing.T) {
	_, err := Load(manyBadHosts(3), Infra{})
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Load: %v, want *ValidationError", err)
	}
	for _, fe := range verr.Errors {
		if !strings.HasPrefix(fe.Path, "$.hosts[") || strings.ContainsAny(strings.TrimPrefix(fe.Path, "$.hosts["), ".") {
			t.Errorf("error below a shape error reported: %s: %s", fe.Path, fe.Msg)
		}
	}
	if len(verr.Errors) != 3 {
		t.Errorf("got %d errors, want 3 (one per host): %v", len(verr.Errors), verr)
	}
}

// BenchmarkLoadShapeErrors measures Load on a body with thousands of shape
// errors; it was quadratic in the number of errors before coveredBy.
func BenchmarkLoadShapeErrors(b *testing.B) {
	body := manyBadHosts(4000)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Load(body, Infra{}); err == nil {
			b.Fatal("Load accepted a bad topology")
		}
	}
}
