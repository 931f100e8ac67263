// Package pop3server is the POP3 protocol engine: listeners, one goroutine
// per connection, the AUTHORIZATION → TRANSACTION → UPDATE state machine of
// RFC 1939, RFC 2449 capabilities and response codes, STLS (RFC 2595) and
// implicit TLS (RFC 8314), timeouts, limits and pipelining. It knows nothing
// about files or databases: users come from an auth.Authenticator and
// maildrops from a store.Store.
package pop3server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/sasl"
	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// Config is what a Server needs. Zero limits take the defaults documented
// on each field.
type Config struct {
	// Hostname appears in the greeting and in APOP timestamps.
	Hostname string
	// Auth checks credentials. If it also implements
	// auth.APOPAuthenticator, APOP can be enabled.
	Auth auth.Authenticator
	// Store opens maildrops.
	Store store.Store
	// TLS, when set, enables STLS on Serve listeners and is required by
	// ServeTLS. Its MinVersion is raised to TLS 1.2 if lower, and unless
	// it lists CipherSuites, TLS 1.2 offers the forward-secret AEAD
	// suites alone (DefaultCipherSuites).
	TLS *tls.Config
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger

	// AllowInsecureAuth permits USER/PASS and APOP on unencrypted
	// connections from non-loopback addresses (RFC 2595 §2.1 advises
	// against it; default false).
	AllowInsecureAuth bool
	// APOP enables the APOP command and the greeting timestamp.
	APOP bool
	// ExpireDays is the RFC 2449 EXPIRE policy: -1 for NEVER (the
	// default when ExpireSet is false), 0 to delete every retrieved
	// message at QUIT, N to delete messages N days after first retrieval.
	ExpireDays int
	// ExpireSet distinguishes ExpireDays 0 from "not configured".
	ExpireSet bool
	// LoginDelay is the minimum time between two logins of one user
	// (RFC 2449 LOGIN-DELAY); 0 disables it.
	LoginDelay time.Duration
	// Implementation is the IMPLEMENTATION capability text; empty omits it.
	Implementation string

	// SASLMechanisms are the AUTH mechanisms offered (RFC 5034), in the
	// order listed; nil means PLAIN and LOGIN. New fails for a mechanism
	// the backends cannot run. PLAIN, LOGIN and the OAuth mechanisms are
	// offered only where plaintext authentication is allowed.
	SASLMechanisms []string
	// Tokens validates OAuth bearer tokens for OAUTHBEARER and XOAUTH2.
	Tokens auth.TokenValidator
	// LoginGuard, if set, slows down clients that keep failing to log in.
	LoginGuard LoginGuard
	// AuthTimeout bounds one AUTH exchange, from the command to its
	// result (default 60s): a client that never answers a challenge does
	// not hold the session for the idle timeout.
	AuthTimeout time.Duration

	// MaxConnections bounds simultaneous connections (default 1000).
	MaxConnections int
	// MaxConnectionsPerIP bounds simultaneous connections from one
	// address, IPv6 grouped by /64 (default 20).
	MaxConnectionsPerIP int
	// MaxLineLength bounds a command line including CRLF (default and
	// minimum 255, RFC 2449 §4).
	MaxLineLength int
	// MaxBadCommands closes a session after that many -ERR replies
	// (default 20).
	MaxBadCommands int
	// IdleTimeout is the inactivity autologout timer (default 10
	// minutes, the RFC 1939 §3 minimum; package config enforces that
	// minimum, tests use less).
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client (default 60s).
	WriteTimeout time.Duration
	// TLSHandshakeTimeout bounds a TLS handshake (default 30s).
	TLSHandshakeTimeout time.Duration
	// AuthFailureDelay is the pause before answering a failed login
	// (default 2s; negative disables it, for tests).
	AuthFailureDelay time.Duration

	// TraceUser names one user whose sessions are traced: every command
	// (passwords and SASL responses masked) and the first line of every
	// reply, logged at Info to TraceLogger. Lines a session sent before
	// it named the user are included. Empty traces nobody.
	TraceUser string
	// TraceLogger receives the trace; nil means Logger.
	TraceLogger *slog.Logger
}

// LoginGuard is the brute-force defence (package auth/penalty): it counts
// failed logins per remote network and per user name and says how long to
// hold back the next attempt.
type LoginGuard interface {
	// Delay is how long to wait before checking this attempt.
	Delay(remote netip.Addr, username string) time.Duration
	// Failure records a failed attempt; secret lets the guard recognise a
	// client that merely repeats the same wrong password.
	Failure(remote netip.Addr, username, secret string)
	// Success records a successful login.
	Success(remote netip.Addr, username string)
}

