package pop3server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/sasl"
	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// The AUTHORIZATION state (RFC 1939 §4): USER/PASS, APOP, STLS, and the
// step into TRANSACTION once the maildrop is open and locked.

// authFailed is the one reply for every rejected login: an unknown user
// and a wrong password must look the same (RFC 2449 §8.1.2 AUTH code).
var authFailed = pop3.ErrCode(pop3.CodeAuth, "authentication failed")

// backendTimeout bounds one call into the user database or store.
const backendTimeout = 30 * time.Second

// plaintextAllowed reports whether credentials may be sent on this
// connection: over TLS, from loopback, or where the administrator
// allowed it (RFC 2595 §2.1; RFC 8314 prefers TLS for all mail access).
func (c *conn) plaintextAllowed() bool {
	return c.tls || c.loopback || c.cfg.AllowInsecureAuth
}

var errPlaintextRefused = pop3.ErrCode(pop3.CodeAuth, "plaintext authentication is disabled on unencrypted connections; use STLS or port 995")

func (c *conn) handleUser(cmd pop3.Command) error {
	if err := wantArgs(cmd, 1, 1); err != nil {
		return err
	}
	if !c.plaintextAllowed() {
		c.loginAttempt(MechanismUser)
		c.loginResult(LoginRefused)
		return errPlaintextRefused
	}
	// RFC 1939 §7 allows -ERR for an unknown name, but that would tell
	// who has an account: accept every name and decide at PASS.
	c.userArg = cmd.Args[0]
	return c.ok("send PASS")
}

func (c *conn) handlePass(cmd pop3.Command) error {
	if c.userArg == "" {
		return pop3.Err("send USER first")
	}
	if cmd.Rest == "" {
		return pop3.Err("missing password")
	}
	name, password := c.userArg, cmd.Rest
	c.userArg = "" // RFC 1939 §7: after a failure, USER starts over
	c.loginAttempt(MechanismUser)
	ctx, cancel := context.WithTimeout(c.ctx, backendTimeout)
	defer cancel()
	c.holdBack(name)
	// RFC 6856 §2.1: UTF-8 names and passwords, SASLprep'd.
	checkStart := time.Now()
	name, err := prepare(name)
	if err == nil {
		password, err = prepare(password)
	}
	var user *auth.User
	if err == nil {
		user, err = c.checkName(name)
	}
	if err == nil {
		user, err = c.cfg.Auth.Authenticate(ctx, name, password)
	}
	c.checking += time.Since(checkStart)
	if err := c.loginOutcome(name, password, err); err != nil {
		return err
	}
	return c.openMaildrop(ctx, user)
}

func (c *conn) handleAPOP(cmd pop3.Command) error {
	if !c.cfg.APOP {
		return pop3.Err("APOP is not enabled")
	}
	if err := wantArgs(cmd, 2, 2); err != nil {
		return err
	}
	if !c.plaintextAllowed() {
		c.loginAttempt(MechanismAPOP)
		c.loginResult(LoginRefused)
		return errPlaintextRefused
	}
	c.userArg = ""
	c.loginAttempt(MechanismAPOP)
	name, digest := cmd.Args[0], cmd.Args[1]
	ctx, cancel := context.WithTimeout(c.ctx, backendTimeout)
	defer cancel()
	c.holdBack(name)
	checkStart := time.Now()
	user, err := c.checkName(name)
	if err == nil {
		apop := c.cfg.Auth.(auth.APOPAuthenticator) // checked by New
		user, err = apop.AuthenticateAPOP(ctx, name, c.apopStamp, digest)
	}
	c.checking += time.Since(checkStart)
	if err := c.loginOutcome(name, digest, err); err != nil {
		return err
	}
	return c.openMaildrop(ctx, user)
}

// checkName applies the user-name rule before any lookup: an invalid name
// fails exactly like a wrong password.
func (c *conn) checkName(name string) (*auth.User, error) {
	if err := auth.ValidUsername(name); err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrFailed, err)
	}
	return nil, nil
}

// prepare applies SASLprep; a string it refuses fails like a wrong
// password.
func prepare(s string) (string, error) {
	out, err := auth.Prepare(s)
	if err != nil {
		return "", fmt.Errorf("%w: %v", auth.ErrFailed, err)
	}
	return out, nil
}

// holdBack waits as long as the brute-force defence asks before a
// credential check from this client.
func (c *conn) holdBack(name string) {
	if g := c.cfg.LoginGuard; g != nil {
		c.pause(g.Delay(c.remote, name))
	}
}

// noteFailure counts a failed login for the brute-force defence and
// writes the one log line per failure, stable for fail2ban
// (docs/fail2ban.md): msg="authentication failed" remote=ADDR user=NAME.
func (c *conn) noteFailure(name, secret string) {
	if g := c.cfg.LoginGuard; g != nil {
		g.Failure(c.remote, name, secret)
	}
	c.log.Warn("authentication failed", "user", name)
}

