package delivery

import (
	"context"
	"errors"
	"fmt"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/store"
)

// Error is a delivery failure as the sender is told about it: an SMTP
// reply code, an RFC 3463 enhanced status code and a text that is safe to
// send. Err, if set, is the internal cause, for the log only.
type Error struct {
	Code     int
	Enhanced [3]int
	Text     string
	Err      error
}

// Error formats the reply and the cause.
func (e *Error) Error() string {
	s := fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Text)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the sender should try again later (a 4xx
// reply, exit code 75 for the deliver command).
func (e *Error) Temporary() bool { return e.Code/100 == 4 }

// Is matches errors of the same kind (same enhanced code and reply code),
// so that errors.Is(err, delivery.ErrUnknownUser) works on a specific
// failure.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Enhanced == e.Enhanced
}

func newError(code int, enhanced [3]int, text string, cause error) *Error {
	return &Error{Code: code, Enhanced: enhanced, Text: text, Err: cause}
}

// The kinds of failure, for errors.Is. Their texts are the generic ones;
// the errors Agent returns may say more.
var (
	// ErrBadAddress: the address is not a usable mailbox (RFC 5321 §4.1.2).
	ErrBadAddress = newError(501, [3]int{5, 1, 3}, "Bad recipient address syntax", nil)
	// ErrBadSender: the reverse path is not usable.
	ErrBadSender = newError(501, [3]int{5, 1, 7}, "Bad sender address syntax", nil)
	// ErrUnknownUser: no such user here.
	ErrUnknownUser = newError(550, [3]int{5, 1, 1}, "No such user here", nil)
	// ErrUnknownDomain: the domain is not one of delivery.domains.
	ErrUnknownDomain = newError(550, [3]int{5, 1, 2}, "Domain not served here", nil)
	// ErrQuota: the maildrop is full (RFC 3463 X.2.2).
	ErrQuota = newError(552, [3]int{5, 2, 2}, "Mailbox full: quota exceeded", nil)
	// ErrTooLarge: over delivery.max_message_size (RFC 3463 X.3.4).
	ErrTooLarge = newError(552, [3]int{5, 3, 4}, "Message too big", nil)
	// ErrNUL: the message contains a NUL octet, which neither SMTP
	// (RFC 5321 §4.5.2 allows none in text) nor 8BITMIME permits and
	// which mail clients mishandle.
	ErrNUL = newError(554, [3]int{5, 6, 0}, "Message contains NUL octets", nil)
	// ErrLongLine: a line is longer than RFC 5321 §4.5.3.1.6 allows.
	ErrLongLine = newError(554, [3]int{5, 6, 0}, "Message has a line longer than 1000 octets (RFC 5321 section 4.5.3.1.6)", nil)
	// ErrLoop: the message already carries Delivered-To with this
	// recipient: it came back, and delivering it again would loop.
	ErrLoop = newError(554, [3]int{5, 4, 6}, "Mail forwarding loop detected", nil)
	// ErrTemporary: anything the sender should retry (lock trouble, I/O
	// errors, the user database unavailable).
	ErrTemporary = newError(451, [3]int{4, 3, 0}, "Temporary failure, please try again later", nil)
	// ErrDiskFull: the file system is full (RFC 3463 X.3.1).
	ErrDiskFull = newError(452, [3]int{4, 3, 1}, "Insufficient system storage, please try again later", nil)
)

// With returns a copy of the error with its own text (unless "") and
// cause, keeping its codes: ErrTemporary.With("Database down", err).
func (e *Error) With(text string, cause error) *Error { return e.with(text, cause) }

// with returns a copy of kind with its own text and cause.
func (e *Error) with(text string, cause error) *Error {
	c := *e
	if text != "" {
		c.Text = text
	}
	c.Err = cause
	return &c
}

// classify turns an error from the store or the user database into an
// *Error: a full disk or quota of the file system is 452 4.3.1, anything
// else unknown is temporary (451 4.3.0): a failure nobody classified must
// make the MTA retry, never bounce mail.
func classify(err error) *Error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case store.NoSpace(err):
		return ErrDiskFull.with("", err)
	case errors.Is(err, auth.ErrUnavailable):
		return ErrTemporary.with("User database unavailable, please try again later", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ErrTemporary.with("Delivery interrupted, please try again later", err)
	}
	return ErrTemporary.with("", err)
}
