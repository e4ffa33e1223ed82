package dataplane

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
)

// Measurement is one ping + iperf3 measurement of one mode at one point.
type Measurement struct {
	Point
	// Mode is ModeDirect, ModePlain or ModeVirtualized; Rep counts from 1.
	Mode string
	Rep  int
	// Ping: echo requests sent and replies received; RTTs in ms.
	PingSent, PingRecv           int
	RTTMinMS, RTTAvgMS, RTTMedMS float64
	// Mbps is the iperf3 receiver throughput in Mbit/s (10^6 bit/s);
	// Retransmits the sender's TCP retransmissions.
	Mbps        float64
	Retransmits int
	// PathPackets is the evidence of the path: packets counted (after the
	// measurement, since the mode's flow entries were installed) by the
	// flow entries that only this mode uses at site c1: direct, the
	// gateway's entry towards its direct WAN port; plain, the gateway's
	// entry towards the tunnel; virtualized, the edge entries that rewrite
	// eth_src to the fabric MAC.
	PathPackets int
	// Load1 is the 1-minute load average when the measurement started.
	Load1 float64
	// Commit is the commit of the code that measured (runinfo.Commit); ""
	// in files written before the column existed.
	Commit string
	// HostMTU is the hosts' interface MTU during the measurement (bytes;
	// a ping of that size with don't-fragment crossed first); 0 in files
	// written before the column existed.
	HostMTU int
}

// Summary compares the modes at one point: medians over the repetitions.
// A mode not measured at the point gives NaN, and so do the overheads
// that need it.
type Summary struct {
	Point
	Reps int
	// DirectRTTMS, PlainRTTMS, VirtRTTMS are medians of the
	// per-measurement median RTTs (ms).
	DirectRTTMS, PlainRTTMS, VirtRTTMS float64
	// DirectMbps, PlainMbps, VirtMbps are medians of the throughputs (Mbit/s).
	DirectMbps, PlainMbps, VirtMbps float64
	// RTTOverheadPct = (virt - plain) / plain * 100: positive when the
	// virtualized RTT is longer; the pipeline (MAC rewriting, tenant
	// tables) alone, both modes tunnelled.
	RTTOverheadPct float64
	// TputOverheadPct = (plain - virt) / plain * 100: positive when the
	// virtualized throughput is lower.
	TputOverheadPct float64
	// RTTOverheadDirectPct = (virt - direct) / direct * 100 and
	// TputOverheadDirectPct = (direct - virt) / direct * 100: the paper's
	// comparison, virtualized (tunnels and pipeline) against neither.
	RTTOverheadDirectPct, TputOverheadDirectPct float64
	// RTTTunnelPct = (plain - direct) / direct * 100 and TputTunnelPct =
	// (direct - plain) / direct * 100: the tunnels alone.
	RTTTunnelPct, TputTunnelPct float64
	// Load1 is the median load average over the point's measurements.
	Load1 float64
	// Commit is the measurements' commit (runinfo.JoinCommits of theirs).
	Commit string
}

// PingStats parses ping's output (iputils, -n): the "time=X ms" of every
// reply and the "N packets transmitted, M received" line. It returns the
// RTTs in ms in reply order. Error: no statistics line.
func PingStats(out string) (sent, recv int, rtts []float64, err error) {
	stats := false
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "time="); i >= 0 && strings.Contains(l, "bytes from") {
			f := strings.Fields(l[i+5:])
			if len(f) > 0 {
				if v, perr := strconv.ParseFloat(f[0], 64); perr == nil {
					rtts = append(rtts, v)
				}
			}
		}
		if strings.Contains(l, "packets transmitted") {
			var n1, n2 int
			parts := strings.Split(l, ",")
			if len(parts) >= 2 {
				_, e1 := fmt.Sscanf(strings.TrimSpace(parts[0]), "%d packets transmitted", &n1)
				_, e2 := fmt.Sscanf(strings.TrimSpace(parts[1]), "%d", &n2)
				if e1 == nil && e2 == nil {
					sent, recv, stats = n1, n2, true
				}
			}
		}
	}
	if !stats {
		return 0, 0, nil, fmt.Errorf("ping output has no statistics line")
	}
	return sent, recv, rtts, nil
}

// IperfResult parses `iperf3 -J` client output: the receiver's bits per
// second (end.sum_received) in Mbit/s and the sender's retransmits. Error:
// not JSON, an "error" field, or no sum_received.
func IperfResult(out []byte) (mbps float64, retransmits int, err error) {
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived *struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, 0, fmt.Errorf("iperf3 -J output: %w", err)
	}
	if r.Error != "" {
		return 0, 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived == nil {
		return 0, 0, fmt.Errorf("iperf3 -J output: no end.sum_received")
	}
	return r.End.SumReceived.BitsPerSecond / 1e6, r.End.SumSent.Retransmits, nil
}

