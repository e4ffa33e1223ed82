package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func mig(id string, started int, final bool) Migration {
	return Migration{ID: id, State: map[bool]string{false: "running", true: "done"}[final], Final: final,
		Started: time.Date(2026, 12, 7, 10, 0, started, 0, time.UTC), Record: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id))}
}

func TestMigrations(t *testing.T) {
	s, path := openTest(t)
	if err := s.PutMigration(mig("mig-b", 2, false)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMigration(mig("mig-a", 1, true)); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetMigration("mig-b")
	if err != nil || got.Version != RecordVersion || got.State != "running" || got.Final || string(got.Record) != `{"id":"mig-b"}` ||
		got.Updated.IsZero() || !got.Started.Equal(mig("", 2, false).Started) {
		t.Fatalf("GetMigration: %+v %v", got, err)
	}
	// replace: the new state wins, Updated moves on
	m := mig("mig-b", 2, true)
	m.Record = json.RawMessage(`{"id":"mig-b","state":"done"}`)
	if err := s.PutMigration(m); err != nil {
		t.Fatal(err)
	}
	again, _ := s.GetMigration("mig-b")
	if !again.Final || string(again.Record) != string(m.Record) || !again.Updated.After(got.Updated) {
		t.Fatalf("after replace: %+v", again)
	}
	list, err := s.ListMigrations()
	if err != nil || len(list) != 2 || list[0].ID != "mig-a" || list[1].ID != "mig-b" {
		t.Fatalf("ListMigrations: %+v %v", list, err)
	}
	// the log: appended in order, kept across a reopen
	for i, e := range []string{`{"kind":"freeze"}`, `{"kind":"clone"}`} {
		seq, err := s.AppendMigrationLog("mig-b", []byte(e))
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("AppendMigrationLog: %d %v", seq, err)
		}
	}
	if _, err := s.AppendMigrationLog("ghost", []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Errorf("append to the log of an unknown migration: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	lg, err := s2.MigrationLog("mig-b")
	if err != nil || len(lg) != 2 || string(lg[0]) != `{"kind":"freeze"}` || string(lg[1]) != `{"kind":"clone"}` {
		t.Fatalf("MigrationLog after reopen: %q %v", lg, err)
	}
	if got, err := s2.GetMigration("mig-a"); err != nil || !got.Final {
		t.Fatalf("GetMigration after reopen: %+v %v", got, err)
	}
	lg[0][0] = 'X'
	if lg2, _ := s2.MigrationLog("mig-b"); string(lg2[0]) != `{"kind":"freeze"}` {
		t.Fatal("MigrationLog aliases the store")
	}
	if err := s2.DeleteMigrationLog("mig-b"); err != nil {
		t.Fatal(err)
	}
	if lg, err := s2.MigrationLog("mig-b"); err != nil || len(lg) != 0 {
		t.Fatalf("log after delete: %q %v", lg, err)
	}
	if err := s2.DeleteMigrationLog("mig-b"); err != nil {
		t.Fatalf("deleting a deleted log: %v", err)
	}
	// delete removes the record and its log
	if _, err := s2.AppendMigrationLog("mig-a", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := s2.DeleteMigration("mig-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.GetMigration("mig-a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if lg, _ := s2.MigrationLog("mig-a"); len(lg) != 0 {
		t.Errorf("log left after delete: %q", lg)
	}
	for name, err := range map[string]error{
		"get":    func() error { _, err := s2.GetMigration("ghost"); return err }(),
		"delete": s2.DeleteMigration("ghost"),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s unknown: %v, want ErrNotFound", name, err)
		}
	}
	for _, bad := range []Migration{{ID: "", Record: json.RawMessage(`{}`)}, {ID: "x", Record: json.RawMessage(`{`)}, {ID: "x"}} {
		if err := s2.PutMigration(bad); err == nil {
			t.Errorf("PutMigration(%+v) accepted", bad)
		}
	}
}

func TestPruneMigrations(t *testing.T) {
	s, _ := openTest(t)
	// six final records and two in progress, interleaved in time
	for i := range 8 {
		final := i != 2 && i != 6
		if err := s.PutMigration(mig(fmt.Sprintf("mig-%d", i), i, final)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendMigrationLog(fmt.Sprintf("mig-%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := s.PruneMigrations(3)
	if err != nil || !slices.Equal(gone, []string{"mig-0", "mig-1", "mig-3"}) {
		t.Fatalf("PruneMigrations(3): %v %v", gone, err)
	}
	list, _ := s.ListMigrations()
	var ids []string
	for _, m := range list {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{"mig-2", "mig-4", "mig-5", "mig-6", "mig-7"}) {
		t.Errorf("left %v", ids)
	}
	if lg, _ := s.MigrationLog("mig-1"); len(lg) != 0 {
		t.Errorf("log of a pruned record left: %q", lg)
	}
	if lg, _ := s.MigrationLog("mig-2"); len(lg) != 1 {
		t.Errorf("log of a running migration pruned: %q", lg)
	}
	if gone, err := s.PruneMigrations(3); err != nil || len(gone) != 0 {
		t.Errorf("second prune: %v %v", gone, err)
	}
	if gone, _ := s.PruneMigrations(0); len(gone) != 3 {
		t.Errorf("prune to 0: %v", gone)
	}
	if list, _ := s.ListMigrations(); len(list) != 2 {
		t.Errorf("in-progress records pruned: %+v", list)
	}
}

func TestNewerMigrationRefused(t *testing.T) {
	s, _ := openTest(t)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return bucket(tx, bucketMigrations).Put([]byte("future"), []byte(`{"version":2,"id":"future","record":{}}`))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMigration("future"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("get: %v, want a version error", err)
	}
	if _, err := s.ListMigrations(); err == nil {
		t.Error("list accepted a newer record")
	}
}

// BenchmarkMigrationWrites measures what a migration adds to its steps:
// one record Put per progress event (a record of about 4 KB, 30 events)
// and one log append (an entry of about 100 flows, 20 KB), with fsync (as
// the daemon opens the store) unless -short.
func BenchmarkMigrationWrites(b *testing.B) {
	path := b.TempDir() + "/skyvisor.db"
	var opts []Option
	if testing.Short() {
		opts = append(opts, WithNoSync())
	}
	s, err := Open(path, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := Migration{ID: "mig-bench", State: "running", Started: time.Now(),
		Record: json.RawMessage(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 4000)))}
	if err := s.PutMigration(rec); err != nil {
		b.Fatal(err)
	}
	entry := []byte(fmt.Sprintf(`{"step":"freeze","pad":%q}`, strings.Repeat("y", 20000)))
	b.Run("put-record", func(b *testing.B) {
		for b.Loop() {
			if err := s.PutMigration(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append-log-20KB", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.AppendMigrationLog("mig-bench", entry); err != nil {
				b.Fatal(err)
			}
		}
	})
}
