package lab

import (
	"context"
	"fmt"
	"strconv"
)

// The direct WAN ports (opt-in, Options.DirectWAN) give every site's
// gateway bridge a plain Ethernet port straight into the lab's WAN, next
// to the tunnels: frames sent out of it cross the WAN as they are (no
// encapsulation, MTU 1500), through the same Linux bridge (WAN delay 0)
// or the same delay relay process (WAN delay > 0, same default and
// per-pair delays and per-pair rate limits as the sites' WAN ports; the
// per-site tc rate limits are not applied) as the tunnel traffic. The data-plane
// experiment (testbed/experiments/dataplane) uses them for its "direct"
// (not virtualized, not tunnelled) baseline. Nothing in the lab puts
// flows on them; they are left administratively up.
const (
	// DirectPort is the site end of site i's direct WAN veth, a port of
	// the gateway bridge (OpenFlow port number assigned by OVS).
	DirectPort = "direct0"
)

// DirectPeer is the WAN-namespace end of site i's direct WAN veth: "d-s<i>".
func DirectPeer(i int) string { return "d-s" + strconv.Itoa(i) }

// directWAN makes site i's direct WAN port (Options.DirectWAN): a veth
// DirectPort (site namespace) <-> DirectPeer(i) (WAN namespace), MTU 1500,
// offloads off as every lab veth; the peer joins br-wan when the WAN is a
// Linux bridge (the relay takes it in startRelay otherwise); DirectPort
// becomes a port of the gateway bridge. Call after the bridges exist.
func (b *builder) directWAN(ctx context.Context, i int) error {
	if !b.opt.DirectWAN {
		return nil
	}
	s := b.s
	ns, wan := SiteNetns(s.Prefix, i), WANNetns(s.Prefix)
	if err := veth(ctx, ns, DirectPort, wan, DirectPeer(i), "", 1500); err != nil {
		return fmt.Errorf("direct WAN link: %w", err)
	}
	if !s.UsesRelay() {
		if _, err := run(ctx, nil, "ip", "-n", wan, "link", "set", DirectPeer(i), "master", "br-wan"); err != nil {
			return fmt.Errorf("direct WAN link: %w", err)
		}
	}
	if _, err := vsctl(ctx, s.StateDir, i, "--", "add-port", GatewayBridge, DirectPort); err != nil {
		return fmt.Errorf("direct WAN port: %w", err)
	}
	return nil
}

// directRelayArgs returns what startRelay adds to the relay's command line
// for the direct WAN ports (none without Options.DirectWAN): a --pair and
// a --rate flag mirroring every WAN pair's delay and rate limit between
// the two sites' direct ports, then the direct ports themselves. The
// sites' WAN ports must follow (positional arguments).
func (b *builder) directRelayArgs() []string {
	if !b.opt.DirectWAN {
		return nil
	}
	s := b.s
	var args []string
	for _, p := range s.WAN.Pairs {
		a, c := DirectPeer(s.siteIndex(p.A)), DirectPeer(s.siteIndex(p.B))
		args = append(args, "--pair", fmt.Sprintf("%s,%s=%s", a, c, strconv.FormatFloat(p.DelayMS, 'f', -1, 64)))
		if p.RateMbit > 0 {
			args = append(args, "--rate", fmt.Sprintf("%s,%s=%s", a, c, strconv.FormatFloat(p.RateMbit, 'f', -1, 64)))
		}
	}
	for i := range s.Sites {
		args = append(args, DirectPeer(i+1))
	}
	return args
}
