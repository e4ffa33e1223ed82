package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"

	"github.com/skyvisor/skyvisor/testbed/wan"
)

// HostCommand returns a command that runs argv inside host's namespace
// (ip netns exec <prefix>-h-<host> argv...).
func HostCommand(ctx context.Context, stateDir, host string, argv ...string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("exec %s: no command", host)
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	if hostIndex(st, host) < 0 {
		return nil, fmt.Errorf("no host %q in the lab at %s", host, stateDir)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", HostNetns(st.Spec.Prefix, host)}, argv...)...), nil
}

// SiteCommand returns a command that runs argv inside site's namespace with
// OVS_RUNDIR/OVS_DBDIR/OVS_LOGDIR/OVS_SYSCONFDIR of the site, so ovs-vsctl,
// ovs-ofctl and ovs-appctl talk to the site's OVS (never the system's).
func SiteCommand(ctx context.Context, stateDir, site string, argv ...string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("ovs %s: no command", site)
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	i := st.Spec.siteIndex(site)
	if i == 0 {
		return nil, fmt.Errorf("no site %q in the lab at %s", site, stateDir)
	}
	c := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", SiteNetns(st.Spec.Prefix, i)}, argv...)...)
	c.Env = append(os.Environ(), ovsEnv(stateDir, i)...)
	return c, nil
}

// CheckUnderlay pings every other site's tunnel endpoint (its public address,
// or 10.99.<k>.1 through WireGuard) from every
// site namespace (one echo, 2 s timeout each, all pairs in parallel) and
// returns one line per pair ("s1 -> 172.31.0.2: ok 0.1 ms"). The error lists
// the failed pairs.
func CheckUnderlay(ctx context.Context, stateDir string) ([]string, error) {
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	s := &st.Spec
	n := len(s.Sites)
	lines := make([]string, n*n)
	var mu sync.Mutex
	var failed []string
	rtt := regexp.MustCompile(`time=([\d.]+) ms`)
	err = parallel(n*n, func(k int) error {
		i, o := k/n, k%n
		if i == o {
			return nil
		}
		dst := TunnelEndpoint(s, o+1)
		out, err := nsRun(ctx, SiteNetns(s.Prefix, i+1), nil, "ping", "-c", "1", "-W", "2", dst)
		line := fmt.Sprintf("%s -> %s (%s): ", s.Sites[i].Name, s.Sites[o].Name, dst)
		if err != nil {
			line += "FAILED"
			mu.Lock()
			failed = append(failed, s.Sites[i].Name+"->"+s.Sites[o].Name)
			mu.Unlock()
		} else if m := rtt.FindStringSubmatch(out); m != nil {
			line += "ok " + m[1] + " ms"
		} else {
			line += "ok"
		}
		lines[k] = line
		return nil
	})
	var res []string
	for _, l := range lines {
		if l != "" {
			res = append(res, l)
		}
	}
	if err == nil && len(failed) > 0 {
		err = fmt.Errorf("underlay check failed for %v", failed)
	}
	return res, err
}

// RelayArg is the first argument that makes an executable act as the WAN
// relay (Up starts `<os.Executable()> wan-relay ...` when the lab has a delay).
const RelayArg = "wan-relay"

// MaybeRunRelay makes the running binary act as the WAN relay when it was
// started as `<exe> wan-relay ...` (by Up): it runs the relay until SIGTERM
// and exits. Otherwise it returns at once. Call it first in main or in
// TestMain of any binary that calls Up on a lab with a WAN delay (cmd/skylab
// does the same through its hidden subcommand).
func MaybeRunRelay() {
	if len(os.Args) < 2 || os.Args[1] != RelayArg {
		return
	}
	if err := wan.RunCommand(os.Args[2:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wan-relay:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
