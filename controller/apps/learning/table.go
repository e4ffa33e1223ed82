package learning

import (
	"sync"

	"github.com/netrack/openflow/ofp"
)

// MAC is a 48-bit Ethernet address packed into the low 48 bits of a uint64
// (first octet on the wire = most significant byte), so that it can be a
// map key without allocation.
type MAC uint64

// macFromBytes packs the 6 bytes at b[0:6] into a MAC. b must hold at least
// 6 bytes.
func macFromBytes(b []byte) MAC {
	_ = b[5]
	return MAC(uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 |
		uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5]))
}

// putMAC writes m as 6 bytes into b[0:6].
func putMAC(b []byte, m MAC) {
	_ = b[5]
	b[0], b[1], b[2] = byte(m>>40), byte(m>>32), byte(m>>24)
	b[3], b[4], b[5] = byte(m>>16), byte(m>>8), byte(m)
}

// IsGroup reports whether m is a multicast or broadcast address (the I/G
// bit, least significant bit of the first octet, IEEE 802-2014 8.2).
func (m MAC) IsGroup() bool { return m&(1<<40) != 0 }

// String formats m as aa:bb:cc:dd:ee:ff.
func (m MAC) String() string {
	const hex = "0123456789abcdef"
	var b [17]byte
	for i := 0; i < 6; i++ {
		o := byte(m >> (40 - 8*i))
		b[3*i], b[3*i+1] = hex[o>>4], hex[o&0xf]
		if i < 5 {
			b[3*i+2] = ':'
		}
	}
	return string(b[:])
}

// Table is one switch's MAC learning table: source MAC address -> ingress
// port number. It holds at most a fixed number of entries; when full, the
// oldest learned address is evicted (FIFO order of first learning; moving an
// address to another port does not renew it). The zero value is not usable;
// use NewTable. Safe for concurrent use.
type Table struct {
	mu    sync.Mutex
	ports map[MAC]ofp.PortNo
	ring  []MAC // insertion order, ring buffer of len == capacity
	head  int   // index of the oldest entry in ring
	n     int   // number of entries in ring (== len(ports))
}

// NewTable returns an empty table holding at most size addresses
// (size < 1 is treated as 1).
func NewTable(size int) *Table {
	if size < 1 {
		size = 1
	}
	return &Table{ports: make(map[MAC]ofp.PortNo, min(size, 1<<16)), ring: make([]MAC, size)}
}

// Learn records that src was seen on port. It reports whether the table
// changed (new address or address moved to another port).
func (t *Table) Learn(src MAC, port ofp.PortNo) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.learnLocked(src, port)
}

// learnLocked is Learn with t.mu held.
func (t *Table) learnLocked(src MAC, port ofp.PortNo) bool {
	if old, ok := t.ports[src]; ok {
		if old == port {
			return false
		}
		t.ports[src] = port
		return true
	}
	if t.n == len(t.ring) {
		delete(t.ports, t.ring[t.head])
		t.ring[t.head] = src
		t.head = (t.head + 1) % len(t.ring)
	} else {
		t.ring[(t.head+t.n)%len(t.ring)] = src
		t.n++
	}
	t.ports[src] = port
	return true
}

// LearnLookup learns src on port and looks dst up under one lock
// acquisition (the packet-in fast path).
func (t *Table) LearnLookup(src MAC, port ofp.PortNo, dst MAC) (ofp.PortNo, bool) {
	t.mu.Lock()
	t.learnLocked(src, port)
	out, ok := t.ports[dst]
	t.mu.Unlock()
	return out, ok
}

// Lookup returns the port dst was learned on.
func (t *Table) Lookup(dst MAC) (ofp.PortNo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.ports[dst]
	return p, ok
}

// Len returns the number of learned addresses.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ports)
}

// ForgetPort removes every address learned on port (used when the port goes
// down or is deleted) and returns how many were removed. Evicted slots stay
// in the FIFO ring as tombstones and are skipped when they reach its head.
func (t *Table) ForgetPort(port ofp.PortNo) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	removed := 0
	for m, p := range t.ports {
		if p == port {
			delete(t.ports, m)
			removed++
		}
	}
	if removed > 0 {
		t.compact()
	}
	return removed
}

// compact rebuilds the ring so it holds exactly the keys of t.ports in their
// previous order. Called with t.mu held.
func (t *Table) compact() {
	kept := make([]MAC, 0, len(t.ports))
	for i := 0; i < t.n; i++ {
		m := t.ring[(t.head+i)%len(t.ring)]
		if _, ok := t.ports[m]; ok {
			kept = append(kept, m)
		}
	}
	clear(t.ring)
	copy(t.ring, kept)
	t.head, t.n = 0, len(kept)
}
