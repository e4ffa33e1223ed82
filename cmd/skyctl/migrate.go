package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// migratePoll is how often skyctl migrate polls the migration's status.
const migratePoll = 50 * time.Millisecond

// checkMigrate validates `migrate SWITCH --to CLOUD [--vm VM] [--lab DIR]
// [--fail-after STEP]`.
func checkMigrate(pos []string, opts options) error {
	switch {
	case len(pos) < 2:
		return usagef("migrate: missing SWITCH (a DPID such as 0x101, or site/vm)")
	case len(pos) > 2:
		return usagef("migrate: unexpected argument %q", pos[2])
	case opts.to == "":
		return usagef("migrate %s: --to CLOUD is required", pos[1])
	case opts.file != "":
		return usagef("migrate: -f is only for apply")
	}
	return nil
}

// migrate starts a live migration, then follows it, printing every step
// as it starts and ends with its time, until it is done or rolled back.
// With --lab DIR skyctl also plays the orchestrator of the lab at DIR:
// whenever the migration waits for a host (the "awaiting" host), it moves
// that host's interface to the bridge named by "awaiting_to" (the target,
// or the source while a failed migration rolls back) with
// testbed/lab.Move, as a cloud's VM live migration would; without it,
// someone else (skylab move, the cloud) must move each host.
func (c *cli) migrate(ctx context.Context, pos []string) error {
	req := api.MigrationRequest{Switch: pos[1], To: c.opts.to, VM: c.opts.vm, FailAfter: c.opts.failAfter}
	m, err := c.client.StartMigration(ctx, req)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", pos[1], err)
	}
	if c.opts.output != "json" {
		fmt.Fprintf(c.stdout, "migration %s: %s/%s (%s) -> %s/%s (%s), %d hosts, gateway path %s\n", m.ID,
			m.Source.Site, m.Source.VM, m.Source.DPID, m.Target.Site, m.Target.VM, m.Target.DPID, len(m.Hosts), strings.Join(m.Path, "~"))
	}
	printed := 0
	moving := ""
	for {
		for ; c.opts.output != "json" && printed < len(m.Events); printed++ {
			e := m.Events[printed]
			line := fmt.Sprintf("  %-10s %-15s", e.Step, e.Status)
			if e.TookMS > 0 {
				line += fmt.Sprintf(" %9.1f ms", e.TookMS)
			} else {
				line += strings.Repeat(" ", 13)
			}
			if e.Detail != "" {
				line += "  " + e.Detail
			}
			fmt.Fprintln(c.stdout, strings.TrimRight(line, " "))
		}
		if m.Done() {
			break
		}
		if c.opts.lab != "" && m.Awaiting != nil && m.AwaitingTo != nil && m.Awaiting.IfaceID+" "+m.AwaitingTo.DPID != moving {
			// the move step (to the target) or a rollback (back to the source)
			moving = m.Awaiting.IfaceID + " " + m.AwaitingTo.DPID
			host, to := strings.TrimPrefix(m.Awaiting.Port, "h-"), m.AwaitingTo
			if _, err := lab.Move(ctx, c.opts.lab, host, to.Site, to.VM); err != nil {
				fmt.Fprintf(c.stderr, "skyctl: lab move %s to %s/%s: %v (the migration will time out and roll back)\n",
					host, to.Site, to.VM, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("migration %s still %s: %w (see skyctl -o json migrate status, GET /v1/migrations/%s)", m.ID, m.State, ctx.Err(), m.ID)
		case <-time.After(migratePoll):
		}
		if m, err = c.client.Migration(ctx, m.ID); err != nil {
			return fmt.Errorf("migration status: %w", err)
		}
	}
	if c.opts.output == "json" {
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		c.printJSON(b)
	} else {
		var rows [][]string
		var total float64
		for _, s := range m.Steps {
			rows = append(rows, []string{s.Step, s.Status, fmt.Sprintf("%.1f", s.TookMS)})
			total += s.TookMS
		}
		fmt.Fprintln(c.stdout)
		table(c.stdout, "", []string{"STEP", "STATUS", "MS"}, rows)
		fmt.Fprintf(c.stdout, "migration %s: %s (%.1f ms in steps; cloned %d entries, froze %d, moved %s)\n",
			m.ID, m.State, total, m.Cloned, m.Frozen, strings.Join(m.Moved, " "))
	}
	if m.State != "done" {
		return fmt.Errorf("migration %s %s: %s", m.ID, m.State, m.Error)
	}
	return nil
}
