package main

import (
	"bytes"
	"context"
	"net"
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
