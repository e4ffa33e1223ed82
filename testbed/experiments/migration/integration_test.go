//go:build integration

package migration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// TestMain lets the test binary act as the lab's WAN delay relay.
func TestMain(m *testing.M) {
	lab.MaybeRunRelay()
	os.Exit(m.Run())
}

// TestRunSmallest runs the experiment end to end at its smallest size
// with a WAN delay (10 ms; the relay is this test binary): one bridge with
// one host and 20 synthetic tenant entries migrates to gcp and back; both
// migrations succeed, clone the 20 entries plus the app's, lose few pings
// and leave no namespace of the prefix behind.
func TestRunSmallest(t *testing.T) {
	if why := ovstest.Available(); why != "" {
		t.Skip("skipping: " + why)
	}
	for _, b := range []string{"ping", "ethtool", "ovs-ofctl"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install openvswitch-switch ethtool)", b)
		}
	}
	var progress bytes.Buffer
	cfg := Config{Prefix: fmt.Sprintf("skmt%02d", os.Getpid()%100), DelaysMS: []int{10}, Flows: []int{20}, Hosts: []int{1},
		PingCount: 150, Progress: &progress}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rows, err := Run(ctx, cfg)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Direction != "out" || rows[1].Direction != "back" {
		t.Fatalf("rows: %+v", rows)
	}
	for _, r := range rows {
		if r.Err != "" || r.TotalMS <= 0 || r.Cloned < 20 || r.Frozen < 20 || r.PingSent != 150 || r.PingLost > 50 {
			t.Errorf("row: %+v", r)
		}
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, rows); err != nil || strings.Count(b.String(), "\n") != 3 {
		t.Errorf("csv: %v\n%s", err, b.String())
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), cfg.Prefix+"-") {
		t.Errorf("namespaces left:\n%s", out)
	}
}
