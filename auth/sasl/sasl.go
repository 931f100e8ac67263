// Package sasl is the server side of the SASL mechanisms postoffice offers
// (RFC 4422, as profiled for POP3 by RFC 5034): PLAIN, LOGIN, CRAM-MD5,
// SCRAM-SHA-1, SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, OAUTHBEARER (RFC 7628),
// XOAUTH2 and EXTERNAL. It knows nothing of POP3 framing (base64, "+ "
// lines, "*" cancel): pop3server does that and hands each mechanism the
// decoded octets.
//
// SCRAM uses github.com/xdg-go/scram. The other mechanisms are written
// here: each is a few dozen lines, and the server side of the available
// general-purpose SASL library checks too little for an internet-facing
// server (it accepts a PLAIN authorization identity naming another user,
// and its OAUTHBEARER server can be made to index an empty response).
//
// Every mechanism fails the same way for an unknown user and a wrong
// secret (auth.ErrFailed), and does comparable work in both cases, so that
// neither the reply nor its timing tells who has an account.
package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/postoffice-mail/postoffice/auth"
)

// Mechanism names.
const (
	Plain           = "PLAIN"
	Login           = "LOGIN"
	CRAMMD5         = "CRAM-MD5"
	SCRAMSHA1       = "SCRAM-SHA-1"
	SCRAMSHA256     = "SCRAM-SHA-256"
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	OAuthBearer     = "OAUTHBEARER"
	XOAuth2         = "XOAUTH2"
	External        = "EXTERNAL"
)

// ErrMalformed means the client's response did not follow the mechanism's
// syntax. It is a protocol error, reported as such; it still counts as a
// failed login for the brute-force defence.
var ErrMalformed = errors.New("malformed SASL response")

// Conn is what a mechanism may know about the connection it runs on.
type Conn struct {
	// TLS is the connection state, or nil on an unencrypted connection.
	TLS *tls.ConnectionState
	// Hostname is the server's name, used in challenges.
	Hostname string
	// SCRAMPlusOffered tells SCRAM exchanges that SCRAM-SHA-256-PLUS was
	// advertised on this connection (RFC 5802 §6: a client that could
	// have used channel binding and says "y" is being downgraded).
	SCRAMPlusOffered bool
}

// Mechanism is one server-side SASL exchange. The POP3 layer calls Next
// with each client response (nil when the client sent no initial
// response) until it reports done or an error.
type Mechanism interface {
	// Next consumes a response and returns the next challenge. When done
	// is true and err is nil, authentication succeeded and User is set;
	// a challenge returned with done true is additional data for the
	// client (it is sent, then an empty response is expected — see
	// SCRAM). Errors wrap auth.ErrFailed, auth.ErrUnavailable or
	// ErrMalformed.
	Next(ctx context.Context, response []byte) (challenge []byte, done bool, err error)
	// User returns the authenticated user once Next reported success.
	User() *auth.User
	// Identity returns the user name the client claimed so far, for logs
	// and the per-user brute-force count; "" if none yet.
	Identity() string
}

// Refuser is implemented by mechanisms that can refuse the credentials
// before the exchange ends: OAUTHBEARER and XOAUTH2 send the error as a
// challenge first. Refused returns that pending failure, so the caller can
// count it even if the client then cancels or leaves instead of answering.
type Refuser interface {
	Refused() error
}

// Server creates mechanisms over a user database. Only the fields a
// mechanism needs must be set; Mechanisms reports which are possible.
type Server struct {
	// Auth checks plaintext passwords (PLAIN, LOGIN).
	Auth auth.Authenticator
	// Passwords hands out stored secrets (CRAM-MD5, SCRAM). Optional.
	Passwords auth.PasswordLookup
	// Users resolves users named by tokens and certificates. Optional.
	Users auth.UserLookup
	// Tokens validates OAuth bearer tokens. Optional.
	Tokens auth.TokenValidator

	secret [32]byte // keys the fake SCRAM salts of unknown users
}

