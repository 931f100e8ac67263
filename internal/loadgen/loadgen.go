// Package loadgen is the POP3 load generator behind "postoffice bench":
// it drives any POP3 server (postoffice, Dovecot, others) on loopback with
// concurrent clients, verifies every reply it gets, and reports
// throughput, latency percentiles and — given the server's process id —
// the server's CPU time per operation and its memory (PSS, summed over its
// process tree).
//
// Scenarios:
//
//	login      connect, USER, PASS, STAT, QUIT, over and over
//	tls-login  the same over implicit TLS (RFC 8314)
//	stls-login the same after STLS (RFC 2595)
//	retr       log in and RETR every message, pipelined; verify each
//	top        the same with TOP n 10
//	pipeline   log in, then batches of NOOP, STAT, LIST n and UIDL n
//	           sent without waiting; verify every reply
//	idle       open sessions, log them in, hold them, measure memory
//	stat       one client: connect to STAT time, first and repeated
//
// Errors are counted and reported, never hidden: a reply that does not
// match (a size that differs from LIST, a missing terminator, a damaged
// dot-stuffed line, a bare LF, a wrong checksum of a benchmark message
// from GenerateMaildir) is an error, and a run with errors says it was
// disturbed.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/pop3client"
)

// Scenarios, as named on the command line.
const (
	ScenarioLogin     = "login"
	ScenarioTLSLogin  = "tls-login"
	ScenarioSTLSLogin = "stls-login"
	ScenarioRetr      = "retr"
	ScenarioTop       = "top"
	ScenarioPipeline  = "pipeline"
	ScenarioIdle      = "idle"
	ScenarioStat      = "stat"
)

// Security is how a connection is protected.
type Security int

const (
	Plain    Security = iota // plain POP3
	STLS                     // STLS (RFC 2595) before logging in
	Implicit                 // implicit TLS (RFC 8314)
)

func (s Security) String() string {
	switch s {
	case STLS:
		return "stls"
	case Implicit:
		return "tls"
	}
	return "none"
}

// client is the pop3client equivalent.
func (s Security) client() pop3client.Security {
	switch s {
	case STLS:
		return pop3client.SecuritySTLS
	case Implicit:
		return pop3client.SecurityTLS
	}
	return pop3client.SecurityNone
}

// Scenarios lists every scenario.
var Scenarios = []string{ScenarioLogin, ScenarioTLSLogin, ScenarioSTLSLogin, ScenarioRetr,
	ScenarioTop, ScenarioPipeline, ScenarioIdle, ScenarioStat}

// Config describes one run.
type Config struct {
	// Scenario is one of Scenarios.
	Scenario string
	// Addr is the server, host:port. It must be a loopback address
	// unless AllowRemote is set.
	Addr string
	// Security is how every connection is made: plain POP3 (the zero
	// value), STLS or implicit TLS. The tls-login and stls-login
	// scenarios set it.
	Security Security
	// TLS is the client TLS configuration (trusted roots, server name).
	TLS *tls.Config
	// UserFormat names the users: a format with one integer verb, such
	// as "user%04d", filled with FirstUser..FirstUser+Users-1; without a
	// verb, every session uses that one name.
	UserFormat string
	FirstUser  int
	Users      int
	// Password is every user's password.
	Password string
	// Concurrency is the number of clients (sessions, for idle).
	Concurrency int
	// Warmup runs the scenario unmeasured first; Duration is the
	// measured time (for idle: how long the sessions are held).
	Warmup   time.Duration
	Duration time.Duration
	// Once makes each login client log in to each of its users exactly
	// once and stop; the run ends when all have (priming maildrops).
	Once bool
	// MaxOps ends the measurement early after that many operations (0:
	// no limit). For stat it is the number of connections (default 5).
	MaxOps int64
	// Window is the number of commands in flight for retr, top and
	// pipeline (1: one at a time).
	Window int
	// TopLines is the line count of TOP (default TopLines).
	TopLines int
	// ExpectMessages, when > 0, is the message count every maildrop's
	// STAT must show.
	ExpectMessages int
	// Timeout bounds each wait for the server (default 30s).
	Timeout time.Duration
	// ServerPID, when not 0, is the server's process: its tree's CPU time
	// and PSS are sampled.
	ServerPID int
	// AllowRemote permits a non-loopback Addr.
	AllowRemote bool
	// Progress, if set, receives a line now and then.
	Progress io.Writer
}

