package setuptime

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
)

// Result is one run of one (sites, VMs, mode); see the package
// documentation for the steps. Times are milliseconds.
type Result struct {
	Sites int    // N, the number of sites (clouds)
	VMs   int    // VMs (OVS bridges, one host each) per site
	Mode  string // ModeMST or ModeMesh
	Run   int    // 1-based run number within (Sites, VMs, Mode)
	// Tunnels is the number of tunnels Skyvisor planned (N-1 or N(N-1)/2).
	Tunnels int
	// Hosts is the number of tenant hosts (Sites*VMs); Pairs the unordered
	// host pairs pinged (Hosts(Hosts-1)/2).
	Hosts, Pairs int
	// TunnelType is the encapsulation (vxlan, gre, geneve); DelayMS the WAN one-way delay.
	TunnelType string
	DelayMS    float64
	// LabUpMS is how long lab.Up took (not part of the setup time).
	LabUpMS float64
	// SwitchesMS, TunnelPortsMS, TunnelsUsableMS and BoundMS are the
	// milestones of tunnel creation, from t_start (Skyvisor starts): every
	// bridge connected over OpenFlow; every tunnel port of the plan in its
	// gateway's port list; every tunnel carried an LLDP probe both ways
	// (the end of tunnel creation); every host bound.
	SwitchesMS, TunnelPortsMS, TunnelsUsableMS, BoundMS float64
	// ApplyMS (the REST apply returned: stored, compiled, flow entries
	// installed with a barrier) and ReachableMS (every host pair answered)
	// are from t_submit (the tenant submission).
	ApplyMS, ReachableMS float64
	// OVSDBTxns is the number of OVSDB transactions Skyvisor committed
	// until the tunnels were usable (bridges and tunnel ports).
	OVSDBTxns uint64
	// FlowAdds is the number of flow entries the apply added on all switches.
	FlowAdds uint64
	// Load1 is the 1-minute load average (/proc/loadavg) when the run started.
	Load1 float64
	// Commit is the commit of the code that measured (runinfo.Commit); ""
	// in files written before the column existed.
	Commit string
}

// TunnelCreationMS is the tunnel creation phase: t_start to every tunnel usable.
func (r Result) TunnelCreationMS() float64 { return r.TunnelsUsableMS }

// ControllerMS is the controller's part of state population: the REST
// apply until it returned.
func (r Result) ControllerMS() float64 { return r.ApplyMS }

// ReachabilityMS is the rest of state population: apply returned until
// every host pair answered (ARP and the first echo through the installed
// entries).
func (r Result) ReachabilityMS() float64 { return r.ReachableMS - r.ApplyMS }

// PopulationMS is the state population phase: tenant submission until
// every host pair answered.
func (r Result) PopulationMS() float64 { return r.ReachableMS }

// SetupMS is the setup time: tunnel creation + state population.
func (r Result) SetupMS() float64 { return r.TunnelCreationMS() + r.PopulationMS() }

