package sasl

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"

	"github.com/postoffice-mail/postoffice/auth"
)

// oauthError is the JSON error a server sends as a challenge when a bearer
// token is refused (RFC 7628 §3.2.2); the client then answers with a
// single 0x01 octet (OAUTHBEARER) or an empty response (XOAUTH2) and the
// exchange fails.
type oauthError struct {
	Status  string `json:"status"`
	Schemes string `json:"schemes,omitempty"`
	Scope   string `json:"scope,omitempty"`
}

// StatusError lets a token validator say which RFC 7628 status to report
// ("invalid_token", "insufficient_scope", "invalid_request").
type StatusError interface {
	error
	OAuthStatus() string
}

// JSONError is an error that can render its own RFC 7628 §3.2.2 JSON
// (package auth/oauth's *Error, which also names the missing scope).
type JSONError interface {
	error
	JSON(openIDConfiguration string) []byte
}

func errorChallenge(err error) []byte {
	var je JSONError
	if errors.As(err, &je) {
		return je.JSON("")
	}
	status := "invalid_token"
	var se StatusError
	if errors.As(err, &se) && se.OAuthStatus() != "" {
		status = se.OAuthStatus()
	}
	blob, _ := json.Marshal(oauthError{Status: status, Schemes: "bearer"})
	return blob
}

// tokenUser validates a token and resolves the user it names. When the
// client also named a user (authzid or user=), the two must agree.
func (s *Server) tokenUser(ctx context.Context, claimed, token string) (*auth.User, error) {
	name, err := s.Tokens.ValidateToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if claimed != "" && claimed != name {
		return nil, failed("token issued for another user")
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	return s.Users.LookupUser(ctx, name)
}

// oauthBearerMech is OAUTHBEARER (RFC 7628): a GS2 header, then
// key=value pairs separated by 0x01, one of them "auth=Bearer <token>".
type oauthBearerMech struct {
	s        *Server
	failure  error // set once the error challenge was sent
	identity string
	user     *auth.User
}

func (m *oauthBearerMech) User() *auth.User { return m.user }
func (m *oauthBearerMech) Refused() error   { return m.failure }
func (m *oauthBearerMech) Identity() string { return m.identity }

func (m *oauthBearerMech) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	if m.failure != nil {
		// RFC 7628 §3.2.3: the client acknowledges the error with 0x01.
		// mpop (GNU SASL) sends an empty response instead; either way the
		// token was refused, and that is what the client must hear.
		if len(response) > 0 && !bytes.Equal(response, []byte{1}) {
			return nil, true, malformed("expected 0x01 after an OAUTHBEARER error")
		}
		return nil, true, m.failure
	}
	if response == nil {
		return []byte{}, false, nil
	}
	claimed, token, err := parseOAuthBearer(response)
	if err != nil {
		return nil, true, err
	}
	m.identity = claimed
	user, err := m.s.tokenUser(ctx, claimed, token)
	if errors.Is(err, auth.ErrUnavailable) {
		return nil, true, err
	}
	if err != nil {
		m.failure = err
		return errorChallenge(err), false, nil
	}
	m.user = user
	return nil, true, nil
}

// parseOAuthBearer splits an OAUTHBEARER client response:
// gs2-header ("n,a=user," or "n,,") 0x01 kvpairs 0x01 0x01.
func parseOAuthBearer(b []byte) (user, token string, err error) {
	gs2, rest, ok := bytes.Cut(b, []byte{1})
	if !ok || !bytes.HasSuffix(rest, []byte{1, 1}) {
		return "", "", malformed("OAUTHBEARER message is not terminated")
	}
	fields := strings.Split(string(gs2), ",")
	if len(fields) != 3 || fields[2] != "" {
		return "", "", malformed("bad OAUTHBEARER GS2 header")
	}
	switch fields[0] {
	case "n", "y":
	default: // "p=..." asks for channel binding OAUTHBEARER does not do
		return "", "", malformed("OAUTHBEARER does not support channel binding")
	}
	if fields[1] != "" {
		if !strings.HasPrefix(fields[1], "a=") {
			return "", "", malformed("bad OAUTHBEARER authorization identity")
		}
		user = saslNameDecode(fields[1][2:])
	}
	for _, kv := range bytes.Split(rest[:len(rest)-2], []byte{1}) {
		key, value, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			return "", "", malformed("bad OAUTHBEARER key/value pair")
		}
		if string(key) == "auth" {
			token, err = bearerToken(string(value))
			if err != nil {
				return "", "", err
			}
		}
	}
	if token == "" {
		return "", "", malformed("OAUTHBEARER message has no auth= token")
	}
	return user, token, nil
}