// Median of xs (NaN for none); xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Mean of xs (NaN for none).
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

// Overhead returns (virt - plain) / plain * 100, NaN when plain is 0 or
// either is NaN.
func Overhead(plain, virt float64) float64 {
	if plain == 0 || math.IsNaN(plain) || math.IsNaN(virt) {
		return math.NaN()
	}
	return (virt - plain) / plain * 100
}

// Summarize groups ms by point (in order of first appearance) and compares
// the modes: medians over the repetitions, RTT overhead and throughput
// overhead (loss) in percent.
func Summarize(ms []Measurement) []Summary {
	var order []Point
	by := map[Point][]Measurement{}
	for _, m := range ms {
		if _, ok := by[m.Point]; !ok {
			order = append(order, m.Point)
		}
		by[m.Point] = append(by[m.Point], m)
	}
	var out []Summary
	for _, p := range order {
		rtt, mb := map[string][]float64{}, map[string][]float64{}
		var load []float64
		var commits []string
		reps := 0
		for _, m := range by[p] {
			load = append(load, m.Load1)
			commits = append(commits, m.Commit)
			rtt[m.Mode], mb[m.Mode] = append(rtt[m.Mode], m.RTTMedMS), append(mb[m.Mode], m.Mbps)
			reps = max(reps, m.Rep)
		}
		s := Summary{Point: p, Reps: reps,
			DirectRTTMS: Median(rtt[ModeDirect]), PlainRTTMS: Median(rtt[ModePlain]), VirtRTTMS: Median(rtt[ModeVirtualized]),
			DirectMbps: Median(mb[ModeDirect]), PlainMbps: Median(mb[ModePlain]), VirtMbps: Median(mb[ModeVirtualized]),
			Load1: Median(load), Commit: runinfo.JoinCommits(commits)}
		s.RTTOverheadPct = Overhead(s.PlainRTTMS, s.VirtRTTMS)
		s.TputOverheadPct = -Overhead(s.PlainMbps, s.VirtMbps)
		s.RTTOverheadDirectPct = Overhead(s.DirectRTTMS, s.VirtRTTMS)
		s.TputOverheadDirectPct = -Overhead(s.DirectMbps, s.VirtMbps)
		s.RTTTunnelPct = Overhead(s.DirectRTTMS, s.PlainRTTMS)
		s.TputTunnelPct = -Overhead(s.DirectMbps, s.PlainMbps)
		out = append(out, s)
	}
	return out
}

// MeasurementHeader returns the header of the per-measurement CSV.
func MeasurementHeader() []string {
	return []string{"tunnel", "delay_ms", "wg", "mode", "rep", "ping_sent", "ping_recv",
		"rtt_min_ms", "rtt_avg_ms", "rtt_median_ms", "mbps", "retransmits", "path_packets", "load1", "commit", "host_mtu"}
}

// WriteMeasurements writes ms as CSV (MeasurementHeader; wg is on/off;
// RTTs in ms with 3 decimals, Mbit/s with 1; host_mtu empty when 0).
func WriteMeasurements(w io.Writer, ms []Measurement) error {
	cw := csv.NewWriter(w)
	cw.Write(MeasurementHeader())
	for _, m := range ms {
		cw.Write([]string{m.Tunnel, g(m.DelayMS), onOff(m.WireGuard), m.Mode, strconv.Itoa(m.Rep),
			strconv.Itoa(m.PingSent), strconv.Itoa(m.PingRecv), f3(m.RTTMinMS), f3(m.RTTAvgMS), f3(m.RTTMedMS),
			f1(m.Mbps), strconv.Itoa(m.Retransmits), strconv.Itoa(m.PathPackets), f2(m.Load1), m.Commit, mtuString(m.HostMTU)})
	}
	cw.Flush()
	return cw.Error()
}

func mtuString(mtu int) string {
	if mtu == 0 {
		return ""
	}
	return strconv.Itoa(mtu)
}

