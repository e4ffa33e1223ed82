package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// WireGuard underlay (Spec.WireGuard), after the tested recipe
// (multisite-ovs.sh --wg): OVS userspace tunnels can only leave through an
// OVS bridge's internal port, and the tunnel endpoint must not be local to
// the namespace holding the WireGuard interface. So each site i gets an edge
// namespace "<prefix>-g<i>" (the cloud's VPN gateway) holding wan0 with the
// public address, lan0 (10.99.<i>.254/24, veth to br-phy's port "uplink") and
// the wireguard-go interface "<prefix>-wg<i>" (172.30.0.<i>/24, MTU 1420).
// br-phy holds the tunnel endpoint 10.99.<i>.1/24 and routes 10.99.0.0/16
// through the edge; each edge routes 10.99.<k>.0/24 of every other site into
// WireGuard, whose peers carry 172.30.0.<k>/32 and 10.99.<k>.0/24.

func wgPidfile(stateDir string, i int) string {
	return filepath.Join(RunDir(stateDir, i), "wireguard-go.pid")
}

func wgKeyfile(stateDir string, i int) string {
	return filepath.Join(siteDir(stateDir, i), "wg.key")
}

// wgMarker is what /proc/PID/cmdline of site i's wireguard-go contains.
func wgMarker(prefix string, i int) string {
	return "wireguard-go\x00-f\x00" + WGIface(prefix, i) + "\x00"
}

// edge wires site i's edge namespace: lan0 <-> uplink veth, addresses and
// wireguard-go with a fresh key. The WAN veth is already in the edge.
func (b *builder) edge(ctx context.Context, i int, bits string) error {
	s := b.s
	edge, ns := EdgeNetns(s.Prefix, i), SiteNetns(s.Prefix, i)
	if _, err := run(ctx, nil, "ip", "-n", edge, "addr", "add", s.Sites[i-1].PublicIP+bits, "dev", WANPort); err != nil {
		return err
	}
	if err := veth(ctx, edge, EdgeLANPort, ns, UplinkPort, EdgeLANMAC(i).String(), 0); err != nil {
		return err
	}
	if _, err := run(ctx, nil, "ip", "-n", edge, "addr", "add", EdgeLANAddr(i)+"/24", "dev", EdgeLANPort); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(siteDir(s.StateDir, i), "log", "wireguard-go.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("wireguard-go log: %w", err)
	}
	defer logf.Close()
	wgIf := WGIface(s.Prefix, i)
	cmd := exec.Command("ip", "netns", "exec", edge, "wireguard-go", "-f", wgIf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start wireguard-go: %w", err)
	}
	if err := os.WriteFile(wgPidfile(s.StateDir, i), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("wireguard-go pid file: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for end := time.Now().Add(10 * time.Second); ; {
		if _, err := run(ctx, nil, "ip", "-n", edge, "link", "show", wgIf); err == nil {
			break
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("wireguard-go exited (%v): %s", err, strings.TrimSpace(string(out)))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(end) {
			return fmt.Errorf("wireguard-go did not create %s within 10 s", wgIf)
		}
	}
	key, err := run(ctx, nil, "wg", "genkey")
	if err != nil {
		return err
	}
	if err := os.WriteFile(wgKeyfile(s.StateDir, i), []byte(key), 0o600); err != nil {
		return fmt.Errorf("wireguard key: %w", err)
	}
	return nil
}

// wgPeers configures every site's WireGuard interface, then its peers, then
// sends one ping over every pair so the handshakes are done before Up returns
// (keys and ports first on all sites: a handshake sent to a peer without a
// key is lost and only retried after 5 s).
func (b *builder) wgPeers(ctx context.Context) error {
	s := b.s
	n := len(s.Sites)
	pubs := make([]string, n+1)
	if err := parallel(n, func(idx int) error {
		i := idx + 1
		edge, wgIf := EdgeNetns(s.Prefix, i), WGIface(s.Prefix, i)
		key, err := os.ReadFile(wgKeyfile(s.StateDir, i))
		if err != nil {
			return fmt.Errorf("wireguard key: %w", err)
		}
		pub := exec.CommandContext(ctx, "wg", "pubkey")
		pub.Stdin = strings.NewReader(string(key))
		out, err := pub.Output()
		if err != nil {
			return fmt.Errorf("wg pubkey: %w", err)
		}
		pubs[i] = strings.TrimSpace(string(out))
		if _, err := nsRun(ctx, edge, nil, "wg", "set", wgIf, "listen-port", strconv.Itoa(WGPort), "private-key", wgKeyfile(s.StateDir, i)); err != nil {
			return err
		}
		if _, err := run(ctx, nil, "ip", "-n", edge, "addr", "add", WGAddr(i)+"/24", "dev", wgIf); err != nil {
			return err
		}
		_, err = run(ctx, nil, "ip", "-n", edge, "link", "set", wgIf, "mtu", "1420", "up")
		return err
	}); err != nil {
		return fmt.Errorf("wireguard: %w", err)
	}
	if err := parallel(n, func(idx int) error {
		i := idx + 1
		edge, wgIf := EdgeNetns(s.Prefix, i), WGIface(s.Prefix, i)
		args := []string{"set", wgIf}
		for k := 1; k <= n; k++ {
			if k == i {
				continue
			}
			args = append(args, "peer", pubs[k], "endpoint", s.Sites[k-1].PublicIP+":"+strconv.Itoa(WGPort),
				"allowed-ips", WGAddr(k)+"/32,10.99."+strconv.Itoa(k)+".0/24")
		}
		if n > 1 {
			if _, err := nsRun(ctx, edge, nil, "wg", args...); err != nil {
				return err
			}
		}
		for k := 1; k <= n; k++ {
			if k == i {
				continue
			}
			if _, err := run(ctx, nil, "ip", "-n", edge, "route", "add", "10.99."+strconv.Itoa(k)+".0/24", "dev", wgIf); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("wireguard peers: %w", err)
	}
	var errs []error
	_ = parallel(n*n, func(k int) error {
		i, o := k/n+1, k%n+1
		if i >= o {
			return nil
		}
		if _, err := nsRun(ctx, EdgeNetns(s.Prefix, i), nil, "ping", "-c", "1", "-w", "8", "-q", WGAddr(o)); err != nil {
			b.mu.Lock()
			errs = append(errs, fmt.Errorf("wireguard handshake %s -> %s: %w", s.Sites[i-1].Name, s.Sites[o-1].Name, err))
			b.mu.Unlock()
		}
		return nil
	})
	return errors.Join(errs...)
}
