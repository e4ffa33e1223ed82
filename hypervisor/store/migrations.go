package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Migration is a stored live-migration record (package hypervisor/migrate):
// the few fields the store needs to list and prune records, and the record
// itself as JSON owned by the migrate package (the store does not
// interpret it).
type Migration struct {
	// Version is the record format version (RecordVersion); set by
	// PutMigration.
	Version int `json:"version"`
	// ID is the migration ID, the record's key (non-empty, at most 255
	// bytes; the migrate package's IDs sort by start time).
	ID string `json:"id"`
	// State is the migration's state as the migrate package names it
	// ("running", "done", ...).
	State string `json:"state"`
	// Final is true once the migration ended: its record will not change
	// any more and PruneMigrations may delete it. A record stored with
	// Final false and found at start-up is a migration the daemon was
	// running when it died.
	Final bool `json:"final"`
	// Started is when the migration started (UTC).
	Started time.Time `json:"started"`
	// Updated is the UTC time of the last PutMigration; set by
	// PutMigration.
	Updated time.Time `json:"updated"`
	// Record is the migrate package's record (a JSON value).
	Record json.RawMessage `json:"record"`
}

// PutMigration creates or replaces the record keyed by m.ID, setting its
// Version and Updated; one transaction. It fails if the ID is empty or
// longer than 255 bytes or Record is not a JSON value.
func (s *Store) PutMigration(m Migration) error {
	if m.ID == "" || len(m.ID) > 255 {
		return fmt.Errorf("store: put migration %q: id must be 1-255 bytes", m.ID)
	}
	if !json.Valid(m.Record) {
		return fmt.Errorf("store: put migration %q: record is not valid JSON", m.ID)
	}
	m.Version = RecordVersion
	m.Updated = s.timestamp()
	m.Started = m.Started.UTC()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(bucket(tx, bucketMigrations), m.ID, m)
	})
	if err != nil {
		return fmt.Errorf("store: put migration %q: %w", m.ID, err)
	}
	return nil
}

func decodeMigration(k, v []byte) (Migration, error) {
	var m Migration
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("migration %q: decode record: %w", k, err)
	}
	return m, checkVersion("migration", string(k), m.Version)
}

// GetMigration returns the record of migration id (its Record is a copy the
// caller owns), or an error wrapping ErrNotFound.
func (s *Store) GetMigration(id string) (Migration, error) {
	var out Migration
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		v := bucket(tx, bucketMigrations).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("migration %q: %w", id, ErrNotFound)
		}
		out, err = decodeMigration([]byte(id), v)
		return err
	})
	if err != nil {
		return Migration{}, fmt.Errorf("store: get %w", err)
	}
	return out, nil
}

// ListMigrations returns every migration record, oldest first (by Started,
// then ID).
func (s *Store) ListMigrations() ([]Migration, error) {
	var out []Migration
	err := s.db.View(func(tx *bolt.Tx) error {
		return bucket(tx, bucketMigrations).ForEach(func(k, v []byte) error {
			m, err := decodeMigration(k, v)
			if err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list migrations: %w", err)
	}
	sortMigrations(out)
	return out, nil
}

func sortMigrations(ms []Migration) {
	slices.SortStableFunc(ms, func(a, b Migration) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
}

// DeleteMigration removes the record of migration id and its log; it fails
// with ErrNotFound if there is no record.
func (s *Store) DeleteMigration(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketMigrations)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("migration %q: %w", id, ErrNotFound)
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		return deleteLog(tx, id)
	})
	if err != nil {
		return fmt.Errorf("store: delete %w", err)
	}
	return nil
}

func deleteLog(tx *bolt.Tx, id string) error {
	logs := bucket(tx, bucketMigrationLogs)
	if logs.Bucket([]byte(id)) == nil {
		return nil
	}
	return logs.DeleteBucket([]byte(id))
}

// AppendMigrationLog appends entry (opaque bytes: the migrate package's
// write-ahead log entry, written before the change it announces) to the
// log of migration id and returns its sequence number (1, 2, ...). The
// record must exist (ErrNotFound otherwise). One small transaction.
func (s *Store) AppendMigrationLog(id string, entry []byte) (uint64, error) {
	var seq uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		if bucket(tx, bucketMigrations).Get([]byte(id)) == nil {
			return fmt.Errorf("migration %q: %w", id, ErrNotFound)
		}
		lb, err := bucket(tx, bucketMigrationLogs).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		if seq, err = lb.NextSequence(); err != nil {
			return err
		}
		return lb.Put(binary.BigEndian.AppendUint64(nil, seq), append([]byte{}, entry...))
	})
	if err != nil {
		return 0, fmt.Errorf("store: append to the log of %w", err)
	}
	return seq, nil
}

// MigrationLog returns the log entries of migration id in the order they
// were appended (copies the caller owns); none if the log is empty or was
// deleted.
func (s *Store) MigrationLog(id string) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		lb := bucket(tx, bucketMigrationLogs).Bucket([]byte(id))
		if lb == nil {
			return nil
		}
		return lb.ForEach(func(_, v []byte) error {
			out = append(out, append([]byte{}, v...))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: log of migration %q: %w", id, err)
	}
	return out, nil
}

// DeleteMigrationLog drops the log of migration id (once the migration
// ended, nothing needs it); no error if there is none.
func (s *Store) DeleteMigrationLog(id string) error {
	if err := s.db.Update(func(tx *bolt.Tx) error { return deleteLog(tx, id) }); err != nil {
		return fmt.Errorf("store: delete the log of migration %q: %w", id, err)
	}
	return nil
}

// PruneMigrations deletes the oldest final records (and their logs) so
// that at most keep final records remain; records not final (migrations in
// progress or to recover) are never deleted. It returns the IDs deleted,
// oldest first. One transaction.
func (s *Store) PruneMigrations(keep int) ([]string, error) {
	if keep < 0 {
		keep = 0
	}
	var gone []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketMigrations)
		var final []Migration
		err := b.ForEach(func(k, v []byte) error {
			m, err := decodeMigration(k, v)
			if err != nil {
				return err
			}
			if m.Final {
				m.Record = nil
				final = append(final, m)
			}
			return nil
		})
		if err != nil || len(final) <= keep {
			return err
		}
		sortMigrations(final)
		for _, m := range final[:len(final)-keep] {
			if err := b.Delete([]byte(m.ID)); err != nil {
				return err
			}
			if err := deleteLog(tx, m.ID); err != nil {
				return err
			}
			gone = append(gone, m.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: prune migrations: %w", err)
	}
	return gone, nil
}
