// Package oauth checks OAuth 2.0 bearer tokens for the SASL mechanisms
// OAUTHBEARER (RFC 7628) and XOAUTH2. It has two implementations of
// auth.TokenValidator, chosen by Config.Mode:
//
//   - Introspector asks the authorization server about each token at its
//     RFC 7662 introspection endpoint, and caches positive answers briefly.
//     It works with opaque tokens and notices revocation.
//   - JWKS verifies JWT access tokens (RFC 7519, RFC 9068) itself, with the
//     public keys the authorization server publishes as a JSON Web Key Set
//     (RFC 7517). No request per login, but a revoked token is accepted
//     until it expires.
//
// Both check the same claims: the token is active (exp, nbf and iat, with
// Config.ClockSkew of tolerance), iss and aud are the configured ones, the
// scope includes the required one, and the user name is taken from one
// configurable claim.
//
// Rejections are *Error values, which wrap auth.ErrFailed and carry the
// RFC 7628 §3.2.2 status the SASL layer sends back ("invalid_token",
// "insufficient_scope", "invalid_request"). Trouble reaching the
// authorization server gives errors wrapping auth.ErrUnavailable. Tokens
// never appear in errors or logs, and the introspection cache keeps only
// their SHA-256 digests.
//
// The JOSE part (JWS compact serialization, JWK parsing, signature
// verification) is written here on the standard library rather than taken
// from go-jose: the subset needed is small (one serialization, nine
// algorithms, three key types), and writing it means nothing else is
// there to be misused. There is no JWE, no "none", no HMAC (a public JWKS
// cannot hold a shared secret safely, and accepting HMAC invites the
// algorithm-confusion attack), no keys taken from the token's own header
// (jwk, jku, x5u, x5c are ignored), and no "crit" extension. Every key is
// bound to the algorithms of its type and curve, RSA keys must have at
// least 2048 bits, and EC points are checked to be on their curve.
package oauth

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
)

// Modes of Config.Mode.
const (
	ModeNone          = "none"
	ModeIntrospection = "introspection"
	ModeJWKS          = "jwks"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout            = 10 * time.Second
	DefaultClockSkew          = time.Minute
	DefaultRefreshInterval    = time.Hour
	DefaultMinRefreshInterval = 30 * time.Second
)

// Config configures a validator. Zero durations take the defaults above,
// except CacheTTL, whose zero value turns caching off.
type Config struct {
	// Mode is ModeIntrospection or ModeJWKS; "" and ModeNone mean no
	// OAuth (New returns a nil validator).
	Mode string

	// IntrospectionURL is the RFC 7662 endpoint (introspection).
	IntrospectionURL string
	// ClientID and ClientSecret authenticate this server to the
	// introspection endpoint with HTTP Basic (RFC 6749 §2.3.1).
	ClientID     string
	ClientSecret string
	// ClientSecretFile, if set instead of ClientSecret, names a file
	// whose first line is the secret. It is read once, by New.
	ClientSecretFile string
	// CacheTTL is how long a positive introspection answer is reused,
	// never past the token's exp. 0 asks every time.
	CacheTTL time.Duration

	// JWKSURL is the JSON Web Key Set (jwks).
	JWKSURL string
	// RefreshInterval is how old the key set may get before it is
	// fetched again; MinRefreshInterval is the least time between two
	// fetches, which bounds the fetches that tokens naming unknown keys
	// can cause.
	RefreshInterval    time.Duration
	MinRefreshInterval time.Duration

	// Issuer, if set, is the required "iss". Required for jwks.
	Issuer string
	// Audience, if set, is a value "aud" must contain. Required for jwks
	// (RFC 9068 §4).
	Audience string
	// RequiredScope, if set, is a scope "scope" must contain.
	RequiredScope string
	// UsernameClaim names the claim holding the user name. "" means
	// "username" for introspection (RFC 7662 §2.2) and "sub" for jwks:
	// the subject is the one identifier every authorization server keeps
	// stable and out of the user's hands.
	UsernameClaim string

	// Timeout bounds each HTTP request.
	Timeout time.Duration
	// ClockSkew is the tolerance for exp, nbf and iat.
	ClockSkew time.Duration
	// HTTPClient, if set, is used instead of a client made from
	// Timeout (for a private CA, say). Its redirect policy is kept.
	HTTPClient *http.Client
	// Logger receives key set fetch failures; nil means slog.Default().
	Logger *slog.Logger

	// now is the clock; tests set it.
	now func() time.Time
}

