package hypervisor

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/hypervisor/store"
)

// migrationRecords is the store as migrate.Records: each migration record
// is a store.Migration (its JSON in Record), each write-ahead log entry a
// JSON entry of the migration's log (store buckets migrations and
// migration_logs).
type migrationRecords struct{ st *store.Store }

var _ migrate.Records = migrationRecords{}

// Put implements migrate.Records.
func (r migrationRecords) Put(m migrate.Migration) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode migration %s: %w", m.ID, err)
	}
	return r.st.PutMigration(store.Migration{ID: m.ID, State: string(m.State), Final: m.State.Final(), Started: m.Started, Record: b})
}

func decodeMigration(rec store.Migration) (migrate.Migration, error) {
	var m migrate.Migration
	if err := json.Unmarshal(rec.Record, &m); err != nil {
		return m, fmt.Errorf("migration %s: decode the stored record: %w", rec.ID, err)
	}
	return m, nil
}

// Get implements migrate.Records.
func (r migrationRecords) Get(id string) (migrate.Migration, error) {
	rec, err := r.st.GetMigration(id)
	if errors.Is(err, store.ErrNotFound) {
		return migrate.Migration{}, fmt.Errorf("%w: %w", err, migrate.ErrNotFound)
	}
	if err != nil {
		return migrate.Migration{}, err
	}
	return decodeMigration(rec)
}

// List implements migrate.Records.
func (r migrationRecords) List() ([]migrate.Migration, error) {
	recs, err := r.st.ListMigrations()
	if err != nil {
		return nil, err
	}
	out := make([]migrate.Migration, 0, len(recs))
	for _, rec := range recs {
		m, err := decodeMigration(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Append implements migrate.Records.
func (r migrationRecords) Append(id string, e migrate.LogEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode a log entry of migration %s: %w", id, err)
	}
	_, err = r.st.AppendMigrationLog(id, b)
	return err
}

// Log implements migrate.Records.
func (r migrationRecords) Log(id string) ([]migrate.LogEntry, error) {
	raw, err := r.st.MigrationLog(id)
	if err != nil {
		return nil, err
	}
	out := make([]migrate.LogEntry, 0, len(raw))
	for i, b := range raw {
		var e migrate.LogEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("migration %s: log entry %d: %w", id, i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// DropLog implements migrate.Records.
func (r migrationRecords) DropLog(id string) error { return r.st.DeleteMigrationLog(id) }

// Prune implements migrate.Records.
func (r migrationRecords) Prune(keep int) error {
	_, err := r.st.PruneMigrations(keep)
	return err
}
