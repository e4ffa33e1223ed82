package demo

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Pair is one ordered ping check inside a tenant: lab host From pings To's
// address (both of Tenant).
type Pair struct {
	Tenant string
	// From and To are the tenant's host names ("h1"); FromLab is the lab
	// host that runs the ping ("t1-h1").
	From, To string
	FromLab  string
	// DstIP is To's address without the prefix length ("10.0.0.2").
	DstIP string
	// OK is true once one echo came back; After is the time from the apply
	// to that first reply.
	OK    bool
	After time.Duration
	// Err is the last failure's output when !OK.
	Err string
}

// Capture is one isolation check: while Sender's hosts ping each other
// (and ARP for an address nobody has), tcpdump runs on every host.
// Leaked counts the ARP/ICMP frames received by hosts of other tenants
// (must be 0); Control counts those received by the sender's own hosts
// (must be > 0: proves the capture saw the traffic at all).
type Capture struct {
	Sender  string
	Leaked  int
	Control int
	// LeakedAt names the hosts that received leaked frames, with counts.
	LeakedAt map[string]int
	// Sample holds up to a few leaked frames as tcpdump printed them.
	Sample []string
	// WANChecked is true when the tunnels on the WAN were captured too
	// (VXLAN or Geneve over the lab's WAN bridge). WANFrames counts the
	// tunnelled frames seen (must be > 0: the tenant's hosts are in three
	// clouds); WANForeign those whose inner source MAC does not start with
	// the sender's tenant ID or whose tunnel key is not that ID (must be 0:
	// the paper's MAC rewriting, docs/pipeline.md). WANSample and
	// WANForeignSample are one of each, as tcpdump printed them.
	WANChecked                  bool
	WANFrames, WANForeign       int
	WANSample, WANForeignSample string
}

// Spoof is the spoofed-source check: Host changes its MAC to MAC (one the
// hypervisor never bound), then pings a host of its tenant.
type Spoof struct {
	Host, MAC, Target string
	// PingOK must be false; Frames (ARP/ICMP at every other host) must be 0.
	PingOK bool
	Frames int
	// Restored is true when the host pings again with its own MAC.
	Restored bool
}

// Summary is everything the demo measured, and its expectations
// (Failures).
type Summary struct {
	Pairs     []Pair
	Isolation []Capture
	Spoof     *Spoof
	// LabUp is the lab build time, DaemonUp the time from starting
	// skyvisor to every switch connected and the tunnels provisioned,
	// Setup the time from the apply to every pair pinging.
	LabUp, DaemonUp, Setup time.Duration
	// Problems are step failures (a step that could not run at all).
	Problems []string
}

// tenantPairs returns ok and total pairs per tenant, tenants sorted.
func (s *Summary) tenantPairs() (names []string, ok, total map[string]int) {
	ok, total = map[string]int{}, map[string]int{}
	for _, p := range s.Pairs {
		if _, seen := total[p.Tenant]; !seen {
			names = append(names, p.Tenant)
		}
		total[p.Tenant]++
		if p.OK {
			ok[p.Tenant]++
		}
	}
	sort.Strings(names)
	return names, ok, total
}

