package ovsdb

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func TestRetryBackoff(t *testing.T) {
	var closed atomic.Bool
	b := &retryBackoff{closed: &closed}
	b.Reset()
	var got []time.Duration
	for range 7 {
		got = append(got, b.NextBackOff())
	}
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("schedule = %v, want %v", got, want)
		}
		if got[i] < 0 { // backoff.Stop is -1: libovsdb panics on it
			t.Fatal("backoff stopped")
		}
	}
	b.Reset()
	if d := b.NextBackOff(); d != retryMin {
		t.Fatalf("after Reset: %v", d)
	}
	closed.Store(true)
	if d := b.NextBackOff(); d < 24*time.Hour {
		t.Fatalf("closed client retries after %v", d)
	}
}

func TestWarnCap(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})
	lg := logr.FromSlogHandler(warnCap{h}).WithName("libovsdb").WithValues("database", "Open_vSwitch")
	lg.V(2).Error(context.DeadlineExceeded, "failed to reconnect")
	lg.V(3).Info("chatter")
	out := buf.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "failed to reconnect") || strings.Contains(out, "ERROR") {
		t.Fatalf("log = %q", out)
	}
	if strings.Contains(out, "chatter") || !strings.Contains(out, "database=Open_vSwitch") {
		t.Fatalf("log = %q", out)
	}
}

func TestDialRejectsBadEndpoint(t *testing.T) {
	ctx := context.Background()
	if _, err := Dial(ctx, "unix:db.sock"); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("relative unix path: %v", err)
	}
	if _, err := Dial(ctx, "ssl:127.0.0.1:6640"); err == nil || !strings.Contains(err.Error(), "ssl needs a private key, certificate and CA certificate") {
		t.Fatalf("ssl without WithTLS: %v", err)
	}
}
