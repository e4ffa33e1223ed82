//go:build integration

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pairLabSpec is labSpec with a fixed prefix (skw2...), checking that no
// namespace of that prefix exists yet.
func pairLabSpec(t *testing.T, prefix, body string) *Spec {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix+"-") {
			t.Fatalf("namespace %q exists: another lab with prefix %s is up", l, prefix)
		}
	}
	dir := filepath.Join(t.TempDir(), "lab")
	s, err := Parse([]byte(fmt.Sprintf(`{"prefix":%q,"state_dir":%q,"controller":"none",%s}`, prefix, dir, body)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// iperf runs an iperf3 server in site dst's namespace and a TCP client in
// site src's towards dst's underlay address for secs seconds (the first
// omitted: slow start) and returns the received rate in Mbit/s (TCP
// payload).
func iperf(t *testing.T, s *Spec, src, dst int, secs int) float64 {
	t.Helper()
	// a run that measured nothing (iperf3's JSON "error", e.g. a control
	// connection that timed out on a loaded machine, or no byte received:
	// seen once in CI under load) is run once more; the bounds the callers
	// check stay as they are
	for try := 1; ; try++ {
		mbit, ierr := iperfOnce(t, s, src, dst, secs)
		if (ierr == "" && mbit > 0) || try == 2 {
			return mbit
		}
		t.Logf("iperf3 s%d -> s%d measured nothing (%.2f Mbit/s, error %q); once more", src, dst, mbit, ierr)
	}
}

// iperfOnce is one iperf3 run of iperf: the received Mbit/s and the
// error iperf3 reported in its JSON ("" if none).
func iperfOnce(t *testing.T, s *Spec, src, dst int, secs int) (float64, string) {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", SiteNetns(s.Prefix, dst), "iperf3", "-s", "-1", "-p", "5301")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Wait(); close(done) }()
	defer func() {
		_ = syscall.Kill(-srv.Process.Pid, syscall.SIGTERM) // our own process group only
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	var out []byte
	var err error
	for try := 0; try < 20; try++ { // wait for the server to listen
		out, err = exec.Command("ip", "netns", "exec", SiteNetns(s.Prefix, src), "iperf3", "-c", TunnelEndpoint(s, dst),
			"-p", "5301", "-t", fmt.Sprint(secs), "-O", "1", "-J").Output()
		if err == nil || !strings.Contains(string(out), "Connection refused") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("iperf3 s%d -> s%d: %v\n%s", src, dst, err, out)
	}
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("iperf3 JSON: %v\n%s", err, out)
	}
	mbit := res.End.SumReceived.BitsPerSecond / 1e6
	t.Logf("iperf3 TCP s%d -> s%d: %.2f Mbit/s received (%d retransmits)%s", src, dst, mbit, res.End.SumSent.Retransmits, map[bool]string{true: ", error: " + res.Error}[res.Error != ""])
	return mbit, res.Error
}

// TestLabPairRateAndMeasuredRTT: three sites; the pair s1-s2 is limited to
// 10 Mbit/s (relay token bucket, each direction), the pair s1-s3 has a
// 5 ms one-way delay and no limit. An iperf3 TCP stream s1 -> s2 (and s2 ->
// s1) gets 10 Mbit/s ± 15 % of frame rate, s1 -> s3 gets far more; the RTTs
// Up measured (wan.measure_rtt) show the delay.
func TestLabPairRateAndMeasuredRTT(t *testing.T) {
	needLab(t)
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("skipping: iperf3 not installed")
	}
	const rate = 10.0
	s := pairLabSpec(t, "skw2", fmt.Sprintf(`"sites":[{"name":"s1","vms":1},{"name":"s2","vms":1},{"name":"s3","vms":1}],
		"wan":{"measure_rtt":true,"pairs":[{"a":"s1","b":"s2","rate_mbit":%v},{"a":"s1","b":"s3","delay_ms":5}]}`, rate))
	inv := up(t, s)
	if inv.WAN.Mode != "relay" || inv.WAN.Pairs[0].RateMbit != rate {
		t.Fatalf("WAN %+v: want the relay with the pair rate", inv.WAN)
	}
	// measured RTTs: s1-s3 carries 2 x 5 ms; the others none
	t.Logf("RTT measured in %v: %+v", inv.RTTDuration, inv.Costs)
	if len(inv.Costs) != 3 {
		t.Fatalf("costs %+v, want 3 pairs", inv.Costs)
	}
	for _, c := range inv.Costs {
		if c.Source != CostMeasured || c.Samples < 3 {
			t.Errorf("cost %+v: want source measured and >= 3 samples", c)
		}
		if c.A == "s1" && c.B == "s3" {
			if c.RTTMS < 10 || c.RTTMS > 40 {
				t.Errorf("s1-s3 RTT %.3f ms, want 10..40 (2 x 5 ms + relay)", c.RTTMS)
			}
		} else if c.RTTMS >= 10 {
			t.Errorf("%s-%s RTT %.3f ms, want < 10 (no delay)", c.A, c.B, c.RTTMS)
		}
	}
	// TCP payload is 1448 of 1514 frame bytes (timestamps on): the goodput
	// of a 10 Mbit/s frame rate is 9.56 Mbit/s; accept ±15 % of the rate.
	lo, hi := 0.85*rate, 1.15*rate
	if got := iperf(t, s, 1, 2, 5); got < lo || got > hi {
		t.Errorf("s1 -> s2 at %.2f Mbit/s, want %v ± 15 %%", got, rate)
	}
	if got := iperf(t, s, 2, 1, 5); got < lo || got > hi {
		t.Errorf("s2 -> s1 at %.2f Mbit/s, want %v ± 15 %%", got, rate)
	}
	if got := iperf(t, s, 1, 3, 5); got < 2*rate {
		t.Errorf("s1 -> s3 at %.2f Mbit/s, want > %v: the s1-s2 limit must not apply to s1-s3", got, 2*rate)
	}
	// the relay counts the frames the bucket refused
	if err := syscall.Kill(inv.WAN.RelayPID, syscall.SIGUSR1); err == nil {
		time.Sleep(200 * time.Millisecond)
		if b, err := exec.Command("tail", "-n", "1", filepath.Join(s.StateDir, "wan-relay.log")).Output(); err == nil {
			t.Logf("relay: %s", strings.TrimSpace(string(b)))
		}
	}
	// skylab rtt again on the running lab
	costs, err := MeasureRTT(context.Background(), s.StateDir)
	if err != nil || len(costs) != 3 {
		t.Fatalf("MeasureRTT = %v, %v", costs, err)
	}
	inv2, err := Status(s.StateDir)
	if err != nil || len(inv2.Costs) != 3 || inv2.RTTDuration == 0 {
		t.Fatalf("status after MeasureRTT: %v %+v", err, inv2)
	}
}

// TestLabMeasureRTT16Sites: with 16 sites (120 pairs) the RTT measurement
// at the end of Up stays within a few seconds.
func TestLabMeasureRTT16Sites(t *testing.T) {
	needLab(t)
	var sites []string
	for i := 1; i <= 16; i++ {
		sites = append(sites, fmt.Sprintf(`{"name":"s%d","vms":1}`, i))
	}
	s := pairLabSpec(t, "skw2r", `"sites":[`+strings.Join(sites, ",")+`],"wan":{"measure_rtt":true}`)
	inv := up(t, s)
	if len(inv.Costs) != 120 {
		t.Fatalf("%d costs, want 120", len(inv.Costs))
	}
	var rtts []float64
	for _, c := range inv.Costs {
		rtts = append(rtts, c.RTTMS)
	}
	slices.Sort(rtts)
	t.Logf("16 sites: up in %v, of which RTT measurement of 120 pairs %v; median RTTs of the pairs (no WAN delay): p50 %.3f p90 %.3f max %.3f ms",
		inv.UpDuration, inv.RTTDuration, rtts[59], rtts[107], rtts[119])
	if inv.RTTDuration > 10*time.Second {
		t.Errorf("RTT measurement took %v, want a few seconds", inv.RTTDuration)
	}
}
