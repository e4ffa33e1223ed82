package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
)

// OVSTestControllerMaxSwitches is how many switch connections
// ovs-testcontroller serves (MAX_SWITCHES in utilities/ovs-testcontroller.c
// of Open vSwitch); measured here: with 32 switches only 16 complete the
// handshake, with 64 the run does not finish.
const OVSTestControllerMaxSwitches = 16

// Measurement is one ofbench invocation against one fresh controller.
type Measurement struct {
	Arm      string
	Networks int
	Rep      int
	// Switches is the number of switches that completed the handshake.
	Switches int
	// RespPerSec is ofbench's median responses/s (flow-mods + packet-outs)
	// over its runs; AnsweredPerSec the median answered packet-ins/s.
	RespPerSec, AnsweredPerSec float64
	// LatencyMS is the mean latency per request, Switches /
	// AnsweredPerSec, in ms; RTTMS is ofbench's measured mean round trip.
	LatencyMS, RTTMS float64
	// Lost, Timeouts, CtrlErrors and SwitchErrors are ofbench's counts;
	// IgnoredFlowMods the hypervisor's own flow-mods seen during the runs
	// (fabric mode only).
	Lost, Timeouts, CtrlErrors, SwitchErrors, IgnoredFlowMods uint64
	// ControllerCPUPct is the controller's CPU use while ofbench ran (% of
	// one core); OfbenchCPUPct ofbench's own, as it reports it.
	ControllerCPUPct, OfbenchCPUPct float64
	// CPUPerRequestUS is the controller's CPU time (user + system, from
	// /proc/PID/stat, 10 ms resolution) while ofbench ran, divided by the
	// packet-ins it answered in that time (warmup and measured runs), in
	// microseconds: the processing cost of one request, which unlike the
	// latency does not include time spent waiting for a CPU on a loaded
	// machine. It includes the handshakes and the hypervisor's initial
	// reconciliation (a few ms).
	CPUPerRequestUS float64
	// Load1 is the 1-minute load average just before the measurement.
	Load1 float64
	// Commit is the commit of the code that measured (runinfo.Commit); ""
	// in files written before the column existed.
	Commit string
	// Start is when the measurement started (UTC).
	Start time.Time
	// Err is why the measurement failed ("" if it did not).
	Err string
}

// OK reports whether m succeeded.
func (m Measurement) OK() bool { return m.Err == "" }

// Run makes every measurement of cfg: for each repetition, for each
// number of networks, every arm (in AllArms order on odd repetitions,
// reversed on even ones, so no arm always runs first). A measurement that
// fails (a peer that cannot keep up, a missing binary) is recorded with
// its error and the experiment goes on. Errors: an invalid config, the
// skyvisor or ofbench binary missing, a work directory that cannot be
// made, ctx cancelled (the measurements made so far are returned).
func Run(ctx context.Context, cfg Config) ([]Measurement, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer r.cleanup()
	var out []Measurement
	total := cfg.Measurements()
	k := 0
	for rep := 1; rep <= cfg.Reps; rep++ {
		for _, n := range cfg.Networks {
			arms := slices.Clone(cfg.Arms)
			if rep%2 == 0 {
				slices.Reverse(arms)
			}
			for _, arm := range arms {
				if err := ctx.Err(); err != nil {
					return out, err
				}
				k++
				m := r.measure(ctx, arm, n, rep)
				out = append(out, m)
				r.progress(k, total, m)
			}
		}
	}
	return out, ctx.Err()
}

// runner holds what every measurement shares.
type runner struct {
	cfg       Config
	log       *slog.Logger
	work      string
	removeAll bool
	skyvisor  string
	ofbench   string
	pinCtl    []string
	pinBench  []string
	missing   map[string]string // arm -> why it cannot run
}

