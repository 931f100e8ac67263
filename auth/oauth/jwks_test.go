package oauth

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testIssuer   = "https://auth.example.com/realms/mail"
	testAudience = "pop.example.com"
)

// jwksFixture is a JWKS validator on a fake clock, against a key server.
type jwksFixture struct {
	v      *JWKS
	keys   *keyServer
	clock  *clock
	logged *atomic.Int32
}

func newJWKSFixture(t *testing.T, edit func(*Config), keys ...map[string]any) *jwksFixture {
	t.Helper()
	f := &jwksFixture{keys: newKeyServer(t, keys...), clock: newClock(), logged: new(atomic.Int32)}
	cfg := Config{
		Mode:     ModeJWKS,
		JWKSURL:  f.keys.URL + "/jwks",
		Issuer:   testIssuer,
		Audience: testAudience,
		Timeout:  2 * time.Second,
		Logger:   quietLogger(f.logged),
		now:      f.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := NewJWKS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

// claims returns a valid claims set for alice, issued now.
func (f *jwksFixture) claims() map[string]any {
	now := f.clock.Unix()
	return map[string]any{
		"iss":                testIssuer,
		"sub":                "alice",
		"aud":                testAudience,
		"exp":                now + 300,
		"iat":                now,
		"nbf":                now,
		"scope":              "openid email pop3",
		"preferred_username": "alice@example.com",
		"email":              "alice@example.net",
		"email_verified":     true,
		"client_id":          "thunderbird",
	}
}

func (f *jwksFixture) validate(t *testing.T, token string) (string, error) {
	t.Helper()
	return f.v.ValidateToken(context.Background(), token)
}

func TestJWKSAlgorithms(t *testing.T) {
	t.Parallel()
	signers := map[string]crypto.Signer{"rsa": rsaKey1(), "p256": p256Key(), "p384": p384Key(), "ed": edKey()}
	f := newJWKSFixture(t, nil,
		jwkOf(signers["rsa"], "rsa", ""),
		jwkOf(signers["p256"], "p256", "ES256"),
		jwkOf(signers["p384"], "p384", ""),
		jwkOf(signers["ed"], "ed", "EdDSA"),
	)
	tests := []struct{ alg, kid string }{
		{"RS256", "rsa"}, {"RS384", "rsa"}, {"RS512", "rsa"},
		{"PS256", "rsa"}, {"PS384", "rsa"}, {"PS512", "rsa"},
		{"ES256", "p256"}, {"ES384", "p384"}, {"EdDSA", "ed"},
	}
	for _, tt := range tests {
		token := sign(t, signers[tt.kid], tt.alg, tt.kid, f.claims(), nil)
		if name, err := f.validate(t, token); name != "alice" || err != nil {
			t.Errorf("%s: ValidateToken = %q, %v; want alice", tt.alg, name, err)
		}
		// Without a kid, every key that suits the algorithm is tried.
		token = sign(t, signers[tt.kid], tt.alg, "", f.claims(), nil)
		if name, err := f.validate(t, token); name != "alice" || err != nil {
			t.Errorf("%s without kid: ValidateToken = %q, %v; want alice", tt.alg, name, err)
		}
	}
	if n := f.keys.hits.Load(); n != 1 {
		t.Errorf("key set fetched %d times, want once", n)
	}
}

// TestJWKSRejects covers the claim checks and the refused token forms.
func TestJWKSRejects(t *testing.T) {
	t.Parallel()
	key := rsaKey1()
	f := newJWKSFixture(t, func(c *Config) { c.RequiredScope = "pop3" }, jwkOf(key, "k1", "RS256"), jwkOf(p256Key(), "ec", ""))
	now := f.clock.Unix()
	skew := int64(DefaultClockSkew.Seconds())
	with := func(edit func(map[string]any)) string {
		c := f.claims()
		edit(c)
		return sign(t, key, "RS256", "k1", c, nil)
	}
	good := with(func(map[string]any) {})
	parts := strings.Split(good, ".")
	tests := []struct {
		name, token, status string
	}{
		{"expired", with(func(c map[string]any) { c["exp"] = now - skew - 1 }), StatusInvalidToken},
		{"expired just now", with(func(c map[string]any) { c["exp"] = now - skew }), StatusInvalidToken},
		{"no exp", with(func(c map[string]any) { delete(c, "exp") }), StatusInvalidToken},
		{"exp not a number", with(func(c map[string]any) { c["exp"] = "tomorrow" }), StatusInvalidToken},
		{"not yet valid", with(func(c map[string]any) { c["nbf"] = now + skew + 1 }), StatusInvalidToken},
		{"issued in the future", with(func(c map[string]any) { c["iat"] = now + skew + 10 }), StatusInvalidToken},
		{"wrong issuer", with(func(c map[string]any) { c["iss"] = "https://evil.example.com" }), StatusInvalidToken},
		{"issuer with trailing slash", with(func(c map[string]any) { c["iss"] = testIssuer + "/" }), StatusInvalidToken},
		{"no issuer", with(func(c map[string]any) { delete(c, "iss") }), StatusInvalidToken},
		{"wrong audience", with(func(c map[string]any) { c["aud"] = "webmail.example.com" }), StatusInvalidToken},
		{"audience list without us", with(func(c map[string]any) { c["aud"] = []string{"a", "b"} }), StatusInvalidToken},
		{"no audience", with(func(c map[string]any) { delete(c, "aud") }), StatusInvalidToken},
		{"audience of wrong type", with(func(c map[string]any) { c["aud"] = 42 }), StatusInvalidToken},
		{"scope missing", with(func(c map[string]any) { c["scope"] = "openid email" }), StatusInsufficientScope},
		{"scope as prefix only", with(func(c map[string]any) { c["scope"] = "pop3x imap" }), StatusInsufficientScope},
		{"no sub", with(func(c map[string]any) { delete(c, "sub") }), StatusInvalidToken},
		{"sub not a string", with(func(c map[string]any) { c["sub"] = 7 }), StatusInvalidToken},
		{"sub not a valid user name", with(func(c map[string]any) { c["sub"] = "../root" }), StatusInvalidToken},
		{"wrong key", sign(t, rsaKey2(), "RS256", "k1", f.claims(), nil), StatusInvalidToken},
		{"tampered payload", parts[0] + "." + segment(t, map[string]any{"sub": "root", "iss": testIssuer, "aud": testAudience, "exp": now + 60}) + "." + parts[2], StatusInvalidToken},
		{"signature cut", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4], StatusInvalidToken},
		{"alg none", parts[0][:0] + segment(t, map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".", StatusInvalidToken},
		{"alg none with kid", segment(t, map[string]any{"alg": "none", "kid": "k1"}) + "." + parts[1] + "." + parts[2], StatusInvalidToken},
		{"HS256 with the public key as secret", hs256(t, parts[1]), StatusInvalidToken},
		{"unknown alg", sign(t, key, "RS256", "k1", f.claims(), map[string]any{"alg": "RS1"}), StatusInvalidToken},
		{"key restricted to RS256", sign(t, key, "PS256", "k1", f.claims(), nil), StatusInvalidToken},
		{"EC key with RSA alg", sign(t, key, "RS256", "ec", f.claims(), nil), StatusInvalidToken},
		{"ES256 with an RSA key id", sign(t, p256Key(), "ES256", "k1", f.claims(), nil), StatusInvalidToken},
		{"crit", sign(t, key, "RS256", "k1", f.claims(), map[string]any{"crit": []string{"exp"}, "exp": 1}), StatusInvalidToken},
		{"ID token type", sign(t, key, "RS256", "k1", f.claims(), map[string]any{"typ": "logout+jwt"}), StatusInvalidToken},
		{"padded segments", strings.Replace(good, ".", "=.", 1), StatusInvalidRequest},
		{"two parts", parts[0] + "." + parts[1], StatusInvalidToken},
		{"JWE-like five parts", good + ".x.y", StatusInvalidToken},
		{"payload not JSON", parts[0] + "." + b64.EncodeToString([]byte("hello")) + "." + parts[2], StatusInvalidToken},
		{"payload JSON null", parts[0] + "." + b64.EncodeToString([]byte("null")) + "." + parts[2], StatusInvalidToken},
		{"empty", "", StatusInvalidRequest},
		{"space inside", parts[0] + " " + parts[1], StatusInvalidRequest},
		{"too long", strings.Repeat("a", maxTokenLength+1), StatusInvalidRequest},
	}
	for _, tt := range tests {
		name, err := f.validate(t, tt.token)
		if name != "" {
			t.Errorf("%s: ValidateToken = %q", tt.name, name)
		}
		t.Run(tt.name, func(t *testing.T) { wantStatus(t, err, tt.status) })
		if err != nil && strings.Contains(err.Error(), tt.token) && tt.token != "" {
			t.Errorf("%s: the error quotes the token", tt.name)
		}
	}
	// Inside the clock skew is still fine.
	token := with(func(c map[string]any) { c["exp"] = now - skew + 1; c["nbf"] = now + skew; c["iat"] = now + skew })
	if name, err := f.validate(t, token); name != "alice" || err != nil {
		t.Errorf("within the clock skew: ValidateToken = %q, %v", name, err)
	}
	// Audience as a list that includes us.
	token = with(func(c map[string]any) { c["aud"] = []string{"other", testAudience} })
	if name, err := f.validate(t, token); name != "alice" || err != nil {
		t.Errorf("aud list: ValidateToken = %q, %v", name, err)
	}
	var oe *Error
	_, err := f.validate(t, with(func(c map[string]any) { c["scope"] = "" }))
	if !asError(err, &oe) || oe.Scope != "pop3" || string(oe.JSON("")) != `{"status":"insufficient_scope","scope":"pop3"}` {
		t.Errorf("insufficient scope error = %#v", err)
	}
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	*target = e
	return ok
}

// hs256 makes an HS256 token keyed with the public key's modulus as
// published, the classic algorithm-confusion forgery.
func hs256(t *testing.T, payload string) string {
	t.Helper()
	header := segment(t, map[string]any{"alg": "HS256", "kid": "k1"})
	mac := hmac.New(sha256.New, []byte(jwkOf(rsaKey1(), "k1", "")["n"].(string)))
	mac.Write([]byte(header + "." + payload))
	return header + "." + payload + "." + b64.EncodeToString(mac.Sum(nil))
}

func TestJWKSUsernameClaim(t *testing.T) {
	t.Parallel()
	key := p256Key()
	tests := []struct {
		claim  string
		edit   func(map[string]any)
		want   string
		status string
	}{
		{"", nil, "alice", ""},
		{"preferred_username", nil, "alice@example.com", ""},
		{"email", nil, "alice@example.net", ""},
		{"email", func(c map[string]any) { c["email_verified"] = false }, "", StatusInvalidToken},
		{"email", func(c map[string]any) { delete(c, "email_verified") }, "alice@example.net", ""},
		{"client_id", nil, "thunderbird", ""},
		{"upn", nil, "", StatusInvalidToken},
		{"preferred_username", func(c map[string]any) { c["preferred_username"] = nil }, "", StatusInvalidToken},
		{"preferred_username", func(c map[string]any) { c["preferred_username"] = []string{"alice"} }, "", StatusInvalidToken},
		{"preferred_username", func(c map[string]any) { c["preferred_username"] = "alice:x" }, "", StatusInvalidToken},
	}
	for _, tt := range tests {
		f := newJWKSFixture(t, func(c *Config) { c.UsernameClaim = tt.claim }, jwkOf(key, "ec", ""))
		c := f.claims()
		if tt.edit != nil {
			tt.edit(c)
		}
		name, err := f.validate(t, sign(t, key, "ES256", "ec", c, nil))
		if tt.status != "" {
			wantStatus(t, err, tt.status)
		} else if name != tt.want || err != nil {
			t.Errorf("claim %q: ValidateToken = %q, %v; want %q", tt.claim, name, err, tt.want)
		}
	}
}

// TestJWKSKeyRotation checks that an unknown kid makes the validator
// fetch the set again, at most once per MinRefreshInterval.
func TestJWKSKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := rsaKey1(), rsaKey2()
	f := newJWKSFixture(t, nil, jwkOf(oldKey, "2025", "RS256"))
	if name, err := f.validate(t, sign(t, oldKey, "RS256", "2025", f.claims(), nil)); name != "alice" || err != nil {
		t.Fatalf("old key: %q, %v", name, err)
	}
	// The authorization server rotates; a token with the new key comes
	// in before the next fetch would have been due.
	f.keys.set(jwkOf(oldKey, "2025", "RS256"), jwkOf(newKey, "2026", "RS256"))
	f.clock.Advance(DefaultMinRefreshInterval)
	if name, err := f.validate(t, sign(t, newKey, "RS256", "2026", f.claims(), nil)); name != "alice" || err != nil {
		t.Fatalf("new key after rotation: %q, %v", name, err)
	}
	if n := f.keys.hits.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
	// Tokens naming unknown keys cannot make it fetch more than once
	// per MinRefreshInterval.
	for i := range 20 {
		_, err := f.validate(t, sign(t, newKey, "RS256", "bogus"+string(rune('a'+i)), f.claims(), nil))
		wantStatus(t, err, StatusInvalidToken)
		f.clock.Advance(time.Second)
	}
	if n := f.keys.hits.Load(); n != 2 {
		t.Errorf("fetches after 20 unknown kids in 20s = %d, want still 2", n)
	}
	f.clock.Advance(DefaultMinRefreshInterval)
	f.validate(t, sign(t, newKey, "RS256", "bogus", f.claims(), nil))
	if n := f.keys.hits.Load(); n != 3 {
		t.Errorf("fetches once the interval passed = %d, want 3", n)
	}
	// The old key, once dropped from the set, stops working.
	f.keys.set(jwkOf(newKey, "2026", "RS256"))
	f.clock.Advance(DefaultRefreshInterval)
	_, err := f.validate(t, sign(t, oldKey, "RS256", "2025", f.claims(), nil))
	wantStatus(t, err, StatusInvalidToken)
}

// TestJWKSPeriodicRefresh checks that a set older than RefreshInterval is
// fetched again, and kept if the fetch fails.
func TestJWKSPeriodicRefresh(t *testing.T) {
	t.Parallel()
	key := edKey()
	f := newJWKSFixture(t, func(c *Config) { c.RefreshInterval = 10 * time.Minute }, jwkOf(key, "ed", ""))
	token := func() string { return sign(t, key, "EdDSA", "ed", f.claims(), nil) }
	f.clock.Advance(9 * time.Minute)
	f.validate(t, token())
	if n := f.keys.hits.Load(); n != 1 {
		t.Errorf("fetches before the interval = %d, want 1", n)
	}
	f.clock.Advance(time.Minute)
	f.validate(t, token())
	if n := f.keys.hits.Load(); n != 2 {
		t.Errorf("fetches after the interval = %d, want 2", n)
	}
	// The server fails: the old keys go on working, and the failure is
	// logged.
	f.keys.fail(503)
	f.clock.Advance(10 * time.Minute)
	if name, err := f.validate(t, token()); name != "alice" || err != nil {
		t.Errorf("with a failing key server: %q, %v", name, err)
	}
	if f.keys.hits.Load() != 3 || f.logged.Load() == 0 {
		t.Errorf("fetches = %d, log lines = %d; want 3 and a warning", f.keys.hits.Load(), f.logged.Load())
	}
}

// TestJWKSEndpointDown checks that without any key set tokens are
// temporarily unverifiable, not invalid, and that a later fetch recovers.
func TestJWKSEndpointDown(t *testing.T) {
	t.Parallel()
	key := p384Key()
	f := newJWKSFixture(t, func(c *Config) {}, jwkOf(key, "p384", ""))
	// Start over with a server that fails.
	f.keys.fail(500)
	v, err := NewJWKS(Config{JWKSURL: f.keys.URL, Issuer: testIssuer, Audience: testAudience, Logger: quietLogger(f.logged), now: f.clock.Now})
	if err != nil {
		t.Fatalf("NewJWKS with the key server down = %v, want a validator", err)
	}
	if f.logged.Load() == 0 {
		t.Error("the failed first fetch was not logged")
	}
	token := sign(t, key, "ES384", "p384", f.claims(), nil)
	_, err = v.ValidateToken(context.Background(), token)
	wantUnavailable(t, err)

	f.keys.fail(0)
	_, err = v.ValidateToken(context.Background(), token)
	wantUnavailable(t, err) // within MinRefreshInterval: no new fetch
	f.clock.Advance(DefaultMinRefreshInterval)
	if name, err := v.ValidateToken(context.Background(), token); name != "alice" || err != nil {
		t.Errorf("after the key server recovered: %q, %v", name, err)
	}

	// A server that does not listen at all.
	f.keys.Close()
	v, _ = NewJWKS(Config{JWKSURL: f.keys.URL, Issuer: testIssuer, Audience: testAudience, Logger: quietLogger(f.logged), now: f.clock.Now})
	_, err = v.ValidateToken(context.Background(), token)
	wantUnavailable(t, err)
}

func TestJWKSSlowEndpoint(t *testing.T) {
	t.Parallel()
	key := p256Key()
	ks := newKeyServer(t, jwkOf(key, "ec", ""))
	ks.delay = 10 * time.Second
	var logged atomic.Int32
	start := time.Now()
	v, err := NewJWKS(Config{JWKSURL: ks.URL, Issuer: testIssuer, Audience: testAudience, Timeout: 100 * time.Millisecond, Logger: quietLogger(&logged)})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("NewJWKS took %v with a 100ms timeout", took)
	}
	now := time.Now().Unix()
	token := sign(t, key, "ES256", "ec", map[string]any{"iss": testIssuer, "aud": testAudience, "sub": "a", "exp": now + 60}, nil)
	_, err = v.ValidateToken(context.Background(), token)
	wantUnavailable(t, err)
	if logged.Load() == 0 {
		t.Error("the timeout was not logged")
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	t.Parallel()
	good := jwkOf(p256Key(), "good", "")
	tests := []struct {
		name string
		key  map[string]any
	}{
		{"encryption key", merge(jwkOf(p256Key(), "enc", ""), map[string]any{"use": "enc"})},
		{"key_ops without verify", merge(jwkOf(p256Key(), "ops", ""), map[string]any{"key_ops": []string{"encrypt"}})},
		{"private key", merge(jwkOf(p256Key(), "priv", ""), map[string]any{"d": "AAAA"})},
		{"symmetric key", map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}},
		{"short RSA key", jwkOf(mustRSA(1024), "short", "")},
		{"even exponent", merge(jwkOf(rsaKey1(), "even", ""), map[string]any{"e": "AQAA"})},
		{"P-521", map[string]any{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}},
		{"point off the curve", merge(jwkOf(p256Key(), "off", ""), map[string]any{"y": b64.EncodeToString(make([]byte, 32))})},
		{"short coordinate", merge(jwkOf(p256Key(), "short", ""), map[string]any{"x": "AAAA"})},
		{"X25519", map[string]any{"kty": "OKP", "crv": "X25519", "x": b64.EncodeToString(make([]byte, 32))}},
		{"alg HS256", merge(jwkOf(rsaKey1(), "hs", ""), map[string]any{"alg": "HS256"})},
		{"alg for another key type", jwkOf(rsaKey1(), "mismatch", "ES256")},
		{"bad base64", merge(jwkOf(rsaKey1(), "b64", ""), map[string]any{"n": "!!"})},
	}
	for _, tt := range tests {
		keys, err := parseJWKS(mustJSON(t, map[string]any{"keys": []any{tt.key, good}}))
		if err != nil || len(keys) != 1 || keys[0].id != "good" {
			t.Errorf("%s: parseJWKS = %d keys, %v; want only the good one", tt.name, len(keys), err)
		}
		if _, err := parseJWKS(mustJSON(t, map[string]any{"keys": []any{tt.key}})); err == nil {
			t.Errorf("%s alone: parseJWKS accepted a set without usable keys", tt.name)
		}
	}
	for _, doc := range []string{``, `[]`, `{"keys": {}}`, `{"keys": []}`, `null`} {
		if _, err := parseJWKS([]byte(doc)); err == nil {
			t.Errorf("parseJWKS(%q) accepted it", doc)
		}
	}
}

func merge(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
