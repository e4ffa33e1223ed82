// Command skylab builds the multi-cloud Open vSwitch lab (package
// testbed/lab): sites as network namespaces with their own OVS, VMs as OVS
// bridges, one gateway bridge per site, a WAN namespace (with an optional
// delay relay) and hosts plugged into VM bridges. See docs/lab.md.
//
//	skylab up LAB.json [--state-dir DIR]
//	skylab down [--state-dir DIR] [--prefix P]
//	skylab status [--state-dir DIR] [--json]
//	skylab check [--state-dir DIR]
//	skylab rtt [--state-dir DIR]
//	skylab plug [--state-dir DIR] --site S --vm V --host H --mac M [--ip CIDR] [--iface-id ID]
//	skylab unplug [--state-dir DIR] H
//	skylab move [--state-dir DIR] H --site S --vm V
//	skylab exec [--state-dir DIR] H -- CMD...
//	skylab ovs [--state-dir DIR] SITE -- ovs-vsctl|ovs-ofctl|ovs-appctl ...
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/skyvisor/skyvisor/testbed/lab"
	"github.com/skyvisor/skyvisor/testbed/wan"
)

const usage = `usage:
  skylab up LAB.json [--state-dir DIR] [-v]
  skylab down [--state-dir DIR] [--prefix P]
  skylab status [--state-dir DIR] [--json]
  skylab check [--state-dir DIR]            (underlay: every site pings every other site)
  skylab rtt [--state-dir DIR]              (measure gateway RTTs into the inventory's costs[])
  skylab plug [--state-dir DIR] --site S --vm V --host H --mac M [--ip CIDR] [--iface-id ID]
  skylab unplug [--state-dir DIR] H
  skylab move [--state-dir DIR] H --site S --vm V
  skylab exec [--state-dir DIR] H -- CMD...   (run CMD in host H's namespace)
  skylab ovs [--state-dir DIR] SITE -- ovs-vsctl|ovs-ofctl|ovs-appctl|ovs-dpctl ARGS...
The state dir defaults to /tmp/skylab/<prefix> (prefix "skl"; --prefix P selects /tmp/skylab/P).
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "skylab:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd, args := args[0], args[1:]
	if cmd == "wan-relay" { // hidden: started in background by `skylab up`
		return wan.RunCommand(args, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("skylab "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	stateDir := fs.String("state-dir", "", "lab state directory (default /tmp/skylab/<prefix>)")
	prefix := fs.String("prefix", "", "lab name prefix (selects the default state dir)")
	dir := func() string {
		if *stateDir != "" {
			if abs, err := filepath.Abs(*stateDir); err == nil {
				return abs
			}
			return *stateDir
		}
		p := *prefix
		if p == "" {
			p = lab.DefaultPrefix
		}
		return filepath.Join(lab.DefaultStateRoot, p)
	}
	// parse flags that may come after positional arguments (up LAB.json
	// --state-dir X); everything from the first "--" on is positional.
	parse := func() ([]string, error) {
		head, tail := args, []string(nil)
		for k, a := range args {
			if a == "--" {
				head, tail = args[:k], args[k:]
				break
			}
		}
		var pos []string
		for {
			if err := fs.Parse(head); err != nil {
				return nil, err
			}
			head = fs.Args()
			if len(head) == 0 {
				return append(pos, tail...), nil
			}
			pos = append(pos, head[0])
			head = head[1:]
		}
	}
	switch cmd {
	case "up":
		verbose := fs.Bool("v", false, "log progress")
		pos, err := parse()
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("up: want exactly one lab file")
		}
		sd := ""
		if *stateDir != "" {
			sd = dir()
		}
		spec, err := lab.LoadStateDir(pos[0], sd)
		if err != nil {
			return err
		}
		opt := lab.Options{}
		if *verbose {
			opt.Logger = slog.New(slog.NewTextHandler(stderr, nil))
		}
		t0 := time.Now()
		inv, err := lab.UpWith(ctx, spec, opt)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "lab %q up in %v: %d sites, %d switches, %d hosts; state %s; controller %s\n",
			inv.Name, time.Since(t0).Round(time.Millisecond), len(inv.Sites), len(inv.Switches), len(inv.Hosts), inv.StateDir, inv.Controller)
		return nil
	case "down":
		if _, err := parse(); err != nil {
			return err
		}
		p := *prefix
		if p == "" && *stateDir == "" {
			p = lab.DefaultPrefix // the default state dir belongs to the default prefix
		}
		if err := lab.DownPrefix(ctx, dir(), p); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "lab at %s is down\n", dir())
		return nil
	case "status":
		asJSON := fs.Bool("json", false, "print the inventory as JSON")
		if _, err := parse(); err != nil {
			return err
		}
		inv, err := lab.StatusContext(ctx, dir())
		if inv == nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if e := enc.Encode(inv); e != nil {
				return e
			}
		} else {
			printStatus(stdout, inv)
		}
		return err
	case "check":
		if _, err := parse(); err != nil {
			return err
		}
		res, err := lab.CheckUnderlay(ctx, dir())
		for _, r := range res {
			fmt.Fprintln(stdout, r)
		}
		return err
	case "rtt":
		if _, err := parse(); err != nil {
			return err
		}
		t0 := time.Now()
		costs, err := lab.MeasureRTT(ctx, dir())
		if err != nil {
			return err
		}
		for _, c := range costs {
			fmt.Fprintf(stdout, "%s - %s: %.3f ms (median of %d)\n", c.A, c.B, c.RTTMS, c.Samples)
		}
		fmt.Fprintf(stdout, "%d pairs measured in %v\n", len(costs), time.Since(t0).Round(time.Millisecond))
		return nil
	case "plug":
		var h lab.HostSpec
		fs.StringVar(&h.Site, "site", "", "site name")
		fs.StringVar(&h.VM, "vm", "", "VM name")
		fs.StringVar(&h.Name, "host", "", "host name")
		fs.StringVar(&h.MAC, "mac", "", "host MAC")
		fs.StringVar(&h.IP, "ip", "", "host IPv4/len")
		fs.StringVar(&h.IfaceID, "iface-id", "", "external_ids:iface-id (default: host name)")
		pos, err := parse()
		if err != nil {
			return err
		}
		if len(pos) == 1 && h.Name == "" {
			h.Name = pos[0]
		} else if len(pos) > 0 {
			return fmt.Errorf("plug: unexpected arguments %v", pos)
		}
		hi, err := lab.Plug(ctx, dir(), h)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "plugged %s: netns %s, %s/%s port %s ofport %d, mac %s ip %s iface-id %s\n",
			hi.Name, hi.Netns, hi.Site, hi.VM, hi.Port, hi.OFPort, hi.MAC, hi.IP, hi.IfaceID)
		return nil
	case "unplug":
		pos, err := parse()
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("unplug: want one host name")
		}
		return lab.Unplug(ctx, dir(), pos[0])
	case "move":
		site := fs.String("site", "", "destination site")
		vm := fs.String("vm", "", "destination VM")
		pos, err := parse()
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return errors.New("move: want one host name")
		}
		t0 := time.Now()
		hi, err := lab.Move(ctx, dir(), pos[0], *site, *vm)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "moved %s to %s/%s (port %s ofport %d) in %v\n", hi.Name, hi.Site, hi.VM, hi.Port, hi.OFPort,
			time.Since(t0).Round(time.Millisecond))
		return nil
	case "exec", "ovs":
		pos, err := parse()
		if err != nil {
			return err
		}
		if len(pos) < 3 || pos[1] != "--" {
			return fmt.Errorf("%s: want NAME -- COMMAND...", cmd)
		}
		var c *exec.Cmd
		if cmd == "exec" {
			c, err = lab.HostCommand(ctx, dir(), pos[0], pos[2:]...)
		} else {
			c, err = lab.SiteCommand(ctx, dir(), pos[0], pos[2:]...)
		}
		if err != nil {
			return err
		}
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, stdout, stderr
		return c.Run()
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func printStatus(w io.Writer, inv *lab.Inventory) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "lab %q prefix %s phase %s state %s\ncontroller %s  tunnel type %s  WAN %s (%s, delay %v ms, rate %v Mbit/s)\n\n",
		inv.Name, inv.Prefix, inv.Phase, inv.StateDir, inv.Controller, inv.TunnelType, inv.WAN.Mode, inv.WAN.Netns,
		inv.WAN.DelayMS, inv.WAN.RateMbit)
	if len(inv.WAN.Pairs) > 0 {
		fmt.Fprintln(tw, "PAIR\tDELAY MS\tRATE MBIT/S")
		for _, p := range inv.WAN.Pairs {
			rate := "-"
			if p.RateMbit > 0 {
				rate = fmt.Sprint(p.RateMbit)
			}
			fmt.Fprintf(tw, "%s - %s\t%v\t%s\n", p.A, p.B, p.DelayMS, rate)
		}
		fmt.Fprintln(tw)
	}
	if len(inv.Costs) > 0 {
		fmt.Fprintln(tw, "PAIR\tRTT MS\tSOURCE")
		for _, c := range inv.Costs {
			fmt.Fprintf(tw, "%s - %s\t%.3f\t%s\n", c.A, c.B, c.RTTMS, c.Source)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "SITE\tNETNS\tUNDERLAY\tMAC\tGATEWAY DPID\tOVSDB")
	for _, s := range inv.Sites {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Netns, s.UnderlayCIDR, s.UnderlayMAC, s.GatewayDPIDHex, s.OVSDB)
	}
	fmt.Fprintln(tw, "\nSITE\tBRIDGE\tROLE\tDPID\tPATCH PORTS")
	for _, s := range inv.Switches {
		var pp []string
		for _, p := range s.PatchPorts {
			pp = append(pp, fmt.Sprintf("%s(%d)->%s", p.Name, p.OFPort, p.PeerBridge))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Site, s.Bridge, s.Role, s.DPIDHex, strings.Join(pp, " "))
	}
	if len(inv.Tunnels) > 0 {
		fmt.Fprintln(tw, "\nSITE\tPORT\tTYPE\tOFPORT\tREMOTE\tKEY")
		for _, t := range inv.Tunnels {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", t.Site, t.Port, t.Type, t.OFPort, t.RemoteIP, t.Key)
		}
	}
	if len(inv.Hosts) > 0 {
		fmt.Fprintln(tw, "\nHOST\tNETNS\tSITE/VM\tPORT(OFPORT)\tMAC\tIP\tIFACE-ID")
		for _, h := range inv.Hosts {
			fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s(%d)\t%s\t%s\t%s\n", h.Name, h.Netns, h.Site, h.VM, h.Port, h.OFPort, h.MAC, h.IP, h.IfaceID)
		}
	}
}
