package pop3server

import (
	"sync/atomic"
	"time"
)

// Observer is told of the events a server's metrics count (package
// metrics implements it with Prometheus). The engine never depends on
// it: without one (the default) every hook is a nil check.
//
// The methods are called from session goroutines, concurrently, in the
// middle of serving: they must be cheap, must not block and must not
// keep their arguments. No argument carries a user name or an address;
// every string is one of a small fixed set (the constants below, a
// command name, a SASL mechanism the configuration offers), so that an
// implementation can use them as metric labels.
type Observer interface {
	// SessionStarted and SessionEnded bracket a connection that was
	// admitted (not refused by the limits); listener is ListenerPlain or
	// ListenerImplicitTLS.
	SessionStarted(listener string)
	SessionEnded(listener string)
	// ConnectionRefused counts a connection refused by the limits, with
	// the Refused* reason.
	ConnectionRefused(reason string)
	// TLSHandshake reports a finished TLS handshake: mode is
	// ListenerImplicitTLS or TLSModeSTLS; err is nil on success.
	TLSHandshake(mode string, err error)
	// Login reports the outcome of one login attempt: mechanism is
	// MechanismUser, MechanismAPOP or the SASL mechanism's name, result
	// one of the Login* constants. checking is the time spent checking
	// the credentials (the user database), without the deliberate
	// delays against password guessing; 0 when none were checked.
	Login(mechanism, result string, checking time.Duration)
	// MaildropOpened reports the time it took to open and lock a
	// maildrop and take its snapshot (the work behind the first STAT),
	// successful or not.
	MaildropOpened(d time.Duration, err error)
	// Command reports a command answered: name is the upper-case command
	// (CommandOther for anything unknown), ok whether the reply was
	// positive.
	Command(name string, ok bool)
	// Retrieved reports a message sent whole by RETR or TOP: its size as
	// announced and the time from the command to the last octet handed
	// to the connection. retr is false for TOP.
	Retrieved(octets int64, d time.Duration, retr bool)
	// Deleted reports messages removed at QUIT (RFC 1939 UPDATE),
	// deletion marks and the EXPIRE policy alike.
	Deleted(n int)
	// Sent counts octets written to clients (before TLS).
	Sent(octets int)
	// Panic counts a session handler's panic, which was recovered.
	Panic()
}

// Listener kinds, for SessionStarted and TLSHandshake.
const (
	// ListenerPlain is a Serve listener (port 110; STLS when offered).
	ListenerPlain = "pop3"
	// ListenerImplicitTLS is a ServeTLS listener (port 995).
	ListenerImplicitTLS = "pop3s"
	// TLSModeSTLS is a handshake after the STLS command.
	TLSModeSTLS = "stls"
)

// Reasons for ConnectionRefused.
const (
	RefusedShuttingDown = "shutting_down"
	RefusedMaxConns     = "max_connections"
	RefusedMaxPerIP     = "max_connections_per_ip"
)

// Login mechanisms besides SASL's.
const (
	// MechanismUser is USER and PASS (RFC 1939 §7).
	MechanismUser = "USER"
	// MechanismAPOP is APOP (RFC 1939 §7).
	MechanismAPOP = "APOP"
)

// Login results.
const (
	// LoginOK: the maildrop is open; the session is in TRANSACTION.
	LoginOK = "ok"
	// LoginFailed: wrong credentials or an unknown user (the same
	// answer for both), including a malformed SASL exchange.
	LoginFailed = "failed"
	// LoginRefused: credentials not accepted on this connection
	// (plaintext without TLS).
	LoginRefused = "refused"
	// LoginCancelled: the client ended a SASL exchange with "*".
	LoginCancelled = "cancelled"
	// LoginDelayed: the credentials were right but RFC 2449 LOGIN-DELAY
	// has not passed.
	LoginDelayed = "login_delay"
	// LoginInUse: the credentials were right but another session holds
	// the maildrop ([IN-USE], RFC 3206).
	LoginInUse = "in_use"
	// LoginUnavailable: the user database could not answer.
	LoginUnavailable = "unavailable"
	// LoginStoreError: the maildrop could not be opened.
	LoginStoreError = "store_error"
)

// CommandOther names every command outside RFC 1939, 2449, 2595, 5034
// and 6856 for Observer.Command, so that what a client sends never
// becomes a label.
const CommandOther = "other"

// SetObserver makes o receive the server's events, from the next
// connection on (nil stops them). It may be called at any time.
func (s *Server) SetObserver(o Observer) {
	if o == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&o)
}

// loadObserver returns the current observer, or nil.
func (s *Server) loadObserver() Observer {
	if p := s.observer.Load(); p != nil {
		return *p
	}
	return nil
}

// observerSlot holds a server's Observer for SetObserver.
type observerSlot = atomic.Pointer[Observer]

// commandLabel maps a command to a label: itself if it is one the
// server knows, CommandOther otherwise.
func commandLabel(name string) string {
	if knownCommands[name] {
		return name
	}
	return CommandOther
}

// loginAttempt starts a login attempt with mechanism, for the Observer.
func (c *conn) loginAttempt(mechanism string) {
	c.mechanism, c.checking = mechanism, 0
}

// loginResult reports the attempt's outcome to the Observer, once.
func (c *conn) loginResult(result string) {
	if c.obs != nil && c.mechanism != "" {
		c.obs.Login(c.mechanism, result, c.checking)
	}
	c.mechanism, c.checking = "", 0
}
