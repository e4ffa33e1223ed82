package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	bolt "go.etcd.io/bbolt"
)

// fakeClock returns a clock that advances one second per call.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func openTest(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "skyvisor.db")
	s, err := Open(path, append([]Option{WithNoSync(), WithClock(fakeClock())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func topo(name string, hosts ...string) *topology.Topology {
	tp := &topology.Topology{
		Tenant: name, Apps: []string{"learning"},
		Switches: []topology.Switch{{Name: "s1"}},
		Links:    []topology.Link{},
	}
	for i, h := range hosts {
		tp.Hosts = append(tp.Hosts, topology.Host{
			Name: h, MAC: fmt.Sprintf("00:00:00:00:00:%02x", i+1), IP: fmt.Sprintf("10.0.0.%d/24", i+1),
			Switch: "s1", Port: uint32(i + 1), Cloud: "cloud1",
		})
	}
	return tp
}

func TestPutGetTenant(t *testing.T) {
	s, _ := openTest(t)
	a, err := s.PutTenant(topo("a", "h1", "h2", "h3"))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != addr.FirstTenantID || a.Generation != 1 || a.Version != RecordVersion || !a.Created.Equal(a.Updated) {
		t.Fatalf("new tenant: %+v", a)
	}
	wantHosts := map[string]addr.HostIndex{"h1": 1, "h2": 2, "h3": 3}
	if fmt.Sprint(a.Hosts) != fmt.Sprint(wantHosts) {
		t.Fatalf("hosts %v", a.Hosts)
	}
	b, err := s.PutTenant(topo("b", "h1"))
	if err != nil || b.ID != addr.FirstTenantID+1 {
		t.Fatalf("second tenant: %+v %v", b, err)
	}
	got, err := s.GetTenant("a")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.Generation != 1 || fmt.Sprint(got.Hosts) != fmt.Sprint(wantHosts) || !got.Created.Equal(a.Created) {
		t.Fatalf("GetTenant: %+v", got)
	}
	tp, err := got.Parse()
	if err != nil || tp.Tenant != "a" || len(tp.Hosts) != 3 {
		t.Fatalf("Parse: %+v %v", tp, err)
	}
	if m, ok := got.FabricMAC("h2"); !ok || m != addr.MustParseMAC("02:00:00:00:00:02") {
		t.Errorf("FabricMAC(h2) = %v %v", m, ok)
	}
	if _, ok := got.FabricMAC("nope"); ok {
		t.Error("FabricMAC of unknown host ok")
	}
	am, err := got.AddressMap()
	if err != nil || am.ID() != a.ID || am.Len() != 3 {
		t.Fatalf("AddressMap: %v %v", am, err)
	}
	if f, ok := am.ToFabric(addr.MustParseMAC("00:00:00:00:00:03")); !ok || f != addr.FabricMAC(a.ID, 3) {
		t.Errorf("AddressMap h3 -> %v %v", f, ok)
	}
	broken := *got
	broken.Hosts = map[string]addr.HostIndex{"h1": 1}
	if _, err := broken.AddressMap(); err == nil || !strings.Contains(err.Error(), `"h2"`) {
		t.Errorf("AddressMap with a missing index: %v", err)
	}
	byID, err := s.TenantByID(b.ID)
	if err != nil || byID.Name != "b" {
		t.Fatalf("TenantByID: %+v %v", byID, err)
	}
	list, err := s.ListTenants()
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" || list[1].Hosts["h1"] != 1 {
		t.Fatalf("ListTenants: %+v %v", list, err)
	}
}

func TestNotFound(t *testing.T) {
	s, _ := openTest(t)
	checks := map[string]error{
		"get tenant":      func() error { _, err := s.GetTenant("ghost"); return err }(),
		"tenant by id":    func() error { _, err := s.TenantByID(0x0345); return err }(),
		"delete tenant":   s.DeleteTenant("ghost"),
		"get binding":     func() error { _, err := s.GetBinding("ghost/h"); return err }(),
		"delete binding":  s.DeleteBinding("ghost/h"),
		"get snapshot":    func() error { _, err := s.GetSnapshot("ghost"); return err }(),
		"delete snapshot": s.DeleteSnapshot("ghost"),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		} else if !strings.Contains(err.Error(), "ghost") && !strings.Contains(err.Error(), "837") {
			t.Errorf("%s: error %q does not name the key", name, err)
		}
	}
}

func TestUpdateTenant(t *testing.T) {
	s, _ := openTest(t)
	first, err := s.PutTenant(topo("a", "h1", "h2", "h3"))
	if err != nil {
		t.Fatal(err)
	}
	// Identical resubmission: nothing changes.
	same, err := s.PutTenant(topo("a", "h1", "h2", "h3"))
	if err != nil || same.Generation != 1 || !same.Updated.Equal(first.Updated) || same.ID != first.ID {
		t.Fatalf("resubmit: %+v %v", same, err)
	}
	// Remove h2, add h4 and h5: h1/h3 keep theirs, h4 reuses 2, h5 gets 4.
	tp := topo("a", "h1", "h3", "h4", "h5")
	upd, err := s.PutTenant(tp)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]addr.HostIndex{"h1": 1, "h3": 3, "h4": 2, "h5": 4}
	if fmt.Sprint(upd.Hosts) != fmt.Sprint(want) {
		t.Fatalf("hosts after update %v, want %v", upd.Hosts, want)
	}
	if upd.Generation != 2 || upd.ID != first.ID || !upd.Created.Equal(first.Created) || !upd.Updated.After(first.Updated) {
		t.Fatalf("update record: %+v (first %+v)", upd, first)
	}
	got, _ := s.GetTenant("a")
	if fmt.Sprint(got.Hosts) != fmt.Sprint(want) || got.Generation != 2 {
		t.Fatalf("stored after update: %+v", got)
	}
}

