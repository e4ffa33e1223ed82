#!/usr/bin/python3
"""skyvisor_clouds.py - the Skyvisor multi-cloud shape in Mininet 2.3.0.

N clouds; each cloud has V "VM" switches and one gateway switch; every VM
switch links to its cloud's gateway; every gateway links to one WAN node.
Each VM switch has H hosts. All switches are OVSSwitch with the userspace
datapath (datapath='user'), OpenFlow13, fail-mode secure, and a
RemoteController (Skyvisor or any OpenFlow 1.3 controller).

    sudo /usr/bin/python3 testbed/mininet/skyvisor_clouds.py \\
        --clouds 3 --vms 2 --hosts 1 --controller-ip 127.0.0.1 --controller-port 6653 \\
        [--bw 100] [--relay-delay 10 --skylab bin/skylab] [--cli] [--ping] \\
        [--links-out FILE] [--hold-file FILE]

Names (prefix P, default "skm"; cloud i, VM j, host k, all 1-based):
  gateway switch  P<i>g        DPID i<<8          (same scheme as testbed/lab)
  VM switch       P<i>v<j>     DPID i<<8 | j
  host            P<i>v<j>h<k> IP 10.<i>.<j>.<k>/8, MAC 02:00:00:<i>:<j>:<k>
  WAN node        P<wan>       a host between the gateways
Gateway ports: port j leads to VM switch j; port V+1 leads to the WAN.
VM switch ports: port 1 leads to the gateway; hosts follow.

The WAN node is a Linux bridge (group_fwd_mask set so LLDP crosses it), or,
with --relay-delay MS, the Skyvisor WAN relay (`skylab wan-relay`), which
delays every frame by MS one way: this kernel has no sch_netem, so TCLink's
delay= does not work (tc: "Specified qdisc kind is unknown"). --bw limits
each gateway<->WAN link with TCLink (htb), which works.

Gotchas (see docs/lab.md): Mininet drives the SYSTEM Open vSwitch (root
namespace); `mn -c` deletes every bridge of it, so this script cleans up with
net.stop() only. Hosts need TX checksum offload off on the userspace datapath
(done here) or TCP fails.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from functools import partial

from mininet.cli import CLI
from mininet.link import TCLink
from mininet.log import info, setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController
from mininet.topo import Topo


class SkyvisorClouds(Topo):
    """N clouds x V VM switches x H hosts, gateways joined by a WAN node."""

    def build(self, prefix='skm', clouds=3, vms=2, hosts=1, bw=None):
        p = prefix
        wan = self.addHost('%swan' % p, ip=None)
        for i in range(1, clouds + 1):
            gw = self.addSwitch('%s%dg' % (p, i), dpid='%016x' % (i << 8))
            for j in range(1, vms + 1):
                sw = self.addSwitch('%s%dv%d' % (p, i, j), dpid='%016x' % (i << 8 | j))
                self.addLink(sw, gw, port1=1, port2=j)
                for k in range(1, hosts + 1):
                    h = self.addHost('%s%dv%dh%d' % (p, i, j, k),
                                     ip='10.%d.%d.%d/8' % (i, j, k),
                                     mac='02:00:00:%02x:%02x:%02x' % (i, j, k))
                    self.addLink(h, sw, port2=k + 1)
            opts = {'bw': bw} if bw else {}
            self.addLink(gw, wan, port1=vms + 1, cls=TCLink, **opts)


def switch_links(topo, prefix):
    """The directed switch-to-switch links an LLDP discovery must find in
    topo, as [{"src": {"dpid": D, "port": P}, "dst": {...}}, ...] sorted
    (the JSON shape of the skyvisor daemon's GET /debug/links). Direct
    switch-switch links give one link per direction; the gateways' WAN ports
    form one segment through the WAN node (a bridge or the relay floods LLDP),
    so with exactly two clouds they give one more pair. With three or more
    clouds the WAN is multi-access: every gateway hears every other one on
    the same port, which a point-to-point discovery cannot represent, and
    those links are left out (the caller must not expect them)."""
    def ep(name, port):
        return {'dpid': int(topo.nodeInfo(name)['dpid'], 16), 'port': port}
    out, wan = [], []
    for _, _, info in topo.links(withInfo=True):
        (n1, p1), (n2, p2) = (info['node1'], info['port1']), (info['node2'], info['port2'])
        if topo.isSwitch(n1) and topo.isSwitch(n2):
            out.append({'src': ep(n1, p1), 'dst': ep(n2, p2)})
            out.append({'src': ep(n2, p2), 'dst': ep(n1, p1)})
        elif n2 == '%swan' % prefix and topo.isSwitch(n1):
            wan.append(ep(n1, p1))
        elif n1 == '%swan' % prefix and topo.isSwitch(n2):
            wan.append(ep(n2, p2))
    if len(wan) == 2:
        out.append({'src': wan[0], 'dst': wan[1]})
        out.append({'src': wan[1], 'dst': wan[0]})
    key = lambda l: (l['src']['dpid'], l['src']['port'], l['dst']['dpid'], l['dst']['port'])
    return sorted(out, key=key)


def hold(path, timeout):
    """Create path and wait until someone removes it (or timeout s)."""
    with open(path, 'w') as f:
        f.write('%d\n' % os.getpid())
    info('*** holding the network up until %s is removed (%.0f s at most)\n' % (path, timeout))
    deadline = time.time() + timeout
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    if os.path.exists(path):
        os.unlink(path)


def find_skylab(arg):
    if arg:
        return arg
    here = os.path.dirname(os.path.abspath(__file__))
    for c in (os.path.join(here, '..', '..', 'bin', 'skylab'), shutil.which('skylab')):
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    return None


def rtt(out):
    """min/avg/max in ms from ping -q output."""
    m = re.search(r'= ([\d.]+)/([\d.]+)/([\d.]+)/', out)
    return '/'.join(m.groups()) if m else '?'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--clouds', type=int, default=3, help='number of clouds (1..50)')
    ap.add_argument('--vms', type=int, default=2, help='VM switches per cloud (1..50)')
    ap.add_argument('--hosts', type=int, default=1, help='hosts per VM switch (1..50)')
    ap.add_argument('--prefix', default='skm', help='name prefix of every node ([a-z]{1,4})')
    ap.add_argument('--controller-ip', default='127.0.0.1')
    ap.add_argument('--controller-port', type=int, default=6653)
    ap.add_argument('--test-controller', action='store_true',
                    help='start ovs-testcontroller (learning switch) on the controller address (self-test)')
    ap.add_argument('--bw', type=float, default=0, help='gateway<->WAN link Mbit/s (TCLink htb), 0 = none')
    ap.add_argument('--relay-delay', type=float, default=0,
                    help='one-way ms added by the WAN relay (skylab wan-relay) between any two gateways')
    ap.add_argument('--skylab', default=None, help='path of the skylab binary (for --relay-delay)')
    ap.add_argument('--wait', type=float, default=10, help='seconds to wait for switches to connect (0 = do not wait)')
    ap.add_argument('--ping', action='store_true', help='pingAll and cross-cloud RTT after start')
    ap.add_argument('--cli', action='store_true', help='open the Mininet CLI')
    ap.add_argument('--links-out', default=None,
                    help='write the switch-to-switch links LLDP discovery must find (JSON, the shape of '
                         "skyvisor's GET /debug/links) to this file and go on")
    ap.add_argument('--hold-file', default=None,
                    help='after start (and --ping), create this file and keep the network up until it is '
                         'removed (--hold-timeout s at most); for tests that inspect the controller')
    ap.add_argument('--hold-timeout', type=float, default=120, help='seconds --hold-file waits at most')
    a = ap.parse_args()
    if not re.match(r'^[a-z]{1,4}$', a.prefix):
        ap.error('--prefix must be 1-4 lowercase letters')
    for name in ('clouds', 'vms', 'hosts'):
        if not 1 <= getattr(a, name) <= 50:
            ap.error('--%s must be 1..50' % name)
    # Mininet names interfaces <node>-eth<port>; Linux allows 15 characters
    p, c, v, h = a.prefix, a.clouds, a.vms, a.hosts
    longest = max(['%s%dv%dh%d-eth0' % (p, c, v, h), '%s%dv%d-eth%d' % (p, c, v, h + 1),
                   '%s%dg-eth%d' % (p, c, v + 1), '%swan-eth%d' % (p, c - 1)], key=len)
    if len(longest) > 15:
        ap.error('interface name %s would exceed 15 characters: use a shorter --prefix or fewer nodes' % longest)
    skylab = None
    if a.relay_delay > 0:
        skylab = find_skylab(a.skylab)
        if not skylab:
            ap.error('--relay-delay needs the skylab binary: run `make build` or pass --skylab PATH')
    setLogLevel('info')

    ctl = None
    if a.test_controller:
        ctl = subprocess.Popen(['ovs-testcontroller', '-O', 'OpenFlow13',
                                'ptcp:%d:%s' % (a.controller_port, a.controller_ip)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    net = relay = None
    rc = 1
    try:
        topo = SkyvisorClouds(prefix=a.prefix, clouds=a.clouds, vms=a.vms, hosts=a.hosts, bw=a.bw or None)
        if a.links_out:
            with open(a.links_out, 'w') as f:
                json.dump({'links': switch_links(topo, a.prefix)}, f, indent=1)
        net = Mininet(topo=topo,
                      switch=partial(OVSSwitch, datapath='user', protocols='OpenFlow13', failMode='secure'),
                      controller=partial(RemoteController, ip=a.controller_ip, port=a.controller_port),
                      autoSetMacs=False, waitConnected=False)
        t0 = time.time()
        net.start()
        wan = net['%swan' % a.prefix]
        for intf in wan.intfList():
            wan.cmd('ethtool -K %s tx off tso off gso off gro off' % intf)
        if a.relay_delay > 0:
            relay = wan.popen([skylab, 'wan-relay', '--delay', str(a.relay_delay)]
                              + [str(i) for i in wan.intfList()])
        else:
            wan.cmd('ip link add br-wan type bridge')
            # forward LLDP (01:80:c2:00:00:0e) so the controller sees gateway<->gateway links
            wan.cmd('echo 16384 > /sys/class/net/br-wan/bridge/group_fwd_mask')
            for intf in wan.intfList():
                wan.cmd('ip link set %s master br-wan up' % intf)
            wan.cmd('ip link set br-wan up')
        hosts = [h for h in net.hosts if h is not wan]
        for h in hosts:
            h.cmd('ethtool -K %s tx off' % h.defaultIntf())
        info('*** started in %.2f s\n' % (time.time() - t0))
        if a.wait > 0:
            net.waitConnected(timeout=a.wait)
        if a.ping:
            loss = net.ping(hosts, timeout=2)
            if a.clouds > 1:
                src, dst = hosts[0], net['%s2v1h1' % a.prefix]
                info('*** RTT min/avg/max %s -> %s (across the WAN): %s ms\n'
                     % (src.name, dst.name, rtt(src.cmd('ping -c10 -i0.2 -q %s' % dst.IP()))))
            rc = 0 if loss == 0 else 1
        else:
            rc = 0
        if a.hold_file:
            hold(a.hold_file, a.hold_timeout)
        if a.cli:
            CLI(net)
    finally:
        if relay is not None:
            relay.send_signal(signal.SIGTERM)
            relay.wait()
        if net is not None:
            net.stop()
        if ctl is not None:
            ctl.send_signal(signal.SIGTERM)
            ctl.wait()
    sys.exit(rc)


if __name__ == '__main__':
    main()
