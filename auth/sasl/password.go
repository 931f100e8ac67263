package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// plainMech is PLAIN (RFC 4616): authzid NUL authcid NUL password.
type plainMech struct {
	s        *Server
	identity string
	user     *auth.User
}

func (m *plainMech) User() *auth.User { return m.user }
func (m *plainMech) Identity() string { return m.identity }

func (m *plainMech) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil // RFC 4422 §3: ask for the initial response
	}
	parts := bytes.Split(response, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, true, malformed("PLAIN needs authzid NUL authcid NUL password")
	}
	authzid, authcid, password := string(parts[0]), string(parts[1]), string(parts[2])
	m.identity = authcid
	// Acting as another user is not offered: the authorization identity
	// must be empty or the authenticated user itself.
	if authzid != "" && authzid != authcid {
		return nil, true, failed("authorization identity differs")
	}
	user, err := m.s.checkPassword(ctx, authcid, password)
	m.user = user
	return nil, true, err
}

// loginMech is the LOGIN mechanism (draft-murchison-sasl-login): the
// server prompts for the user name, then the password.
type loginMech struct {
	s        *Server
	step     int
	username string
	user     *auth.User
}

func (m *loginMech) User() *auth.User { return m.user }
func (m *loginMech) Identity() string { return m.username }

func (m *loginMech) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	switch m.step {
	case 0:
		m.step = 1
		if response == nil || len(response) == 0 {
			return []byte("Username:"), false, nil
		}
		// Some clients send the user name as the initial response.
		m.username = string(response)
		m.step = 2
		return []byte("Password:"), false, nil
	case 1:
		m.username = string(response)
		m.step = 2
		return []byte("Password:"), false, nil
	default:
		user, err := m.s.checkPassword(ctx, m.username, string(response))
		m.user = user
		return nil, true, err
	}
}

func (s *Server) checkPassword(ctx context.Context, username, password string) (*auth.User, error) {
	if err := validName(username); err != nil {
		return nil, err
	}
	if password == "" {
		return nil, failed("empty password")
	}
	// RFC 4616 §2: the server prepares both with SASLprep.
	username, err := auth.Prepare(username)
	if err != nil {
		return nil, failed("bad user name")
	}
	if password, err = auth.Prepare(password); err != nil {
		return nil, failed("bad password")
	}
	return s.Auth.Authenticate(ctx, username, password)
}

// cramMD5 is CRAM-MD5 (RFC 2195): the client answers a challenge with
// "user hex(HMAC-MD5(secret, challenge))". It needs the plaintext secret
// on the server, so it works only for users stored with a plaintext
// scheme, and it is off unless the administrator configures it.
type cramMD5 struct {
	s         *Server
	challenge string
	identity  string
	user      *auth.User
}

func newCRAMMD5(s *Server, c Conn) *cramMD5 {
	var nonce [8]byte
	rand.Read(nonce[:])
	return &cramMD5{s: s, challenge: fmt.Sprintf("<%s.%d@%s>", hex.EncodeToString(nonce[:]), time.Now().Unix(), c.Hostname)}
}

func (m *cramMD5) User() *auth.User { return m.user }
func (m *cramMD5) Identity() string { return m.identity }

func (m *cramMD5) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte(m.challenge), false, nil
	}
	if len(response) == 0 { // an initial response makes no sense here
		return nil, true, malformed("CRAM-MD5 takes no initial response")
	}
	name, digest, ok := strings.Cut(string(response), " ")
	if !ok || len(digest) != 32 {
		return nil, true, malformed("CRAM-MD5 response is \"user digest\"")
	}
	want, err := hex.DecodeString(strings.ToLower(digest))
	if err != nil {
		return nil, true, malformed("CRAM-MD5 digest is not hexadecimal")
	}
	m.identity = name
	if err := validName(name); err != nil {
		return nil, true, err
	}
	user, stored, err := m.s.Passwords.LookupPassword(ctx, name)
	if err != nil && !isFailed(err) {
		return nil, true, err
	}
	secret, plain := scheme.Plaintext(stored)
	if err != nil || !plain {
		// Compute anyway, with a key nobody knows, so the answer takes
		// as long as for a real user.
		secret, user = string(m.s.userKey("cram", name)), nil
	}
	mac := hmac.New(md5.New, []byte(secret))
	mac.Write([]byte(m.challenge))
	if subtle.ConstantTimeCompare(mac.Sum(nil), want) != 1 || user == nil {
		return nil, true, failed("wrong CRAM-MD5 digest")
	}
	m.user = user
	return nil, true, nil
}
