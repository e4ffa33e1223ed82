package setuptime

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/tunnels"
)

// tunnelProbe is a controller app (registered after the hypervisor) that
// tells when every gateway tunnel carries traffic, the way link discovery
// sees links (package controller/apps/discovery): an LLDP probe naming
// (gateway DPID, tunnel port) sent as a packet-out on a tunnel port must
// come back as a packet-in on the peer gateway's tunnel port. The
// hypervisor's gateway tables send LLDP arriving on a tunnel port to the
// controller and pass the physical discovery's probes on to later apps;
// before its entries are installed the probe is lost and sent again.
type tunnelProbe struct {
	mu       sync.Mutex
	switches map[controller.DPID]controller.Switch
	seen     map[direction]bool // directions confirmed by a returning probe
}

// direction is one way through a tunnel: out of (From DPID, FromPort), in
// at (To DPID, ToPort).
type direction struct {
	From     controller.DPID
	FromPort uint32
	To       controller.DPID
	ToPort   uint32
}

func newTunnelProbe() *tunnelProbe {
	return &tunnelProbe{switches: map[controller.DPID]controller.Switch{}, seen: map[direction]bool{}}
}

// Name implements controller.App.
func (p *tunnelProbe) Name() string { return "setuptime-tunnel-probe" }

// SwitchUp records the switch.
func (p *tunnelProbe) SwitchUp(_ context.Context, sw controller.Switch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.switches[sw.DPID()] = sw
}

// SwitchDown forgets the switch.
func (p *tunnelProbe) SwitchDown(_ context.Context, sw controller.Switch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.switches[sw.DPID()] == sw {
		delete(p.switches, sw.DPID())
	}
}

// PacketIn confirms the direction a returning probe crossed and consumes
// it; other packet-ins continue.
func (p *tunnelProbe) PacketIn(_ context.Context, sw controller.Switch, pi *controller.PacketIn) controller.Disposition {
	d := pi.Data
	if len(d) < 14 || d[12] != 0x88 || d[13] != 0xcc {
		return controller.Continue
	}
	pr, err := discovery.ParseProbe(d)
	if err != nil {
		return controller.Continue
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[direction{From: controller.DPID(pr.DPID), FromPort: pr.Port, To: sw.DPID(), ToPort: uint32(pi.InPort)}] = true
	return controller.Stop
}

// connected returns how many of dpids have a switch connected.
func (p *tunnelProbe) connected(dpids []uint64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, d := range dpids {
		if _, ok := p.switches[controller.DPID(d)]; ok {
			n++
		}
	}
	return n
}

// tunnelState is the state of the plan's tunnels as the probe sees them.
type tunnelState struct {
	// Ports is the number of tunnel ports of the plan present in their
	// gateway's OpenFlow port list (2 per tunnel when complete).
	Ports int
	// Confirmed is the number of directions a probe crossed (2 per tunnel).
	Confirmed int
	// Pending lists the directions still unconfirmed ("a->b").
	Pending []string
}

// round sends one probe out of every tunnel port of plan whose direction
// is not confirmed yet and whose both ends exist, and reports the state.
// gateways maps site name -> gateway DPID.
func (p *tunnelProbe) round(ctx context.Context, plan tunnels.Plan, gateways map[string]uint64) tunnelState {
	type send struct {
		sw   controller.Switch
		port ofp.Port
	}
	var st tunnelState
	var sends []send
	p.mu.Lock()
	for _, t := range plan.Tunnels {
		for _, end := range [2][2]string{{t.A, t.B}, {t.B, t.A}} {
			from, okF := p.switches[controller.DPID(gateways[end[0]])]
			to, okT := p.switches[controller.DPID(gateways[end[1]])]
			var fp, tp *ofp.Port
			if okF {
				fp = portNamed(from, tunnels.PortName(end[1]))
			}
			if okT {
				tp = portNamed(to, tunnels.PortName(end[0]))
			}
			if fp != nil {
				st.Ports++
			}
			if fp != nil && tp != nil && p.seen[direction{from.DPID(), uint32(fp.PortNo), to.DPID(), uint32(tp.PortNo)}] {
				st.Confirmed++
				continue
			}
			st.Pending = append(st.Pending, end[0]+"->"+end[1])
			if fp != nil && tp != nil {
				sends = append(sends, send{from, *fp})
			}
		}
	}
	p.mu.Unlock()
	for _, s := range sends {
		frame, err := discovery.EncodeProbe(discovery.Probe{DPID: uint64(s.sw.DPID()), Port: uint32(s.port.PortNo), TTL: 1}, s.port.HWAddr)
		if err != nil {
			continue
		}
		po := &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: ofp.PortController,
			Actions: ofp.Actions{&ofp.ActionOutput{Port: s.port.PortNo}}, Data: frame}
		_ = s.sw.PacketOut(ctx, po) // lost probes are sent again next round
	}
	slices.Sort(st.Pending)
	return st
}

// portNamed returns sw's port called name, or nil.
func portNamed(sw controller.Switch, name string) *ofp.Port {
	for _, pt := range sw.Ports() {
		if strings.TrimRight(pt.Name, "\x00") == name {
			return &pt
		}
	}
	return nil
}

// String summarizes the state for errors.
func (st tunnelState) String() string {
	return fmt.Sprintf("%d tunnel ports present, %d directions confirmed, pending %s", st.Ports, st.Confirmed, strings.Join(st.Pending, " "))
}
