package reconcile

import (
	"context"
	"fmt"

	"github.com/skyvisor/skyvisor/controller/ofwire"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// Part is a group of desired entries of one switch (e.g. one tenant's
// entries on it, pipeline.Fabric.Tenant) with the digests of every entry
// computed once (pipeline.Entry.Digests): diffs and fingerprints of a
// switch made of parts cost nothing for the parts that did not change.
// A Part is immutable once made; share it freely.
type Part struct {
	// Entries are the part's flow entries; do not modify them.
	Entries []pipeline.Entry
	keys    []pipeline.Digest // digest of each entry's Key
	canon   []pipeline.Digest // digest of each entry's Canonical form
	sum     pipeline.Digest
}

// NewPart computes the digests of es (kept, not copied). It fails if an
// entry cannot be encoded, naming its index ("entry %d: ...").
func NewPart(es []pipeline.Entry) (*Part, error) {
	p := &Part{Entries: es, keys: make([]pipeline.Digest, len(es)), canon: make([]pipeline.Digest, len(es))}
	for i := range es {
		k, c, err := es[i].Digests()
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		p.keys[i], p.canon[i] = k, c
		p.sum = p.sum.Add(c)
	}
	return p, nil
}

// Len is the number of entries of p (0 for nil).
func (p *Part) Len() int {
	if p == nil {
		return 0
	}
	return len(p.Entries)
}

// Sum is the order-independent digest of p's entries: the sum
// (pipeline.Digest.Add) of their canonical digests.
func (p *Part) Sum() pipeline.Digest {
	if p == nil {
		return pipeline.Digest{}
	}
	return p.sum
}

// Flat is the entries of a list of parts in one slice, with the parts
// rebased onto it (FlattenParts).
type Flat struct {
	Entries []pipeline.Entry
	Parts   []*Part
}

// FlattenParts copies the entries of parts, in order, into one new slice
// and returns it with a rebased copy of every part whose Entries are the
// matching sub-slice of it (digests shared, Sum unchanged): keeping the
// rebased parts instead of the originals lets the original entry slices
// be freed, so a switch's desired entries are held once.
func FlattenParts(parts []*Part) Flat {
	out := Flat{Entries: Flatten(parts), Parts: make([]*Part, len(parts))}
	off := 0
	for i, p := range parts {
		if p == nil {
			continue
		}
		n := len(p.Entries)
		out.Parts[i] = &Part{Entries: out.Entries[off : off+n : off+n], keys: p.keys, canon: p.canon, sum: p.sum}
		off += n
	}
	return out
}

// Fingerprint identifies the entries of parts regardless of order and of
// how they are split into parts: the sum of the parts' Sums. Two switches
// with equal fingerprints hold the same entries (up to a 2^-128 chance).
func Fingerprint(parts []*Part) pipeline.Digest {
	var d pipeline.Digest
	for _, p := range parts {
		d = d.Add(p.Sum())
	}
	return d
}

// Flatten returns the entries of parts, in order, in one new slice.
func Flatten(parts []*Part) []pipeline.Entry {
	n := 0
	for _, p := range parts {
		n += p.Len()
	}
	out := make([]pipeline.Entry, 0, n)
	for _, p := range parts {
		if p != nil {
			out = append(out, p.Entries...)
		}
	}
	return out
}

// DiffParts returns the plan that turns a switch holding exactly the
// entries of old (what it was last reconciled with) into one holding those
// of new, without reading the switch. Parts present in both lists (equal
// content: same Sum and length, e.g. the same *Part or a rebased copy)
// are skipped, so the cost is proportional to the entries of the parts
// that changed, not to the switch's table. An entry of a new
// part is added unless an old part had the same entry; an entry of a
// dropped part is deleted (strict, by its cookie) unless a new part has
// an entry with its key (table, priority, match), which the ADD replaces
// in place. It fails if the new parts hold two entries with the same key;
// duplicates between a new part and an unchanged one are not looked for
// (Diff and DiffTable find them). Drift of the switch (entries changed
// behind the caller's back) is not seen: repair it with a periodic
// DiffTable against the real flow table.
func DiffParts(old, new []*Part) (Plan, error) {
	type ident struct {
		sum pipeline.Digest
		n   int
	}
	id := func(p *Part) ident { return ident{p.sum, len(p.Entries)} }
	// Parts of old with a part of equal content in new (and vice versa),
	// matched one to one.
	count := map[ident]int{}
	for _, p := range new {
		if p != nil {
			count[id(p)]++
		}
	}
	keptOld := make([]bool, len(old))
	for i, p := range old {
		if p != nil && count[id(p)] > 0 {
			count[id(p)]--
			keptOld[i] = true
		}
	}
	count = map[ident]int{}
	for i, p := range old {
		if keptOld[i] {
			count[id(p)]++
		}
	}
	keptNew := make([]bool, len(new))
	for i, p := range new {
		if p != nil && count[id(p)] > 0 {
			count[id(p)]--
			keptNew[i] = true
		}
	}
	removed := map[pipeline.Digest]pipeline.Digest{} // key -> canonical, entries of dropped parts
	for i, p := range old {
		if p == nil || keptOld[i] {
			continue
		}
		for i := range p.keys {
			removed[p.keys[i]] = p.canon[i]
		}
	}
	added := map[pipeline.Digest]bool{} // keys of entries of new parts
	var plan Plan
	for j, p := range new {
		if p == nil || keptNew[j] {
			continue
		}
		for i := range p.keys {
			k := p.keys[i]
			if added[k] {
				return Plan{}, fmt.Errorf("reconcile: desired entry %s duplicates another's table, priority and match", p.Entries[i].String())
			}
			added[k] = true
			if c, ok := removed[k]; ok && c == p.canon[i] {
				continue // same entry, moved between parts
			}
			plan.Add = append(plan.Add, p.Entries[i])
		}
	}
	for j, p := range old {
		if p == nil || keptOld[j] {
			continue
		}
		for i := range p.keys {
			if !added[p.keys[i]] {
				plan.Delete = append(plan.Delete, p.Entries[i])
			}
		}
	}
	return plan, nil
}

// DiffTable is Diff with the desired entries given as parts, whose digests
// are already computed: only the actual entries are encoded (once each).
// Same plan, same errors as Diff of the flattened parts.
func DiffTable(parts []*Part, actual []ofwire.FlowStats, opt Options) (Plan, error) {
	owns := opt.Owns
	if owns == nil {
		owns = pipeline.IsOwnedCookie
	}
	inScope := func(t uint8) bool { return opt.Tables == nil || opt.Tables[t] }
	type have struct {
		key, canon pipeline.Digest
	}
	act := make(map[pipeline.Digest]pipeline.Digest, len(actual))
	acts := make([]have, len(actual))
	for i := range actual {
		e := pipeline.FromFlowStats(&actual[i])
		k, c, err := e.Digests()
		if err != nil {
			return Plan{}, fmt.Errorf("reconcile: actual entry %d: %w", i, err)
		}
		act[k] = c
		acts[i] = have{k, c}
	}
	var plan Plan
	n := 0
	for _, p := range parts {
		n += p.Len()
	}
	want := make(map[pipeline.Digest]bool, n)
	i := -1
	for _, p := range parts {
		if p == nil {
			continue
		}
		for j := range p.Entries {
			i++
			e := &p.Entries[j]
			if !inScope(e.Table) {
				continue
			}
			k := p.keys[j]
			if want[k] {
				return Plan{}, fmt.Errorf("reconcile: desired entry %d (%s) duplicates another's table, priority and match", i, e.String())
			}
			want[k] = true
			if c, ok := act[k]; !ok || c != p.canon[j] {
				plan.Add = append(plan.Add, *e)
			}
		}
	}
	for i := range actual {
		if !inScope(uint8(actual[i].Table)) || !owns(actual[i].Cookie) || want[acts[i].key] {
			continue
		}
		plan.Delete = append(plan.Delete, pipeline.FromFlowStats(&actual[i]))
	}
	return plan, nil
}

// SyncTable is Sync with the desired entries given as parts (DiffTable).
func SyncTable(ctx context.Context, sw SyncSwitch, parts []*Part, opt Options) (Plan, error) {
	actual, err := sw.FlowStats(ctx, nil)
	if err != nil {
		return Plan{}, fmt.Errorf("reconcile: read flow table: %w", err)
	}
	p, err := DiffTable(parts, actual, opt)
	if err != nil {
		return Plan{}, err
	}
	return p, Apply(ctx, sw, p)
}