// saslNameDecode undoes RFC 5801's escaping of ',' and '=' in names.
func saslNameDecode(s string) string {
	return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(s)
}

// bearerToken takes the token out of "Bearer <token>" (scheme name
// case-insensitive, RFC 6750 §2.1).
func bearerToken(v string) (string, error) {
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", malformed("auth value is not a Bearer token")
	}
	return token, nil
}

// xoauth2Mech is Google's XOAUTH2: "user=<name>" 0x01 "auth=Bearer
// <token>" 0x01 0x01. On failure the server sends a JSON error challenge
// and the client answers with an empty response.
type xoauth2Mech struct {
	s        *Server
	failure  error
	identity string
	user     *auth.User
}

func (m *xoauth2Mech) User() *auth.User { return m.user }
func (m *xoauth2Mech) Refused() error   { return m.failure }
func (m *xoauth2Mech) Identity() string { return m.identity }

func (m *xoauth2Mech) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	if m.failure != nil {
		return nil, true, m.failure
	}
	if response == nil {
		return []byte{}, false, nil
	}
	if !bytes.HasSuffix(response, []byte{1, 1}) {
		return nil, true, malformed("XOAUTH2 message is not terminated")
	}
	var user, token string
	for _, kv := range bytes.Split(response[:len(response)-2], []byte{1}) {
		key, value, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			return nil, true, malformed("bad XOAUTH2 key/value pair")
		}
		switch string(key) {
		case "user":
			user = string(value)
		case "auth":
			var err error
			if token, err = bearerToken(string(value)); err != nil {
				return nil, true, err
			}
		}
	}
	if user == "" || token == "" {
		return nil, true, malformed("XOAUTH2 needs user= and auth=")
	}
	m.identity = user
	u, err := m.s.tokenUser(ctx, user, token)
	if errors.Is(err, auth.ErrUnavailable) {
		return nil, true, err
	}
	if err != nil {
		m.failure = err
		return errorChallenge(err), false, nil
	}
	m.user = u
	return nil, true, nil
}

// externalMech is EXTERNAL (RFC 4422 appendix A) with a TLS client
// certificate the server verified against its configured CAs. The
// certificate names the user by its first e-mail address, or else its
// common name; an authorization identity, if sent, must be that name.
type externalMech struct {
	s        *Server
	conn     Conn
	identity string
	user     *auth.User
}

func (m *externalMech) User() *auth.User { return m.user }
func (m *externalMech) Identity() string { return m.identity }

func (m *externalMech) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil
	}
	st := m.conn.TLS
	if st == nil || len(st.VerifiedChains) == 0 {
		return nil, true, failed("no verified client certificate")
	}
	name := certificateUser(st.VerifiedChains[0][0])
	m.identity = name
	if name == "" {
		return nil, true, failed("the client certificate names no user")
	}
	if len(response) > 0 && string(response) != name {
		return nil, true, failed("authorization identity differs from the certificate")
	}
	if err := validName(name); err != nil {
		return nil, true, err
	}
	user, err := m.s.Users.LookupUser(ctx, name)
	m.user = user
	return nil, true, err
}

func certificateUser(c *x509.Certificate) string {
	if len(c.EmailAddresses) > 0 {
		return c.EmailAddresses[0]
	}
	return c.Subject.CommonName
}
