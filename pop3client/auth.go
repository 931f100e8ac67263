package pop3client

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/postoffice-mail/postoffice/pop3"
)

// maxAuthLine is the command-line limit that decides whether a SASL
// initial response goes on the AUTH line (RFC 5034 §4: not if the line
// would exceed 255 octets, CRLF included).
const maxAuthLine = pop3.MinLineLength

// cleartextMechanisms send the secret itself, so they need TLS like
// USER/PASS does.
var cleartextMechanisms = map[string]bool{"PLAIN": true, "LOGIN": true, "XOAUTH2": true, "OAUTHBEARER": true}

// secure reports whether a secret may be sent as it is: over TLS, to a
// loopback address, or where the caller allowed it.
func (c *Client) secure() bool {
	if c.isTLS || c.opts.AllowInsecureAuth {
		return true
	}
	if addr, ok := c.raw.RemoteAddr().(*net.TCPAddr); ok && addr.IP.IsLoopback() {
		return true
	}
	return false
}

// Login authenticates with USER and PASS (RFC 1939 §7).
func (c *Client) Login(ctx context.Context, user, password string) error {
	if !c.secure() {
		return &CommandError{Command: "USER", Err: ErrInsecureAuth}
	}
	if strings.ContainsAny(user, "\r\n") || strings.ContainsAny(password, "\r\n") {
		return &CommandError{Command: "USER", Err: errors.New("user name or password contains a line break")}
	}
	if err := c.simple(ctx, "USER "+user); err != nil {
		return err
	}
	return c.simple(ctx, "PASS "+password)
}

// APOPTimestamp is the timestamp of the greeting that APOP needs
// ("<...@...>"), or "" if the server sent none.
func (c *Client) APOPTimestamp() string { return c.stamp }

// APOP authenticates with a digest of the greeting's timestamp and the
// shared secret (RFC 1939 §7), so the secret never crosses the network.
// MD5 is weak by today's standards: prefer TLS with another mechanism.
func (c *Client) APOP(ctx context.Context, user, secret string) error {
	if c.stamp == "" {
		return &CommandError{Command: "APOP", Err: ErrNoAPOP}
	}
	if strings.ContainsAny(user, " \r\n") {
		return &CommandError{Command: "APOP", Err: errors.New("invalid user name")}
	}
	return c.simple(ctx, "APOP "+user+" "+apopDigest(c.stamp, secret))
}

func apopDigest(stamp, secret string) string {
	sum := md5.Sum([]byte(stamp + secret))
	return hex.EncodeToString(sum[:])
}

// verifier is a SASL client with mutual authentication: it knows at the
// end whether the server proved its identity.
type verifier interface {
	ServerVerified() bool
}

// Auth authenticates with a SASL mechanism (RFC 5034): mech is any
// sasl.Client, such as sasl.NewPlainClient, NewLoginClient,
// NewSCRAMSHA256Client, NewXOAUTH2Client or sasl.NewOAuthBearerClient.
// The initial response goes on the AUTH line when it fits in 255 octets,
// otherwise after the server's empty challenge. A mechanism that fails
// mid-exchange cancels it with "*".
func (c *Client) Auth(ctx context.Context, mech sasl.Client) error {
	name, ir, err := mech.Start()
	if err != nil {
		return &CommandError{Command: "AUTH", Err: err}
	}
	cmd := "AUTH " + name
	if cleartextMechanisms[strings.ToUpper(name)] && !c.secure() {
		return &CommandError{Command: cmd, Err: ErrInsecureAuth}
	}
	if err := c.usable(); err != nil {
		return &CommandError{Command: cmd, Err: err}
	}
	if err := c.drainAll(ctx); err != nil {
		return &CommandError{Command: cmd, Err: err}
	}
	line := cmd
	pendingIR := ir
	if ir != nil {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(line)+1+len(enc)+2 <= maxAuthLine {
			line += " " + enc
			pendingIR = nil
		}
	}
	stop := c.watch(ctx)
	defer stop()
	if err := c.writeLine(ctx, line); err != nil {
		return &CommandError{Command: cmd, Err: err}
	}
	for {
		reply, err := c.readLine()
		if err != nil {
			return &CommandError{Command: cmd, Err: c.fail(ctx, err)}
		}
		if reply == "+" || strings.HasPrefix(reply, "+ ") {
			challenge, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimPrefix(reply, "+"), " "))
			if err != nil {
				return c.cancelAuth(ctx, cmd, fmt.Errorf("%w: bad base64 in challenge", ErrMalformedReply))
			}
			var resp []byte
			if pendingIR != nil && len(challenge) == 0 {
				// RFC 5034 §4: the initial response that did not fit
				// answers the first, empty challenge.
				resp, pendingIR = pendingIR, nil
			} else if resp, err = mech.Next(challenge); err != nil {
				return c.cancelAuth(ctx, cmd, err)
			}
			if err := c.writeLine(ctx, base64.StdEncoding.EncodeToString(resp)); err != nil {
				return &CommandError{Command: cmd, Err: err}
			}
			continue
		}
		r, ok := pop3.ParseReply(reply)
		if !ok {
			return &CommandError{Command: cmd, Err: c.fail(ctx, fmt.Errorf("%w: %q", ErrMalformedReply, clip(reply)))}
		}
		if !r.OK {
			return &CommandError{Command: cmd, Err: r.AsError()}
		}
		if v, ok := mech.(verifier); ok && !v.ServerVerified() {
			// Logged in, but maybe to an impostor: do not go on.
			return &CommandError{Command: cmd, Err: c.fail(ctx, ErrServerNotVerified)}
		}
		return nil
	}
}

// cancelAuth ends a SASL exchange the client cannot continue (RFC 5034
// §4: "*"), reads the server's -ERR and returns why.
func (c *Client) cancelAuth(ctx context.Context, cmd string, why error) error {
	if err := c.writeLine(ctx, "*"); err != nil {
		return &CommandError{Command: cmd, Err: err}
	}
	for {
		reply, err := c.readLine()
		if err != nil {
			return &CommandError{Command: cmd, Err: c.fail(ctx, err)}
		}
		if r, ok := pop3.ParseReply(reply); ok {
			_ = r
			return &CommandError{Command: cmd, Err: why}
		}
		// Another challenge after "*" would be a server bug; give up.
		return &CommandError{Command: cmd, Err: c.fail(ctx, fmt.Errorf("%w after cancelling: %q", ErrMalformedReply, clip(reply)))}
	}
}

// writeLine sends one line at once (the SASL exchange is never
// pipelined).
func (c *Client) writeLine(ctx context.Context, line string) error {
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return c.fail(ctx, err)
	}
	return nil
}
