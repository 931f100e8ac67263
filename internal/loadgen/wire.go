package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
)

// wire is a bare POP3 connection for the scenarios where pop3client's
// conveniences would cost more than the server being measured: pipelined
// one-line commands by the thousand, and thousands of idle sessions with
// small buffers. It checks every status line it reads.
type wire struct {
	nc      net.Conn
	r       *bufio.Reader
	out     []byte
	timeout time.Duration
	last    string // the last command, for errors
}

// maxReplyLine bounds a status or listing line.
const maxReplyLine = 8 << 10

// dialWire connects, reads the greeting and applies cfg.Security.
// readBuffer sizes the read buffer (at least maxReplyLine).
func dialWire(ctx context.Context, cfg *Config, readBuffer int) (*wire, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	c := &wire{nc: nc, timeout: cfg.Timeout}
	readBuffer = max(readBuffer, maxReplyLine)
	if cfg.Security == Implicit {
		if err := c.startTLS(ctx, cfg); err != nil {
			nc.Close()
			return nil, err
		}
	}
	c.r = bufio.NewReaderSize(c.nc, readBuffer)
	c.last = "greeting"
	if _, err := c.status(); err != nil {
		nc.Close()
		return nil, err
	}
	if cfg.Security == STLS {
		if _, err := c.command("STLS"); err != nil {
			nc.Close()
			return nil, err
		}
		if c.r.Buffered() > 0 {
			nc.Close()
			return nil, fmt.Errorf("server sent data after its STLS reply")
		}
		if err := c.startTLS(ctx, cfg); err != nil {
			nc.Close()
			return nil, err
		}
		c.r = bufio.NewReaderSize(c.nc, readBuffer)
	}
	return c, nil
}

func (c *wire) startTLS(ctx context.Context, cfg *Config) error {
	tc := tls.Client(c.nc, tlsConfig(cfg))
	hctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	c.nc = tc
	return nil
}

// tlsConfig is cfg.TLS naming the server when it does not.
func tlsConfig(cfg *Config) *tls.Config {
	tc := &tls.Config{}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(cfg.Addr)
	}
	return tc
}

func (c *wire) close() { c.nc.Close() }

// arm sets the deadline for the next exchange.
func (c *wire) arm() { c.nc.SetDeadline(time.Now().Add(c.timeout)) }

// disarm clears the deadline (an idle session waits as long as it likes).
func (c *wire) disarm() { c.nc.SetDeadline(time.Time{}) }

// line reads one line without its CRLF, which must be there.
func (c *wire) line() (string, error) {
	line, err := pop3.ReadLine(c.r, maxReplyLine)
	if err != nil {
		return "", fmt.Errorf("after %s: %w", c.last, err)
	}
	return string(line), nil
}

// status reads a status line: the text of +OK, or an error for -ERR or
// anything else.
func (c *wire) status() (string, error) {
	line, err := c.line()
	if err != nil {
		return "", err
	}
	reply, ok := pop3.ParseReply(line)
	switch {
	case !ok:
		return "", fmt.Errorf("%s: malformed reply %q", c.last, clip(line))
	case !reply.OK:
		return "", fmt.Errorf("%s: %s", c.last, line)
	}
	return reply.Text, nil
}

// command sends one command and reads its status line.
func (c *wire) command(line string) (string, error) {
	c.arm()
	c.last = redact(line)
	c.out = append(append(c.out[:0], line...), "\r\n"...)
	if _, err := c.nc.Write(c.out); err != nil {
		return "", fmt.Errorf("%s: %w", c.last, err)
	}
	return c.status()
}

// multi sends a command with a multi-line reply and returns its lines,
// dot-stuffing removed.
func (c *wire) multi(line string) ([]string, error) {
	if _, err := c.command(line); err != nil {
		return nil, err
	}
	var lines []string
	for {
		l, err := c.line()
		if err != nil {
			return nil, err
		}
		if l == "." {
			return lines, nil
		}
		lines = append(lines, strings.TrimPrefix(l, "."))
	}
}

// login sends USER and PASS.
func (c *wire) login(user, password string) error {
	if _, err := c.command("USER " + user); err != nil {
		return err
	}
	_, err := c.command("PASS " + password)
	return err
}

func redact(line string) string {
	if strings.HasPrefix(line, "PASS ") {
		return "PASS"
	}
	return line
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
