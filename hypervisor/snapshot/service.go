package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/store"
)

// Ref names a switch: its bridge name and, when known, its datapath ID.
type Ref struct {
	Bridge string
	DPID   uint64
}

// Info is a stored snapshot's summary (what "skyctl snapshot list" shows).
type Info struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Tenant   string    `json:"tenant,omitempty"`
	Bridges  []string  `json:"bridges"`
	Flows    int       `json:"flows"`
	Size     int       `json:"size"` // bytes of the JSON document
	StoredAt time.Time `json:"stored_at"`
}

// Service takes, stores, lists, deletes and restores snapshots: the
// operations behind REST /v1/snapshots and "skyctl snapshot". Snapshots
// live in the store's snapshot buckets as the JSON document of Encode,
// under their ID. A Service is safe for concurrent use; it remembers the
// counter offsets of the restores it did (in memory) for Stats.
type Service struct {
	Store *store.Store
	// Targets resolves the bridges to capture or restore: for a tenant
	// ("" = not a tenant) and switches (empty = all the tenant's bridges;
	// DPID 0 when only the name is known) it returns one Target per
	// bridge, with Target.DPID set when bridge names may repeat.
	Targets func(ctx context.Context, tenant string, switches []Ref) ([]Target, error)
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu      sync.Mutex
	offsets map[uint64]*Offsets // by DPID
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Create captures the bridges Targets returns for tenant/bridges, stores
// the snapshot and returns its summary.
func (s *Service) Create(ctx context.Context, tenant string, bridges []string) (Info, error) {
	refs := make([]Ref, 0, len(bridges))
	for _, b := range bridges {
		refs = append(refs, Ref{Bridge: b})
	}
	tg, err := s.Targets(ctx, tenant, refs)
	if err != nil {
		return Info{}, fmt.Errorf("snapshot: targets: %w", err)
	}
	if len(tg) == 0 {
		return Info{}, errors.New("snapshot: no bridge to capture")
	}
	snap, err := Take(ctx, tenant, tg, s.now())
	if err != nil {
		return Info{}, err
	}
	b, err := Encode(snap)
	if err != nil {
		return Info{}, err
	}
	si, err := s.Store.PutSnapshot(snap.ID, b)
	if err != nil {
		return Info{}, fmt.Errorf("snapshot %s: %w", snap.ID, err)
	}
	return info(snap, si), nil
}

func info(snap *Snapshot, si store.SnapshotInfo) Info {
	in := Info{ID: snap.ID, Time: snap.Time, Tenant: snap.Tenant, Size: si.Size, StoredAt: si.Time, Bridges: []string{}}
	for _, sw := range snap.Switches {
		in.Bridges = append(in.Bridges, sw.Bridge.Name)
		in.Flows += len(sw.Flows)
	}
	return in
}

// Get returns a stored snapshot; the error wraps store.ErrNotFound when
// there is none.
func (s *Service) Get(id string) (*Snapshot, error) {
	st, err := s.Store.GetSnapshot(id)
	if err != nil {
		return nil, err
	}
	return Decode(st.Data)
}

// List returns the summaries of every stored snapshot, oldest first (IDs
// sort by time). Blobs that are not snapshot documents are skipped.
func (s *Service) List() ([]Info, error) {
	infos, err := s.Store.ListSnapshots()
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(infos))
	for _, si := range infos {
		if !ValidID(si.ID) {
			continue
		}
		st, err := s.Store.GetSnapshot(si.ID)
		if err != nil {
			return nil, err
		}
		snap, err := Decode(st.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, info(snap, si))
	}
	return out, nil
}

// Delete removes a stored snapshot; the error wraps store.ErrNotFound.
func (s *Service) Delete(id string) error { return s.Store.DeleteSnapshot(id) }

// Restore restores the stored snapshot id onto the bridges Targets returns
// for the snapshot's tenant and bridge names (see the package function
// Restore), and remembers the counter offsets for Stats.
func (s *Service) Restore(ctx context.Context, id string, opt RestoreOptions) (*Report, error) {
	snap, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for _, sw := range snap.Switches {
		d, _ := parseDPID(sw.DPID)
		refs = append(refs, Ref{Bridge: sw.Bridge.Name, DPID: d})
	}
	tg, err := s.Targets(ctx, snap.Tenant, refs)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: targets: %w", id, err)
	}
	rep, err := Restore(ctx, snap, tg, opt)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offsets == nil {
		s.offsets = map[uint64]*Offsets{}
	}
	for i, sr := range rep.Switches {
		if !sr.Done {
			continue
		}
		var o Offsets
		o.Add(&snap.Switches[i])
		if d, e := parseDPID(sr.DPID); e == nil {
			s.offsets[d] = &o
		}
	}
	return rep, err
}

func parseDPID(s string) (uint64, error) {
	var d uint64
	_, err := fmt.Sscanf(s, "%x", &d)
	return d, err
}

// Offsets returns the counter offsets of the last restore onto dpid, or
// an empty set.
func (s *Service) Offsets(dpid uint64) *Offsets {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.offsets[dpid]; o != nil {
		return o
	}
	return &Offsets{}
}

// WaitSwitch returns a Target.Connect for controller c: it polls
// c.Switch(dpid) every 50 ms until the bridge is connected or ctx ends.
func WaitSwitch(c *controller.Controller) func(ctx context.Context, dpid uint64) (Switch, error) {
	return func(ctx context.Context, dpid uint64) (Switch, error) {
		for {
			if sw, ok := c.Switch(controller.DPID(dpid)); ok {
				return sw, nil
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("switch %016x not connected to the controller: %w", dpid, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}
