package pop3server

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/sasl"
	"github.com/postoffice-mail/postoffice/auth/scheme"
	"github.com/postoffice-mail/postoffice/pop3"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// LookupPassword and LookupUser make fakeAuth a full SASL backend: its
// passwords are plaintext.
func (f *fakeAuth) LookupPassword(ctx context.Context, name string) (*auth.User, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unavailable {
		return nil, "", auth.ErrUnavailable
	}
	if pw, ok := f.passwords[name]; ok {
		return &auth.User{Name: name}, "{PLAIN}" + pw, nil
	}
	if stored, ok := f.stored[name]; ok {
		return &auth.User{Name: name}, stored, nil
	}
	return nil, "", auth.ErrFailed
}

func storedSCRAM(t *testing.T, password string) string {
	t.Helper()
	s, err := scheme.Hash("SCRAM-SHA-256", password)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fakeAuth) LookupUser(ctx context.Context, name string) (*auth.User, error) {
	_, _, err := f.LookupPassword(ctx, name)
	if err != nil {
		return nil, err
	}
	return &auth.User{Name: name}, nil
}

// fakeTokens accepts "token-for-NAME".
type fakeTokens struct{ down bool }

type statusErr string

func (e statusErr) Error() string       { return "token refused: " + string(e) }
func (e statusErr) OAuthStatus() string { return string(e) }
func (e statusErr) Unwrap() error       { return auth.ErrFailed }

func (f fakeTokens) ValidateToken(ctx context.Context, token string) (string, error) {
	if f.down {
		return "", fmt.Errorf("%w: introspection endpoint down", auth.ErrUnavailable)
	}
	if name, ok := strings.CutPrefix(token, "token-for-"); ok {
		return name, nil
	}
	return "", statusErr("invalid_token")
}

func saslServer(t *testing.T, mechs ...string) *testServer {
	return newTestServer(t, func(c *Config) {
		c.SASLMechanisms = mechs
		c.Tokens = fakeTokens{}
		c.MaxBadCommands = 100
	})
}

func (c *testConn) wantChallenge() string {
	c.t.Helper()
	line := c.readLine()
	if !strings.HasPrefix(line, "+ ") {
		c.t.Fatalf("%q: got %q, want a \"+ \" challenge", c.last, line)
	}
	b, err := base64.StdEncoding.DecodeString(line[2:])
	if err != nil {
		c.t.Fatalf("challenge %q is not base64", line)
	}
	return string(b)
}

func TestAuthPlain(t *testing.T) {
	ts := saslServer(t, sasl.Plain, sasl.Login)
	c := ts.dial()
	c.send("AUTH PLAIN " + b64("\x00alice\x00wonderland")).wantOK()
	c.send("STAT").wantOK()
	c.send("AUTH PLAIN " + b64("\x00alice\x00wonderland")).wantErr("") // a second AUTH after success

	// curl sends no initial response and waits for an empty challenge.
	c = ts.dial()
	c.send("AUTH PLAIN")
	if got := c.wantChallenge(); got != "" {
		t.Fatalf("challenge %q, want empty", got)
	}
	c.send(b64("bob\x00bob\x00builder")).wantOK()
}

func TestAuthPlainFailures(t *testing.T) {
	ts := saslServer(t, sasl.Plain)
	c := ts.dial()
	c.send("AUTH PLAIN " + b64("\x00alice\x00nope")).wantErr(pop3.CodeAuth)
	c.send("AUTH PLAIN " + b64("\x00nobody\x00nope")).wantErr(pop3.CodeAuth)
	c.send("AUTH PLAIN " + b64("bob\x00alice\x00wonderland")).wantErr(pop3.CodeAuth) // acting as another user
	c.send("AUTH PLAIN " + b64("\x00../x\x00nope")).wantErr(pop3.CodeAuth)
	c.send("AUTH PLAIN =").wantErr("")                          // empty response: malformed
	c.send("AUTH PLAIN " + b64("alice-wonderland")).wantErr("") // no NULs
	c.send("AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ").wantErr("")    // missing padding
	c.send("AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=x").wantErr("")
	c.send("AUTH PLAIN a b c").wantErr("")
	c.send("AUTH NOSUCH").wantErr("")
	c.send("AUTH PLAIN")
	c.wantChallenge()
	c.send("*").wantErr("") // RFC 5034: cancel
	c.send("AUTH PLAIN")
	c.wantChallenge()
	c.send("!!!!").wantErr("")
	c.send("AUTH plain " + b64("\x00alice\x00wonderland")).wantOK() // mechanism names are case-insensitive
}

