package controlplane

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
)

// Summary is the median of one arm's successful measurements at one number
// of networks.
type Summary struct {
	Arm      string
	Networks int
	// Reps is the number of successful measurements, Failed of the others
	// (FailReason is the last failure's error).
	Reps, Failed int
	FailReason   string
	// Medians over the successful measurements.
	RespPerSec, AnsweredPerSec, LatencyMS, RTTMS, ControllerCPUPct, CPUPerRequestUS float64
	// LatencyMinMS and LatencyMaxMS bound the measurements' latencies.
	LatencyMinMS, LatencyMaxMS float64
	// Lost and Timeouts are totals.
	Lost, Timeouts uint64
	// Load1 is the median load average before the measurements.
	Load1 float64
	// Commit is the measurements' commit (runinfo.JoinCommits of theirs).
	Commit string
}

// Overhead compares the hypervisor arm with the bare learning switch at one
// number of networks.
type Overhead struct {
	Networks int
	// BareMS and HypervisorMS are the median latencies per request.
	BareMS, HypervisorMS float64
	// OverheadMS = HypervisorMS - BareMS; OverheadPct relative to BareMS.
	OverheadMS, OverheadPct float64
	// PairedMinMS and PairedMaxMS bound the differences of the two arms'
	// measurements of the same repetition (taken back to back).
	PairedMinMS, PairedMaxMS float64
	// RTTOverheadMS is the same difference of ofbench's measured round
	// trips.
	RTTOverheadMS float64
	// BareCPUUS and HypervisorCPUUS are the median controller CPU times per
	// request (Measurement.CPUPerRequestUS) and CPUOverheadUS their
	// difference, in microseconds: the processing the virtualization adds
	// to one request, without the time spent waiting for a CPU.
	BareCPUUS, HypervisorCPUUS, CPUOverheadUS float64
	// WithinTarget says OverheadMS < TargetOverheadMS; WithinPaper says
	// OverheadMS < PaperOverheadMS.
	WithinTarget, WithinPaper bool
}

// Summarize groups ms by (networks, arm), in ascending networks and
// AllArms order.
func Summarize(ms []Measurement) []Summary {
	type key struct {
		n   int
		arm string
	}
	groups := map[key][]Measurement{}
	var keys []key
	for _, m := range ms {
		k := key{m.Networks, m.Arm}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], m)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.n != b.n {
			return a.n - b.n
		}
		return armIndex(a.arm) - armIndex(b.arm)
	})
	var out []Summary
	for _, k := range keys {
		s := Summary{Arm: k.arm, Networks: k.n}
		var resp, ans, lat, rtt, cpu, cpuReq, load []float64
		var commits []string
		for _, m := range groups[k] {
			load = append(load, m.Load1)
			commits = append(commits, m.Commit)
			if !m.OK() {
				s.Failed++
				s.FailReason = m.Err
				continue
			}
			s.Reps++
			resp, ans, lat = append(resp, m.RespPerSec), append(ans, m.AnsweredPerSec), append(lat, m.LatencyMS)
			rtt, cpu, cpuReq = append(rtt, m.RTTMS), append(cpu, m.ControllerCPUPct), append(cpuReq, m.CPUPerRequestUS)
			s.Lost += m.Lost
			s.Timeouts += m.Timeouts
		}
		s.Load1, s.Commit = Median(load), runinfo.JoinCommits(commits)
		if s.Reps > 0 {
			s.RespPerSec, s.AnsweredPerSec, s.LatencyMS = Median(resp), Median(ans), Median(lat)
			s.RTTMS, s.ControllerCPUPct, s.CPUPerRequestUS = Median(rtt), Median(cpu), Median(cpuReq)
			s.LatencyMinMS, s.LatencyMaxMS = slices.Min(lat), slices.Max(lat)
		}
		out = append(out, s)
	}
	return out
}

func armIndex(a string) int {
	if i := slices.Index(AllArms(), a); i >= 0 {
		return i
	}
	return len(AllArms())
}

