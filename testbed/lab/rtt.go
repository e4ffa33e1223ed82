package lab

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CostMeasured is the Cost.Source of round-trip times measured by the lab.
const CostMeasured = "measured"

// Cost is the cost of a tunnel between sites A and B as the lab writes it
// into the inventory's costs[] (the costs[] of an infrastructure file,
// docs/infra.md): the measured underlay round-trip time.
type Cost struct {
	A string `json:"a"`
	B string `json:"b"`
	// RTTMS is the median round-trip time in milliseconds.
	RTTMS float64 `json:"rtt_ms"`
	// Source is "measured".
	Source string `json:"source"`
	// Samples is how many of the echoes were answered.
	Samples int `json:"samples"`
}

// RTT measurement parameters: rttPings echoes per pair, rttInterval apart,
// at most rttParallel pairs at once.
const (
	rttPings    = 5
	rttInterval = "0.05"
	rttParallel = 32
)

var pingTimeRE = regexp.MustCompile(`time[=<]([\d.]+) ms`)

// pingRTTs returns the round-trip times (ms) in ping's output, in order.
func pingRTTs(out string) []float64 {
	var rtts []float64
	for _, m := range pingTimeRE.FindAllStringSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			rtts = append(rtts, v)
		}
	}
	return rtts
}

// median returns the median of xs (the mean of the middle two for an even
// count); xs must not be empty. xs is sorted in place.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// measureRTT pings, for every pair of sites {i < o}, from site i's
// namespace to site o's tunnel endpoint (one warm-up echo that resolves the
// neighbour, then rttPings echoes, rttInterval s apart, 2 s timeout) and returns the median RTT per pair in pair order
// (s1-s2, s1-s3, ..., s2-s3, ...). Pairs run in parallel (at most
// rttParallel at once). Only the lab's site namespaces are used. Errors
// name the pairs without any answer.
func measureRTT(ctx context.Context, s *Spec) ([]Cost, error) {
	n := len(s.Sites)
	var pairs [][2]int
	for i := 0; i < n; i++ {
		for o := i + 1; o < n; o++ {
			pairs = append(pairs, [2]int{i, o})
		}
	}
	out := make([]Cost, len(pairs))
	var mu sync.Mutex
	var failed []string
	sem := make(chan struct{}, rttParallel)
	_ = parallel(len(pairs), func(k int) error {
		sem <- struct{}{}
		defer func() { <-sem }()
		i, o := pairs[k][0], pairs[k][1]
		// warm-up echo: resolves the neighbour first, so no measured echo
		// waits behind an ARP exchange (which takes a full RTT of the pair)
		_, _ = nsRun(ctx, SiteNetns(s.Prefix, i+1), nil, "ping", "-n", "-c", "1", "-W", "2", TunnelEndpoint(s, o+1))
		res, err := nsRun(ctx, SiteNetns(s.Prefix, i+1), nil, "ping", "-n", "-c", strconv.Itoa(rttPings),
			"-i", rttInterval, "-W", "2", TunnelEndpoint(s, o+1))
		rtts := pingRTTs(res)
		if len(rtts) == 0 {
			mu.Lock()
			failed = append(failed, fmt.Sprintf("%s-%s (%v)", s.Sites[i].Name, s.Sites[o].Name, err))
			mu.Unlock()
			return nil
		}
		out[k] = Cost{A: s.Sites[i].Name, B: s.Sites[o].Name, RTTMS: median(rtts), Source: CostMeasured, Samples: len(rtts)}
		return nil
	})
	if len(failed) > 0 {
		slices.Sort(failed)
		return nil, fmt.Errorf("measure RTT: no echo reply between %s", strings.Join(failed, ", "))
	}
	return out, nil
}

// MeasureRTT measures the underlay round-trip time between every two
// gateways of the lab at stateDir (as `wan.measure_rtt` does at the end of
// Up), records it in the lab state (the inventory's costs[]) and returns it.
// It takes the lab's lock; the lab must be up.
func MeasureRTT(ctx context.Context, stateDir string) ([]Cost, error) {
	unlock, st, err := openLab(stateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t0 := time.Now()
	costs, err := measureRTT(ctx, &st.Spec)
	if err != nil {
		return nil, err
	}
	st.Costs = costs
	st.RTTNanos = int64(time.Since(t0))
	if err := st.save(); err != nil {
		return nil, err
	}
	return costs, nil
}
