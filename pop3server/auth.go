package pop3server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/auth/sasl"
	"github.com/postoffice-mail/postoffice/pop3"
)

// The AUTH command (RFC 5034): a SASL exchange framed as "+ base64"
// challenges and base64 response lines.

// maxSASLLine bounds one response line of an AUTH exchange. OAuth tokens
// run to kilobytes (auth/oauth accepts up to 32 KiB, 43 KiB in base64),
// so the exchange is not held to the 255-octet command limit. Lines longer
// than the read buffer are gathered by pop3.ReadLine.
const maxSASLLine = 64 * 1024

// maxSASLSteps bounds the round trips of one exchange; the longest real
// mechanism (SCRAM with its final acknowledgement) needs four.
const maxSASLSteps = 8

// mechanisms lists the SASL mechanisms usable on this connection.
func (c *conn) mechanisms() []string {
	return sasl.Available(c.cfg.SASLMechanisms, c.saslConn(), c.plaintextAllowed())
}

func (c *conn) saslConn() sasl.Conn {
	sc := sasl.Conn{Hostname: c.cfg.Hostname}
	if st, ok := c.tlsState(); ok {
		sc.TLS = &st
	}
	for _, m := range c.cfg.SASLMechanisms {
		if m == sasl.SCRAMSHA256Plus && sc.TLS != nil {
			sc.SCRAMPlusOffered = true
		}
	}
	return sc
}

func (c *conn) handleAuth(cmd pop3.Command) error {
	if len(cmd.Args) == 0 {
		// Old Outlook probes with a bare AUTH and expects the list
		// (the RFC 1734 form).
		c.ok("SASL mechanisms follow")
		for _, m := range c.mechanisms() {
			c.writeLine(m)
		}
		c.writeLine(".")
		return nil
	}
	if len(cmd.Args) > 2 {
		return pop3.Err("AUTH takes a mechanism and an optional initial response")
	}
	name := strings.ToUpper(cmd.Args[0])
	offered := false
	for _, m := range c.mechanisms() {
		offered = offered || m == name
	}
	if !offered {
		if !c.plaintextAllowed() && (name == sasl.Plain || name == sasl.Login) {
			c.loginAttempt(name)
			c.loginResult(LoginRefused)
			return errPlaintextRefused
		}
		return pop3.Err("unsupported authentication mechanism")
	}
	var response []byte // nil: no initial response
	if len(cmd.Args) == 2 {
		var err error
		if response, err = pop3.DecodeSASL(cmd.Args[1]); err != nil {
			return pop3.Err(err.Error())
		}
	}
	c.userArg = ""
	c.loginAttempt(name) // an offered mechanism: a small fixed set

	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.AuthTimeout)
	defer cancel()
	c.holdBack("")
	mech, err := c.cfg.sasl.New(name, c.saslConn())
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	deadline := time.Now().Add(c.cfg.AuthTimeout)
	for step := 0; ; step++ {
		checkStart := time.Now()
		challenge, done, err := mech.Next(ctx, response)
		c.checking += time.Since(checkStart)
		if err == nil && done && challenge == nil {
			if err := c.loginOutcome(mech.Identity(), string(response), nil); err != nil {
				return err
			}
			return c.openMaildrop(ctx, mech.User())
		}
		if err != nil {
			return c.loginOutcome(mech.Identity(), string(response), err)
		}
		if step >= maxSASLSteps {
			return c.loginOutcome(mech.Identity(), "", fmt.Errorf("%w: too many SASL steps", sasl.ErrMalformed))
		}
		// RFC 5034 §4: "+" SP base64 challenge; an empty challenge is
		// "+ " (mpop and curl wait for exactly that).
		c.writeLine("+ " + pop3.EncodeSASL(challenge))
		if err := c.w.Flush(); err != nil {
			return errConnBroken
		}
		line, err := c.readSASLLine(deadline)
		if err == nil && c.trace != nil {
			c.trace.saslResponse(line)
		}
		// A mechanism that already refused the credentials (the OAuth
		// error challenge) has seen a failed login, however the client
		// ends the exchange: count it, or cancelling would make guessing
		// free.
		refused := refusal(mech)
		if err != nil {
			if refused != nil {
				c.noteFailure(mech.Identity(), string(response))
				c.loginResult(LoginFailed)
			} else {
				c.loginResult(LoginCancelled) // the client left or timed out
			}
			return err
		}
		if line == "*" {
			if refused != nil {
				return c.loginOutcome(mech.Identity(), string(response), refused)
			}
			// RFC 5034 §4: the client cancels the exchange.
			c.log.Info("authentication cancelled", "mechanism", name)
			c.loginResult(LoginCancelled)
			return pop3.Err("authentication cancelled")
		}
		if response, err = pop3.DecodeSASL(line); err != nil {
			if line == "" {
				response, err = []byte{}, nil // an empty line is an empty response
			} else {
				return c.loginOutcome(mech.Identity(), "", fmt.Errorf("%w: %v", sasl.ErrMalformed, err))
			}
		}
	}
}

// refusal returns the failure a mechanism has already decided on, if any.
func refusal(m sasl.Mechanism) error {
	if r, ok := m.(sasl.Refuser); ok {
		return r.Refused()
	}
	return nil
}

// readSASLLine reads one response line of an AUTH exchange within the
// exchange's deadline.
func (c *conn) readSASLLine(deadline time.Time) (string, error) {
	c.netConn.SetReadDeadline(deadline)
	c.readDeadline = time.Time{} // the read loop sets the idle deadline again
	line, err := pop3.ReadLine(c.r, maxSASLLine)
	switch {
	case err == nil:
		return string(line), nil
	case errors.Is(err, pop3.ErrLineTooLong):
		return "", pop3.Err("authentication response too long")
	case isTimeout(err):
		c.log.Info("authentication timed out")
		return "", &pop3.Error{Code: pop3.CodeAuth, Text: "authentication timed out", Close: true}
	case errors.Is(err, io.EOF):
		return "", fmt.Errorf("%w: client left during AUTH", errConnBroken)
	default:
		return "", fmt.Errorf("%w: %v", errConnBroken, err)
	}
}
