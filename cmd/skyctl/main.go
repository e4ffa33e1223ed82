// Command skyctl is the command-line client of Skyvisor's REST API
// (hypervisor/api; docs/api.md): apply tenant topologies, list, describe and
// delete tenants, show the physical topology and the daemon's health.
//
//	skyctl [--server URL] [--token TOKEN] [-o table|json] <command> [args]
//
// Exit status: 0 success, 1 the request failed (validation errors are
// printed one per line with their JSON paths), 2 usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
