//go:build integration

package reconcile_test

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netrack/openflow/ofp"
	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/hypervisor/addr"
	"github.com/skyvisor/skyvisor/hypervisor/pipeline"
	"github.com/skyvisor/skyvisor/hypervisor/reconcile"
	"github.com/skyvisor/skyvisor/hypervisor/topology"
	"github.com/skyvisor/skyvisor/internal/ovstest"
)

// upRecorder collects SwitchUp events by DPID.
type upRecorder struct {
	mu  sync.Mutex
	sws map[controller.DPID]controller.Switch
	ch  chan struct{}
}

func (r *upRecorder) Name() string { return "skh-up" }

func (r *upRecorder) SwitchUp(_ context.Context, sw controller.Switch) {
	r.mu.Lock()
	r.sws[sw.DPID()] = sw
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *upRecorder) wait(t *testing.T, dpids ...controller.DPID) map[controller.DPID]controller.Switch {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		ok := true
		for _, d := range dpids {
			ok = ok && r.sws[d] != nil
		}
		if ok {
			out := map[controller.DPID]controller.Switch{}
			for _, d := range dpids {
				out[d] = r.sws[d]
			}
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("switches %v did not connect", dpids)
		}
	}
}

// host is one simulated tenant host.
type host struct {
	tenant, name, ns string
	bridge           string
	dpid             controller.DPID
	mac, ip          string
	port             uint32
}

