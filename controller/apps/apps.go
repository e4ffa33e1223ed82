// Package apps is the registry of the controller apps the skyvisor daemon
// can run, by name. It holds no global state: Builtin returns a fresh map
// that the daemon may extend (the hypervisor app registers itself there from
// cmd/skyvisor, since package controller/apps must not import hypervisor).
package apps

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/controller/apps/learning"
)

// Options is what a Factory gets to build its app.
type Options struct {
	// Logger for the app (never nil when built by Build).
	Logger *slog.Logger
	// Decode fills out, a pointer to the app's config struct already
	// holding its defaults, from the app's section of the daemon
	// configuration (the keys under the app's name, mapstructure tags). nil
	// means "no configuration": keep the defaults. It returns an error
	// naming the unknown or malformed key.
	Decode func(out any) error
}

// decode calls o.Decode when set.
func (o Options) decode(name string, out any) error {
	if o.Decode == nil {
		return nil
	}
	if err := o.Decode(out); err != nil {
		return fmt.Errorf("app %q: config: %w", name, err)
	}
	return nil
}

// Factory builds one app instance.
type Factory func(Options) (controller.App, error)

// Builtin returns a new map of the apps built into the controller:
// "learning" (package learning) and "discovery" (package discovery).
func Builtin() map[string]Factory {
	return map[string]Factory{
		learning.Name:  Learning,
		discovery.Name: Discovery,
	}
}

// Learning is the Factory of the learning switch (config: learning.Config).
func Learning(o Options) (controller.App, error) {
	cfg := learning.DefaultConfig()
	if err := o.decode(learning.Name, &cfg); err != nil {
		return nil, err
	}
	cfg.Logger = o.Logger
	return learning.New(cfg)
}

// Discovery is the Factory of LLDP link discovery (config:
// discovery.Config).
func Discovery(o Options) (controller.App, error) {
	cfg := discovery.DefaultConfig()
	if err := o.decode(discovery.Name, &cfg); err != nil {
		return nil, err
	}
	cfg.Logger = o.Logger
	return discovery.New(cfg)
}

// ParseNames splits a comma-separated app list ("learning, discovery") into
// names, dropping blanks. Order is kept: it is the order apps see events.
func ParseNames(list ...string) []string {
	var names []string
	for _, l := range list {
		for _, n := range strings.Split(l, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}

// Build creates the apps named in names, in that order, from reg. options
// returns the Options for one app name (nil: zero Options with
// slog.Default()). It fails, naming the culprit and the known names, on an
// empty list, an unknown or repeated name, or a failing factory.
func Build(reg map[string]Factory, names []string, options func(name string) Options) ([]controller.App, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no apps given (known: %s)", known(reg))
	}
	out := make([]controller.App, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		f, ok := reg[n]
		if !ok {
			return nil, fmt.Errorf("unknown app %q (known: %s)", n, known(reg))
		}
		if seen[n] {
			return nil, fmt.Errorf("app %q listed twice", n)
		}
		seen[n] = true
		var o Options
		if options != nil {
			o = options(n)
		}
		if o.Logger == nil {
			o.Logger = slog.Default()
		}
		app, err := f(o)
		if err != nil {
			return nil, fmt.Errorf("build app %q: %w", n, err)
		}
		out = append(out, app)
	}
	return out, nil
}

// known lists reg's names, sorted, comma-separated.
func known(reg map[string]Factory) string {
	names := make([]string, 0, len(reg))
	for n := range reg {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
