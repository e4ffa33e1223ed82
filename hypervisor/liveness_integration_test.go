//go:build integration

package hypervisor_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/hypervisor"
	"github.com/skyvisor/skyvisor/hypervisor/infra"
	"github.com/skyvisor/skyvisor/testbed/lab"
	"github.com/skyvisor/skyvisor/tunnels"
)

// startSkfLab is startSkrLab with prefix "skf<pid%100><tag>" and the
// tunnel costs aws~gcp 10, gcp~azure 20, aws~azure 50: the MST is
// aws~gcp + gcp~azure and aws~azure is the only detour.
func startSkfLab(t *testing.T, tag, tt string) *skrLab {
	t.Helper()
	return startLab3(t, "skf", tag, tt, []infra.Cost{{A: "aws", B: "gcp", RTTMS: 10}, {A: "gcp", B: "azure", RTTMS: 20}, {A: "aws", B: "azure", RTTMS: 50}})
}

// bfdState reads bfd_status:state of site's tunnel port toward peer with
// ovs-vsctl (the database as ovs-vswitchd wrote it).
func bfdState(t *testing.T, dir, site, peer string) string {
	t.Helper()
	c, err := lab.SiteCommand(context.Background(), dir, site, "ovs-vsctl", "--if-exists", "get", "Interface", tunnels.PortName(peer), "bfd_status:state")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := c.Output()
	return strings.Trim(strings.TrimSpace(string(out)), `"`)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// TestTunnelLivenessBFD: on the real lab (userspace OVS 3.1), for each
// tunnel type, every tree tunnel runs BFD (500/500 ms) and comes up; the
// WAN path between gcp and azure (a tree tunnel; the detour aws~azure
// costs more) is cut (lab.CutWAN, an nftables drop in the WAN
// namespace): BFD reports the tunnel down at both ends, Skyvisor replans
// with exactly one tunnel out (gcp~azure) and one in (aws~azure), and the
// hosts of gcp and azure ping again through aws within a few seconds.
// The failed pair's ports stay as a BFD probe; when the path is restored
// the pair is readmitted (one in, one out) and the tree is the MST again,
// with pings on. Times from the cut (detection, repair, first ping back)
// are logged with the load.
func TestTunnelLivenessBFD(t *testing.T) {
	types := []string{"vxlan", "gre", "geneve"}
	if tt := os.Getenv("SKF_TUNNEL_TYPES"); tt != "" {
		types = strings.Split(tt, ",")
	}
	for _, tt := range types {
		t.Run(tt, func(t *testing.T) {
			l := startSkfLab(t, tt[:1], tt)
			h := l.inst.h
			mst := h.Plan()
			if !mst.Has("aws", "gcp") || !mst.Has("gcp", "azure") || mst.Len() != 2 {
				t.Fatalf("plan %v, want aws~gcp and gcp~azure", mst)
			}
			// Every tree port runs BFD with the defaults and comes up.
			for _, s := range []string{"aws", "gcp", "azure"} {
				for _, peer := range mst.Peers(s) {
					bfd := siteCmd(t, l.dir, s, "ovs-vsctl", "get", "Interface", tunnels.PortName(peer), "bfd")
					for _, kv := range []string{`enable="true"`, `min_rx="500"`, `min_tx="500"`, `mult="3"`} {
						if !strings.Contains(bfd, kv) {
							t.Fatalf("%s %s bfd %s: no %s", s, tunnels.PortName(peer), bfd, kv)
						}
					}
				}
			}
			t0 := time.Now()
			poll(t, "BFD up on the 4 tree ports", 30*time.Second, func() bool {
				n := 0
				for _, st := range h.TunnelStatuses() {
					if st.BFD.Up() && mst.Has(st.Site, st.Peer) {
						n++
					}
				}
				return n == 4
			})
			t.Logf("%s: BFD up on every tree port %v after Skyvisor connected", tt, time.Since(t0).Round(time.Millisecond))
			if s := bfdState(t, l.dir, "gcp", "azure"); s != "up" {
				t.Fatalf("gcp tun-azure bfd_status:state %q", s)
			}
			hs := threeHosts(1)
			l.tenant(t, "ta", hs)
			l.allPairs(t, hs)
			aws, gcp, azure := hs[0], hs[1], hs[2]
			pairs := [][2]skrHost{{gcp, azure}, {azure, gcp}, {aws, azure}, {aws, gcp}}

			events, stop := h.LivenessEvents()
			defer stop()
			bg := startPing(t, l.dir, gcp.lab, azure.ip, 1500) // 100/s for 15 s
			time.Sleep(time.Second)
			load := loadavg()
			cut := time.Now()
			if err := lab.CutWAN(context.Background(), l.dir, "gcp", "azure"); err != nil {
				t.Fatal(err)
			}
			var ev hypervisor.TunnelLivenessEvent
			select {
			case ev = <-events:
			case <-time.After(20 * time.Second):
				t.Fatalf("no liveness decision 20 s after the cut; statuses %+v", h.TunnelStatuses())
			}
			if !ev.Down || ev.Pair != tunnels.MakePair("gcp", "azure") || ev.Err != nil {
				t.Fatalf("decision %+v, want gcp~azure down", ev)
			}
			if len(ev.Diff.Add) != 1 || len(ev.Diff.Remove) != 1 || ev.Diff.Add[0].Pair() != tunnels.MakePair("aws", "azure") ||
				ev.Diff.Remove[0].Pair() != tunnels.MakePair("gcp", "azure") {
				t.Fatalf("tree change %+v, want exactly aws~azure in and gcp~azure out", ev.Diff)
			}
			restored := reconverge(t, l.dir, cut, 20*time.Second, pairs)
			for _, s := range [][2]string{{"gcp", "azure"}, {"azure", "gcp"}} {
				if st := bfdState(t, l.dir, s[0], s[1]); st != "down" {
					t.Errorf("%s tun-%s (probe) bfd_status:state %q, want down", s[0], s[1], st)
				}
			}
			poll(t, "BFD up on the detour", 20*time.Second, func() bool {
				return bfdState(t, l.dir, "aws", "azure") == "up" && bfdState(t, l.dir, "azure", "aws") == "up"
			})
			sent, seqs := bg.wait(t)
			t.Logf("%s: cut gcp~azure at load %s: declared down %v after the cut (repair took %v), pings across all sites again %v after the cut; "+
				"continuous gcp->azure ping at 100/s: %d of %d answered, longest gap %d packets",
				tt, load, ev.At.Sub(cut).Round(time.Millisecond), ev.Took.Round(time.Millisecond), restored.Round(time.Millisecond),
				len(seqs), sent, longestGap(seqs))
			l.allPairs(t, hs)

			// The path comes back: readmitted, the detour goes.
			bg = startPing(t, l.dir, gcp.lab, azure.ip, 1000) // across the readmission
			back := time.Now()
			if err := lab.RestoreWAN(context.Background(), l.dir, "gcp", "azure"); err != nil {
				t.Fatal(err)
			}
			select {
			case ev = <-events:
			case <-time.After(30 * time.Second):
				t.Fatalf("not readmitted 30 s after the restore; statuses %+v", h.TunnelStatuses())
			}
			if ev.Down || ev.Pair != tunnels.MakePair("gcp", "azure") || ev.Err != nil || len(ev.Diff.Add) != 1 || len(ev.Diff.Remove) != 1 ||
				ev.Diff.Remove[0].Pair() != tunnels.MakePair("aws", "azure") {
				t.Fatalf("readmission %+v, want gcp~azure in and aws~azure out", ev)
			}
			if p := h.Plan(); !slicesEqualTunnels(p.Tunnels, mst.Tunnels) {
				t.Fatalf("plan %v after readmission, want the MST %v", p, mst)
			}
			again := reconverge(t, l.dir, ev.At, 20*time.Second, pairs)
			sent, seqs = bg.wait(t)
			t.Logf("%s: path restored: readmitted %v later (BFD up again, then UpAfter 2 s; exchange took %v), pings %v after the readmission; "+
				"continuous gcp->azure ping across it: %d of %d answered, longest gap %d packets (load %s)",
				tt, ev.At.Sub(back).Round(time.Millisecond), ev.Took.Round(time.Millisecond), again.Round(time.Millisecond), len(seqs), sent, longestGap(seqs), loadavg())
			poll(t, "detour ports gone", 10*time.Second, func() bool {
				return siteCmd(t, l.dir, "azure", "ovs-vsctl", "--bare", "--columns=name", "find", "Interface", "name="+tunnels.PortName("aws")) == ""
			})
			l.allPairs(t, hs)
			if tt == "vxlan" {
				removeSiteOnLab(t, l)
			}
		})
	}
}

// removeSiteOnLab: RemoveSite on real OVS. azure is refused while tenant
// ta has a host there; once ta is deleted azure goes: the tree is aws~gcp
// alone, azure's gateway has no tunnel port left and gcp none toward
// azure. AddSite brings it back on its cheapest pair (gcp~azure), whose
// BFD session comes up.
func removeSiteOnLab(t *testing.T, l *skrLab) {
	t.Helper()
	ctx := context.Background()
	h := l.inst.h
	if err := h.RemoveSite(ctx, "azure"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("RemoveSite azure with a host of ta there: %v", err)
	}
	if err := h.DeleteTenant(ctx, "ta"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := h.RemoveSite(ctx, "azure"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	if p := h.Plan(); p.Len() != 1 || !p.Has("aws", "gcp") {
		t.Fatalf("plan after RemoveSite azure: %v", p)
	}
	if out := siteCmd(t, l.dir, "azure", "ovs-vsctl", "--bare", "--columns=name", "find", "Interface", "type=vxlan"); out != "" {
		t.Fatalf("azure gateway still has tunnel ports %q", out)
	}
	for _, s := range []string{"aws", "gcp"} {
		if out := siteCmd(t, l.dir, s, "ovs-vsctl", "--bare", "--columns=name", "find", "Interface", "name="+tunnels.PortName("azure")); out != "" {
			t.Fatalf("%s still has %q", s, out)
		}
	}
	var sws []infra.Switch
	for _, sw := range l.inf.Switches {
		if sw.Site == "azure" {
			sws = append(sws, sw)
		}
	}
	t1 := time.Now()
	if err := h.AddSite(ctx, *l.inf.Site("azure"), sws, []infra.Cost{{A: "gcp", B: "azure", RTTMS: 20}, {A: "aws", B: "azure", RTTMS: 50}}); err != nil {
		t.Fatal(err)
	}
	if p := h.Plan(); p.Len() != 2 || !p.Has("gcp", "azure") {
		t.Fatalf("plan after AddSite azure: %v", p)
	}
	poll(t, "BFD up on gcp~azure after AddSite", 20*time.Second, func() bool {
		return bfdState(t, l.dir, "gcp", "azure") == "up" && bfdState(t, l.dir, "azure", "gcp") == "up"
	})
	t.Logf("RemoveSite azure took %v; AddSite azure: BFD up on its tunnel %v after the call (load %s)",
		took.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond), loadavg())
}

func slicesEqualTunnels(a, b []tunnels.Tunnel) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Pair() != b[i].Pair() {
			return false
		}
	}
	return true
}
