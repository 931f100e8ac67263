package pop3client

import (
	"errors"
	"strings"

	"github.com/postoffice-mail/postoffice/pop3"
)

// Errors the client returns itself (wrapped with the command's name).
var (
	// ErrBroken is returned for any command after the connection failed,
	// timed out, was interrupted or broke the protocol: its state is
	// unknown, so nothing more can be sent on it.
	ErrBroken = errors.New("connection is unusable after an earlier error")
	// ErrClosed is returned after Quit or Close.
	ErrClosed = errors.New("client is closed")
	// ErrTimeout is returned when the server sends nothing for
	// Options.Timeout.
	ErrTimeout = errors.New("server did not answer in time")
	// ErrTLSRequired is returned by Dial in SecuritySTLS mode when the
	// server does not offer STLS or refuses it: the client will not go on
	// in plaintext.
	ErrTLSRequired = errors.New("server does not offer STLS, and TLS is required")
	// ErrInsecureAuth is returned when a password would be sent in the
	// clear on a connection that is neither TLS nor to a loopback
	// address (see Options.AllowInsecureAuth).
	ErrInsecureAuth = errors.New("refusing to send a password over an unencrypted connection")
	// ErrMalformedReply is returned for a line that is neither +OK nor
	// -ERR where a status is expected, and for unreadable listings.
	ErrMalformedReply = errors.New("malformed reply")
	// ErrSkipped is returned by Response.Message for a RETR or TOP reply
	// whose body was read and discarded because a later reply was
	// waited for first.
	ErrSkipped = errors.New("message body was skipped: a later reply was read first")
	// ErrNoAPOP is returned by APOP when the greeting had no timestamp.
	ErrNoAPOP = errors.New("server greeting has no APOP timestamp")
	// ErrServerNotVerified is returned by Auth when a mechanism with
	// mutual authentication (SCRAM) ended without the server proving it
	// knows the password.
	ErrServerNotVerified = errors.New("server ended SASL authentication without proving its identity")
)

// CommandError is a failed command: the command as sent (passwords and
// SASL data left out) and why it failed. When the server answered -ERR,
// Err is a *pop3.Error with the response code.
type CommandError struct {
	// Command is the command line, such as "RETR 3" or "PASS" (without
	// the password).
	Command string
	// Err is the negative reply (*pop3.Error) or the I/O or protocol
	// error.
	Err error
}

func (e *CommandError) Error() string {
	return e.Command + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *CommandError) Unwrap() error { return e.Err }

// ReplyError returns the server's negative reply inside err, if err is
// one: a shortcut for errors.As with a *pop3.Error.
func ReplyError(err error) (*pop3.Error, bool) {
	var perr *pop3.Error
	ok := errors.As(err, &perr)
	return perr, ok
}

// HasCode reports whether err is a negative reply with the response code
// code (such as pop3.CodeLoginDelay).
func HasCode(err error, code string) bool {
	perr, ok := ReplyError(err)
	return ok && strings.EqualFold(perr.Code, code)
}

// redact shortens a command line for error messages: credentials never
// appear in an error.
func redact(line string) string {
	name, _, _ := strings.Cut(line, " ")
	switch strings.ToUpper(name) {
	case "PASS", "APOP", "AUTH":
		if strings.ToUpper(name) == "AUTH" {
			// Keep the mechanism, drop the initial response.
			parts := strings.Fields(line)
			if len(parts) > 1 {
				return "AUTH " + parts[1]
			}
		}
		if strings.ToUpper(name) == "APOP" {
			parts := strings.Fields(line)
			if len(parts) > 1 {
				return "APOP " + parts[1]
			}
		}
		return strings.ToUpper(name)
	}
	return line
}
