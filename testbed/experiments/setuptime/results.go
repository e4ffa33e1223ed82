package setuptime

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// Result is one run of one (sites, mode). Timestamps are cumulative
// milliseconds from t0 (the call of lab.Up) with the probe scaffolding
// removed (see the package documentation), so they never decrease in the
// order of the fields.
type Result struct {
	Sites int    // N, the number of sites (clouds)
	VMs   int    // VMs (OVS bridges) per site
	Mode  string // ModeMST or ModeMesh
	Run   int    // 1-based run number within (Sites, Mode)
	// Tunnels is the number of tunnels of the plan (N-1 or N(N-1)/2).
	Tunnels int
	// OVSDBTxns is the number of OVSDB transactions the provisioning
	// committed, summed over the sites' clients (one per tunnel port).
	OVSDBTxns uint64
	// ProbePairs is the number of probe pairs pinged (= Tunnels).
	ProbePairs int
	// TunnelType is the encapsulation (vxlan, gre, geneve); DelayMS the WAN one-way delay.
	TunnelType string
	DelayMS    float64
	// LabUpMS .. UsableMS are the timestamps t_lab_up, t_ovsdb_connected,
	// t_tunnels_provisioned, t_flows_installed, t_usable in ms from t0.
	LabUpMS       float64
	ConnectedMS   float64
	ProvisionedMS float64
	FlowsMS       float64
	UsableMS      float64
	// Load1 is the 1-minute load average (/proc/loadavg) when the run started.
	Load1 float64
}

// ProvisionMS is the provisioning phase: t_tunnels_provisioned - t_lab_up
// (OVSDB connections, planning, Provisioner.Apply).
func (r Result) ProvisionMS() float64 { return r.ProvisionedMS - r.LabUpMS }

// ConnectMS is t_ovsdb_connected - t_lab_up (ovsdb.Dial to every site).
func (r Result) ConnectMS() float64 { return r.ConnectedMS - r.LabUpMS }

// ApplyMS is t_tunnels_provisioned - t_ovsdb_connected (planning and
// Provisioner.Apply: the OVSDB transactions that create the tunnel ports).
func (r Result) ApplyMS() float64 { return r.ProvisionedMS - r.ConnectedMS }

// FlowPhaseMS is t_flows_installed - t_tunnels_provisioned (one ovs-ofctl
// add-flows per gateway, in parallel).
func (r Result) FlowPhaseMS() float64 { return r.FlowsMS - r.ProvisionedMS }

// PingMS is t_usable - t_flows_installed (until every probe pair answered;
// includes ovs-vswitchd realizing the committed tunnel ports).
func (r Result) PingMS() float64 { return r.UsableMS - r.FlowsMS }

// TunnelsMS is the tunnel phase: t_usable - t_lab_up (provisioning,
// forwarding flows, until every probe pair answered).
func (r Result) TunnelsMS() float64 { return r.UsableMS - r.LabUpMS }

// CSVHeader is the header row of WriteCSV.
var CSVHeader = []string{"sites", "vms_per_site", "mode", "run", "tunnels", "ovsdb_txns", "probe_pairs", "tunnel_type", "delay_ms",
	"t_lab_up_ms", "t_ovsdb_connected_ms", "t_tunnels_provisioned_ms", "t_flows_installed_ms", "t_usable_ms", "load1"}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// WriteCSV writes the results, one row per run, under CSVHeader (RFC 4180).
