package sasl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/xdg-go/scram"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// scramIterations is the iteration count for SCRAM credentials derived on
// the fly from a plaintext secret, and for the fake credentials of unknown
// users (RFC 7677 recommends at least 4096).
const scramIterations = 4096

// scramMech runs SCRAM (RFC 5802, RFC 7677) with github.com/xdg-go/scram.
// The conversation ends with the server-final message sent as a challenge
// and an empty client response before success: mpop (GNU SASL) verifies
// the server signature that way and fails if it arrives with +OK.
type scramMech struct {
	s         *Server
	conv      *scram.ServerConversation
	ctx       context.Context // for the credential lookup, which has no context parameter
	lookupErr error
	finished  bool
	user      *auth.User
	identity  string
}

func newSCRAM(s *Server, name string, c Conn) (Mechanism, error) {
	hashName, hashGen := "SHA-256", scram.SHA256
	if name == SCRAMSHA1 {
		hashName, hashGen = "SHA-1", scram.SHA1
	}
	m := &scramMech{s: s}
	srv, err := hashGen.NewServer(func(username string) (scram.StoredCredentials, error) {
		return m.credentials(username, name, hashName)
	})
	if err != nil {
		return nil, fmt.Errorf("scram server: %w", err)
	}
	if name == SCRAMSHA256Plus {
		if c.TLS == nil {
			return nil, errors.New("SCRAM-SHA-256-PLUS needs TLS")
		}
		// tls-exporter (RFC 9266) works with TLS 1.3; tls-server-end-point
		// (RFC 5929) with every version. Clients of both kinds exist.
		cb, err := channelBinding(c.TLS)
		if err != nil {
			return nil, err
		}
		m.conv = srv.NewConversationWithChannelBindingRequired(cb)
	} else if c.TLS != nil && offeredPlus(c) {
		// Detects a downgrade: a client that can do -PLUS saying "y".
		cb, err := channelBinding(c.TLS)
		if err != nil {
			return nil, err
		}
		m.conv = srv.NewConversationWithChannelBinding(cb)
	} else {
		m.conv = srv.NewConversation()
	}
	return m, nil
}

// offeredPlus reports whether the -PLUS variant was advertised on this
// connection, which a plain SCRAM exchange needs to detect a downgrade.
func offeredPlus(c Conn) bool { return c.SCRAMPlusOffered }

func channelBinding(st *tls.ConnectionState) (scram.ChannelBinding, error) {
	if st.Version >= tls.VersionTLS13 {
		return scram.NewTLSExporterBinding(st)
	}
	return scram.NewTLSServerEndpointBinding(st)
}

func (m *scramMech) User() *auth.User { return m.user }
func (m *scramMech) Identity() string { return m.identity }

func (m *scramMech) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	if m.finished {
		// The client's answer to the server-final challenge: empty.
		if len(response) != 0 {
			return nil, true, malformed("unexpected data after SCRAM server-final message")
		}
		return nil, true, nil
	}
	if response == nil {
		return []byte{}, false, nil // ask for client-first
	}
	m.ctx = ctx
	challenge, err := m.conv.Step(string(response))
	m.ctx = nil
	if m.lookupErr != nil {
		return nil, true, m.lookupErr
	}
	if err != nil {
		return nil, true, failed("scram: " + err.Error())
	}
	if !m.conv.Done() {
		return []byte(challenge), false, nil
	}
	if !m.conv.Valid() || m.user == nil {
		return nil, true, failed("scram proof not valid")
	}
	m.finished = true
	return []byte(challenge), false, nil
}

// credentials looks up the user's SCRAM credentials: stored ones for this
// hash, or ones derived from a plaintext secret. An unknown user, or one
// whose stored secret cannot do SCRAM, gets fake credentials with a stable
// salt so that the exchange fails only at the proof, as for a wrong
// password (RFC 5802 §5.1 permits this; it prevents user enumeration).
func (m *scramMech) credentials(username, mech, hashName string) (scram.StoredCredentials, error) {
	m.identity = username
	if err := validName(username); err == nil {
		user, stored, err := m.s.Passwords.LookupPassword(m.ctx, username)
		switch {
		case err == nil:
			if cred, ok := usableSCRAM(stored, mech, hashName); ok {
				m.user = user
				return toStored(cred), nil
			}
			if secret, ok := scheme.Plaintext(stored); ok {
				m.user = user
				return toStored(scheme.DeriveSCRAM(hashName, secret, m.s.userKey("scram-salt", username)[:16], scramIterations)), nil
			}
		case !isFailed(err):
			m.lookupErr = err
			return scram.StoredCredentials{}, err
		}
	}
	fake := scheme.DeriveSCRAM(hashName, string(m.s.userKey("scram-fake", username)), m.s.userKey("scram-salt", username)[:16], scramIterations)
	return toStored(fake), nil
}

func usableSCRAM(stored, mech, hashName string) (scheme.SCRAMCredentials, bool) {
	storedMech, cred, ok := scheme.ParseSCRAM(stored)
	if !ok {
		return cred, false
	}
	want := "SCRAM-" + hashName
	return cred, storedMech == want
}

func toStored(c scheme.SCRAMCredentials) scram.StoredCredentials {
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
		StoredKey:  c.StoredKey,
		ServerKey:  c.ServerKey,
	}
}

func isFailed(err error) bool { return errors.Is(err, auth.ErrFailed) }
