package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/internal/loadgen"
)

// benchHelp is the help of "postoffice bench".
var benchHelp = &help{
	synopsis: []string{
		"bench SCENARIO [flags]",
		"bench maildir -dir DIR [-messages N] [-seed S]",
	},
	description: `Load-tests a POP3 server on loopback and prints throughput, latency and
errors (-json for a machine-readable result). The scenarios:

  login       connect, USER, PASS, STAT, QUIT, over and over
  tls-login   the same over implicit TLS
  stls-login  the same after STLS
  retr        RETR every message of each maildrop, pipelined, verified
  top         the same with TOP n 10
  pipeline    batches of NOOP, STAT, LIST n, UIDL n without waiting
  idle        hold -c logged-in sessions for -duration; measure memory
  stat        connect-to-STAT time, first and repeated (-count times)

"bench maildir" writes the deterministic benchmark maildrop into -dir
(-messages messages, 1000 by default, from generator -seed): its messages
carry checksums that retr and top verify.

Every client uses users of its own: -user is a format such as user%04d
filled with -first-user .. -first-user+-users-1. Errors are counted and
reported; the exit status is 1 if there were any. With -server-pid the
server's CPU time and memory (PSS) are read from /proc, summed over its
process tree. The server must be on loopback unless -allow-remote is
given, for a server you run yourself. docs/performance.md has the
measured figures and how they were taken.`,
	examples: []example{
		{"Write a maildrop of 1000 messages for user0.", "postoffice bench maildir -dir /srv/bench/user0/Maildir -messages 1000"},
		{"Logins per second with 16 clients, for 10 seconds.", "postoffice bench login -addr 127.0.0.1:110 -user user0 -password secret -c 16"},
		{"Pipelined, verified RETR over implicit TLS, with the server's CPU time.", "postoffice bench retr -addr 127.0.0.1:995 -security tls -ca ca.pem -user user0 -password secret -server-pid $(pidof postoffice)"},
	},
}

// benchMaildirHelp is the help of "postoffice bench maildir".
var benchMaildirHelp = &help{
	synopsis:    []string{"bench maildir -dir DIR [-messages N] [-seed S]"},
	description: "Writes the deterministic benchmark maildrop that the retr and top\nscenarios of \"postoffice bench\" verify: the same seed gives the same\nmessages.",
	examples: []example{
		{"Write 1000 messages into a new Maildir.", "postoffice bench maildir -dir /srv/bench/user0/Maildir -messages 1000"},
	},
}

func runBench(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelpFlag(args[0]) {
		fs, _, _ := benchFlags(stderr)
		fs.Usage()
		if len(args) > 0 {
			return errHelpShown
		}
		return fail(exitUsage, "missing scenario")
	}
	if args[0] == "maildir" {
		return runBenchMaildir(args[1:], stdout, stderr)
	}
	scenario := args[0]
	fs, cfg, opt := benchFlags(stderr)
	if err := fs.Parse(args[1:]); err != nil {
		return fail(exitUsage, "%v", err)
	}
	cfg.Scenario = scenario
	switch opt.security {
	case "none":
		cfg.Security = loadgen.Plain
	case "stls", "starttls":
		cfg.Security = loadgen.STLS
	case "tls":
		cfg.Security = loadgen.Implicit
	default:
		return fail(exitUsage, "-security must be none, stls or tls")
	}
	if cfg.Window == 0 {
		switch scenario {
		case loadgen.ScenarioRetr, loadgen.ScenarioTop:
			cfg.Window = 8
		case loadgen.ScenarioPipeline:
			cfg.Window = 32
		}
	}
	if scenario == loadgen.ScenarioStat && cfg.Timeout < 10*time.Minute {
		cfg.Timeout = 10 * time.Minute // a first STAT may read every message
	}
	tc := &tls.Config{ServerName: opt.serverName, InsecureSkipVerify: opt.insecure}
	for _, g := range strings.Split(opt.groups, ",") {
		id, ok := tlsGroups[strings.ToLower(strings.TrimSpace(g))]
		if !ok {
			return fail(exitUsage, "-tls-groups: unknown group %q (x25519, x25519mlkem768, p256, p384)", g)
		}
		tc.CurvePreferences = append(tc.CurvePreferences, id)
	}
	if opt.caFile != "" {
		pem, err := os.ReadFile(opt.caFile)
		if err != nil {
			return fail(exitUsage, "-ca: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return fail(exitUsage, "-ca: no certificate in %s", opt.caFile)
		}
	}
	cfg.TLS = tc
	if !opt.quiet {
		cfg.Progress = stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, *cfg)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	summary := stdout
	if opt.jsonFile != "" {
		data, _ := json.MarshalIndent(res, "", "  ")
		data = append(data, '\n')
		if opt.jsonFile == "-" {
			stdout.Write(data)
			summary = stderr
		} else if err := os.WriteFile(opt.jsonFile, data, 0o644); err != nil {
			return fail(exitFailure, "write %s: %v", opt.jsonFile, err)
		}
	}
	printResult(summary, res)
	if !res.OK() {
		return fail(exitFailure, "run disturbed: %s", strings.Join(res.Disturbed, "; "))
	}
	return nil
}

type benchOptions struct {
	security, caFile, serverName, jsonFile, groups string
	insecure, quiet                                bool
}

// tlsGroups are the key exchanges -tls-groups can offer.
var tlsGroups = map[string]tls.CurveID{
	"x25519":         tls.X25519,
	"x25519mlkem768": tls.X25519MLKEM768,
	"p256":           tls.CurveP256,
	"p384":           tls.CurveP384,
}

func benchFlags(stderr io.Writer) (*flag.FlagSet, *loadgen.Config, *benchOptions) {
	fs := newFlagSet("bench", benchHelp, stderr)
	cfg := &loadgen.Config{}
	opt := &benchOptions{}
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:110", "server `host:port` (loopback)")
	fs.StringVar(&opt.security, "security", "none", "`none`, stls or tls for every connection (tls-login and stls-login set it)")
	fs.StringVar(&opt.caFile, "ca", "", "PEM `file` of the CA that signed the server's certificate")
	fs.StringVar(&opt.serverName, "server-name", "", "`name` the server's certificate must carry (default: the host of -addr)")
	fs.BoolVar(&opt.insecure, "insecure", false, "do not verify the server's certificate")
	// X25519 alone by default: every server then does the same key
	// exchange (Go servers would pick the post-quantum hybrid that
	// OpenSSL 3.0, Debian 12's, lacks).
	fs.StringVar(&opt.groups, "tls-groups", "x25519", "TLS key exchange `groups` offered, in order: x25519, x25519mlkem768, p256, p384")
	fs.StringVar(&cfg.UserFormat, "user", "user%d", "user name `format` (one %d), or a single name")
	fs.IntVar(&cfg.FirstUser, "first-user", 0, "`number` of the first user")
	fs.IntVar(&cfg.Users, "users", 1, "`number` of users")
	fs.StringVar(&cfg.Password, "password", "", "every user's `password`")
	fs.IntVar(&cfg.Concurrency, "c", 1, "concurrent clients (idle: sessions held)")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured warm-up `time`")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured `time` (idle: how long the sessions are held)")
	fs.Int64Var(&cfg.MaxOps, "count", 0, "stop after this many operations (stat: connections, default 5)")
	fs.BoolVar(&cfg.Once, "once", false, "login: log in to every user once, then stop (to prime maildrops)")
	fs.IntVar(&cfg.Window, "window", 0, "commands in flight (retr, top: default 8; pipeline: 32)")
	fs.IntVar(&cfg.TopLines, "top-lines", loadgen.TopLines, "body lines for TOP")
	fs.IntVar(&cfg.ExpectMessages, "expect", 0, "`messages` every maildrop must have (0: any)")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "longest wait for the server")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "server `pid`: sample its process tree's CPU and memory")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a server that is not on loopback (only a server you run)")
	fs.StringVar(&opt.jsonFile, "json", "", "write the result as JSON to `file` (- for standard output)")
	fs.BoolVar(&opt.quiet, "q", false, "no progress lines")
	return fs, cfg, opt
}

