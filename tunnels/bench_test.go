package tunnels

import (
	"fmt"
	"math/rand"
	"testing"
)

// completeGraph returns n sites and a full cost table with random RTT-like
// costs (1..200 ms, fixed seed).
func completeGraph(n int) ([]Site, Costs) {
	rng := rand.New(rand.NewSource(int64(n)))
	names := siteNames(n)
	costs := make(Costs, n*(n-1)/2)
	for i := range names {
		for j := i + 1; j < n; j++ {
			costs.Set(names[i], names[j], float64(1+rng.Intn(200)))
		}
	}
	sites := make([]Site, n)
	for i, nm := range names {
		sites[i] = Site{Name: nm}
	}
	return sites, costs
}

func BenchmarkMST(b *testing.B) {
	for _, n := range []int{16, 64, 256} {
		sites, costs := completeGraph(n)
		b.Run(fmt.Sprintf("sites=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := MST(sites, costs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReplan(b *testing.B) {
	for _, n := range []int{16, 64, 256} {
		sites, costs := completeGraph(n)
		cur, err := MST(sites, costs)
		if err != nil {
			b.Fatal(err)
		}
		down := map[Pair]bool{cur.Tunnels[len(cur.Tunnels)/2].Pair(): true}
		b.Run(fmt.Sprintf("linkdown/sites=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, d, err := Replan(cur, sites, costs, down); err != nil || d.Len() != 2 {
					b.Fatal(err, d)
				}
			}
		})
		b.Run(fmt.Sprintf("siteremoved/sites=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Replan(cur, sites[1:], costs, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("optimize/sites=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Optimize(cur, sites, costs, down); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