// Result is what a run measured. Times are in seconds or milliseconds
// as their names say; sizes in octets.
type Result struct {
	Scenario    string    `json:"scenario"`
	Addr        string    `json:"addr"`
	Security    string    `json:"security"`
	Concurrency int       `json:"concurrency"`
	Users       int       `json:"users"`
	Window      int       `json:"window,omitempty"`
	Start       time.Time `json:"start"`
	// Seconds is the measured interval.
	Seconds float64 `json:"seconds"`
	// Ops counts completed operations: logins, messages (retr, top),
	// commands (pipeline), sessions held (idle), connections (stat).
	Ops       int64   `json:"ops"`
	OpName    string  `json:"op"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// Octets is the message octets received (retr, top) and MBPerSec
	// their rate in 10^6 octets a second.
	Octets   int64   `json:"octets,omitempty"`
	MBPerSec float64 `json:"mb_per_sec,omitempty"`
	// Verified counts messages whose checksums matched; Unverified those
	// without benchmark checksums (checked for size, line ends and
	// terminator only).
	Verified   int64 `json:"verified,omitempty"`
	Unverified int64 `json:"unverified,omitempty"`
	// Errors counts failures of every kind, in warm-up and measurement;
	// ErrorSamples holds the first few.
	Errors       int64    `json:"errors"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Latency of one operation (for pipeline: of one batch of Window
	// commands), in milliseconds.
	Latency Percentiles `json:"latency_ms"`
	// First and RepeatedMedian are the stat scenario's connect-to-STAT
	// times, in milliseconds.
	FirstMs          float64 `json:"first_ms,omitempty"`
	RepeatedMedianMs float64 `json:"repeated_median_ms,omitempty"`
	// Server resources, when ServerPID was given.
	ServerCPUSeconds  float64 `json:"server_cpu_seconds,omitempty"`
	ServerCPUPerOpUs  float64 `json:"server_cpu_per_op_us,omitempty"`
	ServerPSS         int64   `json:"server_pss,omitempty"`
	ServerPSSBaseline int64   `json:"server_pss_baseline,omitempty"`
	ServerProcesses   int     `json:"server_processes,omitempty"`
	// PSSPerSession is ServerPSS divided by the sessions held (idle).
	PSSPerSession int64 `json:"pss_per_session,omitempty"`
	// ClientCPUSeconds is the load generator's own CPU time in the
	// measured interval (it shares the machine with the server).
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// Disturbed lists why the figures should not be trusted; empty for a
	// clean run.
	Disturbed []string `json:"disturbed,omitempty"`
}

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p99_9"`
	Max     float64 `json:"max"`
}

// OK reports whether the run was clean.
func (r *Result) OK() bool { return r.Errors == 0 && len(r.Disturbed) == 0 }

// Run runs one scenario to its end (Warmup + Duration, or MaxOps, or
// ctx). It returns an error only when the run could not start; failures
// during the run are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg}
	r.res = Result{
		Scenario: cfg.Scenario, Addr: cfg.Addr, Security: cfg.Security.String(),
		Concurrency: cfg.Concurrency, Users: cfg.Users, Start: time.Now(),
	}
	switch cfg.Scenario {
	case ScenarioRetr, ScenarioTop, ScenarioPipeline:
		r.res.Window = cfg.Window
	}
	switch cfg.Scenario {
	case ScenarioIdle:
		r.runIdle(ctx)
	case ScenarioStat:
		r.runStat(ctx)
	default:
		r.runLoad(ctx)
	}
	r.finish()
	return &r.res, nil
}

