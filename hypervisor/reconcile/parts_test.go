package reconcile

import (
	"math/rand/v2"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
)

// table simulates a switch's flow table by Key, with OpenFlow's ADD
// (replace in place) and strict delete restricted to the cookie.
type table map[string]pipeline.Entry

func tableOf(es []pipeline.Entry) table {
	t := table{}
	for _, e := range es {
		t[e.Key()] = e
	}
	return t
}

func (t table) apply(p Plan) {
	for _, e := range p.Add {
		t[e.Key()] = e
	}
	for _, e := range p.Delete {
		if have, ok := t[e.Key()]; ok && have.Cookie == e.Cookie {
			delete(t, e.Key())
		}
	}
}

func (t table) equal(tb testing.TB, want table) bool {
	tb.Helper()
	if len(t) != len(want) {
		return false
	}
	for k, e := range want {
		h, ok := t[k]
		if !ok || !h.Equal(&e) {
			return false
		}
	}
	return true
}

// randomEntry is entry number key (table, priority and match follow from
// it) in one of 3 variants (instructions and cookie).
func randomEntry(key, variant int) pipeline.Entry {
	e := pipeline.Entry{Table: uint8(key % 3), Priority: uint16(key % 7 * 10),
		Cookie: pipeline.InfraCookie(addr.TenantID(0x200+variant/2), addr.HostIndex(key)), // variants 0 and 1 share it
		Match:  []ofp.XM{pipeline.EthDst(addr.MACFromUint64(uint64(key)))}}
	if variant > 0 {
		e.Instructions = ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(variant)))}
	}
	return e
}

// randomParts splits keys into parts of random entries.
func randomParts(t *testing.T, r *rand.Rand, keys []int) []*Part {
	var out []*Part
	for len(keys) > 0 {
		n := 1 + r.IntN(len(keys))
		var es []pipeline.Entry
		for _, k := range keys[:n] {
			es = append(es, randomEntry(k, r.IntN(3)))
		}
		keys = keys[n:]
		p, err := NewPart(es)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestDiffPartsMatchesDiff: over random old and new part lists (some
// parts shared, entries moved between parts, replaced with other
// instructions or cookies, added, dropped), the plan of DiffParts turns a
// table holding old into exactly new, and so does Diff's against the
// same table.
func TestDiffPartsMatchesDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 500; round++ {
		perm := r.Perm(60)
		oldParts := randomParts(t, r, perm[:r.IntN(40)])
		// Keep some old parts; the keys they do not hold are free for
		// new parts.
		var newParts []*Part
		used := map[int]bool{}
		for _, p := range oldParts {
			if r.IntN(2) == 0 {
				newParts = append(newParts, p)
				for _, e := range p.Entries {
					used[int(e.Cookie&0xffffffff)] = true
				}
			}
		}
		var free []int
		for _, k := range r.Perm(60) {
			if !used[k] && r.IntN(2) == 0 {
				free = append(free, k)
			}
		}
		newParts = append(newParts, randomParts(t, r, free)...)
		r.Shuffle(len(newParts), func(i, j int) { newParts[i], newParts[j] = newParts[j], newParts[i] })

		sw := tableOf(Flatten(oldParts))
		want := tableOf(Flatten(newParts))
		p, err := DiffParts(oldParts, newParts)
		if err != nil {
			t.Fatal(err)
		}
		sw.apply(p)
		if !sw.equal(t, want) {
			t.Fatalf("round %d: after DiffParts' plan (%d adds, %d deletes) the table has %d entries, want %d", round, len(p.Add), len(p.Delete), len(sw), len(want))
		}
		// No needless work: nothing added that was there already.
		before := tableOf(Flatten(oldParts))
		for _, e := range p.Add {
			if h, ok := before[e.Key()]; ok && h.Equal(&e) {
				t.Fatalf("round %d: adds unchanged entry %s", round, e.String())
			}
		}
		full, err := DiffTable(newParts, asReported(t, Flatten(oldParts)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(full.Add) != len(p.Add) || len(full.Delete) != len(p.Delete) {
			t.Fatalf("round %d: DiffParts %d adds %d deletes, DiffTable %d adds %d deletes", round, len(p.Add), len(p.Delete), len(full.Add), len(full.Delete))
		}
		if fp, want := Fingerprint(newParts), Fingerprint(mustParts(t, Flatten(newParts))); fp != want {
			t.Fatalf("round %d: fingerprint depends on the split into parts", round)
		}
	}
}

func mustParts(t *testing.T, es []pipeline.Entry) []*Part {
	p, err := NewPart(es)
	if err != nil {
		t.Fatal(err)
	}
	return []*Part{p}
}

// TestDiffPartsUnchanged: the same parts, or rebased copies of them, give
// an empty plan; a duplicate key among new parts is an error.
func TestDiffPartsUnchanged(t *testing.T) {
	ps := mustParts(t, desired(t))
	if p, err := DiffParts(ps, ps); err != nil || !p.Empty() {
		t.Fatalf("same parts: %+v, %v", p, err)
	}
	// Rebased copies (FlattenParts) are the same content: nothing to do,
	// and they hold the flat slice's entries.
	two := append(mustParts(t, desired(t)[:2]), mustParts(t, desired(t)[2:])...)
	fl := FlattenParts(two)
	if p, err := DiffParts(two, fl.Parts); err != nil || !p.Empty() {
		t.Fatalf("rebased parts: %+v, %v", p, err)
	}
	if len(fl.Entries) != 4 || &fl.Parts[1].Entries[0] != &fl.Entries[2] || Fingerprint(fl.Parts) != Fingerprint(two) {
		t.Fatal("FlattenParts: parts not rebased onto the flat slice")
	}
	d := desired(t)
	dup, err := NewPart(d[:1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DiffParts(nil, append(mustParts(t, d), dup)); err == nil {
		t.Fatal("duplicate key accepted")
	}
	if _, err := DiffTable(append(mustParts(t, d), dup), nil, Options{}); err == nil {
		t.Fatal("DiffTable: duplicate key accepted")
	}
}

// TestFingerprintOrderIndependent: reordering entries keeps the
// fingerprint; changing one entry's instructions changes it.
func TestFingerprintOrderIndependent(t *testing.T) {
	d := desired(t)
	a := Fingerprint(mustParts(t, d))
	rev := make([]pipeline.Entry, len(d))
	for i := range d {
		rev[len(d)-1-i] = d[i]
	}
	if b := Fingerprint(mustParts(t, rev)); b != a {
		t.Fatal("order changes the fingerprint")
	}
	d[0].Instructions = ofp.Instructions{pipeline.Apply(pipeline.Output(7))}
	if c := Fingerprint(mustParts(t, d)); c == a {
		t.Fatal("changed entry, same fingerprint")
	}
}
