package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
)

// checkSnapshot checks the "snapshot ..." and "flows ..." command lines
// (pos[0] is "snapshot" or "flows").
func checkSnapshot(pos []string, opts options) error {
	if opts.file != "" {
		return usagef("%s: -f is only for apply", pos[0])
	}
	if pos[0] == "flows" {
		if opts.switchRef != "" {
			return usagef("flows: give the switch as argument, not --switch")
		}
		switch len(pos) {
		case 1:
			return usagef("flows: missing DPID or bridge name")
		case 2:
			return nil
		}
		return usagef("flows: unexpected argument %q", pos[2])
	}
	if opts.tenant != "" {
		return usagef("snapshot: --tenant is only for flows (snapshot create takes the tenant as argument)")
	}
	if len(pos) < 2 {
		return usagef("snapshot: missing subcommand (create, list, show, delete, restore)")
	}
	rest := pos[2:]
	switch pos[1] {
	case "create":
		switch {
		case opts.switchRef != "" && len(rest) > 0:
			return usagef("snapshot create: give either TENANT or --switch, not both")
		case opts.switchRef == "" && len(rest) == 0:
			return usagef("snapshot create: missing TENANT (or --switch DPID|BRIDGE)")
		case len(rest) > 1:
			return usagef("snapshot create: unexpected argument %q", rest[1])
		}
		return nil
	case "list":
		if len(rest) > 0 {
			return usagef("snapshot list: unexpected argument %q", rest[0])
		}
	case "show", "delete", "restore":
		if len(rest) == 0 {
			return usagef("snapshot %s: missing ID", pos[1])
		}
		if len(rest) > 1 {
			return usagef("snapshot %s: unexpected argument %q", pos[1], rest[1])
		}
	default:
		return usagef("unknown command %q (did you mean: snapshot create, snapshot list, snapshot show, snapshot delete, snapshot restore?)", strings.Join(pos, " "))
	}
	if opts.switchRef != "" {
		return usagef("snapshot %s: --switch is only for snapshot create", pos[1])
	}
	return nil
}

// snapshot runs a command checked by checkSnapshot.
func (c *cli) snapshot(ctx context.Context, pos []string) error {
	if pos[0] == "flows" {
		return c.flows(ctx, pos[1])
	}
	switch pos[1] {
	case "create":
		req := api.SnapshotRequest{Switch: c.opts.switchRef}
		if len(pos) > 2 {
			req.Tenant = pos[2]
		}
		return c.snapshotCreate(ctx, req)
	case "list":
		return c.snapshotList(ctx)
	case "show":
		return c.snapshotShow(ctx, pos[2])
	case "delete":
		if err := c.client.DeleteSnapshot(ctx, pos[2]); err != nil {
			return fmt.Errorf("snapshot delete %s: %w", pos[2], err)
		}
		if c.opts.output == "table" {
			fmt.Fprintf(c.stdout, "snapshot/%s deleted\n", pos[2])
		}
		return nil
	case "restore":
		return c.snapshotRestore(ctx, pos[2])
	}
	return usagef("unknown command %q", strings.Join(pos, " "))
}

// post sends body to path; in json mode it prints the answer verbatim and
// returns (false, nil), else decodes it into out and returns (true, nil).
func (c *cli) post(ctx context.Context, path string, body []byte, out any) (bool, error) {
	var raw json.RawMessage
	if err := c.client.Do(ctx, http.MethodPost, path, body, &raw); err != nil {
		return false, err
	}
	if c.opts.output == "json" {
		c.printJSON(raw)
		return false, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, fmt.Errorf("decoding %s: %w", path, err)
	}
	return true, nil
}

