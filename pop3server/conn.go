package pop3server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/internal/rawio"
	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// state is the RFC 1939 session state.
type state int

const (
	authorization state = iota
	transaction
	update
)

// readBufferSize is the read buffer of each connection: room for a
// pipelined burst of commands (pop3.ReadLine gathers a longer line, such
// as an AUTH response with an OAuth token, outside it), small because every
// session, idle or not, holds one. Replies are buffered in a pooled buffer
// held only while there is something to send (replyWriter).
const readBufferSize = 1024

// deadlineRefresh is how often, at most, the idle deadline is pushed
// forward while commands keep coming (and at most a tenth of the idle
// timeout): setting it costs a timer update, so a burst of pipelined
// commands does not pay it for each one.
const deadlineRefresh = time.Second

// conn is one client connection and its POP3 session.
type conn struct {
	srv     *Server
	cfg     *settings // the configuration the session started with
	id      string
	log     *slog.Logger
	raw     net.Conn // the socket, for Server.Close from other goroutines
	netConn net.Conn // the socket, or the *tls.Conn over it
	r       *bufio.Reader
	w       *replyWriter
	ctx     context.Context

	readDeadline time.Time // when the idle deadline was last set

	remote   netip.Addr
	network  string // the remote address, IPv6 grouped by /64, for limits
	loopback bool
	tls      bool

	state      state
	userArg    string // the USER argument awaiting PASS
	apopStamp  string // the greeting timestamp, when APOP is enabled
	utf8       bool   // RFC 6856 UTF-8 mode
	quit       bool   // QUIT was answered; end the session
	badReplies int

	// TRANSACTION state.
	user      *auth.User
	maildrop  store.Maildrop
	messages  []store.MessageInfo
	deleted   []bool
	retrieved []bool
	// count and octets are the totals of the messages not marked
	// deleted, kept up to date by DELE and RSET.
	count  int
	octets int64

	stats sessionStats
	trace *tracer // nil unless the server traces a user

	// obs is the server's Observer when the session started, or nil;
	// listener is the kind of listener that accepted it.
	obs      Observer
	listener string
	// mechanism is the login method being tried and checking the time
	// its credential checks took, until the attempt is reported.
	mechanism string
	checking  time.Duration
}

// sessionStats feeds the one summary line logged per session, with the
// counters mail administrators know from Dovecot's POP3 logout line
// (top=%t/%p, retr=%r/%b, del=%d/%m, size=%s).
type sessionStats struct {
	commands        int
	top             int   // TOP commands answered
	topOctets       int64 // octets TOP sent, before dot-stuffing
	retrieved       int   // messages RETR sent whole
	retrievedOctets int64
	deleted         int   // messages removed at QUIT
	deletedOctets   int64 // their size
	bytesIn         int64 // octets read from the client, TLS included
	bytesOut        int64 // octets written to the client
	// messages and octets describe the maildrop at login, before any
	// deletion.
	messages int
	octets   int64
}

// summary returns the attributes of the session's summary line.
func (st *sessionStats) summary() []any {
	return []any{
		"commands", st.commands,
		"top", st.top, "top_octets", st.topOctets,
		"retr", st.retrieved, "retr_octets", st.retrievedOctets,
		"del", st.deleted, "del_octets", st.deletedOctets,
		"messages", st.messages, "size", st.octets,
		"in", st.bytesIn, "out", st.bytesOut,
	}
}

func (s *Server) newConn(nc net.Conn, implicitTLS bool) *conn {
	cfg := s.settings()
	c := &conn{
		srv: s,
		cfg: cfg,
		id:  strconv.FormatUint(s.nextID.Add(1), 16),
		raw: nc,
		ctx: s.ctx,
	}
	c.obs = s.loadObserver()
	c.listener = ListenerPlain
	if implicitTLS {
		c.listener = ListenerImplicitTLS
	}
	// Plain TCP is read and written with raw system calls (see rawio).
	c.netConn = byteCounter{rawio.Wrap(nc), &c.stats, c.obs}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.remote = ta.AddrPort().Addr().Unmap()
	} else if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.remote = ap.Addr().Unmap()
	}
	c.loopback = c.remote.IsLoopback()
	c.network = networkKey(c.remote)
	c.log = cfg.log.With("session", c.id, "remote", c.remote.String())
	if cfg.TraceUser != "" {
		c.trace = newTracer(cfg.trace.With("session", c.id, "remote", c.remote.String()), cfg.TraceUser)
	}
	if implicitTLS {
		c.netConn = tls.Server(c.netConn, cfg.TLS)
		c.tls = true
	}
	c.r = bufio.NewReaderSize(c.netConn, readBufferSize)
	c.w = newReplyWriter(deadlineWriter{c})
	return c
}

