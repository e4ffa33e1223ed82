//go:build integration

package reconcile_test

import (
	"context"
	"fmt"
	"github.com/skyvisor/skyvisor/controller/controllertest"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/internal/ovstest"
	"github.com/skyvisor/skyvisor/tunnels"
)

// TestTwoSitesOverVXLAN runs the compiled pipeline on two real OVS
// instances (two sites), each with one edge bridge and a gateway, the
// gateways joined by a userspace VXLAN tunnel (options:key=flow) over a
// veth "WAN". Two tenants with identical MACs and IPs have one host at each
// site. It proves cross-site pings within each tenant (ARP broadcasts
// cross as group-marked unicast copies), no cross-tenant frame, and the
// gateway's tunnel key check: when gateway 1 is made to send tenant t1's
// frames with t2's key, gateway 2 drops them; reconcile repairs the entry
// and traffic flows again.
func TestTwoSitesOverVXLAN(t *testing.T) {
	insts := [2]*ovstest.Instance{ovstest.Start(t, "skh-s1"), ovstest.Start(t, "skh-s2")}
	sock := filepath.Join(insts[0].Dir, "run", "skh.sock")
	// vswitchd accepts unix controller targets only in its OVS_RUNDIR: a
	// symlink there points at the one controller socket.
	link := filepath.Join(insts[1].Dir, "run", "skh.sock")
	if err := os.Symlink(sock, link); err != nil {
		t.Fatal(err)
	}
	rec, stopController := startController(t, sock)

	sites := []string{"aws", "gcp"}
	const uplink, downlink, tunPort = 100, 1, 32768
	underlay := []string{"172.31.9.1", "172.31.9.2"}
	if out, err := runCmd("ip", "link", "add", "skhwan", "netns", insts[0].NetNS, "type", "veth", "peer", "name", "skhwan", "netns", insts[1].NetNS); err != nil {
		t.Fatalf("wan veth: %v: %s", err, out)
	}
	model := &pipeline.Model{Tree: tunnels.Plan{Sites: sites, Tunnels: []tunnels.Tunnel{{A: "aws", B: "gcp", Cost: 1}}}}
	edge := [2]controller.DPID{0xe1, 0xe2}
	gw := [2]controller.DPID{0x91, 0x92}
	for i, inst := range insts {
		vsctl := func(args ...string) string {
			t.Helper()
			out, err := inst.Vsctl(args...)
			if err != nil {
				t.Fatalf("%s: ovs-vsctl %v: %v", inst.Name, args, err)
			}
			return strings.TrimSpace(out)
		}
		inst.AddBridge(t, "skhphy")
		if out, err := inst.Ofctl("-O", "OpenFlow13", "add-flow", "skhphy", "actions=NORMAL"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		vsctl("add-port", "skhphy", "skhwan")
		for _, args := range [][]string{{"ip", "link", "set", "skhwan", "up"}, {"ip", "addr", "add", underlay[i] + "/24", "dev", "skhphy"},
			{"ip", "link", "set", "skhphy", "up"}} {
			ectx, ecancel := context.WithTimeout(context.Background(), 20*time.Second)
			out, err := inst.Exec(ectx, args[0], args[1:]...)
			ecancel()
			if err != nil {
				t.Fatalf("%s: %v: %v: %s", inst.Name, args, err, out)
			}
		}
		inst.AddBridge(t, "skhe", fmt.Sprintf("other_config:datapath-id=%016x", uint64(edge[i])))
		inst.AddBridge(t, "skhg", fmt.Sprintf("other_config:datapath-id=%016x", uint64(gw[i])))
		vsctl("add-port", "skhe", "skhe-up", "--", "set", "Interface", "skhe-up", "type=patch", "options:peer=skhg-e",
			"ofport_request="+strconv.Itoa(uplink),
			"--", "add-port", "skhg", "skhg-e", "--", "set", "Interface", "skhg-e", "type=patch", "options:peer=skhe-up",
			"ofport_request="+strconv.Itoa(downlink))
		peer := sites[1-i]
		tp := tunnels.PortName(peer)
		vsctl("add-port", "skhg", tp, "--", "set", "Interface", tp, "type=vxlan", "options:remote_ip="+underlay[1-i],
			"options:key=flow", "ofport_request="+strconv.Itoa(tunPort))
		for _, br := range []string{"skhe", "skhg"} {
			vsctl("set-controller", br, "unix:"+filepath.Join(inst.Dir, "run", "skh.sock"), "--", "set", "Controller", br, "connection-mode=out-of-band")
		}
		model.Sites = append(model.Sites, pipeline.Site{Name: sites[i],
			Gateway: pipeline.Gateway{DPID: gw[i], Downlinks: map[controller.DPID]uint32{edge[i]: downlink}, Tunnels: map[string]uint32{peer: tunPort}},
			Edges:   []pipeline.EdgeBridge{{DPID: edge[i], Uplink: uplink}}})
	}
	sws := rec.wait(t, edge[0], edge[1], gw[0], gw[1])

	hosts := []*host{
		{tenant: "t1", name: "h1", ns: "skh-x1h1", dpid: edge[0], mac: "00:00:00:00:00:01", ip: "10.0.0.1"},
		{tenant: "t1", name: "h2", ns: "skh-x1h2", dpid: edge[1], mac: "00:00:00:00:00:02", ip: "10.0.0.2"},
		{tenant: "t2", name: "h1", ns: "skh-x2h1", dpid: edge[0], mac: "00:00:00:00:00:01", ip: "10.0.0.1"},
		{tenant: "t2", name: "h2", ns: "skh-x2h2", dpid: edge[1], mac: "00:00:00:00:00:02", ip: "10.0.0.2"},
	}
	topos := map[string]*topology.Topology{
		"t1": {Tenant: "t1", Switches: []topology.Switch{{Name: "s", DPID: 0xa1}}},
		"t2": {Tenant: "t2", Switches: []topology.Switch{{Name: "s", DPID: 0xa2}}},
	}
	for _, h := range hosts {
		inst := insts[0]
		if h.dpid == edge[1] {
			inst = insts[1]
		}
		inst.AddHost(t, h.ns, "skhe", h.mac, h.ip+"/24", map[string]string{"iface-id": h.tenant + "/" + h.name})
		out, err := inst.Vsctl("get", "Interface", h.ns, "ofport")
		p, perr := strconv.ParseUint(strings.TrimSpace(out), 10, 32)
		if err != nil || perr != nil || p == 0 {
			t.Fatalf("ofport of %s: %v %v", h.ns, err, perr)
		}
		h.port = uint32(p)
		vp := uint32(1)
		if h.name == "h2" {
			vp = 2
		}
		topos[h.tenant].Hosts = append(topos[h.tenant].Hosts, topology.Host{Name: h.name, MAC: h.mac, IP: h.ip + "/24", Switch: "s", Port: vp, Cloud: "aws"})
		model.Bindings = append(model.Bindings, pipeline.Binding{Tenant: h.tenant, Host: h.name, Bridge: h.dpid, Port: h.port})
	}
	idx := map[string]addr.HostIndex{"h1": 1, "h2": 2}
	model.Tenants = []pipeline.Tenant{{ID: 0x0200, Topology: topos["t1"], Hosts: idx}, {ID: 0x0201, Topology: topos["t2"], Hosts: idx}}
	desired, err := pipeline.Compile(model)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	// Tenant L2 app: eth_dst=host -> its port; broadcast -> FLOOD.
	for _, tn := range model.Tenants {
		v, err := pipeline.NewView(tn)
		if err != nil {
			t.Fatal(err)
		}
		sw := v.Switches[0]
		var fms []*ofp.FlowMod
		for _, h := range v.Hosts {
			fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 100, Buffer: ofp.NoBuffer,
				Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(h.MAC)}},
				Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(v.Ports[h.VPort-1].Port))}})
		}
		fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 50, Buffer: ofp.NoBuffer,
			Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(addr.Broadcast)}},
			Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(ofp.PortFlood)))}})
		for _, fm := range fms {
			es, err := pipeline.AddEntries(v, sw.DPID, fm)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range pipeline.EdgeBridges(v, model.Bindings, sw.DPID) {
				desired[b] = append(desired[b], es...)
			}
		}
	}
	for d, sw := range sws {
		if _, err := reconcile.Sync(rctx, sw, desired[d], reconcile.Options{}); err != nil {
			t.Fatalf("sync %s: %v", d, err)
		}
		p, err := reconcile.Sync(rctx, sw, desired[d], reconcile.Options{})
		if err != nil || !p.Empty() {
			t.Fatalf("second sync of %s: %d adds, %d deletes, %v", d, len(p.Add), len(p.Delete), err)
		}
	}
	// Warm the underlay neighbour caches (recipes: the first tunnelled
	// packet is otherwise lost while OVS resolves the next hop).
	for i, inst := range insts {
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = inst.Exec(wctx, "ping", "-c", "1", "-W", "1", underlay[1-i])
		wcancel()
	}

	pingOK := func(a, b *host) error {
		var err error
		for try := 0; try < 3; try++ {
			pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
			var out string
			out, err = ovstest.HostExec(pctx, a.ns, "ping", "-q", "-n", "-c", "1", "-W", "2", b.ip)
			pcancel()
			if err == nil {
				return nil
			}
			err = fmt.Errorf("%v: %s", err, out)
		}
		return err
	}
	for _, pair := range [][2]int{{0, 1}, {1, 0}, {2, 3}, {3, 2}} {
		if err := pingOK(hosts[pair[0]], hosts[pair[1]]); err != nil {
			t.Errorf("%s/%s -> %s/%s across the tunnel: %v", hosts[pair[0]].tenant, hosts[pair[0]].name,
				hosts[pair[1]].tenant, hosts[pair[1]].name, err)
		}
	}
	if t.Failed() {
		for i, inst := range insts {
			for _, br := range []string{"skhe", "skhg"} {
				out, _ := inst.Ofctl("-O", "OpenFlow13", "dump-flows", br)
				t.Logf("site %d %s:\n%s", i+1, br, out)
			}
		}
		t.FailNow()
	}
	for _, h := range hosts {
		for _, o := range hosts {
			if o.tenant == h.tenant && o != h {
				hostRun(t, h.ns, "ip", "neigh", "replace", o.ip, "lladdr", o.mac, "dev", "eth0", "nud", "permanent")
			}
		}
	}
	rx := func(h *host) uint64 {
		v, err := strconv.ParseUint(strings.TrimSpace(hostRun(t, h.ns, "cat", "/sys/class/net/eth0/statistics/rx_packets")), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// t1/h1 pings 10.0.0.2 (unicast and broadcast): t1/h2 receives, t2/h2
	// (same MAC and IP, same remote site) receives nothing.
	b1, b2 := rx(hosts[1]), rx(hosts[3])
	if err := pingOK(hosts[0], hosts[1]); err != nil {
		t.Error(err)
	}
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, _ = ovstest.HostExec(bctx, hosts[0].ns, "ping", "-q", "-b", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.255")
	bcancel()
	if got := rx(hosts[1]) - b1; got < 3 {
		t.Errorf("t1/h2 received %d frames from t1/h1 across the tunnel, want >= 3", got)
	}
	if got := rx(hosts[3]) - b2; got != 0 {
		t.Errorf("t2/h2 received %d frames of t1", got)
	}

	// Tunnel key check: gateway 1 sends t1's frames to t1/h2 with t2's key.
	if out, err := insts[0].Ofctl("-O", "OpenFlow13", "--strict", "mod-flows", "skhg",
		"table=1,priority=100,dl_dst=02:00:00:00:00:02/ff:ff:7f:ff:ff:ff,actions=set_field:0x201->tun_id,output:32768"); err != nil {
		t.Fatalf("mod-flows: %v: %s", err, out)
	}
	b1, b2 = rx(hosts[1]), rx(hosts[3])
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, perr := ovstest.HostExec(pctx, hosts[0].ns, "ping", "-q", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.2")
	pcancel()
	if perr == nil {
		t.Error("ping with a mismatched tunnel key got through")
	}
	if got1, got2 := rx(hosts[1])-b1, rx(hosts[3])-b2; got1 != 0 || got2 != 0 {
		t.Errorf("mismatched tunnel key: t1/h2 got %d, t2/h2 got %d frames; want 0 and 0", got1, got2)
	}
	p, err := reconcile.Sync(rctx, sws[gw[0]], desired[gw[0]], reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Add) != 1 || len(p.Delete) != 0 {
		t.Errorf("repair of gateway 1: %d adds, %d deletes; want 1 add", len(p.Add), len(p.Delete))
	}
	if err := pingOK(hosts[0], hosts[1]); err != nil {
		t.Errorf("after repair: %v", err)
	}

	// A Skyvisor restart never flushes a switch: with the controller gone,
	// traffic keeps flowing (fail_mode=secure keeps the flow tables); the
	// new controller's reconcile finds nothing to do.
	stopController()
	if err := pingOK(hosts[2], hosts[3]); err != nil {
		t.Errorf("while the controller is down: %v", err)
	}
	rec2, _ := startController(t, sock)
	sws2 := rec2.wait(t, edge[0], edge[1], gw[0], gw[1])
	for d, sw := range sws2 {
		p, err := reconcile.Sync(rctx, sw, desired[d], reconcile.Options{})
		if err != nil {
			t.Fatalf("sync %s after restart: %v", d, err)
		}
		if !p.Empty() {
			t.Errorf("%s after a controller restart: %d adds, %d deletes; want none", d, len(p.Add), len(p.Delete))
		}
	}
	if err := pingOK(hosts[0], hosts[1]); err != nil {
		t.Errorf("after the controller restart: %v", err)
	}
}

// startController serves a controller on the unix socket sock and returns
// its SwitchUp recorder and an idempotent stop function (also run at
// cleanup) that waits for Serve to return.
func startController(t *testing.T, sock string) (*upRecorder, func()) {
	t.Helper()
	rec := &upRecorder{sws: map[controller.DPID]controller.Switch{}, ch: make(chan struct{}, 1)}
	_, stop := controllertest.Start(t, controller.Config{Listen: "unix:" + sock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, rec)
	return rec, stop
}

func runCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := execCommand(ctx, args...)
	return out, err
}
