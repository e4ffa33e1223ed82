// Command skyvisor is the Skyvisor OpenFlow 1.3 controller daemon: it runs
// the controller apps named by --apps (default "learning,discovery") on a
// listener for switches (default :6653).
//
//	skyvisor [--config FILE] [--listen HOST:PORT|unix:/path] [--apps a,b]
//	         [--tls-cert F --tls-key F [--tls-ca F]] [--log-level L] [--log-format text|json]
//	         [--debug-addr HOST:PORT] [--discovery-probe-interval D] [--discovery-link-timeout D]
//	         [--learning-idle-timeout D]
//
// Every setting can also come from the config file (--config or
// SKYVISOR_CONFIG; YAML, JSON or TOML, by extension) or from the environment
// as SKYVISOR_<KEY> (SKYVISOR_LISTEN, SKYVISOR_APPS, SKYVISOR_TLS_CERT,
// SKYVISOR_DISCOVERY_PROBE_INTERVAL, ...); flags win over the environment,
// which wins over the file. A config file looks like
//
//	listen: 127.0.0.1:6653
//	apps: [learning, discovery]
//	log: {level: info, format: json}
//	debug_addr: 127.0.0.1:6060
//	discovery: {probe_interval: 5s, link_timeout: 15s, priority: 65000}
//	learning: {idle_timeout: 60s, table_size: 4096}
//
// Each app's section is decoded into its Config (unknown keys are errors).
// GET /debug/links on --debug-addr returns the discovered links as JSON.
// SIGINT or SIGTERM shuts down cleanly.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, pflag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "skyvisor:", err)
		os.Exit(1)
	}
}
