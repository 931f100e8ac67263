package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
)

// Client credentials with characters RFC 6749 §2.3.1 makes us form-encode.
const (
	testClientID     = "pop3 server"
	testClientSecret = "s3cr:t/+="
)

// introspectionServer is a fake RFC 7662 endpoint. It answers each token
// from a table and records what it was sent.
type introspectionServer struct {
	*httptest.Server
	t       *testing.T
	mu      sync.Mutex
	answers map[string]map[string]any // token → response; missing: inactive
	status  int                       // 0: 200
	raw     string                    // if set, the body sent instead
	delay   time.Duration
	hits    atomic.Int32
}

func newIntrospectionServer(t *testing.T) *introspectionServer {
	s := &introspectionServer{t: t, answers: map[string]map[string]any{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *introspectionServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	status, raw, delay := s.status, s.raw, s.delay
	s.mu.Unlock()
	// Reading the body first lets the server notice a client that
	// gives up (net/http watches the connection only after the body).
	formErr := r.ParseForm()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	// RFC 7662 §2.1: a form POST, authenticated.
	id, secret, ok := r.BasicAuth()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
		!ok || id != "pop3+server" || secret != "s3cr%3At%2F%2B%3D" {
		s.t.Errorf("request: %s %s, Basic %q:%q (%v)", r.Method, r.Header.Get("Content-Type"), id, secret, ok)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if formErr != nil || r.PostForm.Get("token_type_hint") != "access_token" {
		s.t.Errorf("form: %v, %v", r.PostForm, formErr)
	}
	if status != 0 {
		http.Error(w, "trouble", status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if raw != "" {
		w.Write([]byte(raw))
		return
	}
	s.mu.Lock()
	answer, known := s.answers[r.PostForm.Get("token")]
	s.mu.Unlock()
	if !known {
		answer = map[string]any{"active": false}
	}
	json.NewEncoder(w).Encode(answer)
}

func (s *introspectionServer) answer(token string, response map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[token] = response
}

func (s *introspectionServer) set(status int, raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.raw = status, raw
}

func newIntrospector(t *testing.T, s *introspectionServer, clk *clock, edit func(*Config)) *Introspector {
	t.Helper()
	cfg := Config{
		Mode:             ModeIntrospection,
		IntrospectionURL: s.URL + "/introspect",
		ClientID:         testClientID,
		ClientSecret:     testClientSecret,
		Timeout:          2 * time.Second,
		now:              clk.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := NewIntrospector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// activeAnswer is an RFC 7662 §2.2 answer for alice, valid 5 minutes.
func activeAnswer(clk *clock) map[string]any {
	now := clk.Unix()
	return map[string]any{
		"active":     true,
		"username":   "alice",
		"sub":        "9c1c1d1e-0000-4000-8000-000000000001",
		"client_id":  "thunderbird",
		"scope":      "openid pop3",
		"token_type": "Bearer",
		"iss":        testIssuer,
		"aud":        []string{testAudience, "account"},
		"exp":        now + 300,
		"iat":        now - 10,
		"nbf":        now - 10,
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	s := newIntrospectionServer(t)
	clk := newClock()
	edit := func(c *Config) { c.Issuer, c.Audience, c.RequiredScope = testIssuer, testAudience, "pop3" }
	v := newIntrospector(t, s, clk, edit)
	with := func(token string, change func(map[string]any)) string {
		a := activeAnswer(clk)
		if change != nil {
			change(a)
		}
		s.answer(token, a)
		return token
	}
	now := clk.Unix()
	ctx := context.Background()
	if name, err := v.ValidateToken(ctx, with("good.token-1", nil)); name != "alice" || err != nil {
		t.Fatalf("ValidateToken = %q, %v; want alice", name, err)
	}
	tests := []struct {
		name, token, status string
	}{
		{"unknown token", "never-issued", StatusInvalidToken},
		{"inactive", with("revoked", func(a map[string]any) { a["active"] = false }), StatusInvalidToken},
		{"expired", with("expired", func(a map[string]any) { a["exp"] = now - 3600 }), StatusInvalidToken},
		{"not yet valid", with("early", func(a map[string]any) { a["nbf"] = now + 3600 }), StatusInvalidToken},
		{"wrong issuer", with("iss", func(a map[string]any) { a["iss"] = "https://other.example" }), StatusInvalidToken},
		{"wrong audience", with("aud", func(a map[string]any) { a["aud"] = "account" }), StatusInvalidToken},
		{"no scope", with("noscope", func(a map[string]any) { delete(a, "scope") }), StatusInsufficientScope},
		{"no username", with("nouser", func(a map[string]any) { delete(a, "username") }), StatusInvalidToken},
		{"username not valid", with("baduser", func(a map[string]any) { a["username"] = "alice/../bob" }), StatusInvalidToken},
		{"exp of wrong type", with("badexp", func(a map[string]any) { a["exp"] = "soon" }), StatusInvalidToken},
		{"empty token", "", StatusInvalidRequest},
		{"token with a quote", `abc"def`, StatusInvalidRequest},
	}
	for _, tt := range tests {
		name, err := v.ValidateToken(ctx, tt.token)
		if name != "" {
			t.Errorf("%s: ValidateToken = %q", tt.name, name)
		}
		t.Run(tt.name, func(t *testing.T) { wantStatus(t, err, tt.status) })
	}
	// Without the optional checks configured, issuer, audience and scope
	// are not looked at, and exp is optional.
	loose := newIntrospector(t, s, clk, nil)
	for _, token := range []string{"iss", "aud", "noscope", with("noexp", func(a map[string]any) { delete(a, "exp") })} {
		if name, err := loose.ValidateToken(ctx, token); name != "alice" || err != nil {
			t.Errorf("without checks, %s: ValidateToken = %q, %v", token, name, err)
		}
	}
}

func TestIntrospectionUsernameClaim(t *testing.T) {
	t.Parallel()
	s := newIntrospectionServer(t)
	clk := newClock()
	s.answer("t", activeAnswer(clk))
	v := newIntrospector(t, s, clk, func(c *Config) { c.UsernameClaim = "client_id" })
	if name, err := v.ValidateToken(context.Background(), "t"); name != "thunderbird" || err != nil {
		t.Errorf("UsernameClaim client_id: %q, %v", name, err)
	}
	v = newIntrospector(t, s, clk, func(c *Config) { c.UsernameClaim = "sub" })
	if name, err := v.ValidateToken(context.Background(), "t"); name != "9c1c1d1e-0000-4000-8000-000000000001" || err != nil {
		t.Errorf("UsernameClaim sub: %q, %v", name, err)
	}
}

// TestIntrospectionUnavailable checks that the endpoint's trouble is never
// the client's failure.
func TestIntrospectionUnavailable(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tests := []struct {
		name   string
		status int
		raw    string
	}{
		{"server error", 500, ""},
		{"bad gateway", 502, ""},
		{"our credentials refused", 401, ""},
		{"bad request", 400, ""},
		{"not JSON", 0, "<html>login</html>"},
		{"no active member", 0, `{"username":"alice"}`},
		{"active not a boolean", 0, `{"active":"true","username":"alice"}`},
		{"JSON array", 0, `[{"active":true}]`},
		{"too large", 0, `{"active":true,"x":"` + strings.Repeat("x", maxResponse) + `"}`},
	}
	for _, tt := range tests {
		s := newIntrospectionServer(t)
		s.answer("t", activeAnswer(clk))
		s.set(tt.status, tt.raw)
		v := newIntrospector(t, s, clk, nil)
		_, err := v.ValidateToken(context.Background(), "t")
		t.Run(tt.name, func(t *testing.T) { wantUnavailable(t, err) })
	}

	// Nothing listening.
	s := newIntrospectionServer(t)
	v := newIntrospector(t, s, clk, nil)
	s.Close()
	_, err := v.ValidateToken(context.Background(), "t")
	wantUnavailable(t, err)

	// A redirect is not followed: it would take the credentials along.
	target := newIntrospectionServer(t)
	target.answer("t", activeAnswer(clk))
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	v, err = NewIntrospector(Config{IntrospectionURL: redirect.URL, ClientID: testClientID, ClientSecret: testClientSecret, now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.ValidateToken(context.Background(), "t")
	wantUnavailable(t, err)
	if target.hits.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestIntrospectionTimeout(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newIntrospectionServer(t)
	s.answer("t", activeAnswer(clk))
	s.delay = 10 * time.Second
	v := newIntrospector(t, s, clk, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := v.ValidateToken(context.Background(), "t")
	wantUnavailable(t, err)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("ValidateToken took %v with a 100ms timeout", took)
	}
	// The caller's context is honoured too.
	v = newIntrospector(t, s, clk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = v.ValidateToken(ctx, "t")
	wantUnavailable(t, err)
}

func TestIntrospectionCache(t *testing.T) {
	t.Parallel()
	s := newIntrospectionServer(t)
	clk := newClock()
	v := newIntrospector(t, s, clk, func(c *Config) { c.CacheTTL = time.Minute })
	ctx := context.Background()
	a := activeAnswer(clk)
	a["exp"] = clk.Unix() + 90
	s.answer("cached-token", a)
	for range 3 {
		if name, err := v.ValidateToken(ctx, "cached-token"); name != "alice" || err != nil {
			t.Fatalf("ValidateToken = %q, %v", name, err)
		}
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("requests for one token = %d, want 1", n)
	}
	// The cache keeps digests, never the token.
	v.mu.Lock()
	_, byDigest := v.cache[sha256.Sum256([]byte("cached-token"))]
	v.mu.Unlock()
	if !byDigest {
		t.Error("cache entry not keyed by the token's SHA-256")
	}
	// After the TTL the endpoint is asked again (and can revoke).
	clk.Advance(time.Minute)
	s.answer("cached-token", map[string]any{"active": false})
	_, err := v.ValidateToken(ctx, "cached-token")
	wantStatus(t, err, StatusInvalidToken)
	if n := s.hits.Load(); n != 2 {
		t.Errorf("requests after the TTL = %d, want 2", n)
	}
	// Negative answers are not cached.
	v.ValidateToken(ctx, "cached-token")
	if n := s.hits.Load(); n != 3 {
		t.Errorf("requests after a negative answer = %d, want 3", n)
	}
	// A token expiring before the TTL is cached only until it expires.
	a = activeAnswer(clk)
	a["exp"] = clk.Unix() + 10
	s.answer("short", a)
	v.ValidateToken(ctx, "short")
	clk.Advance(9 * time.Second)
	v.ValidateToken(ctx, "short")
	if n := s.hits.Load(); n != 4 {
		t.Errorf("requests before exp = %d, want 4", n)
	}
	clk.Advance(2 * time.Second)
	if name, _ := v.ValidateToken(ctx, "short"); name != "alice" || s.hits.Load() != 5 {
		// Still active by the clock skew, but asked again.
		t.Errorf("after exp: %q, requests %d; want alice, 5", name, s.hits.Load())
	}
	// A TTL of 0 turns the cache off.
	off := newIntrospector(t, s, clk, nil)
	s.answer("t", activeAnswer(clk))
	before := s.hits.Load()
	off.ValidateToken(ctx, "t")
	off.ValidateToken(ctx, "t")
	if n := s.hits.Load() - before; n != 2 {
		t.Errorf("requests without a cache = %d, want 2", n)
	}
}

func TestIntrospectionCacheBounded(t *testing.T) {
	t.Parallel()
	clk := newClock()
	v := &Introspector{cacheTTL: time.Minute, now: clk.Now, cache: map[[sha256.Size]byte]cached{}}
	c := &claims{}
	for i := range maxCached + 50 {
		v.store(sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), "u", c, clk.Now())
	}
	if len(v.cache) > maxCached {
		t.Errorf("cache holds %d answers, more than %d", len(v.cache), maxCached)
	}
}

func TestClientSecretFile(t *testing.T) {
	t.Parallel()
	s := newIntrospectionServer(t)
	clk := newClock()
	s.answer("t", activeAnswer(clk))
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte(testClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newIntrospector(t, s, clk, func(c *Config) { c.ClientSecret, c.ClientSecretFile = "", path })
	if name, err := v.ValidateToken(context.Background(), "t"); name != "alice" || err != nil {
		t.Errorf("with the secret from a file: %q, %v", name, err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	bad := []Config{
		{IntrospectionURL: s.URL, ClientID: "id", ClientSecretFile: empty},
		{IntrospectionURL: s.URL, ClientID: "id", ClientSecretFile: filepath.Join(dir, "missing")},
		{IntrospectionURL: s.URL, ClientID: "id", ClientSecret: "x", ClientSecretFile: path},
		{IntrospectionURL: s.URL, ClientID: "id"},
		{IntrospectionURL: s.URL, ClientSecret: "x"},
		{IntrospectionURL: "", ClientID: "id", ClientSecret: "x"},
		{IntrospectionURL: "ftp://x/", ClientID: "id", ClientSecret: "x"},
	}
	for i, cfg := range bad {
		if _, err := NewIntrospector(cfg); err == nil {
			t.Errorf("config %d: NewIntrospector accepted %+v", i, cfg)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"", ModeNone} {
		if v, err := New(Config{Mode: mode}); v != nil || err != nil {
			t.Errorf("New(mode %q) = %v, %v; want nil, nil", mode, v, err)
		}
	}
	if _, err := New(Config{Mode: "jwt"}); err == nil {
		t.Error("New accepted an unknown mode")
	}
	v, err := New(Config{Mode: ModeIntrospection, IntrospectionURL: "https://auth.example/i", ClientID: "a", ClientSecret: "b"})
	if _, ok := v.(*Introspector); !ok || err != nil {
		t.Errorf("New(introspection) = %T, %v", v, err)
	}
	ks := newKeyServer(t, jwkOf(edKey(), "ed", ""))
	v, err = New(Config{Mode: ModeJWKS, JWKSURL: ks.URL, Issuer: "i", Audience: "a"})
	if _, ok := v.(*JWKS); !ok || err != nil {
		t.Errorf("New(jwks) = %T, %v", v, err)
	}
	for _, cfg := range []Config{
		{Mode: ModeJWKS, JWKSURL: ks.URL, Audience: "a"},
		{Mode: ModeJWKS, JWKSURL: ks.URL, Issuer: "i"},
		{Mode: ModeJWKS, JWKSURL: "", Issuer: "i", Audience: "a"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestErrorJSON(t *testing.T) {
	t.Parallel()
	e := &Error{Status: StatusInvalidToken, Reason: "expired"}
	if got := string(e.JSON("https://auth.example.com/.well-known/openid-configuration")); got !=
		`{"status":"invalid_token","openid-configuration":"https://auth.example.com/.well-known/openid-configuration"}` {
		t.Errorf("JSON = %s", got)
	}
	if !errors.Is(e, auth.ErrFailed) || e.Error() != "oauth: invalid_token: expired" || e.OAuthStatus() != StatusInvalidToken {
		t.Errorf("Error = %q, Is(ErrFailed) = %v", e.Error(), errors.Is(e, auth.ErrFailed))
	}
}

// TestConcurrentValidation gives the race detector both validators under
// load: the introspection cache, and a key set being rotated.
func TestConcurrentValidation(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newIntrospectionServer(t)
	s.answer("t1", activeAnswer(clk))
	s.answer("t2", activeAnswer(clk))
	iv := newIntrospector(t, s, clk, func(c *Config) { c.CacheTTL = time.Minute })

	f := newJWKSFixture(t, func(c *Config) { c.MinRefreshInterval = time.Nanosecond }, jwkOf(edKey(), "ed", ""))
	tokens := []string{sign(t, edKey(), "EdDSA", "ed", f.claims(), nil), sign(t, p256Key(), "ES256", "ec", f.claims(), nil)}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				if name, err := iv.ValidateToken(context.Background(), []string{"t1", "t2"}[(g+i)%2]); name != "alice" || err != nil {
					t.Errorf("introspection: %q, %v", name, err)
				}
				if g == 0 && i == 10 {
					f.keys.set(jwkOf(edKey(), "ed", ""), jwkOf(p256Key(), "ec", ""))
				}
				f.clock.Advance(time.Millisecond) // lets unknown kids fetch
				name, err := f.v.ValidateToken(context.Background(), tokens[(g+i)%2])
				checkErrorKind(t, err)
				if err == nil && name != "alice" {
					t.Errorf("jwks: %q", name)
				}
			}
		})
	}
	wg.Wait()
}
