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
