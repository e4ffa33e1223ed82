package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor"
)

// decodeHypervisor decodes the hypervisor section of s.
func decodeHypervisor(t *testing.T, s *settings) (hypervisor.DaemonConfig, error) {
	t.Helper()
	cfg := hypervisor.DefaultDaemonConfig()
	err := s.appOptions(s.newLogger(&bytes.Buffer{}))(hypervisor.AppName).Decode(&cfg)
	return cfg, err
}

// TestHypervisorLivenessSection: the hypervisor.liveness subsection comes
// from flags (defaults: the LivenessConfig defaults), the environment and
// the config file, decodes into DaemonConfig.Liveness, and unknown keys
// in it are errors.
func TestHypervisorLivenessSection(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--apps", "hypervisor", "--infra", testInfra, "--state-dir", dir}
	s, err := loadReg(t, base...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := decodeHypervisor(t, s)
	if err != nil {
		t.Fatal(err)
	}
	want := hypervisor.DaemonLiveness{BFDMinRx: hypervisor.DefaultBFDMinRx, BFDMinTx: hypervisor.DefaultBFDMinTx, BFDMult: hypervisor.DefaultBFDMult}
	if cfg.Liveness != want {
		t.Fatalf("default liveness %+v, want %+v", cfg.Liveness, want)
	}

	s, err = loadReg(t, append(base, "--bfd-min-rx", "200ms", "--bfd-min-tx", "300ms", "--bfd-mult", "5", "--no-bfd")...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = decodeHypervisor(t, s); err != nil {
		t.Fatal(err)
	}
	want = hypervisor.DaemonLiveness{Disabled: true, BFDMinRx: 200 * time.Millisecond, BFDMinTx: 300 * time.Millisecond, BFDMult: 5}
	if cfg.Liveness != want {
		t.Fatalf("flags: liveness %+v, want %+v", cfg.Liveness, want)
	}

	// The file section, overridden by the environment, overridden by a flag.
	file := filepath.Join(dir, "sky.yaml")
	os.WriteFile(file, []byte("apps: [hypervisor]\nhypervisor:\n  infra: "+testInfra+"\n  liveness:\n"+
		"    bfd_min_rx: 300ms\n    bfd_min_tx: 400ms\n    bfd_mult: 4\n    disabled: false\n"+
		"    down_updates: 3\n    down_after: 2s\n    up_after: 3s\n    setup_grace: 20s\n    reset_grace: 6s\n"), 0o600)
	t.Setenv("SKYVISOR_HYPERVISOR_LIVENESS_BFD_MIN_TX", "250ms")
	s, err = loadReg(t, "--config", file, "--state-dir", dir, "--bfd-mult", "6")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = decodeHypervisor(t, s); err != nil {
		t.Fatal(err)
	}
	want = hypervisor.DaemonLiveness{BFDMinRx: 300 * time.Millisecond, BFDMinTx: 250 * time.Millisecond, BFDMult: 6,
		DownUpdates: 3, DownAfter: 2 * time.Second, UpAfter: 3 * time.Second, SetupGrace: 20 * time.Second, ResetGrace: 6 * time.Second}
	if cfg.Liveness != want {
		t.Fatalf("file: liveness %+v, want %+v", cfg.Liveness, want)
	}
	lc, err := cfg.Liveness.Config()
	if err != nil || lc.BFD.MinRx != 300*time.Millisecond || lc.BFD.MinTx != 250*time.Millisecond || lc.BFD.Mult != 6 ||
		lc.DownUpdates != 3 || lc.DownAfter != 2*time.Second || lc.UpAfter != 3*time.Second ||
		lc.SetupGrace != 20*time.Second || lc.ResetGrace != 6*time.Second || lc.Disabled {
		t.Fatalf("LivenessConfig %+v, %v", lc, err)
	}
	t.Setenv("SKYVISOR_HYPERVISOR_LIVENESS_BFD_MIN_TX", "")

	// JSON works the same.
	jfile := filepath.Join(dir, "sky.json")
	os.WriteFile(jfile, []byte(`{"apps": ["hypervisor"], "hypervisor": {"infra": "`+testInfra+`", "liveness": {"disabled": true, "bfd_mult": 9}}}`), 0o600)
	s, err = loadReg(t, "--config", jfile, "--state-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = decodeHypervisor(t, s); err != nil {
		t.Fatal(err)
	}
	if !cfg.Liveness.Disabled || cfg.Liveness.BFDMult != 9 || cfg.Liveness.BFDMinRx != hypervisor.DefaultBFDMinRx {
		t.Fatalf("json: liveness %+v", cfg.Liveness)
	}

	// An unknown key inside the subsection.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apps: [hypervisor]\nhypervisor:\n  infra: "+testInfra+"\n  liveness:\n    bfd_min_rxx: 1s\n"), 0o600)
	s, err = loadReg(t, "--config", bad, "--state-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = decodeHypervisor(t, s); err == nil || !strings.Contains(err.Error(), "bfd_min_rxx") {
		t.Fatalf("unknown liveness key: err %v", err)
	}
}

// TestHypervisorLivenessErrors: out-of-range BFD settings stop the daemon
// before it serves, with an error naming the key.
func TestHypervisorLivenessErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bfd-mult", "300"}, "liveness (bfd_min_rx, bfd_min_tx, bfd_mult)"},
		{[]string{"--bfd-min-rx", "100us"}, "min_rx"},
		{[]string{"--bfd-min-tx", "-1s"}, "min_tx"},
	} {
		args := append([]string{"--apps", "hypervisor", "--infra", testInfra, "--state-dir", dir, "--listen", "127.0.0.1:0", "--api-listen", ""}, c.args...)
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.args, err, c.want)
		}
	}
}