func WriteCSV(w io.Writer, rs []Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, r := range rs {
		row := []string{strconv.Itoa(r.Sites), strconv.Itoa(r.VMs), r.Mode, strconv.Itoa(r.Run), strconv.Itoa(r.Tunnels),
			strconv.FormatUint(r.OVSDBTxns, 10), strconv.Itoa(r.ProbePairs), r.TunnelType,
			strconv.FormatFloat(r.DelayMS, 'f', -1, 64),
			ms(r.LabUpMS), ms(r.ConnectedMS), ms(r.ProvisionedMS), ms(r.FlowsMS), ms(r.UsableMS),
			strconv.FormatFloat(r.Load1, 'f', 2, 64)}
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

// ReadCSV parses what WriteCSV wrote (the header must match CSVHeader);
// errors name the line and column.
func ReadCSV(r io.Reader) ([]Result, error) {
	cr := csv.NewReader(r)
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read csv: %w", err)
	}
	if len(rows) == 0 || !slices.Equal(rows[0], CSVHeader) {
		return nil, fmt.Errorf("read csv: header is not %v", CSVHeader)
	}
	var out []Result
	for k, row := range rows[1:] {
		line := k + 2
		var perr error
		num := func(col int) float64 {
			v, err := strconv.ParseFloat(row[col], 64)
			if err != nil && perr == nil {
				perr = fmt.Errorf("read csv: line %d, column %s: %q is not a number", line, CSVHeader[col], row[col])
			}
			return v
		}
		r := Result{Sites: int(num(0)), VMs: int(num(1)), Mode: row[2], Run: int(num(3)), Tunnels: int(num(4)),
			OVSDBTxns: uint64(num(5)), ProbePairs: int(num(6)), TunnelType: row[7], DelayMS: num(8),
			LabUpMS: num(9), ConnectedMS: num(10), ProvisionedMS: num(11), FlowsMS: num(12), UsableMS: num(13), Load1: num(14)}
		if perr != nil {
			return nil, perr
		}
		out = append(out, r)
	}
	return out, nil
}

// Median is the aggregate of the runs of one (sites, vms, mode): the
// median of every timestamp and phase over the runs.
type Median struct {
	Sites, VMs int
	Mode       string
	Tunnels    int
	Runs       int
	OVSDBTxns  float64
	// LabUpMS, ProvisionedMS and UsableMS are the medians of the timestamps.
	LabUpMS, ProvisionedMS, UsableMS float64
	// ProvisionMS, TunnelsMS, ConnectMS, ApplyMS, FlowPhaseMS and PingMS
	// are the medians of the phases (the Result methods of the same names),
	// not differences of medians.
	ProvisionMS, TunnelsMS                  float64
	ConnectMS, ApplyMS, FlowPhaseMS, PingMS float64
	// Load1 is the median load average at the start of the runs.
	Load1 float64
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
		out = append(out, Median{Sites: k.sites, VMs: k.vms, Mode: k.mode, Tunnels: g[0].Tunnels, Runs: len(g),
			OVSDBTxns:     col(func(r Result) float64 { return float64(r.OVSDBTxns) }),
			LabUpMS:       col(func(r Result) float64 { return r.LabUpMS }),
			ProvisionedMS: col(func(r Result) float64 { return r.ProvisionedMS }),
			UsableMS:      col(func(r Result) float64 { return r.UsableMS }),
			ProvisionMS:   col(Result.ProvisionMS),
			TunnelsMS:     col(Result.TunnelsMS),
			ConnectMS:     col(Result.ConnectMS),
			ApplyMS:       col(Result.ApplyMS),
			FlowPhaseMS:   col(Result.FlowPhaseMS),
			PingMS:        col(Result.PingMS),
			Load1:         col(func(r Result) float64 { return r.Load1 }),
		})
	}
	return out
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

// MediansHeader is the header row of WriteMediansCSV.
var MediansHeader = []string{"sites", "vms_per_site", "mode", "tunnels", "runs", "ovsdb_txns", "lab_up_ms", "provision_ms", "tunnels_ms",
	"t_usable_ms", "connect_ms", "apply_ms", "flows_ms", "ping_ms", "load1"}

// WriteMediansCSV writes one row per (sites, vms, mode) under MediansHeader:
// lab_up_ms = median t_lab_up, provision_ms = median of t_tunnels_provisioned
// - t_lab_up, tunnels_ms = median of t_usable - t_lab_up, t_usable_ms =
// median t_usable (the setup time); connect_ms, apply_ms, flows_ms and
// ping_ms are the medians of the four parts of the tunnel phase.
func WriteMediansCSV(w io.Writer, ms_ []Median) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(MediansHeader); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, m := range ms_ {
		if err := cw.Write([]string{strconv.Itoa(m.Sites), strconv.Itoa(m.VMs), m.Mode, strconv.Itoa(m.Tunnels),
			strconv.Itoa(m.Runs), strconv.FormatFloat(m.OVSDBTxns, 'f', -1, 64), ms(m.LabUpMS), ms(m.ProvisionMS),
			ms(m.TunnelsMS), ms(m.UsableMS), ms(m.ConnectMS), ms(m.ApplyMS), ms(m.FlowPhaseMS), ms(m.PingMS),
			strconv.FormatFloat(m.Load1, 'f', 2, 64)}); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}
