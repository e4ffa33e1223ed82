package vnet

import (
	"slices"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps"
	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/controller/apps/learning"
)

// Tenant app names of the topology JSON's "apps" list.
const (
	// NativeLearning is the hypervisor-native learning switch: the
	// hypervisor knows every host, so it installs the L2 forwarding as
	// proactive translated entries and no app runs on the virtual view.
	// It is the default (topology.DefaultApps).
	NativeLearning = "learning"
	// ReactiveLearning is controller/apps/learning running reactively on
	// the virtual view (packet-in, flow-mod, packet-out): the same app the
	// controller runs bare with `skyvisor --apps learning`.
	ReactiveLearning = "learning-reactive"
	// Discovery is controller/apps/discovery on the virtual view: it finds
	// exactly the tenant's virtual links (LLDP is virtualized).
	Discovery = "discovery"
)

// Cookies of the built-in apps on the virtual view: their controller
// defaults shifted into the 48 bits a tenant app's cookie may use
// (pipeline.TenantCookie puts the tenant ID in the top 16).
const (
	ReactiveLearningCookie uint64 = learning.DefaultCookie >> 16  // 0x6c6561726e00
	DiscoveryCookie        uint64 = discovery.DefaultCookie >> 16 // 0x6c6c64700000
)

// Builtin returns a new registry of the apps that run on a tenant's
// virtual view: ReactiveLearning and Discovery, each with its controller
// defaults except the cookie (ReactiveLearningCookie, DiscoveryCookie).
// NativeLearning is not in it: the hypervisor realizes it itself.
func Builtin() map[string]apps.Factory {
	return map[string]apps.Factory{
		ReactiveLearning: func(o apps.Options) (controller.App, error) {
			cfg := learning.DefaultConfig()
			cfg.Cookie = ReactiveLearningCookie
			cfg.Logger = o.Logger
			return learning.New(cfg)
		},
		Discovery: func(o apps.Options) (controller.App, error) {
			cfg := discovery.DefaultConfig()
			cfg.Cookie = DiscoveryCookie
			cfg.Logger = o.Logger
			return discovery.New(cfg)
		},
	}
}

// KnownApps returns the app names a topology may list with registry reg:
// NativeLearning and the names of reg, sorted.
func KnownApps(reg map[string]apps.Factory) []string {
	names := []string{NativeLearning}
	for n := range reg {
		if n != NativeLearning {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// ViewApps returns the names of list that run on the virtual view: all but
// NativeLearning, in order.
func ViewApps(list []string) []string {
	var out []string
	for _, n := range list {
		if n != NativeLearning {
			out = append(out, n)
		}
	}
	return out
}
