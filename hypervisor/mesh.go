package hypervisor

import (
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/tunnels"
)

// planTunnels plans the gateway tunnels over inf's sites and costs: the
// minimum spanning tree (tunnels.MST, N-1 tunnels), or with
// Config.TunnelMesh the full mesh (tunnels.FullMesh, N(N-1)/2 tunnels), the
// baseline of Alaluna et al., section 4, Figure 2.
func (h *Hypervisor) planTunnels(inf *infra.Infra) (tunnels.Plan, error) {
	if h.cfg.TunnelMesh {
		return tunnels.FullMesh(inf.TunnelSites(), inf.TunnelCosts())
	}
	return tunnels.MST(inf.TunnelSites(), inf.TunnelCosts())
}

// repairTunnels is the next plan after a change of sites, costs or pairs
// down: tunnels.Replan (fewest changes) for the tree; with
// Config.TunnelMesh the full mesh of the pairs not down, so a failed
// tunnel removes only itself (frames take the fewest tunnels left,
// pipeline.Model.Mesh) and a new site joins every other one.
func (h *Hypervisor) repairTunnels(cur tunnels.Plan, sites []tunnels.Site, costs tunnels.Costs, down map[tunnels.Pair]bool) (tunnels.Plan, tunnels.Diff, error) {
	if !h.cfg.TunnelMesh {
		return tunnels.Replan(cur, sites, costs, down)
	}
	next, err := tunnels.FullMesh(sites, withoutPairs(costs, down))
	if err != nil {
		return tunnels.Plan{}, tunnels.Diff{}, err
	}
	return next, tunnels.Compare(cur, next), nil
}

// readmitTunnel is the next plan once pair p is usable again:
// tunnels.Readmit (p back in the tree if cheaper, one exchange); with
// Config.TunnelMesh the full mesh of the pairs not down (p comes back).
func (h *Hypervisor) readmitTunnel(cur tunnels.Plan, sites []tunnels.Site, costs tunnels.Costs, down map[tunnels.Pair]bool, p tunnels.Pair) (tunnels.Plan, tunnels.Diff, error) {
	if !h.cfg.TunnelMesh {
		return tunnels.Readmit(cur, sites, costs, down, p)
	}
	return h.repairTunnels(cur, sites, costs, down)
}

// withoutPairs returns costs without the pairs marked in down (keys in
// either order).
func withoutPairs(costs tunnels.Costs, down map[tunnels.Pair]bool) tunnels.Costs {
	out := make(tunnels.Costs, len(costs))
	for k, c := range costs {
		if !down[tunnels.MakePair(k.A, k.B)] {
			out[k] = c
		}
	}
	return out
}