func (cfg *Config) normalize() error {
	switch cfg.Scenario {
	case ScenarioTLSLogin:
		cfg.Security = Implicit
	case ScenarioSTLSLogin:
		cfg.Security = STLS
	case ScenarioLogin, ScenarioRetr, ScenarioTop, ScenarioPipeline, ScenarioIdle, ScenarioStat:
	default:
		return fmt.Errorf("unknown scenario %q (one of %s)", cfg.Scenario, strings.Join(Scenarios, ", "))
	}
	if err := checkLoopback(cfg.Addr, cfg.AllowRemote); err != nil {
		return err
	}
	if cfg.UserFormat == "" {
		return errors.New("no user name format")
	}
	if cfg.Users <= 0 {
		cfg.Users = 1
	}
	if !strings.Contains(cfg.UserFormat, "%") {
		cfg.Users = 1
	}
	if cfg.Scenario == ScenarioStat {
		cfg.Concurrency = 1
		if cfg.MaxOps <= 0 {
			cfg.MaxOps = 5
		}
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	// Two sessions of one user would meet the maildrop lock: every
	// client gets users of its own.
	if cfg.Users < cfg.Concurrency && strings.Contains(cfg.UserFormat, "%") {
		return fmt.Errorf("%d users for %d concurrent clients: each client needs a user of its own", cfg.Users, cfg.Concurrency)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 1
	}
	if cfg.TopLines <= 0 {
		cfg.TopLines = TopLines
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return nil
}

// checkLoopback refuses a server that is not on this machine: a load
// test is a denial of service to anyone else's server.
func checkLoopback(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server address: %w", err)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("server %s is not a loopback address (127.0.0.0/8, ::1); load tests against other machines need -allow-remote", addr)
	}
	return nil
}

// user returns the name of user number i (0-based).
func (cfg *Config) user(i int) string {
	if !strings.Contains(cfg.UserFormat, "%") {
		return cfg.UserFormat
	}
	return fmt.Sprintf(cfg.UserFormat, cfg.FirstUser+i%cfg.Users)
}

// usersOf returns the users client w takes turns with: every
// Concurrency-th, so that no two clients share one.
func (cfg *Config) usersOf(w int) []string {
	var names []string
	for i := w; i < cfg.Users; i += cfg.Concurrency {
		names = append(names, cfg.user(i))
	}
	if len(names) == 0 {
		names = []string{cfg.user(0)}
	}
	return names
}

func (cfg *Config) clientOptions() *pop3client.Options {
	return &pop3client.Options{Security: cfg.Security.client(), TLSConfig: cfg.TLS, Timeout: cfg.Timeout}
}

// Phases of a run.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// runner is one run in progress.
type runner struct {
	cfg   Config
	phase atomic.Int32
	ops   atomic.Int64 // operations measured so far, for MaxOps
	full  chan struct{}
	once  sync.Once

	mu      sync.Mutex
	res     Result
	samples []time.Duration

	cpuStart, selfStart time.Duration
	measureStart        atomic.Int64 // Unix nanoseconds
}

// worker is one client's tally, merged at the end.
type worker struct {
	ops, octets, verified, unverified int64
	latency                           []time.Duration
}

// maxSamples bounds the latencies kept per client.
const maxSamples = 1 << 20

// record counts one operation that began at start, if it was measured
// from beginning to end.
func (r *runner) record(w *worker, start time.Time, octets int64) {
	r.recordN(w, start, 1, octets)
}

// recordN counts n operations done together (a pipelined batch) with one
// latency sample.
func (r *runner) recordN(w *worker, start time.Time, n, octets int64) {
	if r.phase.Load() != phaseMeasure || start.UnixNano() < r.measureStart.Load() {
		return
	}
	w.ops += n
	w.octets += octets
	if len(w.latency) < maxSamples {
		w.latency = append(w.latency, time.Since(start))
	}
	if max := r.cfg.MaxOps; max > 0 && r.ops.Add(n) >= max {
		r.once.Do(func() { close(r.full) })
	}
}

// maxErrorSamples bounds the error texts kept.
const maxErrorSamples = 10

// fail counts an error, unless the run is over and it is the stop's doing.
func (r *runner) fail(ctx context.Context, err error) {
	if r.phase.Load() == phaseStop && ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Errors++
	if len(r.res.ErrorSamples) < maxErrorSamples {
		r.res.ErrorSamples = append(r.res.ErrorSamples, err.Error())
	}
}

func (r *runner) merge(w *worker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Ops += w.ops
	r.res.Octets += w.octets
	r.res.Verified += w.verified
	r.res.Unverified += w.unverified
	r.samples = append(r.samples, w.latency...)
}

func (r *runner) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
	}
}

func (r *runner) disturbed(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Disturbed = append(r.res.Disturbed, fmt.Sprintf(format, args...))
}

// beginMeasure samples the resources and starts counting.
func (r *runner) beginMeasure() {
	if pid := r.cfg.ServerPID; pid != 0 {
		cpu, err := TreeCPU(pid)
		if err != nil {
			r.disturbed("server CPU not sampled at the start: %v", err)
		}
		r.cpuStart = cpu
	}
	r.selfStart = selfCPU()
	r.measureStart.Store(time.Now().UnixNano())
	r.phase.Store(phaseMeasure)
}

