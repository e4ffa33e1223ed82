package migrate

import (
	"fmt"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// Merge merges the flow statistics of the two copies of a migrating
// switch so that the tenant sees one switch (LIME's statistics merge):
// entries of a and b that are the same flow entry (table, priority,
// normalized match and cookie) become one entry whose packet and byte
// counts are the sums and whose duration is the longer one; entries found
// on one side only are kept as they are. The order is a's, then b's
// entries not in a. Neither input is modified.
//
// During a migration a holds the source's statistics and b the target's
// (its clones start at zero); after the retire step a is the source's
// counters at freeze time (Result.Counters), so the tenant's counters
// continue across the move.
func Merge(a, b []controller.FlowStats) []controller.FlowStats {
	key := func(fs *controller.FlowStats) string {
		e := pipeline.FromFlowStats(fs)
		return fmt.Sprintf("%s/%x", e.Key(), fs.Cookie)
	}
	out := make([]controller.FlowStats, 0, len(a)+len(b))
	idx := map[string]int{}
	for i := range a {
		k := key(&a[i])
		if j, ok := idx[k]; ok {
			add(&out[j], &a[i])
			continue
		}
		idx[k] = len(out)
		out = append(out, a[i])
	}
	for i := range b {
		k := key(&b[i])
		if j, ok := idx[k]; ok {
			add(&out[j], &b[i])
			continue
		}
		idx[k] = len(out)
		out = append(out, b[i])
	}
	return out
}

// add sums o's counters into m and keeps the longer duration.
func add(m, o *controller.FlowStats) {
	m.PacketCount += o.PacketCount
	m.ByteCount += o.ByteCount
	if o.Duration() > m.Duration() {
		m.DurationSec, m.DurationNSec = o.DurationSec, o.DurationNSec
	}
}
