package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postoffice-mail/postoffice/pop3server"
)

// TestLint checks every metric of the server's own against the
// Prometheus naming conventions (promlint: _total on counters, base
// units, help text) and the postoffice_ prefix.
func TestLint(t *testing.T) {
	m := New()
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, namespace+"_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	own := 0
	for _, f := range families {
		name := f.GetName()
		switch {
		case strings.HasPrefix(name, namespace+"_"):
			own++
		case strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"):
		default:
			t.Errorf("metric %s has neither the postoffice_ prefix nor a standard collector's", name)
		}
	}
	if own < 20 {
		t.Errorf("only %d postoffice_ metric families gathered", own)
	}
}

// TestPOP3Counts drives the POP3 observer directly and reads the series
// back.
func TestPOP3Counts(t *testing.T) {
	p := New().POP3
	p.SessionStarted(pop3server.ListenerPlain)
	p.SessionStarted(pop3server.ListenerImplicitTLS)
	p.SessionEnded(pop3server.ListenerPlain)
	p.TLSHandshake(pop3server.ListenerImplicitTLS, nil)
	p.TLSHandshake(pop3server.TLSModeSTLS, errors.New("bad record MAC"))
	p.TLSHandshake(pop3server.TLSModeSTLS, timeoutError{})
	p.Login(pop3server.MechanismUser, pop3server.LoginOK, 3*time.Millisecond)
	p.Command("RETR", true)
	p.Command("RETR", false)
	p.Command("XYZZY", false) // never a label of its own
	p.Retrieved(1000, time.Millisecond, true)
	p.Retrieved(500, time.Millisecond, false)
	p.Deleted(3)
	p.Sent(1234)

	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"open pop3", testutil.ToFloat64(p.sessionsOpen.WithLabelValues("pop3")), 0},
		{"open pop3s", testutil.ToFloat64(p.sessionsOpen.WithLabelValues("pop3s")), 1},
		{"total pop3", testutil.ToFloat64(p.sessionsTotal.WithLabelValues("pop3")), 1},
		{"tls ok", testutil.ToFloat64(p.handshakes.WithLabelValues("pop3s", "ok")), 1},
		{"tls failed", testutil.ToFloat64(p.handshakes.WithLabelValues("stls", "failed")), 1},
		{"tls timeout", testutil.ToFloat64(p.handshakes.WithLabelValues("stls", "timeout")), 1},
		{"login", testutil.ToFloat64(p.logins.WithLabelValues("USER", "ok")), 1},
		{"retr ok", testutil.ToFloat64(p.commands.WithLabelValues("RETR", "ok")), 1},
		{"retr error", testutil.ToFloat64(p.commands.WithLabelValues("RETR", "error")), 1},
		{"other", testutil.ToFloat64(p.commands.WithLabelValues("other", "error")), 1},
		{"retrieved RETR", testutil.ToFloat64(p.retrieved.WithLabelValues("RETR")), 1},
		{"retrieved TOP octets", testutil.ToFloat64(p.retrievedOctets.WithLabelValues("TOP")), 500},
		{"deleted", testutil.ToFloat64(p.deleted), 3},
		{"sent", testutil.ToFloat64(p.sent), 1234},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(p.commands); n != 2*(len(pop3Commands)+1) {
		t.Errorf("%d command series, want %d: an unknown command made a label", n, 2*(len(pop3Commands)+1))
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestHotPathAllocations: the hooks a session calls per command, per
// message and per write allocate nothing, so that metrics do not add
// garbage to the data path.
func TestHotPathAllocations(t *testing.T) {
	p := New().POP3
	for name, f := range map[string]func(){
		"Command":        func() { p.Command("RETR", true) },
		"Command other":  func() { p.Command("XYZZY", false) },
		"Retrieved":      func() { p.Retrieved(4096, time.Millisecond, true) },
		"Retrieved TOP":  func() { p.Retrieved(4096, time.Millisecond, false) },
		"Sent":           func() { p.Sent(65536) },
		"SessionStarted": func() { p.SessionStarted(pop3server.ListenerPlain); p.SessionEnded(pop3server.ListenerPlain) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

// TestPool: the pool's counters are read at scrape time, as they are.
func TestPool(t *testing.T) {
	m := New()
	stats := PoolStats{Acquired: 3, Idle: 2, Max: 20, Acquires: 100, EmptyAcquires: 7, CanceledAcquires: 1, EmptyAcquireWait: 1500 * time.Millisecond}
	m.WatchPool(func() PoolStats { return stats })
	want := `
# HELP postoffice_postgres_pool_acquire_wait_seconds_total Time spent waiting for a free connection; its rate over the rate of empty acquires is the average wait.
# TYPE postoffice_postgres_pool_acquire_wait_seconds_total counter
postoffice_postgres_pool_acquire_wait_seconds_total 1.5
# HELP postoffice_postgres_pool_canceled_acquires_total Waits for a connection given up (postgres.acquire_timeout passed, or the client went): clients got a temporary error.
# TYPE postoffice_postgres_pool_canceled_acquires_total counter
postoffice_postgres_pool_canceled_acquires_total 1
# HELP postoffice_postgres_pool_connections Connections of this node's PostgreSQL pool, by state (acquired, idle, constructing).
# TYPE postoffice_postgres_pool_connections gauge
postoffice_postgres_pool_connections{state="acquired"} 3
postoffice_postgres_pool_connections{state="constructing"} 0
postoffice_postgres_pool_connections{state="idle"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"postoffice_postgres_pool_acquire_wait_seconds_total", "postoffice_postgres_pool_canceled_acquires_total",
		"postoffice_postgres_pool_connections"); err != nil {
		t.Error(err)
	}
	stats.Acquired = 5
	want = `
# HELP postoffice_postgres_pool_connections Connections of this node's PostgreSQL pool, by state (acquired, idle, constructing).
# TYPE postoffice_postgres_pool_connections gauge
postoffice_postgres_pool_connections{state="acquired"} 5
postoffice_postgres_pool_connections{state="constructing"} 0
postoffice_postgres_pool_connections{state="idle"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "postoffice_postgres_pool_connections"); err != nil {
		t.Errorf("after the pool changed: %v", err)
	}
}
