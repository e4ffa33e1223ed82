package controllertest

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/skyvisor/skyvisor/controller"
)

// TestStartServesAndStops checks that the controller accepts connections
// once Start returns and refuses them after stop.
func TestStartServesAndStops(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	c, stop := Start(t, controller.Config{Listen: "unix:" + sock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	conn, err := net.Dial("unix", c.Addr().String())
	if err != nil {
		t.Fatalf("dial while serving: %v", err)
	}
	conn.Close()
	stop()
	stop() // idempotent
	if conn, err := net.Dial("unix", sock); err == nil {
		conn.Close()
		t.Fatal("dial succeeded after stop")
	}
}
