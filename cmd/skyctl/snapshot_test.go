package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
	"github.com/skyvisor/skyvisor/hypervisor/snapshot"
)

// snapService adds an in-memory api.SnapshotService to apitest.Fake.
type snapService struct {
	*apitest.Fake
	snaps []*snapshot.Snapshot
	last  api.SnapshotRequest
}

func (f *snapService) CreateSnapshot(_ context.Context, req api.SnapshotRequest) (snapshot.Info, error) {
	f.last = req
	if req.Tenant == "ghost" {
		return snapshot.Info{}, fmt.Errorf("tenant %q: %w", req.Tenant, api.ErrNotFound)
	}
	now := time.Date(2026, 11, 22, 8, 30, len(f.snaps), 0, time.UTC)
	s := &snapshot.Snapshot{Version: 1, ID: snapshot.NewID(now), Time: now, Tenant: req.Tenant,
		Switches: []snapshot.SwitchState{{DPID: "0000000000000101", Bridge: snapshot.BridgeConfig{Name: "sks-vm1",
			DatapathID: "0000000000000101", DatapathType: "netdev", Protocols: []string{"OpenFlow13"}, FailMode: "secure",
			Controllers: []snapshot.ControllerConfig{{Target: "unix:/x.sock", ConnectionMode: "out-of-band"}},
			Ports: []snapshot.PortConfig{{Name: "h-a", Interfaces: []snapshot.InterfaceConfig{{Name: "h-a", OFPort: 3,
				ExternalIDs: map[string]string{"iface-id": "acme/h1"}}}}}},
			Flows: []snapshot.Flow{{Table: 10, Priority: 100, Cookie: 0x8001000000000001, IdleTimeout: 60, HardTimeout: 300,
				PacketCount: 12, ByteCount: 1176, DurationSec: 42, Match: []byte{0, 1, 0, 4, 0, 0, 0, 0},
				Text: "cookie=0x8001000000000001 table=10 priority=100 any -> drop"}}}}}
	f.snaps = append(f.snaps, s)
	return snapshot.Info{ID: s.ID, Time: now, Tenant: req.Tenant, Bridges: []string{"sks-vm1"}, Flows: 1, Size: 2048, StoredAt: now}, nil
}

func (f *snapService) Snapshots(context.Context) ([]snapshot.Info, error) {
	var out []snapshot.Info
	for _, s := range f.snaps {
		out = append(out, snapshot.Info{ID: s.ID, Time: s.Time, Tenant: s.Tenant, Bridges: []string{"sks-vm1"}, Flows: 1, Size: 2048})
	}
	return out, nil
}

func (f *snapService) Snapshot(_ context.Context, id string) (*snapshot.Snapshot, error) {
	for _, s := range f.snaps {
		if s.ID == id {
			return s, nil
		}
	}
	return nil, fmt.Errorf("snapshot %q: %w", id, api.ErrNotFound)
}

