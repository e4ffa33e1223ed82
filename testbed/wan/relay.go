package wan

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config configures a Relay.
type Config struct {
	// Netns is the network namespace holding the ports: a name under
	// /run/netns or an absolute path ("" = the caller's namespace).
	Netns string
	// Ifaces are the ports (interface names), at least two.
	Ifaces []string
	// Delay is the default one-way delay between any two ports.
	Delay time.Duration
	// Pairs override the delay between two ports (both directions), keyed by interface names.
	Pairs []Pair
	// QueueFrames bounds each (ingress, egress) queue (default 4096).
	QueueFrames int
	// LossPercent drops that percentage of received frames at random (0..<100).
	LossPercent float64
	// Rates limit the frames between two ports (Switch.SetRate, each
	// direction separately, default burst and backlog bound).
	Rates []Rate
}

// Rate is a rate limit between interfaces A and B.
type Rate struct {
	// A and B are interface names from Config.Ifaces.
	A, B string
	// Mbit is the limit in Mbit/s (10^6 bit/s of Ethernet frame bytes) in
	// each direction; > 0.
	Mbit float64
}

// Pair is a delay override between interfaces A and B.
type Pair struct {
	// A and B are interface names from Config.Ifaces.
	A, B string
	// Delay is the one-way delay between them, both directions.
	Delay time.Duration
}

// Relay moves frames between AF_PACKET sockets through a Switch.
type Relay struct {
	sw    *Switch
	files []*os.File
	names []string
}

// Open creates one AF_PACKET socket per interface (inside cfg.Netns),
// bound to the interface, ignoring its own outgoing frames
// (PACKET_IGNORE_OUTGOING, packet(7)). The caller must Close the relay.
func Open(cfg Config) (*Relay, error) {
	n := len(cfg.Ifaces)
	if n < 2 {
		return nil, fmt.Errorf("wan relay: %d interfaces, need at least 2", n)
	}
	idx := map[string]int{}
	for k, name := range cfg.Ifaces {
		if _, dup := idx[name]; dup {
			return nil, fmt.Errorf("wan relay: interface %q given twice", name)
		}
		idx[name] = k
	}
	if cfg.Delay < 0 {
		return nil, fmt.Errorf("wan relay: negative delay %v", cfg.Delay)
	}
	delay := DelayMatrix(n, cfg.Delay)
	for _, p := range cfg.Pairs {
		a, okA := idx[p.A]
		b, okB := idx[p.B]
		if !okA || !okB {
			return nil, fmt.Errorf("wan relay: pair %s,%s names an interface not in the list", p.A, p.B)
		}
		if p.Delay < 0 {
			return nil, fmt.Errorf("wan relay: negative delay %v for pair %s,%s", p.Delay, p.A, p.B)
		}
		delay[a][b], delay[b][a] = p.Delay, p.Delay
	}
	if cfg.QueueFrames == 0 {
		cfg.QueueFrames = 4096
	}
	sw, err := NewSwitch(n, delay, cfg.QueueFrames)
	if err != nil {
		return nil, err
	}
	if err := sw.SetLoss(cfg.LossPercent/100, nil); err != nil {
		return nil, err
	}
	for _, r := range cfg.Rates {
		a, okA := idx[r.A]
		b, okB := idx[r.B]
		if !okA || !okB || a == b {
			return nil, fmt.Errorf("wan relay: rate %s,%s names an interface not in the list or the same twice", r.A, r.B)
		}
		if !(r.Mbit > 0) {
			return nil, fmt.Errorf("wan relay: rate %v Mbit/s for pair %s,%s: want > 0", r.Mbit, r.A, r.B)
		}
		for _, d := range [][2]int{{a, b}, {b, a}} {
			if err := sw.SetRate(d[0], d[1], r.Mbit*1e6, 0, 0); err != nil {
				return nil, fmt.Errorf("wan relay: pair %s,%s: %w", r.A, r.B, err)
			}
		}
	}
	files, err := openSockets(cfg.Netns, cfg.Ifaces)
	if err != nil {
		return nil, err
	}
	return &Relay{sw: sw, files: files, names: append([]string(nil), cfg.Ifaces...)}, nil
}

