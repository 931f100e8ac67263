package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
)

// Keys are made once per test binary: RSA key generation is slow.
var (
	rsaKey1 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	rsaKey2 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(2048) })
	p256Key = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P256()) })
	p384Key = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC(elliptic.P384()) })
	edKey   = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

var b64 = base64.RawURLEncoding

// jwkOf returns the public JWK of a private key, as a JSON object.
func jwkOf(key crypto.Signer, kid, alg string) map[string]any {
	m := map[string]any{"kid": kid, "use": "sig"}
	if alg != "" {
		m["alg"] = alg
	}
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64.EncodeToString(pub.N.Bytes())
		m["e"] = b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		raw, err := pub.Bytes()
		if err != nil {
			panic(err)
		}
		m["kty"] = "EC"
		m["crv"] = pub.Curve.Params().Name
		m["x"] = b64.EncodeToString(raw[1 : 1+size])
		m["y"] = b64.EncodeToString(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = b64.EncodeToString(pub)
	}
	return m
}

// sign makes a JWS compact serialization of claims with key and alg, with
// header members added or replaced by extra.
func sign(t testing.TB, key crypto.Signer, alg, kid string, claims map[string]any, extra map[string]any) string {
	t.Helper()
	header := map[string]any{"alg": alg, "typ": "at+jwt"}
	if kid != "" {
		header["kid"] = kid
	}
	for k, v := range extra {
		if v == nil {
			delete(header, k)
		} else {
			header[k] = v
		}
	}
	input := segment(t, header) + "." + segment(t, claims)
	return input + "." + b64.EncodeToString(signature(t, key, alg, []byte(input)))
}

func segment(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(data)
}

// signature signs input the way alg says, whatever the key.
func signature(t testing.TB, key crypto.Signer, alg string, input []byte) []byte {
	t.Helper()
	hashes := map[byte]crypto.Hash{'2': crypto.SHA256, '3': crypto.SHA384, '5': crypto.SHA512}
	var h crypto.Hash
	if len(alg) == 5 {
		h = hashes[alg[2]]
	}
	var digest []byte
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(input)
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(input)
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512(input)
		digest = d[:]
	}
	var sig []byte
	var err error
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, digest)
		}
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k, digest)
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, input)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_780_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) Unix() int64 { return c.Now().Unix() }

// keyServer serves a JWKS that tests can change, and counts requests.
type keyServer struct {
	*httptest.Server
	mu     sync.Mutex
	keys   []map[string]any
	status int           // 0: 200
	delay  time.Duration // before answering
	hits   atomic.Int32
}

func newKeyServer(t testing.TB, keys ...map[string]any) *keyServer {
	t.Helper()
	ks := &keyServer{keys: keys}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.hits.Add(1)
		ks.mu.Lock()
		status, delay := ks.status, ks.delay
		body, _ := json.Marshal(map[string]any{"keys": ks.keys})
		ks.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			http.Error(w, "no", status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(keys ...map[string]any) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = keys
}

func (ks *keyServer) fail(status int) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.status = status
}

// quietLogger discards logs but records that something was logged.
func quietLogger(logged *atomic.Int32) *slog.Logger {
	return slog.New(slog.NewTextHandler(countingWriter{logged}, nil))
}

type countingWriter struct{ n *atomic.Int32 }

func (w countingWriter) Write(p []byte) (int, error) {
	w.n.Add(1)
	return io.Discard.Write(p)
}

// wantStatus checks that err is an *Error with the given status, wrapping
// auth.ErrFailed.
func wantStatus(t *testing.T, err error, status string) {
	t.Helper()
	var oe *Error
	if !errors.As(err, &oe) || oe.Status != status || !errors.Is(err, auth.ErrFailed) || errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("error = %v, want an *Error with status %s wrapping ErrFailed", err, status)
	}
}

// wantUnavailable checks that err wraps auth.ErrUnavailable and not
// auth.ErrFailed.
func wantUnavailable(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrFailed) {
		t.Errorf("error = %v, want one wrapping ErrUnavailable only", err)
	}
}
