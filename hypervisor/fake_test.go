package hypervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// fakeOVS is an in-memory OVSDB: bridges, tunnel ports and interfaces of
// one ovsdb-server, counting "transactions" like ovsdb.Client (none when
// nothing changes).
type fakeOVS struct {
	endpoint string
	mu       sync.Mutex
	bridges  map[string]ovsdb.BridgeSpec
	tunnels  map[string]map[string]ovsdb.TunnelPort
	ifaces   map[string]map[string]ovsdb.Interface
	watchers map[string][]chan ovsdb.InterfaceEvent
	txns     uint64
	closed   bool
}

func newFakeOVS(endpoint string) *fakeOVS {
	return &fakeOVS{endpoint: endpoint, bridges: map[string]ovsdb.BridgeSpec{}, tunnels: map[string]map[string]ovsdb.TunnelPort{},
		ifaces: map[string]map[string]ovsdb.Interface{}, watchers: map[string][]chan ovsdb.InterfaceEvent{}}
}

func (f *fakeOVS) EnsureBridge(_ context.Context, spec ovsdb.BridgeSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if have, ok := f.bridges[spec.Name]; ok && reflect.DeepEqual(have, spec) {
		return nil
	}
	f.bridges[spec.Name] = spec
	f.txns++
	return nil
}

func (f *fakeOVS) EnsureTunnelPort(_ context.Context, bridge string, p ovsdb.TunnelPort) error {
	if err := p.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.bridges[bridge]; !ok {
		return fmt.Errorf("bridge %q: %w", bridge, ovsdb.ErrNotFound)
	}
	if f.tunnels[bridge] == nil {
		f.tunnels[bridge] = map[string]ovsdb.TunnelPort{}
	}
	p.ExternalIDs = maps.Clone(p.ExternalIDs)
	f.tunnels[bridge][p.Name] = p
	f.txns++
	return nil
}

func (f *fakeOVS) DeleteTunnelPort(_ context.Context, bridge, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tunnels[bridge][name]; ok {
		delete(f.tunnels[bridge], name)
		f.txns++
	}
	return nil
}

func (f *fakeOVS) TunnelPorts(_ context.Context, bridge string) ([]ovsdb.TunnelPort, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ovsdb.TunnelPort
	for _, n := range slices.Sorted(maps.Keys(f.tunnels[bridge])) {
		p := f.tunnels[bridge][n]
		p.ExternalIDs = maps.Clone(p.ExternalIDs)
		out = append(out, p)
	}
	return out, nil
}

func (f *fakeOVS) Interfaces(_ context.Context, bridge string) ([]ovsdb.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ovsdb.Interface
	for _, n := range slices.Sorted(maps.Keys(f.ifaces[bridge])) {
		out = append(out, f.ifaces[bridge][n])
	}
	return out, nil
}

func (f *fakeOVS) WatchInterfaces(ctx context.Context, bridge string) (<-chan ovsdb.InterfaceEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan ovsdb.InterfaceEvent, 64)
	for _, n := range slices.Sorted(maps.Keys(f.ifaces[bridge])) {
		ch <- ovsdb.InterfaceEvent{Type: ovsdb.InterfaceAdded, Interface: f.ifaces[bridge][n]}
	}
	f.watchers[bridge] = append(f.watchers[bridge], ch)
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.watchers[bridge] = slices.DeleteFunc(f.watchers[bridge], func(c chan ovsdb.InterfaceEvent) bool { return c == ch })
		close(ch)
	}()
	return ch, nil
}

// plug adds (or updates) an interface and notifies watchers.
func (f *fakeOVS) plug(bridge string, i ovsdb.Interface) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ifaces[bridge] == nil {
		f.ifaces[bridge] = map[string]ovsdb.Interface{}
	}
	typ := ovsdb.InterfaceAdded
	if _, ok := f.ifaces[bridge][i.Name]; ok {
		typ = ovsdb.InterfaceUpdated
	}
	i.Bridge = bridge
	f.ifaces[bridge][i.Name] = i
	for _, w := range f.watchers[bridge] {
		w <- ovsdb.InterfaceEvent{Type: typ, Interface: i}
	}
}

// unplug removes an interface and notifies watchers.
func (f *fakeOVS) unplug(bridge, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.ifaces[bridge][name]
	if !ok {
		return
	}
	delete(f.ifaces[bridge], name)
	for _, w := range f.watchers[bridge] {
		w <- ovsdb.InterfaceEvent{Type: ovsdb.InterfaceRemoved, Interface: i}
	}
}

func (f *fakeOVS) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.closed
}

func (f *fakeOVS) Transactions() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.txns
}

func (f *fakeOVS) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

// fakeFabric hands out one fakeOVS per endpoint.
type fakeFabric struct {
	mu  sync.Mutex
	dbs map[string]*fakeOVS
}

func (ff *fakeFabric) dial(_ context.Context, endpoint string) (OVSDB, error) {
	return ff.db(endpoint), nil
}

func (ff *fakeFabric) db(endpoint string) *fakeOVS {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if ff.dbs == nil {
		ff.dbs = map[string]*fakeOVS{}
	}
	if ff.dbs[endpoint] == nil {
		ff.dbs[endpoint] = newFakeOVS(endpoint)
	}
	return ff.dbs[endpoint]
}

func (ff *fakeFabric) txns() uint64 {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	var n uint64
	for _, db := range ff.dbs {
		n += db.Transactions()
	}
	return n
}

// testInfra is the captured 3-site lab inventory (aws: vm1, vm2; gcp:
// vm1; azure: web).
func testInfra(t *testing.T) *infra.Infra {
	t.Helper()
	inf, err := infra.Load("infra/testdata/lab-inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	return inf
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTest returns a Hypervisor over testInfra, a fresh store in a temp dir
// and a fake fabric.
func newTest(t *testing.T) (*Hypervisor, *store.Store, *fakeFabric) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "skg.db"), store.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ff := &fakeFabric{}
	h, err := New(Config{Infra: testInfra(t), Store: st, Logger: quietLogger(), Dial: ff.dial})
	if err != nil {
		t.Fatal(err)
	}
	return h, st, ff
}
