package vnet

import "slices"

// holdMoving keeps, in s (built for Update from a state with the same
// structure as old), the state the apps last saw (old) for the host port
// of every host in moving that is bound nowhere in s.
//
// A live migration (docs/migration.md) moves a host's interface from the
// source bridge to the target: for a moment (the move, 100-250 ms in the
// lab) the host is bound nowhere, and without the hold its virtual port
// would go link-down and then live again, two OFPT_PORT_STATUS messages
// (OpenFlow 1.3.5 §7.4.3) for a move the tenant must not see (a learning
// app forgets the port's addresses on link-down, a discovery app its
// links). While the host is moving its port's state is frozen, so Update
// sends nothing for it; once the migration ends (committed or rolled
// back: the host is no longer in State.Moving), the port's state is
// computed from the bindings again and a difference from what the apps
// saw — a host that really is gone — is sent as one port-status. Virtual
// port numbers never change in a migration (the view is the same).
func (s *snapshot) holdMoving(old *snapshot, moving []string) {
	if old == nil || len(moving) == 0 {
		return
	}
	for _, name := range moving {
		h, ok := s.view.HostByName(name)
		if !ok {
			continue
		}
		if _, bound := s.bound[h.VPort]; bound {
			continue
		}
		i := int(s.view.Ports[h.VPort-1].Switch) - 1
		j := slices.Index(s.view.Switches[i].Ports, h.VPort)
		if j < 0 || i >= len(old.ports) || j >= len(old.ports[i]) {
			continue
		}
		s.ports[i][j].State = old.ports[i][j].State
	}
}
