package topology

import (
	"strings"
	"testing"
)

// TestValidateUnknownApp: with a known app list, an unknown app name is
// refused at its JSON path and names the known apps; without one (nil)
// only the syntax is checked.
func TestValidateUnknownApp(t *testing.T) {
	tp := valid()
	tp.Apps = []string{"learning", "discovry", "discovery"}
	inf := testInfra()
	inf.Apps = []string{"discovery", "learning", "learning-reactive"}
	fes := fieldErrors(t, Validate(tp, inf))
	if len(fes) != 1 || fes[0].Path != "$.apps[1]" || !strings.Contains(fes[0].Msg, `unknown app "discovry"`) ||
		!strings.Contains(fes[0].Msg, "learning-reactive") {
		t.Fatalf("errors %v, want one at $.apps[1] naming the known apps", fes)
	}
	if err := Validate(tp, testInfra()); err != nil {
		t.Fatalf("without a known app list: %v", err)
	}
}