func TestAuthLogin(t *testing.T) {
	ts := saslServer(t, sasl.Login)
	c := ts.dial()
	c.send("AUTH LOGIN")
	if got := c.wantChallenge(); got != "Username:" {
		t.Fatalf("first challenge %q", got)
	}
	c.send(b64("alice"))
	if got := c.wantChallenge(); got != "Password:" {
		t.Fatalf("second challenge %q", got)
	}
	c.send(b64("wonderland")).wantOK()

	c = ts.dial()
	c.send("AUTH LOGIN " + b64("alice"))
	c.wantChallenge()
	c.send(b64("wrong")).wantErr(pop3.CodeAuth)
}

func TestAuthListingAndCapa(t *testing.T) {
	ts := saslServer(t, sasl.Plain, sasl.Login, sasl.CRAMMD5)
	c := ts.dial()
	c.send("AUTH").wantOK()
	c.wantLines("PLAIN", "LOGIN", "CRAM-MD5")
	c.send("CAPA").wantOK()
	c.wantLinesContaining("SASL PLAIN LOGIN CRAM-MD5")
	c.login("alice", "wonderland")
	c.send("CAPA").wantOK()
	c.wantLinesContaining("SASL PLAIN LOGIN CRAM-MD5") // RFC 2449: stays after login
}

func TestAuthPlaintextPolicy(t *testing.T) {
	ts := saslServer(t, sasl.Plain, sasl.Login, sasl.CRAMMD5, sasl.XOAuth2)
	c := servePipe(t, ts).dial(t, "198.51.100.7")
	c.send("CAPA").wantOK()
	caps := c.readBody()
	if !slices.Contains(caps, "SASL CRAM-MD5") {
		t.Errorf("CAPA on an unencrypted remote connection: %q; want only CRAM-MD5 offered", caps)
	}
	c.send("AUTH PLAIN " + b64("\x00alice\x00wonderland")).wantErr(pop3.CodeAuth)
	c.send("AUTH XOAUTH2 " + b64("user=alice\x01auth=Bearer token-for-alice\x01\x01")).wantErr("")
}

func TestAuthCRAMMD5(t *testing.T) {
	ts := saslServer(t, sasl.CRAMMD5)
	for _, tc := range []struct {
		user, secret, code string
	}{
		{"alice", "nope", pop3.CodeAuth},
		{"nobody", "nope", pop3.CodeAuth},
		{"alice", "wonderland", ""},
	} {
		c := ts.dial()
		c.send("AUTH CRAM-MD5")
		challenge := c.wantChallenge()
		if !regexp.MustCompile(`^<[0-9a-f]+\.\d+@pop\.test>$`).MatchString(challenge) {
			t.Fatalf("challenge %q", challenge)
		}
		mac := hmac.New(md5.New, []byte(tc.secret))
		mac.Write([]byte(challenge))
		// fetchmail sends lower-case hex.
		c.send(b64(tc.user + " " + hex.EncodeToString(mac.Sum(nil))))
		if tc.code == "" {
			c.wantOK()
		} else {
			c.wantErr(tc.code)
		}
	}
}

func TestAuthOAuthBearer(t *testing.T) {
	ts := saslServer(t, sasl.OAuthBearer, sasl.XOAuth2)
	c := ts.dial()
	c.send("AUTH OAUTHBEARER " + b64("n,a=alice,\x01host=pop.test\x01port=110\x01auth=Bearer token-for-alice\x01\x01")).wantOK()

	// A refused token: a JSON error challenge, the client's 0x01, -ERR.
	c = ts.dial()
	c.send("AUTH OAUTHBEARER " + b64("n,,\x01auth=Bearer forged\x01\x01"))
	if got := c.wantChallenge(); !strings.Contains(got, `"status":"invalid_token"`) {
		t.Fatalf("error challenge %q", got)
	}
	c.send(b64("\x01")).wantErr(pop3.CodeAuth)

	// A token for another user than the one named.
	c.send("AUTH OAUTHBEARER " + b64("n,a=bob,\x01auth=Bearer token-for-alice\x01\x01"))
	c.wantChallenge()
	c.send(b64("\x01")).wantErr(pop3.CodeAuth)

	// Long tokens (tens of kilobytes, more than the read buffer) fit, in
	// the initial response and in a continuation line.
	c.send("AUTH OAUTHBEARER " + b64("n,,\x01auth=Bearer "+strings.Repeat("x", 30000)+"\x01\x01"))
	c.wantChallenge()
	c.send(b64("\x01")).wantErr(pop3.CodeAuth)
	c.send("AUTH XOAUTH2")
	c.wantChallenge()
	c.send(b64("user=bob\x01auth=Bearer token-for-bob\x01\x01")).wantOK()
}

