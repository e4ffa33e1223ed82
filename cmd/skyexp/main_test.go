package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "skyexp setuptime") {
		t.Fatalf("no args: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"cbench"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown experiment "cbench"`) {
		t.Fatalf("unknown: %d %q", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "setuptime") {
		t.Fatalf("help: %d %q", code, out.String())
	}
}

func TestSetupTimeDryRun(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"setuptime", "-n"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "sites=2,3,4,6,8,12,16 vms/site=2 modes=mst,mesh runs=3 delay=0ms tunnel=vxlan: 42 labs") {
		t.Fatalf("%d\n%s\n%s", code, out.String(), errb.String())
	}
	out.Reset()
	code = run([]string{"setuptime", "-n", "--full", "--modes", "mesh", "--tunnel", "geneve", "--delay", "2"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "sites=2,4,6,8,10,12,14,16 vms/site=4 modes=mesh runs=5 delay=2ms tunnel=geneve: 40 labs") {
		t.Fatalf("%d\n%s\n%s", code, out.String(), errb.String())
	}
}

func TestSetupTimeFlags(t *testing.T) {
	f, err := parseSetupTime([]string{"--sites", "2,5", "--vms", "3", "--runs", "2", "--out", "", "--prefix", "skz"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.cfg.Sites, []int{2, 5}) || f.cfg.VMs != 3 || f.cfg.Runs != 2 || f.out != "" || f.cfg.Prefix != "skz" ||
		f.plot != "docs/results/setuptime.png" {
		t.Fatalf("%+v", f)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sites", "2,x"}, `--sites: "x" is not an integer`},
		{[]string{"--sites", "4,2"}, "ascending"},
		{[]string{"--modes", "ring"}, `--modes: mode "ring"`},
		{[]string{"--vms", "5"}, "more than 64"},
		{[]string{"--tunnel", "ipsec"}, "tunnel:"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var errb bytes.Buffer
		if code := run(append([]string{"setuptime"}, c.args...), &bytes.Buffer{}, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errb.String(), c.want)
		}
	}
}