// networkKey groups addresses for the per-address connection limit: one
// IPv4 address, or one IPv6 /64 (a single host usually owns a whole /64).
func networkKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// deadlineWriter refreshes the write deadline before every write, so a
// long message to a slow but alive client is not cut while a stalled
// client is.
type deadlineWriter struct{ c *conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	if d.c.trace != nil {
		d.c.trace.reply(p)
	}
	d.c.netConn.SetWriteDeadline(time.Now().Add(d.c.cfg.WriteTimeout))
	return d.c.netConn.Write(p)
}

// byteCounter counts the octets that cross the socket, for the session
// summary. It sits under TLS, so the counts are what the network carried.
type byteCounter struct {
	net.Conn
	stats *sessionStats
	obs   Observer // told of the octets sent, if not nil
}

func (cc byteCounter) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.stats.bytesIn += int64(n)
	return n, err
}

func (cc byteCounter) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.stats.bytesOut += int64(n)
	if cc.obs != nil {
		cc.obs.Sent(n)
	}
	return n, err
}

// serve runs the session to its end.
func (c *conn) serve() {
	start := time.Now()
	defer c.srv.release(c)
	defer c.netConn.Close()
	defer func() {
		c.w.Flush() // the last reply, e.g. to QUIT or an abusive client
		c.w.Reset(nil)
	}()
	defer c.closeMaildrop()
	defer func() {
		if p := recover(); p != nil {
			c.srv.panics.Add(1)
			if c.obs != nil {
				c.obs.Panic()
			}
			c.log.Error("panic in session", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	defer func() {
		// The logger names the user once logged in.
		attrs := append([]any{"tls", c.tls, "duration", time.Since(start).Round(time.Millisecond)}, c.stats.summary()...)
		c.log.Info("session ended", append(attrs, "quit", c.quit)...)
	}()

	if c.tls {
		if err := c.handshake(); err != nil {
			c.log.Info("tls handshake failed", "err", err)
			return
		}
	}
	if c.trace != nil {
		c.trace.expectReply()
	}
	c.writeGreeting()
	c.loop()
}

func (c *conn) writeGreeting() {
	greeting := "+OK POP3 server ready"
	if c.cfg.APOP {
		// RFC 1939 §7: the timestamp must be unique for every greeting.
		// Only shown when APOP works: clients such as fdm use APOP
		// whenever they see one.
		var nonce [8]byte
		rand.Read(nonce[:])
		c.apopStamp = fmt.Sprintf("<%s.%s.%d@%s>", c.id, hex.EncodeToString(nonce[:]), time.Now().Unix(), c.cfg.Hostname)
		greeting += " " + c.apopStamp
	}
	c.writeLine(greeting)
}

// loop reads and answers commands until QUIT, a disconnect or an error.
func (c *conn) loop() {
	for !c.quit {
		// Answer a pipelined burst (RFC 2449 §6.6) in one write: flush only
		// when every command already received has been answered. Then
		// the reply buffer goes back to the pool while the client thinks.
		if c.r.Buffered() == 0 {
			if err := c.w.Flush(); err != nil {
				return
			}
			c.w.release()
		}
		// The deadline matters only for a read that may wait: when no
		// complete command is buffered (a pipelined burst costs no clock
		// read per command).
		if !c.commandBuffered() {
			if now := time.Now(); now.Sub(c.readDeadline) >= min(deadlineRefresh, c.cfg.IdleTimeout/10) {
				c.netConn.SetReadDeadline(now.Add(c.cfg.IdleTimeout))
				c.readDeadline = now
			}
		}
		// Read up to the SASL limit so that an AUTH command with a long
		// initial response (an OAuth token) fits; every other command is
		// held to the configured limit below.
		line, err := pop3.ReadLine(c.r, max(c.cfg.MaxLineLength, maxSASLLine))
		if err == nil && len(line)+2 > c.cfg.MaxLineLength && !isAuthCommand(line) {
			err = pop3.ErrLineTooLong
		}
		if errors.Is(err, pop3.ErrLineTooLong) {
			if c.obs != nil {
				c.obs.Command(CommandOther, false)
			}
			if !c.reply(pop3.Err(fmt.Sprintf("line too long (limit %d octets)", c.cfg.MaxLineLength))) {
				return
			}
			continue
		}
		if err != nil {
			if c.srv.wasEvicted(c) {
				c.writeLine(evictedReply) // flushed on the way out
				return
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.log.Debug("read failed", "err", err)
			}
			return
		}
		c.stats.commands++
		if c.trace != nil {
			// Each reply is sent on its own, so that the trace can
			// pair it with its command.
			if err := c.w.Flush(); err != nil {
				return
			}
			c.trace.command(line)
		}
		cmd, err := pop3.ParseCommand(line)
		if err != nil {
			err = pop3.Err(err.Error())
		} else {
			err = c.dispatch(cmd)
		}
		if c.obs != nil {
			c.obs.Command(commandLabel(cmd.Name), err == nil)
		}
		if !c.reply(err) {
			return
		}
		if c.trace != nil && c.w.Flush() != nil {
			return
		}
	}
}

// reply turns a handler's result into the wire reply: the single place
// where errors become -ERR lines. Success replies were written by the
// handler. It reports whether the session goes on.
func (c *conn) reply(err error) bool {
	if err == nil {
		return true
	}
	if errors.Is(err, errConnBroken) {
		// A multi-line reply was cut, or TLS failed: the session cannot
		// go on honestly. Usually the client's doing (it went away).
		c.log.Info("closing session", "reason", err)
		return false
	}
	var perr *pop3.Error
	if !errors.As(err, &perr) {
		// Internal detail stays in the log, never on the wire.
		c.log.Error("command failed", "err", err)
		perr = pop3.ErrCode(pop3.CodeSysTemp, "internal error")
	}
	c.badReplies++
	c.writeLine(perr.Error())
	if perr.Close {
		return false
	}
	if c.badReplies >= c.cfg.MaxBadCommands {
		c.writeLine("-ERR too many errors, closing connection")
		c.log.Warn("error budget exhausted", "errors", c.badReplies)
		return false
	}
	return true
}

// commandBuffered reports whether a whole command line is in the read
// buffer already.
func (c *conn) commandBuffered() bool {
	n := c.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := c.r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

func isAuthCommand(line []byte) bool {
	return len(line) > 5 && strings.EqualFold(string(line[:5]), "AUTH ")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tlsState returns the TLS connection state, if the connection is
// encrypted.
func (c *conn) tlsState() (tls.ConnectionState, bool) {
	if tc, ok := c.netConn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// errConnBroken marks a failure after a positive reply to a multi-line
// command has started; the only honest way on is to close.
var errConnBroken = errors.New("transfer interrupted")

// writeLine queues one reply line; the read loop flushes (see loop).
func (c *conn) writeLine(s string) {
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
}

func (c *conn) ok(text string) error {
	c.w.WriteString("+OK ")
	c.w.WriteString(text)
	c.w.WriteString("\r\n")
	return nil
}

// dispatch runs one command: the table of which commands each RFC 1939
// state allows. Anything else gets -ERR and the session goes on.
func (c *conn) dispatch(cmd pop3.Command) error {
	switch c.state {
	case authorization:
		switch cmd.Name {
		case "CAPA":
			return c.handleCapa(cmd)
		case "USER":
			return c.handleUser(cmd)
		case "PASS":
			return c.handlePass(cmd)
		case "APOP":
			return c.handleAPOP(cmd)
		case "STLS":
			return c.handleSTLS(cmd)
		case "AUTH":
			return c.handleAuth(cmd)
		case "UTF8":
			return c.handleUTF8(cmd)
		case "LANG":
			return c.handleLang(cmd)
		case "QUIT":
			return c.handleQuit(cmd)
		}
	case transaction:
		switch cmd.Name {
		case "CAPA":
			return c.handleCapa(cmd)
		case "STAT":
			return c.handleStat(cmd)
		case "LIST":
			return c.handleList(cmd)
		case "UIDL":
			return c.handleUidl(cmd)
		case "RETR":
			return c.handleRetr(cmd)
		case "TOP":
			return c.handleTop(cmd)
		case "DELE":
			return c.handleDele(cmd)
		case "NOOP":
			return c.handleNoop(cmd)
		case "RSET":
			return c.handleRset(cmd)
		case "LANG":
			return c.handleLang(cmd)
		case "QUIT":
			return c.handleQuit(cmd)
		}
	}
	if knownCommands[cmd.Name] {
		return pop3.Err(cmd.Name + " is not valid in this state")
	}
	return pop3.Err("unknown command")
}

var knownCommands = map[string]bool{
	"CAPA": true, "USER": true, "PASS": true, "APOP": true, "STLS": true, "QUIT": true,
	"STAT": true, "LIST": true, "UIDL": true, "RETR": true, "TOP": true, "DELE": true,
	"NOOP": true, "RSET": true, "AUTH": true, "UTF8": true, "LANG": true,
}

// wantArgs checks the argument count of a command.
func wantArgs(cmd pop3.Command, min, max int) error {
	if len(cmd.Args) < min || len(cmd.Args) > max {
		return pop3.Err("wrong number of arguments for " + cmd.Name)
	}
	return nil
}

// parseNumber parses a decimal argument strictly: digits only, no sign,
// no spaces. Values too large for an int saturate, which is what a line
// count (TOP n 99999999999) means; message numbers are range-checked by
// the caller anyway.
func parseNumber(s string) (int, bool) {
	if s == "" || len(s) > 40 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil { // only overflow is left
		return int(^uint(0) >> 1), true
	}
	return n, true
}

func (c *conn) closeMaildrop() {
	if c.maildrop == nil {
		return
	}
	if err := c.maildrop.Close(); err != nil {
		c.log.Error("releasing maildrop failed", "err", err)
	}
	c.maildrop = nil
}
