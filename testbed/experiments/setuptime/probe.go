package setuptime

import (
	"context"
	"encoding/binary"
	"encoding/json"
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
)

// Pair is a probe pair: an ICMP echo from host Src to host Dst (indices
// into the run's host list).
type Pair struct{ Src, Dst int }

// AllPairs returns every unordered pair of n hosts once, the lower index
// as the source (an echo reply proves both directions): n(n-1)/2 pairs in
// a deterministic order.
func AllPairs(n int) []Pair {
	var out []Pair
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			out = append(out, Pair{i, j})
		}
	}
	return out
}

// HostName is the lab host on VM vm (1-based) of site i (1-based): "h<i>-<vm>".
func HostName(i, vm int) string { return fmt.Sprintf("h%d-%d", i, vm) }

// VMName is the name of VM vm (1-based) of a site ("vm<vm>", the lab's default names).
func VMName(vm int) string { return fmt.Sprintf("vm%d", vm) }

// HostMAC is the MAC of host (i, vm): 02:5e:00:00:ii:vv (the tenant's own
// address; Skyvisor rewrites it in the fabric).
func HostMAC(i, vm int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x5e, 0, 0, byte(i), byte(vm)}
}

// HostIP is the address of host (i, vm): 10.0.i.vm in 10.0.0.0/16.
func HostIP(i, vm int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i), byte(vm)}) }

// HostPrefixLen is the prefix length of the hosts' addresses.
const HostPrefixLen = 16

// TenantDoc returns the tenants document the experiment applies for n
// sites with vms VMs each: tenant Tenant with the learning app, one
// virtual switch "net" spanning every cloud, host (i, vm) on port
// (i-1)*vms+vm in cloud SiteName(i), with HostMAC and HostIP.
func TenantDoc(n, vms int) []byte {
	type host struct {
		Name   string `json:"name"`
		MAC    string `json:"mac"`
		IP     string `json:"ip"`
		Switch string `json:"switch"`
		Port   int    `json:"port"`
		Cloud  string `json:"cloud"`
	}
	var hs []host
	for i := 1; i <= n; i++ {
		for v := 1; v <= vms; v++ {
			hs = append(hs, host{HostName(i, v), HostMAC(i, v).String(), fmt.Sprintf("%s/%d", HostIP(i, v), HostPrefixLen),
				"net", (i-1)*vms + v, SiteName(i)})
		}
	}
	doc := map[string]any{"tenants": []any{map[string]any{
		"tenant": Tenant, "apps": []string{"learning"},
		"switches": []any{map[string]string{"name": "net"}}, "links": []any{}, "hosts": hs}}}
	b, _ := json.MarshalIndent(doc, "", "  ") // maps, slices and strings always marshal
	return b
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
