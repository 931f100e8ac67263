package pop3client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
)

// tlsConfig returns the configuration for a handshake with the server,
// naming it when the caller did not.
func (c *Client) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if c.opts.TLSConfig != nil {
		cfg = c.opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = c.host
	}
	// RFC 8314 §4.1: TLS 1.2 at least.
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// handshake puts TLS on the connection and verifies the certificate.
func (c *Client) handshake(ctx context.Context) error {
	tc := tls.Client(c.conn, c.tlsConfig())
	defer c.watch(ctx)()
	if err := tc.HandshakeContext(ctx); err != nil {
		return c.fail(ctx, fmt.Errorf("tls handshake: %w", err))
	}
	c.netConn = tc
	c.isTLS = true
	// RFC 2595 §4: nothing learned before TLS counts after it.
	c.r = bufio.NewReaderSize(tc, readBufferSize)
	c.w = bufio.NewWriterSize(tc, 4<<10)
	c.caps, c.pipelining = nil, false
	return nil
}

// StartTLS upgrades a plaintext connection with STLS (RFC 2595 §4) and
// verifies the server's certificate. The capabilities learned before are
// forgotten; call Capabilities again.
func (c *Client) StartTLS(ctx context.Context) error {
	if c.isTLS {
		return &CommandError{Command: "STLS", Err: errors.New("TLS is already active")}
	}
	if err := c.simple(ctx, "STLS"); err != nil {
		return err
	}
	// Anything already buffered arrived in plaintext after the +OK: a
	// man in the middle injecting replies that would be taken as coming
	// over TLS (the client side of CVE-2011-0411).
	if c.r.Buffered() > 0 {
		return &CommandError{Command: "STLS", Err: c.fail(ctx, errors.New("server sent data after its STLS reply; possible injection attack"))}
	}
	if err := c.handshake(ctx); err != nil {
		return &CommandError{Command: "STLS", Err: err}
	}
	return nil
}

// requireTLS is Dial's SecuritySTLS step: upgrade or give up.
func (c *Client) requireTLS(ctx context.Context) error {
	caps, err := c.Capabilities(ctx)
	if err != nil && !isNegative(err) {
		return err
	}
	// A server may accept STLS without listing it (RFC 2595 only says it
	// should be listed), so a missing entry is not final: try, and treat
	// -ERR as "not offered".
	err = c.StartTLS(ctx)
	if isNegative(err) {
		if caps.Has("STLS") {
			return fmt.Errorf("%w: %v", ErrTLSRequired, err)
		}
		return ErrTLSRequired
	}
	return err
}

// isNegative reports whether err is the server's -ERR reply (the
// connection stays usable).
func isNegative(err error) bool {
	_, ok := ReplyError(err)
	return ok
}