func printResult(w io.Writer, r *loadgen.Result) {
	fmt.Fprintf(w, "%s against %s (%s), %d clients", r.Scenario, r.Addr, r.Security, r.Concurrency)
	if r.Window > 1 {
		fmt.Fprintf(w, ", window %d", r.Window)
	}
	fmt.Fprintf(w, ", %.1fs measured\n", r.Seconds)
	switch r.Scenario {
	case loadgen.ScenarioIdle:
		fmt.Fprintf(w, "  sessions held  %d\n", r.Ops)
		if r.ServerPSS > 0 {
			fmt.Fprintf(w, "  server PSS     %.1f MB (%d processes; %.1f MB before), %.1f KB a session\n",
				float64(r.ServerPSS)/1e6, r.ServerProcesses, float64(r.ServerPSSBaseline)/1e6, float64(r.PSSPerSession)/1e3)
		}
	case loadgen.ScenarioStat:
		fmt.Fprintf(w, "  connections    %d\n  first STAT     %.1f ms\n  repeated STAT  %.1f ms (median)\n", r.Ops, r.FirstMs, r.RepeatedMedianMs)
	default:
		fmt.Fprintf(w, "  %-14s %d (%.0f/s)\n", r.OpName+"s", r.Ops, r.OpsPerSec)
		if r.Octets > 0 {
			fmt.Fprintf(w, "  octets         %d (%.1f MB/s); %d verified, %d without checksums\n", r.Octets, r.MBPerSec, r.Verified, r.Unverified)
		}
		l := r.Latency
		fmt.Fprintf(w, "  latency ms     p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", l.P50, l.P90, l.P99, l.Max)
	}
	if r.ServerCPUSeconds > 0 {
		fmt.Fprintf(w, "  server CPU     %.2fs (%.1f µs per %s)\n", r.ServerCPUSeconds, r.ServerCPUPerOpUs, r.OpName)
	}
	fmt.Fprintf(w, "  client CPU     %.2fs\n", r.ClientCPUSeconds)
	fmt.Fprintf(w, "  errors         %d\n", r.Errors)
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "    %s\n", e)
	}
	for _, d := range r.Disturbed {
		fmt.Fprintf(w, "  DISTURBED: %s\n", d)
	}
}

func runBenchMaildir(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench maildir", benchMaildirHelp, stderr)
	dir := fs.String("dir", "", "Maildir `directory` to create")
	n := fs.Int("messages", 1000, "number of messages")
	seed := fs.Uint64("seed", 1, "generator seed: the same seed gives the same messages")
	if err := fs.Parse(args); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if *dir == "" {
		return fail(exitUsage, "-dir is required")
	}
	st, err := loadgen.GenerateMaildir(*dir, *n, *seed)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	fmt.Fprintf(stdout, "%s: %d messages, %d octets\n", *dir, st.Messages, st.Octets)
	return nil
}