func (f *snapService) DeleteSnapshot(ctx context.Context, id string) error {
	for i, s := range f.snaps {
		if s.ID == id {
			f.snaps = append(f.snaps[:i], f.snaps[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("snapshot %q: %w", id, api.ErrNotFound)
}

func (f *snapService) RestoreSnapshot(ctx context.Context, id string) (api.RestoreResult, error) {
	if _, err := f.Snapshot(ctx, id); err != nil {
		return api.RestoreResult{}, err
	}
	return api.RestoreResult{ID: id, Switches: []snapshot.SwitchReport{{Bridge: "sks-vm1", DPID: "0000000000000101",
		Config: "create bridge sks-vm1", FlowsAdded: 1, Done: true}},
		Skipped: []api.SkippedFlow{{Bridge: "sks-vm1", Flow: "table 0 priority 5", Reason: "stale: a hypervisor entry it no longer compiles"}},
		Adopted: 1, CounterOffsets: 1, TookMS: 812}, nil
}

func (f *snapService) Flows(_ context.Context, sw, tenant string) (api.FlowList, error) {
	if sw != "sks-vm1" {
		return api.FlowList{}, fmt.Errorf("switch %q: %w", sw, api.ErrNotFound)
	}
	return api.FlowList{Switch: sw, DPID: "0000000000000101", Tenant: tenant, Flows: []api.FlowStat{{
		Flow: snapshot.Flow{Table: 10, Priority: 100, Cookie: 1, PacketCount: 15, Text: "cookie=0x1 table=10 priority=100 any -> drop"}, CountersRestored: true}}}, nil
}

func snapHarness(t *testing.T) (*snapService, func(args ...string) result) {
	t.Helper()
	t.Setenv("SKYCTL_SERVER", "")
	t.Setenv("SKYCTL_TOKEN", "")
	t.Setenv("SKYCTL_TOKEN_FILE", "")
	f := &snapService{Fake: apitest.New()}
	srv := httptest.NewServer(api.NewHandler(f, api.Options{Token: token}))
	t.Cleanup(srv.Close)
	return f, func(args ...string) result {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"--server", srv.URL, "--token", token}, args...), strings.NewReader(""), &out, &errb)
		return result{code, out.String(), errb.String()}
	}
}

func TestSnapshotCommands(t *testing.T) {
	f, sky := snapHarness(t)
	r := sky("snapshot", "create", "acme")
	if r.code != 0 || !strings.Contains(r.stdout, "created: tenant acme, bridges sks-vm1, 1 flow entries, 2.0 KiB") || f.last.Tenant != "acme" {
		t.Fatalf("create tenant: %+v", r)
	}
	id := f.snaps[0].ID
	if r := sky("snapshot", "create", "--switch", "0000000000000101"); r.code != 0 || f.last != (api.SnapshotRequest{Switch: "0000000000000101"}) {
		t.Fatalf("create --switch: %+v (request %+v)", r, f.last)
	}
	if r := sky("snapshot", "create", "ghost"); r.code != 1 || !strings.Contains(r.stderr, `tenant "ghost"`) {
		t.Errorf("create unknown tenant: %+v", r)
	}
	r = sky("snapshot", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "ID") || !strings.Contains(r.stdout, id) || strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("list: %+v", r)
	}
	r = sky("-o", "json", "snapshot", "list")
	var l api.SnapshotList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil || len(l.Snapshots) != 2 {
		t.Errorf("list -o json: %+v", r)
	}
	r = sky("snapshot", "show", id)
	for _, want := range []string{"Tenant:    acme", "Bridge sks-vm1 (dpid 0000000000000101): datapath netdev, protocols OpenFlow13, fail mode secure",
		"controller unix:/x.sock (out-of-band)", "iface-id=acme/h1", "60s", "300s", "1176", "any -> drop"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show: no %q in\n%s", want, r.stdout)
		}
	}
	r = sky("-o", "json", "snapshot", "show", id)
	if s, err := snapshot.Decode([]byte(r.stdout)); err != nil || s.Switches[0].Flows[0].PacketCount != 12 {
		t.Errorf("show -o json: %v\n%s", err, r.stdout)
	}
	r = sky("snapshot", "restore", id)
	if r.code != 0 || !strings.Contains(r.stdout, "restored in 812 ms: 1 counter offsets, 1 tenant-app entries adopted, 1 entries skipped") ||
		!strings.Contains(r.stdout, "stale:") || !strings.Contains(r.stdout, "done") {
		t.Errorf("restore: %+v", r)
	}
	if r := sky("snapshot", "restore", "snap-nope"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("restore unknown: %+v", r)
	}
	r = sky("flows", "sks-vm1", "--tenant", "acme")
	if r.code != 0 || !strings.Contains(r.stdout, "tenant acme") || !strings.Contains(r.stdout, "15*") {
		t.Errorf("flows: %+v", r)
	}
	if r := sky("snapshot", "delete", id); r.code != 0 || !strings.Contains(r.stdout, "deleted") || len(f.snaps) != 1 {
		t.Errorf("delete: %+v", r)
	}
	if r := sky("snapshot", "delete", id); r.code != 1 {
		t.Errorf("delete again: %+v", r)
	}
}

func TestSnapshotUsage(t *testing.T) {
	_, sky := snapHarness(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot"}, "missing subcommand"},
		{[]string{"snapshot", "create"}, "missing TENANT"},
		{[]string{"snapshot", "create", "acme", "--switch", "x"}, "not both"},
		{[]string{"snapshot", "create", "a", "b"}, "unexpected argument \"b\""},
		{[]string{"snapshot", "show"}, "missing ID"},
		{[]string{"snapshot", "restore", "a", "b"}, "unexpected argument"},
		{[]string{"snapshot", "list", "--switch", "x"}, "only for snapshot create"},
		{[]string{"snapshot", "take", "acme"}, "did you mean"},
		{[]string{"flows"}, "missing DPID"},
		{[]string{"get", "tenants", "--switch", "x"}, "only for snapshot create and flows"},
	} {
		r := sky(c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error with %q", c.args, r.code, r.stderr, c.want)
		}
	}
}