// NewServer returns a Server for the given backends. The Authenticator is
// required; the others are used when the database implements them.
func NewServer(a auth.Authenticator, tokens auth.TokenValidator) *Server {
	s := &Server{Auth: a, Tokens: tokens}
	s.Passwords, _ = a.(auth.PasswordLookup)
	s.Users, _ = a.(auth.UserLookup)
	rand.Read(s.secret[:])
	return s
}

// Supported reports whether the backends can run the mechanism at all.
func (s *Server) Supported(name string) error {
	switch name {
	case Plain, Login:
		return nil
	case CRAMMD5, SCRAMSHA1, SCRAMSHA256, SCRAMSHA256Plus:
		if s.Passwords == nil {
			return fmt.Errorf("%s needs a user database that can look up stored passwords", name)
		}
	case OAuthBearer, XOAuth2:
		if s.Tokens == nil {
			return fmt.Errorf("%s needs an OAuth token validator ([oauth] in the configuration)", name)
		}
		if s.Users == nil {
			return fmt.Errorf("%s needs a user database that can look up users", name)
		}
	case External:
		if s.Users == nil {
			return fmt.Errorf("%s needs a user database that can look up users", name)
		}
	default:
		return fmt.Errorf("unknown SASL mechanism %q", name)
	}
	return nil
}

// Names lists every mechanism this package implements.
func Names() []string {
	return []string{Plain, Login, CRAMMD5, SCRAMSHA1, SCRAMSHA256, SCRAMSHA256Plus, OAuthBearer, XOAuth2, External}
}

// Available filters the configured mechanisms down to those usable on a
// connection: PLAIN and LOGIN only where plaintext passwords may be sent,
// SCRAM-SHA-256-PLUS and EXTERNAL only over TLS (EXTERNAL only with a
// verified client certificate).
func Available(configured []string, c Conn, plaintextAllowed bool) []string {
	var out []string
	for _, name := range configured {
		switch name {
		case Plain, Login, XOAuth2, OAuthBearer:
			// Bearer tokens are as good as passwords to a listener.
			if !plaintextAllowed {
				continue
			}
		case SCRAMSHA256Plus:
			if c.TLS == nil {
				continue
			}
		case External:
			if c.TLS == nil || len(c.TLS.VerifiedChains) == 0 {
				continue
			}
		}
		out = append(out, name)
	}
	return out
}

// New starts an exchange of the named mechanism.
func (s *Server) New(name string, c Conn) (Mechanism, error) {
	switch name {
	case Plain:
		return &plainMech{s: s}, nil
	case Login:
		return &loginMech{s: s}, nil
	case CRAMMD5:
		return newCRAMMD5(s, c), nil
	case SCRAMSHA1, SCRAMSHA256, SCRAMSHA256Plus:
		return newSCRAM(s, name, c)
	case OAuthBearer:
		return &oauthBearerMech{s: s}, nil
	case XOAuth2:
		return &xoauth2Mech{s: s}, nil
	case External:
		return &externalMech{s: s, conn: c}, nil
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q", name)
}

// userKey derives per-user values (fake salts) that are stable for the
// process, so that repeated probes of an unknown user see the same salt as
// repeated probes of a real one would.
func (s *Server) userKey(purpose, username string) []byte {
	m := hmac.New(sha256.New, s.secret[:])
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(username))
	return m.Sum(nil)
}

func failed(reason string) error { return fmt.Errorf("%w: %s", auth.ErrFailed, reason) }

func malformed(reason string) error { return fmt.Errorf("%w: %s", ErrMalformed, reason) }

// validName applies the user-name rule to names that arrive inside SASL
// messages (they never went through the USER command).
func validName(name string) error {
	if err := auth.ValidUsername(name); err != nil {
		return failed("invalid user name")
	}
	return nil
}
