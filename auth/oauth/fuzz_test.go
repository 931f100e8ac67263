package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
)

// checkErrorKind fails unless err is nil, an *Error wrapping
// auth.ErrFailed with a known status, or an auth.ErrUnavailable error.
func checkErrorKind(t *testing.T, err error) {
	t.Helper()
	if err == nil || errors.Is(err, auth.ErrUnavailable) {
		return
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, auth.ErrFailed) {
		t.Fatalf("error %v (%T) is neither an *Error nor unavailable", err, err)
	}
	switch e.Status {
	case StatusInvalidRequest, StatusInvalidToken, StatusInsufficientScope:
	default:
		t.Fatalf("unknown status %q", e.Status)
	}
}

// FuzzParseJWT checks that no token makes the parser panic, that what it
// accepts uses a listed algorithm, and that its signing input is the
// token's first two parts.
func FuzzParseJWT(f *testing.F) {
	clk := newClock()
	claims := map[string]any{"iss": testIssuer, "aud": testAudience, "sub": "alice", "exp": clk.Unix() + 60}
	f.Add(sign(f, edKey(), "EdDSA", "ed", claims, nil))
	f.Add(sign(f, p256Key(), "ES256", "ec", claims, map[string]any{"typ": "JWT"}))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		checkErrorKind(t, checkTokenSyntax(token))
		jwt, err := parseJWT(token)
		checkErrorKind(t, err)
		if err != nil {
			return
		}
		if algorithms[jwt.alg.name] != jwt.alg {
			t.Fatalf("parseJWT(%q) accepted algorithm %q", token, jwt.alg.name)
		}
		if !strings.HasPrefix(token, string(jwt.signingInput)+".") || strings.Count(string(jwt.signingInput), ".") != 1 {
			t.Fatalf("parseJWT(%q): signing input %q", token, jwt.signingInput)
		}
	})
}

// FuzzValidateJWT runs whole validations against a fixed key set, with no
// network: a tampered token must never pass, and errors are of the two
// documented kinds.
func FuzzValidateJWT(f *testing.F) {
	clk := newClock()
	keys := []*jwk{
		{id: "ed", key: edKey().Public()},
		{id: "ec", alg: "ES256", key: p256Key().Public()},
	}
	claims := map[string]any{"iss": testIssuer, "aud": testAudience, "sub": "alice", "exp": clk.Unix() + 60}
	valid := map[string]bool{}
	for _, token := range []string{
		sign(f, edKey(), "EdDSA", "ed", claims, nil),
		sign(f, p256Key(), "ES256", "ec", claims, nil),
		sign(f, p256Key(), "ES256", "", claims, nil),
	} {
		f.Add(token)
		valid[token] = true
	}
	f.Add(sign(f, edKey(), "EdDSA", "other", claims, nil))
	v := &JWKS{
		url:     "http://127.0.0.1:1/unused",
		check:   newChecker(Config{Issuer: testIssuer, Audience: testAudience, UsernameClaim: "sub", ClockSkew: time.Minute}),
		refresh: time.Hour,
		minGap:  time.Hour,
		now:     clk.Now,
		log:     func(string, ...any) {},
	}
	v.keys.Store(&keySet{keys: keys, fetched: clk.Now()})
	v.lastAttempt = clk.Now() // so that no fetch is ever attempted
	f.Fuzz(func(t *testing.T, token string) {
		name, err := v.ValidateToken(context.Background(), token)
		checkErrorKind(t, err)
		if errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("unavailable with a loaded key set: %v", err)
		}
		if err == nil && !valid[token] {
			// Only re-encodings of the signed parts could pass, and
			// strict base64url has one encoding per value.
			t.Fatalf("ValidateToken(%q) = %q, a token never signed", token, name)
		}
	})
}

// FuzzParseJWKS checks that no key set makes the parser panic and that
// every key it returns is of a supported kind.
func FuzzParseJWKS(f *testing.F) {
	f.Add(mustJSON(f, map[string]any{"keys": []any{jwkOf(edKey(), "ed", ""), jwkOf(p256Key(), "ec", "ES256")}}))
	f.Add(mustJSON(f, map[string]any{"keys": []any{jwkOf(p384Key(), "p384", "")}}))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err != nil {
			return
		}
		if len(keys) == 0 || len(keys) > maxKeys {
			t.Fatalf("parseJWKS returned %d keys", len(keys))
		}
		for _, k := range keys {
			switch key := k.key.(type) {
			case *rsa.PublicKey:
				if key.N.BitLen() < minRSABits || key.E < 3 {
					t.Fatalf("weak RSA key accepted: %d bits, e=%d", key.N.BitLen(), key.E)
				}
			case *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Fatalf("key of type %T", key)
			}
			if k.alg != "" && !algorithms[k.alg].suits(k.key) {
				t.Fatalf("key bound to unsuitable algorithm %s", k.alg)
			}
		}
	})
}

// FuzzParseIntrospection checks that no response makes the parser panic
// and that it sorts every response into the documented error kinds.
func FuzzParseIntrospection(f *testing.F) {
	f.Add([]byte(`{"active":true,"username":"alice","exp":1e10,"aud":["a","b"]}`))
	f.Add([]byte(`{"active":false}`))
	f.Add([]byte(`{"active":true,"aud":7}`))
	f.Add([]byte(`{"active":true,"exp":"x"}`))
	f.Add([]byte(`null`))
	k := newChecker(Config{UsernameClaim: "username", ClockSkew: time.Minute})
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseIntrospection(body)
		checkErrorKind(t, err)
		if err != nil {
			return
		}
		_, err = k.check(c, time.Unix(1_780_000_000, 0), false)
		checkErrorKind(t, err)
	})
}
