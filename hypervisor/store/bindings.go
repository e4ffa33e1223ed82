package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/topology"
	bolt "go.etcd.io/bbolt"
)

// Binding records where a tenant host's interface is plugged in: the OVS
// interface whose external_ids:iface-id is IfaceID ("<tenant>/<host>",
// topology.IfaceID), as seen in OVSDB.
type Binding struct {
	// Version is the record format version (RecordVersion); set by PutBinding.
	Version int `json:"version"`
	// IfaceID is "<tenant>/<host>", the record's key.
	IfaceID string `json:"iface_id"`
	// Site is the cloud (site) name.
	Site string `json:"site"`
	// VM is the VM (in the lab: the OVS instance) holding the port.
	VM string `json:"vm"`
	// Bridge is the OVS bridge the port is on.
	Bridge string `json:"bridge"`
	// DPID is the datapath ID of that bridge.
	DPID topology.DPID `json:"dpid"`
	// PortName is the OVS port/interface name.
	PortName string `json:"port_name"`
	// OFPort is the OpenFlow port number (OVSDB Interface.ofport); 0 while unknown.
	OFPort uint32 `json:"ofport"`
	// Updated is the UTC time of the last PutBinding; set by PutBinding.
	Updated time.Time `json:"updated"`
}

// PutBinding creates or replaces the binding keyed by b.IfaceID, setting its
// Version and Updated. The tenant need not exist yet (OVSDB may report a port
// before its tenant is submitted). It fails if IfaceID is not
// "<tenant>/<host>" or Site or PortName is empty.
func (s *Store) PutBinding(b Binding) error {
	if _, _, ok := topology.SplitIfaceID(b.IfaceID); !ok {
		return fmt.Errorf("store: put binding %q: iface-id must be \"<tenant>/<host>\"", b.IfaceID)
	}
	if b.Site == "" || b.PortName == "" {
		return fmt.Errorf("store: put binding %q: site and port_name are required", b.IfaceID)
	}
	b.Version = RecordVersion
	b.Updated = s.timestamp()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return putJSON(bucket(tx, bucketBindings), b.IfaceID, b)
	})
	if err != nil {
		return fmt.Errorf("store: put binding %q: %w", b.IfaceID, err)
	}
	return nil
}

func decodeBinding(k, v []byte) (Binding, error) {
	var b Binding
	if err := json.Unmarshal(v, &b); err != nil {
		return b, fmt.Errorf("binding %q: decode record: %w", k, err)
	}
	return b, checkVersion("binding", string(k), b.Version)
}

// GetBinding returns the binding for ifaceID, or an error wrapping ErrNotFound.
func (s *Store) GetBinding(ifaceID string) (Binding, error) {
	var out Binding
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		v := bucket(tx, bucketBindings).Get([]byte(ifaceID))
		if v == nil {
			return fmt.Errorf("binding %q: %w", ifaceID, ErrNotFound)
		}
		out, err = decodeBinding([]byte(ifaceID), v)
		return err
	})
	if err != nil {
		return Binding{}, fmt.Errorf("store: get %w", err)
	}
	return out, nil
}

// DeleteBinding removes the binding for ifaceID; it fails with ErrNotFound if
// there is none.
func (s *Store) DeleteBinding(ifaceID string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucket(tx, bucketBindings)
		if b.Get([]byte(ifaceID)) == nil {
			return fmt.Errorf("binding %q: %w", ifaceID, ErrNotFound)
		}
		return b.Delete([]byte(ifaceID))
	})
	if err != nil {
		return fmt.Errorf("store: delete %w", err)
	}
	return nil
}

// Bindings returns every binding, sorted by iface-id.
func (s *Store) Bindings() ([]Binding, error) { return s.bindings("") }

// TenantBindings returns the bindings of one tenant's hosts (iface-ids
// "<tenant>/..."), sorted by iface-id.
func (s *Store) TenantBindings(tenant string) ([]Binding, error) {
	return s.bindings(tenant + "/")
}

func (s *Store) bindings(prefix string) ([]Binding, error) {
	var out []Binding
	err := s.db.View(func(tx *bolt.Tx) error {
		c := bucket(tx, bucketBindings).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			b, err := decodeBinding(k, v)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list bindings: %w", err)
	}
	return out, nil
}