// Overheads returns the hypervisor's overhead over the bare learning switch
// at every number of networks where both have successful measurements.
func Overheads(ms []Measurement, ss []Summary) []Overhead {
	find := func(n int, arm string) *Summary {
		for i := range ss {
			if ss[i].Networks == n && ss[i].Arm == arm && ss[i].Reps > 0 {
				return &ss[i]
			}
		}
		return nil
	}
	var out []Overhead
	for _, s := range ss {
		if s.Arm != ArmBare || s.Reps == 0 {
			continue
		}
		h := find(s.Networks, ArmHypervisor)
		if h == nil {
			continue
		}
		o := Overhead{Networks: s.Networks, BareMS: s.LatencyMS, HypervisorMS: h.LatencyMS,
			OverheadMS: h.LatencyMS - s.LatencyMS, RTTOverheadMS: h.RTTMS - s.RTTMS,
			BareCPUUS: s.CPUPerRequestUS, HypervisorCPUUS: h.CPUPerRequestUS, CPUOverheadUS: h.CPUPerRequestUS - s.CPUPerRequestUS}
		if s.LatencyMS > 0 {
			o.OverheadPct = 100 * o.OverheadMS / s.LatencyMS
		}
		var paired []float64
		for _, b := range ms {
			if b.Arm != ArmBare || b.Networks != s.Networks || !b.OK() {
				continue
			}
			for _, v := range ms {
				if v.Arm == ArmHypervisor && v.Networks == s.Networks && v.Rep == b.Rep && v.OK() {
					paired = append(paired, v.LatencyMS-b.LatencyMS)
				}
			}
		}
		if len(paired) > 0 {
			o.PairedMinMS, o.PairedMaxMS = slices.Min(paired), slices.Max(paired)
		} else {
			o.PairedMinMS, o.PairedMaxMS = math.NaN(), math.NaN()
		}
		o.WithinTarget = o.OverheadMS < TargetOverheadMS
		o.WithinPaper = o.OverheadMS < PaperOverheadMS
		out = append(out, o)
	}
	return out
}

// Median of v (mean of the middle two for even lengths); 0 when empty.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// MeasurementHeader returns the columns of WriteMeasurements.
func MeasurementHeader() []string {
	return []string{"arm", "networks", "rep", "switches", "resp_per_s", "answered_per_s", "latency_ms", "rtt_ms", "lost", "timeouts",
		"ctrl_errors", "switch_errors", "ignored_flow_mods", "controller_cpu_pct", "cpu_us_per_request", "ofbench_cpu_pct", "load1", "start", "error", "commit"}
}

