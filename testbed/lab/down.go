package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Down removes the lab at stateDir: it ends the processes named by the pid
// files under stateDir (the WAN relay, every site's ovs-vswitchd and
// ovsdb-server) — only if /proc/PID/cmdline still names stateDir, so a reused
// PID is never killed —, deletes every namespace of the lab's prefix (found
// by name, so leftovers of a crashed Up are found too; processes still inside
// them are ended) and removes stateDir. It removes nothing else, is
// idempotent (no lab = nil) and works on a half-built lab. The prefix comes
// from the state file; see DownPrefix when that is gone.
func Down(ctx context.Context, stateDir string) error {
	return DownPrefix(ctx, stateDir, "")
}

// DownPrefix is Down with a fallback prefix, used only when the state file is
// missing or unreadable (the state file's prefix wins). With neither, only
// the processes named by stateDir's pid files and stateDir are removed.
func DownPrefix(ctx context.Context, stateDir, prefix string) error {
	if err := checkStateDir(stateDir); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if prefix != "" && !prefixRE.MatchString(prefix) {
		return fmt.Errorf("prefix %q must match [a-z][a-z0-9]{0,5}", prefix)
	}
	if _, err := os.Stat(stateDir); err == nil {
		unlock, err := lockDir(stateDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	return down(ctx, stateDir, prefix, nil)
}

// down does the work of Down; the caller holds the lock (if the dir exists).
// only == nil: delete every namespace of the prefix; otherwise exactly the
// namespaces in only (a failed Up removes just what it made, so a concurrent
// lab that raced it for the same prefix keeps its namespaces).
func down(ctx context.Context, stateDir, prefix string, only []string) error {
	st, stErr := loadState(stateDir)
	if st != nil {
		prefix = st.Spec.Prefix // the state file wins over the caller's guess
	}
	var errs []error
	// 1. processes recorded in pid files, relay first, ovsdb-server last
	marker := stateDir + "/"
	vsw, _ := filepath.Glob(filepath.Join(stateDir, "s*", "run", "ovs-vswitchd.pid"))
	db, _ := filepath.Glob(filepath.Join(stateDir, "s*", "run", "ovsdb-server.pid"))
	wg, _ := filepath.Glob(filepath.Join(stateDir, "s*", "run", "wireguard-go.pid"))
	for _, group := range [][]string{{relayPidfile(stateDir)}, wg, vsw, db} {
		if err := parallel(len(group), func(k int) error {
			mark := marker
			if filepath.Base(group[k]) == "wireguard-go.pid" {
				// its command line names its interface, not the state dir
				i, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(filepath.Dir(group[k]))), "s"))
				if err != nil || prefix == "" {
					return nil // found and ended below, by its namespace
				}
				mark = wgMarker(prefix, i)
			}
			if pid := readPID(group[k]); pid > 0 {
				if err := killOwned(pid, mark); err != nil {
					return fmt.Errorf("%s: %w", group[k], err)
				}
			}
			return nil
		}); err != nil {
			errs = append(errs, err)
		}
	}
	// 2. namespaces of the prefix (or exactly those in only)
	names := only
	if only == nil && prefix != "" {
		var err error
		if names, err = labNetns(ctx, prefix); err != nil {
			errs = append(errs, err)
		}
	}
	if err := parallel(len(names), func(k int) error { return delNetns(ctx, names[k]) }); err != nil {
		errs = append(errs, err)
	}
	// wireguard-go's UAPI sockets left by a killed wireguard-go (one per edge namespace)
	if prefix != "" {
		edge := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-g([0-9]+)$`)
		if only == nil {
			socks, _ := filepath.Glob("/var/run/wireguard/" + prefix + "-wg*.sock")
			re := regexp.MustCompile(`/` + regexp.QuoteMeta(prefix) + `-wg[0-9]+\.sock$`)
			for _, f := range socks {
				if re.MatchString(f) {
					_ = os.Remove(f)
				}
			}
		}
		for _, n := range only {
			if m := edge.FindStringSubmatch(n); m != nil {
				_ = os.Remove("/var/run/wireguard/" + prefix + "-wg" + m[1] + ".sock")
			}
		}
	}
	// 3. the state directory, only if it is the lab's (state file present)
	if _, err := os.Stat(stateDir); err == nil {
		switch {
		case st != nil || !errors.Is(stErr, fs.ErrNotExist):
			// state file present (even if unreadable): the directory is ours
			if err := os.RemoveAll(stateDir); err != nil {
				errs = append(errs, fmt.Errorf("remove state dir: %w", err))
			}
			if filepath.Dir(stateDir) == DefaultStateRoot {
				_ = os.Remove(DefaultStateRoot) // only if no other lab is in it
			}
		default:
			// no state file: remove only the lock file and the dir if then empty
			_ = os.Remove(filepath.Join(stateDir, "skylab.lock"))
			_ = os.Remove(stateDir)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab down: %w", errors.Join(errs...))
	}
	return nil
}

// labNetns lists the existing namespaces that belong to prefix:
// <prefix>-wan, <prefix>-mgmt, <prefix>-s<N>, <prefix>-g<N>, <prefix>-h-<host>.
func labNetns(_ context.Context, prefix string) ([]string, error) {
	// read /run/netns (where `ip netns add` mounts them) instead of parsing
	// `ip netns list`, which prints errors while other namespaces vanish
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-(wan|mgmt|s[0-9]+|g[0-9]+|h-[a-z0-9][a-z0-9-]*)$`)
	var names []string
	for _, e := range ents {
		if re.MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// delNetns ends the processes left inside namespace ns and deletes it (which
// deletes its veths). A missing namespace is not an error.
func delNetns(ctx context.Context, ns string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	out, _ := run(ctx, nil, "ip", "netns", "pids", ns)
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = killPID(pid)
		}
	}
	if _, err := run(ctx, nil, "ip", "netns", "del", ns); err != nil {
		if _, serr := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(serr, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// killOwned ends pid only if its command line contains marker (the state
// directory), so a PID reused by an unrelated process is left alone.
func killOwned(pid int, marker string) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(b, []byte(marker)) {
		return nil // gone, a zombie (empty cmdline) or not ours
	}
	return killPID(pid)
}

// killPID sends SIGTERM, waits up to 3 s, then SIGKILL and waits up to 2 s.
// Zombies count as ended (orphans are reaped late by PID 1); our own
// children are reaped.
func killPID(pid int) error {
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		if err := unix.Kill(pid, sig); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return nil
			}
			return fmt.Errorf("kill %d: %w", pid, err)
		}
		wait := 3 * time.Second
		if sig == unix.SIGKILL {
			wait = 2 * time.Second
		}
		for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if !alive(pid) {
				return nil
			}
		}
	}
	return fmt.Errorf("process %d survived SIGKILL", pid)
}

// alive reports whether pid exists and is not a zombie (/proc/PID/stat state).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	k := bytes.LastIndexByte(b, ')')
	if k < 0 || k+2 >= len(b) {
		return false
	}
	return b[k+2] != 'Z' && b[k+2] != 'X'
}
