// Package auth defines how the POP3 server checks credentials, and the
// rules every user database shares: which user names are acceptable, and
// the error values that keep "no such user" and "wrong password"
// indistinguishable to a client.
//
// Implementations: auth/passwdfile (a Dovecot-compatible passwd-file).
// Password hashing schemes are in auth/scheme.
package auth

import (
	"context"
	"errors"
	"time"
)

// ErrFailed means the credentials were not accepted. It is returned alike
// for an unknown user, a wrong password and a user that may not log in, so
// that callers cannot tell them apart by accident.
var ErrFailed = errors.New("authentication failed")

// ErrUnavailable wraps a temporary failure of the user database (the file
// cannot be read, the database is down): the client should try later.
var ErrUnavailable = errors.New("user database unavailable")

// User is an authenticated user, as the user database describes them.
type User struct {
	// Name is the canonical login name.
	Name string
	// Home is the home directory, if the database has one.
	Home string
	// Mail overrides the maildrop location for this user, if set.
	Mail string
	// LoginDelay, when positive, is this user's RFC 2449 LOGIN-DELAY,
	// overriding the server's (the passwd-file's login_delay extra
	// field, in seconds).
	LoginDelay time.Duration
}

// Authenticator checks a user name and a plaintext password (POP3 USER and
// PASS, SASL PLAIN). It returns ErrFailed for any rejection and an error
// wrapping ErrUnavailable for temporary trouble.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (*User, error)
}

// APOPAuthenticator is implemented by user databases that can verify the
// RFC 1939 §7 APOP digest, which needs the plaintext secret on the server.
// It returns ErrFailed for an unknown user, a wrong digest, or a user whose
// stored secret is a one-way hash.
type APOPAuthenticator interface {
	AuthenticateAPOP(ctx context.Context, username, timestamp, digest string) (*User, error)
}

// PasswordLookup is implemented by user databases that can hand out a
// user's stored password string ("{SCHEME}data", as in the passwd-file).
// The challenge-response SASL mechanisms need it: CRAM-MD5 uses a
// plaintext-equivalent secret, SCRAM uses stored SCRAM credentials (or a
// plaintext secret to derive them from). It returns ErrFailed for an
// unknown user and an error wrapping ErrUnavailable for temporary trouble.
type PasswordLookup interface {
	LookupPassword(ctx context.Context, username string) (*User, string, error)
}

// UserLookup is implemented by user databases that can tell whether a user
// exists without a password: SASL EXTERNAL (a TLS client certificate) and
// OAuth tokens name a user the database must still know. It returns
// ErrFailed for an unknown user.
type UserLookup interface {
	LookupUser(ctx context.Context, username string) (*User, error)
}

// TokenValidator checks an OAuth 2.0 bearer token (SASL OAUTHBEARER, RFC
// 7628, and XOAUTH2) and returns the user name it was issued for. It
// returns an error wrapping ErrFailed for an invalid, expired or
// wrong-audience token, and one wrapping ErrUnavailable when the
// authorization server cannot be reached.
type TokenValidator interface {
	ValidateToken(ctx context.Context, token string) (username string, err error)
}
