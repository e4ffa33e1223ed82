package apps

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/controller/apps/discovery"
	"github.com/skyvisor/skyvisor/controller/apps/learning"
)

func TestParseNames(t *testing.T) {
	got := ParseNames(" learning, discovery ,,", "x")
	want := []string{"learning", "discovery", "x"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("ParseNames = %q want %q", got, want)
	}
}

func TestBuildOrderAndConfig(t *testing.T) {
	apps, err := Build(Builtin(), []string{"discovery", "learning"}, func(name string) Options {
		return Options{Decode: func(out any) error {
			switch c := out.(type) {
			case *discovery.Config:
				c.ProbeInterval = time.Second
				c.LinkTimeout = 4 * time.Second
			case *learning.Config:
				c.IdleTimeout = 7 * time.Second
			default:
				t.Errorf("unexpected config type %T for %s", out, name)
			}
			return nil
		}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[0].Name() != "discovery" || apps[1].Name() != "learning" {
		t.Fatalf("apps %v", apps)
	}
	if c := apps[0].(*discovery.App).Config(); c.ProbeInterval != time.Second || c.LinkTimeout != 4*time.Second {
		t.Fatalf("discovery config not applied: %+v", c)
	}
	if c := apps[1].(*learning.App).Config(); c.IdleTimeout != 7*time.Second || c.Priority != 1 {
		t.Fatalf("learning config not applied: %+v", c)
	}
}

func TestBuildErrors(t *testing.T) {
	cases := []struct {
		names []string
		opts  func(string) Options
		want  string
	}{
		{nil, nil, "no apps given (known: discovery, learning)"},
		{[]string{"learning", "bogus"}, nil, `unknown app "bogus" (known: discovery, learning)`},
		{[]string{"learning", "learning"}, nil, `app "learning" listed twice`},
		{[]string{"discovery"}, func(string) Options {
			return Options{Decode: func(any) error { return errors.New(`unknown key "probe_intervl"`) }}
		}, `build app "discovery": app "discovery": config: unknown key "probe_intervl"`},
		{[]string{"discovery"}, func(string) Options {
			return Options{Decode: func(out any) error { out.(*discovery.Config).LinkTimeout = time.Millisecond; return nil }}
		}, "must be longer than probe_interval"},
	}
	for _, c := range cases {
		_, err := Build(Builtin(), c.names, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Build(%q): err %v, want %q", c.names, err, c.want)
		}
	}
}
