package wan

import (
	"bytes"
	"testing"
	"time"
)

func frame(dst, src byte, payload byte) []byte {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, dst})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, src})
	if dst == 0xff {
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	f[14] = payload
	return f
}

func mustSwitch(t *testing.T, n int, d time.Duration, limit int) *Switch {
	t.Helper()
	s, err := NewSwitch(n, DelayMatrix(n, d), limit)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDelayHoldsFrameUntilDue(t *testing.T) {
	s := mustSwitch(t, 2, 10*time.Millisecond, 16)
	t0 := time.Unix(1000, 0)
	if n, err := s.Ingress(0, frame(0xff, 1, 7), t0); err != nil || n != 1 {
		t.Fatalf("Ingress = %d, %v; want 1 copy", n, err)
	}
	if _, wait, ok := s.Next(1, t0.Add(9*time.Millisecond)); ok || wait != time.Millisecond {
		t.Fatalf("at 9 ms: ok=%v wait=%v; want not due, wait 1ms", ok, wait)
	}
	f, _, ok := s.Next(1, t0.Add(10*time.Millisecond))
	if !ok || f[14] != 7 {
		t.Fatalf("at 10 ms: ok=%v; want the frame", ok)
	}
	if _, wait, ok := s.Next(1, t0.Add(time.Second)); ok || wait != -1 {
		t.Fatalf("empty: ok=%v wait=%v; want -1", ok, wait)
	}
	if _, _, ok := s.Next(0, t0.Add(time.Second)); ok {
		t.Fatal("frame came back out of its ingress port")
	}
}

func TestOrderKeptAndPairDelays(t *testing.T) {
	d := DelayMatrix(3, 10*time.Millisecond)
	d[0][2], d[2][0] = 40*time.Millisecond, 40*time.Millisecond
	s, err := NewSwitch(3, d, 64)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	// learn MACs 2 on port 1 and 3 on port 2
	s.Ingress(1, frame(0xff, 2, 0), t0)
	s.Ingress(2, frame(0xff, 3, 0), t0)
	for k := 0; k < 3; k++ { // drain the floods
		for o := 0; o < 3; o++ {
			for {
				if _, _, ok := s.Next(o, t0.Add(time.Second)); !ok {
					break
				}
			}
		}
	}
	t1 := t0.Add(2 * time.Second)
	for p := byte(1); p <= 5; p++ {
		s.Ingress(0, frame(2, 1, p), t1.Add(time.Duration(p)*time.Microsecond))
		s.Ingress(0, frame(3, 1, p), t1.Add(time.Duration(p)*time.Microsecond))
	}
	// port 1 (10 ms) frames due first, in order; port 2 (40 ms) not before 40 ms
	if _, _, ok := s.Next(2, t1.Add(39*time.Millisecond)); ok {
		t.Fatal("pair override ignored: frame for port 2 due before 40 ms")
	}
	for p := byte(1); p <= 5; p++ {
		f, _, ok := s.Next(1, t1.Add(11*time.Millisecond))
		if !ok || f[14] != p || f[5] != 2 {
			t.Fatalf("port 1 frame %d: ok=%v payload=%v", p, ok, f)
		}
	}
	for p := byte(1); p <= 5; p++ {
		f, _, ok := s.Next(2, t1.Add(41*time.Millisecond))
		if !ok || f[14] != p || f[5] != 3 {
			t.Fatalf("port 2 frame %d: ok=%v", p, ok)
		}
	}
	if st := s.Stats(); st.Queued != 0 || st.MACs != 3 {
		t.Fatalf("stats %+v; want nothing queued, 3 MACs", st)
	}
}

func TestLearningFloodFilter(t *testing.T) {
	s := mustSwitch(t, 3, 0, 8)
	t0 := time.Unix(0, 0)
	// unknown destination floods to both other ports
	if n, _ := s.Ingress(0, frame(9, 1, 0), t0); n != 2 {
		t.Fatalf("unknown unicast queued %d copies, want 2 (flood)", n)
	}
	// 9 answers from port 2: now learned, unicast goes to port 2 only
	if n, _ := s.Ingress(2, frame(1, 9, 0), t0); n != 1 {
		t.Fatalf("learned unicast queued %d copies, want 1", n)
	}
	if _, _, ok := s.Next(0, t0); !ok {
		t.Fatal("reply not queued for port 0 (where MAC 1 was learned)")
	}
	// a frame to a MAC learned on its own ingress port is filtered
	if n, _ := s.Ingress(0, frame(1, 5, 0), t0); n != 0 {
		t.Fatalf("frame back to its ingress port queued %d copies", n)
	}
	if st := s.Stats(); st.Filtered != 1 || st.RX != 3 {
		t.Fatalf("stats %+v; want Filtered 1, RX 3", st)
	}
	// multicast source MACs are not learned
	mc := frame(0xff, 1, 0)
	mc[6] = 0x01
	s.Ingress(1, mc, t0)
	if st := s.Stats(); st.MACs != 3 {
		t.Fatalf("learned a multicast source: %d MACs", st.MACs)
	}
}

func TestBoundedQueueDrops(t *testing.T) {
	s := mustSwitch(t, 2, time.Second, 3)
	t0 := time.Unix(0, 0)
	for k := 0; k < 5; k++ {
		s.Ingress(0, frame(0xff, 1, byte(k)), t0)
	}
	st := s.Stats()
	if st.Dropped != 2 || st.Queued != 3 {
		t.Fatalf("stats %+v; want 2 dropped, 3 queued", st)
	}
	for k := 0; k < 3; k++ {
		f, _, ok := s.Next(1, t0.Add(time.Second))
		if !ok || f[14] != byte(k) {
			t.Fatalf("frame %d: ok=%v; the oldest frames must be kept", k, ok)
		}
	}
}

func TestQueueGrowsAndWraps(t *testing.T) {
	s := mustSwitch(t, 2, 0, 1000)
	t0 := time.Unix(0, 0)
	next := byte(0)
	for round := 0; round < 50; round++ {
		for k := 0; k < 37; k++ {
			s.Ingress(0, frame(0xff, 1, byte(round*37+k)), t0)
		}
		for k := 0; k < 30; k++ {
			f, _, ok := s.Next(1, t0)
			if !ok || f[14] != next {
				t.Fatalf("round %d: got %v ok=%v, want payload %d", round, f[14], ok, next)
			}
			next++
		}
	}
}

func TestWakeAndErrors(t *testing.T) {
	s := mustSwitch(t, 2, 0, 4)
	s.Ingress(0, frame(0xff, 1, 0), time.Unix(0, 0))
	select {
	case <-s.Wake(1):
	default:
		t.Fatal("no wake token for the egress port")
	}
	s.Ingress(0, frame(0xff, 1, 1), time.Unix(0, 0)) // behind the head: no token
	select {
	case <-s.Wake(1):
		t.Fatal("token for a frame queued behind the head")
	default:
	}
	if _, err := s.Ingress(0, []byte{1, 2, 3}, time.Unix(0, 0)); err != ErrShortFrame {
		t.Fatalf("short frame: err %v", err)
	}
	if _, err := s.Ingress(5, frame(1, 2, 0), time.Unix(0, 0)); err == nil {
		t.Fatal("port 5 of 2 accepted")
	}
	if _, err := NewSwitch(1, DelayMatrix(1, 0), 1); err == nil {
		t.Fatal("1-port switch accepted")
	}
	if _, err := NewSwitch(2, DelayMatrix(2, -1), 1); err == nil {
		t.Fatal("negative delay accepted")
	}
	if _, err := NewSwitch(2, DelayMatrix(3, 0), 1); err == nil {
		t.Fatal("wrong matrix size accepted")
	}
	if _, err := NewSwitch(2, DelayMatrix(2, 0), 0); err == nil {
		t.Fatal("zero queue limit accepted")
	}
}

func TestPairFlag(t *testing.T) {
	var p pairFlag
	if err := p.Set("w-s1,w-s3=40.5"); err != nil {
		t.Fatal(err)
	}
	if p[0].A != "w-s1" || p[0].B != "w-s3" || p[0].Delay != 40500*time.Microsecond {
		t.Fatalf("parsed %+v", p[0])
	}
	for _, bad := range []string{"w-s1=4", "a,b", "a,b=-1", "a,b=x", ",b=1"} {
		if err := p.Set(bad); err == nil {
			t.Errorf("--pair %q accepted", bad)
		}
	}
	if !bytes.Equal(frame(1, 2, 3)[:1], []byte{2}) {
		t.Fatal("helper")
	}
}

func BenchmarkIngressNext(b *testing.B) {
	s, _ := NewSwitch(4, DelayMatrix(4, 0), 4096)
	t0 := time.Unix(0, 0)
	s.Ingress(1, frame(0xff, 2, 0), t0)
	s.Next(0, t0)
	s.Next(2, t0)
	s.Next(3, t0)
	f := frame(2, 1, 0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Ingress(0, f, t0)
		s.Next(1, t0)
	}
}

func TestRandomLoss(t *testing.T) {
	s := mustSwitch(t, 2, 0, 1000)
	draws := []float64{0.05, 0.5, 0.09, 0.99}
	k := 0
	if err := s.SetLoss(0.1, func() float64 { v := draws[k%len(draws)]; k++; return v }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		s.Ingress(0, frame(0xff, 1, byte(i)), time.Unix(0, 0))
	}
	if st := s.Stats(); st.Lost != 2 || st.Queued != 2 || st.RX != 4 {
		t.Fatalf("stats %+v; want 2 lost (draws < 0.1), 2 queued", st)
	}
	for _, bad := range []float64{-0.1, 1, 2} {
		if err := s.SetLoss(bad, nil); err == nil {
			t.Errorf("loss %v accepted", bad)
		}
	}
	if err := s.SetLoss(0, nil); err != nil {
		t.Fatal(err)
	}
}

// drain takes every frame due on port out at time now and returns their count and bytes.
func drain(s *Switch, out int, now time.Time) (frames, bytes int) {
	for {
		f, _, ok := s.Next(out, now)
		if !ok {
			return frames, bytes
		}
		frames++
		bytes += len(f)
	}
}

func sized(dst, src byte, size int) []byte {
	f := make([]byte, size)
	copy(f, frame(dst, src, 0))
	return f
}

// TestBucketDepartures: 8 Mbit/s = 1 byte/µs, burst 3000 bytes, 1000-byte
// frames arriving together: three leave at once (the full bucket), then one
// per millisecond; each then waits the pair's 5 ms delay.
func TestBucketDepartures(t *testing.T) {
	s := mustSwitch(t, 2, 5*time.Millisecond, 64)
	if err := s.SetRate(0, 1, 8e6, 3000, 0); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	s.Ingress(1, frame(0xff, 2, 0), t0) // learn MAC 2 on port 1 (the other direction: no limit)
	for k := 0; k < 6; k++ {
		if n, _ := s.Ingress(0, sized(2, 1, 1000), t0); n != 1 {
			t.Fatalf("frame %d not queued", k)
		}
	}
	want := []time.Duration{5, 5, 5, 6, 7, 8} // ms
	for k, w := range want {
		at := t0.Add(w * time.Millisecond)
		if _, wait, ok := s.Next(1, at.Add(-time.Microsecond)); ok || wait != time.Microsecond {
			t.Fatalf("frame %d: 1 µs before %v: ok=%v wait=%v; want 1µs wait", k, w, ok, wait)
		}
		if _, _, ok := s.Next(1, at); !ok {
			t.Fatalf("frame %d not due at %v ms", k, w)
		}
	}
	// the reverse direction has no limit: port 1's frame is due at t0+5ms
	if n, _ := drain(s, 0, t0.Add(5*time.Millisecond)); n != 1 {
		t.Fatalf("%d frames on port 0 at 5 ms, want port 1's frame", n)
	}
}

// TestBucketRefillsAndBoundsBacklog: the bucket refills at the rate (up to
// burst) while idle, and a frame that would wait more than the backlog
// bound for its tokens is dropped and counted.
func TestBucketRefillsAndBoundsBacklog(t *testing.T) {
	s := mustSwitch(t, 2, 0, 1024)
	if err := s.SetRate(0, 1, 8e6, 2000, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	s.Ingress(1, frame(0xff, 2, 0), t0)
	drain(s, 0, t0)
	queued := 0
	for k := 0; k < 20; k++ { // 20 kB at once: 2 kB burst + 10 ms × 1 kB/ms, the rest dropped
		n, _ := s.Ingress(0, sized(2, 1, 1000), t0)
		queued += n
	}
	if queued != 12 || s.Stats().RateDropped != 8 {
		t.Fatalf("queued %d, rate-dropped %d; want 12 and 8", queued, s.Stats().RateDropped)
	}
	if n, _ := drain(s, 1, t0.Add(10*time.Millisecond)); n != 12 {
		t.Fatalf("drained %d by 10 ms, want 12", n)
	}
	// idle 1.5 ms after the last departure at 10 ms: 1500 tokens, so one
	// frame leaves at once and the next 0.5 ms later
	t1 := t0.Add(11500 * time.Microsecond)
	s.Ingress(0, sized(2, 1, 1000), t1)
	s.Ingress(0, sized(2, 1, 1000), t1)
	if n, _ := drain(s, 1, t1); n != 1 {
		t.Fatalf("%d frames at once after refill, want 1", n)
	}
	if _, wait, _ := s.Next(1, t1); wait != 500*time.Microsecond {
		t.Fatalf("second frame waits %v, want 500µs", wait)
	}
	// the bucket never holds more than burst: after a long pause only 2 frames leave at once
	t2 := t1.Add(time.Second)
	for k := 0; k < 4; k++ {
		s.Ingress(0, sized(2, 1, 1000), t2)
	}
	drain(s, 1, t1.Add(time.Millisecond))
	if n, _ := drain(s, 1, t2); n != 2 {
		t.Fatalf("%d frames at once after a long pause, want burst/size = 2", n)
	}
}

// TestBucketLongRunRate offers 16 Mbit/s for 2 s to a pair limited to 8
// Mbit/s and checks what leaves per second, and that another pair is not limited.
func TestBucketLongRunRate(t *testing.T) {
	s := mustSwitch(t, 3, 2*time.Millisecond, 4096)
	if err := s.SetRate(0, 1, 8e6, 0, 0); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	s.Ingress(1, frame(0xff, 2, 0), t0)
	s.Ingress(2, frame(0xff, 3, 0), t0)
	drain(s, 0, t0.Add(time.Second))
	var got1, got2 int
	step := 750 * time.Microsecond // 1500 B per 750 µs = 16 Mbit/s per pair
	for now := t0; now.Before(t0.Add(2 * time.Second)); now = now.Add(step) {
		s.Ingress(0, sized(2, 1, 1500), now)
		s.Ingress(0, sized(3, 1, 1500), now)
		if now.After(t0.Add(time.Second)) { // count the second second only (steady state)
			_, b1 := drain(s, 1, now)
			_, b2 := drain(s, 2, now)
			got1 += b1
			got2 += b2
		} else {
			drain(s, 1, now)
			drain(s, 2, now)
		}
	}
	if mbit := float64(got1) * 8 / 1e6; mbit < 7.9 || mbit > 8.1 {
		t.Fatalf("limited pair carried %.2f Mbit in 1 s, want 8", mbit)
	}
	if mbit := float64(got2) * 8 / 1e6; mbit < 15.8 {
		t.Fatalf("unlimited pair carried %.2f Mbit in 1 s, want 16", mbit)
	}
	st := s.Stats()
	if st.RateDropped == 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v: want rate drops, no queue drops", st)
	}
}

func TestSetRateErrors(t *testing.T) {
	s := mustSwitch(t, 2, 0, 4)
	for _, c := range []struct {
		in, out int
		rate    float64
		burst   int
	}{{0, 0, 1e6, 0}, {0, 2, 1e6, 0}, {-1, 1, 1e6, 0}, {0, 1, -1, 0}, {0, 1, 1e6, -5}} {
		if err := s.SetRate(c.in, c.out, c.rate, c.burst, 0); err == nil {
			t.Errorf("SetRate(%d, %d, %v, %d) = nil, want an error", c.in, c.out, c.rate, c.burst)
		}
	}
	if err := s.SetRate(0, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if DefaultBurst(1e6) != 3028 || DefaultBurst(1e9) != 500000 {
		t.Fatalf("DefaultBurst = %d, %d", DefaultBurst(1e6), DefaultBurst(1e9))
	}
}

func TestRateFlag(t *testing.T) {
	var r rateFlag
	if err := r.Set("w-s1,w-s2=12.5"); err != nil || len(r) != 1 || r[0] != (Rate{A: "w-s1", B: "w-s2", Mbit: 12.5}) {
		t.Fatalf("Set = %v, %v", err, r)
	}
	for _, bad := range []string{"w-s1,w-s2=0", "w-s1=5", "w-s1,w-s2=x", ",b=1", "a,b=-1"} {
		if err := r.Set(bad); err == nil {
			t.Errorf("Set(%q) = nil, want an error", bad)
		}
	}
}
