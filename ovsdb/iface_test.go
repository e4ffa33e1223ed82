package ovsdb

import (
	"reflect"
	"testing"
)

func TestDiffInterfaces(t *testing.T) {
	a := Interface{Name: "a", OFPort: 1, ExternalIDs: map[string]string{"iface-id": "x"}}
	b := Interface{Name: "b", OFPort: 2}
	b2 := b
	b2.OFPort = 3
	c := Interface{Name: "c"}
	cNew := Interface{Name: "c", OFPort: 9} // same name, new row
	old := map[string]Interface{"ua": a, "ub": b, "uc": c}
	cur := map[string]Interface{"ua": a, "ub": b2, "uc2": cNew, "ud": {Name: "d"}}
	got := diffInterfaces(old, cur)
	var summary []string
	for _, ev := range got {
		summary = append(summary, ev.Type.String()+" "+ev.Interface.Name)
	}
	want := []string{"removed c", "added c", "added d", "updated b"}
	if !reflect.DeepEqual(summary, want) {
		t.Fatalf("events = %v, want %v", summary, want)
	}
	if got[0].Interface.OFPort != 0 || got[1].Interface.OFPort != 9 || got[3].Interface.OFPort != 3 {
		t.Fatalf("event payloads = %+v", got)
	}
	if ev := diffInterfaces(cur, cur); len(ev) != 0 {
		t.Fatalf("no change gave %v", ev)
	}
	// external_ids changes are updates.
	a2 := a
	a2.ExternalIDs = map[string]string{"iface-id": "y"}
	if ev := diffInterfaces(map[string]Interface{"ua": a}, map[string]Interface{"ua": a2}); len(ev) != 1 || ev[0].Type != InterfaceUpdated || ev[0].Interface.IfaceID() != "y" {
		t.Fatalf("external_ids change gave %+v", ev)
	}
}

func TestInterfaceEventTypeString(t *testing.T) {
	if InterfaceAdded.String() != "added" || InterfaceRemoved.String() != "removed" || InterfaceUpdated.String() != "updated" || InterfaceEventType(9).String() != "InterfaceEventType(9)" {
		t.Fatal("String")
	}
}
