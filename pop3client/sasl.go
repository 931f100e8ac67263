package pop3client

import (
	"errors"

	"github.com/emersion/go-sasl"
	"github.com/xdg-go/scram"
)

// The SASL mechanisms go-sasl lacks or that POP3 servers need done
// differently. PLAIN and OAUTHBEARER come from github.com/emersion/go-sasl
// (sasl.NewPlainClient, sasl.NewOAuthBearerClient).

// NewLoginClient returns a client for the obsolete but common LOGIN
// mechanism. Unlike go-sasl's, it sends no initial response and answers
// the first challenge with the user name and the second with the password
// whatever their wording ("Username:", "User Name", ...), as fetchmail and
// mpop do: servers differ in both, and some reject an initial response.
func NewLoginClient(username, password string) sasl.Client {
	return &loginClient{username: username, password: password}
}

type loginClient struct {
	username, password string
	step               int
}

func (l *loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (l *loginClient) Next(challenge []byte) ([]byte, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte(l.username), nil
	case 2:
		return []byte(l.password), nil
	}
	return nil, sasl.ErrUnexpectedServerChallenge
}

// NewSCRAMSHA256Client returns a SCRAM-SHA-256 client (RFC 7677, RFC
// 5802) without channel binding. The password is prepared with SASLprep;
// an error means it has characters SASLprep forbids. Auth fails with
// ErrServerNotVerified unless the server proves it knows the password.
func NewSCRAMSHA256Client(username, password string) (sasl.Client, error) {
	return newSCRAMClient(username, password, nil)
}

func newSCRAMClient(username, password string, nonce scram.NonceGeneratorFcn) (*scramClient, error) {
	c, err := scram.SHA256.NewClient(username, password, "")
	if err != nil {
		return nil, err
	}
	if nonce != nil {
		c = c.WithNonceGenerator(nonce)
	}
	return &scramClient{client: c}, nil
}

type scramClient struct {
	client   *scram.Client
	conv     *scram.ClientConversation
	verified bool
}

func (s *scramClient) Start() (string, []byte, error) {
	s.conv = s.client.NewConversation()
	first, err := s.conv.Step("")
	if err != nil {
		return "", nil, err
	}
	return "SCRAM-SHA-256", []byte(first), nil
}

func (s *scramClient) Next(challenge []byte) ([]byte, error) {
	if s.conv.Done() {
		return nil, errors.New("scram: unexpected challenge after the exchange ended")
	}
	resp, err := s.conv.Step(string(challenge))
	if err != nil {
		return nil, err
	}
	if s.conv.Done() && s.conv.Valid() {
		// The server-final message carried a valid signature; the
		// empty response lets the server send +OK (RFC 5802 §5).
		s.verified = true
	}
	return []byte(resp), nil
}

func (s *scramClient) ServerVerified() bool { return s.verified }

// NewXOAUTH2Client returns a client for Google's and Microsoft's XOAUTH2
// mechanism with an OAuth 2.0 access token the caller obtained. On
// failure the server sends an error as a challenge, which is answered
// with an empty response as the mechanism requires; Auth then returns
// the server's -ERR.
func NewXOAUTH2Client(username, token string) sasl.Client {
	return &xoauth2Client{username: username, token: token}
}

type xoauth2Client struct{ username, token string }

func (x *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.username + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}