// TestTenantIsolationOnRealOVS builds one site on a real Open vSwitch:
// edge bridges skhe1 and skhe2 joined to gateway skhg by patch ports,
// hosts of two tenants with identical MACs and IPs, the compiled pipeline
// installed through the controller by reconcile.Sync and a proactive L2
// app per tenant translated with pipeline.Translate. It proves that every
// intra-tenant pair pings, that no frame of one tenant reaches the other
// (every host's receive counter, across unicast and broadcast pings of the
// identical addresses), that spoofed sources get nothing through, and that
// reconciling against the real flow table afterwards is empty.
func TestTenantIsolationOnRealOVS(t *testing.T) {
	inst := ovstest.Start(t, "skh-pl")
	sock := filepath.Join(inst.Dir, "run", "skh.sock")
	rec, _ := startController(t, sock)

	const (
		dE1, dE2, dG controller.DPID = 0xe1, 0xe2, 0x91
		uplink                       = 100
	)
	vsctl := func(args ...string) string {
		t.Helper()
		out, err := inst.Vsctl(args...)
		if err != nil {
			t.Fatalf("ovs-vsctl %v: %v", args, err)
		}
		return strings.TrimSpace(out)
	}
	inst.AddBridge(t, "skhe1", "other_config:datapath-id=00000000000000e1")
	inst.AddBridge(t, "skhe2", "other_config:datapath-id=00000000000000e2")
	inst.AddBridge(t, "skhg", "other_config:datapath-id=0000000000000091")
	for i, br := range []string{"skhe1", "skhe2"} {
		up, down := br+"-up", "skhg-"+br[3:]
		vsctl("add-port", br, up, "--", "set", "Interface", up, "type=patch", "options:peer="+down,
			"ofport_request="+strconv.Itoa(uplink),
			"--", "add-port", "skhg", down, "--", "set", "Interface", down, "type=patch", "options:peer="+up,
			"ofport_request="+strconv.Itoa(i+1))
	}
	// Controller first: setting it flushes the flow table.
	for _, br := range []string{"skhe1", "skhe2", "skhg"} {
		vsctl("set-controller", br, "unix:"+sock, "--", "set", "Controller", br, "connection-mode=out-of-band")
	}
	sws := rec.wait(t, dE1, dE2, dG)

	hosts := []*host{
		{tenant: "t1", name: "h1", ns: "skh-1h1", bridge: "skhe1", dpid: dE1, mac: "00:00:00:00:00:01", ip: "10.0.0.1"},
		{tenant: "t1", name: "h2", ns: "skh-1h2", bridge: "skhe1", dpid: dE1, mac: "00:00:00:00:00:02", ip: "10.0.0.2"},
		{tenant: "t1", name: "h3", ns: "skh-1h3", bridge: "skhe2", dpid: dE2, mac: "00:00:00:00:00:03", ip: "10.0.0.3"},
		{tenant: "t2", name: "h1", ns: "skh-2h1", bridge: "skhe1", dpid: dE1, mac: "00:00:00:00:00:01", ip: "10.0.0.1"},
		{tenant: "t2", name: "h2", ns: "skh-2h2", bridge: "skhe2", dpid: dE2, mac: "00:00:00:00:00:02", ip: "10.0.0.2"},
		{tenant: "t2", name: "h3", ns: "skh-2h3", bridge: "skhe2", dpid: dE2, mac: "00:00:00:00:00:03", ip: "10.0.0.3"},
	}
	for _, h := range hosts {
		inst.AddHost(t, h.ns, h.bridge, h.mac, h.ip+"/24", map[string]string{"iface-id": h.tenant + "/" + h.name})
		p, err := strconv.ParseUint(vsctl("get", "Interface", h.ns, "ofport"), 10, 32)
		if err != nil || p == 0 {
			t.Fatalf("ofport of %s: %v", h.ns, err)
		}
		h.port = uint32(p)
	}

	// Desired state: t1 one switch; t2 two switches joined by a virtual link.
	topo1 := &topology.Topology{Tenant: "t1", Switches: []topology.Switch{{Name: "a", DPID: 0xa1}}}
	topo2 := &topology.Topology{Tenant: "t2", Switches: []topology.Switch{{Name: "b", DPID: 0xb1}, {Name: "c", DPID: 0xb2}},
		Links: []topology.Link{{A: topology.Endpoint{Switch: "b", Port: 10}, B: topology.Endpoint{Switch: "c", Port: 10}}}}
	vport := map[string]struct {
		sw   string
		port uint32
	}{"t1/h1": {"a", 1}, "t1/h2": {"a", 2}, "t1/h3": {"a", 3}, "t2/h1": {"b", 1}, "t2/h2": {"b", 2}, "t2/h3": {"c", 1}}
	model := &pipeline.Model{Sites: []pipeline.Site{{Name: "aws",
		Gateway: pipeline.Gateway{DPID: dG, Downlinks: map[controller.DPID]uint32{dE1: 1, dE2: 2}},
		Edges:   []pipeline.EdgeBridge{{DPID: dE1, Uplink: uplink}, {DPID: dE2, Uplink: uplink}}}}}
	for _, h := range hosts {
		vp := vport[h.tenant+"/"+h.name]
		th := topology.Host{Name: h.name, MAC: h.mac, IP: h.ip + "/24", Switch: vp.sw, Port: vp.port, Cloud: "aws"}
		if h.tenant == "t1" {
			topo1.Hosts = append(topo1.Hosts, th)
		} else {
			topo2.Hosts = append(topo2.Hosts, th)
		}
		model.Bindings = append(model.Bindings, pipeline.Binding{Tenant: h.tenant, Host: h.name, Bridge: h.dpid, Port: h.port})
	}
	idx := map[string]addr.HostIndex{"h1": 1, "h2": 2, "h3": 3}
	model.Tenants = []pipeline.Tenant{{ID: 0x0200, Topology: topo1, Hosts: idx}, {ID: 0x0201, Topology: topo2, Hosts: idx}}
	desired, err := pipeline.Compile(model)
	if err != nil {
		t.Fatal(err)
	}

	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	for d, sw := range sws {
		p, err := reconcile.Sync(rctx, sw, desired[d], reconcile.Options{})
		if err != nil {
			t.Fatalf("sync %s: %v", d, err)
		}
		if len(p.Add) != len(desired[d]) || len(p.Delete) != 0 {
			t.Fatalf("first sync of %s: %d adds, %d deletes; want %d adds on an empty table", d, len(p.Add), len(p.Delete), len(desired[d]))
		}
	}

	// The tenants' proactive L2 app, on their virtual switches: per host
	// eth_dst -> output toward it; broadcast -> FLOOD.
	app := func(v *pipeline.View) map[controller.DPID][]pipeline.Entry {
		out := map[controller.DPID][]pipeline.Entry{}
		for _, sw := range v.Switches {
			var fms []*ofp.FlowMod
			for _, h := range v.Hosts {
				port := v.Ports[h.VPort-1]
				out := port.Port
				if port.Switch != sw.Index { // the other switch: via the link port
					for _, pi := range sw.Ports {
						if v.Ports[pi-1].Peer != 0 {
							out = v.Ports[pi-1].Port
						}
					}
				}
				fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 100, Cookie: 0x42, Buffer: ofp.NoBuffer,
					Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(h.MAC)}},
					Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(out))}})
			}
			// Hub fallback: anything else floods (so the destination
			// check of table 5 is what stops unicast to non-hosts).
			fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 0, Cookie: 0x44, Buffer: ofp.NoBuffer,
				Match:        ofp.Match{Type: ofp.MatchTypeXM},
				Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(ofp.PortFlood)))}})
			fms = append(fms, &ofp.FlowMod{Command: ofp.FlowAdd, Priority: 50, Cookie: 0x43, Buffer: ofp.NoBuffer,
				Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: []ofp.XM{pipeline.EthDst(addr.Broadcast)}},
				Instructions: ofp.Instructions{pipeline.Apply(pipeline.Output(uint32(ofp.PortFlood)))}})
			for _, fm := range fms {
				es, err := pipeline.AddEntries(v, sw.DPID, fm)
				if err != nil {
					t.Fatalf("translate on %s: %v", sw.DPID, err)
				}
				if _, err := pipeline.Translate(v, sw.DPID, fm); err != nil {
					t.Fatal(err)
				}
				for _, b := range pipeline.EdgeBridges(v, model.Bindings, sw.DPID) {
					out[b] = append(out[b], es...)
				}
			}
		}
		return out
	}
	for _, tn := range model.Tenants {
		v, err := pipeline.NewView(tn)
		if err != nil {
			t.Fatal(err)
		}
		for d, es := range app(v) {
			for i := range es {
				if err := sws[d].FlowMod(rctx, es[i].FlowMod()); err != nil {
					t.Fatal(err)
				}
			}
			desired[d] = append(desired[d], es...)
		}
	}
	for d, sw := range sws {
		if err := sw.Barrier(rctx); err != nil {
			t.Fatalf("barrier %s after tenant entries: %v", d, err)
		}
	}

	// Reconcile against the real tables must now be empty (normalization).
	for d, sw := range sws {
		fs, err := sw.FlowStats(rctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := reconcile.Diff(desired[d], fs, reconcile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Empty() {
			for _, e := range p.Add {
				t.Errorf("%s: would add %s", d, e.String())
			}
			for _, e := range p.Delete {
				t.Errorf("%s: would delete %s", d, e.String())
			}
			t.Fatalf("%s: reconcile after install is not empty", d)
		}
	}
	dump, err := inst.Ofctl("-O", "OpenFlow13", "dump-flows", "skhe1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"resubmit(,20)", "resubmit(,10)", "clone(", "cookie=0x5359"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump-flows skhe1 lacks %q:\n%s", want, dump)
		}
	}

	hctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 20*time.Second)
	}
	ping := func(h *host, args ...string) error {
		ctx, cancel := hctx()
		defer cancel()
		out, err := ovstest.HostExec(ctx, h.ns, "ping", append([]string{"-q", "-n"}, args...)...)
		if err != nil {
			return fmt.Errorf("%s: ping %v: %v: %s", h.ns, args, err, out)
		}
		return nil
	}
	// 1. Every intra-tenant pair pings (ARP by broadcast -> FLOOD).
	for _, a := range hosts {
		for _, b := range hosts {
			if a.tenant != b.tenant || a == b {
				continue
			}
			var err error
			for try := 0; try < 3; try++ { // first packets may race ARP
				if err = ping(a, "-c", "1", "-W", "2", b.ip); err == nil {
					break
				}
			}
			if err != nil {
				t.Errorf("%s/%s -> %s/%s: %v", a.tenant, a.name, b.tenant, b.name, err)
			}
		}
	}
	if t.Failed() {
		dumpAll(t, inst)
		t.FailNow()
	}

	// Freeze ARP so that nothing but the test's own frames moves counters.
	for _, h := range hosts {
		for _, o := range hosts {
			if o.tenant == h.tenant && o != h {
				hostRun(t, h.ns, "ip", "neigh", "replace", o.ip, "lladdr", o.mac, "dev", "eth0", "nud", "permanent")
			}
		}
	}
	rx := func() map[*host]uint64 {
		m := map[*host]uint64{}
		for _, h := range hosts {
			v, err := strconv.ParseUint(strings.TrimSpace(hostRun(t, h.ns, "cat", "/sys/class/net/eth0/statistics/rx_packets")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			m[h] = v
		}
		return m
	}
	// 2. Unicast and broadcast pings of the identical addresses reach only
	// the sender's tenant.
	for _, src := range []*host{hosts[0], hosts[3]} {
		caps := map[*host]func() []string{}
		for _, h := range hosts {
			if h != src {
				caps[h] = capture(t, h.ns)
			}
		}
		before := rx()
		if err := ping(src, "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"); err != nil {
			t.Error(err)
		}
		ctx, cancel := hctx()
		ovstest.HostExec(ctx, src.ns, "ping", "-q", "-b", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.255") // replies are not expected (icmp_echo_ignore_broadcasts)
		cancel()
		after := rx()
		for h, stop := range caps {
			if stop == nil {
				continue
			}
			lines := stop()
			switch {
			case h.tenant != src.tenant && len(lines) != 0:
				t.Errorf("tcpdump in %s/%s saw %d frames during pings of %s/%s: %q", h.tenant, h.name, len(lines), src.tenant, src.name, lines)
			case h.tenant == src.tenant && h.ip == "10.0.0.2" && len(lines) < 5:
				t.Errorf("tcpdump in %s/%s saw %d frames from %s/%s, want >= 5:\n%s", h.tenant, h.name, len(lines), src.tenant, src.name, strings.Join(lines, "\n"))
			}
		}
		for _, h := range hosts {
			got := after[h] - before[h]
			switch {
			case h == src:
			case h.tenant != src.tenant && got != 0:
				t.Errorf("pings from %s/%s: %d frames reached %s/%s of the other tenant", src.tenant, src.name, got, h.tenant, h.name)
			case h.tenant == src.tenant && h.ip == "10.0.0.2" && got < 5:
				t.Errorf("pings from %s/%s: %s/%s received %d frames, want >= 5 (3 unicast + 2 broadcast)", src.tenant, src.name, h.tenant, h.name, got)
			case h.tenant == src.tenant && got < 2:
				t.Errorf("broadcast from %s/%s: %s/%s received %d frames, want >= 2", src.tenant, src.name, h.tenant, h.name, got)
			}
		}
	}

	// 2a. Unicast to a MAC that is none of the tenant's hosts is dropped at
	// ingress (table 5), although the tenant's app would flood it.
	hostRun(t, hosts[0].ns, "ip", "neigh", "replace", "10.0.0.99", "lladdr", "00:00:00:00:00:99", "dev", "eth0", "nud", "permanent")
	{
		before := rx()
		ctx, cancel := hctx()
		_, _ = ovstest.HostExec(ctx, hosts[0].ns, "ping", "-q", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.99")
		cancel()
		after := rx()
		for _, h := range hosts[1:] {
			if after[h] != before[h] {
				t.Errorf("unicast to a non-host MAC: %d frames reached %s/%s", after[h]-before[h], h.tenant, h.name)
			}
		}
	}

	// 2b. A tenant app's packet-out (broadcast from t1/h1's port, FLOOD)
	// reaches t1's other hosts only.
	{
		v, err := pipeline.NewView(model.Tenants[0])
		if err != nil {
			t.Fatal(err)
		}
		data := append(append(addr.Broadcast.HardwareAddr(), addr.MustParseMAC(hosts[0].mac).HardwareAddr()...), 0x88, 0xb5)
		data = append(data, make([]byte, 46)...)
		br, po, err := pipeline.TranslatePacketOut(v, model.Bindings, 0xa1, &ofp.PacketOut{Buffer: ofp.NoBuffer, InPort: 1,
			Actions: ofp.Actions{pipeline.Output(uint32(ofp.PortFlood))}, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		before := rx()
		if err := sws[br].PacketOut(rctx, po); err != nil {
			t.Fatal(err)
		}
		if err := sws[br].Barrier(rctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for after := rx(); ; after = rx() {
			if after[hosts[1]]-before[hosts[1]] >= 1 && after[hosts[2]]-before[hosts[2]] >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("packet-out FLOOD: t1/h2 got %d, t1/h3 got %d frames; want 1 each", after[hosts[1]]-before[hosts[1]], after[hosts[2]]-before[hosts[2]])
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		after := rx()
		for _, h := range []*host{hosts[0], hosts[3], hosts[4], hosts[5]} {
			if after[h] != before[h] {
				t.Errorf("packet-out FLOOD from t1/h1's port reached %s/%s", h.tenant, h.name)
			}
		}
	}

	// 3. Spoofed sources get nothing through: another host's MAC (which is
	// also the other tenant's host's MAC) and a fabric MAC.
	spoofer := hosts[0]
	for _, mac := range []string{"00:00:00:00:00:02", "02:00:00:00:00:01", "02:01:00:00:00:02"} {
		hostRun(t, spoofer.ns, "ip", "link", "set", "eth0", "address", mac)
		before := rx()
		ctx, cancel := hctx()
		ovstest.HostExec(ctx, spoofer.ns, "ping", "-q", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.2")
		ovstest.HostExec(ctx, spoofer.ns, "ping", "-q", "-b", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.255")
		cancel()
		after := rx()
		for _, h := range hosts {
			if h != spoofer && after[h] != before[h] {
				t.Errorf("spoofed source %s: %d frames reached %s/%s", mac, after[h]-before[h], h.tenant, h.name)
			}
		}
	}
	hostRun(t, spoofer.ns, "ip", "link", "set", "eth0", "address", spoofer.mac)

	// 4. Reconcile repairs drift and is idempotent: delete one owned
	// entry, add a stray owned one and a foreign one; Sync restores the
	// first, removes the stray, keeps the foreign; a second Sync is empty.
	if out, err := inst.Ofctl("-O", "OpenFlow13", "--strict", "del-flows", "skhe1", "table=0,priority=1000,dl_type=0x88cc"); err != nil {
		t.Fatalf("del-flows: %v: %s", err, out)
	}
	if out, err := inst.Ofctl("-O", "OpenFlow13", "add-flow", "skhe1", "table=0,priority=5,cookie=0x5359000000000007,dl_type=0x0806,actions=drop"); err != nil {
		t.Fatalf("add-flow: %v: %s", err, out)
	}
	if out, err := inst.Ofctl("-O", "OpenFlow13", "add-flow", "skhe1", "table=0,priority=6,cookie=0x77,dl_type=0x0806,actions=drop"); err != nil {
		t.Fatalf("add-flow: %v: %s", err, out)
	}
	p, err := reconcile.Sync(rctx, sws[dE1], desired[dE1], reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Add) != 1 || len(p.Delete) != 1 || p.Delete[0].Cookie != 0x5359000000000007 {
		t.Errorf("repair plan: %d adds, %d deletes (%v); want the LLDP entry added and the stray deleted", len(p.Add), len(p.Delete), p.Delete)
	}
	p, err = reconcile.Sync(rctx, sws[dE1], desired[dE1], reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		t.Errorf("second sync not empty: %d adds, %d deletes", len(p.Add), len(p.Delete))
	}
	dump, _ = inst.Ofctl("-O", "OpenFlow13", "dump-flows", "skhe1", "table=0")
	if !strings.Contains(dump, "cookie=0x77") {
		t.Errorf("foreign entry (cookie 0x77) was removed:\n%s", dump)
	}
	if t.Failed() {
		dumpAll(t, inst)
	}
}

func hostRun(t *testing.T, ns string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := ovstest.HostExec(ctx, ns, args[0], args[1:]...)
	if err != nil {
		t.Fatalf("%s: %v: %v: %s", ns, args, err, out)
	}
	return out
}

func dumpAll(t *testing.T, inst *ovstest.Instance) {
	for _, br := range []string{"skhe1", "skhe2", "skhg"} {
		out, _ := inst.Ofctl("-O", "OpenFlow13", "dump-flows", br)
		t.Logf("%s:\n%s", br, out)
	}
}

func execCommand(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// capture starts tcpdump on eth0 of host namespace ns and returns a
// function that stops it (SIGINT to the tcpdump process this test started)
// and returns the frames it printed, one line each. It returns nil when
// tcpdump is not installed (the receive counters still prove isolation).
func capture(t *testing.T, ns string) func() []string {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Logf("tcpdump not installed: checking receive counters only")
		return nil
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", "eth0", "-n", "-e", "-l", "-U", "-p")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "" {
				continue // tcpdump ends its output with an empty line on SIGINT
			}
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "listening on") {
				close(ready)
				signalled = true
			}
		}
		if !signalled {
			close(ready)
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump in %s did not start listening", ns)
	}
	stopped := false
	stop := func() []string {
		if !stopped {
			stopped = true
			time.Sleep(300 * time.Millisecond) // let late replies be printed
			_ = cmd.Process.Signal(syscall.SIGINT)
			<-done
			_ = cmd.Wait()
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
	t.Cleanup(func() { stop() })
	return stop
}
