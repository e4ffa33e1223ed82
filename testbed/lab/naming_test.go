package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDPIDScheme(t *testing.T) {
	if GatewayDPID(1) != 0x100 || VMDPID(1, 2) != 0x102 || VMDPID(12, 250) != 0xcfa {
		t.Fatalf("DPIDs %x %x %x", GatewayDPID(1), VMDPID(1, 2), VMDPID(12, 250))
	}
	if DPIDString(0x102) != "0000000000000102" {
		t.Fatalf("DPIDString %q", DPIDString(0x102))
	}
	seen := map[uint64]string{}
	for i := 1; i <= MaxSites; i++ {
		for j := 0; j <= MaxVMs; j++ {
			d := VMDPID(i, j)
			if j == 0 {
				d = GatewayDPID(i)
			}
			key := fmt.Sprintf("%d/%d", i, j)
			if prev, dup := seen[d]; dup {
				t.Fatalf("DPID %x of %s collides with %s", d, key, prev)
			}
			seen[d] = key
		}
	}
}

func TestNamesFitIFNAMSIZ(t *testing.T) {
	longVM := strings.Repeat("v", maxVMName)
	longHost := strings.Repeat("h", maxHostName)
	for _, n := range []string{VMPatch(longVM), GatewayPatch(longVM), HostPort(longHost), WANPeer(MaxSites), WGIface("abcdef", MaxSites), EdgeLANPort, UplinkPort, MgmtPeer(MaxSites), longVM} {
		if len(n) > 15 {
			t.Errorf("interface name %q has %d > 15 characters", n, len(n))
		}
	}
	if SiteNetns("skl", 3) != "skl-s3" || WANNetns("skl") != "skl-wan" || HostNetns("skl", "h1") != "skl-h-h1" || MgmtNetns("skl") != "skl-mgmt" {
		t.Fatal("namespace names changed")
	}
	if OVSDBEndpoint("/tmp/skylab/skl", 2) != "unix:/tmp/skylab/skl/s2/run/db.sock" {
		t.Fatal(OVSDBEndpoint("/tmp/skylab/skl", 2))
	}
	if UnderlayMAC(2).String() != "02:5c:00:00:00:02" {
		t.Fatal(UnderlayMAC(2))
	}
	env := strings.Join(ovsEnv("/x/y", 1), " ")
	if !strings.Contains(env, "OVS_RUNDIR=/x/y/s1/run") || !strings.Contains(env, "OVS_DBDIR=/x/y/s1/db") {
		t.Fatal(env)
	}
}

func TestParseVsctlJSON(t *testing.T) {
	out := `{"data":[["gw",["set",[["uuid","p1"],["uuid","p2"]]],"0000000000000100"]],"headings":["name","ports","datapath_id"]}
{"data":[[["uuid","p1"],["uuid","i1"]],[["uuid","p2"],["uuid","i2"]]],"headings":["_uuid","interfaces"]}
{"data":[[["uuid","i1"],"gw-vm1","patch",1,["map",[["peer","vm1-gw"]]]],[["uuid","i2"],"tun-b","vxlan",["set",[]],["map",[["key","100"],["remote_ip","172.31.0.2"]]]]],"headings":["_uuid","name","type","ofport","options"]}
`
	tables, err := parseVsctlJSON(out)
	if err != nil || len(tables) != 3 {
		t.Fatalf("%d tables, %v", len(tables), err)
	}
	b := tables[0][0]
	if b.str("name") != "gw" || len(b.uuids("ports")) != 2 || b.str("datapath_id") != "0000000000000100" {
		t.Fatalf("bridge row %v", b)
	}
	i1, i2 := tables[2][0], tables[2][1]
	if i1.num("ofport") != 1 || i2.num("ofport") != -1 || i2.smap("options")["remote_ip"] != "172.31.0.2" || i1.uuids("_uuid")[0] != "i1" {
		t.Fatalf("interface rows %v %v", i1, i2)
	}
	if _, err := parseVsctlJSON(`{"data":[[1,2]],"headings":["a"]}`); err == nil {
		t.Fatal("row/heading mismatch accepted")
	}
	if _, err := parseVsctlJSON(`{"data":`); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}

// TestKillOwnedChecksCmdline: a PID whose command line does not name the
// state dir is never signalled; one that does is ended (and reaped).
func TestKillOwnedChecksCmdline(t *testing.T) {
	cmd := exec.Command("sleep", "37.4242")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := killOwned(pid, "/tmp/skylab/not-this/"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("killOwned ended a process whose cmdline does not name the lab")
	}
	if err := killOwned(pid, "37.4242"); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("killOwned left the owned process alive")
	}
	if err := killOwned(pid, "37.4242"); err != nil {
		t.Fatalf("second kill of a gone process: %v", err)
	}
}

// TestDownLeavesForeignDirs: Down of a directory without a lab state file
// removes nothing but its own lock file.
func TestDownLeavesForeignDirs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "notalab")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := DownPrefix(t.Context(), dir, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("Down removed a foreign file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "skylab.lock")); err == nil {
		t.Fatal("lock file left behind")
	}
	if err := DownPrefix(t.Context(), "relative/dir", ""); err == nil {
		t.Fatal("relative state dir accepted")
	}
	if err := DownPrefix(t.Context(), dir, "Bad-Prefix"); err == nil {
		t.Fatal("bad prefix accepted")
	}
	// gone directory: idempotent
	if err := DownPrefix(t.Context(), filepath.Join(dir, "gone"), ""); err != nil {
		t.Fatalf("down of a missing dir: %v", err)
	}
}