// endMeasure stops counting and samples the resources again.
func (r *runner) endMeasure() {
	r.phase.Store(phaseStop)
	r.res.Seconds = time.Since(time.Unix(0, r.measureStart.Load())).Seconds()
	r.res.ClientCPUSeconds = (selfCPU() - r.selfStart).Seconds()
	if pid := r.cfg.ServerPID; pid != 0 {
		cpu, err := TreeCPU(pid)
		if err != nil {
			r.disturbed("server CPU not sampled at the end: %v", err)
		} else {
			r.res.ServerCPUSeconds = (cpu - r.cpuStart).Seconds()
		}
		if r.cfg.Scenario != ScenarioIdle {
			r.samplePSS(&r.res.ServerPSS)
		}
	}
}

func (r *runner) samplePSS(dst *int64) {
	pss, n, err := TreePSS(r.cfg.ServerPID)
	if err != nil {
		r.disturbed("server memory not sampled: %v", err)
		return
	}
	*dst = pss
	r.res.ServerProcesses = n
}

// runLoad runs the throughput scenarios: Concurrency clients in a loop
// through warm-up and measurement.
func (r *runner) runLoad(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.full = make(chan struct{})
	var body func(ctx context.Context, id int, w *worker)
	switch r.cfg.Scenario {
	case ScenarioLogin, ScenarioTLSLogin, ScenarioSTLSLogin:
		r.res.OpName = "login"
		body = r.loginClient
	case ScenarioRetr, ScenarioTop:
		r.res.OpName = "message"
		body = r.messageClient
	case ScenarioPipeline:
		r.res.OpName = "command"
		body = r.pipelineClient
	}
	if r.cfg.Once {
		r.cfg.Warmup = 0
		r.beginMeasure()
	}
	var wg sync.WaitGroup
	for id := range r.cfg.Concurrency {
		wg.Go(func() {
			w := &worker{}
			body(ctx, id, w)
			r.merge(w)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if !r.cfg.Once {
		r.progress("%s: %d clients, warm-up %v", r.cfg.Scenario, r.cfg.Concurrency, r.cfg.Warmup)
		if !sleepCtx(ctx, r.cfg.Warmup) {
			r.disturbed("interrupted during warm-up")
		}
		r.beginMeasure()
	}
	r.progress("%s: measuring for %v", r.cfg.Scenario, r.cfg.Duration)
	timer := time.NewTimer(r.cfg.Duration)
	select {
	case <-timer.C:
		if r.cfg.Once {
			r.disturbed("not every user logged in within %v", r.cfg.Duration)
		}
	case <-r.full:
		timer.Stop()
	case <-done: // every client stopped by itself (Once)
		timer.Stop()
	case <-ctx.Done():
		timer.Stop()
		r.disturbed("interrupted during measurement")
	}
	r.endMeasure()
	// Clients finish the operation in hand and leave with QUIT; past a
	// grace period their connections are cut.
	select {
	case <-done:
	case <-time.After(r.cfg.Timeout):
		cancel()
		<-done
	}
}

// stopping reports whether clients should wind down.
func (r *runner) stopping(ctx context.Context) bool {
	return r.phase.Load() == phaseStop || ctx.Err() != nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// finish computes the derived figures and notes what disturbed the run.
func (r *runner) finish() {
	res := &r.res
	if res.Seconds > 0 && res.Scenario != ScenarioIdle && res.Scenario != ScenarioStat {
		res.OpsPerSec = float64(res.Ops) / res.Seconds
		res.MBPerSec = float64(res.Octets) / res.Seconds / 1e6
	}
	if res.Ops > 0 && res.ServerCPUSeconds > 0 {
		res.ServerCPUPerOpUs = res.ServerCPUSeconds / float64(res.Ops) * 1e6
	}
	res.Latency = percentiles(r.samples)
	if res.Errors > 0 {
		res.Disturbed = append(res.Disturbed, fmt.Sprintf("%d errors", res.Errors))
	}
	if res.Ops == 0 {
		res.Disturbed = append(res.Disturbed, "no operation completed in the measured interval")
	}
}

func percentiles(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	at := func(q float64) float64 {
		return ms(samples[min(len(samples)-1, int(q*float64(len(samples))))])
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Percentiles{
		Samples: len(samples),
		Mean:    ms(sum / time.Duration(len(samples))),
		P50:     at(0.50),
		P90:     at(0.90),
		P99:     at(0.99),
		P999:    at(0.999),
		Max:     ms(samples[len(samples)-1]),
	}
}