// loginOutcome applies the rules every login method shares to a
// credential check's result: the failure count, the failure delay, one
// log line per failure, one reply for every rejection, and database
// trouble as a temporary error. It returns the reply error, or nil.
func (c *conn) loginOutcome(name, secret string, err error) error {
	g := c.cfg.LoginGuard
	if c.trace != nil && name != "" {
		if err == nil {
			c.trace.loggedIn(name)
			if c.trace.off {
				// Someone else's session: back to batched replies.
				c.trace = nil
			}
		} else {
			c.trace.named(name)
		}
	}
	switch {
	case err == nil:
		if g != nil {
			g.Success(c.remote, name)
		}
		c.log = c.log.With("user", name)
		return nil
	case errors.Is(err, auth.ErrFailed), errors.Is(err, sasl.ErrMalformed):
		c.noteFailure(name, secret)
		c.loginResult(LoginFailed)
		c.log.Debug("authentication failure detail", "user", name, "err", err)
		c.pause(c.cfg.AuthFailureDelay)
		if errors.Is(err, sasl.ErrMalformed) {
			return pop3.Err("malformed authentication exchange")
		}
		return authFailed
	default:
		c.log.Error("user database error", "user", name, "err", err)
		c.loginResult(LoginUnavailable)
		return pop3.ErrCode(pop3.CodeSysTemp, "user database unavailable, try again later")
	}
}

// pause waits d, or less if the server is closing.
func (c *conn) pause(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	}
}

// openMaildrop enters the TRANSACTION state (RFC 1939 §4): it enforces
// LOGIN-DELAY, then opens and locks the maildrop.
func (c *conn) openMaildrop(ctx context.Context, user *auth.User) error {
	// RFC 2449 §8.1.1: LOGIN-DELAY is checked only once the credentials
	// are right, so it reveals nothing to a guesser.
	delay := c.loginDelay(user)
	if wait := c.srv.logins.check(user.Name, delay, time.Now()); wait > 0 {
		c.loginResult(LoginDelayed)
		return pop3.ErrCode(pop3.CodeLoginDelay, fmt.Sprintf("wait %d more seconds between logins", int(wait.Seconds()+0.999)))
	}
	var md store.Maildrop
	var err error
	openStart := time.Now()
	onFreshStack(func() {
		md, err = c.cfg.Store.Open(ctx, store.Account{Name: user.Name, Home: user.Home, Mail: user.Mail})
	})
	if c.obs != nil {
		c.obs.MaildropOpened(time.Since(openStart), err)
	}
	if errors.Is(err, store.ErrInUse) {
		c.log.Info("maildrop in use")
		c.loginResult(LoginInUse)
		return pop3.ErrCode(pop3.CodeInUse, "maildrop is locked by another session")
	}
	if err != nil {
		c.log.Error("opening maildrop failed", "err", err)
		c.loginResult(LoginStoreError)
		return pop3.ErrCode(pop3.CodeSysTemp, "cannot open maildrop, try again later")
	}
	c.srv.logins.record(user.Name, delay, time.Now())
	c.loginResult(LoginOK)
	c.user, c.maildrop, c.state = user, md, transaction
	c.srv.loggedIn(c)
	c.messages = md.Messages()
	c.deleted = make([]bool, len(c.messages))
	c.retrieved = make([]bool, len(c.messages))
	c.countTotals()
	count, octets := c.totals()
	c.stats.messages, c.stats.octets = count, octets
	c.log.Info("logged in", "messages", count, "octets", octets)
	return c.ok(fmt.Sprintf("maildrop has %d messages (%d octets)", count, octets))
}

// loginDelay is the LOGIN-DELAY for a user: their own, else the server's.
func (c *conn) loginDelay(user *auth.User) time.Duration {
	if user != nil && user.LoginDelay > 0 {
		return user.LoginDelay
	}
	return c.cfg.LoginDelay
}

// handleSTLS upgrades the connection to TLS (RFC 2595 §4).
func (c *conn) handleSTLS(cmd pop3.Command) error {
	if err := wantArgs(cmd, 0, 0); err != nil {
		return err
	}
	if c.cfg.TLS == nil {
		return pop3.Err("STLS is not available")
	}
	if c.tls {
		return pop3.Err("TLS is already active")
	}
	if c.utf8 {
		// RFC 6856 §2.1: clients must not send STLS after UTF8.
		return pop3.Err("STLS is not allowed after UTF8")
	}
	// Anything the client sent after STLS in the same packet would be
	// taken as if it came over TLS (CVE-2011-0411-style injection):
	// refuse, and drop the connection with the injected commands.
	if c.r.Buffered() > 0 {
		c.log.Warn("data after STLS; closing")
		return &pop3.Error{Text: "data received after STLS", Close: true}
	}
	c.ok("begin TLS negotiation")
	if err := c.w.Flush(); err != nil {
		return errConnBroken
	}
	c.netConn = tls.Server(c.netConn, c.cfg.TLS)
	c.tls = true
	if err := c.handshake(); err != nil {
		return fmt.Errorf("%w: tls handshake: %v", errConnBroken, err)
	}
	// RFC 2595 §4: forget what was learned before TLS.
	c.r.Reset(c.netConn)
	c.w.Reset(deadlineWriter{c})
	c.readDeadline = time.Time{}
	c.userArg = ""
	return nil
}

// handshake completes the TLS handshake within the configured time.
func (c *conn) handshake() error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.TLSHandshakeTimeout)
	defer cancel()
	tc := c.netConn.(*tls.Conn)
	err := tc.HandshakeContext(ctx)
	if c.obs != nil {
		mode := TLSModeSTLS
		if c.listener == ListenerImplicitTLS {
			mode = ListenerImplicitTLS
		}
		c.obs.TLSHandshake(mode, err)
	}
	if err != nil {
		return err
	}
	st := tc.ConnectionState()
	c.log = c.log.With("tls_version", tls.VersionName(st.Version))
	return nil
}

// handleQuit ends the session. In TRANSACTION it enters UPDATE (RFC 1939
// §6) and applies the deletions; in AUTHORIZATION it just says goodbye.
func (c *conn) handleQuit(cmd pop3.Command) error {
	c.quit = true
	if c.state != transaction {
		return c.ok("bye")
	}
	return c.update()
}
