package ovsdb

// The models in ./vswitch are generated from the Open_vSwitch database schema
// shipped with Open vSwitch 3.1 (/usr/share/openvswitch/vswitch.ovsschema,
// committed as vswitch.ovsschema) by libovsdb's modelgen at the version pinned
// in go.mod. Regenerate with `make generate` (or `go generate ./ovsdb/...`).
//go:generate go run github.com/ovn-org/libovsdb/cmd/modelgen -p vswitch -o vswitch vswitch.ovsschema