func TestDeleteFreesIDs(t *testing.T) {
	s, _ := openTest(t)
	a, _ := s.PutTenant(topo("a", "h1", "h2"))
	if _, err := s.PutTenant(topo("b", "h1")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBinding(Binding{IfaceID: "a/h1", Site: "cloud1", PortName: "p1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTenant("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTenant("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted tenant still there: %v", err)
	}
	if _, err := s.TenantByID(a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted tenant's ID still mapped: %v", err)
	}
	// The freed ID is the lowest free one; the new tenant's host indices start afresh.
	c, err := s.PutTenant(topo("c", "x"))
	if err != nil || c.ID != a.ID || c.Hosts["x"] != 1 {
		t.Fatalf("after delete: %+v %v", c, err)
	}
	// Re-creating "a" gets a new ID and fresh indices.
	a2, err := s.PutTenant(topo("a", "h2"))
	if err != nil || a2.ID != addr.FirstTenantID+2 || a2.Hosts["h2"] != 1 || a2.Generation != 1 {
		t.Fatalf("re-created: %+v %v", a2, err)
	}
	// Bindings are kept.
	if _, err := s.GetBinding("a/h1"); err != nil {
		t.Errorf("binding removed with tenant: %v", err)
	}
}

// fillTenantIDs marks all but keep valid tenant IDs as used, directly in the
// tenant_ids bucket, in one transaction.
func fillTenantIDs(t *testing.T, s *Store, keep int) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketTenantIDs)
		used := b.Stats().KeyN
		for id := int(addr.FirstTenantID); id <= int(addr.LastTenantID) && used < addr.NumTenantIDs-keep; id++ {
			k := tenantIDKey(addr.TenantID(id))
			if addr.IsValidTenantID(addr.TenantID(id)) && b.Get(k) == nil {
				if err := b.Put(k, []byte(fmt.Sprintf("filler-%d", id))); err != nil {
					return err
				}
				used++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func countKeys(t *testing.T, s *Store, name string) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error { n = bucket(tx, name).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAtomicOnExhaustion(t *testing.T) {
	s, _ := openTest(t)
	if _, err := s.PutTenant(topo("keep", "h1")); err != nil {
		t.Fatal(err)
	}
	fillTenantIDs(t, s, 1) // one ID left
	idsBefore := countKeys(t, s, bucketTenantIDs)
	// The first tenant of the batch fits, the second does not: neither is stored.
	_, err := s.PutTenants([]*topology.Topology{topo("x", "h1", "h2"), topo("y", "h1")})
	if !errors.Is(err, addr.ErrExhausted) {
		t.Fatalf("want ErrExhausted, got %v", err)
	}
	if !strings.Contains(err.Error(), `tenant "y"`) {
		t.Errorf("error does not name the tenant: %v", err)
	}
	for _, name := range []string{"x", "y"} {
		if _, err := s.GetTenant(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("tenant %s partially stored: %v", name, err)
		}
	}
	if got := countKeys(t, s, bucketTenantIDs); got != idsBefore {
		t.Errorf("tenant_ids has %d keys, had %d", got, idsBefore)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		if bucket(tx, bucketHostIndices).Bucket([]byte("x")) != nil {
			t.Error("host indices of x were stored")
		}
		return nil
	})
	// Updating an existing tenant still works with the ID space full...
	if _, err := s.PutTenant(topo("keep", "h1", "h2")); err != nil {
		t.Fatalf("update with full space: %v", err)
	}
	// ...and the one remaining ID is still there.
	if _, err := s.PutTenant(topo("x", "h1")); err != nil {
		t.Fatalf("last ID: %v", err)
	}
	if _, err := s.PutTenant(topo("z", "h1")); !errors.Is(err, addr.ErrExhausted) {
		t.Fatalf("want ErrExhausted, got %v", err)
	}
}

func TestAtomicOnInvalidBatch(t *testing.T) {
	s, _ := openTest(t)
	bad := topo("bad", "h1")
	bad.Hosts[0].MAC = "ff:ff:ff:ff:ff:ff"
	_, err := s.PutTenants([]*topology.Topology{topo("good", "h1"), bad})
	var ve *topology.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("want ValidationError naming the tenant, got %v", err)
	}
	if _, err := s.PutTenants([]*topology.Topology{topo("d", "h1"), topo("d", "h2")}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate in batch: %v", err)
	}
	if _, err := s.PutTenants([]*topology.Topology{nil}); err == nil {
		t.Fatal("nil topology accepted")
	}
	if list, _ := s.ListTenants(); len(list) != 0 {
		t.Fatalf("partial state: %+v", list)
	}
	if n := countKeys(t, s, bucketTenantIDs); n != 0 {
		t.Fatalf("tenant_ids has %d keys", n)
	}
	// A valid batch stores all, in one go, with consecutive IDs.
	out, err := s.PutTenants([]*topology.Topology{topo("p", "h1"), topo("q", "h1")})
	if err != nil || len(out) != 2 || out[0].ID != addr.FirstTenantID || out[1].ID != addr.FirstTenantID+1 {
		t.Fatalf("batch: %+v %v", out, err)
	}
}

func TestReopenPersistence(t *testing.T) {
	s, path := openTest(t)
	a, err := s.PutTenant(topo("a", "h1", "h2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutBinding(Binding{IfaceID: "a/h1", Site: "cloud1", VM: "vm1", Bridge: "br-int", DPID: 0xa1, PortName: "a-h1", OFPort: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSnapshot("snap-1", []byte("flows")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.GetTenant("a")
	if err != nil || got.ID != a.ID || fmt.Sprint(got.Hosts) != fmt.Sprint(a.Hosts) || string(got.Topology) != string(a.Topology) || !got.Created.Equal(a.Created) {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	b, err := s2.GetBinding("a/h1")
	if err != nil || b.OFPort != 7 || b.DPID != 0xa1 || b.Bridge != "br-int" || b.VM != "vm1" {
		t.Fatalf("binding after reopen: %+v %v", b, err)
	}
	snap, err := s2.GetSnapshot("snap-1")
	if err != nil || string(snap.Data) != "flows" {
		t.Fatalf("snapshot after reopen: %+v %v", snap, err)
	}
	// Allocation continues from persisted state.
	n, err := s2.PutTenant(topo("n", "h1"))
	if err != nil || n.ID != a.ID+1 {
		t.Fatalf("next ID after reopen: %+v %v", n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	s, path := openTest(t)
	// The file is locked while open.
	if _, err := Open(path, WithLockTimeout(50*time.Millisecond)); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open of a locked file: %v", err)
	}
	// A newer schema is refused.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return bucket(tx, bucketMeta).Put([]byte(keySchema), []byte("99"))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("newer schema: %v", err)
	}
	// Not a bbolt file.
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := writeFile(junk, strings.Repeat("not a database ", 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(junk, WithLockTimeout(50*time.Millisecond)); err == nil {
		t.Fatal("junk file opened")
	}
}

func TestNewerRecordRefused(t *testing.T) {
	s, _ := openTest(t)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		if err := bucket(tx, bucketTenants).Put([]byte("future"), []byte(`{"version":2,"name":"future"}`)); err != nil {
			return err
		}
		if err := bucket(tx, bucketBindings).Put([]byte("future/h"), []byte(`{"version":3}`)); err != nil {
			return err
		}
		if err := bucket(tx, bucketSnapshotMeta).Put([]byte("future"), []byte(`{"version":0}`)); err != nil {
			return err
		}
		return bucket(tx, bucketTenants).Put([]byte("garbled"), []byte(`{`))
	}); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"tenant":   func() error { _, err := s.GetTenant("future"); return err }(),
		"garbled":  func() error { _, err := s.GetTenant("garbled"); return err }(),
		"binding":  func() error { _, err := s.GetBinding("future/h"); return err }(),
		"snapshot": func() error { _, err := s.GetSnapshot("future"); return err }(),
		"list":     func() error { _, err := s.ListTenants(); return err }(),
		"put":      func() error { _, err := s.PutTenant(topo("future", "h")); return err }(),
	} {
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want a version/decode error", name, err)
		}
	}
}

func TestBindings(t *testing.T) {
	s, _ := openTest(t)
	for _, id := range []string{"b/h1", "a/h2", "a/h1", "ab/h1"} {
		if err := s.PutBinding(Binding{IfaceID: id, Site: "cloud1", VM: "vm1", PortName: "p-" + id, OFPort: 3}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range all {
		ids = append(ids, b.IfaceID)
		if b.Version != RecordVersion || b.Updated.IsZero() {
			t.Errorf("binding %s: version %d updated %v", b.IfaceID, b.Version, b.Updated)
		}
	}
	if !slices.Equal(ids, []string{"a/h1", "a/h2", "ab/h1", "b/h1"}) {
		t.Fatalf("Bindings order %v", ids)
	}
	ta, err := s.TenantBindings("a")
	if err != nil || len(ta) != 2 || ta[0].IfaceID != "a/h1" || ta[1].IfaceID != "a/h2" {
		t.Fatalf("TenantBindings(a) = %+v %v", ta, err)
	}
	// Replace.
	if err := s.PutBinding(Binding{IfaceID: "a/h1", Site: "cloud2", PortName: "moved", OFPort: 9}); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.GetBinding("a/h1"); b.Site != "cloud2" || b.OFPort != 9 {
		t.Fatalf("replaced binding %+v", b)
	}
	if err := s.DeleteBinding("a/h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBinding("a/h1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted binding: %v", err)
	}
	for _, b := range []Binding{{IfaceID: "noslash", Site: "c", PortName: "p"}, {IfaceID: "/h", Site: "c", PortName: "p"},
		{IfaceID: "a/h", PortName: "p"}, {IfaceID: "a/h", Site: "c"}} {
		if err := s.PutBinding(b); err == nil {
			t.Errorf("PutBinding(%+v) accepted", b)
		}
	}
}

func TestSnapshots(t *testing.T) {
	s, _ := openTest(t)
	info, err := s.PutSnapshot("b", []byte("second"))
	if err != nil || info.Size != 6 || info.ID != "b" || info.Time.IsZero() {
		t.Fatalf("PutSnapshot: %+v %v", info, err)
	}
	if _, err := s.PutSnapshot("a", nil); err != nil {
		t.Fatal(err)
	}
	empty, err := s.GetSnapshot("a")
	if err != nil || len(empty.Data) != 0 || empty.Size != 0 {
		t.Fatalf("empty snapshot: %+v %v", empty, err)
	}
	// Overwrite keeps one entry with the new data and time.
	info2, err := s.PutSnapshot("b", []byte("third!!"))
	if err != nil || !info2.Time.After(info.Time) {
		t.Fatalf("overwrite: %+v %v", info2, err)
	}
	got, _ := s.GetSnapshot("b")
	if string(got.Data) != "third!!" || got.Size != 7 {
		t.Fatalf("GetSnapshot: %+v", got)
	}
	got.Data[0] = 'X' // the caller owns the copy
	if again, _ := s.GetSnapshot("b"); string(again.Data) != "third!!" {
		t.Fatal("GetSnapshot data aliases the store")
	}
	list, err := s.ListSnapshots()
	if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" || list[1].Size != 7 {
		t.Fatalf("ListSnapshots: %+v %v", list, err)
	}
	if err := s.DeleteSnapshot("a"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListSnapshots(); len(list) != 1 {
		t.Fatalf("after delete: %+v", list)
	}
	if _, err := s.PutSnapshot("", []byte("x")); err == nil {
		t.Error("empty id accepted")
	}
	if _, err := s.PutSnapshot(strings.Repeat("i", 256), []byte("x")); err == nil {
		t.Error("long id accepted")
	}
	if _, err := s.PutSnapshot("big", make([]byte, MaxSnapshotSize+1)); err == nil {
		t.Error("oversize snapshot accepted")
	}
}

func TestConcurrentUse(t *testing.T) {
	s, _ := openTest(t)
	const workers, each = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*4)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				name := fmt.Sprintf("t%d-%d", w, i)
				if _, err := s.PutTenant(topo(name, "h1", "h2")); err != nil {
					errs <- err
				}
				if _, err := s.GetTenant(name); err != nil {
					errs <- err
				}
				if err := s.PutBinding(Binding{IfaceID: name + "/h1", Site: "c", PortName: "p"}); err != nil {
					errs <- err
				}
				if _, err := s.ListTenants(); err != nil {
					errs <- err
				}
				if i%2 == 1 {
					if err := s.DeleteTenant(name); err != nil {
						errs <- err
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := s.ListTenants()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != workers*each/2 {
		t.Fatalf("%d tenants, want %d", len(list), workers*each/2)
	}
	seen := map[addr.TenantID]string{}
	for _, tn := range list {
		if other, dup := seen[tn.ID]; dup {
			t.Errorf("tenant ID %v given to %s and %s", tn.ID, other, tn.Name)
		}
		seen[tn.ID] = tn.Name
		if !addr.IsValidTenantID(tn.ID) {
			t.Errorf("invalid ID %v", tn.ID)
		}
	}
	if n := countKeys(t, s, bucketTenantIDs); n != len(list) {
		t.Errorf("tenant_ids has %d keys for %d tenants", n, len(list))
	}
}

func BenchmarkPutTenant(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := Open(path, WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tp := topo("bench", "h1", "h2", "h3", "h4")
	for i := 0; b.Loop(); i++ {
		tp.Tenant = fmt.Sprintf("t%d", i%1000)
		if _, err := s.PutTenant(tp); err != nil {
			b.Fatal(err)
		}
	}
}
