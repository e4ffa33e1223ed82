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
	// Mode is ModePlain or ModeVirtualized; Rep counts from 1.
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
	// measurement, cumulative on this lab) by the flow entries that only
	// this mode uses at site c1: plain, the gateway's entry towards the
	// tunnel; virtualized, the edge entries that rewrite eth_src to the
	// fabric MAC.
	PathPackets int
	// Load1 is the 1-minute load average when the measurement started.
	Load1 float64
	// Commit is the commit of the code that measured (runinfo.Commit); ""
	// in files written before the column existed.
	Commit string
}

// Summary compares the modes at one point: medians over the repetitions.
type Summary struct {
	Point
	Reps int
	// PlainRTTMS, VirtRTTMS are medians of the per-measurement median RTTs (ms).
	PlainRTTMS, VirtRTTMS float64
	// PlainMbps, VirtMbps are medians of the throughputs (Mbit/s).
	PlainMbps, VirtMbps float64
	// RTTOverheadPct = (virt - plain) / plain * 100: positive when the
	// virtualized RTT is longer.
	RTTOverheadPct float64
	// TputOverheadPct = (plain - virt) / plain * 100: positive when the
	// virtualized throughput is lower.
	TputOverheadPct float64
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
		var prtt, vrtt, pmb, vmb, load []float64
		var commits []string
		reps := 0
		for _, m := range by[p] {
			load = append(load, m.Load1)
			commits = append(commits, m.Commit)
			switch m.Mode {
			case ModePlain:
				prtt, pmb = append(prtt, m.RTTMedMS), append(pmb, m.Mbps)
			case ModeVirtualized:
				vrtt, vmb = append(vrtt, m.RTTMedMS), append(vmb, m.Mbps)
			}
			reps = max(reps, m.Rep)
		}
		s := Summary{Point: p, Reps: reps, PlainRTTMS: Median(prtt), VirtRTTMS: Median(vrtt),
			PlainMbps: Median(pmb), VirtMbps: Median(vmb), Load1: Median(load),
			Commit: runinfo.JoinCommits(commits)}
		s.RTTOverheadPct = Overhead(s.PlainRTTMS, s.VirtRTTMS)
		s.TputOverheadPct = -Overhead(s.PlainMbps, s.VirtMbps)
		out = append(out, s)
	}
	return out
}

// MeasurementHeader returns the header of the per-measurement CSV.
func MeasurementHeader() []string {
	return []string{"tunnel", "delay_ms", "wg", "mode", "rep", "ping_sent", "ping_recv",
		"rtt_min_ms", "rtt_avg_ms", "rtt_median_ms", "mbps", "retransmits", "path_packets", "load1", "commit"}
}

// WriteMeasurements writes ms as CSV (MeasurementHeader; wg is on/off;
// RTTs in ms with 3 decimals, Mbit/s with 1).
func WriteMeasurements(w io.Writer, ms []Measurement) error {
	cw := csv.NewWriter(w)
	cw.Write(MeasurementHeader())
	for _, m := range ms {
		cw.Write([]string{m.Tunnel, g(m.DelayMS), onOff(m.WireGuard), m.Mode, strconv.Itoa(m.Rep),
			strconv.Itoa(m.PingSent), strconv.Itoa(m.PingRecv), f3(m.RTTMinMS), f3(m.RTTAvgMS), f3(m.RTTMedMS),
			f1(m.Mbps), strconv.Itoa(m.Retransmits), strconv.Itoa(m.PathPackets), f2(m.Load1), m.Commit})
	}
	cw.Flush()
	return cw.Error()
}