// CSVHeader returns the header row of WriteCSV.
func CSVHeader() []string {
	return []string{"sites", "vms_per_site", "mode", "run", "tunnels", "hosts", "host_pairs", "tunnel_type", "delay_ms",
		"lab_up_ms", "t_switches_ms", "t_tunnel_ports_ms", "t_tunnels_usable_ms", "t_hosts_bound_ms",
		"apply_ms", "t_reachable_ms", "ovsdb_txns", "flow_entries_added", "load1", "commit"}
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// WriteCSV writes the results, one row per run, under CSVHeader (RFC 4180).
func WriteCSV(w io.Writer, rs []Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader()); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, r := range rs {
		row := []string{strconv.Itoa(r.Sites), strconv.Itoa(r.VMs), r.Mode, strconv.Itoa(r.Run), strconv.Itoa(r.Tunnels),
			strconv.Itoa(r.Hosts), strconv.Itoa(r.Pairs), r.TunnelType, strconv.FormatFloat(r.DelayMS, 'f', -1, 64),
			ms(r.LabUpMS), ms(r.SwitchesMS), ms(r.TunnelPortsMS), ms(r.TunnelsUsableMS), ms(r.BoundMS),
			ms(r.ApplyMS), ms(r.ReachableMS), strconv.FormatUint(r.OVSDBTxns, 10), strconv.FormatUint(r.FlowAdds, 10),
			strconv.FormatFloat(r.Load1, 'f', 2, 64), r.Commit}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// ReadCSV parses what WriteCSV wrote (the header must match CSVHeader, or
// CSVHeader without its last column "commit": files written before it
// existed, read with Commit ""); errors name the line and column.
func ReadCSV(r io.Reader) ([]Result, error) {
	cr := csv.NewReader(r)
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read csv: %w", err)
	}
	hdr := CSVHeader()
	if len(rows) == 0 || !slices.Equal(rows[0], hdr) && !slices.Equal(rows[0], hdr[:len(hdr)-1]) {
		return nil, fmt.Errorf("read csv: header is not %v", hdr)
	}
	withCommit := len(rows[0]) == len(hdr)
	var out []Result
	for k, row := range rows[1:] {
		line := k + 2
		var perr error
		num := func(col int) float64 {
			v, err := strconv.ParseFloat(row[col], 64)
			if err != nil && perr == nil {
				perr = fmt.Errorf("read csv: line %d, column %s: %q is not a number", line, hdr[col], row[col])
			}
			return v
		}
		r := Result{Sites: int(num(0)), VMs: int(num(1)), Mode: row[2], Run: int(num(3)), Tunnels: int(num(4)),
			Hosts: int(num(5)), Pairs: int(num(6)), TunnelType: row[7], DelayMS: num(8),
			LabUpMS: num(9), SwitchesMS: num(10), TunnelPortsMS: num(11), TunnelsUsableMS: num(12), BoundMS: num(13),
			ApplyMS: num(14), ReachableMS: num(15), OVSDBTxns: uint64(num(16)), FlowAdds: uint64(num(17)), Load1: num(18)}
		if withCommit {
			r.Commit = row[19]
		}
		if perr != nil {
			return nil, perr
		}
		out = append(out, r)
	}
	return out, nil
}

// Median is the aggregate of the runs of one (sites, VMs, mode): the
// median of every milestone and phase over the runs (medians of the
// phases, not differences of medians).
type Median struct {
	Sites, VMs int
	Mode       string
	Tunnels    int
	Hosts      int
	Runs       int
	// LabUpMS, SwitchesMS, TunnelPortsMS and BoundMS are medians of the
	// Result fields of the same names.
	LabUpMS, SwitchesMS, TunnelPortsMS, BoundMS float64
	// TunnelCreationMS, ControllerMS, ReachabilityMS, PopulationMS and
	// SetupMS are medians of the Result methods of the same names.
	TunnelCreationMS, ControllerMS, ReachabilityMS, PopulationMS, SetupMS float64
	// OVSDBTxns and FlowAdds are medians of the counts.
	OVSDBTxns, FlowAdds float64
	// Load1 is the median load average at the start of the runs.
	Load1 float64
	// Commit is the runs' commit (runinfo.JoinCommits of theirs).
	Commit string
}

// median returns the median of xs (mean of the middle two for an even
// count); NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Aggregate groups the results by (sites, vms, mode) and takes the medians,
// sorted by sites, then mode (mst before mesh), then VMs.
func Aggregate(rs []Result) []Median {
	type key struct {
		sites, vms int
		mode       string
	}
	groups := map[key][]Result{}
	var keys []key
	for _, r := range rs {
		k := key{r.Sites, r.VMs, r.Mode}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.sites, b.sites), cmp.Compare(modeOrder(a.mode), modeOrder(b.mode)),
			cmp.Compare(a.mode, b.mode), cmp.Compare(a.vms, b.vms))
	})
	out := make([]Median, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		col := func(f func(Result) float64) float64 {
			xs := make([]float64, len(g))
			for i, r := range g {
				xs[i] = f(r)
			}
			return median(xs)
		}
		out = append(out, Median{Sites: k.sites, VMs: k.vms, Mode: k.mode, Tunnels: g[0].Tunnels, Hosts: g[0].Hosts, Runs: len(g),
			LabUpMS:          col(func(r Result) float64 { return r.LabUpMS }),
			SwitchesMS:       col(func(r Result) float64 { return r.SwitchesMS }),
			TunnelPortsMS:    col(func(r Result) float64 { return r.TunnelPortsMS }),
			BoundMS:          col(func(r Result) float64 { return r.BoundMS }),
			TunnelCreationMS: col(Result.TunnelCreationMS),
			ControllerMS:     col(Result.ControllerMS),
			ReachabilityMS:   col(Result.ReachabilityMS),
			PopulationMS:     col(Result.PopulationMS),
			SetupMS:          col(Result.SetupMS),
			OVSDBTxns:        col(func(r Result) float64 { return float64(r.OVSDBTxns) }),
			FlowAdds:         col(func(r Result) float64 { return float64(r.FlowAdds) }),
			Load1:            col(func(r Result) float64 { return r.Load1 }),
			Commit:           commits(g),
		})
	}
	return out
}

func commits(g []Result) string {
	cs := make([]string, len(g))
	for i, r := range g {
		cs[i] = r.Commit
	}
	return runinfo.JoinCommits(cs)
}

func modeOrder(m string) int {
	switch m {
	case ModeMST:
		return 0
	case ModeMesh:
		return 1
	}
	return 2
}

// MediansHeader returns the header row of WriteMediansCSV.
func MediansHeader() []string {
	return []string{"sites", "vms_per_site", "vms_total", "mode", "tunnels", "hosts", "runs", "lab_up_ms",
		"switches_ms", "tunnel_ports_ms", "tunnel_creation_ms", "hosts_bound_ms", "controller_ms", "reachability_ms",
		"state_population_ms", "setup_ms", "ovsdb_txns", "flow_entries_added", "load1", "commit"}
}

// WriteMediansCSV writes one row per (sites, vms, mode) under
// MediansHeader: the Median fields; setup_ms = tunnel_creation_ms +
// state_population_ms per run, then the median.
func WriteMediansCSV(w io.Writer, meds []Median) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(MediansHeader()); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, m := range meds {
		if err := cw.Write([]string{strconv.Itoa(m.Sites), strconv.Itoa(m.VMs), strconv.Itoa(m.Sites * m.VMs), m.Mode,
			strconv.Itoa(m.Tunnels), strconv.Itoa(m.Hosts), strconv.Itoa(m.Runs), ms(m.LabUpMS),
			ms(m.SwitchesMS), ms(m.TunnelPortsMS), ms(m.TunnelCreationMS), ms(m.BoundMS), ms(m.ControllerMS),
			ms(m.ReachabilityMS), ms(m.PopulationMS), ms(m.SetupMS),
			strconv.FormatFloat(m.OVSDBTxns, 'f', -1, 64), strconv.FormatFloat(m.FlowAdds, 'f', -1, 64),
			strconv.FormatFloat(m.Load1, 'f', 2, 64), m.Commit}); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}
