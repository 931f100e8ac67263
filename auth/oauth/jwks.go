package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
)

var _ auth.TokenValidator = (*JWKS)(nil)

// JWKS validates JWT access tokens with the keys of a JSON Web Key Set.
// The set is fetched by NewJWKS, again when it is older than
// Config.RefreshInterval, and again when a token names a key it does not
// have (key rotation), but never more often than
// Config.MinRefreshInterval. It is safe for concurrent use.
type JWKS struct {
	url     string
	client  *http.Client
	check   checker
	refresh time.Duration
	minGap  time.Duration
	timeout time.Duration
	log     loggerFunc
	now     func() time.Time

	keys atomic.Pointer[keySet]

	fetchMu     sync.Mutex // held during a fetch
	lastAttempt time.Time  // guarded by fetchMu
}

// loggerFunc logs a warning.
type loggerFunc func(msg string, args ...any)

// keySet is one fetched key set.
type keySet struct {
	keys    []*jwk
	fetched time.Time
}

// jwk is one usable public key (RFC 7517).
type jwk struct {
	id  string
	alg string // "" if the key does not restrict its algorithm
	key crypto.PublicKey
}

// NewJWKS returns a JWKS validator for cfg: JWKSURL, Issuer and Audience
// are required (RFC 9068 §4 requires the issuer and audience checks). It
// fetches the key set before returning; if that fails, the failure is
// logged, not returned, so that an authorization server that is down
// does not keep the mail server from starting, and tokens are refused as
// temporarily unverifiable until a fetch succeeds.
func NewJWKS(cfg Config) (*JWKS, error) {
	cfg = cfg.withDefaults("sub")
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("oauth: JWKS URL %q is not an http(s) URL", cfg.JWKSURL)
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("oauth: JWT validation needs an issuer and an audience")
	}
	j := &JWKS{
		url:     cfg.JWKSURL,
		client:  cfg.httpClient(),
		check:   newChecker(cfg),
		refresh: cfg.RefreshInterval,
		minGap:  cfg.MinRefreshInterval,
		timeout: cfg.Timeout,
		log:     cfg.Logger.Warn,
		now:     cfg.now,
	}
	j.fetch(context.Background(), true)
	return j, nil
}

// ValidateToken verifies a JWT access token and returns the user name it
// was issued for. A rejected token gives an *Error (wrapping
// auth.ErrFailed); a token that cannot be checked because no key set
// could be fetched yet gives an error wrapping auth.ErrUnavailable.
func (j *JWKS) ValidateToken(ctx context.Context, token string) (string, error) {
	if err := checkTokenSyntax(token); err != nil {
		return "", err
	}
	t, err := parseJWT(token)
	if err != nil {
		return "", err
	}
	keys, err := j.keysFor(ctx, t)
	if err != nil {
		return "", err
	}
	if !slices.ContainsFunc(keys, func(k *jwk) bool { return t.alg.verify(k.key, t.signingInput, t.signature) }) {
		return "", invalidToken("bad signature")
	}
	return j.check.check(t.claims, j.now(), true)
}

// keysFor returns the keys that may have signed t, fetching the set again
// if it is stale or lacks the key t names.
func (j *JWKS) keysFor(ctx context.Context, t *jwt) ([]*jwk, error) {
	set := j.keys.Load()
	if set == nil || j.now().Sub(set.fetched) >= j.refresh {
		set = j.fetch(ctx, false)
	}
	if set == nil {
		return nil, unavailable("no key set from %s yet", j.url)
	}
	keys := set.find(t)
	if len(keys) == 0 && t.keyID != "" {
		// Perhaps the keys were rotated since the last fetch.
		set = j.fetch(ctx, false)
		keys = set.find(t)
	}
	if len(keys) == 0 {
		return nil, invalidToken("no key for kid %q and algorithm %s", t.keyID, t.alg.name)
	}
	return keys, nil
}

// find returns the keys of the set that may have signed t: the one its
// "kid" names or, for a token without one, every key. Either way only
// keys that suit its algorithm.
func (s *keySet) find(t *jwt) []*jwk {
	var keys []*jwk
	for _, k := range s.keys {
		if t.keyID != "" && k.id != t.keyID {
			continue
		}
		if k.alg != "" && k.alg != t.alg.name || !t.alg.suits(k.key) {
			continue
		}
		keys = append(keys, k)
	}
	return keys
}

// fetch gets the key set, unless another fetch started less than the
// minimum gap ago (force skips that check, for the first fetch), and
// returns the current set, which on failure is the previous one.
func (j *JWKS) fetch(ctx context.Context, force bool) *keySet {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	now := j.now()
	if !force && now.Sub(j.lastAttempt) < j.minGap && !now.Before(j.lastAttempt) {
		return j.keys.Load()
	}
	j.lastAttempt = now
	keys, err := j.download(ctx)
	if err != nil {
		j.log("cannot fetch the OAuth key set; keeping the keys fetched before", "url", j.url, "err", err)
		return j.keys.Load()
	}
	set := &keySet{keys: keys, fetched: now}
	j.keys.Store(set)
	return set
}