// ReadMeasurements reads a CSV written by WriteMeasurements, also one
// written before the last column (host_mtu; HostMTU 0, and only the modes
// plain and virtualized) or the last two (commit, host_mtu; Commit "")
// existed. Errors name the line and column.
func ReadMeasurements(r io.Reader) ([]Measurement, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked against the header below
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	measurementHeader := MeasurementHeader()
	n := len(measurementHeader)
	if len(recs) == 0 || !slices.Equal(recs[0], measurementHeader) && !slices.Equal(recs[0], measurementHeader[:n-1]) &&
		!slices.Equal(recs[0], measurementHeader[:n-2]) {
		return nil, fmt.Errorf("line 1: want header %s", strings.Join(measurementHeader, ","))
	}
	var out []Measurement
	for i, rec := range recs[1:] {
		line := i + 2
		if len(rec) != len(recs[0]) {
			return nil, fmt.Errorf("line %d: %d fields, want %d", line, len(rec), len(recs[0]))
		}
		var m Measurement
		var errs []string
		num := func(col int) float64 {
			v, err := strconv.ParseFloat(rec[col], 64)
			if err != nil {
				errs = append(errs, measurementHeader[col])
			}
			return v
		}
		m.Tunnel = rec[0]
		m.DelayMS = num(1)
		switch rec[2] {
		case "on":
			m.WireGuard = true
		case "off":
		default:
			errs = append(errs, "wg")
		}
		m.Mode = rec[3]
		if !slices.Contains(AllModes, m.Mode) {
			errs = append(errs, "mode")
		}
		m.Rep, m.PingSent, m.PingRecv = int(num(4)), int(num(5)), int(num(6))
		m.RTTMinMS, m.RTTAvgMS, m.RTTMedMS, m.Mbps = num(7), num(8), num(9), num(10)
		m.Retransmits, m.PathPackets, m.Load1 = int(num(11)), int(num(12)), num(13)
		if len(rec) > 14 {
			m.Commit = rec[14]
		}
		if len(rec) > 15 && rec[15] != "" {
			m.HostMTU = int(num(15))
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("line %d: bad %s", line, strings.Join(errs, ", "))
		}
		out = append(out, m)
	}
	return out, nil
}

// SummaryHeader returns the header of the summary CSV.
func SummaryHeader() []string {
	return []string{"tunnel", "delay_ms", "wg", "reps",
		"direct_rtt_ms", "plain_rtt_ms", "virt_rtt_ms", "rtt_overhead_pct", "rtt_overhead_vs_direct_pct", "rtt_tunnel_pct",
		"direct_mbps", "plain_mbps", "virt_mbps", "tput_overhead_pct", "tput_overhead_vs_direct_pct", "tput_tunnel_pct",
		"load1", "commit"}
}

// WriteSummaries writes ss as CSV: medians over the repetitions per mode
// and the overheads in percent (Summary): *_overhead_pct virtualized vs
// plain, *_overhead_vs_direct_pct virtualized vs direct, *_tunnel_pct
// plain vs direct; RTT (x - base)/base, throughput (base - x)/base. A
// mode not measured leaves its cells and those of its overheads empty.
func WriteSummaries(w io.Writer, ss []Summary) error {
	cw := csv.NewWriter(w)
	cw.Write(SummaryHeader())
	for _, s := range ss {
		cw.Write([]string{s.Tunnel, g(s.DelayMS), onOff(s.WireGuard), strconv.Itoa(s.Reps),
			nan(f3, s.DirectRTTMS), nan(f3, s.PlainRTTMS), nan(f3, s.VirtRTTMS),
			nan(f1, s.RTTOverheadPct), nan(f1, s.RTTOverheadDirectPct), nan(f1, s.RTTTunnelPct),
			nan(f1, s.DirectMbps), nan(f1, s.PlainMbps), nan(f1, s.VirtMbps),
			nan(f1, s.TputOverheadPct), nan(f1, s.TputOverheadDirectPct), nan(f1, s.TputTunnelPct),
			f2(s.Load1), s.Commit})
	}
	cw.Flush()
	return cw.Error()
}

// nan formats v with f, or "" for NaN (a mode not measured).
func nan(f func(float64) string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return f(v)
}