func newRunner(cfg Config) (*runner, error) {
	r := &runner{cfg: cfg, log: cfg.Logger, missing: map[string]string{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, b := range []struct {
		name string
		dst  *string
	}{{"skyvisor", &r.skyvisor}, {"ofbench", &r.ofbench}} {
		p, err := filepath.Abs(filepath.Join(cfg.BinDir, b.name))
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			return nil, fmt.Errorf("controlplane: %s binary: %w (build it: go build -o %s/ ./cmd/skyvisor ./cmd/ofbench)", b.name, err, cfg.BinDir)
		}
		*b.dst = p
	}
	if slices.Contains(cfg.Arms, ArmOVS) {
		if _, err := exec.LookPath("ovs-testcontroller"); err != nil {
			r.missing[ArmOVS] = "ovs-testcontroller not installed (apt-get install openvswitch-testcontroller)"
		}
	}
	if slices.Contains(cfg.Arms, ArmOSKen) {
		if _, err := exec.LookPath("osken-manager"); err != nil {
			r.missing[ArmOSKen] = "osken-manager not installed (apt-get install python3-os-ken)"
		} else if _, err := os.Stat(cfg.OSKenApp); err != nil {
			r.missing[ArmOSKen] = fmt.Sprintf("os-ken app %s: %v", cfg.OSKenApp, err)
		}
	}
	if cfg.Pin && runtime.NumCPU() >= 2 {
		if _, err := exec.LookPath("taskset"); err == nil {
			r.pinCtl, r.pinBench = []string{"taskset", "-c", "0"}, []string{"taskset", "-c", "1"}
		}
	}
	r.work = cfg.WorkDir
	if r.work == "" {
		d, err := os.MkdirTemp("", "skw-controlplane-")
		if err != nil {
			return nil, fmt.Errorf("controlplane: work dir: %w", err)
		}
		r.work, r.removeAll = d, true
	} else if err := os.MkdirAll(r.work, 0o755); err != nil {
		return nil, fmt.Errorf("controlplane: work dir: %w", err)
	}
	return r, nil
}

func (r *runner) cleanup() {
	if r.removeAll {
		_ = os.RemoveAll(r.work)
	}
}

// Pinned reports whether controller and ofbench run on separate CPUs.
func (r *runner) pinned() bool { return len(r.pinCtl) > 0 }

func (r *runner) progress(k, total int, m Measurement) {
	if r.cfg.Progress == nil {
		return
	}
	if !m.OK() {
		fmt.Fprintf(r.cfg.Progress, "controlplane: [%d/%d] networks=%d %s rep %d: FAILED: %s (load %.2f)\n", k, total, m.Networks, m.Arm, m.Rep, m.Err, m.Load1)
		return
	}
	fmt.Fprintf(r.cfg.Progress, "controlplane: [%d/%d] networks=%d %s rep %d: %.0f resp/s, %.0f answered/s, %.4f ms/request (rtt %.4f), lost %d, timeouts %d, controller cpu %.0f%% = %.1f us/request, load %.2f\n",
		k, total, m.Networks, m.Arm, m.Rep, m.RespPerSec, m.AnsweredPerSec, m.LatencyMS, m.RTTMS, m.Lost, m.Timeouts, m.ControllerCPUPct, m.CPUPerRequestUS, m.Load1)
}

// measure runs one measurement; failures are recorded in the result.
func (r *runner) measure(ctx context.Context, arm string, n, rep int) Measurement {
	m := Measurement{Arm: arm, Networks: n, Rep: rep, Start: time.Now().UTC(), Load1: Load1(), Commit: runinfo.Commit()}
	if why, ok := r.missing[arm]; ok {
		m.Err = "skipped: " + why
		return m
	}
	if arm == ArmOVS && n > OVSTestControllerMaxSwitches {
		m.Err = fmt.Sprintf("skipped: ovs-testcontroller serves at most %d switches (MAX_SWITCHES in its source; the rest never get a hello)", OVSTestControllerMaxSwitches)
		return m
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if err := r.measureErr(ctx, &m); err != nil {
		m.Err = err.Error()
		if ctx.Err() != nil {
			m.Err = fmt.Sprintf("not done within %v: %v", r.cfg.Timeout, err)
		}
	}
	return m
}

func (r *runner) measureErr(ctx context.Context, m *Measurement) error {
	dir := filepath.Join(r.work, fmt.Sprintf("%s-n%d-r%d", m.Arm, m.Networks, m.Rep))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	port := r.cfg.PortBase + slices.Index(AllArms(), m.Arm)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	bench := []string{"-c", listen, "-m", "latency", "-n", strconv.Itoa(r.cfg.Runs), "-w", strconv.Itoa(r.cfg.Warmup),
		"-d", r.cfg.Duration.String(), "-i", "5ms", "-t", "1s"}
	plain := []string{"-s", strconv.Itoa(m.Networks), "-M", strconv.Itoa(r.cfg.Hosts), "-p", strconv.Itoa(r.cfg.Hosts)}
	var ctl []string
	switch m.Arm {
	case ArmBare:
		ctl = []string{r.skyvisor, "--apps", "learning", "--listen", listen, "--log-level", "warn"}
		bench = append(bench, plain...)
	case ArmHypervisor:
		f, err := Setup(filepath.Join(dir, "fabric"), m.Networks, r.cfg.Hosts)
		if err != nil {
			return err
		}
		ctl = []string{r.skyvisor, "--config", f.ConfigFile, "--apps", "hypervisor", "--listen", listen, "--log-level", "warn",
			"--infra", f.InfraFile, "--state-dir", f.StateDir, "--api-listen="}
		bench = append(bench, "-fabric", f.OfbenchFile)
	case ArmOVS:
		ctl = []string{"ovs-testcontroller", "-O", "OpenFlow13", "--unixctl=" + filepath.Join(dir, "ovs-testcontroller.ctl"),
			"-vconsole:warn", fmt.Sprintf("ptcp:%d:127.0.0.1", port)}
		bench = append(bench, plain...)
	case ArmOSKen:
		ctl = []string{"osken-manager", "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", strconv.Itoa(port),
			"--default-log-level", "30", r.cfg.OSKenApp}
		bench = append(bench, plain...)
	default:
		return fmt.Errorf("unknown arm %q", m.Arm)
	}
	proc, err := startController(ctx, append(slices.Clone(r.pinCtl), ctl...), filepath.Join(dir, "controller.log"), listen)
	if err != nil {
		return err
	}
	defer proc.stop()
	r.log.Debug("controlplane: controller up", "arm", m.Arm, "networks", m.Networks, "pid", proc.cmd.Process.Pid)

	t0 := cpuTicks(proc.cmd.Process.Pid)
	w0 := time.Now()
	out, err := r.runOfbench(ctx, append(slices.Clone(r.pinBench), append([]string{r.ofbench}, bench...)...), filepath.Join(dir, "ofbench.log"))
	wall := time.Since(w0)
	t1 := cpuTicks(proc.cmd.Process.Pid)
	if t1 >= t0 && wall > 0 {
		m.ControllerCPUPct = 100 * float64(t1-t0) / clockTicks / wall.Seconds()
		if n := AnsweredTotal(out, r.cfg.Duration); n > 0 {
			m.CPUPerRequestUS = 1e6 * float64(t1-t0) / clockTicks / n
		}
	}
	if exited, perr := proc.exited(); exited {
		return fmt.Errorf("controller exited during the benchmark (%v); log %s: %s", perr, proc.logPath, tail(proc.logPath, 3))
	}
	if err != nil {
		return err
	}
	s, err := ParseSummary(out)
	if err != nil {
		return err
	}
	s.fill(m)
	if m.Switches != m.Networks {
		return fmt.Errorf("only %d of %d switches completed the handshake", m.Switches, m.Networks)
	}
	if m.AnsweredPerSec <= 0 {
		return errors.New("no packet-in was answered")
	}
	return nil
}

// runOfbench runs ofbench, writing its output to logPath, and returns its
// stdout.
func (r *runner) runOfbench(ctx context.Context, argv []string, logPath string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	_ = os.WriteFile(logPath, append(append([]byte(strings.Join(argv, " ")+"\n"), stdout.Bytes()...), stderr.Bytes()...), 0o644)
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return stdout.String(), fmt.Errorf("ofbench: %w: %s", err, msg)
	}
	return stdout.String(), nil
}

// controller is a started controller process.
type ctlProc struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	waitErr error
}

