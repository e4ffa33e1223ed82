package ofbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// dialAttempts is how often one switch tries to connect before giving up
// (a controller's listen backlog may overflow briefly).
const dialAttempts = 3

// Run connects cfg.Switches emulated switches to cfg.Controller, waits for
// their handshakes, sends packet-ins for cfg.Warmup + cfg.Runs periods of
// cfg.Duration and returns the per-run figures.
//
// Errors: an invalid Config; the first switch cannot connect (the
// controller is unreachable); no switch completes the handshake; ctx is
// cancelled (the runs finished so far are returned with ctx's error).
// A switch that fails later (the controller closes its connection or sends
// a malformed message) does not stop the benchmark: its error is listed in
// Result.SwitchErrors and its responses stop counting.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	b := &bench{
		cfg:      cfg,
		epoch:    time.Now(),
		ready:    make(chan handshakeResult, cfg.Switches),
		exitErrs: make([]error, cfg.Switches),
	}
	res, err := b.run(ctx)
	b.stop()
	res.SwitchErrors = append(res.SwitchErrors, b.exitErrors()...)
	return res, err
}

// bench is the state of one Run.
type bench struct {
	cfg      Config
	epoch    time.Time
	switches []*emuSwitch // connected switches, by index order
	exitErrs []error      // exit error of switch index i, set when its goroutine ends
	failed   []error      // switches that never connected
	ready    chan handshakeResult
	wg       sync.WaitGroup
	stopped  bool
}

func (b *bench) logf(format string, args ...any) {
	if b.cfg.Logf != nil {
		b.cfg.Logf(format, args...)
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dial connects one switch, retrying briefly.
func (b *bench) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	var err error
	for attempt := 1; attempt <= dialAttempts; attempt++ {
		var c net.Conn
		c, err = d.DialContext(ctx, "tcp", b.cfg.Controller)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil || attempt == dialAttempts {
			break
		}
		if serr := sleep(ctx, time.Duration(attempt)*20*time.Millisecond); serr != nil {
			return nil, serr
		}
	}
	return nil, err
}

func (b *bench) run(ctx context.Context) (Result, error) {
	cfg := &b.cfg
	res := Result{Config: b.cfg}

	// Connect, paced; each switch starts its handshake at once.
	for i := 0; i < cfg.Switches; i++ {
		if i > 0 {
			if err := sleep(ctx, cfg.ConnectInterval); err != nil {
				return res, err
			}
		}
		conn, err := b.dial(ctx)
		if err != nil {
			if i == 0 {
				return res, fmt.Errorf("ofbench: cannot connect to controller %s (is it running and listening there?): %w", cfg.Controller, err)
			}
			err = fmt.Errorf("switch %d (dpid %#x): connect to %s: %w", i+1, i+1, cfg.Controller, err)
			b.logf("%v", err)
			b.failed = append(b.failed, err)
			continue
		}
		s := newSwitch(i, cfg, b.epoch)
		s.conn = conn
		b.switches = append(b.switches, s)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.exitErrs[i] = s.run(b.ready)
		}()
	}

	// Wait for every handshake.
	ok := make(map[int]bool, len(b.switches))
	var firstErr error
	for range b.switches {
		select {
		case r := <-b.ready:
			if r.err != nil {
				b.logf("handshake failed: %v", r.err)
				if firstErr == nil {
					firstErr = r.err
				}
				continue
			}
			ok[r.idx] = true
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	var active []*emuSwitch
	for _, s := range b.switches {
		if ok[s.idx] {
			active = append(active, s)
		}
	}
	if len(active) == 0 {
		if firstErr == nil && len(b.failed) > 0 {
			firstErr = b.failed[0]
		}
		return res, fmt.Errorf("ofbench: no switch completed the OpenFlow 1.3 handshake with %s: %w", cfg.Controller, firstErr)
	}
	res.Switches = len(active)
	b.logf("%d of %d switches connected and handshaken; starting in %v", len(active), cfg.Switches, cfg.StartDelay)
	if err := sleep(ctx, cfg.StartDelay); err != nil {
		return res, err
	}

	// Start: baseline, then wake every switch through a past read deadline.
	prev := make([]snapshot, len(active))
	for i, s := range active {
		prev[i] = s.ctr.load()
	}
	t0 := time.Now()
	for _, s := range active {
		s.started.Store(true)
		_ = s.conn.SetReadDeadline(t0) // fails only if the switch already died
	}

	prevT := t0
	prevCPU := processCPU()
	total := cfg.Warmup + cfg.Runs
	cur := make([]snapshot, len(active))
	for k := 1; k <= total; k++ {
		if err := sleep(ctx, time.Until(t0.Add(time.Duration(k)*cfg.Duration))); err != nil {
			res.finish()
			return res, err
		}
		now := time.Now()
		for i, s := range active {
			cur[i] = s.ctr.load()
		}
		rs := newRunStats(prev, cur, now.Sub(prevT))
		cpu := processCPU()
		rs.SelfCPU = cpu - prevCPU
		prevCPU = cpu
		rs.Warmup = k <= cfg.Warmup
		if rs.Warmup {
			rs.Index = k
			res.Warmups = append(res.Warmups, rs)
		} else {
			rs.Index = k - cfg.Warmup
			res.Runs = append(res.Runs, rs)
		}
		prev, cur = cur, prev
		prevT = now
		if cfg.OnRun != nil {
			cfg.OnRun(rs)
		}
	}
	res.finish()
	return res, nil
}

// stop closes every connection and waits for the switch goroutines.
func (b *bench) stop() {
	if b.stopped {
		return
	}
	b.stopped = true
	for _, s := range b.switches {
		s.stopping.Store(true)
		_ = s.conn.Close()
	}
	b.wg.Wait()
}

// exitErrors lists the switches that failed, in switch order; call after
// stop.
func (b *bench) exitErrors() []error {
	errs := append([]error(nil), b.failed...)
	for _, e := range b.exitErrs {
		if e != nil {
			errs = append(errs, e)
		}
	}
	return errs
}

// IsMalformed reports whether err (a Result.SwitchErrors entry) was caused
// by a message from the controller that could not be parsed.
func IsMalformed(err error) bool { return errors.Is(err, errMalformed) }

// processCPU returns the user + system CPU time used so far by this
// process, 0 if getrusage fails.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
