// Package integration holds the controller's tests against real Open
// vSwitch 3.1 (userspace datapath) and Mininet. They are in files with the
// build tag `integration` and skip, with the reason, when not run as root or
// when the Open vSwitch / Mininet programs are missing:
//
//	go test -race -count=1 -tags integration ./controller/integration/
//
// Names of namespaces, bridges and hosts start with "skb".
package integration
