# Skyvisor build, test and lab targets. `make demo` and `make test` work on a
# fresh Debian 12 machine as root: both install what is missing first.
SHELL := /bin/bash
GO ?= go
GOFLAGS ?=
PKGS := ./...
# Debian packages the tests, the lab and the peer controllers need.
APT_PACKAGES := openvswitch-switch openvswitch-testcontroller python3-os-ken \
	mininet iperf3 ethtool tcpdump iproute2 iputils-ping wireguard-go wireguard-tools

.PHONY: all help build deps ovs-system test unit integration fuzz vet fmt-check demo bench-controller \
	experiments experiment-setuptime experiment-controlplane experiment-dataplane experiment-migration \
	experiment-scale lab-up lab-down generate clean

# all builds the binaries (the default target).
all: build

# help lists the targets, each with the first sentence of the comment above it.
help:
	@awk '/^#/ { c = c " " substr($$0, 3); next } /^[A-Z_]+ *[?:]?=/ { next } \
		/^[a-z-]+:([^=]|$$)/ { split($$0, t, ":"); sub(/^ */, "", c); sub("^" t[1] ":? ", "", c); \
			sub(/\. .*/, "", c); sub(/\.$$/, "", c); printf "  %-24s %s\n", t[1], c } { c = "" }' \
		$(firstword $(MAKEFILE_LIST))

# build compiles every command of cmd/ into bin/.
# -buildvcs=auto (after GOFLAGS, which may say false): the binaries carry
# the commit, which the experiments write into their CSVs (runinfo).
build:
	$(GO) build $(GOFLAGS) -buildvcs=auto -o bin/ ./cmd/...

# deps installs the Debian packages that are missing (needs root).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# vet runs go vet with and without the integration build tag.
vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)

# fmt-check fails when gofmt would change a tracked Go file.
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# unit runs the unit tests only (no root needed).
unit:
	$(GO) test -race -count=1 $(PKGS)

# ovs-system starts the root namespace's Open vSwitch for Mininet. It does so
# only when it is not running: in containers apt installs it without starting
# it. The kernel has no OVS module, so Mininet runs with datapath=user.
ovs-system: deps
	@ovs-vsctl --timeout=3 show >/dev/null 2>&1 || \
		/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null

# integration runs every test, with those against real Open vSwitch. They
# have the build tag `integration` and need root and the packages of `deps`.
integration: deps ovs-system
	$(GO) test -race -count=1 -tags integration -timeout 30m $(PKGS)

# fuzz runs each fuzz target of every package for FUZZTIME. That is on top of
# its seed corpus (the seeds alone already run as plain tests in `unit`).
FUZZTIME ?= 15s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
			out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out" | tail -40; exit 1; }; \
		done; \
	done

# test runs everything CI checks (the README's test command).
test: deps fmt-check vet integration fuzz

# lab-up builds the 3-cloud lab of LAB (docs/lab.md). LAB defaults to
# examples/labs/three-clouds.json; `bin/skylab status` shows what it built.
LAB ?= examples/labs/three-clouds.json
lab-up: build deps
	bin/skylab up $(LAB)

# lab-down removes the lab that lab-up built.
lab-down: build
	bin/skylab down

# demo runs the demo of docs/demo.md, the README's main command. It is a
# 3-cloud lab on real Open vSwitch, skyvisor with the hypervisor, two tenants
# with identical MACs and IPs applied with skyctl, then checked (pings inside
# each tenant across clouds, tcpdump isolation on hosts and WAN, spoofed MAC);
# exit 1 on any failed expectation. DEMOFLAGS=--keep leaves it running (stop:
# bin/skydemo --down).
DEMOFLAGS ?=
demo: deps build
	bin/skydemo $(DEMOFLAGS)

# bench-controller compares Skyvisor's learning switch with the peers. Under
# ofbench, side by side in one run: ovs-testcontroller (C) and os-ken
# (Python) (docs/benchmarks.md); it appends its rows to docs/results/controllers.csv.
bench-controller: build deps
	OFBENCH=bin/ofbench testbed/bench/controllers.sh -k bin/skyvisor

# experiments runs the paper's experiments on the lab (docs/experiments.md).
# They run one after the other, also under make -j (they measure times, so
# they must not share the machine with each other): setup time (Fig. 2),
# control-plane overhead (Fig. 3), data-plane overhead (Fig. 4) and live
# migration. Each writes CSV and PNG files to docs/results/ (listed with their
# commands in docs/results/README.md). EXPFLAGS=--full runs the larger sizes.
# The tenant scale run is not part of it: it is a benchmark of the
# controller's own code on a synthetic fabric, no lab and no switch
# (docs/benchmarks.md, "Tenant scale"), CPU-bound, whose times mean something
# only on a quiet machine; run `make experiment-scale` on its own.
EXPFLAGS ?=
EXPERIMENTS := setuptime controlplane dataplane migration
experiments: build deps
	@set -e; for e in $(EXPERIMENTS); do \
		echo "== skyexp $$e $(EXPFLAGS)"; \
		$(MAKE) --no-print-directory experiment-$$e; \
	done

# experiment-setuptime: gateway tunnels' setup time vs sites, MST vs full mesh.
experiment-setuptime: build deps
	bin/skyexp setuptime $(EXPFLAGS)

# experiment-controlplane: learning switch bare vs on the hypervisor, and the peers.
experiment-controlplane: build deps
	bin/skyexp controlplane $(EXPFLAGS)

# experiment-dataplane: ping RTT and TCP throughput, virtualized vs not (bin/skyvisor, bin/skyctl).
experiment-dataplane: build deps
	bin/skyexp dataplane $(EXPFLAGS)

# experiment-migration: live migration of a virtual switch (bin/skyexp migration).
experiment-migration: build deps
	bin/skyexp migration $(EXPFLAGS)

# experiment-scale: the tenant scale benchmark (docs/benchmarks.md).
# SCALEFLAGS are its flags (bin/skyexp scale -h); it has no --full.
SCALEFLAGS ?=
experiment-scale: build
	bin/skyexp scale $(SCALEFLAGS)

# generate regenerates the OVSDB models from ovsdb/vswitch.ovsschema.
generate:
	$(GO) generate ./ovsdb/...

# clean removes bin/.
clean:
	rm -rf bin