// DefaultSASLMechanisms are offered when Config.SASLMechanisms is nil:
// those every user database supports, whatever its password schemes.
var DefaultSASLMechanisms = []string{sasl.Plain, sasl.Login}

// DefaultCipherSuites are the TLS 1.2 cipher suites offered when
// Config.TLS lists none: ECDHE key exchange with AES-GCM or
// ChaCha20-Poly1305 only. Go's own default adds the CBC suites with
// SHA-1 MACs, which TLS audits report ("obsoleted CBC ciphers"); the
// suites RFC 9325 §4.2 recommends for TLS 1.2 are ECDHE with AES-GCM.
// TLS 1.3's suites are all AEAD and not configurable.
var DefaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown or Close.
var ErrServerClosed = errors.New("pop3server: server closed")

// Defaults for the Config limits.
const (
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 20
	DefaultMaxBadCommands      = 20
	DefaultIdleTimeout         = 10 * time.Minute
	DefaultWriteTimeout        = 60 * time.Second
	DefaultTLSHandshakeTimeout = 30 * time.Second
	DefaultAuthFailureDelay    = 2 * time.Second
	DefaultAuthTimeout         = 60 * time.Second
)

// Server serves POP3 on any number of listeners.
type Server struct {
	// cur is the configuration new sessions take. Each session keeps
	// the one it started with, so Reconfigure never changes a limit or
	// a certificate under a session in flight, and no session needs a
	// lock to read its settings.
	cur    atomic.Pointer[settings]
	logins *loginTracker

	// ctx is cancelled by Close: it ends backend calls of every session.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	listeners  map[net.Listener]struct{}
	conns      map[*conn]struct{}
	perNetwork map[string]int
	preauth    preauthQueue // the sessions not logged in, for eviction
	closed     bool
	sessions   sync.WaitGroup

	nextID   atomic.Uint64
	panics   atomic.Int64
	observer observerSlot
}

// settings is a checked Config with its defaults filled in, and what is
// built from it: one immutable snapshot, shared by the sessions that
// started under it.
type settings struct {
	Config
	log   *slog.Logger
	trace *slog.Logger
	sasl  *sasl.Server
}

// New checks cfg, fills in defaults and returns a Server. It fails when
// the configuration asks for something the backends cannot do.
func New(cfg Config) (*Server, error) {
	st, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		logins:     newLoginTracker(),
		ctx:        ctx,
		cancel:     cancel,
		listeners:  make(map[net.Listener]struct{}),
		conns:      make(map[*conn]struct{}),
		perNetwork: make(map[string]int),
	}
	s.cur.Store(st)
	return s, nil
}

// Reconfigure checks cfg as New does and makes it the configuration of
// every session that starts from now on; sessions in flight keep the
// one they started with. On error the current configuration stays.
// Connection limits apply to new connections at once: lowering
// MaxConnections closes nothing, but admits nobody until the count is
// below the new limit.
func (s *Server) Reconfigure(cfg Config) error {
	st, err := newSettings(cfg)
	if err != nil {
		return err
	}
	s.cur.Store(st)
	return nil
}

// settings returns the configuration for a session starting now.
func (s *Server) settings() *settings { return s.cur.Load() }

