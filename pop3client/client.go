package pop3client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/internal/rawio"
	"github.com/postoffice-mail/postoffice/pop3"
)

// Security is how a connection is protected.
type Security int

const (
	// SecurityTLS is implicit TLS from the first byte (RFC 8314, port
	// 995). It is the default.
	SecurityTLS Security = iota
	// SecuritySTLS connects in plaintext and upgrades with STLS (RFC
	// 2595) before anything else; a server that does not offer or
	// refuses STLS is an error (ErrTLSRequired), never a plaintext
	// session.
	SecuritySTLS
	// SecurityNone is plain POP3 (port 110) with no encryption.
	SecurityNone
)

func (s Security) String() string {
	switch s {
	case SecurityTLS:
		return "tls"
	case SecuritySTLS:
		return "starttls"
	case SecurityNone:
		return "none"
	}
	return fmt.Sprintf("Security(%d)", int(s))
}

// DefaultTimeout is the default Options.Timeout.
const DefaultTimeout = 60 * time.Second

// maxStatusLine bounds a status or listing line. RFC 2449 §4 limits
// responses to 512 octets; real servers stay well within this.
const maxStatusLine = 8 << 10

// readBufferSize is the read buffer: large enough for a status line and
// for moving message bodies in big pieces.
const readBufferSize = 64 << 10

// Options configure a Client. The zero value is usable.
type Options struct {
	// Security selects implicit TLS (the default), STLS or none; Dial uses
	// it, NewClient ignores it (the caller made the connection).
	Security Security
	// TLSConfig is used for implicit TLS and STLS. When nil, or when its
	// ServerName is empty, the host part of the address is the name the
	// certificate must carry.
	TLSConfig *tls.Config
	// Timeout bounds each wait for the server: connecting, a TLS
	// handshake, and every read or write (refreshed as data moves).
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// Dialer makes the TCP connection; nil means a net.Dialer with
	// Timeout.
	Dialer *net.Dialer
	// AllowInsecureAuth lets USER/PASS and the SASL mechanisms that send
	// the password or token as it is (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER)
	// be used without TLS to a non-loopback address. Off by default, as
	// RFC 8314 advises.
	AllowInsecureAuth bool
	// DisablePipelining sends one command at a time even when the server
	// offers PIPELINING.
	DisablePipelining bool
}

// Client is one POP3 connection. Create it with Dial or NewClient.
type Client struct {
	opts     Options
	host     string // the server's host name, for TLS and the auth policy
	raw      net.Conn
	conn     *deadlineConn
	netConn  net.Conn // raw or the TLS connection on top of it
	r        *bufio.Reader
	w        *bufio.Writer
	isTLS    bool
	greeting string
	stamp    string

	caps       Capabilities // the last CAPA answer; nil before
	pipelining bool         // the last CAPA listed PIPELINING (and allowed)

	queue   []*Response    // sent commands whose replies are not read yet
	reading *MessageReader // the message body being read, if any

	broken error // the first error that made the connection unusable
	closed bool
}

// Dial connects to addr ("host:port") with opts.Security, reads the
// greeting and, for SecuritySTLS, upgrades the connection before it
// returns. The context bounds the whole set-up.
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pop3client: dial %s: %w", addr, err)
	}
	timeout := o.timeout()
	dialer := o.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: timeout}
	}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pop3client: dial %s: %w", addr, err)
	}
	c := newClient(raw, host, o)
	if o.Security == SecurityTLS {
		if err := c.handshake(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("pop3client: %s: %w", addr, err)
		}
	}
	if err := c.readGreeting(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("pop3client: %s: %w", addr, err)
	}
	if o.Security == SecuritySTLS {
		if err := c.requireTLS(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("pop3client: %s: %w", addr, err)
		}
	}
	return c, nil
}

