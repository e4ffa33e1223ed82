package lab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Plug attaches a new host to a VM's bridge the way a cloud orchestrator
// would: a namespace "<prefix>-h-<name>" with eth0 (h.MAC, h.IP, the lab's
// host MTU, TX checksum offload off) whose veth peer "h-<name>" becomes a port
// of the VM bridge with external_ids:iface-id=h.IfaceID and
// external_ids:attached-mac=h.MAC. The host is recorded in the lab state.
// Errors: validation (naming the host field), duplicate name or MAC, or the
// failing command; a failed Plug removes what it made.
func Plug(ctx context.Context, stateDir string, h HostSpec) (*HostInfo, error) {
	unlock, st, err := openLab(stateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s := &st.Spec
	if err := s.CheckHost(&h); err != nil {
		return nil, err
	}
	for _, o := range st.Hosts {
		if o.Name == h.Name {
			return nil, fmt.Errorf("host %q is already plugged (site %s, VM %s)", h.Name, o.Site, o.VM)
		}
		if o.MAC == h.MAC {
			return nil, fmt.Errorf("MAC %s is already used by host %q", h.MAC, o.Name)
		}
	}
	if err := plug(ctx, s, &h, newNetns); err != nil {
		return nil, err
	}
	st.Hosts = append(st.Hosts, h)
	if err := st.save(); err != nil {
		return nil, err
	}
	return hostInfo(ctx, st, h.Name)
}

// plug does the work of Plug (no locking, no state), making the host
// namespace with mkNetns; on error it removes the namespace again.
func plug(ctx context.Context, s *Spec, h *HostSpec, mkNetns func(context.Context, string) error) (err error) {
	i := s.siteIndex(h.Site)
	ns, siteNS := HostNetns(s.Prefix, h.Name), SiteNetns(s.Prefix, i)
	if err := mkNetns(ctx, ns); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = vsctl(context.WithoutCancel(ctx), s.StateDir, i, "--if-exists", "del-port", HostPort(h.Name))
			_ = delNetns(context.WithoutCancel(ctx), ns)
		}
	}()
	if err := veth(ctx, ns, HostIface, siteNS, HostPort(h.Name), h.MAC, s.HostMTU); err != nil {
		return fmt.Errorf("host %s link: %w", h.Name, err)
	}
	if h.IP != "" {
		if _, err := run(ctx, nil, "ip", "-n", ns, "addr", "add", h.IP, "dev", HostIface); err != nil {
			return err
		}
	}
	if _, err := vsctl(ctx, s.StateDir, i, addPortArgs(h)...); err != nil {
		return fmt.Errorf("host %s port: %w", h.Name, err)
	}
	return nil
}

func addPortArgs(h *HostSpec) []string {
	p := HostPort(h.Name)
	return []string{"--", "add-port", h.VM, p, "--", "set", "interface", p,
		"external_ids:iface-id=" + strconv.Quote(h.IfaceID), "external_ids:attached-mac=" + strconv.Quote(h.MAC)}
}