// startController starts argv with its output in logPath and waits until
// listen accepts TCP connections (20 s at most).
func startController(ctx context.Context, argv []string, logPath, listen string) (*ctlProc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	c := &ctlProc{cmd: cmd, logPath: logPath, logFile: lf, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if exited, werr := c.exited(); exited {
			c.stop()
			return nil, fmt.Errorf("%s exited before listening on %s (%v): %s", filepath.Base(argv[len(argv)-1]), listen, werr, tail(logPath, 3))
		}
		conn, err := net.DialTimeout("tcp", listen, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return c, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("controller %s not listening on %s: %v", argv[0], listen, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exited reports whether the process has ended, and how.
func (c *ctlProc) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.waitErr
	default:
		return false, nil
	}
}

// stop ends the process we started (by its PID): SIGTERM, then SIGKILL
// after 5 s.
func (c *ctlProc) stop() {
	if exited, _ := c.exited(); !exited {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	c.logFile.Close()
}

// tail returns the last n lines of a file, joined by " | ".
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// cpuTicks returns the user + system CPU time of pid in clock ticks, 0 if
// unreadable.
func cpuTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

// Load1 returns the 1-minute load average (/proc/loadavg), 0 if unknown.
func Load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// OfbenchSummary is ofbench's final line, parsed.
type OfbenchSummary struct {
	Fields map[string]string
}

// ParseSummary finds the last "ofbench: mode=..." line of ofbench's
// output and parses its key=value fields. Errors: no such line, or a
// line without switches, median, answered or rtt_ms.
func ParseSummary(out string) (OfbenchSummary, error) {
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ofbench: mode=") {
			line = l
		}
	}
	if line == "" {
		return OfbenchSummary{}, fmt.Errorf("ofbench printed no summary line: %q", lastLine(out))
	}
	s := OfbenchSummary{Fields: map[string]string{}}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "ofbench:")) {
		if k, v, ok := strings.Cut(f, "="); ok {
			s.Fields[k] = v
		}
	}
	for _, k := range []string{"switches", "median", "answered", "rtt_ms"} {
		if _, ok := s.Fields[k]; !ok {
			return OfbenchSummary{}, fmt.Errorf("ofbench summary line lacks %s: %q", k, line)
		}
	}
	return s, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Float returns field k as a number (0 if absent or not a number).