// ReadMeasurements reads a CSV written by WriteMeasurements, also one
// written before the last column (commit) existed (Commit ""). Errors name
// the line and column.
func ReadMeasurements(r io.Reader) ([]Measurement, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked against the header below
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	measurementHeader := MeasurementHeader()
	old := measurementHeader[:len(measurementHeader)-1]
	if len(recs) == 0 || !slices.Equal(recs[0], measurementHeader) && !slices.Equal(recs[0], old) {
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
		if m.Mode != ModePlain && m.Mode != ModeVirtualized {
			errs = append(errs, "mode")
		}
		m.Rep, m.PingSent, m.PingRecv = int(num(4)), int(num(5)), int(num(6))
		m.RTTMinMS, m.RTTAvgMS, m.RTTMedMS, m.Mbps = num(7), num(8), num(9), num(10)
		m.Retransmits, m.PathPackets, m.Load1 = int(num(11)), int(num(12)), num(13)
		if len(rec) > 14 {
			m.Commit = rec[14]
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
	return []string{"tunnel", "delay_ms", "wg", "reps", "plain_rtt_ms", "virt_rtt_ms", "rtt_overhead_pct",
		"plain_mbps", "virt_mbps", "tput_overhead_pct", "load1", "commit"}
}

// WriteSummaries writes ss as CSV: medians over the repetitions, RTT
// overhead (virt - plain)/plain and throughput overhead (plain -
// virt)/plain, both in percent.
func WriteSummaries(w io.Writer, ss []Summary) error {
	cw := csv.NewWriter(w)
	cw.Write(SummaryHeader())
	for _, s := range ss {
		cw.Write([]string{s.Tunnel, g(s.DelayMS), onOff(s.WireGuard), strconv.Itoa(s.Reps), f3(s.PlainRTTMS), f3(s.VirtRTTMS),
			f1(s.RTTOverheadPct), f1(s.PlainMbps), f1(s.VirtMbps), f1(s.TputOverheadPct), f2(s.Load1), s.Commit})
	}
	cw.Flush()
	return cw.Error()
}

// MarkdownTable formats ss as a Markdown table.
func MarkdownTable(ss []Summary) string {
	var b strings.Builder
	b.WriteString("| tunnel | delay (ms) | wg | reps | RTT plain (ms) | RTT virt (ms) | RTT overhead | Mbit/s plain | Mbit/s virt | throughput overhead | load1 |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "| %s | %g | %s | %d | %.3f | %.3f | %+.1f %% | %.0f | %.0f | %+.1f %% | %.1f |\n",
			s.Tunnel, s.DelayMS, onOff(s.WireGuard), s.Reps, s.PlainRTTMS, s.VirtRTTMS, s.RTTOverheadPct,
			s.PlainMbps, s.VirtMbps, s.TputOverheadPct, s.Load1)
	}
	return b.String()
}

func g(v float64) string  { return strconv.FormatFloat(v, 'g', -1, 64) }
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// Overall pools the points of one run.
type Overall struct {
	// Points is the number of points with both modes measured.
	Points int
	// RTTDiffMedMS and RTTDiffMaxAbsMS are the median and the largest
	// absolute per-point difference virt - plain of the median RTTs (ms).
	RTTDiffMedMS, RTTDiffMaxAbsMS float64
	// TputRatioGeo is the geometric mean over the points of virt / plain
	// median throughput (1 = no overhead); VirtSlower counts the points
	// where the virtualized median is the lower one.
	TputRatioGeo float64
	VirtSlower   int
	// PlainSpreadPct is the noise floor: the median over the points of the
	// plain mode's own spread (max - min) / median over its repetitions,
	// in percent.
	PlainSpreadPct float64
}

// Pool computes Overall from the measurements and their summaries.
func Pool(ms []Measurement, ss []Summary) Overall {
	var o Overall
	var diffs, spreads []float64
	logSum := 0.0
	for _, s := range ss {
		if math.IsNaN(s.PlainRTTMS+s.VirtRTTMS+s.PlainMbps+s.VirtMbps) || s.PlainMbps <= 0 || s.VirtMbps <= 0 {
			continue
		}
		o.Points++
		d := s.VirtRTTMS - s.PlainRTTMS
		diffs = append(diffs, d)
		o.RTTDiffMaxAbsMS = math.Max(o.RTTDiffMaxAbsMS, math.Abs(d))
		logSum += math.Log(s.VirtMbps / s.PlainMbps)
		if s.VirtMbps < s.PlainMbps {
			o.VirtSlower++
		}
		var plain []float64
		for _, m := range ms {
			if m.Point == s.Point && m.Mode == ModePlain {
				plain = append(plain, m.Mbps)
			}
		}
		if len(plain) > 1 {
			spreads = append(spreads, (slices.Max(plain)-slices.Min(plain))/Median(plain)*100)
		}
	}
	if o.Points == 0 {
		return Overall{TputRatioGeo: math.NaN(), RTTDiffMedMS: math.NaN(), PlainSpreadPct: math.NaN()}
	}
	o.RTTDiffMedMS = Median(diffs)
	o.TputRatioGeo = math.Exp(logSum / float64(o.Points))
	o.PlainSpreadPct = Median(spreads)
	return o
}

// Lines describes o in a few lines for the command's output.
func (o Overall) Lines() []string {
	return []string{
		fmt.Sprintf("RTT: virtualized - plain over %d points: median %+.3f ms, largest |difference| %.3f ms", o.Points, o.RTTDiffMedMS, o.RTTDiffMaxAbsMS),
		fmt.Sprintf("throughput: geometric mean of virtualized/plain %.3f (%+.1f %%); virtualized lower at %d of %d points",
			o.TputRatioGeo, (o.TputRatioGeo-1)*100, o.VirtSlower, o.Points),
		fmt.Sprintf("noise: the plain mode's own throughput spread (max-min)/median over its repetitions, median over the points: %.0f %%", o.PlainSpreadPct),
	}
}
