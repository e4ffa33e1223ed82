package ofbench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// RunStats are the figures of one run (measurement period).
type RunStats struct {
	// Index counts warmup runs and measured runs separately, from 1.
	Index int
	// Warmup is set for runs excluded from the summary.
	Warmup bool
	// Elapsed is the measured length of the period (close to
	// Config.Duration).
	Elapsed time.Duration
	// PerSwitch holds the responses (flow-mods + packet-outs) received by
	// each handshaken switch during the period, in switch order.
	PerSwitch []uint64
	// FlowMods and PacketOuts are the totals over all switches.
	FlowMods, PacketOuts uint64
	// Answered is the number of packet-ins answered (identified by a
	// response, see the package doc); RTTSum is the sum of their round
	// trips.
	Answered uint64
	RTTSum   time.Duration
	// Timeouts counts packet-ins given up after Config.Timeout; Lost
	// counts packet-ins presumed dropped by the controller because a later
	// one of the same switch was answered first.
	Timeouts, Lost uint64
	// ControllerErrors counts OFPT_ERROR messages from the controller.
	ControllerErrors uint64
	// IgnoredFlowMods counts flow-mods that are not responses (fabric
	// mode: the hypervisor's own entries, Fabric.IgnoreCookieMask); they
	// are in neither FlowMods nor PerSwitch.
	IgnoredFlowMods uint64
	// SelfCPU is the CPU time (user + system) the calling process used
	// during the run (getrusage RUSAGE_SELF): ofbench's own cost when run
	// by cmd/ofbench, so SelfCPU close to Elapsed means ofbench itself
	// may be the bottleneck.
	SelfCPU time.Duration
}

func newRunStats(prev, cur []snapshot, elapsed time.Duration) RunStats {
	rs := RunStats{Elapsed: elapsed, PerSwitch: make([]uint64, len(cur))}
	for i := range cur {
		p, c := prev[i], cur[i]
		fm, po := c.flowMods-p.flowMods, c.packetOuts-p.packetOuts
		rs.PerSwitch[i] = fm + po
		rs.FlowMods += fm
		rs.PacketOuts += po
		rs.Answered += c.answered - p.answered
		rs.RTTSum += time.Duration(c.rttNanos - p.rttNanos)
		rs.Timeouts += c.timeouts - p.timeouts
		rs.Lost += c.lost - p.lost
		rs.ControllerErrors += c.ctrlErrors - p.ctrlErrors
		rs.IgnoredFlowMods += c.ignored - p.ignored
	}
	return rs
}

// Responses is the number of flow-mods plus packet-outs in the run.
func (r RunStats) Responses() uint64 { return r.FlowMods + r.PacketOuts }

// perSec converts a count in this run to a rate per second.
func (r RunStats) perSec(n uint64) float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(n) / r.Elapsed.Seconds()
}

// Rate is responses per second, all switches together.
func (r RunStats) Rate() float64 { return r.perSec(r.Responses()) }

// AnsweredRate is answered packet-ins per second, all switches together.
func (r RunStats) AnsweredRate() float64 { return r.perSec(r.Answered) }

// SwitchRange returns the lowest and highest per-switch rate, responses/s.
func (r RunStats) SwitchRange() (lo, hi float64) {
	if len(r.PerSwitch) == 0 {
		return 0, 0
	}
	return r.perSec(slices.Min(r.PerSwitch)), r.perSec(slices.Max(r.PerSwitch))
}

// AvgRTT is the mean round trip of the packet-ins answered in the run, 0
// when none was.
func (r RunStats) AvgRTT() time.Duration {
	if r.Answered == 0 {
		return 0
	}
	return r.RTTSum / time.Duration(r.Answered)
}