// newSettings checks cfg and fills in the defaults.
func newSettings(cfg Config) (*settings, error) {
	if cfg.Auth == nil || cfg.Store == nil {
		return nil, errors.New("pop3server: Auth and Store are required")
	}
	if cfg.APOP {
		if _, ok := cfg.Auth.(auth.APOPAuthenticator); !ok {
			return nil, errors.New("pop3server: APOP is enabled but the user database cannot verify APOP digests")
		}
	}
	if cfg.SASLMechanisms == nil {
		cfg.SASLMechanisms = DefaultSASLMechanisms
	}
	saslServer := sasl.NewServer(cfg.Auth, cfg.Tokens)
	for _, m := range cfg.SASLMechanisms {
		if err := saslServer.Supported(m); err != nil {
			return nil, fmt.Errorf("pop3server: %w", err)
		}
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
		if cfg.Hostname == "" {
			cfg.Hostname = "localhost"
		}
	}
	if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone()
		if cfg.TLS.MinVersion < tls.VersionTLS12 {
			cfg.TLS.MinVersion = tls.VersionTLS12
		}
		if cfg.TLS.CipherSuites == nil {
			cfg.TLS.CipherSuites = DefaultCipherSuites
		}
	}
	if !cfg.ExpireSet {
		cfg.ExpireDays = -1
	}
	setDefault(&cfg.MaxConnections, DefaultMaxConnections)
	setDefault(&cfg.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	setDefault(&cfg.MaxBadCommands, DefaultMaxBadCommands)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	setDefault(&cfg.AuthTimeout, DefaultAuthTimeout)
	if cfg.AuthFailureDelay == 0 {
		cfg.AuthFailureDelay = DefaultAuthFailureDelay
	} else if cfg.AuthFailureDelay < 0 {
		cfg.AuthFailureDelay = 0 // explicitly disabled (tests)
	}
	if cfg.MaxLineLength < pop3.MinLineLength {
		cfg.MaxLineLength = pop3.MinLineLength
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	trace := cfg.TraceLogger
	if trace == nil {
		trace = logger
	}
	return &settings{Config: cfg, log: logger, trace: trace, sasl: saslServer}, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Serve accepts plain POP3 connections on l, offering STLS when TLS is
// configured. It returns ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(l, false)
}

// ServeTLS accepts implicit-TLS connections (RFC 8314, port 995) on l.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.settings().TLS == nil {
		return errors.New("pop3server: ServeTLS needs Config.TLS")
	}
	return s.serve(l, true)
}

func (s *Server) serve(l net.Listener, implicitTLS bool) error {
	if !s.track(l) {
		l.Close()
		return ErrServerClosed
	}
	defer s.untrack(l)
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			// Out of file descriptors and the like: wait and retry
			// rather than spin or give up (as net/http does).
			if retryAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.settings().log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		backoff = 0
		c := s.newConn(nc, implicitTLS)
		if implicitTLS && c.cfg.TLS == nil {
			// Reconfigured without a certificate: nothing to offer.
			c.log.Error("implicit TLS connection but no certificate is configured")
			nc.Close()
			continue
		}
		if reason, label := s.admit(c); reason != "" {
			if c.obs != nil {
				c.obs.ConnectionRefused(label)
			}
			c.log.Warn("connection refused", "reason", reason)
			go refuse(nc, reason, c.cfg.WriteTimeout)
			continue
		}
		if c.obs != nil {
			c.obs.SessionStarted(c.listener)
		}
		go c.serve()
	}
}

// refuse tells a client over the connection limits to come back later
// (RFC 3206 SYS/TEMP) without reading anything from it.
func refuse(nc net.Conn, reason string, timeout time.Duration) {
	nc.SetWriteDeadline(time.Now().Add(min(timeout, 5*time.Second)))
	fmt.Fprintf(nc, "-ERR [SYS/TEMP] %s, try again later\r\n", reason)
	nc.Close()
}

func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) untrack(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// admit registers a new connection, or says why it exceeds the limits:
// the text for the client and the Refused* label for the Observer.
func (s *Server) admit(c *conn) (reason, label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return "server shutting down", RefusedShuttingDown
	case len(s.conns) >= c.cfg.MaxConnections && !s.evictOldest(c.cfg.MaxConnections):
		return "too many connections", RefusedMaxConns
	case s.perNetwork[c.network] >= c.cfg.MaxConnectionsPerIP:
		return "too many connections from your address", RefusedMaxPerIP
	}
	s.conns[c] = struct{}{}
	s.perNetwork[c.network]++
	s.preauth.push(c)
	s.sessions.Add(1)
	return "", ""
}

func (s *Server) release(c *conn) {
	if c.obs != nil {
		c.obs.SessionEnded(c.listener)
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.preauth.remove(c)
	delete(s.preauth.evicted, c)
	if s.perNetwork[c.network]--; s.perNetwork[c.network] <= 0 {
		delete(s.perNetwork, c.network)
	}
	s.mu.Unlock()
	s.sessions.Done()
}

// Shutdown stops accepting connections and waits for the open sessions to
// end by themselves until ctx is done; then it closes those left. A
// session closed that way ends without QUIT, so none of its deletions are
// applied (RFC 1939 §6). It returns ctx's error if sessions had to be cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		// Give the cut sessions a moment to release their locks.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return ctx.Err()
	}
}

// Close stops the listeners and closes every connection at once.
func (s *Server) Close() error {
	s.closeListeners()
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.raw.Close()
	}
	s.mu.Unlock()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
}

// Panics counts the connection handlers that panicked (each was recovered
// and logged). Tests assert it stays zero.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Sessions reports the number of open connections.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
