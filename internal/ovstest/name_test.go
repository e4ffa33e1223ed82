package ovstest

import "testing"

func TestCheckName(t *testing.T) {
	for _, bad := range []string{"", "sko-this-is-too-long", "sko/x", "-sko", "_sko", "sko x", "sko.x"} {
		if err := checkName(bad); err == nil {
			t.Errorf("checkName(%q) accepted", bad)
		}
	}
	for _, good := range []string{"sko-ok", "s", "sko_1-A", "abcdefghijkl"} {
		if err := checkName(good); err != nil {
			t.Errorf("checkName(%q): %v", good, err)
		}
	}
}

func TestAvailableReason(t *testing.T) {
	// Whatever the machine, the answer is "" or a reason naming ovstest.
	if why := Available(); why != "" && why[:8] != "ovstest:" {
		t.Fatalf("Available() = %q", why)
	}
}
