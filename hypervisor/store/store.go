// Package store persists Skyvisor's desired state in one bbolt file
// (go.etcd.io/bbolt): tenants with their submitted topology, the tenant IDs and
// host indices allocated to them (package hypervisor/addr), port bindings
// observed in OVSDB, opaque snapshots, and live-migration records with their
// write-ahead logs (hypervisor/migrate). Every record is JSON with a
// "version" field; every write is one bbolt transaction, so a failed call
// stores nothing.
//
// Bucket layout (schema version 1):
//
//	meta           "schema" -> "1"
//	tenants        <tenant name> -> tenant record JSON
//	tenant_ids     <tenant ID, 2 bytes big-endian> -> <tenant name>
//	host_indices   <tenant name> (nested bucket): <host name> -> <host index, 4 bytes big-endian>
//	bindings       <iface-id "<tenant>/<host>"> -> binding JSON
//	snapshot_meta  <snapshot ID> -> snapshot metadata JSON
//	snapshot_data  <snapshot ID> -> snapshot bytes (opaque)
//	migrations     <migration ID> -> migration record JSON (migrations.go)
//	migration_logs <migration ID> (nested bucket): <sequence, 8 bytes big-endian> -> log entry (opaque)
//
// A Store is safe for concurrent use (bbolt serializes writers and lets
// readers run alongside).
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the bucket layout version this package writes; Open refuses
// a file with a newer one.
const SchemaVersion = 1

// RecordVersion is the "version" field of every JSON record written; reads
// refuse newer records rather than misinterpret them.
const RecordVersion = 1

// ErrNotFound is returned (wrapped, with the kind and key) when a tenant,
// binding, snapshot or migration does not exist. Test with errors.Is.
var ErrNotFound = errors.New("not found")

// Bucket names and the schema key (see the package comment).
const (
	bucketMeta         = "meta"
	bucketTenants      = "tenants"
	bucketTenantIDs    = "tenant_ids"
	bucketHostIndices  = "host_indices"
	bucketBindings     = "bindings"
	bucketSnapshotMeta = "snapshot_meta"
	bucketSnapshotData = "snapshot_data"
	bucketMigrations   = "migrations"
	// bucketMigrationLogs holds one nested bucket per migration ID.
	bucketMigrationLogs = "migration_logs"
	keySchema           = "schema"
)

func allBuckets() []string {
	return []string{bucketMeta, bucketTenants, bucketTenantIDs, bucketHostIndices, bucketBindings, bucketSnapshotMeta, bucketSnapshotData,
		bucketMigrations, bucketMigrationLogs}
}

// bucket returns a top-level bucket; Open created them all.
func bucket(tx *bolt.Tx, name string) *bolt.Bucket { return tx.Bucket([]byte(name)) }

// Store is an open Skyvisor state file. Create it with Open; Close it when done.
type Store struct {
	db  *bolt.DB
	now func() time.Time
}

type options struct {
	now         func() time.Time
	lockTimeout time.Duration
	noSync      bool
}

// Option configures Open.
type Option func(*options)

// WithClock sets the clock used for record timestamps (default time.Now).
// Timestamps are stored in UTC.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLockTimeout sets how long Open waits for the file lock held by another
// process (default 2 s; bbolt takes an exclusive flock).
func WithLockTimeout(d time.Duration) Option { return func(o *options) { o.lockTimeout = d } }

// WithNoSync skips fsync after each commit: faster, but a machine crash can
// lose or corrupt recent writes. For tests only.
func WithNoSync() Option { return func(o *options) { o.noSync = true } }

// Open opens (creating if needed, mode 0600) the store file at path and
// creates missing buckets. It fails if the file is locked by another process
// for longer than the lock timeout, is not a bbolt file, or has a schema
// version newer than SchemaVersion.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{now: time.Now, lockTimeout: 2 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout, NoSync: o.noSync})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := bucket(tx, bucketMeta)
		if v := meta.Get([]byte(keySchema)); v != nil {
			var have int
			if _, err := fmt.Sscanf(string(v), "%d", &have); err != nil {
				return fmt.Errorf("bad schema version %q", v)
			}
			if have > SchemaVersion {
				return fmt.Errorf("schema version %d is newer than this Skyvisor's %d", have, SchemaVersion)
			}
		}
		return meta.Put([]byte(keySchema), []byte(fmt.Sprint(SchemaVersion)))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &Store{db: db, now: o.now}, nil
}

