package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/testbed/ofbench"
)

func TestBadFlagsExit2NamingTheField(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-m", "fast"}, "mode"},
		{[]string{"-s", "0x"}, "invalid value"},
		{[]string{"-M", "1"}, "macs"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-d", "soon"}, "number of milliseconds"},
		{[]string{"-d", "0"}, "want > 0"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, errb.String(), tc.want)
		}
	}
}

func TestUnreachableControllerExit1(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"-c", addr, "-n", "1", "-d", "10ms"}, &out, &errb); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "cannot connect to controller "+addr) {
		t.Errorf("stderr %q", errb.String())
	}
}

func TestOutputAgainstResponder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&ofbench.Responder{}).Serve(ctx, l) }()
	defer func() {
		cancel()
		<-done
	}()
	var out, errb bytes.Buffer
	code := run([]string{"-c", l.Addr().String(), "-s", "2", "-M", "10", "-n", "2", "-w", "1", "-d", "150", "-i", "1ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("stdout has %d lines, want banner, warmup, 2 runs, summary:\n%s", len(lines), out.String())
	}
	runLine := regexp.MustCompile(`^run [12]: 2 switches, \d+ responses/s \(min/max per switch \d+/\d+\), `)
	for _, l := range lines[2:4] {
		if !runLine.MatchString(l) {
			t.Errorf("run line %q", l)
		}
	}
	if !regexp.MustCompile(`^ofbench: mode=latency switches=2 median=\d+ resp/s mean=`).MatchString(lines[4]) {
		t.Errorf("summary line %q", lines[4])
	}
}

func TestFabricFlag(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.json"
	if err := os.WriteFile(bad, []byte(`{"table": 10, "switches": [{"dpid": 0, "ports": [1], "hosts": []}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-fabric", bad}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "switches[0].dpid") {
		t.Errorf("bad fabric: exit %d, stderr %q; want 2 naming switches[0].dpid", code, errb.String())
	}
	good := dir + "/good.json"
	doc := `{"table": 10, "cookie": 0, "ignore_cookie_mask": 18446462598732840960, "ignore_cookie_value": 6005283544718327808,
		"switches": [{"dpid": 7, "ports": [1, 2, 100], "hosts": [
			{"port": 1, "metadata": 1, "src_mac": "02:01:00:00:00:01", "dst_mac": "00:00:00:00:00:01"},
			{"port": 2, "metadata": 2, "src_mac": "02:01:00:00:00:02", "dst_mac": "00:00:00:00:00:02"}]}]}`
	if err := os.WriteFile(good, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&ofbench.Responder{}).Serve(ctx, l) }()
	defer func() {
		cancel()
		<-done
	}()
	out.Reset()
	errb.Reset()
	if code := run([]string{"-c", l.Addr().String(), "-fabric", good, "-n", "1", "-w", "0", "-d", "100"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "1 fabric edge bridges from "+good) ||
		!regexp.MustCompile(`ofbench: mode=latency switches=1 median=[1-9]\d* resp/s .* macs=2 .* fabric=true ignored_flow_mods=0`).MatchString(out.String()) {
		t.Errorf("stdout:\n%s", out.String())
	}
}