func TestAuthXOAuth2Refused(t *testing.T) {
	ts := saslServer(t, sasl.XOAuth2)
	c := ts.dial()
	c.send("AUTH XOAUTH2 " + b64("user=alice\x01auth=Bearer nope\x01\x01"))
	if got := c.wantChallenge(); !strings.Contains(got, "invalid_token") {
		t.Fatalf("challenge %q", got)
	}
	c.send("").wantErr(pop3.CodeAuth)
	c.send("AUTH XOAUTH2 " + b64("auth=Bearer nope\x01\x01")).wantErr("") // no user=
}

func TestAuthTokenServiceDown(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.SASLMechanisms = []string{sasl.XOAuth2}
		c.Tokens = fakeTokens{down: true}
	})
	c := ts.dial()
	c.send("AUTH XOAUTH2 " + b64("user=alice\x01auth=Bearer token-for-alice\x01\x01")).wantErr(pop3.CodeSysTemp)
}

func TestAuthTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.AuthTimeout = 200 * time.Millisecond })
	c := ts.dial()
	c.send("AUTH PLAIN")
	c.wantChallenge()
	c.wantErr(pop3.CodeAuth) // never answered
	c.wantClosed()
}

func TestAuthLongLines(t *testing.T) {
	ts := saslServer(t, sasl.Plain)
	c := ts.dial()
	// An AUTH line over 255 octets is accepted (long initial responses);
	// another command that long is not.
	c.send("AUTH PLAIN " + b64("\x00alice\x00"+strings.Repeat("p", 300))).wantErr(pop3.CodeAuth)
	c.send("NOOP " + strings.Repeat("x", 300)).wantErr("")
	c.send("AUTH PLAIN")
	c.wantChallenge()
	c.send(strings.Repeat("QUFB", 17000)).wantErr("") // over the 64 KiB SASL line limit
	c.send("AUTH PLAIN " + b64("\x00alice\x00wonderland")).wantOK()
}

func TestNewRefusesUnsupportedMechanisms(t *testing.T) {
	for _, mechs := range [][]string{{"NOSUCH"}, {sasl.XOAuth2}} {
		_, err := New(Config{Auth: plainOnlyAuth{}, Store: newTestServer(t).store, SASLMechanisms: mechs})
		if err == nil {
			t.Errorf("New accepted %q with a backend that cannot run it", mechs)
		}
	}
	_, err := New(Config{Auth: plainOnlyAuth{}, Store: newTestServer(t).store, SASLMechanisms: []string{sasl.CRAMMD5}})
	if err == nil || !strings.Contains(err.Error(), "CRAM-MD5") {
		t.Errorf("CRAM-MD5 without password lookup: %v", err)
	}
	_ = errors.New
}

// A refused token counts as a failed login even when the client cancels or
// leaves instead of acknowledging the error challenge; mpop acknowledges
// with an empty line instead of 0x01 and must still hear [AUTH].
func TestAuthRefusedTokenCounts(t *testing.T) {
	guard := &countingGuard{}
	ts := newTestServer(t, func(c *Config) {
		c.SASLMechanisms = []string{sasl.OAuthBearer, sasl.XOAuth2}
		c.Tokens = fakeTokens{}
		c.LoginGuard = guard
	})
	c := ts.dial()
	c.send("AUTH XOAUTH2 " + b64("user=alice\x01auth=Bearer guess1\x01\x01"))
	c.wantChallenge()
	c.send("*").wantErr(pop3.CodeAuth)
	c.send("AUTH OAUTHBEARER " + b64("n,a=alice,\x01auth=Bearer guess2\x01\x01"))
	c.wantChallenge()
	c.send("").wantErr(pop3.CodeAuth)
	c.send("AUTH XOAUTH2 " + b64("user=alice\x01auth=Bearer guess3\x01\x01"))
	c.wantChallenge()
	c.nc.Close()
	waitFor(t, func() bool { return guard.failures() == 3 })
}

type countingGuard struct {
	mu sync.Mutex
	n  int
}

func (g *countingGuard) Delay(netip.Addr, string) time.Duration { return 0 }
func (g *countingGuard) Success(netip.Addr, string)             {}
func (g *countingGuard) Failure(netip.Addr, string, string) {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
}
func (g *countingGuard) failures() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