// Close releases the file and its lock. Calls after Close fail.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Path returns the file path of the store.
func (s *Store) Path() string { return s.db.Path() }

func (s *Store) timestamp() time.Time { return s.now().UTC() }

// checkVersion refuses a record written by a newer Skyvisor.
func checkVersion(kind, key string, v int) error {
	if v < 1 || v > RecordVersion {
		return fmt.Errorf("store: %s %q: record version %d not supported (want 1..%d)", kind, key, v, RecordVersion)
	}
	return nil
}

func tenantIDKey(id addr.TenantID) []byte {
	return binary.BigEndian.AppendUint16(nil, uint16(id))
}

func hostIndexValue(h addr.HostIndex) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(h))
}

// ---- tenants

// Tenant is a stored tenant: its topology as submitted (after topology.Parse
// defaults, re-encoded as JSON) and what Skyvisor allocated for it.
type Tenant struct {
	// Version is the record format version (RecordVersion).
	Version int `json:"version"`
	// Name is the tenant name (topology.Topology.Tenant), the record's key.
	Name string `json:"name"`
	// ID is the allocated tenant ID, stable for the tenant's lifetime.
	ID addr.TenantID `json:"tenant_id"`
	// Generation starts at 1 and grows by one each time a PutTenant changes
	// the stored topology; an identical resubmission keeps it.
	Generation uint64 `json:"generation"`
	// Topology is the tenant's topology JSON.
	Topology json.RawMessage `json:"topology"`
	// Hosts maps each host name to its allocated host index (from the
	// host_indices bucket; not part of the tenant record on disk).
	Hosts map[string]addr.HostIndex `json:"hosts,omitempty"`
	// Created and Updated are UTC timestamps of the first and the latest
	// change.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Parse decodes the stored topology (topology.Parse).
func (t *Tenant) Parse() (*topology.Topology, error) {
	tp, err := topology.Parse(t.Topology)
	if err != nil {
		return nil, fmt.Errorf("store: tenant %q: stored topology: %w", t.Name, err)
	}
	return tp, nil
}

// FabricMAC returns the fabric MAC of the named host, ok false if the host
// is unknown.
func (t *Tenant) FabricMAC(host string) (addr.MAC, bool) {
	h, ok := t.Hosts[host]
	if !ok {
		return addr.MAC{}, false
	}
	return addr.FabricMAC(t.ID, h), true
}

// AddressMap builds the tenant's addr.TenantMap (own MAC <-> host index) from
// the stored topology's host MACs and the allocated host indices. It fails if
// the topology does not parse or a host has no index (a record written
// outside PutTenants).
func (t *Tenant) AddressMap() (*addr.TenantMap, error) {
	tp, err := t.Parse()
	if err != nil {
		return nil, err
	}
	hosts := make(map[addr.MAC]addr.HostIndex, len(tp.Hosts))
	for _, h := range tp.Hosts {
		mac, err := h.ParsedMAC()
		if err != nil {
			return nil, fmt.Errorf("store: tenant %q: host %q: %w", t.Name, h.Name, err)
		}
		idx, ok := t.Hosts[h.Name]
		if !ok {
			return nil, fmt.Errorf("store: tenant %q: host %q has no host index", t.Name, h.Name)
		}
		hosts[mac] = idx
	}
	m, err := addr.NewTenantMap(t.ID, hosts)
	if err != nil {
		return nil, fmt.Errorf("store: tenant %q: %w", t.Name, err)
	}
	return m, nil
}

// PutTenant stores one tenant; see PutTenants.
func (s *Store) PutTenant(t *topology.Topology) (*Tenant, error) {
	out, err := s.PutTenants([]*topology.Topology{t})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// PutTenants creates or updates the given tenants in ONE transaction: either
// all are stored, with their tenant IDs and host indices, or — on any error —
// nothing changes. For a new tenant it allocates the lowest free valid tenant
// ID (addr.TenantAllocator); an existing tenant keeps its ID. Host indices are
// per tenant and keyed by host name: hosts already present keep theirs, hosts
// no longer in the topology free theirs, new hosts get the lowest free ones in
// topology order. Each topology must pass topology.Validate with an unknown
// infrastructure (the caller checks clouds/VMs beforehand); tenant names must
// be unique in the batch. Errors name the tenant; an exhausted ID space wraps
// addr.ErrExhausted and invalid topologies wrap *topology.ValidationError.
func (s *Store) PutTenants(ts []*topology.Topology) ([]*Tenant, error) {
	seen := map[string]bool{}
	docs := make([][]byte, len(ts))
	for i, t := range ts {
		if t == nil {
			return nil, fmt.Errorf("store: put tenants: topology %d is nil", i)
		}
		if err := topology.Validate(t, topology.Infra{}); err != nil {
			return nil, fmt.Errorf("store: put tenant %q: %w", t.Tenant, err)
		}
		if seen[t.Tenant] {
			return nil, fmt.Errorf("store: put tenants: tenant %q appears twice", t.Tenant)
		}
		seen[t.Tenant] = true
		doc, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("store: put tenant %q: encode topology: %w", t.Tenant, err)
		}
		docs[i] = doc
	}
	out := make([]*Tenant, len(ts))
	now := s.timestamp()
	err := s.db.Update(func(tx *bolt.Tx) error {
		tenants, ids := bucket(tx, bucketTenants), bucket(tx, bucketTenantIDs)
		var alloc addr.TenantAllocator
		if err := ids.ForEach(func(k, _ []byte) error {
			if len(k) != 2 {
				return fmt.Errorf("corrupt tenant ID key %x", k)
			}
			return alloc.Reserve(addr.TenantID(binary.BigEndian.Uint16(k)))
		}); err != nil {
			return fmt.Errorf("load tenant IDs: %w", err)
		}
		for i, t := range ts {
			rec, err := getTenantRecord(tx, t.Tenant)
			switch {
			case errors.Is(err, ErrNotFound):
				id, err := alloc.Allocate()
				if err != nil {
					return fmt.Errorf("tenant %q: allocate tenant ID: %w", t.Tenant, err)
				}
				if err := ids.Put(tenantIDKey(id), []byte(t.Tenant)); err != nil {
					return fmt.Errorf("tenant %q: %w", t.Tenant, err)
				}
				rec = &Tenant{Name: t.Tenant, ID: id, Generation: 1, Topology: docs[i], Created: now, Updated: now}
			case err != nil:
				return err
			case !bytes.Equal(rec.Topology, docs[i]):
				rec.Generation++
				rec.Topology = docs[i]
				rec.Updated = now
			}
			rec.Version = RecordVersion
			hosts, err := assignHosts(tx, t)
			if err != nil {
				return fmt.Errorf("tenant %q: %w", t.Tenant, err)
			}
			if err := putJSON(tenants, t.Tenant, rec); err != nil {
				return fmt.Errorf("tenant %q: %w", t.Tenant, err)
			}
			rec.Hosts = hosts
			out[i] = rec
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: put tenants: %w", err)
	}
	return out, nil
}

// assignHosts updates the tenant's host index bucket to exactly the hosts of
// t and returns the name -> index map.
func assignHosts(tx *bolt.Tx, t *topology.Topology) (map[string]addr.HostIndex, error) {
	b, err := bucket(tx, bucketHostIndices).CreateBucketIfNotExists([]byte(t.Tenant))
	if err != nil {
		return nil, fmt.Errorf("host index bucket: %w", err)
	}
	want := make(map[string]bool, len(t.Hosts))
	for _, h := range t.Hosts {
		want[h.Name] = true
	}
	var alloc addr.HostAllocator
	hosts := make(map[string]addr.HostIndex, len(t.Hosts))
	var stale [][]byte
	err = b.ForEach(func(k, v []byte) error {
		if len(v) != 4 {
			return fmt.Errorf("corrupt host index for %q", k)
		}
		if !want[string(k)] {
			stale = append(stale, slices.Clone(k))
			return nil // freed: not reserved in alloc
		}
		h := addr.HostIndex(binary.BigEndian.Uint32(v))
		hosts[string(k)] = h
		return alloc.Reserve(h)
	})
	if err != nil {
		return nil, fmt.Errorf("load host indices: %w", err)
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return nil, err
		}
	}
	for _, h := range t.Hosts {
		if _, ok := hosts[h.Name]; ok {
			continue
		}
		idx, err := alloc.Allocate()
		if err != nil {
			return nil, fmt.Errorf("host %q: allocate host index: %w", h.Name, err)
		}
		if err := b.Put([]byte(h.Name), hostIndexValue(idx)); err != nil {
			return nil, err
		}
		hosts[h.Name] = idx
	}
	return hosts, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return b.Put([]byte(key), data)
}

// getTenantRecord reads a tenant record (without Hosts).
func getTenantRecord(tx *bolt.Tx, name string) (*Tenant, error) {
	v := bucket(tx, bucketTenants).Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	var rec Tenant
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("tenant %q: decode record: %w", name, err)
	}
	if err := checkVersion("tenant", name, rec.Version); err != nil {
		return nil, err
	}
	rec.Hosts = nil
	return &rec, nil
}

// readTenant reads a tenant record and its host indices.
func readTenant(tx *bolt.Tx, name string) (*Tenant, error) {
	rec, err := getTenantRecord(tx, name)
	if err != nil {
		return nil, err
	}
	rec.Hosts = map[string]addr.HostIndex{}
	if b := bucket(tx, bucketHostIndices).Bucket([]byte(name)); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			if len(v) != 4 {
				return fmt.Errorf("tenant %q: corrupt host index for %q", name, k)
			}
			rec.Hosts[string(k)] = addr.HostIndex(binary.BigEndian.Uint32(v))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// GetTenant returns the named tenant with its host indices, or an error
// wrapping ErrNotFound.
func (s *Store) GetTenant(name string) (*Tenant, error) {
	var out *Tenant
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		out, err = readTenant(tx, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: get %w", err)
	}
	return out, nil
}

// TenantByID returns the tenant holding tenant ID id, or an error wrapping
// ErrNotFound.
func (s *Store) TenantByID(id addr.TenantID) (*Tenant, error) {
	var out *Tenant
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		name := bucket(tx, bucketTenantIDs).Get(tenantIDKey(id))
		if name == nil {
			return fmt.Errorf("tenant ID %v: %w", id, ErrNotFound)
		}
		out, err = readTenant(tx, string(name))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: get %w", err)
	}
	return out, nil
}

// ListTenants returns every tenant with its host indices, sorted by name.
func (s *Store) ListTenants() ([]*Tenant, error) {
	var out []*Tenant
	err := s.db.View(func(tx *bolt.Tx) error {
		return bucket(tx, bucketTenants).ForEach(func(k, _ []byte) error {
			t, err := readTenant(tx, string(k))
			if err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list tenants: %w", err)
	}
	return out, nil // bbolt iterates keys in byte order
}

// DeleteTenant removes the tenant record and frees its tenant ID and host
// indices, in one transaction. Bindings of its hosts are kept: they record
// what OVSDB shows and are removed by DeleteBinding when the port goes away.
// A freed tenant ID is handed out again (lowest free first), so the caller
// must have removed the tenant's flow entries before. Fails with ErrNotFound
// if there is no such tenant.
func (s *Store) DeleteTenant(name string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		rec, err := getTenantRecord(tx, name)
		if err != nil {
			return err
		}
		if err := bucket(tx, bucketTenantIDs).Delete(tenantIDKey(rec.ID)); err != nil {
			return err
		}
		hb := bucket(tx, bucketHostIndices)
		if hb.Bucket([]byte(name)) != nil {
			if err := hb.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		return bucket(tx, bucketTenants).Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("store: delete %w", err)
	}
	return nil
}
