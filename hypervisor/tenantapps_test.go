package hypervisor

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/hypervisor/vnet"
)

// TestTenantAppsLifecycle: a tenant listing apps besides "learning" gets
// a vnet runtime when applied, its discovery app reports exactly its
// virtual links, reconcile leaves its apps' entries alone, and deleting
// the tenant stops the runtime.
func TestTenantAppsLifecycle(t *testing.T) {
	h, _, _ := newTest(t)
	t.Cleanup(h.closeTenantApps)
	ctx := ctxT(t)
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	ts[1].Apps = []string{"learning", vnet.Discovery} // tenant2: s1 -(2:2)- s2 -(3:2)- s3
	out, err := h.ApplyTenants(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	t1, t2 := out[0].TenantID, out[1].TenantID
	if h.TenantAppRuntime("tenant1") != nil {
		t.Error("tenant1 (native learning only) got a runtime")
	}
	if h.TenantAppRuntime("tenant2") == nil {
		t.Fatal("tenant2 has no runtime")
	}
	var links api.TenantLinks
	want := []string{"s1:2>s2:2", "s2:2>s1:2", "s2:3>s3:2", "s3:2>s2:3"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		links, err = h.TenantLinks(ctx, "tenant2")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range links.Links {
			got = append(got, l.Src.Switch+":"+itoa(l.Src.Port)+">"+l.Dst.Switch+":"+itoa(l.Dst.Port))
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("links %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.TenantLinks(ctx, "tenant1"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("links of a tenant without discovery: %v, want ErrInvalid", err)
	}
	if _, err := h.TenantLinks(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("links of an unknown tenant: %v, want ErrNotFound", err)
	}
	// Ownership for reconcile.
	for _, c := range []struct {
		cookie uint64
		owned  bool
	}{
		{pipeline.InfraCookie(0, 0), true},
		{pipeline.TenantCookie(t1, 0x1234), true},
		{pipeline.TenantCookie(t2, vnet.DiscoveryCookie), false},
		{pipeline.TenantCookie(t2, cookieUnicast), true},
		{0, false},
	} {
		if got := h.ownsCookie(c.cookie); got != c.owned {
			t.Errorf("ownsCookie(%#x) = %v, want %v", c.cookie, got, c.owned)
		}
	}
	// Replacing the app list restarts the runtime; deleting stops it.
	rt := h.TenantAppRuntime("tenant2")
	ts[1].Apps = []string{vnet.Discovery, vnet.ReactiveLearning}
	if _, err := h.ApplyTenant(ctx, ts[1]); err != nil {
		t.Fatal(err)
	}
	if nrt := h.TenantAppRuntime("tenant2"); nrt == nil || nrt == rt {
		t.Fatalf("runtime after an app change: %p (old %p)", nrt, rt)
	}
	for _, sw := range rt.Switches() {
		select {
		case <-sw.Done():
		default:
			t.Errorf("old virtual switch %v still up", sw)
		}
	}
	// Without "learning" no proactive learning entry is desired.
	h.mu.Lock()
	for d, es := range h.desired {
		for _, e := range es {
			if e.Cookie == pipeline.TenantCookie(t2, cookieUnicast) || e.Cookie == pipeline.TenantCookie(t2, cookieBroadcast) {
				t.Errorf("bridge %v: proactive learning entry for a tenant without \"learning\"", pipeline.DPID(d))
			}
		}
	}
	h.mu.Unlock()
	if err := h.DeleteTenant(ctx, "tenant2"); err != nil {
		t.Fatal(err)
	}
	if h.TenantAppRuntime("tenant2") != nil {
		t.Error("runtime survived the tenant's deletion")
	}
	if !h.ownsCookie(pipeline.TenantCookie(t2, vnet.DiscoveryCookie)) {
		t.Error("a deleted tenant's app entries are not owned: reconcile would leave them behind")
	}
}

// TestUnknownAppRefused: an app name outside the registry is refused with
// its JSON path, and nothing is stored.
func TestUnknownAppRefused(t *testing.T) {
	h, _, _ := newTest(t)
	ctx := ctxT(t)
	ts := loadTenants(t, h, "../examples/two-tenants.json")
	ts[0].Apps = []string{"learning", "firewall"}
	_, err := h.ApplyTenants(ctx, ts)
	var ve *topology.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Path != "$.tenants[0].apps[1]" ||
		!strings.Contains(ve.Errors[0].Msg, "learning-reactive") {
		t.Fatalf("apply with app \"firewall\": %v, want one error at $.tenants[0].apps[1] listing the known apps", err)
	}
	if got, _ := h.Tenants(ctx); len(got) != 0 {
		t.Errorf("%d tenants stored after a refused apply", len(got))
	}
	ti, _ := h.Infra(ctx)
	if !slices.Equal(ti.Apps, []string{"discovery", "learning", "learning-reactive"}) {
		t.Errorf("Infra().Apps = %v", ti.Apps)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
