// Package tunnels plans and provisions the tunnels that join the cloud
// gateways of a Skyvisor fabric.
//
// Every cloud (site) has one gateway, an Open vSwitch bridge reachable at one
// public (underlay) address. Gateways are joined by point-to-point tunnels
// (VXLAN, GRE or Geneve, optionally over a WireGuard-encrypted underlay). The
// paper (Skyvisor, §2 "Architecture" and §4 "Setup time") joins the gateways
// with a minimum spanning tree of tunnels rather than a full mesh, so that the
// number of tunnels, and with it the setup time, grows linearly with the number
// of clouds instead of quadratically.
//
// The package has four parts:
//
//   - planning: [MST] (Kruskal with deterministic tie-breaking) and the
//     [FullMesh] baseline over a [Costs] graph of possible site pairs;
//   - elasticity: [Replan] (repair: keep every surviving tunnel, add the
//     fewest, cheapest new ones), [Readmit] (a pair that came back up
//     replaces the most expensive tunnel of its tree path if cheaper: one
//     exchange, back to the minimum spanning tree) and [Optimize] (move to a
//     true minimum spanning tree, changing as little as possible), all
//     returning a [Diff];
//   - naming and MTU: [PortName], [AssignOFPorts], the tunnel key policy
//     ([TunnelKey]) and [OverlayMTU] with the header arithmetic spelled out;
//   - provisioning: [Provisioner] reconciles each gateway's tunnel ports over
//     OVSDB through the [GatewayPorts] interface, with BFD on every port
//     when [Provisioner.EnableBFD] was called (the hypervisor watches the
//     sessions to detect a failed tunnel).
//
// docs/tunnels.md describes the rules, guarantees and complexity in prose.
package tunnels
