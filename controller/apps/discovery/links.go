package discovery

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Endpoint is one end of a link: a switch (datapath ID) and its OpenFlow
// port number.
type Endpoint struct {
	DPID uint64 `json:"dpid"`
	Port uint32 `json:"port"`
}

// String formats e as "%016x:port".
func (e Endpoint) String() string { return fmt.Sprintf("%016x:%d", e.DPID, e.Port) }

// Link is a directed link: probes sent from Src arrive at Dst. A cable
// between two switches shows up as two Links, one per direction.
type Link struct {
	Src Endpoint `json:"src"`
	Dst Endpoint `json:"dst"`
}

// String formats l as "src->dst".
func (l Link) String() string { return l.Src.String() + "->" + l.Dst.String() }

// compareLinks orders links by source DPID, source port, destination DPID,
// destination port.
func compareLinks(a, b Link) int {
	return cmp.Or(cmp.Compare(a.Src.DPID, b.Src.DPID), cmp.Compare(a.Src.Port, b.Src.Port),
		cmp.Compare(a.Dst.DPID, b.Dst.DPID), cmp.Compare(a.Dst.Port, b.Dst.Port))
}

// LinkEvent reports a link that came up (Up) or went away (!Up), with Reason
// "probe", "timeout", "port down", "switch down" or "replaced".
type LinkEvent struct {
	Link   Link
	Up     bool
	Reason string
}

// linkTable holds the directed links and when each was last confirmed by a
// probe. Safe for concurrent use.
type linkTable struct {
	mu    sync.Mutex
	links map[Link]time.Time
}

func newLinkTable() *linkTable { return &linkTable{links: make(map[Link]time.Time)} }

// seen records that a probe for l arrived at now. A link already known from
// l.Src to another destination or into l.Dst from another source is removed
// first (the cable was moved). It returns the resulting events.
func (t *linkTable) seen(l Link, now time.Time) []LinkEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.links[l]; ok {
		t.links[l] = now
		return nil
	}
	var ev []LinkEvent
	for old := range t.links {
		if old.Src == l.Src || old.Dst == l.Dst {
			delete(t.links, old)
			ev = append(ev, LinkEvent{Link: old, Reason: "replaced"})
		}
	}
	t.links[l] = now
	return append(ev, LinkEvent{Link: l, Up: true, Reason: "probe"})
}

// expire removes the links last seen before now-timeout.
func (t *linkTable) expire(now time.Time, timeout time.Duration) []LinkEvent {
	return t.removeIf("timeout", func(_ Link, last time.Time) bool { return now.Sub(last) > timeout })
}

// removeIf removes the links for which f is true.
func (t *linkTable) removeIf(reason string, f func(Link, time.Time) bool) []LinkEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ev []LinkEvent
	for l, last := range t.links {
		if f(l, last) {
			delete(t.links, l)
			ev = append(ev, LinkEvent{Link: l, Reason: reason})
		}
	}
	slices.SortFunc(ev, func(a, b LinkEvent) int { return compareLinks(a.Link, b.Link) })
	return ev
}

// list returns the links sorted by compareLinks.
func (t *linkTable) list() []Link {
	t.mu.Lock()
	out := make([]Link, 0, len(t.links))
	for l := range t.links {
		out = append(out, l)
	}
	t.mu.Unlock()
	slices.SortFunc(out, compareLinks)
	return out
}