// MarkdownTable formats ss as a Markdown table: per mode the median RTT
// and throughput, and the overheads of the virtualized mode against
// direct (the paper's comparison) and against plain (the pipeline alone);
// "–" where a mode was not measured.
func MarkdownTable(ss []Summary) string {
	var b strings.Builder
	b.WriteString("| tunnel | delay (ms) | wg | reps | RTT direct (ms) | RTT plain (ms) | RTT virt (ms) | RTT virt vs direct | RTT virt vs plain " +
		"| Mbit/s direct | Mbit/s plain | Mbit/s virt | throughput loss virt vs direct | throughput loss virt vs plain | load1 |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	ms := func(v float64) string { return dash(v, "%.3f") }
	pct := func(v float64) string { return dash(v, "%+.1f %%") }
	mb := func(v float64) string { return dash(v, "%.0f") }
	for _, s := range ss {
		fmt.Fprintf(&b, "| %s | %g | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f |\n",
			s.Tunnel, s.DelayMS, onOff(s.WireGuard), s.Reps, ms(s.DirectRTTMS), ms(s.PlainRTTMS), ms(s.VirtRTTMS),
			pct(s.RTTOverheadDirectPct), pct(s.RTTOverheadPct), mb(s.DirectMbps), mb(s.PlainMbps), mb(s.VirtMbps),
			pct(s.TputOverheadDirectPct), pct(s.TputOverheadPct), s.Load1)
	}
	return b.String()
}

func dash(v float64, format string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

func g(v float64) string  { return strconv.FormatFloat(v, 'g', -1, 64) }
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// Comparison pools, over the points of one run where both were
// measured, mode A against mode B.
type Comparison struct {
	A, B string
	// Points is the number of points with both modes measured.
	Points int
	// RTTDiffMedMS and RTTDiffMaxAbsMS are the median and the largest
	// absolute per-point difference A - B of the median RTTs (ms).
	RTTDiffMedMS, RTTDiffMaxAbsMS float64
	// TputRatioGeo is the geometric mean over the points of A / B median
	// throughput (1 = no difference); ALower counts the points where A's
	// median is the lower one.
	TputRatioGeo float64
	ALower       int
}

// Overall pools the points of one run.
type Overall struct {
	// Comparisons are virtualized vs direct (the paper's), virtualized vs
	// plain (the pipeline) and plain vs direct (the tunnels), in that
	// order.
	Comparisons []Comparison
	// SpreadPct is the noise floor per mode: the median over the points
	// of the mode's own throughput spread (max - min) / median over its
	// repetitions, in percent (NaN without two repetitions).
	SpreadPct map[string]float64
}

// Compare pools mode a against mode b over ss (Comparison).
func Compare(ss []Summary, a, b string) Comparison {
	c := Comparison{A: a, B: b}
	get := func(s Summary, mode string) (rtt, mbps float64) {
		switch mode {
		case ModeDirect:
			return s.DirectRTTMS, s.DirectMbps
		case ModePlain:
			return s.PlainRTTMS, s.PlainMbps
		}
		return s.VirtRTTMS, s.VirtMbps
	}
	var diffs []float64
	logSum := 0.0
	for _, s := range ss {
		ar, am := get(s, a)
		br, bm := get(s, b)
		if math.IsNaN(ar+am+br+bm) || am <= 0 || bm <= 0 {
			continue
		}
		c.Points++
		d := ar - br
		diffs = append(diffs, d)
		c.RTTDiffMaxAbsMS = math.Max(c.RTTDiffMaxAbsMS, math.Abs(d))
		logSum += math.Log(am / bm)
		if am < bm {
			c.ALower++
		}
	}
	if c.Points == 0 {
		c.RTTDiffMedMS, c.RTTDiffMaxAbsMS, c.TputRatioGeo = math.NaN(), math.NaN(), math.NaN()
		return c
	}
	c.RTTDiffMedMS = Median(diffs)
	c.TputRatioGeo = math.Exp(logSum / float64(c.Points))
	return c
}

// Pool computes Overall from the measurements and their summaries.
func Pool(ms []Measurement, ss []Summary) Overall {
	o := Overall{Comparisons: []Comparison{
		Compare(ss, ModeVirtualized, ModeDirect), Compare(ss, ModeVirtualized, ModePlain), Compare(ss, ModePlain, ModeDirect)},
		SpreadPct: map[string]float64{}}
	for _, mode := range AllModes {
		var spreads []float64
		for _, s := range ss {
			var xs []float64
			for _, m := range ms {
				if m.Point == s.Point && m.Mode == mode {
					xs = append(xs, m.Mbps)
				}
			}
			if len(xs) > 1 && Median(xs) > 0 {
				spreads = append(spreads, (slices.Max(xs)-slices.Min(xs))/Median(xs)*100)
			}
		}
		o.SpreadPct[mode] = Median(spreads)
	}
	return o
}

// Lines describes o in a few lines for the command's output: two per
// comparison with points, then the noise floor.
func (o Overall) Lines() []string {
	var out []string
	for _, c := range o.Comparisons {
		if c.Points == 0 {
			continue
		}
		out = append(out,
			fmt.Sprintf("RTT: %s - %s over %d points: median %+.3f ms, largest |difference| %.3f ms", c.A, c.B, c.Points, c.RTTDiffMedMS, c.RTTDiffMaxAbsMS),
			fmt.Sprintf("throughput: geometric mean of %s/%s %.3f (%+.1f %%); %s lower at %d of %d points",
				c.A, c.B, c.TputRatioGeo, (c.TputRatioGeo-1)*100, c.A, c.ALower, c.Points))
	}
	var noise []string
	for _, mode := range AllModes {
		if v := o.SpreadPct[mode]; !math.IsNaN(v) {
			noise = append(noise, fmt.Sprintf("%s %.0f %%", mode, v))
		}
	}
	if len(noise) > 0 {
		out = append(out, "noise: each mode's own throughput spread (max-min)/median over its repetitions, median over the points: "+strings.Join(noise, ", "))
	}
	return out
}
