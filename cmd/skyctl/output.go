package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/api"
)

// table writes aligned columns (two spaces apart) to w; rows are cells.
// Empty cells print as "-". Each line is prefixed by indent.
func table(w io.Writer, indent string, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(cells []string) {
		out := make([]string, len(cells))
		for i, c := range cells {
			if c == "" {
				c = "-"
			}
			out[i] = c
		}
		fmt.Fprintf(tw, "%s%s\n", indent, strings.Join(out, "\t"))
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	tw.Flush()
}

func stateText(st api.TenantStatus) string {
	if st.Message != "" {
		return string(st.State) + " (" + st.Message + ")"
	}
	return string(st.State)
}

func u(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func dpid(d api.DPID) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func port(p uint32) string {
	if p == 0 {
		return ""
	}
	return u(p)
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func writeTenantTable(w io.Writer, ts []api.TenantStatus) {
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, []string{t.Tenant, t.TenantID.String(), stateText(t), strconv.FormatUint(t.Generation, 10),
			strconv.Itoa(t.Switches), strconv.Itoa(t.Links), fmt.Sprintf("%d/%d", t.HostsBound, t.Hosts), when(t.UpdatedAt)})
	}
	table(w, "", []string{"TENANT", "ID", "STATE", "GENERATION", "SWITCHES", "LINKS", "BOUND/HOSTS", "UPDATED"}, rows)
}

func writeTenantDetail(w io.Writer, d api.TenantDetail) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "Tenant:\t%s\n", d.Tenant)
	fmt.Fprintf(tw, "Tenant ID:\t%d (fabric MAC prefix %02x:%02x)\n", uint16(d.TenantID), byte(d.TenantID>>8), byte(d.TenantID))
	fmt.Fprintf(tw, "State:\t%s\n", stateText(d.TenantStatus))
	fmt.Fprintf(tw, "Generation:\t%d\n", d.Generation)
	fmt.Fprintf(tw, "Updated:\t%s\n", when(d.UpdatedAt))
	if d.Topology != nil {
		apps := strings.Join(d.Topology.Apps, ", ")
		if apps == "" {
			apps = "(none)"
		}
		fmt.Fprintf(tw, "Apps:\t%s\n", apps)
	}
	fmt.Fprintf(tw, "Topology:\t%d switches, %d links, %d hosts (%d bound)\n", d.Switches, d.Links, d.Hosts, d.HostsBound)
	tw.Flush()

	m := d.Mapping
	fmt.Fprintln(w, "\nHosts:")
	if len(m.Hosts) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		var rows [][]string
		for _, h := range m.Hosts {
			phys := ""
			if h.Binding == api.BindingBound {
				phys = dpid(h.PhysicalDPID) + " port " + u(h.PhysicalPort)
			}
			rows = append(rows, []string{h.Name, h.MAC.String(), h.FabricMAC.String(), h.IP,
				h.Switch + ":" + u(h.Port), h.Site, string(h.Binding), phys})
		}
		table(w, "  ", []string{"NAME", "MAC", "FABRIC MAC", "IP", "SWITCH:PORT", "SITE", "BINDING", "PHYSICAL"}, rows)
	}

	fmt.Fprintln(w, "\nSwitches:")
	if len(m.Switches) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		var rows [][]string
		for _, s := range m.Switches {
			first := []string{s.Name, s.VirtualDPID.String(), s.Site}
			if len(s.Ports) == 0 {
				rows = append(rows, append(first, "", "", "", "", "", ""))
			}
			for i, p := range s.Ports {
				lead := first
				if i > 0 {
					lead = []string{" ", " ", " "}
				}
				rows = append(rows, append(append([]string(nil), lead...), u(p.VirtualPort), string(p.Kind),
					dpid(p.PhysicalDPID), port(p.PhysicalPort), p.Tunnel, p.Peer))
			}
		}
		table(w, "  ", []string{"NAME", "VIRTUAL DPID", "SITE", "PORT", "KIND", "PHYSICAL DPID", "PHYS PORT", "TUNNEL", "PEER"}, rows)
	}

	fmt.Fprintln(w, "\nLinks:")
	if len(m.Links) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		var rows [][]string
		for _, l := range m.Links {
			var hops []string
			for _, h := range l.Path {
				hops = append(hops, fmt.Sprintf("%s[%d>%d]", h.DPID, h.InPort, h.OutPort))
			}
			rows = append(rows, []string{l.A, l.B, strings.Join(l.Tunnels, ","), strings.Join(hops, " ")})
		}
		table(w, "  ", []string{"A", "B", "TUNNELS", "PATH (DPID[IN>OUT])"}, rows)
	}
}