// download fetches and parses the key set.
func (j *JWKS) download(ctx context.Context) ([]*jwk, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("key set larger than %d bytes", maxResponse)
	}
	return parseJWKS(body)
}

// maxKeys bounds the keys of a set; real ones have a handful.
const maxKeys = 100

// RSA key sizes accepted. RFC 7518 §3.3 requires at least 2048 bits; the
// upper bound keeps a hostile key from making verification slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// parseJWKS parses a JSON Web Key Set (RFC 7517 §5) and returns its
// usable signature keys. Keys it cannot use (encryption keys, symmetric
// keys, other curves, short RSA keys) are skipped, so that one odd key
// does not disable the others; a set with no usable key is an error.
func parseJWKS(data []byte) ([]*jwk, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, errors.New(`key set is not a JSON object with a "keys" array`)
	}
	if len(set.Keys) > maxKeys {
		return nil, fmt.Errorf("key set has %d keys, more than %d", len(set.Keys), maxKeys)
	}
	var keys []*jwk
	var skipped []string
	for i, raw := range set.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key set has no usable signature key (%s)", strings.Join(skipped, "; "))
	}
	return keys, nil
}

// parseJWK parses one public key.
func parseJWK(raw json.RawMessage) (*jwk, error) {
	var k struct {
		Kty    string   `json:"kty"`
		Kid    string   `json:"kid"`
		Use    string   `json:"use"`
		KeyOps []string `json:"key_ops"`
		Alg    string   `json:"alg"`
		Crv    string   `json:"crv"`
		N      string   `json:"n"`
		E      string   `json:"e"`
		X      string   `json:"x"`
		Y      string   `json:"y"`
		D      *string  `json:"d"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, errors.New("not a JSON object of JWK members")
	}
	switch {
	case k.Use != "" && k.Use != "sig":
		return nil, fmt.Errorf("use %q is not sig", k.Use)
	case k.KeyOps != nil && !slices.Contains(k.KeyOps, "verify"):
		return nil, errors.New("key_ops lacks verify")
	case k.D != nil:
		// A published private key can sign anything.
		return nil, errors.New("has private key material")
	case k.Alg != "" && algorithms[k.Alg] == nil:
		return nil, fmt.Errorf("algorithm %q not supported", k.Alg)
	}
	out := &jwk{id: k.Kid, alg: k.Alg}
	var err error
	switch k.Kty {
	case "RSA":
		out.key, err = rsaKey(k.N, k.E)
	case "EC":
		out.key, err = ecKey(k.Crv, k.X, k.Y)
	case "OKP":
		out.key, err = okpKey(k.Crv, k.X)
	default:
		return nil, fmt.Errorf("key type %q not supported", k.Kty)
	}
	if err != nil {
		return nil, err
	}
	if out.alg != "" && !algorithms[out.alg].suits(out.key) {
		return nil, fmt.Errorf("algorithm %s does not suit a %s key", out.alg, k.Kty)
	}
	return out, nil
}

// decodeKeyPart decodes a base64url key member (RFC 7518 §6), tolerating
// padding, which some servers add.
func decodeKeyPart(name, s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("member %q is not base64url", name)
	}
	return b, nil
}

// rsaKey builds an RSA public key from n and e (RFC 7518 §6.3.1).
func rsaKey(n64, e64 string) (*rsa.PublicKey, error) {
	n, err := decodeKeyPart("n", n64)
	if err != nil {
		return nil, err
	}
	e, err := decodeKeyPart("e", e64)
	if err != nil {
		return nil, err
	}
	modulus := new(big.Int).SetBytes(n)
	if bits := modulus.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("RSA key of %d bits, outside %d..%d", bits, minRSABits, maxRSABits)
	}
	if len(e) > 4 {
		return nil, errors.New("RSA exponent too large")
	}
	exponent := 0
	for _, b := range e {
		exponent = exponent<<8 | int(b)
	}
	if exponent < 3 || exponent%2 == 0 {
		return nil, fmt.Errorf("RSA exponent %d is not an odd number above 2", exponent)
	}
	return &rsa.PublicKey{N: modulus, E: exponent}, nil
}

// ecKey builds an EC public key (RFC 7518 §6.2.1), checking that the
// point is on the curve.
func ecKey(crv, x64, y64 string) (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	default:
		return nil, fmt.Errorf("curve %q not supported", crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, err := decodeKeyPart("x", x64)
	if err != nil {
		return nil, err
	}
	y, err := decodeKeyPart("y", y64)
	if err != nil {
		return nil, err
	}
	// RFC 7518 §6.2.1.2: the coordinates are exactly the curve's size.
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("%s coordinates must be %d bytes", crv, size)
	}
	point := append(append([]byte{4}, x...), y...)
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("%s point: %v", crv, err)
	}
	return key, nil
}

// okpKey builds an Ed25519 public key (RFC 8037 §2).
func okpKey(crv, x64 string) (ed25519.PublicKey, error) {
	if crv != "Ed25519" {
		return nil, fmt.Errorf("curve %q not supported", crv)
	}
	x, err := decodeKeyPart("x", x64)
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("Ed25519 key must be %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}