// Unplug removes a host: its OVS port, its namespace (and with it the veth
// pair; processes left in the namespace are ended) and its state entry.
func Unplug(ctx context.Context, stateDir, host string) error {
	unlock, st, err := openLab(stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	k := hostIndex(st, host)
	if k < 0 {
		return fmt.Errorf("no host %q in the lab at %s", host, stateDir)
	}
	h := st.Hosts[k]
	s := &st.Spec
	var errs []error
	si := s.siteIndex(h.Site)
	if _, err := vsctl(ctx, s.StateDir, si, "--if-exists", "del-port", HostPort(h.Name)); err != nil {
		errs = append(errs, err)
	}
	// Delete the veth now: deleting the host namespace alone frees it
	// asynchronously (the kernel's netns cleanup), and a Plug of the same
	// host right after would find "h-<name>" still there (File exists).
	if _, err := run(ctx, nil, "ip", "-n", SiteNetns(s.Prefix, si), "link", "del", HostPort(h.Name)); err != nil {
		if _, err2 := run(ctx, nil, "ip", "-n", SiteNetns(s.Prefix, si), "link", "show", HostPort(h.Name)); err2 == nil {
			errs = append(errs, err) // still there: a real failure
		}
	}
	if err := delNetns(ctx, HostNetns(s.Prefix, h.Name)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("unplug %s: %w", host, errors.Join(errs...))
	}
	st.Hosts = append(st.Hosts[:k], st.Hosts[k+1:]...)
	return st.save()
}

// Move moves a host's interface to VM toVM of site toSite, as a VM live
// migration would: the host namespace, its MAC, IP and iface-id stay; the
// port "h-<name>" is removed from the old VM bridge, its veth end moved into
// the new site's namespace (when the site changes) and added to the new VM
// bridge. On failure Move tries to put the port back where it was.
func Move(ctx context.Context, stateDir, host, toSite, toVM string) (*HostInfo, error) {
	unlock, st, err := openLab(stateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	k := hostIndex(st, host)
	if k < 0 {
		return nil, fmt.Errorf("no host %q in the lab at %s", host, stateDir)
	}
	s := &st.Spec
	old := st.Hosts[k]
	nh := old
	nh.Site, nh.VM = toSite, toVM
	if err := s.CheckHost(&nh); err != nil {
		return nil, err
	}
	if nh.Site == old.Site && nh.VM == old.VM {
		return hostInfo(ctx, st, host)
	}
	if err := move(ctx, s, &old, &nh); err != nil {
		if rerr := move(context.WithoutCancel(ctx), s, &nh, &old); rerr != nil {
			return nil, errors.Join(fmt.Errorf("move %s: %w", host, err), fmt.Errorf("move back: %w", rerr))
		}
		return nil, fmt.Errorf("move %s (put back at %s/%s): %w", host, old.Site, old.VM, err)
	}
	st.Hosts[k] = nh
	if err := st.save(); err != nil {
		return nil, err
	}
	return hostInfo(ctx, st, host)
}

// move takes the host port off from's bridge and plugs it into to's bridge.
func move(ctx context.Context, s *Spec, from, to *HostSpec) error {
	p := HostPort(from.Name)
	fi, ti := s.siteIndex(from.Site), s.siteIndex(to.Site)
	if fi == ti {
		_, err := vsctl(ctx, s.StateDir, fi, append([]string{"--if-exists", "del-port", p}, addPortArgs(to)...)...)
		return err
	}
	if _, err := vsctl(ctx, s.StateDir, fi, "--if-exists", "del-port", p); err != nil {
		return err
	}
	fromNS, toNS := SiteNetns(s.Prefix, fi), SiteNetns(s.Prefix, ti)
	if _, err := run(ctx, nil, "ip", "-n", fromNS, "link", "set", p, "netns", toNS); err != nil {
		// the link may already be there after a half-done earlier attempt
		if _, err2 := run(ctx, nil, "ip", "-n", toNS, "link", "show", p); err2 != nil {
			return err
		}
	}
	if _, err := nsRun(ctx, toNS, nil, "ethtool", "-K", p, "tx", "off", "tso", "off", "gso", "off", "gro", "off"); err != nil {
		return err
	}
	if _, err := run(ctx, nil, "ip", "-n", toNS, "link", "set", p, "up"); err != nil {
		return err
	}
	_, err := vsctl(ctx, s.StateDir, ti, addPortArgs(to)...)
	return err
}

// openLab locks the lab at stateDir and loads its state.
func openLab(stateDir string) (func(), *labState, error) {
	if err := checkStateDir(stateDir); err != nil {
		return nil, nil, fmt.Errorf("state dir: %w", err)
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := lockDir(stateDir)
	if err != nil {
		return nil, nil, err
	}
	st, err = loadState(stateDir) // re-read under the lock
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return unlock, st, nil
}

func hostIndex(st *labState, host string) int {
	for k, h := range st.Hosts {
		if h.Name == host {
			return k
		}
	}
	return -1
}

func hostInfo(ctx context.Context, st *labState, host string) (*HostInfo, error) {
	inv, err := inventory(ctx, st)
	if inv != nil {
		if h := inv.Host(host); h != nil {
			return h, err
		}
	}
	if err == nil {
		err = fmt.Errorf("host %q not in inventory", host)
	}
	return nil, err
}

// Status returns the inventory of the lab at stateDir, with DPIDs, ofports
// and tunnel ports read back from each site's OVSDB. If a site's OVSDB cannot
// be read, the inventory is still returned (zero DPIDs, ofport -1) together
// with an error.
func Status(stateDir string) (*Inventory, error) {
	return StatusContext(context.Background(), stateDir)
}

// StatusContext is Status with a context.
func StatusContext(ctx context.Context, stateDir string) (*Inventory, error) {
	if err := checkStateDir(stateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	return inventory(ctx, st)
}