// Failures lists every unmet expectation, one line each: a step problem,
// a pair that never pinged, an isolation check that saw a leaked frame or
// (its control) no frame at all, a spoofed MAC that got a ping or a frame
// through or did not recover, or a check that never ran (no pairs, no
// isolation check, no spoof check). Empty means the demo passed.
func (s *Summary) Failures() []string {
	var out []string
	out = append(out, s.Problems...)
	if len(s.Pairs) == 0 {
		out = append(out, "no ping pair was checked")
	}
	for _, p := range s.Pairs {
		if !p.OK {
			msg := fmt.Sprintf("%s: %s -> %s (%s) did not ping", p.Tenant, p.From, p.To, p.DstIP)
			if p.Err != "" {
				msg += ": " + firstLine(p.Err)
			}
			out = append(out, msg)
		}
	}
	if len(s.Isolation) == 0 {
		out = append(out, "no isolation check ran")
	}
	for _, c := range s.Isolation {
		if c.Leaked != 0 {
			out = append(out, fmt.Sprintf("isolation: %d frame(s) of %s reached other tenants' hosts %v", c.Leaked, c.Sender, c.LeakedAt))
		}
		if c.Control == 0 {
			out = append(out, fmt.Sprintf("isolation: the capture saw no frame of %s at its own hosts (capture broken?)", c.Sender))
		}
		if c.WANChecked && c.WANFrames == 0 {
			out = append(out, fmt.Sprintf("fabric: no tunnelled frame of %s on the WAN", c.Sender))
		}
		if c.WANChecked && c.WANForeign != 0 {
			out = append(out, fmt.Sprintf("fabric: %d frame(s) of %s on the WAN without its fabric MAC prefix or tunnel key, e.g. %s", c.WANForeign, c.Sender, c.WANForeignSample))
		}
	}
	switch sp := s.Spoof; {
	case sp == nil:
		out = append(out, "the spoofed-MAC check did not run")
	default:
		if sp.PingOK {
			out = append(out, fmt.Sprintf("spoof: %s with MAC %s reached %s", sp.Host, sp.MAC, sp.Target))
		}
		if sp.Frames != 0 {
			out = append(out, fmt.Sprintf("spoof: %d frame(s) from %s with MAC %s reached other hosts", sp.Frames, sp.Host, sp.MAC))
		}
		if !sp.Restored {
			out = append(out, fmt.Sprintf("spoof: %s did not ping again with its own MAC", sp.Host))
		}
	}
	return out
}

// OK reports whether every expectation held.
func (s *Summary) OK() bool { return len(s.Failures()) == 0 }

// WriteTable prints the summary table: one row per check with the result,
// the expectation and ok/FAIL, then the timings.
func (s *Summary) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "check\tresult\texpected\t")
	status := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAIL"
	}
	names, ok, total := s.tenantPairs()
	for _, n := range names {
		fmt.Fprintf(tw, "%s: pairs pinging across clouds\t%d/%d\t%d/%d\t%s\n", n, ok[n], total[n], total[n], total[n], status(ok[n] == total[n]))
	}
	for _, c := range s.Isolation {
		fmt.Fprintf(tw, "%s frames at other tenants' hosts\t%d\t0\t%s\n", c.Sender, c.Leaked, status(c.Leaked == 0))
		fmt.Fprintf(tw, "%s frames at its own hosts (control)\t%d\t> 0\t%s\n", c.Sender, c.Control, status(c.Control > 0))
		if c.WANChecked {
			fmt.Fprintf(tw, "%s on the WAN: frames with its fabric MACs + key\t%d/%d\tall, > 0\t%s\n", c.Sender,
				c.WANFrames-c.WANForeign, c.WANFrames, status(c.WANFrames > 0 && c.WANForeign == 0))
		}
	}
	if sp := s.Spoof; sp != nil {
		got := "blocked"
		if sp.PingOK {
			got = "got through"
		}
		fmt.Fprintf(tw, "spoofed MAC %s on %s: ping %s\t%s\tblocked\t%s\n", sp.MAC, sp.Host, sp.Target, got, status(!sp.PingOK))
		fmt.Fprintf(tw, "spoofed MAC: frames at other hosts\t%d\t0\t%s\n", sp.Frames, status(sp.Frames == 0))
		fmt.Fprintf(tw, "%s pings again with its own MAC\t%v\ttrue\t%s\n", sp.Host, sp.Restored, status(sp.Restored))
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntimes: lab up %s, skyvisor up (all switches, tunnels) %s, setup (apply -> every pair pinging) %s\n",
		round(s.LabUp), round(s.DaemonUp), round(s.Setup))
	if f := s.Failures(); len(f) > 0 {
		fmt.Fprintf(w, "\nFAILED (%d):\n  %s\n", len(f), strings.Join(f, "\n  "))
	} else {
		fmt.Fprintln(w, "\nPASS: every expectation held")
	}
}

// round rounds d for display (10 ms; 0 prints as "-").
func round(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
