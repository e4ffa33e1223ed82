//go:build integration

package mininet

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
)

// TestTwoCloudsWithRelay runs skyvisor_clouds.py with 2 clouds x 2 VM
// switches, ovs-testcontroller as the remote controller and the Go WAN relay
// (5 ms one way) between the gateways: pingAll must lose nothing, the
// cross-cloud RTT must include the relay's delay, and net.stop() must leave
// none of the script's bridges in the system Open vSwitch.
func TestTwoCloudsWithRelay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: Mininet needs root")
	}
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import mininet.net").Run() != nil {
		t.Skip("skipping: Mininet is not installed for /usr/bin/python3 (apt-get install mininet)")
	}
	for _, b := range []string{"ovs-testcontroller", "ovs-vsctl", "ethtool", "go"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("skipping: %s not installed", b)
		}
	}
	if err := exec.Command("ovs-vsctl", "--timeout=3", "show").Run(); err != nil {
		t.Skip("skipping: the system Open vSwitch is not running (Mininet uses it)")
	}
	ovstest.LockMininet(t)
	bin := filepath.Join(t.TempDir(), "skylab")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/skylab").CombinedOutput(); err != nil {
		t.Fatalf("build skylab: %v\n%s", err, out)
	}
	// a free TCP port on loopback for the test controller
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	prefix := "sk" + string(rune('a'+os.Getpid()%26)) + string(rune('a'+os.Getpid()/26%26))
	t.Cleanup(func() {
		// only our own bridges, only if net.stop() did not remove them
		out, _ := exec.Command("ovs-vsctl", "--timeout=5", "list-br").Output()
		for _, br := range strings.Fields(string(out)) {
			if regexp.MustCompile(`^` + prefix + `[0-9]+(g|v[0-9]+)$`).MatchString(br) {
				t.Errorf("bridge %s left in the system OVS; removing it", br)
				_ = exec.Command("ovs-vsctl", "--timeout=5", "--if-exists", "del-br", br).Run()
			}
		}
	})
	cmd := exec.Command(py, "skyvisor_clouds.py", "--clouds", "2", "--vms", "2", "--hosts", "1",
		"--prefix", prefix, "--controller-port", strconv.Itoa(port), "--test-controller",
		"--relay-delay", "5", "--skylab", bin, "--ping", "--wait", "15")
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(150 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("skyvisor_clouds.py timed out:\n%s", out)
	}
	t.Logf("%s", tail(string(out), 12))
	if err != nil {
		t.Fatalf("skyvisor_clouds.py: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Results: 0% dropped") {
		t.Fatalf("pingAll lost packets:\n%s", out)
	}
	m := regexp.MustCompile(`RTT min/avg/max \S+ -> \S+ \(across the WAN\): ([\d.]+)/`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no cross-cloud RTT in output:\n%s", out)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 10 {
		t.Fatalf("cross-cloud min RTT %.2f ms < 2 x 5 ms: the relay delay is missing", v)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