func (c *cli) snapshotCreate(ctx context.Context, req api.SnapshotRequest) error {
	what := "tenant " + req.Tenant
	if req.Switch != "" {
		what = "switch " + req.Switch
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var in snapshot.Info
	ok, err := c.post(ctx, "/v1/snapshots", body, &in)
	if !ok {
		if err != nil {
			return fmt.Errorf("snapshot create %s: %w", what, err)
		}
		return nil
	}
	fmt.Fprintf(c.stdout, "snapshot/%s created: %s, bridges %s, %d flow entries, %s\n",
		in.ID, what, strings.Join(in.Bridges, ","), in.Flows, bytesText(in.Size))
	return nil
}

func (c *cli) snapshotList(ctx context.Context) error {
	var l api.SnapshotList
	if ok, err := c.fetch(ctx, "/v1/snapshots", &l); !ok {
		return err
	}
	if len(l.Snapshots) == 0 {
		fmt.Fprintln(c.stdout, "No snapshots.")
		return nil
	}
	var rows [][]string
	for _, s := range l.Snapshots {
		rows = append(rows, []string{s.ID, s.Time.UTC().Format(time.RFC3339), s.Tenant, strings.Join(s.Bridges, ","),
			strconv.Itoa(s.Flows), bytesText(s.Size)})
	}
	table(c.stdout, "", []string{"ID", "TIME", "TENANT", "BRIDGES", "FLOWS", "SIZE"}, rows)
	return nil
}

func (c *cli) snapshotShow(ctx context.Context, id string) error {
	var raw json.RawMessage
	if err := c.client.Do(ctx, http.MethodGet, "/v1/snapshots/"+url.PathEscape(id), nil, &raw); err != nil {
		return fmt.Errorf("snapshot show %s: %w", id, err)
	}
	if c.opts.output == "json" {
		c.printJSON(raw)
		return nil
	}
	s, err := snapshot.Decode(raw)
	if err != nil {
		return fmt.Errorf("snapshot show %s: %w", id, err)
	}
	writeSnapshot(c.stdout, s)
	return nil
}

func (c *cli) snapshotRestore(ctx context.Context, id string) error {
	var res api.RestoreResult
	ok, err := c.post(ctx, "/v1/snapshots/"+url.PathEscape(id)+"/restore", nil, &res)
	if !ok {
		if err != nil {
			return fmt.Errorf("snapshot restore %s: %w", id, err)
		}
		return nil
	}
	fmt.Fprintf(c.stdout, "snapshot/%s restored in %.0f ms: %d counter offsets, %d tenant-app entries adopted, %d entries skipped\n",
		res.ID, res.TookMS, res.CounterOffsets, res.Adopted, len(res.Skipped))
	var rows [][]string
	for _, s := range res.Switches {
		state := "done"
		if !s.Done {
			state = "FAILED"
		}
		if s.RolledBack {
			state += ", rolled back"
		}
		rows = append(rows, []string{s.Bridge, s.DPID, strconv.Itoa(s.FlowsAdded), strconv.Itoa(s.FlowsKept), state, s.Config})
	}
	table(c.stdout, "", []string{"BRIDGE", "DPID", "ADDED", "KEPT", "STATE", "OVSDB"}, rows)
	if len(res.Skipped) > 0 {
		fmt.Fprintln(c.stdout, "Skipped:")
		var sk [][]string
		for _, s := range res.Skipped {
			sk = append(sk, []string{s.Bridge, s.Flow, s.Reason})
		}
		table(c.stdout, "  ", []string{"BRIDGE", "FLOW", "REASON"}, sk)
	}
	return nil
}

func (c *cli) flows(ctx context.Context, sw string) error {
	path := "/v1/switches/" + url.PathEscape(sw) + "/flows"
	if c.opts.tenant != "" {
		path += "?tenant=" + url.QueryEscape(c.opts.tenant)
	}
	var l api.FlowList
	if ok, err := c.fetch(ctx, path, &l); !ok {
		if err != nil {
			return fmt.Errorf("flows %s: %w", sw, err)
		}
		return nil
	}
	fmt.Fprintf(c.stdout, "Switch %s (dpid %s)", l.Switch, l.DPID)
	if l.Tenant != "" {
		fmt.Fprintf(c.stdout, ", tenant %s", l.Tenant)
	}
	fmt.Fprintf(c.stdout, ": %d flow entries (* = counters include a restored snapshot's)\n", len(l.Flows))
	fs := make([]snapshot.Flow, len(l.Flows))
	marks := make([]bool, len(l.Flows))
	for i, f := range l.Flows {
		fs[i], marks[i] = f.Flow, f.CountersRestored
	}
	writeFlows(c.stdout, "  ", fs, marks)
	return nil
}

// writeSnapshot prints a snapshot: header, then per switch its bridge
// settings, controllers, ports with queues and its flow entries.
func writeSnapshot(w io.Writer, s *snapshot.Snapshot) {
	fmt.Fprintf(w, "Snapshot:  %s\n", s.ID)
	fmt.Fprintf(w, "Time:      %s\n", s.Time.UTC().Format(time.RFC3339Nano))
	if s.Tenant != "" {
		fmt.Fprintf(w, "Tenant:    %s\n", s.Tenant)
	}
	for _, sw := range s.Switches {
		b := sw.Bridge
		fmt.Fprintf(w, "\nBridge %s (dpid %s): datapath %s, protocols %s, fail mode %s\n", b.Name, sw.DPID,
			orDash(b.DatapathType), orDash(strings.Join(b.Protocols, ",")), orDash(b.FailMode))
		for _, ct := range b.Controllers {
			fmt.Fprintf(w, "  controller %s (%s)\n", ct.Target, orDash(ct.ConnectionMode))
		}
		var rows [][]string
		for _, p := range b.Ports {
			for _, in := range p.Interfaces {
				var extra []string
				for _, k := range slices.Sorted(mapKeys(in.Options)) {
					extra = append(extra, k+"="+in.Options[k])
				}
				if id := in.ExternalIDs["iface-id"]; id != "" {
					extra = append(extra, "iface-id="+id)
				}
				if p.QoS != nil {
					extra = append(extra, fmt.Sprintf("qos=%s(%d queues)", p.QoS.Type, len(p.QoS.Queues)))
				}
				ofport := strconv.Itoa(in.OFPort)
				if in.OFPort == 65534 {
					ofport = "LOCAL"
				}
				rows = append(rows, []string{p.Name, in.Name, ofport, in.Type, strings.Join(extra, " ")})
			}
		}
		table(w, "  ", []string{"PORT", "INTERFACE", "OFPORT", "TYPE", "DETAILS"}, rows)
		fmt.Fprintf(w, "  %d flow entries:\n", len(sw.Flows))
		writeFlows(w, "  ", sw.Flows, nil)
	}
}

// writeFlows prints flow entries as a table; marks[i] adds a "*" to the
// counters of entry i.
func writeFlows(w io.Writer, indent string, fs []snapshot.Flow, marks []bool) {
	var rows [][]string
	for i, f := range fs {
		mark := ""
		if i < len(marks) && marks[i] {
			mark = "*"
		}
		text := f.Text
		if _, after, ok := strings.Cut(text, " priority="); ok {
			// The columns already say cookie, table and priority.
			if _, rest, ok := strings.Cut(after, " "); ok {
				text = rest
			}
		}
		rows = append(rows, []string{strconv.Itoa(int(f.Table)), strconv.Itoa(int(f.Priority)), fmt.Sprintf("0x%x", f.Cookie),
			timeout(f.IdleTimeout), timeout(f.HardTimeout), strconv.FormatUint(f.PacketCount, 10) + mark,
			strconv.FormatUint(f.ByteCount, 10) + mark, strconv.FormatUint(uint64(f.DurationSec), 10) + "s", text})
	}
	table(w, indent, []string{"TABLE", "PRIO", "COOKIE", "IDLE", "HARD", "PACKETS", "BYTES", "AGE", "ENTRY"}, rows)
}

func timeout(s uint16) string {
	if s == 0 {
		return "none"
	}
	return strconv.Itoa(int(s)) + "s"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bytesText(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return strconv.Itoa(n) + " B"
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
