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
	// WANForeignSample are one of each, as tcpdump printed them. WANBFD
	// counts the BFD control packets of the tunnels themselves (key 0, UDP
	// port 3784: the fabric's liveness checks, no tenant's frames), which
	// are left out of WANFrames.
	WANChecked                  bool
	WANFrames, WANForeign       int
	WANBFD                      int
	WANSample, WANForeignSample string
}

// Spoof is one spoofed-source check: Host changes its MAC to MAC (Case
// says which kind: a MAC bound to no host, another host's MAC, a fabric
// MAC of the other tenant or of its own), then sends ARP requests
// (pinging Target with an empty neighbour cache), ICMP echo requests with
// the spoofed source (a static neighbour entry for Target) and a
// broadcast ping, while tcpdump runs in every other host's namespace.
type Spoof struct {
	// Case names the kind of MAC ("unbound MAC", "MAC of t1-h2 = t2-h2",
	// "fabric MAC of t2-h3 (tenant2)", "own fabric MAC (tenant1)").
	Case              string
	Host, MAC, Target string
	// PingOK must be false (no echo reply came back); Frames (ARP/ICMP
	// received by every other host) must be 0, FramesAt names where, and
	// Sample holds a few of them as tcpdump printed them.
	PingOK   bool
	Frames   int
	FramesAt map[string]int
	Sample   []string
	// Sent is how many frames Host's eth0 transmitted during the check
	// (its tx_packets counter; must be > 0); EdgeDropped how many the
	// drop entries of Host's port in table 0 of its VM bridge counted
	// meanwhile (OFPMP_FLOW n_packets; must be >= Sent: every frame was
	// dropped at the edge); EdgePort names that port ("azure/web port 2").
	// EdgeErr is set when the counters could not be read.
	Sent, EdgeDropped int
	EdgePort, EdgeErr string
	// Restored is true when the host pings Target again with its own MAC.
	Restored bool
}

// blocked reports whether the spoof got nothing through.
func (sp *Spoof) blocked() bool {
	return !sp.PingOK && sp.Frames == 0 && sp.EdgeErr == "" && sp.Sent > 0 && sp.EdgeDropped >= sp.Sent
}

// Summary is everything the demo measured, and its expectations
// (Failures).
type Summary struct {
	Pairs     []Pair
	Isolation []Capture
	// Spoofs are the spoofed-source checks, one per kind of MAC.
	Spoofs []Spoof
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
// (its control) no frame at all, a spoofed MAC that got a reply or a frame
// through, sent nothing, had a frame not counted by its edge drop entries
// or did not recover, or a check that never ran (no pairs, no isolation
// check, no spoof check). Empty means the demo passed.
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
	if len(s.Spoofs) == 0 {
		out = append(out, "no spoofed-MAC check ran")
	}
	for _, sp := range s.Spoofs {
		who := fmt.Sprintf("spoof (%s): %s as %s", sp.Case, sp.Host, sp.MAC)
		if sp.PingOK {
			out = append(out, fmt.Sprintf("%s got a reply from %s", who, sp.Target))
		}
		if sp.Frames != 0 {
			out = append(out, fmt.Sprintf("%s: %d frame(s) reached other hosts %v, e.g. %s", who, sp.Frames, sp.FramesAt, strings.Join(sp.Sample, "; ")))
		}
		switch {
		case sp.EdgeErr != "":
			out = append(out, fmt.Sprintf("%s: edge drop counters: %s", who, sp.EdgeErr))
		case sp.Sent == 0:
			out = append(out, fmt.Sprintf("%s sent no frame", who))
		case sp.EdgeDropped < sp.Sent:
			out = append(out, fmt.Sprintf("%s: %d frame(s) sent, only %d counted by the drop entries of %s", who, sp.Sent, sp.EdgeDropped, sp.EdgePort))
		}
		if !sp.Restored {
			out = append(out, fmt.Sprintf("spoof (%s): %s did not ping %s again with its own MAC", sp.Case, sp.Host, sp.Target))
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
	restored := 0
	for _, sp := range s.Spoofs {
		fmt.Fprintf(tw, "spoof %s as %s (%s)\t%d replies, %d frames, %d/%d dropped\t0, 0, all\t%s\n",
			sp.Host, sp.MAC, sp.Case, b2i(sp.PingOK), sp.Frames, sp.EdgeDropped, sp.Sent, status(sp.blocked()))
		if sp.Restored {
			restored++
		}
	}
	if n := len(s.Spoofs); n > 0 {
		fmt.Fprintf(tw, "%s pings again with its own MAC after each spoof\t%d/%d\t%d/%d\t%s\n", s.Spoofs[0].Host, restored, n, n, n, status(restored == n))
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

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
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
