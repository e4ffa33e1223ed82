package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxSnapshotSize bounds one snapshot blob (64 MiB); bbolt keeps a value in
// one contiguous allocation, so very large blobs belong in files.
const MaxSnapshotSize = 64 << 20

// SnapshotInfo describes a stored snapshot without its data.
type SnapshotInfo struct {
	// Version is the record format version (RecordVersion).
	Version int `json:"version"`
	// ID is the caller-chosen key (non-empty, at most 255 bytes).
	ID string `json:"id"`
	// Time is the UTC time the snapshot was stored.
	Time time.Time `json:"time"`
	// Size is len(Data) in bytes.
	Size int `json:"size"`
}

// Snapshot is a stored snapshot: an opaque blob (e.g. the JSON of a switch's
// flow tables, written by the migration code) and its metadata.
type Snapshot struct {
	SnapshotInfo
	Data []byte
}

// PutSnapshot stores data under id (replacing any snapshot with that id) and
// returns its metadata. Metadata and data are written in one transaction.
func (s *Store) PutSnapshot(id string, data []byte) (SnapshotInfo, error) {
	if id == "" || len(id) > 255 {
		return SnapshotInfo{}, fmt.Errorf("store: put snapshot %q: id must be 1-255 bytes", id)
	}
	if len(data) > MaxSnapshotSize {
		return SnapshotInfo{}, fmt.Errorf("store: put snapshot %q: %d bytes exceeds the %d-byte limit", id, len(data), MaxSnapshotSize)
	}
	info := SnapshotInfo{Version: RecordVersion, ID: id, Time: s.timestamp(), Size: len(data)}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putJSON(bucket(tx, bucketSnapshotMeta), id, info); err != nil {
			return err
		}
		// bbolt requires a non-nil value; an empty blob is stored as empty.
		return bucket(tx, bucketSnapshotData).Put([]byte(id), append([]byte{}, data...))
	})
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("store: put snapshot %q: %w", id, err)
	}
	return info, nil
}

func decodeSnapshotInfo(k, v []byte) (SnapshotInfo, error) {
	var info SnapshotInfo
	if err := json.Unmarshal(v, &info); err != nil {
		return info, fmt.Errorf("snapshot %q: decode record: %w", k, err)
	}
	return info, checkVersion("snapshot", string(k), info.Version)
}

// GetSnapshot returns the snapshot stored under id (its Data is a copy the
// caller owns), or an error wrapping ErrNotFound.
func (s *Store) GetSnapshot(id string) (Snapshot, error) {
	var out Snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		v := bucket(tx, bucketSnapshotMeta).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("snapshot %q: %w", id, ErrNotFound)
		}
		info, err := decodeSnapshotInfo([]byte(id), v)
		if err != nil {
			return err
		}
		data := bucket(tx, bucketSnapshotData).Get([]byte(id))
		if data == nil {
			return fmt.Errorf("snapshot %q: data missing", id)
		}
		out = Snapshot{SnapshotInfo: info, Data: append([]byte{}, data...)}
		return nil
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: get %w", err)
	}
	return out, nil
}

// ListSnapshots returns the metadata of every snapshot, sorted by ID.
func (s *Store) ListSnapshots() ([]SnapshotInfo, error) {
	var out []SnapshotInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return bucket(tx, bucketSnapshotMeta).ForEach(func(k, v []byte) error {
			info, err := decodeSnapshotInfo(k, v)
			if err != nil {
				return err
			}
			out = append(out, info)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list snapshots: %w", err)
	}
	return out, nil
}

// DeleteSnapshot removes the snapshot stored under id; it fails with
// ErrNotFound if there is none.
func (s *Store) DeleteSnapshot(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := bucket(tx, bucketSnapshotMeta)
		if meta.Get([]byte(id)) == nil {
			return fmt.Errorf("snapshot %q: %w", id, ErrNotFound)
		}
		if err := meta.Delete([]byte(id)); err != nil {
			return err
		}
		return bucket(tx, bucketSnapshotData).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("store: delete %w", err)
	}
	return nil
}
