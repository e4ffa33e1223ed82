package setuptime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/hypervisor/store"
	"github.com/skyvisor/skyvisor/testbed/lab"
)

// retryInterval is the hypervisor's pause between failed convergence
// attempts (hypervisor.Config.RetryInterval) during the experiment.
const retryInterval = 500 * time.Millisecond

// skyvisor is Skyvisor running in this process over one lab, built the way
// the skyvisor daemon builds it (hypervisor.NewDaemon): a Hypervisor over
// the lab's inventory as infrastructure with a bbolt store, registered as
// the first app of a controller.Controller, and its REST API
// (api.NewHandler) on a loopback port with a fresh token. The tunnel probe
// is the controller's second app.
type skyvisor struct {
	h      *hypervisor.Hypervisor
	probe  *tunnelProbe
	client *api.Client
	st     *store.Store
	srv    *http.Server
	dir    string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

// startSkyvisor starts Skyvisor over inv and returns at once: the
// controller listens on a unix socket in a fresh temporary directory
// ("<prefix>-sky-*", also holding the store) that the hypervisor sets as
// every bridge's controller target (through infraOf's links); Run of the hypervisor and Serve of the
// controller run until stop. mesh selects hypervisor.Config.TunnelMesh.
func startSkyvisor(ctx context.Context, inv *lab.Inventory, prefix string, mesh bool, log *slog.Logger) (_ *skyvisor, err error) {
	dir, err := os.MkdirTemp("", prefix+"-sky-")
	if err != nil {
		return nil, err
	}
	s := &skyvisor{dir: dir}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	sock := "unix:" + filepath.Join(dir, "openflow.sock")
	inf, err := infraOf(inv, sock)
	if err != nil {
		return nil, err
	}
	if s.st, err = store.Open(filepath.Join(dir, hypervisor.StoreFile)); err != nil {
		return nil, err
	}
	if s.h, err = hypervisor.New(hypervisor.Config{Infra: inf, Store: s.st, Logger: log,
		TunnelMesh: mesh, RetryInterval: retryInterval}); err != nil {
		return nil, err
	}
	s.probe = newTunnelProbe()
	c, err := controller.New(controller.Config{Listen: sock, Logger: log}, s.h, s.probe)
	if err != nil {
		return nil, err
	}
	if err := c.Listen(); err != nil {
		return nil, err
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("REST API: %w", err)
	}
	s.srv = api.NewServer(ln.Addr().String(), api.NewHandler(s.h, api.Options{Token: hex.EncodeToString(token), Logger: log}))
	if s.client, err = api.NewClient("http://"+ln.Addr().String(), hex.EncodeToString(token), nil); err != nil {
		ln.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.goRun("REST API", func() error {
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	s.goRun("controller", func() error { return c.Serve(runCtx) })
	s.goRun("hypervisor", func() error { return s.h.Run(runCtx) })
	return s, nil
}

// infraOf returns inv as Skyvisor's infrastructure with every site's
// bridges pointing at the controller socket target ("unix:/path"), the way
// the lab does it for a unix controller: ovs-vswitchd refuses unix targets
// outside its OVS_RUNDIR, so each site's run directory gets the link
// controller.sock to the socket (lab.SiteControllerTarget), removed with
// the lab.
func infraOf(inv *lab.Inventory, target string) (*infra.Infra, error) {
	c := *inv
	c.Controller = target
	c.Sites = slices.Clone(inv.Sites)
	for k := range c.Sites {
		si := &c.Sites[k]
		link := filepath.Join(si.RunDir, "controller.sock")
		_ = os.Remove(link) // a link of an earlier Skyvisor over this lab
		if err := os.Symlink(strings.TrimPrefix(target, "unix:"), link); err != nil {
			return nil, fmt.Errorf("site %s: controller socket link: %w", si.Name, err)
		}
		si.ControllerTarget = "unix:" + link
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	inf, err := infra.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("inventory as infrastructure: %w", err)
	}
	return inf, nil
}

// goRun runs f in a goroutine and keeps its error.
func (s *skyvisor) goRun(what string, f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, fmt.Errorf("%s: %w", what, err))
			s.mu.Unlock()
		}
	}()
}

// err returns the errors of the goroutines that ended with one.
func (s *skyvisor) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// stop ends Skyvisor (OpenFlow sessions and OVSDB connections close, the
// switches keep their state), waits for its goroutines, closes the store,
// removes the temporary directory and returns the goroutines' errors.
func (s *skyvisor) stop() error {
	if s.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.srv.Shutdown(sctx)
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.st != nil {
		s.st.Close()
	}
	err := s.err()
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}
