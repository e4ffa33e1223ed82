package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/skyvisor/skyvisor/controller"
)

// replEnv is fakeEnv as a Replicator: it records Replicate and
// Unreplicate among the Env's calls; with closed set, a pruning
// Unreplicate fails as on a session that closed (the target's OVS died
// while the hypervisor still holds its session).
type replEnv struct {
	*fakeEnv
	closed *bool
}

func (e replEnv) Replicate(_ context.Context, p Plan) error {
	e.call("replicate")
	return nil
}

func (e replEnv) Unreplicate(_ context.Context, p Plan, rollback bool) error {
	if rollback && e.closed != nil && *e.closed {
		e.call("unreplicate-failed")
		return fmt.Errorf("drop replica: flow stats: %w", controller.ErrClosed)
	}
	if rollback {
		e.call("unreplicate-rollback")
	} else {
		e.call("unreplicate")
	}
	return nil
}

// replCalls returns the replica calls of e, in order.
func replCalls(e *fakeEnv) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.calls {
		if strings.Contains(c, "replicate") {
			out = append(out, c)
		}
	}
	return out
}

// TestReplicatorFromCloneToCommit: with a Replicator Env the target
// becomes a replica in the clone step (after the clones are installed)
// and stays the only copy at the commit; a rollback after the clone or
// any later step drops the replica, after the clones' delete (so its
// pruning sees the target as the apps' tables have it), and a rollback
// before the clone never touches it.
func TestReplicatorFromCloneToCommit(t *testing.T) {
	e := newFakeEnv()
	res, err := Run(context.Background(), replEnv{fakeEnv: e}, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover()})
	if err != nil {
		t.Fatal(err)
	}
	if got := replCalls(e); !slices.Equal(got, []string{"replicate", "unreplicate"}) {
		t.Errorf("replica calls %q, want replicate then unreplicate at the commit", got)
	}
	for _, s := range res.Steps {
		if s.Step == StepClone && !strings.Contains(s.Detail, "replica") {
			t.Errorf("clone detail %q does not mention the replica", s.Detail)
		}
	}
	for _, step := range Steps()[:len(Steps())-1] {
		t.Run(string(step), func(t *testing.T) {
			e := newFakeEnv()
			dstBefore := e.dst.table()
			var undos []string
			_, err := Run(context.Background(), replEnv{fakeEnv: e}, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover(), FailAt: step,
				Progress: func(ev Event) {
					if ev.Status == StatusRolledBack && ev.Step == StepClone {
						undos = append(undos, ev.Detail)
					}
				}})
			if err == nil {
				t.Fatal("no failure")
			}
			want := []string{"replicate", "unreplicate-rollback"}
			if slices.Index(Steps(), step) < slices.Index(Steps(), StepClone) {
				want = nil
			}
			if got := replCalls(e); !slices.Equal(got, want) {
				t.Errorf("replica calls %q, want %q", got, want)
			}
			if want != nil && (len(undos) != 2 || !strings.HasPrefix(undos[0], "delete") || !strings.Contains(undos[1], "replica")) {
				t.Errorf("clone undos %q, want the clones' delete, then the replica's drop", undos)
			}
			if got := e.dst.table(); got != dstBefore {
				t.Errorf("target after rollback:\n%s\nwant:\n%s", got, dstBefore)
			}
		})
	}
}

// TestReplicaOfADeadTarget: the target's OVS dies after the clone while
// its session object is still around: the replica's pruning fails with a
// closed session, which is skipped (the target's table went with it), the
// replica is still ended, and the rollback succeeds.
func TestReplicaOfADeadTarget(t *testing.T) {
	e := newFakeEnv()
	closed := false
	var detail string
	res, err := Run(context.Background(), replEnv{fakeEnv: e, closed: &closed}, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover(),
		FailAt: StepConnect,
		Progress: func(ev Event) {
			if ev.Step == StepClone && ev.Status == StatusDone {
				closed = true
			}
			if ev.Step == StepClone && strings.Contains(ev.Detail, "replica") && ev.Status != StatusDone {
				detail = string(ev.Status) + " " + ev.Detail
			}
		}})
	if err == nil || !res.RolledBack || strings.Contains(err.Error(), "rollback incomplete") {
		t.Fatalf("rolled back %v, err %v", res.RolledBack, err)
	}
	if !strings.HasPrefix(detail, string(StatusRolledBack)) || !strings.Contains(detail, "skipped: target gone") {
		t.Errorf("replica undo: %q, want rolled back, skipped: target gone", detail)
	}
	if got := replCalls(e); !slices.Equal(got, []string{"replicate", "unreplicate-failed", "unreplicate"}) {
		t.Errorf("replica calls %q", got)
	}
}