func (s OfbenchSummary) Float(k string) float64 {
	v, _ := strconv.ParseFloat(s.Fields[k], 64)
	return v
}

// fill copies the summary's figures into m and derives the latency.
func (s OfbenchSummary) fill(m *Measurement) {
	u := func(k string) uint64 { v, _ := strconv.ParseUint(s.Fields[k], 10, 64); return v }
	m.Switches = int(u("switches"))
	m.RespPerSec, m.AnsweredPerSec, m.RTTMS = s.Float("median"), s.Float("answered"), s.Float("rtt_ms")
	m.Lost, m.Timeouts, m.CtrlErrors, m.SwitchErrors, m.IgnoredFlowMods = u("lost"), u("timeouts"), u("ctrl_errors"), u("switch_errors"), u("ignored_flow_mods")
	m.OfbenchCPUPct = s.Float("self_cpu_pct")
	m.LatencyMS = LatencyMS(m.Switches, m.AnsweredPerSec)
}

// AnsweredTotal estimates the packet-ins answered over every run ofbench
// printed (warmup and measured: "run 3: ..., 61728 answered/s, ..."), each
// run lasting d.
func AnsweredTotal(out string, d time.Duration) float64 {
	var total float64
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "run ") && !strings.HasPrefix(l, "warmup ") {
			continue
		}
		i := strings.Index(l, " answered/s")
		if i < 0 {
			continue
		}
		j := strings.LastIndexByte(l[:i], ' ')
		v, err := strconv.ParseFloat(l[j+1:i], 64)
		if err == nil {
			total += v * d.Seconds()
		}
	}
	return total
}

// LatencyMS is the mean latency per request in latency mode: each of
// switches switches keeps one packet-in outstanding, so each waits
// switches / answeredPerSec seconds per request. 0 when nothing was
// answered.
func LatencyMS(switches int, answeredPerSec float64) float64 {
	if answeredPerSec <= 0 {
		return 0
	}
	return 1000 * float64(switches) / answeredPerSec
}
