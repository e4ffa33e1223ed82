package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
)

// registry returns the apps the daemon can run. Further apps (the
// hypervisor) are one line here: reg["name"] = factory.
func registry() map[string]apps.Factory {
	reg := apps.Builtin()
	return reg
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
		return fmt.Errorf("--apps %q: %w", s.v.GetString("apps"), err)
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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
