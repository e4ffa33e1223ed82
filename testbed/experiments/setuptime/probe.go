package setuptime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skyvisor/skyvisor/tunnels"
)

// Pair is a probe pair: an ICMP echo from probe Src to probe Dst (site indices, 0-based).
type Pair struct{ Src, Dst int }

// ProbePairs returns the pairs that put traffic on every tunnel of plan
// with as many pairs as tunnels: for a spanning tree, the first site to
// every other site (the tree paths from one root cover every tree edge);
// otherwise one pair per tunnel (its two ends). sites are the lab's site
// names in lab order; the result is in a deterministic order.
func ProbePairs(plan tunnels.Plan, sites []string) ([]Pair, error) {
	idx := map[string]int{}
	for i, s := range sites {
		idx[s] = i
	}
	if plan.IsSpanningTree() == nil {
		root := idx[plan.Sites[0]]
		var out []Pair
		for i := range sites {
			if i != root {
				out = append(out, Pair{root, i})
			}
		}
		return out, nil
	}
	var out []Pair
	for _, t := range plan.Tunnels {
		a, okA := idx[t.A]
		b, okB := idx[t.B]
		if !okA || !okB {
			return nil, fmt.Errorf("tunnel %s names a site outside the lab", t)
		}
		out = append(out, Pair{a, b})
	}
	return out, nil
}

// NextHops returns, for every site s and destination d (names), the peer
// of s whose tunnel starts the path to d with the fewest tunnels in the
// plan (ties: the lexically smallest peer, by BFS over sorted peers).
// next[s][d] is absent for s == d and for unreachable d.
func NextHops(plan tunnels.Plan) map[string]map[string]string {
	peers := map[string][]string{}
	for _, s := range plan.Sites {
		peers[s] = plan.Peers(s)
	}
	next := make(map[string]map[string]string, len(plan.Sites))
	for _, src := range plan.Sites {
		hop := map[string]string{}
		seen := map[string]bool{src: true}
		queue := []string{}
		for _, p := range peers[src] {
			seen[p] = true
			hop[p] = p
			queue = append(queue, p)
		}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, p := range peers[cur] {
				if !seen[p] {
					seen[p] = true
					hop[p] = hop[cur]
					queue = append(queue, p)
				}
			}
		}
		next[src] = hop
	}
	return next
}

// ProbeMAC is the MAC of site i's probe host (1-based): 02:5e:00:00:00:ii.
func ProbeMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x5e, 0, 0, byte(i >> 8), byte(i)}
}

// ProbeIP is the address of site i's probe host (1-based): 10.0.0.i (in 10.0.0.0/24).
func ProbeIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }

// ProbeTunID is the tunnel key (tun_id) the forwarding flows set.
const ProbeTunID = 1

// GatewayFlows returns the ovs-ofctl flow lines (OpenFlow 1.3, table 0)
// for the gateway of site (1-based index i of n sites, name names[i-1]):
// the local probe's MAC to localPort, every other probe's MAC to the
// OpenFlow port of the tunnel towards next[site][dst] with tun_id
// ProbeTunID. tunnelPort maps peer site name -> OpenFlow port.
func GatewayFlows(names []string, i int, localPort int, next map[string]map[string]string, tunnelPort map[string]int) ([]string, error) {
	site := names[i-1]
	var out []string
	for k, dst := range names {
		mac := ProbeMAC(k + 1)
		if k+1 == i {
			out = append(out, fmt.Sprintf("table=0,priority=100,dl_dst=%s,actions=output:%d", mac, localPort))
			continue
		}
		hop, ok := next[site][dst]
		if !ok {
			return nil, fmt.Errorf("site %s: no path to %s in the plan", site, dst)
		}
		port, ok := tunnelPort[hop]
		if !ok || port <= 0 {
			return nil, fmt.Errorf("site %s: no tunnel port towards %s", site, hop)
		}
		out = append(out, fmt.Sprintf("table=0,priority=100,dl_dst=%s,actions=set_field:%d->tun_id,output:%d", mac, ProbeTunID, port))
	}
	return out, nil
}

// icmpConn is a raw ICMP socket opened inside a probe host's namespace.
type icmpConn struct {
	c  *net.IPConn
	ns string
}