// Switch returns the relay's switch (for its counters).
func (r *Relay) Switch() *Switch { return r.sw }

// Close closes the sockets (ending Run's readers).
func (r *Relay) Close() error {
	var errs []error
	for _, f := range r.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Run relays frames until ctx is done; then it closes the sockets.
func (r *Relay) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2*len(r.files))
	for k := range r.files {
		wg.Add(2)
		go func() { defer wg.Done(); errc <- r.reader(ctx, k) }()
		go func() { defer wg.Done(); errc <- r.sender(ctx, k) }()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	_ = r.Close()
	wg.Wait()
	return first
}

// readBatch bounds how many frames one wake-up of a reader takes in.
const readBatch = 64

func (r *Relay) reader(ctx context.Context, k int) error {
	rc, err := r.files[k].SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 65536)
	for ctx.Err() == nil {
		var fatal error
		err := rc.Read(func(fd uintptr) bool {
			for got := 0; got < readBatch; {
				n, rerr := unix.Read(int(fd), buf)
				switch {
				case rerr == unix.EINTR:
					continue
				case rerr == unix.EAGAIN:
					return got > 0 // nothing read yet: wait for readability
				case rerr == unix.ENETDOWN:
					return true
				case rerr != nil:
					fatal = rerr
					return true
				}
				frame := make([]byte, n)
				copy(frame, buf[:n])
				_, _ = r.sw.Ingress(k, frame, time.Now())
				got++
			}
			return true
		})
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read %s: %w", r.names[k], err)
		}
		if fatal != nil {
			return fmt.Errorf("read %s: %w", r.names[k], fatal)
		}
	}
	return nil
}

func (r *Relay) sender(ctx context.Context, k int) error {
	rc, err := r.files[k].SyscallConn()
	if err != nil {
		return err
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		frame, wait, ok := r.sw.Next(k, time.Now())
		if ok {
			// send every frame that is due in one wake-up; on a full socket
			// buffer wait for writability and retry the same frame
			err := rc.Write(func(fd uintptr) bool {
				for {
					_, werr := unix.Write(int(fd), frame)
					if werr == unix.EAGAIN {
						return false
					}
					if werr == unix.EINTR {
						continue
					}
					r.sw.CountTX(werr)
					var more bool
					if frame, _, more = r.sw.Next(k, time.Now()); !more {
						return true
					}
				}
			})
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
					return nil
				}
				r.sw.CountTX(err)
			}
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-r.sw.Wake(k):
		case <-tc:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openSockets opens the AF_PACKET sockets inside netns. The calling
// goroutine's thread switches namespace while the sockets and the interface
// lookups are made; sockets keep their namespace afterwards.
func openSockets(netns string, ifaces []string) (files []*os.File, err error) {
	if netns != "" {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("wan relay: own netns: %w", err)
		}
		defer orig.Close()
		path := netns
		if !filepath.IsAbs(path) {
			path = filepath.Join("/run/netns", netns)
		}
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("wan relay: netns %s: %w", netns, err)
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("wan relay: enter netns %s: %w", netns, err)
		}
		defer func() {
			if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr == nil {
				runtime.UnlockOSThread()
			} // else: leave the thread locked; Go ends it with the goroutine
		}()
	}
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			files = nil
		}
	}()
	proto := htons(unix.ETH_P_ALL)
	for _, name := range ifaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return files, fmt.Errorf("wan relay: interface %s: %w", name, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return files, fmt.Errorf("wan relay: AF_PACKET socket: %w", err)
		}
		f := os.NewFile(uintptr(fd), "packet:"+name)
		files = append(files, f)
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return files, fmt.Errorf("wan relay: PACKET_IGNORE_OUTGOING on %s: %w", name, err)
		}
		for _, opt := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 8<<20)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			return files, fmt.Errorf("wan relay: bind %s: %w", name, err)
		}
	}
	return files, nil
}

// pairFlag collects repeated --pair A,B=MS flags.
type pairFlag []Pair

