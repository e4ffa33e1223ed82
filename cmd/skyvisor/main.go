// Command skyvisor is the Skyvisor OpenFlow 1.3 controller daemon: it runs
// the controller apps named by --apps (default "learning,discovery") on a
// listener for switches (default :6653).
//
//	skyvisor [--config FILE] [--listen HOST:PORT|unix:/path] [--apps a,b]
//	         [--tls-cert F --tls-key F [--tls-ca F]] [--log-level L] [--log-format text|json]
//	         [--debug-addr HOST:PORT] [--discovery-probe-interval D] [--discovery-link-timeout D]
//	         [--learning-idle-timeout D]
//	         [--infra FILE] [--state-dir DIR] [--api-listen HOST:PORT] [--api-token T | --api-token-file F]
//	         [--tunnel-mesh] [--bfd-min-rx D] [--bfd-min-tx D] [--bfd-mult N | --no-bfd]
//	         [--ovsdb-tls-key F --ovsdb-tls-cert F --ovsdb-tls-ca F]
//
// The "hypervisor" app (package hypervisor) is the multi-cloud network
// hypervisor: tenants, tunnels between the gateways of the infrastructure
// file (--infra, required with it; docs/infra.md), its store in --state-dir
// and the REST API on --api-listen (docs/api.md); the gateways are joined
// by the minimum spanning tree of tunnels (--tunnel-mesh: a full mesh),
// each watched by BFD (--bfd-*, docs/tunnels.md "Liveness"), and "ssl:"
// OVSDB endpoints use the --ovsdb-tls-* files unless the infrastructure
// file gives its own (docs/infra.md "OVSDB over TLS"). It always runs first
// among the apps (it consumes tenant packet-ins), whatever the order in
// --apps. The full system:
//
//	skyvisor --apps hypervisor --infra inventory.json --listen unix:/tmp/skylab/skd/openflow.sock \
//	         --api-listen 127.0.0.1:18080 --api-token-file TOKENFILE
//
// Every setting can also come from the config file (--config or
// SKYVISOR_CONFIG; YAML, JSON or TOML, by extension) or from the environment
// as SKYVISOR_<KEY> (SKYVISOR_LISTEN, SKYVISOR_APPS, SKYVISOR_TLS_CERT,
// SKYVISOR_DISCOVERY_PROBE_INTERVAL, SKYVISOR_HYPERVISOR_INFRA,
// SKYVISOR_HYPERVISOR_API_TOKEN_FILE, ...); flags win over the environment,
// which wins over the file. A config file looks like
//
//	listen: 127.0.0.1:6653
//	apps: [learning, discovery]
//	log: {level: info, format: json}
//	debug_addr: 127.0.0.1:6060
//	discovery: {probe_interval: 5s, link_timeout: 15s, priority: 65000}
//	learning: {idle_timeout: 60s, table_size: 4096}
//	hypervisor:
//	  infra: inventory.json
//	  state_dir: /var/lib/skyvisor
//	  api_listen: 127.0.0.1:8080
//	  api_token_file: /etc/skyvisor/token
//	  liveness: {bfd_min_rx: 500ms, bfd_min_tx: 500ms, bfd_mult: 3}
//	  ovsdb_tls: {key: /etc/skyvisor/ovsdb-key.pem, cert: /etc/skyvisor/ovsdb-cert.pem, ca: /etc/skyvisor/ovsdb-ca.pem}
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
