// Package lmtp is the LMTP listener (RFC 2033) that mail transfer agents
// (Postfix's and Exim's lmtp transports) hand mail to. It is a backend for
// emersion/go-smtp in LMTP mode, which does the wire protocol — LHLO,
// PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, SIZE, CHUNKING, the dot
// transparency of DATA — and package delivery, which does everything
// about the mail itself. What this package adds is policy at the right
// moment and a server lifecycle like package pop3server's:
//
//   - MAIL checks the reverse path; RCPT resolves the recipient at once
//     (550 5.1.1 for an unknown user, never a late bounce) and checks its
//     quota against the size MAIL announced (552 5.2.2);
//   - after DATA, each recipient gets its own reply (RFC 2033 §4.2), sent
//     only once that recipient's copy is durable: one may succeed while
//     another fails;
//   - a read deadline refreshed at every read, so that a slow but alive
//     sender is never cut off mid-message, while a silent one is;
//   - a bound on simultaneous connections, panics recovered and counted,
//     Serve / Shutdown / Close.
//
// DATA ends only at <CRLF>.<CRLF>: go-smtp's reader ends the message only
// after a CRLF, so a bare "\n.\n" is message content (no SMTP smuggling),
// which the tests pin.
package lmtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postoffice-mail/postoffice/delivery"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("lmtp: server closed")

// Config configures a Server.
type Config struct {
	// Hostname is announced in the greeting and the LHLO reply.
	Hostname string
	// Agent does the deliveries.
	Agent *delivery.Agent
	// Logger receives connection and protocol events; nil discards.
	Logger *slog.Logger
	// MaxRecipients bounds a transaction's recipients; 0 means 100.
	MaxRecipients int
	// MaxConnections bounds simultaneous connections; 0 means 100.
	MaxConnections int
	// ReadTimeout is how long to wait for the client's next octets,
	// refreshed at every read; 0 means 5 minutes.
	ReadTimeout time.Duration
	// WriteTimeout is the deadline of each write; 0 means 5 minutes.
	WriteTimeout time.Duration
}

// Server is an LMTP server. Serve may be called for several listeners.
type Server struct {
	cfg    Config
	smtp   *smtp.Server
	logger *slog.Logger
	slots  chan struct{}

	panics   atomic.Int64
	draining atomic.Bool
	done     chan struct{} // closed by Shutdown and Close
	observer observerSlot

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]bool
	conns     map[*deadlineConn]bool
}

// drainIdle is how long, once Shutdown has begun, a connection may stay
// silent before it is closed: long enough for a sender in the middle of a
// message (every read extends it), short enough that an MTA's idle cached
// connection does not hold the shutdown up.
const drainIdle = time.Second

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Agent == nil {
		return nil, errors.New("lmtp: a delivery agent is required")
	}
	if cfg.Hostname == "" {
		return nil, errors.New("lmtp: a host name is required")
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = 100
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 100
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Minute
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, slots: make(chan struct{}, cfg.MaxConnections),
		done: make(chan struct{}), listeners: map[net.Listener]bool{}, conns: map[*deadlineConn]bool{}}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	srv := smtp.NewServer(&backend{s: s})
	srv.LMTP = true
	srv.Domain = cfg.Hostname
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxMessageBytes = cfg.Agent.MaxMessageSize()
	// Lines over 1,000 octets are refused by package delivery with a
	// clear reply after DATA; go-smtp's own limit, which ends the
	// connection, is set far above that so it only stops abuse.
	srv.MaxLineLength = 64 << 10
	srv.EnableSMTPUTF8 = true
	// Deadlines are set per read and per write by deadlineConn instead of
	// once per command, which would cut off a long DATA.
	srv.ReadTimeout, srv.WriteTimeout = 0, 0
	srv.ErrorLog = errorLog{s}
	s.smtp = srv
	return s, nil
}

// Panics returns the number of panics recovered while serving.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Serve accepts LMTP connections on l until Shutdown or Close, and then
// returns ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	ll := &limitListener{Listener: l, s: s}
	s.listeners[ll] = true
	s.mu.Unlock()
	err := s.smtp.Serve(ll)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || err == nil {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting connections and waits for the open ones to
// end. A connection that stays silent for a second from then on (an MTA's
// idle cached connection) is closed with 421; one that is sending a
// message goes on. If ctx ends first, Shutdown closes the rest (a
// delivery cut this way was never acknowledged, so the MTA sends it
// again) and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	s.draining.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		c.Conn.SetReadDeadline(time.Now().Add(drainIdle))
	}
	s.mu.Unlock()
	err := s.smtp.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	if err != nil && ctx.Err() != nil {
		s.smtp.Close()
		return ctx.Err()
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.stop()
	err := s.smtp.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// stop marks the server closed, once.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
}

// errorLog receives go-smtp's error messages: it logs them and counts the
// panics go-smtp recovered.
type errorLog struct{ s *Server }

func (e errorLog) Printf(format string, v ...any) { e.log(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.log(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (e errorLog) log(msg string) {
	if strings.HasPrefix(msg, "panic serving") {
		e.s.panics.Add(1)
		if o := e.s.obs(); o != nil {
			o.Panic()
		}
		e.s.logger.Error("panic in an LMTP session", "detail", msg)
		return
	}
	e.s.logger.Warn("lmtp", "detail", msg)
}

// limitListener bounds simultaneous connections and wraps each in a
// deadlineConn.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.s.slots <- struct{}{}:
	case <-l.s.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.s.slots
		return nil, err
	}
	dc := &deadlineConn{Conn: c, s: l.s, obs: l.s.obs()}
	if dc.obs != nil {
		dc.obs.ConnectionOpened()
	}
	l.s.mu.Lock()
	l.s.conns[dc] = true
	l.s.mu.Unlock()
	return dc, nil
}

// deadlineConn refreshes the read deadline before every read and the
// write deadline before every write: a client is cut off only when it
// sends nothing for a whole ReadTimeout, however long its message.
type deadlineConn struct {
	net.Conn
	s    *Server
	obs  Observer // the one told of the opening, told of the closing
	once sync.Once
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	timeout := c.s.cfg.ReadTimeout
	if c.s.draining.Load() {
		timeout = min(timeout, drainIdle)
	}
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	return c.Conn.Write(p)
}

func (c *deadlineConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		<-c.s.slots
		if c.obs != nil {
			c.obs.ConnectionClosed()
		}
	})
	return c.Conn.Close()
}