// New returns the validator cfg.Mode selects: an *Introspector or a
// *JWKS. For ModeNone or "" it returns nil and no error: OAuth is off,
// and the server should not offer the OAuth mechanisms.
func New(cfg Config) (auth.TokenValidator, error) {
	switch cfg.Mode {
	case "", ModeNone:
		return nil, nil
	case ModeIntrospection:
		return NewIntrospector(cfg)
	case ModeJWKS:
		return NewJWKS(cfg)
	}
	return nil, fmt.Errorf("oauth: unknown mode %q, want %q, %q or %q", cfg.Mode, ModeNone, ModeIntrospection, ModeJWKS)
}

// withDefaults fills in the zero values of cfg.
func (cfg Config) withDefaults(defaultClaim string) Config {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.MinRefreshInterval <= 0 {
		cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if cfg.CacheTTL < 0 {
		cfg.CacheTTL = 0
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = defaultClaim
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return cfg
}

// httpClient returns cfg.HTTPClient, or a client with cfg.Timeout that
// does not follow redirects: an endpoint that redirects is misconfigured,
// and following would send the token or the client credentials on to
// wherever it points.
func (cfg Config) httpClient() *http.Client {
	if cfg.HTTPClient != nil {
		return cfg.HTTPClient
	}
	return &http.Client{
		Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// readSecretFile returns the first line of a client secret file.
func readSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("oauth: read client secret: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	secret := strings.TrimSpace(line)
	if secret == "" {
		return "", fmt.Errorf("oauth: client secret file %s is empty", path)
	}
	return secret, nil
}

// RFC 7628 §3.2.2 status values (from the OAuth Extensions Error
// Registry, RFC 6750 §3.1).
const (
	StatusInvalidRequest    = "invalid_request"
	StatusInvalidToken      = "invalid_token"
	StatusInsufficientScope = "insufficient_scope"
)

// Error is a rejected token. It wraps auth.ErrFailed. Reason is for the
// server's log and never contains the token; Status (and Scope) are for
// the client.
type Error struct {
	// Status is StatusInvalidToken, StatusInsufficientScope or
	// StatusInvalidRequest.
	Status string
	// Scope is the scope the token lacked, with StatusInsufficientScope.
	Scope string
	// Reason says what was wrong ("expired", "wrong audience").
	Reason string
}

// Error returns "oauth: STATUS: REASON".
func (e *Error) Error() string {
	return "oauth: " + e.Status + ": " + e.Reason
}

// Unwrap returns auth.ErrFailed.
func (e *Error) Unwrap() error { return auth.ErrFailed }

// OAuthStatus returns Status, for callers that only need the status.
func (e *Error) OAuthStatus() string { return e.Status }

// JSON returns the RFC 7628 §3.2.2 error the server sends in its
// challenge: {"status":…, "scope":…, "openid-configuration":…}, with
// scope and openid-configuration left out when empty.
// openIDConfiguration is the authorization server's discovery URL, if the
// server wants to tell clients where to get a token.
func (e *Error) JSON(openIDConfiguration string) []byte {
	v := struct {
		Status              string `json:"status"`
		Scope               string `json:"scope,omitempty"`
		OpenIDConfiguration string `json:"openid-configuration,omitempty"`
	}{e.Status, e.Scope, openIDConfiguration}
	data, _ := json.Marshal(v) // strings only: cannot fail
	return data
}

// invalidToken returns an *Error with StatusInvalidToken.
func invalidToken(format string, args ...any) *Error {
	return &Error{Status: StatusInvalidToken, Reason: fmt.Sprintf(format, args...)}
}

// unavailable wraps auth.ErrUnavailable with what went wrong.
func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: oauth: %s", auth.ErrUnavailable, fmt.Sprintf(format, args...))
}

// maxTokenLength bounds a token. Real access tokens are a few KiB at
// most; the bound keeps a hostile client from making the server decode
// and hash megabytes.
const maxTokenLength = 32 << 10

// checkTokenSyntax applies RFC 6750 §2.1: a bearer token is a b64token,
// 1*(ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/") *"=".
func checkTokenSyntax(token string) error {
	if token == "" {
		return &Error{Status: StatusInvalidRequest, Reason: "empty token"}
	}
	if len(token) > maxTokenLength {
		return &Error{Status: StatusInvalidRequest, Reason: fmt.Sprintf("token of %d bytes, more than %d", len(token), maxTokenLength)}
	}
	body := strings.TrimRight(token, "=")
	if body == "" {
		return &Error{Status: StatusInvalidRequest, Reason: "token is not a b64token"}
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return &Error{Status: StatusInvalidRequest, Reason: "token is not a b64token (RFC 6750 §2.1)"}
		}
	}
	return nil
}