// String implements flag.Value.
func (p *pairFlag) String() string { return fmt.Sprint(*p) }

// Set implements flag.Value: it parses "A,B=MS".
func (p *pairFlag) Set(v string) error {
	ports, ms, ok := strings.Cut(v, "=")
	a, b, ok2 := strings.Cut(ports, ",")
	if !ok || !ok2 || a == "" || b == "" {
		return fmt.Errorf("want A,B=MS, got %q", v)
	}
	d, err := parseMS(ms)
	if err != nil {
		return err
	}
	*p = append(*p, Pair{A: a, B: b, Delay: d})
	return nil
}

// rateFlag collects repeated --rate A,B=MBIT flags.
type rateFlag []Rate

// String implements flag.Value.
func (r *rateFlag) String() string { return fmt.Sprint(*r) }

// Set implements flag.Value: it parses "A,B=MBIT".
func (r *rateFlag) Set(v string) error {
	ports, mbit, ok := strings.Cut(v, "=")
	a, b, ok2 := strings.Cut(ports, ",")
	if !ok || !ok2 || a == "" || b == "" {
		return fmt.Errorf("want A,B=MBIT, got %q", v)
	}
	f, err := strconv.ParseFloat(mbit, 64)
	if err != nil || !(f > 0) || f > 1e6 {
		return fmt.Errorf("want Mbit/s in (0, 1e6], got %q", mbit)
	}
	*r = append(*r, Rate{A: a, B: b, Mbit: f})
	return nil
}

func parseMS(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e7 {
		return 0, fmt.Errorf("want milliseconds >= 0, got %q", s)
	}
	return time.Duration(f * float64(time.Millisecond)), nil
}

// RunCommand is the `skylab wan-relay` subcommand:
//
//	wan-relay [--netns NS] [--pidfile F] [--delay MS] [--pair A,B=MS]... [--rate A,B=MBIT]... [--queue N] [--loss PCT] IFACE IFACE...
//
// It opens the sockets, writes its PID to the pid file (the lab waits for
// it), relays until SIGTERM/SIGINT and prints its counters as JSON to stderr
// on SIGUSR1 and on exit.
func RunCommand(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("wan-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	netns := fs.String("netns", "", "network namespace of the interfaces")
	pidfile := fs.String("pidfile", "", "write the PID here once the sockets are bound")
	delayMS := fs.String("delay", "0", "one-way delay in ms between every pair of interfaces")
	queue := fs.Int("queue", 4096, "frames per (ingress, egress) queue; more are dropped")
	loss := fs.Float64("loss", 0, "drop this percentage of received frames at random")
	var pairs pairFlag
	fs.Var(&pairs, "pair", "A,B=MS one-way delay between interfaces A and B (repeatable)")
	var rates rateFlag
	fs.Var(&rates, "rate", "A,B=MBIT rate limit between interfaces A and B, each direction (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := parseMS(*delayMS)
	if err != nil {
		return fmt.Errorf("--delay: %w", err)
	}
	r, err := Open(Config{Netns: *netns, Ifaces: fs.Args(), Delay: d, Pairs: pairs, QueueFrames: *queue, LossPercent: *loss, Rates: rates})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	report := func(tag string) {
		b, _ := json.Marshal(r.Switch().Stats())
		fmt.Fprintf(stderr, "wan-relay %s: %s\n", tag, b)
	}
	go func() {
		for {
			select {
			case <-usr1:
				report("stats")
			case <-ctx.Done():
				return
			}
		}
	}()
	if *pidfile != "" {
		tmp := *pidfile + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			r.Close()
			return fmt.Errorf("pidfile: %w", err)
		}
		if err := os.Rename(tmp, *pidfile); err != nil {
			r.Close()
			return fmt.Errorf("pidfile: %w", err)
		}
	}
	fmt.Fprintf(stderr, "wan-relay: %d ports %v delay %v pairs %v rates %v queue %d loss %v%%\n", len(fs.Args()), fs.Args(), d, pairs, rates, *queue, *loss)
	err = r.Run(ctx)
	report("exit")
	return err
}
