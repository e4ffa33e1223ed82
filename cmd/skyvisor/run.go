package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/hypervisor"
)

// registry returns the apps the daemon can run: the built-in physical apps
// (learning, discovery) and the hypervisor (hypervisor.Factory: tenants,
// REST API, store; settings --infra, --state-dir, --api-listen,
// --api-token[-file]).
func registry() map[string]apps.Factory {
	reg := apps.Builtin()
	reg[hypervisor.AppName] = hypervisor.Factory
	return reg
}

// runner is an app with its own loop (the hypervisor: tunnels, bindings,
// REST API), started once the OpenFlow listener is up.
type runner interface {
	Run(ctx context.Context) error
}

// run is the daemon: it loads the settings from args (and the environment,
// and --config), builds the apps and serves switches until ctx is done.
// Logs go to stderr, usage to stdout. It returns nil on a clean shutdown.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	reg := registry()
	s, err := loadSettings(args, stdout, reg)
	if err != nil {
		return err
	}
	log := s.newLogger(stderr)
	appList, err := apps.Build(reg, s.Apps, s.appOptions(log))
	if err != nil {
		return fmt.Errorf("--apps %q: %w", strings.Join(s.Apps, ","), err)
	}
	c, err := controller.New(controller.Config{
		Listen: s.Listen, TLS: s.TLS, EchoInterval: s.EchoInterval, DeadPeerTimeout: s.DeadPeerTimeout, Logger: log,
	}, appList...)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if err := c.Listen(); err != nil {
		return fmt.Errorf("listen %s: %w", s.Listen, err)
	}
	log.Info("skyvisor listening", "addr", c.Addr().String(), "apps", s.Apps)
	if slices.Contains(s.Apps, hypervisor.AppName) && slices.Contains(s.Apps, "learning") {
		// docs/infra.md: the physical learning app's SwitchUp replaces the
		// hypervisor's table-miss drop until its next reconcile.
		log.Warn("the physical learning app runs beside the hypervisor on the same bridges; tenants' learning is built into the hypervisor (use --apps hypervisor or hypervisor,discovery)")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Apps with a loop run beside the controller; the first to fail stops
	// the daemon with its error.
	var runWG sync.WaitGroup
	runErr := make(chan error, len(appList))
	for i, a := range appList {
		r, ok := a.(runner)
		if !ok {
			continue
		}
		runWG.Add(1)
		go func(name string) {
			defer runWG.Done()
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				runErr <- fmt.Errorf("app %q: %w", name, err)
				cancel()
			}
		}(s.Apps[i])
	}
	defer runWG.Wait()
	var debugDone chan error
	if s.DebugAddr != "" {
		ln, err := net.Listen("tcp", s.DebugAddr)
		if err != nil {
			return fmt.Errorf("--debug-addr %s: %w", s.DebugAddr, err)
		}
		log.Info("debug endpoint listening", "addr", ln.Addr().String())
		srv := &http.Server{Handler: debugHandler(c, appList), ReadHeaderTimeout: 5 * time.Second}
		debugDone = make(chan error, 1)
		go func() { debugDone <- srv.Serve(ln) }()
		go func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			srv.Shutdown(sctx)
		}()
	}
	err = c.Serve(ctx)
	cancel()
	runWG.Wait()
	select {
	case rerr := <-runErr:
		return rerr
	default:
	}
	if debugDone != nil {
		if derr := <-debugDone; derr != nil && !errors.Is(derr, http.ErrServerClosed) {
			log.Error("debug endpoint", "err", derr)
		}
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("skyvisor stopped")
	return nil
}
