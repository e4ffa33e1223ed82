package migrate

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// replEnv is fakeEnv as a Replicator: it records Replicate and
// Unreplicate among the Env's calls.
type replEnv struct{ *fakeEnv }

func (e replEnv) Replicate(_ context.Context, p Plan) error {
	e.call("replicate")
	return nil
}

func (e replEnv) Unreplicate(_ context.Context, p Plan, rollback bool) error {
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
	res, err := Run(context.Background(), replEnv{e}, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover()})
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
			_, err := Run(context.Background(), replEnv{e}, Request{Switch: 0x101, To: "gcp"}, Options{Mover: e.mover(), FailAt: step,
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
