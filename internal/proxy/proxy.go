// Package proxy accepts connections through TCP load balancers that speak
// the PROXY protocol (HAProxy's, versions 1 and 2; parsed by
// github.com/pires/go-proxyproto), so that the servers see the real
// client's address: in their logs, connection limits and login penalties.
//
// Only connections from configured trusted networks may carry a header,
// and they must: the load balancer always sends one (the PROXY protocol
// specification forbids guessing whether it is there). Connections from
// anywhere else are served as they are, and one that starts with a PROXY
// header anyway (a client forging its address) is closed at its first
// read.
//
// POP3 and LMTP servers speak first, so a header must be read before the
// connection is handed to the server, and that read can take up to the
// header timeout. Listener does it on a goroutine per connection (a
// bounded number at once), so that one slow or silent load-balancer
// connection never holds up the accept loop.
package proxy

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// Defaults for Config's zero values.
const (
	DefaultHeaderTimeout = 5 * time.Second
	DefaultMaxPending    = 256
)

// Config configures a Listener.
type Config struct {
	// Trusted are the load balancers' addresses: connections from them
	// must start with a PROXY header, connections from elsewhere must
	// not.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for a trusted connection's header.
	HeaderTimeout time.Duration
	// MaxPending bounds the headers being read at once; further trusted
	// connections are closed until one finishes.
	MaxPending int
	// Logger receives refused connections; nil discards.
	Logger *slog.Logger
}

// ErrForgedHeader is returned by the first Read of a connection from an
// untrusted address that starts with a PROXY header; the connection is
// closed.
var ErrForgedHeader = errors.New("PROXY protocol header from an address not in proxy_protocol_from")

// Listener wraps a net.Listener; see the package documentation.
type Listener struct {
	inner   net.Listener
	cfg     Config
	ready   chan net.Conn
	done    chan struct{}
	err     error // why the accept loop ended; set before done is closed
	pending chan struct{}
	once    sync.Once
}

// NewListener starts accepting on inner.
func NewListener(inner net.Listener, cfg Config) *Listener {
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		inner:   inner,
		cfg:     cfg,
		ready:   make(chan net.Conn),
		done:    make(chan struct{}),
		pending: make(chan struct{}, cfg.MaxPending),
	}
	go l.acceptLoop()
	return l
}

// Accept returns the next connection: from a trusted load balancer once
// its header has been read (RemoteAddr is then the client the header
// names), from anyone else at once.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close closes the inner listener. Connections whose header is still being
// read are closed as they finish.
func (l *Listener) Close() error {
	err := l.inner.Close()
	<-l.done
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

func (l *Listener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.cfg.Logger.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			l.once.Do(func() { l.err = err; close(l.done) })
			return
		}
		backoff = 0
		peer := addrOf(c.RemoteAddr())
		if !l.trusted(peer) {
			l.deliver(&directConn{Conn: c, log: l.cfg.Logger})
			continue
		}
		select {
		case l.pending <- struct{}{}:
			go l.handshake(c)
		default:
			l.cfg.Logger.Warn("too many PROXY headers being read; connection closed", "proxy", peer)
			c.Close()
		}
	}
}

// handshake reads a trusted connection's header and hands the connection
// on, or closes it.
func (l *Listener) handshake(c net.Conn) {
	defer func() { <-l.pending }()
	pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(l.cfg.HeaderTimeout))
	if pc.ProxyHeader() == nil {
		l.cfg.Logger.Warn("connection from a proxy_protocol_from address without a valid PROXY header; closed",
			"proxy", c.RemoteAddr().String())
		c.Close()
		return
	}
	l.deliver(pc)
}

// deliver hands a connection to Accept, or closes it if the listener is
// closed.
func (l *Listener) deliver(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *Listener) trusted(a netip.Addr) bool {
	for _, p := range l.cfg.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrOf returns the IP address of a TCP address (unmapped), or the zero
// address for anything else (a Unix socket is never trusted).
func addrOf(a net.Addr) netip.Addr {
	if tcp, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(tcp.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// v2Signature starts every PROXY protocol version 2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// looksLikeHeader reports whether the first octets a client sent start a
// PROXY header: "PROXY" (version 1; no POP3 or LMTP command starts so), or
// at least the first five octets of the version 2 signature (whose NUL no
// text protocol sends). A client that sends only "\r\n" is left alone.
func looksLikeHeader(b []byte) bool {
	if bytes.HasPrefix(b, []byte("PROXY")) {
		return true
	}
	n := min(len(b), len(v2Signature))
	return n >= 5 && bytes.Equal(b[:n], v2Signature[:n])
}

// directConn is a connection from an untrusted address: its first read is
// checked for a forged PROXY header.
type directConn struct {
	net.Conn
	log     *slog.Logger
	checked bool
}

func (c *directConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.checked && n > 0 {
		c.checked = true
		if looksLikeHeader(p[:n]) {
			c.log.Warn("PROXY header from an address not in proxy_protocol_from; connection closed",
				"remote", c.Conn.RemoteAddr().String())
			c.Conn.Close()
			return 0, ErrForgedHeader
		}
	}
	return n, err
}
