package fetch

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/pop3client"
)

// Exit codes of "postoffice fetch", for cron jobs and scripts (the
// sysexits.h values, as fetchmail and mpop use them). With several
// accounts the most serious applies, in this order: 78, 77, 76, 69, 74,
// 75, then 0 if any mail was fetched, else 1.
const (
	ExitFetched     = 0  // mail was fetched (and no account failed)
	ExitNoMail      = 1  // nothing new on any account
	ExitUsage       = 64 // EX_USAGE: bad command line
	ExitUnavailable = 69 // EX_UNAVAILABLE: server unusable (bad certificate, no TLS, no UIDL, mechanism not offered)
	ExitLocal       = 74 // EX_IOERR: the destination or the state file failed
	ExitTempFail    = 75 // EX_TEMPFAIL: try later (network, time-out, IN-USE, LOGIN-DELAY, SYS/TEMP, MDA failure, account busy)
	ExitProtocol    = 76 // EX_PROTOCOL: the server broke the protocol (wrong sizes, malformed replies)
	ExitAuth        = 77 // EX_NOPERM: authentication failed
	ExitConfig      = 78 // EX_CONFIG: the accounts file is wrong
)

// severity orders the failure codes, most serious first.
var severity = []int{ExitConfig, ExitAuth, ExitProtocol, ExitUnavailable, ExitLocal, ExitTempFail}

// Result is the outcome of fetching one account.
type Result struct {
	Account string
	// Fetched messages and their octets, as announced by the server.
	Fetched int
	Bytes   int64
	// Deleted from the server (at QUIT).
	Deleted int
	// Left is how many messages stay on the server.
	Left int
	// Recovered are deliveries of an interrupted run found complete.
	Recovered int
	// DryRun: what would be fetched and deleted, nothing done.
	DryRun   bool
	Duration time.Duration
	// LoginDelay is the server's LOGIN-DELAY capability, if announced.
	LoginDelay time.Duration
	// Err is why the account failed, naming the account and message.
	Err error
	// Code is the exit code this result alone would give.
	Code int
}

// ExitCode combines results into the command's exit status.
func ExitCode(results []Result) int {
	codes := make(map[int]bool)
	fetched := false
	for _, r := range results {
		codes[r.Code] = true
		if r.Fetched > 0 {
			fetched = true
		}
	}
	for _, c := range severity {
		if codes[c] {
			return c
		}
	}
	if fetched {
		return ExitFetched
	}
	return ExitNoMail
}

// Error kinds the run loop attaches to errors so that classify need not
// guess.
type classified struct {
	code int
	err  error
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &classified{code: code, err: err}
}

func errorf(code int, format string, args ...any) error {
	return &classified{code: code, err: fmt.Errorf(format, args...)}
}

// classify picks the exit code for an account's error.
func classify(err error) int {
	var c *classified
	if errors.As(err, &c) {
		return c.code
	}
	if perr, ok := pop3client.ReplyError(err); ok {
		if perr.Code == pop3.CodeAuth {
			return ExitAuth
		}
		return ExitTempFail
	}
	var verifyErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &verifyErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid):
		return ExitUnavailable
	case errors.Is(err, pop3client.ErrTLSRequired), errors.Is(err, pop3client.ErrInsecureAuth), errors.Is(err, pop3client.ErrServerNotVerified):
		return ExitUnavailable
	case errors.Is(err, pop3client.ErrMalformedReply):
		return ExitProtocol
	}
	// Network failures, time-outs, a connection that ended mid-message
	// (pop3.ErrUnexpectedEOF), cancellation: try again later.
	return ExitTempFail
}
