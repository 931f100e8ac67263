package sasl

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/auth"
)

type users map[string]string

func (u users) Authenticate(ctx context.Context, name, pw string) (*auth.User, error) {
	if p, ok := u[name]; ok && p == pw {
		return &auth.User{Name: name}, nil
	}
	return nil, auth.ErrFailed
}

func (u users) LookupPassword(ctx context.Context, name string) (*auth.User, string, error) {
	if p, ok := u[name]; ok {
		return &auth.User{Name: name}, "{PLAIN}" + p, nil
	}
	return nil, "", auth.ErrFailed
}

func (u users) LookupUser(ctx context.Context, name string) (*auth.User, error) {
	if _, ok := u[name]; ok {
		return &auth.User{Name: name}, nil
	}
	return nil, auth.ErrFailed
}

type tokens struct{}

func (tokens) ValidateToken(ctx context.Context, tok string) (string, error) {
	if name, ok := strings.CutPrefix(tok, "ok-"); ok {
		return name, nil
	}
	return "", auth.ErrFailed
}

func testServer() *Server { return NewServer(users{"alice": "pw"}, tokens{}) }

// run drives a mechanism through the given responses and returns the
// challenges and the final error.
func run(t *testing.T, m Mechanism, responses ...[]byte) ([]string, error) {
	t.Helper()
	var challenges []string
	for i, r := range responses {
		ch, done, err := m.Next(context.Background(), r)
		if err != nil {
			return challenges, err
		}
		if done {
			if i != len(responses)-1 {
				t.Fatalf("done after %d of %d responses", i+1, len(responses))
			}
			return challenges, nil
		}
		challenges = append(challenges, string(ch))
	}
	return challenges, errors.New("exchange not finished")
}

func TestPlain(t *testing.T) {
	s := testServer()
	tests := []struct {
		resp string
		want error
	}{
		{"\x00alice\x00pw", nil},
		{"alice\x00alice\x00pw", nil},
		{"\x00alice\x00nope", auth.ErrFailed},
		{"\x00bob\x00pw", auth.ErrFailed},
		{"bob\x00alice\x00pw", auth.ErrFailed},
		{"\x00alice\x00", auth.ErrFailed},
		{"\x00\x00pw", ErrMalformed},
		{"alice\x00pw", ErrMalformed},
		{"\x00a\x00b\x00c", ErrMalformed},
		{"\x00../../etc\x00pw", auth.ErrFailed},
	}
	for _, tt := range tests {
		m, _ := s.New(Plain, Conn{})
		_, err := run(t, m, []byte(tt.resp))
		if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
			t.Errorf("PLAIN %q: err %v, want %v", tt.resp, err, tt.want)
		}
	}
}

func TestLogin(t *testing.T) {
	m, _ := testServer().New(Login, Conn{})
	ch, err := run(t, m, nil, []byte("alice"), []byte("pw"))
	if err != nil || strings.Join(ch, ",") != "Username:,Password:" {
		t.Fatalf("LOGIN: %q, %v", ch, err)
	}
	if m.User().Name != "alice" || m.Identity() != "alice" {
		t.Fatalf("user %+v", m.User())
	}
}

func TestParseOAuthBearer(t *testing.T) {
	tests := []struct {
		in, user, token string
		err             bool
	}{
		{"n,a=alice,\x01host=x\x01port=143\x01auth=Bearer tok\x01\x01", "alice", "tok", false},
		{"n,,\x01auth=bearer tok\x01\x01", "", "tok", false},
		{"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01", "a,b=c", "t", false},
		{"p=tls-unique,,\x01auth=Bearer t\x01\x01", "", "", true},
		{"n,,\x01auth=Basic t\x01\x01", "", "", true},
		{"n,,\x01host=x\x01\x01", "", "", true},
		{"n,,\x01auth=Bearer t\x01", "", "", true},
		{"n,b=x,\x01auth=Bearer t\x01\x01", "", "", true},
		{"", "", "", true},
		{"\x01\x01", "", "", true},
	}
	for _, tt := range tests {
		user, token, err := parseOAuthBearer([]byte(tt.in))
		if (err != nil) != tt.err || user != tt.user || token != tt.token {
			t.Errorf("parseOAuthBearer(%q) = %q, %q, %v", tt.in, user, token, err)
		}
	}
}

func TestOAuthBearerErrorExchange(t *testing.T) {
	m, _ := testServer().New(OAuthBearer, Conn{})
	ch, err := run(t, m, []byte("n,,\x01auth=Bearer bad\x01\x01"), []byte{1})
	if !errors.Is(err, auth.ErrFailed) || len(ch) != 1 || !strings.Contains(ch[0], "invalid_token") {
		t.Fatalf("challenges %q, err %v", ch, err)
	}
	m, _ = testServer().New(OAuthBearer, Conn{})
	// mpop acknowledges with an empty response: still the token's error.
	if _, err := run(t, m, []byte("n,,\x01auth=Bearer bad\x01\x01"), []byte{}); !errors.Is(err, auth.ErrFailed) {
		t.Fatalf("empty acknowledgement: %v", err)
	}
	m, _ = testServer().New(OAuthBearer, Conn{})
	if _, err := run(t, m, []byte("n,,\x01auth=Bearer bad\x01\x01"), []byte("junk")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("junk acknowledgement: %v", err)
	}
}

func TestAvailable(t *testing.T) {
	all := Names()
	got := Available(all, Conn{}, false)
	want := []string{CRAMMD5, SCRAMSHA1, SCRAMSHA256}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("plaintext not allowed, no TLS: %q, want %q", got, want)
	}
}

// The decoders must never panic, whatever the client sends.
func FuzzMechanisms(f *testing.F) {
	f.Add(uint8(0), []byte("\x00alice\x00pw"), []byte{})
	f.Add(uint8(2), []byte("alice 0123456789abcdef0123456789abcdef"), []byte{})
	f.Add(uint8(6), []byte("n,,\x01auth=Bearer x\x01\x01"), []byte{1})
	f.Add(uint8(7), []byte("user=a\x01auth=Bearer ok-alice\x01\x01"), []byte{})
	f.Add(uint8(8), []byte(""), []byte{})
	f.Add(uint8(4), []byte("n,,n=alice,r=abcdef"), []byte("c=biws,r=abcdef,p=AAAA"))
	f.Add(uint8(3), []byte("y,,n=alice,r=x"), []byte("c=eSws,r=x,p=="))
	f.Fuzz(func(t *testing.T, which uint8, first, second []byte) {
		names := Names()
		name := names[int(which)%len(names)]
		conn := Conn{Hostname: "h"}
		if name == SCRAMSHA256Plus {
			conn.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
			return // channel binding needs a live connection's exporter
		}
		m, err := testServer().New(name, conn)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, r := range [][]byte{first, second, second} {
			_, done, err := m.Next(ctx, r)
			if err != nil || done {
				if err == nil && m.User() == nil {
					t.Fatalf("%s succeeded without a user", name)
				}
				return
			}
		}
	})
}
