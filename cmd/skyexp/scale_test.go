package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScaleDryRunAndFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"scale", "-n"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"variant 8x4-s1: 8 clouds x 4 VMs, 1000 tenants x 10 hosts (1 switches); apply 100 hosts (1 switches) x 5 runs",
		"variant 16x4-s2: 16 clouds x 4 VMs",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--clouds", "8,x"}, `--clouds: "x" is not an integer`},
		{[]string{"--switches", "0"}, "switches per tenant 0"},
		{[]string{"--clouds", "0"}, "clouds 0"},
		{[]string{"--runs", "0"}, "--runs"},
		{[]string{"--apply-hosts", "2", "--apply-switches", "3"}, "want 1 <= switches <= hosts"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var errb bytes.Buffer
		if code := run(append([]string{"scale"}, c.args...), &bytes.Buffer{}, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errb.String(), c.want)
		}
	}
}

func TestScaleSmallRunWritesCSV(t *testing.T) {
	csvPath := filepath.Join(t.TempDir(), "sub", "scale.csv")
	var out, errb bytes.Buffer
	code := run([]string{"scale", "--clouds", "2", "--vms", "2", "--tenants", "4", "--hosts", "3", "--switches", "1,2",
		"--apply-hosts", "5", "--runs", "2", "--out", csvPath}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errb.String(), out.String())
	}
	for _, want := range []string{"scale 2x2-s2: apply run 2/2", "| figure | 2x2-s1 | 2x2-s2 |", "scale: wrote " + csvPath} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "variant,clouds,vms_per_cloud,") || !strings.Contains(string(b), "2x2-s2,2,2,4,3,2,apply_total_median_ms,") {
		t.Fatalf("csv:\n%s", b)
	}
}
