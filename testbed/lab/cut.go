package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// The WAN cut: a failure of the underlay path between two sites only
// (both sites keep reaching every other one), for tests of tunnel
// liveness. In a bridge-mode WAN it is an nftables table in the WAN
// namespace ("bridge skylab_cut", a forward-hook chain dropping IPv4
// frames whose (source, destination) is in the set "pairs"); `skylab down`
// removes it with the namespace.
const (
	cutTable = "skylab_cut"
	cutSet   = "pairs"
)

// CutWAN makes the lab's WAN drop every IPv4 packet between the public
// addresses of sites a and b, both directions (ARP still passes: the path
// fails at the IP layer, as when a provider's route breaks). Tunnels
// between a and b stop carrying anything; their traffic with the other
// sites is untouched. It is idempotent. Only a bridge-mode WAN (no delay,
// no loss) supports it; a relay-mode WAN is refused. Undo with
// RestoreWAN.
func CutWAN(ctx context.Context, stateDir, a, b string) error {
	ns, pa, pb, err := cutArgs(stateDir, a, b)
	if err != nil {
		return err
	}
	script := fmt.Sprintf(`add table bridge %[1]s
add set bridge %[1]s %[2]s { type ipv4_addr . ipv4_addr; }
add chain bridge %[1]s wancut { type filter hook forward priority 0; policy accept; }
flush chain bridge %[1]s wancut
add rule bridge %[1]s wancut ip saddr . ip daddr @%[2]s drop
add element bridge %[1]s %[2]s { %[3]s . %[4]s, %[4]s . %[3]s }
`, cutTable, cutSet, pa, pb)
	if err := nft(ctx, ns, script); err != nil {
		return fmt.Errorf("lab: cut WAN %s~%s: %w", a, b, err)
	}
	return nil
}

// RestoreWAN undoes CutWAN for sites a and b (nothing to undo is not an
// error).
func RestoreWAN(ctx context.Context, stateDir, a, b string) error {
	ns, pa, pb, err := cutArgs(stateDir, a, b)
	if err != nil {
		return err
	}
	out, err := nsRun(ctx, ns, nil, "nft", "list", "set", "bridge", cutTable, cutSet)
	if err != nil {
		if strings.Contains(err.Error(), "No such file") {
			return nil // never cut
		}
		return fmt.Errorf("lab: restore WAN %s~%s: %w", a, b, err)
	}
	for _, el := range [][2]netip.Addr{{pa, pb}, {pb, pa}} {
		if !strings.Contains(out, el[0].String()+" . "+el[1].String()) {
			continue
		}
		script := fmt.Sprintf("delete element bridge %s %s { %s . %s }\n", cutTable, cutSet, el[0], el[1])
		if err := nft(ctx, ns, script); err != nil {
			return fmt.Errorf("lab: restore WAN %s~%s: %w", a, b, err)
		}
	}
	return nil
}

// cutArgs returns the WAN namespace and the public addresses of a and b.
func cutArgs(stateDir, a, b string) (string, netip.Addr, netip.Addr, error) {
	st, err := loadState(stateDir)
	if err != nil {
		return "", netip.Addr{}, netip.Addr{}, err
	}
	s := &st.Spec
	if s.UsesRelay() {
		return "", netip.Addr{}, netip.Addr{}, fmt.Errorf("lab: WAN cut %s~%s: the WAN is the delay relay; only a bridge-mode WAN (no delay, loss or pair rate) can be cut", a, b)
	}
	if a == b {
		return "", netip.Addr{}, netip.Addr{}, fmt.Errorf("lab: WAN cut: %s twice", a)
	}
	var addrs []netip.Addr
	for _, name := range []string{a, b} {
		i := s.siteIndex(name)
		if i == 0 {
			return "", netip.Addr{}, netip.Addr{}, fmt.Errorf("lab: WAN cut: no site %q in the lab at %s", name, stateDir)
		}
		p, err := netip.ParseAddr(s.Sites[i-1].PublicIP)
		if err != nil || !p.Is4() {
			return "", netip.Addr{}, netip.Addr{}, fmt.Errorf("lab: WAN cut: site %s: public address %q is not IPv4", name, s.Sites[i-1].PublicIP)
		}
		addrs = append(addrs, p)
	}
	return WANNetns(s.Prefix), addrs[0], addrs[1], nil
}

// nft runs an nft script (nft -f -) in namespace ns.
func nft(ctx context.Context, ns, script string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f - in %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}
