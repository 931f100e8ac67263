package metrics

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postoffice-mail/postoffice/pop3server"
)

// POP3 counts the POP3 engine's events; it implements
// pop3server.Observer.
type POP3 struct {
	sessionsOpen    *prometheus.GaugeVec
	sessionsTotal   *prometheus.CounterVec
	refused         *prometheus.CounterVec
	handshakes      *prometheus.CounterVec
	logins          *prometheus.CounterVec
	loginDuration   prometheus.Histogram
	maildropOpen    prometheus.Histogram
	commands        *prometheus.CounterVec
	retrDuration    prometheus.Histogram
	retrieved       *prometheus.CounterVec
	retrievedOctets *prometheus.CounterVec
	deleted         prometheus.Counter
	sent            prometheus.Counter
	panics          prometheus.Counter

	// The series the hooks on the data path use, resolved once, so
	// that counting allocates nothing.
	byListener map[string]listenerSeries
	byCommand  map[string]*[2]prometheus.Counter // [error, ok]
	other      *[2]prometheus.Counter
	// retrieval series of RETR [0] and TOP [1]: messages, octets.
	retrievals [2][2]prometheus.Counter
}

// listenerSeries are the session series of one listener kind.
type listenerSeries struct {
	open  prometheus.Gauge
	total prometheus.Counter
}

var _ pop3server.Observer = (*POP3)(nil)

// pop3Commands are the commands the server knows (pop3server's command
// table), each a label value of postoffice_pop3_commands_total.
var pop3Commands = []string{
	"CAPA", "USER", "PASS", "APOP", "STLS", "AUTH", "UTF8", "LANG", "QUIT",
	"STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET",
}

// loginResults are the results a login can have.
var loginResults = []string{
	pop3server.LoginOK, pop3server.LoginFailed, pop3server.LoginRefused, pop3server.LoginCancelled,
	pop3server.LoginDelayed, pop3server.LoginInUse, pop3server.LoginUnavailable, pop3server.LoginStoreError,
}

func newPOP3(panics prometheus.Counter) *POP3 {
	p := &POP3{
		panics: panics,
		sessionsOpen: newGaugeVec("pop3", "sessions_open",
			"POP3 connections open now, by listener (pop3: port 110 with STLS, pop3s: implicit TLS).", "listener"),
		sessionsTotal: newCounterVec("pop3", "sessions_total",
			"POP3 connections accepted, by listener.", "listener"),
		refused: newCounterVec("pop3", "connections_refused_total",
			"POP3 connections refused at once with [SYS/TEMP], by reason (max_connections, max_connections_per_ip, shutting_down).", "reason"),
		handshakes: newCounterVec("pop3", "tls_handshakes_total",
			"TLS handshakes, by mode (pop3s: implicit TLS, stls: after STLS) and result (ok, failed, timeout).", "mode", "result"),
		logins: newCounterVec("pop3", "logins_total",
			"POP3 login attempts, by mechanism (USER, APOP or the SASL mechanism) and result "+
				"(ok, failed, refused, cancelled, login_delay, in_use, unavailable, store_error).", "mechanism", "result"),
		loginDuration: newHistogram("pop3", "login_duration_seconds",
			"Time spent checking a login's credentials (the user database and password hash), without the deliberate delays after failures.", latencyBuckets),
		maildropOpen: newHistogram("pop3", "maildrop_open_duration_seconds",
			"Time to open and lock a maildrop and take its snapshot at login: what a client waits for before its first STAT.", latencyBuckets),
		commands: newCounterVec("pop3", "commands_total",
			"POP3 commands answered, by command (other: anything unknown) and result (ok: +OK, error: -ERR).", "command", "result"),
		retrDuration: newHistogram("pop3", "retr_duration_seconds",
			"Time from a RETR command to its last octet handed to the connection, for messages sent whole.", latencyBuckets),
		retrieved: newCounterVec("pop3", "messages_retrieved_total",
			"Messages sent whole, by command: RETR, or a TOP whose line count covered the whole message (how fetchmail downloads).", "command"),
		retrievedOctets: newCounterVec("pop3", "retrieved_bytes_total",
			"Size of the messages sent whole, as announced (before dot-stuffing), by command.", "command"),
		deleted: newCounter("pop3", "messages_deleted_total",
			"Messages removed at QUIT: marked with DELE or expired by the EXPIRE policy."),
		sent: newCounter("pop3", "sent_bytes_total",
			"Octets written to POP3 clients, as carried by the network (TLS included)."),
	}
	p.byListener = make(map[string]listenerSeries)
	for _, l := range []string{pop3server.ListenerPlain, pop3server.ListenerImplicitTLS} {
		p.byListener[l] = listenerSeries{open: p.sessionsOpen.WithLabelValues(l), total: p.sessionsTotal.WithLabelValues(l)}
	}
	p.byCommand = make(map[string]*[2]prometheus.Counter)
	for _, name := range append(slices.Clone(pop3Commands), pop3server.CommandOther) {
		p.byCommand[name] = &[2]prometheus.Counter{p.commands.WithLabelValues(name, "error"), p.commands.WithLabelValues(name, "ok")}
	}
	p.other = p.byCommand[pop3server.CommandOther]
	for i, cmd := range []string{"RETR", "TOP"} {
		p.retrievals[i] = [2]prometheus.Counter{p.retrieved.WithLabelValues(cmd), p.retrievedOctets.WithLabelValues(cmd)}
	}
	for _, r := range []string{pop3server.RefusedMaxConns, pop3server.RefusedMaxPerIP, pop3server.RefusedShuttingDown} {
		p.refused.WithLabelValues(r)
	}
	for _, mode := range []string{pop3server.ListenerImplicitTLS, pop3server.TLSModeSTLS} {
		for _, r := range []string{"ok", "failed", "timeout"} {
			p.handshakes.WithLabelValues(mode, r)
		}
	}
	return p
}

