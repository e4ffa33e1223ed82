package pipeline

import (
	"strings"
	"testing"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
)

// TestFabricPartsAreCompile: NewFabric's Infra plus each tenant's part
// (its bindings only) are exactly Compile's entries, every bridge is
// listed by Bridges, and every entry of a tenant's part carries that
// tenant's ID in its cookie (InfraCookie(t, ·)): the part of a tenant
// is what the hypervisor recompiles when that tenant changes.
func TestFabricPartsAreCompile(t *testing.T) {
	m := testModel()
	want, err := Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFabric(m)
	if err != nil {
		t.Fatal(err)
	}
	got := f.Infra()
	if len(f.Bridges()) != len(want) || len(got) != len(want) {
		t.Fatalf("Bridges %v, Infra %d bridges; Compile %d", f.Bridges(), len(got), len(want))
	}
	for _, d := range f.Bridges() {
		if _, ok := want[d]; !ok {
			t.Fatalf("bridge %s not compiled", d)
		}
		for _, e := range got[d] {
			if e.Cookie != InfraCookie(0, 0) {
				t.Errorf("infra entry %s has cookie %#x", e.String(), e.Cookie)
			}
		}
	}
	for _, pt := range m.Tenants {
		v, err := NewView(pt)
		if err != nil {
			t.Fatal(err)
		}
		var binds []Binding
		for _, b := range m.Bindings {
			if b.Tenant == v.Name {
				binds = append(binds, b)
			}
		}
		part, err := f.Tenant(v, binds)
		if err != nil {
			t.Fatal(err)
		}
		for d, es := range part {
			for _, e := range es {
				if !IsInfraCookie(e.Cookie) || addr.TenantID(e.Cookie>>32) != v.ID {
					t.Errorf("tenant %s: entry %s on %s has cookie %#x", v.Name, e.String(), d, e.Cookie)
				}
			}
			got[d] = append(got[d], es...)
		}
	}
	for d, es := range want {
		g := sortEntries(got[d])
		if len(g) != len(es) {
			t.Fatalf("bridge %s: %d entries from the parts, Compile %d", d, len(g), len(es))
		}
		for i := range es {
			if !g[i].Equal(&es[i]) {
				t.Fatalf("bridge %s entry %d: parts %s, Compile %s", d, i, g[i].String(), es[i].String())
			}
		}
	}
}

// TestFabricTenantErrors: every binding problem Fabric.Tenant checks is
// refused with the binding named.
func TestFabricTenantErrors(t *testing.T) {
	m := testModel()
	f, err := NewFabric(m)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewView(m.Tenants[0])
	if err != nil {
		t.Fatal(err)
	}
	ok := Binding{Tenant: "t1", Host: "h1", Bridge: e1, Port: 1}
	for _, c := range []struct {
		binds []Binding
		want  string
	}{
		{[]Binding{{Tenant: "t2", Host: "h1", Bridge: e1, Port: 1}}, `binding of tenant "t2"`},
		{[]Binding{{Tenant: "t1", Host: "nope", Bridge: e1, Port: 1}}, `has no host "nope"`},
		{[]Binding{{Tenant: "t1", Host: "h1", Bridge: 0x77, Port: 1}}, "unknown edge bridge"},
		{[]Binding{{Tenant: "t1", Host: "h1", Bridge: e1, Port: uplink}}, "is not a host port"},
		{[]Binding{{Tenant: "t1", Host: "h1", Bridge: e1, Port: 0}}, "is not a host port"},
		{[]Binding{ok, {Tenant: "t1", Host: "h1", Bridge: e2, Port: 4}}, "bound twice"},
		{[]Binding{ok, {Tenant: "t1", Host: "h2", Bridge: e1, Port: 1}}, "already bound to t1/h1"},
	} {
		if _, err := f.Tenant(v, c.binds); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.binds, err, c.want)
		}
	}
	// A gateway DPID that is another site's edge bridge.
	bad := testModel()
	bad.Sites[1].Gateway.DPID = e1
	if _, err := NewFabric(bad); err == nil || !strings.Contains(err.Error(), "is also an edge bridge") {
		t.Errorf("NewFabric with a gateway on an edge DPID: %v", err)
	}
}

// TestDigests: Digests agree with Key and Canonical (equal strings, equal
// digests; a different instruction changes only the canonical digest),
// KeyCanonical returns both strings, and Add/Sub are inverse.
func TestDigests(t *testing.T) {
	comp, err := Compile(testModel())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[Digest]string{}
	canon := map[Digest]string{}
	var sum Digest
	for _, es := range comp {
		for i := range es {
			e := &es[i]
			kd, cd, err := e.Digests()
			if err != nil {
				t.Fatal(err)
			}
			k, c, err := e.KeyCanonical()
			if err != nil {
				t.Fatal(err)
			}
			if c2, _ := e.Canonical(); k != e.Key() || c != c2 || !strings.HasPrefix(c, k) {
				t.Fatalf("KeyCanonical of %s disagrees with Key/Canonical", e.String())
			}
			if prev, ok := keys[kd]; ok && prev != k {
				t.Fatalf("key digest collision")
			}
			if prev, ok := canon[cd]; ok && prev != c {
				t.Fatalf("canonical digest collision")
			}
			keys[kd], canon[cd] = k, c
			sum = sum.Add(cd)
			o := *e
			o.Instructions = append(ofp.Instructions{}, Apply(Output(4242)))
			kd2, cd2, err := o.Digests()
			if err != nil {
				t.Fatal(err)
			}
			if kd2 != kd || cd2 == cd {
				t.Fatalf("changed instructions: key digest changed %v, canonical unchanged %v", kd2 != kd, cd2 == cd)
			}
			if sum.Sub(cd).Add(cd) != sum {
				t.Fatal("Sub does not undo Add")
			}
		}
	}
	if sum.IsZero() || !(Digest{}).IsZero() {
		t.Fatal("IsZero")
	}
}
