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