// InitLogins makes the login series of these mechanisms exist at 0
// before the first login, so that a rate() over the first failures is not
// lost: the server calls it with the mechanisms its configuration offers.
func (p *POP3) InitLogins(mechanisms ...string) {
	for _, mech := range mechanisms {
		for _, r := range loginResults {
			p.logins.WithLabelValues(mech, r)
		}
	}
}

func (p *POP3) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		p.sessionsOpen, p.sessionsTotal, p.refused, p.handshakes, p.logins, p.loginDuration,
		p.maildropOpen, p.commands, p.retrDuration, p.retrieved, p.retrievedOctets, p.deleted, p.sent,
	}
}

// listener returns the series of a listener kind.
func (p *POP3) listener(name string) listenerSeries {
	if s, ok := p.byListener[name]; ok {
		return s
	}
	return listenerSeries{open: p.sessionsOpen.WithLabelValues(name), total: p.sessionsTotal.WithLabelValues(name)}
}

// SessionStarted implements pop3server.Observer.
func (p *POP3) SessionStarted(listener string) {
	s := p.listener(listener)
	s.open.Inc()
	s.total.Inc()
}

// SessionEnded implements pop3server.Observer.
func (p *POP3) SessionEnded(listener string) { p.listener(listener).open.Dec() }

// ConnectionRefused implements pop3server.Observer.
func (p *POP3) ConnectionRefused(reason string) { p.refused.WithLabelValues(reason).Inc() }

// TLSHandshake implements pop3server.Observer.
func (p *POP3) TLSHandshake(mode string, err error) {
	result := "ok"
	if err != nil {
		result = "failed"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			result = "timeout"
		}
	}
	p.handshakes.WithLabelValues(mode, result).Inc()
}

// Login implements pop3server.Observer.
func (p *POP3) Login(mechanism, result string, checking time.Duration) {
	p.logins.WithLabelValues(mechanism, result).Inc()
	if checking > 0 {
		p.loginDuration.Observe(checking.Seconds())
	}
}

// MaildropOpened implements pop3server.Observer.
func (p *POP3) MaildropOpened(d time.Duration, _ error) { p.maildropOpen.Observe(d.Seconds()) }

// Command implements pop3server.Observer.
func (p *POP3) Command(name string, ok bool) {
	c := p.byCommand[name]
	if c == nil {
		c = p.other
	}
	if ok {
		c[1].Inc()
	} else {
		c[0].Inc()
	}
}

// Retrieved implements pop3server.Observer.
func (p *POP3) Retrieved(octets int64, d time.Duration, retr bool) {
	series := &p.retrievals[1]
	if retr {
		series = &p.retrievals[0]
		p.retrDuration.Observe(d.Seconds())
	}
	series[0].Inc()
	series[1].Add(float64(octets))
}

// Deleted implements pop3server.Observer.
func (p *POP3) Deleted(n int) { p.deleted.Add(float64(n)) }

// Sent implements pop3server.Observer.
func (p *POP3) Sent(octets int) { p.sent.Add(float64(octets)) }

// Panic implements pop3server.Observer.
func (p *POP3) Panic() { p.panics.Inc() }
