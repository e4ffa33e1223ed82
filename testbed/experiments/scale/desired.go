package scale

import (
	"fmt"
	"slices"
	"strings"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// LearningApp is the tenant app that gets proactive L2 entries (the
// hypervisor's LearningApp).
const LearningApp = "learning"

// Cookies (low 48 bits) of the proactive learning entries, as the
// hypervisor uses them.
const (
	cookieUnicast   = 0x6c6561726e01
	cookieBroadcast = 0x6c6561726e02
)

// LearningEntries returns the translated entries of a tenant's default
// "learning" app, per edge bridge: on every virtual switch, eth_dst = a
// host's own MAC -> output toward that host (its port, or the first
// virtual link on a shortest path to its switch), eth_dst = broadcast ->
// FLOOD, each translated with pipeline.AddEntries and installed on every
// bridge pipeline.EdgeBridges names.
//
// It reproduces the hypervisor's unexported learningEntries
// (hypervisor/desired.go) through pipeline's exported API, so the scale
// figures count exactly the entries the hypervisor installs; TestLearning
// in this package pins the entry count of a small case.
func LearningEntries(v *pipeline.View, binds []pipeline.Binding) (map[pipeline.DPID][]pipeline.Entry, error) {
	type hop struct {
		to   uint16
		port uint32
	}
	adj := map[uint16][]hop{}
	for _, p := range v.Ports {
		if p.Peer != 0 {
			adj[p.Switch] = append(adj[p.Switch], hop{v.Ports[p.Peer-1].Switch, p.Port})
		}
	}
	out := map[pipeline.DPID][]pipeline.Entry{}
	for _, sw := range v.Switches {
		bridges := pipeline.EdgeBridges(v, binds, sw.DPID)
		if len(bridges) == 0 {
			continue
		}
		first := map[uint16]uint32{sw.Index: 0}
		queue := []uint16{sw.Index}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			for _, e := range adj[s] {
				if _, seen := first[e.to]; seen {
					continue
				}
				if s == sw.Index {
					first[e.to] = e.port
				} else {
					first[e.to] = first[s]
				}
				queue = append(queue, e.to)
			}
		}
		var fms []*ofp.FlowMod
		for _, h := range v.Hosts {
			hp := v.Ports[h.VPort-1]
			port, ok := first[hp.Switch]
			if !ok {
				continue
			}
			if hp.Switch == sw.Index {
				port = hp.Port
			}
			fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 100, Cookie: cookieUnicast, Buffer: ofp.NoBuffer,
				Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(h.MAC)}},
				Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(port))}})
		}
		fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 50, Cookie: cookieBroadcast, Buffer: ofp.NoBuffer,
			Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(addr.Broadcast)}},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(ofp.PortFlood)))}})
		for _, fm := range fms {
			es, err := pipeline.AddEntries(v, sw.DPID, fm)
			if err != nil {
				return nil, fmt.Errorf("tenant %q switch %s: %w", v.Name, sw.Name, err)
			}
			for _, b := range bridges {
				out[b] = append(out[b], es...)
			}
		}
	}
	return out, nil
}

// Desired compiles the desired flow entries of every bridge of m the way
// the hypervisor does: pipeline.Compile, plus LearningEntries for every
// tenant whose apps include "learning". views are the tenants' views by
// name (pipeline.NewView of m.Tenants).
func Desired(m *pipeline.Model, views map[string]*pipeline.View) (map[pipeline.DPID][]pipeline.Entry, error) {
	out, err := pipeline.Compile(m)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	if err := AddLearning(out, m, views); err != nil {
		return nil, err
	}
	return out, nil
}

// AddLearning appends the learning entries of m's tenants to out.
func AddLearning(out map[pipeline.DPID][]pipeline.Entry, m *pipeline.Model, views map[string]*pipeline.View) error {
	for _, t := range m.Tenants {
		if !slices.Contains(t.Topology.Apps, LearningApp) {
			continue
		}
		v := views[t.Topology.Tenant]
		if v == nil {
			return fmt.Errorf("tenant %q: no view", t.Topology.Tenant)
		}
		extra, err := LearningEntries(v, m.Bindings)
		if err != nil {
			return fmt.Errorf("learning entries: %w", err)
		}
		for d, es := range extra {
			out[d] = append(out[d], es...)
		}
	}
	return nil
}

// Fingerprint identifies a bridge's entries regardless of order: the
// sorted, joined canonical forms the hypervisor compared before it
// compiled incrementally (it now sums 128-bit digests of the entries,
// reconcile.Fingerprint). The full-recompute apply times this.
func Fingerprint(es []pipeline.Entry) (string, error) {
	cs := make([]string, len(es))
	for i := range es {
		c, err := es[i].Canonical()
		if err != nil {
			return "", err
		}
		cs[i] = c
	}
	slices.Sort(cs)
	return strings.Join(cs, "\n"), nil
}
