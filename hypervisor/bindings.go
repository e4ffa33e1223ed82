package hypervisor

import (
	"errors"

	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/ovsdb"
)

// watch starts watching the interfaces of VM bridge sw (once per DPID):
// every interface with external_ids:iface-id "<tenant>/<host>" and an
// OpenFlow port becomes a store binding; a removed interface (or a
// changed iface-id) removes the binding it had made. Stored bindings of
// the bridge whose port is gone are dropped when the watch starts. Each
// change asks Run to recompute and push the desired state.
func (h *Hypervisor) watch(c OVSDB, sw infra.Switch) error {
	h.mu.Lock()
	ctx := h.runCtx
	if ctx == nil || h.watching[sw.DPID] {
		h.mu.Unlock()
		return nil
	}
	h.watching[sw.DPID] = true
	h.mu.Unlock()
	fail := func(err error) error {
		h.mu.Lock()
		delete(h.watching, sw.DPID)
		h.mu.Unlock()
		return err
	}
	present, err := c.Interfaces(ctx, sw.Bridge)
	if err != nil {
		return fail(err)
	}
	if err := h.dropStale(sw, present); err != nil {
		return fail(err)
	}
	events, err := c.WatchInterfaces(ctx, sw.Bridge)
	if err != nil {
		return fail(err)
	}
	go func() {
		defer func() {
			h.mu.Lock()
			delete(h.watching, sw.DPID)
			h.mu.Unlock()
		}()
		for ev := range events {
			changed, err := h.handleInterface(sw, ev)
			if err != nil {
				h.log.Warn("hypervisor: binding", "bridge", sw.Bridge, "site", sw.Site, "iface", ev.Interface.Name, "err", err)
			}
			if changed {
				h.requestRefresh()
			}
		}
	}()
	return nil
}

// dropStale deletes the stored bindings on sw whose port is not among
// present (or carries another iface-id now).
func (h *Hypervisor) dropStale(sw infra.Switch, present []ovsdb.Interface) error {
	binds, err := h.store.Bindings()
	if err != nil {
		return err
	}
	here := map[string]string{} // port name -> iface-id
	for _, i := range present {
		here[i.Name] = i.IfaceID()
	}
	removed := false
	for _, b := range binds {
		if uint64(b.DPID) != sw.DPID {
			continue
		}
		if id, ok := here[b.PortName]; ok && id == b.IfaceID {
			continue
		}
		if err := h.store.DeleteBinding(b.IfaceID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		h.log.Info("hypervisor: stale binding removed", "iface_id", b.IfaceID, "bridge", sw.Bridge, "port", b.PortName)
		removed = true
	}
	if removed {
		h.requestRefresh()
	}
	return nil
}

// handleInterface turns one interface event of VM bridge sw into binding
// changes; it reports whether the store changed.
func (h *Hypervisor) handleInterface(sw infra.Switch, ev ovsdb.InterfaceEvent) (bool, error) {
	i := ev.Interface
	key := portKey{sw.DPID, i.Name}
	id := i.IfaceID()
	if ev.Type == ovsdb.InterfaceRemoved {
		id = ""
	}
	if _, _, ok := topology.SplitIfaceID(id); !ok {
		id = ""
	}
	h.mu.Lock()
	old := h.portIDs[key]
	if id == "" {
		delete(h.portIDs, key)
		delete(h.ofports, key)
	} else {
		h.portIDs[key] = id
		h.ofports[key] = uint32(max(i.OFPort, 0))
	}
	h.mu.Unlock()
	changed := false
	if old != "" && old != id {
		// The interface lost or changed its iface-id, or went away: drop
		// the binding if it still points here.
		b, err := h.store.GetBinding(old)
		if err == nil && uint64(b.DPID) == sw.DPID && b.PortName == i.Name {
			if err := h.store.DeleteBinding(old); err != nil && !errors.Is(err, store.ErrNotFound) {
				return changed, err
			}
			h.log.Info("hypervisor: host unbound", "iface_id", old, "site", sw.Site, "vm", sw.VM, "port", i.Name)
			changed = true
		}
	}
	if id == "" || i.OFPort <= 0 {
		return changed, nil
	}
	want := store.Binding{IfaceID: id, Site: sw.Site, VM: sw.VM, Bridge: sw.Bridge, DPID: topology.DPID(sw.DPID),
		PortName: i.Name, OFPort: uint32(i.OFPort)}
	if have, err := h.store.GetBinding(id); err == nil {
		have.Version, have.Updated = 0, want.Updated
		if have == want {
			return changed, nil
		}
	}
	if err := h.store.PutBinding(want); err != nil {
		return changed, err
	}
	h.log.Info("hypervisor: host bound", "iface_id", id, "site", sw.Site, "vm", sw.VM, "port", i.Name, "ofport", i.OFPort)
	return true, nil
}
