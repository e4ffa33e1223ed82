package addr

import (
	"errors"
	"fmt"
)

// ErrExhausted is returned (wrapped) when an allocator has no free value left.
var ErrExhausted = errors.New("address space exhausted")

// TenantAllocator hands out tenant IDs, lowest free valid ID first
// (FirstTenantID, 0x0201, …, 0x02ff, 0x0600, …). It is an in-memory bitmap of
// 65,536 bits (8 KiB); the store rebuilds it inside each transaction from its
// persisted allocations, so its state is never the source of truth. The zero
// value is an empty allocator. Not safe for concurrent use.
type TenantAllocator struct {
	used [1 << 16 / 64]uint64
	n    int
}

// InUse reports whether id is allocated.
func (a *TenantAllocator) InUse(id TenantID) bool {
	return a.used[id/64]&(1<<(id%64)) != 0
}

// Len returns how many IDs are allocated.
func (a *TenantAllocator) Len() int { return a.n }

// Reserve marks id as allocated. It fails if id is not valid
// (IsValidTenantID) or is already allocated.
func (a *TenantAllocator) Reserve(id TenantID) error {
	if !IsValidTenantID(id) {
		return fmt.Errorf("tenant ID %v is not valid (need (id>>8)&3 == 2)", id)
	}
	if a.InUse(id) {
		return fmt.Errorf("tenant ID %v is already allocated", id)
	}
	a.used[id/64] |= 1 << (id % 64)
	a.n++
	return nil
}

// Allocate reserves and returns the lowest free valid tenant ID, or an error
// wrapping ErrExhausted when all NumTenantIDs are in use.
func (a *TenantAllocator) Allocate() (TenantID, error) {
	// Valid IDs come in runs of 256 (one high octet); 4 words of the bitmap each.
	for hi := uint32(FirstTenantID >> 8); hi <= uint32(LastTenantID>>8); hi += 4 {
		for w := hi * 4; w < hi*4+4; w++ {
			if free := ^a.used[w]; free != 0 {
				bit := uint32(0)
				for free&1 == 0 {
					free >>= 1
					bit++
				}
				id := TenantID(w*64 + bit)
				a.used[w] |= 1 << bit
				a.n++
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("all %d tenant IDs are allocated: %w", NumTenantIDs, ErrExhausted)
}

// Release frees id; releasing a free ID is a no-op.
func (a *TenantAllocator) Release(id TenantID) {
	if a.InUse(id) {
		a.used[id/64] &^= 1 << (id % 64)
		a.n--
	}
}

// HostAllocator hands out the host indices of one tenant, lowest free index
// ≥ 1 first. The zero value is an empty allocator. Not safe for concurrent use.
type HostAllocator struct {
	used map[HostIndex]struct{}
	low  HostIndex // every index in [1, low) is in use
}

// InUse reports whether h is allocated.
func (a *HostAllocator) InUse(h HostIndex) bool {
	_, ok := a.used[h]
	return ok
}

// Len returns how many indices are allocated.
func (a *HostAllocator) Len() int { return len(a.used) }

// Reserve marks h as allocated; it fails for NoHost or an index in use.
func (a *HostAllocator) Reserve(h HostIndex) error {
	if h == NoHost || h > MaxHostIndex {
		return fmt.Errorf("host index %d is reserved or out of range (1..%d)", h, MaxHostIndex)
	}
	if a.InUse(h) {
		return fmt.Errorf("host index %d is already allocated", h)
	}
	if a.used == nil {
		a.used = make(map[HostIndex]struct{})
	}
	a.used[h] = struct{}{}
	return nil
}

// Allocate reserves and returns the lowest free index in 1..MaxHostIndex, or
// an error wrapping ErrExhausted when all 2^31 − 1 indices are in use.
func (a *HostAllocator) Allocate() (HostIndex, error) {
	if a.low == NoHost {
		a.low = 1
	}
	for h := a.low; ; h++ {
		if !a.InUse(h) {
			if err := a.Reserve(h); err != nil {
				return 0, err
			}
			a.low = h + 1
			if a.low > MaxHostIndex {
				a.low = MaxHostIndex
			}
			return h, nil
		}
		if h == MaxHostIndex {
			return 0, fmt.Errorf("all %d host indices are allocated: %w", uint64(MaxHostIndex), ErrExhausted)
		}
	}
}

// Release frees h; releasing a free index is a no-op.
func (a *HostAllocator) Release(h HostIndex) {
	if _, ok := a.used[h]; ok {
		delete(a.used, h)
		if h < a.low {
			a.low = h
		}
	}
}
