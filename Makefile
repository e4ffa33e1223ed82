# Skyvisor build, test and lab targets. `make demo` and `make test` work on a
# fresh Debian 12 machine as root: both install what is missing first.
SHELL := /bin/bash
GO ?= go
GOFLAGS ?=
PKGS := ./...
# Debian packages the tests, the lab and the peer controllers need.
APT_PACKAGES := openvswitch-switch openvswitch-testcontroller python3-os-ken \
	mininet iperf3 ethtool tcpdump iproute2 iputils-ping wireguard-go wireguard-tools

.PHONY: all build deps ovs-system test unit integration fuzz vet fmt-check demo bench-controller experiments experiment-setuptime lab-up lab-down generate clean

all: build

build:
	$(GO) build $(GOFLAGS) -o bin/ ./cmd/...

# deps installs the Debian packages that are missing (needs root).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 $(PKGS)

# ovs-system starts the root namespace's Open vSwitch (Mininet uses it) when
# it is not running: in containers apt installs it without starting it. The
# kernel has no OVS module, so Mininet runs with datapath=user.
ovs-system: deps
	@ovs-vsctl --timeout=3 show >/dev/null 2>&1 || \
		/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null

# integration runs every test, including those against real Open vSwitch
# (build tag `integration`; they need root and the packages from `deps`).
integration: deps ovs-system
	$(GO) test -race -count=1 -tags integration -timeout 30m $(PKGS)

# fuzz runs each fuzz target of every package for FUZZTIME on top of its seed
# corpus (the seeds alone already run as plain tests in `unit`).
FUZZTIME ?= 15s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
			out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out" | tail -40; exit 1; }; \
		done; \
	done

# test is the README's test command: everything CI checks.
test: deps fmt-check vet integration fuzz

# lab-up/lab-down: the 3-cloud lab of examples/labs/three-clouds.json
# (docs/lab.md); `bin/skylab status` shows what it built.
LAB ?= examples/labs/three-clouds.json
lab-up: build deps
	bin/skylab up $(LAB)

lab-down: build
	bin/skylab down

# demo is the README's main command (docs/demo.md): a 3-cloud lab on real
# Open vSwitch, skyvisor with the hypervisor, two tenants with identical MACs
# and IPs applied with skyctl, then checked (pings inside each tenant across
# clouds, tcpdump isolation on hosts and WAN, spoofed MAC); exit 1 on any
# failed expectation. DEMOFLAGS=--keep leaves it running (stop: bin/skydemo --down).
DEMOFLAGS ?=
demo: deps build
	bin/skydemo $(DEMOFLAGS)

# bench-controller compares Skyvisor's learning switch with ovs-testcontroller
# (C) and os-ken (Python) under ofbench, side by side in one run
# (docs/benchmarks.md); it writes docs/results/controllers.csv.
bench-controller: build deps
	OFBENCH=bin/ofbench testbed/bench/controllers.sh -k bin/skyvisor

# experiments reproduces the paper's evaluation on the lab (docs/experiments.md);
# each writes CSV and PNG files to docs/results/. EXPFLAGS=--full runs the
# larger sizes.
EXPFLAGS ?=
experiments: experiment-setuptime

experiment-setuptime: build deps
	bin/skyexp setuptime $(EXPFLAGS)

generate:
	$(GO) generate ./ovsdb/...

clean:
	rm -rf bin
