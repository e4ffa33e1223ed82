//go:build tools

// Package tools pins the versions of dependencies that the module uses
// before every package imports them, and the code generators it runs
// (libovsdb's modelgen), so that `go mod tidy` keeps them in go.mod.
package tools

import (
	_ "github.com/digitalocean/go-openvswitch/ovs"
	_ "github.com/gopacket/gopacket"
	_ "github.com/gopacket/gopacket/layers"
	_ "github.com/netrack/openflow"
	_ "github.com/netrack/openflow/ofp"
	_ "github.com/ovn-org/libovsdb/client"
	_ "github.com/ovn-org/libovsdb/cmd/modelgen"
	_ "github.com/spf13/viper"
	_ "github.com/vishvananda/netlink"
	_ "go.etcd.io/bbolt"
	_ "gonum.org/v1/plot"
)
