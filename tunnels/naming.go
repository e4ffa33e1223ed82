package tunnels

import (
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/skyvisor/skyvisor/ovsdb"
)

// MaxPortName is the longest interface name Linux accepts: IFNAMSIZ (16)
// minus the terminating NUL. OVS tunnel ports of the kernel datapath become
// netdevs, so gateway port names respect it everywhere.
const MaxPortName = 15

// PortPrefix starts every tunnel port name Skyvisor creates.
const PortPrefix = "tun-"

// External-ID keys written on every tunnel port Skyvisor manages
// (Interface/Port external_ids column, RFC 7047 map of strings). A port
// without ExternalIDTunnel is never modified or deleted by the Provisioner.
const (
	ExternalIDTunnel = "skyvisor-tunnel" // value: the peer site's name
	ExternalIDSite   = "skyvisor-site"   // value: the local site's name
)

// TunnelKey is the options:key value of every tunnel port: "flow", so the
// tunnel key (VXLAN/Geneve VNI, 24 bits; GRE key, 32 bits) is taken from
// the OpenFlow tun_id field set per packet (set_field:<tenant>->tun_id) and
// matched on receive. Skyvisor puts the 16-bit tenant ID in the low bits of
// tun_id, so one port per peer carries every tenant and a tenant's traffic
// stays identifiable across clouds without relying on the MAC prefix alone.
// tun_id 0 is reserved for infrastructure traffic (no tenant).
const TunnelKey = ovsdb.FlowOption

// OpenFlow port numbers for tunnel ports: the upper part of the range OVS
// accepts in ofport_request (1..65279, OFPP_MAX of OpenFlow 1.0 is 0xff00;
// ovs-vswitchd.conf.db(5)). VM, uplink and patch ports use numbers below
// TunnelOFPortMin.
const (
	TunnelOFPortMin = 32768
	TunnelOFPortMax = 65279
)

var portNameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// PortName returns the name of the tunnel port, on any gateway, that
// leads to the gateway of site peer. It is a pure function of peer:
//
//   - "tun-" + peer when that fits in MaxPortName (peer up to 11 bytes) and
//     peer contains no '.';
//   - otherwise "tun-" + the first 3 bytes of peer + "." + 7 base32
//     characters of the FNV-1a 64-bit hash of peer (35 bits), 15 bytes.
//
// Short names never contain '.', hashed names always do, so the two forms
// never collide; two hashed names collide only if the peers share their
// first 3 bytes and the 35-bit hash. PortNames detects that case.
func PortName(peer string) string {
	if len(PortPrefix)+len(peer) <= MaxPortName && !strings.Contains(peer, ".") {
		return PortPrefix + peer
	}
	h := fnv.New64a()
	h.Write([]byte(peer))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.Sum64())
	prefix := peer
	if len(prefix) > 3 {
		prefix = prefix[:3]
	}
	prefix = strings.ReplaceAll(prefix, ".", "_")
	return PortPrefix + prefix + "." + portNameEncoding.EncodeToString(b[:])[:7]
}

// PortNames returns the port name of every peer (peer -> name) and fails,
// naming both peers, if two peers map to the same name.
func PortNames(peers []string) (map[string]string, error) {
	out := make(map[string]string, len(peers))
	owner := make(map[string]string, len(peers))
	for _, p := range peers {
		n := PortName(p)
		if o, dup := owner[n]; dup && o != p {
			return nil, fmt.Errorf("tunnels: peers %q and %q both map to port name %q", o, p, n)
		}
		owner[n] = p
		out[p] = n
	}
	return out, nil
}

// PreferredOFPort returns the OpenFlow port number a tunnel to peer asks
// for when it is free: TunnelOFPortMin + FNV-1a-32(peer) mod the range
// size. It is the same on every gateway.
func PreferredOFPort(peer string) int {
	h := fnv.New32a()
	h.Write([]byte(peer))
	return TunnelOFPortMin + int(h.Sum32()%uint32(TunnelOFPortMax-TunnelOFPortMin+1))
}

// AssignOFPorts gives every peer of one gateway a distinct OpenFlow port
// number in [TunnelOFPortMin, TunnelOFPortMax] (sent as ofport_request):
//
//   - a peer listed in current (its existing port's number) keeps that
//     number if it is in range, not in taken, and not claimed by a
//     lexically smaller peer in current; numbers never move while a port
//     exists, so installed flows stay valid;
//   - every other peer, in lexical order, gets PreferredOFPort(peer) or,
//     if that is used, the next free number (wrapping within the range).
//
// taken holds numbers used by ports the Provisioner does not manage.
// The result is deterministic. Error if the range is exhausted.
func AssignOFPorts(peers []string, current map[string]int, taken map[int]bool) (map[string]int, error) {
	sorted := slices.Clone(peers)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	used := make(map[int]bool, len(sorted)+len(taken))
	for n, t := range taken {
		if t {
			used[n] = true
		}
	}
	out := make(map[string]int, len(sorted))
	for _, p := range sorted {
		n, ok := current[p]
		if ok && n >= TunnelOFPortMin && n <= TunnelOFPortMax && !used[n] {
			used[n] = true
			out[p] = n
		}
	}
	size := TunnelOFPortMax - TunnelOFPortMin + 1
	for _, p := range sorted {
		if _, ok := out[p]; ok {
			continue
		}
		n := PreferredOFPort(p)
		for k := 0; ; k++ {
			if k == size {
				return nil, fmt.Errorf("tunnels: no free OpenFlow port in [%d, %d] for peer %q", TunnelOFPortMin, TunnelOFPortMax, p)
			}
			if !used[n] {
				break
			}
			n++
			if n > TunnelOFPortMax {
				n = TunnelOFPortMin
			}
		}
		used[n] = true
		out[p] = n
	}
	return out, nil
}