// openICMP opens a raw ICMPv4 socket in network namespace ns. The socket
// is created by a locked OS thread that entered ns; the thread is
// discarded afterwards (the goroutine exits while locked), so no other
// goroutine ever runs in ns. The socket stays bound to ns.
func openICMP(ns string) (*icmpConn, error) {
	type res struct {
		c   *net.IPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- res{err: fmt.Errorf("netns %s: %w", ns, err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: fmt.Errorf("enter netns %s: %w", ns, err)}
			return
		}
		c, err := net.ListenIP("ip4:icmp", &net.IPAddr{IP: net.IPv4zero})
		if err != nil {
			err = fmt.Errorf("netns %s: icmp socket: %w", ns, err)
		}
		ch <- res{c: c, err: err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	return &icmpConn{c: r.c, ns: ns}, nil
}

// echoRequest builds an ICMP echo request (RFC 792) with id, seq and an 8-byte payload.
func echoRequest(id, seq uint16) []byte {
	b := make([]byte, 16)
	b[0] = 8 // echo request
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], "skyvisor")
	binary.BigEndian.PutUint16(b[2:], icmpChecksum(b))
	return b
}

// icmpChecksum is the Internet checksum (RFC 1071) of b.
func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// parseEchoReply returns the id of an ICMP echo reply (type 0) and true;
// false for anything else.
func parseEchoReply(b []byte) (uint16, bool) {
	if len(b) < 8 || b[0] != 0 || b[1] != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[4:]), true
}

// pingAll sends ICMP echo requests for every pair every interval until
// each pair got a reply (from the pair's destination address, with the
// pair's id) or ctx ends. conns[i] is probe i's socket, addrs[i] its
// address. It returns when the last pair answered; the error lists the
// pairs still silent.
func pingAll(ctx context.Context, conns []*icmpConn, addrs []netip.Addr, pairs []Pair, interval time.Duration, idBase uint16) error {
	type state struct {
		mu      sync.Mutex
		pending map[uint16]Pair // id -> pair, per source socket
	}
	bySrc := map[int]*state{}
	for k, p := range pairs {
		st := bySrc[p.Src]
		if st == nil {
			st = &state{pending: map[uint16]Pair{}}
			bySrc[p.Src] = st
		}
		st.pending[idBase+uint16(k)] = p
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(bySrc))
	for src, st := range bySrc {
		c := conns[src]
		wg.Add(2)
		done := make(chan struct{})
		go func() { // receiver
			defer wg.Done()
			defer close(done)
			buf := make([]byte, 1500)
			for {
				st.mu.Lock()
				left := len(st.pending)
				st.mu.Unlock()
				if left == 0 {
					return
				}
				if ctx.Err() != nil {
					return
				}
				_ = c.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				n, from, err := c.c.ReadFromIP(buf)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue
					}
					errs <- fmt.Errorf("%s: read: %w", c.ns, err)
					return
				}
				id, ok := parseEchoReply(buf[:n])
				if !ok {
					continue
				}
				fa, _ := netip.AddrFromSlice(from.IP)
				st.mu.Lock()
				if p, ok := st.pending[id]; ok && addrs[p.Dst] == fa.Unmap() {
					delete(st.pending, id)
				}
				st.mu.Unlock()
			}
		}()
		go func() { // sender
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			seq := uint16(0)
			for {
				st.mu.Lock()
				ids := make([]uint16, 0, len(st.pending))
				dst := make(map[uint16]netip.Addr, len(st.pending))
				for id, p := range st.pending {
					ids = append(ids, id)
					dst[id] = addrs[p.Dst]
				}
				st.mu.Unlock()
				slices.Sort(ids)
				for _, id := range ids {
					// errors (no route yet, buffer full) are retried on the next tick
					_, _ = c.c.WriteToIP(echoRequest(id, seq), &net.IPAddr{IP: dst[id].AsSlice()})
				}
				seq++
				select {
				case <-done:
					return
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for e := range errs {
		all = append(all, e)
	}
	var silent []string
	for _, st := range bySrc {
		for _, p := range st.pending {
			silent = append(silent, fmt.Sprintf("%d->%d", p.Src+1, p.Dst+1))
		}
	}
	if len(silent) > 0 {
		slices.Sort(silent)
		all = append(all, fmt.Errorf("no echo reply for %d probe pairs (site %s): %w", len(silent), strings.Join(silent, " "), ctx.Err()))
	}
	return errors.Join(all...)
}