func writePhysical(w io.Writer, p api.PhysicalTopology) {
	section := func(title string, n int) bool {
		fmt.Fprintf(w, "%s:\n", title)
		if n == 0 {
			fmt.Fprintln(w, "  (none)")
		}
		return n > 0
	}
	if section("Sites", len(p.Sites)) {
		var rows [][]string
		for _, s := range p.Sites {
			rows = append(rows, []string{s.Name, s.Cloud, dpid(s.Gateway), s.Endpoint})
		}
		table(w, "  ", []string{"NAME", "CLOUD", "GATEWAY", "ENDPOINT"}, rows)
	}
	fmt.Fprintln(w)
	if section("Switches", len(p.Switches)) {
		var rows [][]string
		for _, s := range p.Switches {
			rows = append(rows, []string{s.DPID.String(), string(s.Role), s.Site, s.VM, yesNo(s.Connected), s.Address, strconv.Itoa(s.Ports)})
		}
		table(w, "  ", []string{"DPID", "ROLE", "SITE", "VM", "CONNECTED", "ADDRESS", "PORTS"}, rows)
	}
	fmt.Fprintln(w)
	if section("Links", len(p.Links)) {
		var rows [][]string
		for _, l := range p.Links {
			rows = append(rows, []string{l.SrcDPID.String(), u(l.SrcPort), l.DstDPID.String(), u(l.DstPort)})
		}
		table(w, "  ", []string{"SRC DPID", "SRC PORT", "DST DPID", "DST PORT"}, rows)
	}
	fmt.Fprintln(w)
	if section("Tunnels", len(p.Tunnels)) {
		var rows [][]string
		for _, t := range p.Tunnels {
			key := "flow"
			if t.Key != 0 {
				key = u(t.Key)
			}
			state := "down"
			if t.Up {
				state = "up"
			}
			tree := "yes"
			if !t.InTree {
				tree = "routed around"
			}
			rows = append(rows, []string{t.Name, t.Type, t.A, t.B, t.LocalIP, t.RemoteIP, key, state, tree, bfdText(t.BFD)})
		}
		table(w, "  ", []string{"NAME", "TYPE", "A", "B", "LOCAL IP", "REMOTE IP", "KEY", "STATE", "TREE", "BFD"}, rows)
	}
}

// bfdText formats a tunnel's BFD state for the TREE/BFD columns: "up",
// "down (Control Detection Time Expired)", "init", "up, not forwarding",
// "unreported" (a port without a report yet) or "" (no BFD: printed "-").
func bfdText(b *api.TunnelBFD) string {
	switch {
	case b == nil:
		return ""
	case b.State == "up" && b.Forwarding:
		return "up"
	case b.State == "":
		return "unreported"
	}
	out := b.State
	if b.State == "up" {
		out += ", not forwarding"
	}
	if b.Diagnostic != "" {
		out += " (" + b.Diagnostic + ")"
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func writeHealth(w io.Writer, h api.Health) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "Status:\t%s\n", h.Status)
	if h.Version != "" {
		fmt.Fprintf(tw, "Version:\t%s\n", h.Version)
	}
	fmt.Fprintf(tw, "Uptime:\t%s\n", (time.Duration(h.UptimeSeconds * float64(time.Second))).Round(time.Second))
	tw.Flush()
	if len(h.Checks) > 0 {
		fmt.Fprintln(w, "\nChecks:")
		var rows [][]string
		for _, c := range h.Checks {
			rows = append(rows, []string{c.Name, string(c.Status), c.Message})
		}
		table(w, "  ", []string{"NAME", "STATUS", "MESSAGE"}, rows)
	}
}
