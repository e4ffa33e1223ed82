// Package controllertest runs a real controller.Controller for the length of
// a test, the way net/http/httptest runs a server: tests of apps and of the
// hypervisor use it to let a real Open vSwitch (internal/ovstest) or a fake
// switch connect over TCP or a unix socket.
package controllertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"

	"github.com/skyvisor/skyvisor/controller"
)

// StopTimeout is how long Stop waits for Serve to return after cancelling it.
const StopTimeout = 10 * time.Second

// Start builds a controller from cfg and apps, binds cfg.Listen (so
// c.Addr() is valid on return) and serves it in the background. It fails the
// test at once if the controller cannot be built or cannot listen.
//
// stop cancels Serve and waits up to StopTimeout for it to return, failing
// the test if it returns an error or does not return; it is idempotent and is
// also registered with t.Cleanup, so tests call it only to stop the
// controller early (e.g. to show that traffic survives a controller restart).
func Start(t testing.TB, cfg controller.Config, apps ...controller.App) (c *controller.Controller, stop func()) {
	t.Helper()
	c, err := controller.New(cfg, apps...)
	if err != nil {
		t.Fatalf("controllertest: new controller: %v", err)
	}
	if err := c.Listen(); err != nil {
		t.Fatalf("controllertest: listen %q: %v", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- c.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("controllertest: Serve: %v", err)
				}
			case <-time.After(StopTimeout):
				t.Errorf("controllertest: Serve did not return %v after cancel", StopTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// NoMultipart gives a fake controller.Switch the multipart methods
// (PortDesc, GroupDesc, MeterConfig, Multipart) of a switch that answers
// none: each fails with an error wrapping errors.ErrUnsupported. Embed it
// in a fake that does not need them.
type NoMultipart struct{}

// PortDesc fails with errors.ErrUnsupported.
func (NoMultipart) PortDesc(context.Context) ([]ofp.Port, error) {
	return nil, fmt.Errorf("controllertest: fake switch: port desc: %w", errors.ErrUnsupported)
}

// GroupDesc fails with errors.ErrUnsupported.
func (NoMultipart) GroupDesc(context.Context) ([]controller.GroupDesc, error) {
	return nil, fmt.Errorf("controllertest: fake switch: group desc: %w", errors.ErrUnsupported)
}

// MeterConfig fails with errors.ErrUnsupported.
func (NoMultipart) MeterConfig(context.Context) ([]controller.MeterConfig, error) {
	return nil, fmt.Errorf("controllertest: fake switch: meter config: %w", errors.ErrUnsupported)
}

// Multipart fails with errors.ErrUnsupported.
func (NoMultipart) Multipart(_ context.Context, t ofp.MultipartType, _ io.WriterTo) ([]byte, error) {
	return nil, fmt.Errorf("controllertest: fake switch: multipart %s: %w", t, errors.ErrUnsupported)
}