// String is the per-run line, e.g.
//
//	run 3: 16 switches, 123456 responses/s (min/max per switch 7012/8123), 61728 answered/s, rtt 0.259 ms, 0 lost, 0 timeouts
//
// Warmup runs start with "warmup N:" instead.
func (r RunStats) String() string {
	kind := "run"
	if r.Warmup {
		kind = "warmup"
	}
	lo, hi := r.SwitchRange()
	return fmt.Sprintf("%s %d: %d switches, %.0f responses/s (min/max per switch %.0f/%.0f), %.0f answered/s, rtt %.3f ms, %d lost, %d timeouts",
		kind, r.Index, len(r.PerSwitch), r.Rate(), lo, hi, r.AnsweredRate(), ms(r.AvgRTT()), r.Lost, r.Timeouts)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Result is the outcome of Run.
type Result struct {
	// Config is the effective configuration (defaults filled in).
	Config Config
	// Switches is the number of switches that completed the handshake.
	Switches int
	// Warmups and Runs hold the per-run figures; only Runs enter the
	// summary below.
	Warmups []RunStats
	Runs    []RunStats
	// Median, Mean, Min, Max and StdDev (population) of Runs' Rate, in
	// responses per second.
	Median, Mean, Min, Max, StdDev float64
	// AnsweredMedian is the median of Runs' AnsweredRate, packet-ins/s.
	AnsweredMedian float64
	// AvgRTT is the mean round trip over every packet-in answered in Runs.
	AvgRTT time.Duration
	// Timeouts, Lost, ControllerErrors and IgnoredFlowMods are totals
	// over Runs.
	Timeouts, Lost, ControllerErrors, IgnoredFlowMods uint64
	// SelfCPU is the share of one core the process used during Runs
	// (total SelfCPU / total Elapsed), e.g. 0.35.
	SelfCPU float64
	// SwitchErrors lists the switches that failed to connect, failed the
	// handshake or failed during the runs (e.g. the controller sent a
	// malformed message, see IsMalformed).
	SwitchErrors []error
}

// finish computes the summary fields from Runs.
func (r *Result) finish() {
	n := len(r.Runs)
	if n == 0 {
		return
	}
	rates := make([]float64, n)
	answered := make([]float64, n)
	var totalAnswered uint64
	var rttSum, cpu, elapsed time.Duration
	r.Timeouts, r.Lost, r.ControllerErrors, r.IgnoredFlowMods = 0, 0, 0, 0
	for i, rs := range r.Runs {
		rates[i] = rs.Rate()
		answered[i] = rs.AnsweredRate()
		totalAnswered += rs.Answered
		rttSum += rs.RTTSum
		cpu += rs.SelfCPU
		elapsed += rs.Elapsed
		r.Timeouts += rs.Timeouts
		r.Lost += rs.Lost
		r.ControllerErrors += rs.ControllerErrors
		r.IgnoredFlowMods += rs.IgnoredFlowMods
	}
	r.Median = median(rates)
	r.AnsweredMedian = median(answered)
	r.Min, r.Max = slices.Min(rates), slices.Max(rates)
	var sum float64
	for _, v := range rates {
		sum += v
	}
	r.Mean = sum / float64(n)
	var sq float64
	for _, v := range rates {
		sq += (v - r.Mean) * (v - r.Mean)
	}
	r.StdDev = math.Sqrt(sq / float64(n))
	if totalAnswered > 0 {
		r.AvgRTT = rttSum / time.Duration(totalAnswered)
	}
	if elapsed > 0 {
		r.SelfCPU = float64(cpu) / float64(elapsed)
	}
}

// median of a non-empty slice (mean of the middle two for even lengths).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Summary is the final parseable line: space-separated key=value fields
// after "ofbench:", the first four fixed as
//
//	ofbench: mode=latency switches=16 median=NNNN resp/s
//
// followed by mean, min, max and stddev (responses/s), answered (median
// answered packet-ins/s), rtt_ms (mean round trip), lost, timeouts, ctrl_errors,
// switch_errors, self_cpu_pct (ofbench's CPU use, % of one core), runs,
// duration_ms, window, macs and buffered; in fabric mode (Config.Fabric)
// also fabric=true and ignored_flow_mods (flow-mods not counted, over the
// measured runs).
func (r Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ofbench: mode=%s switches=%d median=%.0f resp/s", r.Config.Mode, r.Switches, r.Median)
	fmt.Fprintf(&b, " mean=%.0f min=%.0f max=%.0f stddev=%.0f answered=%.0f rtt_ms=%.4f",
		r.Mean, r.Min, r.Max, r.StdDev, r.AnsweredMedian, ms(r.AvgRTT))
	macs := r.Config.MACs
	if f := r.Config.Fabric; f != nil && len(f.Switches) > 0 {
		macs = len(f.Switches[0].Hosts) // hosts of the first switch
	}
	fmt.Fprintf(&b, " lost=%d timeouts=%d ctrl_errors=%d switch_errors=%d self_cpu_pct=%.0f runs=%d duration_ms=%d window=%d macs=%d buffered=%t",
		r.Lost, r.Timeouts, r.ControllerErrors, len(r.SwitchErrors), 100*r.SelfCPU, len(r.Runs), r.Config.Duration.Milliseconds(),
		r.Config.window(), macs, r.Config.Buffered)
	if r.Config.Fabric != nil {
		fmt.Fprintf(&b, " fabric=true ignored_flow_mods=%d", r.IgnoredFlowMods)
	}
	return b.String()
}
