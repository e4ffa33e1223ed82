package controlplane

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps/learning"
	"github.com/skyvisor/skyvisor/testbed/ofbench"
)

// multiPath is packetInPath over n switches at once (one virtual network
// each, as in the experiment at n networks): process(s, i) handles
// packet-in i of switch s and returns once its packet-out reached it.
// Different switches may be processed concurrently; one switch by one
// goroutine at a time, as one session's event loop does.
type multiPath struct {
	n       int
	process func(s, i int)
}

// bareMulti is one controller/apps/learning instance serving n plain
// switches (the bare arm: skyvisor --apps learning).
func bareMulti(tb testing.TB, n int) multiPath {
	ctx := context.Background()
	app, err := learning.New(learning.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	evs := plainPacketIns(tb, DefaultHosts)
	sws := make([]*benchSwitch, n)
	for s := range sws {
		sws[s] = newBenchSwitch(uint64(s+1), []uint32{1, 2, 3, 4, 5})
		app.SwitchUp(ctx, sws[s])
	}
	return multiPath{n: n, process: func(s, i int) {
		app.PacketIn(ctx, sws[s], evs[i%len(evs)])
		<-sws[s].outs
	}}
}

// hypervisorMulti is the hypervisor arm's fabric of n networks in
// process: one hypervisor, n edge bridges, one tenant each running the
// learning app on its virtual switch.
func hypervisorMulti(tb testing.TB, n int) multiPath {
	ctx := context.Background()
	f, h := setupHypervisor(tb, n)
	sws := make([]*benchSwitch, n)
	evs := make([][]*controller.PacketIn, n)
	for s := range sws {
		fs := f.Bench.Switches[s]
		sws[s] = newBenchSwitch(fs.DPID, fs.Ports)
		h.SwitchUp(ctx, sws[s])
		for k := 0; k < 2*DefaultHosts; k++ {
			evs[s] = append(evs[s], decodePacketIn(tb, ofbench.FabricPacketIn(f.Bench, s, k, uint32(k))))
		}
	}
	return multiPath{n: n, process: func(s, i int) {
		h.PacketIn(ctx, sws[s], evs[s][i%len(evs[s])])
		<-sws[s].outs
	}}
}

// BenchmarkPacketInSwitches is BenchmarkPacketIn with 32 switches (one
// virtual network each): "round-robin" serves them in turn from one
// goroutine; "parallel" at once (b.RunParallel; run it with -cpu 1,2 and
// -mutexprofile), each parallel goroutine owning a distinct switch, so
// what the arms share (the hypervisor's locks, the app's tables, the
// allocator) is what contends. ns/op is per packet-in.
func BenchmarkPacketInSwitches(b *testing.B) {
	const n = 32
	for _, p := range []struct {
		name string
		path func(testing.TB, int) multiPath
	}{{"bare", bareMulti}, {"hypervisor", hypervisorMulti}} {
		// One goroutine taking the switches in turn: every request
		// touches another switch's (tenant's) state, as the controller
		// pinned to one CPU does at n networks, so the in-process cost
		// includes the cache misses that a single switch hides.
		b.Run(fmt.Sprintf("%s/n=%d/round-robin", p.name, n), func(b *testing.B) {
			path := p.path(b, n)
			for s := 0; s < n; s++ {
				for i := 0; i < 2*DefaultHosts; i++ {
					path.process(s, i)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				path.process(i%n, i/n)
			}
		})
		b.Run(fmt.Sprintf("%s/n=%d/parallel", p.name, n), func(b *testing.B) {
			path := p.path(b, n)
			for s := 0; s < n; s++ {
				for i := 0; i < 2*DefaultHosts; i++ { // learn every host
					path.process(s, i)
				}
			}
			var next atomic.Int64
			busy := make([]atomic.Bool, n)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Claim a switch no other goroutine serves.
				s := int(next.Add(1)-1) % n
				for !busy[s].CompareAndSwap(false, true) {
					s = (s + 1) % n
				}
				defer busy[s].Store(false)
				for i := 0; pb.Next(); i++ {
					path.process(s, i)
				}
			})
		})
	}
}

// TestPacketInSwitchesAnswer checks the parallel benchmark's paths: every
// switch's packet-ins are answered concurrently with the others'.
func TestPacketInSwitchesAnswer(t *testing.T) {
	for _, p := range []struct {
		name string
		path func(testing.TB, int) multiPath
	}{{"bare", bareMulti}, {"hypervisor", hypervisorMulti}} {
		t.Run(p.name, func(t *testing.T) {
			path := p.path(t, 4)
			done := make(chan struct{})
			for s := 0; s < path.n; s++ {
				go func() {
					defer func() { done <- struct{}{} }()
					for i := 0; i < 50; i++ {
						path.process(s, i) // returns only after a packet-out
					}
				}()
			}
			for s := 0; s < path.n; s++ {
				<-done
			}
		})
	}
}