// NewClient runs the POP3 protocol over an established connection (plain
// or already TLS): it reads the greeting. host names the server for STLS
// certificate checks and the password policy.
func NewClient(ctx context.Context, conn net.Conn, host string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	c := newClient(conn, host, o)
	if _, ok := conn.(*tls.Conn); ok {
		c.isTLS = true
	}
	if err := c.readGreeting(ctx); err != nil {
		return nil, fmt.Errorf("pop3client: %w", err)
	}
	return c, nil
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

func newClient(raw net.Conn, host string, o Options) *Client {
	dc := &deadlineConn{Conn: rawio.Wrap(raw), timeout: o.timeout()}
	return &Client{
		opts:    o,
		host:    host,
		raw:     raw,
		conn:    dc,
		netConn: dc,
		r:       bufio.NewReaderSize(dc, readBufferSize),
		w:       bufio.NewWriterSize(dc, 4<<10),
	}
}

// apopStamp finds the RFC 1939 §7 timestamp in a greeting: "<" anything
// with an "@" ">" (msg-id syntax, loosely).
var apopStamp = regexp.MustCompile(`<[^<>\s]*@[^<>\s]*>`)

func (c *Client) readGreeting(ctx context.Context) error {
	defer c.watch(ctx)()
	line, err := c.readLine()
	if err != nil {
		return c.fail(ctx, fmt.Errorf("greeting: %w", err))
	}
	r, ok := pop3.ParseReply(line)
	if !ok {
		return c.fail(ctx, fmt.Errorf("greeting: %w: %q", ErrMalformedReply, clip(line)))
	}
	if !r.OK {
		return &CommandError{Command: "greeting", Err: r.AsError()}
	}
	c.greeting = r.Text
	c.stamp = apopStamp.FindString(r.Text)
	return nil
}

// Greeting is the text of the server's greeting after "+OK ".
func (c *Client) Greeting() string { return c.greeting }

// IsTLS reports whether the connection is encrypted.
func (c *Client) IsTLS() bool { return c.isTLS }

// TLSConnectionState returns the TLS state, if the connection is TLS.
func (c *Client) TLSConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.netConn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Close closes the connection without QUIT: the server must then apply
// no deletions (RFC 1939 §6).
func (c *Client) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.raw.Close()
}

// usable reports why no command may be sent, or nil.
func (c *Client) usable() error {
	switch {
	case c.closed:
		return ErrClosed
	case c.broken != nil:
		return fmt.Errorf("%w (%v)", ErrBroken, c.broken)
	}
	return nil
}

// fail records err as the reason the connection is unusable and returns
// it, translated: a time-out caused by the context becomes the context's
// error, a time-out of ours ErrTimeout.
func (c *Client) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil && (c.conn.interrupted.Load() || isTimeout(err)) {
		err = fmt.Errorf("%w: %w", ctx.Err(), unwrapNet(err))
	} else if dl, ok := ctx.Deadline(); ok && isTimeout(err) && time.Until(dl) < 50*time.Millisecond {
		// The connection's deadline was the context's, and fired a
		// moment before the context's own timer.
		err = fmt.Errorf("%w: %w", context.DeadlineExceeded, unwrapNet(err))
	} else if isTimeout(err) {
		err = fmt.Errorf("%w (%v)", ErrTimeout, c.opts.timeout())
	} else if errors.Is(err, io.EOF) {
		err = fmt.Errorf("connection closed by server: %w", err)
	}
	if c.broken == nil {
		c.broken = err
	}
	return err
}

func unwrapNet(err error) error {
	var ne *net.OpError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// watch applies ctx to the connection until the returned function is
// called: its deadline limits every read and write, and its cancellation
// interrupts a blocked one.
func (c *Client) watch(ctx context.Context) (stop func()) {
	dl, _ := ctx.Deadline()
	c.conn.ctxDeadline = dl
	if ctx.Done() == nil {
		return func() { c.conn.ctxDeadline = time.Time{} }
	}
	unregister := context.AfterFunc(ctx, c.conn.interrupt)
	return func() {
		unregister()
		c.conn.ctxDeadline = time.Time{}
	}
}

// readLine reads one status or listing line, without its line end.
func (c *Client) readLine() (string, error) {
	line, err := pop3.ReadLine(c.r, maxStatusLine)
	if err != nil {
		if errors.Is(err, pop3.ErrLineTooLong) {
			return "", fmt.Errorf("%w: line longer than %d octets", ErrMalformedReply, maxStatusLine)
		}
		return "", err
	}
	return string(line), nil
}

// clip shortens server text quoted in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// deadlineConn sets a fresh deadline before every read and write: the
// inactivity timeout, or the context's deadline if sooner, or the past
// once the context is cancelled.
type deadlineConn struct {
	net.Conn
	timeout     time.Duration
	ctxDeadline time.Time // the current call's context deadline, or zero
	interrupted atomic.Bool
}

// pastDeadline makes blocked I/O return at once.
var pastDeadline = time.Unix(1, 0)

func (d *deadlineConn) deadline() time.Time {
	dl := time.Now().Add(d.timeout)
	if !d.ctxDeadline.IsZero() && d.ctxDeadline.Before(dl) {
		dl = d.ctxDeadline
	}
	return dl
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	d.Conn.SetReadDeadline(d.deadline())
	// Checked after setting the deadline: an interrupt that came first
	// would otherwise be overwritten (interrupt sets the flag, then the
	// past deadline).
	if d.interrupted.Load() {
		d.Conn.SetReadDeadline(pastDeadline)
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	d.Conn.SetWriteDeadline(d.deadline())
	if d.interrupted.Load() {
		d.Conn.SetWriteDeadline(pastDeadline)
	}
	return d.Conn.Write(p)
}

func (d *deadlineConn) interrupt() {
	d.interrupted.Store(true)
	d.Conn.SetDeadline(pastDeadline)
}