// WriteMeasurements writes one CSV row per measurement.
func WriteMeasurements(w io.Writer, ms []Measurement) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(MeasurementHeader()); err != nil {
		return err
	}
	for _, m := range ms {
		row := []string{m.Arm, strconv.Itoa(m.Networks), strconv.Itoa(m.Rep), strconv.Itoa(m.Switches), f1(m.RespPerSec), f1(m.AnsweredPerSec),
			f4(m.LatencyMS), f4(m.RTTMS), u(m.Lost), u(m.Timeouts), u(m.CtrlErrors), u(m.SwitchErrors), u(m.IgnoredFlowMods),
			f1(m.ControllerCPUPct), f2(m.CPUPerRequestUS), f1(m.OfbenchCPUPct), strconv.FormatFloat(m.Load1, 'f', 2, 64), m.Start.Format(time.RFC3339), m.Err, m.Commit}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadMeasurements reads a CSV written by WriteMeasurements, also one
// written before its last column (commit) existed (Commit ""). Errors name
// the line and column.
func ReadMeasurements(r io.Reader) ([]Measurement, error) {
	cr := csv.NewReader(r)
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	hdr := MeasurementHeader()
	if len(rows) == 0 || !slices.Equal(rows[0], hdr) && !slices.Equal(rows[0], hdr[:len(hdr)-1]) {
		return nil, errors.New("not a controlplane measurements CSV (header differs)")
	}
	var out []Measurement
	for i, row := range rows[1:] {
		line := i + 2
		var errs []error
		num := func(col int) float64 {
			v, err := strconv.ParseFloat(row[col], 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d, column %s: %w", line, MeasurementHeader()[col], err))
			}
			return v
		}
		m := Measurement{Arm: row[0], Networks: int(num(1)), Rep: int(num(2)), Switches: int(num(3)), RespPerSec: num(4), AnsweredPerSec: num(5),
			LatencyMS: num(6), RTTMS: num(7), Lost: uint64(num(8)), Timeouts: uint64(num(9)), CtrlErrors: uint64(num(10)),
			SwitchErrors: uint64(num(11)), IgnoredFlowMods: uint64(num(12)), ControllerCPUPct: num(13), CPUPerRequestUS: num(14),
			OfbenchCPUPct: num(15), Load1: num(16), Err: row[18]}
		if len(row) > 19 {
			m.Commit = row[19]
		}
		if t, err := time.Parse(time.RFC3339, row[17]); err == nil {
			m.Start = t
		} else {
			errs = append(errs, fmt.Errorf("line %d, column start: %w", line, err))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// SummaryHeader returns the columns of WriteSummaries.
func SummaryHeader() []string {
	return []string{"networks", "arm", "reps", "failed", "resp_per_s", "answered_per_s", "latency_ms", "latency_min_ms", "latency_max_ms",
		"rtt_ms", "controller_cpu_pct", "cpu_us_per_request", "lost", "timeouts", "load1", "overhead_ms", "overhead_pct", "paired_min_ms", "paired_max_ms",
		"within_target_0.01ms", "within_paper_0.1ms", "cpu_overhead_us", "fail_reason", "commit"}
}

// WriteSummaries writes one CSV row per summary; the hypervisor's rows
// carry its overhead over the bare learning switch.
func WriteSummaries(w io.Writer, ss []Summary, ohs []Overhead) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(SummaryHeader()); err != nil {
		return err
	}
	for _, s := range ss {
		row := []string{strconv.Itoa(s.Networks), s.Arm, strconv.Itoa(s.Reps), strconv.Itoa(s.Failed), f1(s.RespPerSec), f1(s.AnsweredPerSec),
			f4(s.LatencyMS), f4(s.LatencyMinMS), f4(s.LatencyMaxMS), f4(s.RTTMS), f1(s.ControllerCPUPct), f2(s.CPUPerRequestUS), u(s.Lost), u(s.Timeouts),
			strconv.FormatFloat(s.Load1, 'f', 2, 64), "", "", "", "", "", "", "", s.FailReason, s.Commit}
		if s.Arm == ArmHypervisor {
			for _, o := range ohs {
				if o.Networks == s.Networks {
					row[15], row[16], row[17], row[18] = f4(o.OverheadMS), f1(o.OverheadPct), f4(o.PairedMinMS), f4(o.PairedMaxMS)
					row[19], row[20], row[21] = strconv.FormatBool(o.WithinTarget), strconv.FormatBool(o.WithinPaper), f2(o.CPUOverheadUS)
				}
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func f4(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
func u(v uint64) string   { return strconv.FormatUint(v, 10) }

// MarkdownTable renders the summaries as a table: one row per number of
// networks, latency per request (ms) and responses/s per arm, then the
// hypervisor's overhead.
func MarkdownTable(ss []Summary, ohs []Overhead) string {
	var arms []string
	var ns []int
	for _, s := range ss {
		if !slices.Contains(arms, s.Arm) {
			arms = append(arms, s.Arm)
		}
		if !slices.Contains(ns, s.Networks) {
			ns = append(ns, s.Networks)
		}
	}
	slices.SortFunc(arms, func(a, b string) int { return armIndex(a) - armIndex(b) })
	var b strings.Builder
	b.WriteString("| networks |")
	for _, a := range arms {
		fmt.Fprintf(&b, " %s ms/req (resp/s) |", ArmLabel(a))
	}
	b.WriteString(" overhead ms | < 0.01 ms | < 0.1 ms | CPU us/req bare, Skyvisor (+overhead) | load1 |\n|---:|")
	for range arms {
		b.WriteString("---:|")
	}
	b.WriteString("---:|:---:|:---:|---:|---:|\n")
	for _, n := range ns {
		fmt.Fprintf(&b, "| %d |", n)
		var load []float64
		for _, a := range arms {
			cell := " — |"
			for _, s := range ss {
				if s.Networks == n && s.Arm == a {
					load = append(load, s.Load1)
					switch {
					case s.Reps > 0:
						cell = fmt.Sprintf(" %.4f (%.1fk) |", s.LatencyMS, s.RespPerSec/1000)
					case strings.HasPrefix(s.FailReason, "skipped"):
						cell = " skipped |"
					default:
						cell = " failed |"
					}
				}
			}
			b.WriteString(cell)
		}
		ov := " — | | | — |"
		for _, o := range ohs {
			if o.Networks == n {
				ov = fmt.Sprintf(" %+.4f | %s | %s | %.1f, %.1f (%+.1f) |", o.OverheadMS, yesNo(o.WithinTarget), yesNo(o.WithinPaper),
					o.BareCPUUS, o.HypervisorCPUUS, o.CPUOverheadUS)
			}
		}
		fmt.Fprintf(&b, "%s %.2f |\n", ov, Median(load))
	}
	return b.String()
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// ArmLabel is the arm's name in tables and plots.
func ArmLabel(a string) string {
	switch a {
	case ArmBare:
		return "bare learning switch"
	case ArmHypervisor:
		return "learning on Skyvisor"
	case ArmOVS:
		return "ovs-testcontroller"
	case ArmOSKen:
		return "os-ken learning"
	}
	return a
}
