package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
)

var _ auth.TokenValidator = (*Introspector)(nil)

// Introspector validates tokens at an RFC 7662 introspection endpoint.
// It is safe for concurrent use.
type Introspector struct {
	endpoint      string
	authorization string // the HTTP Basic credentials, ready to send
	client        *http.Client
	check         checker
	cacheTTL      time.Duration
	now           func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cached
}

// cached is a positive answer: the user name, until expires.
type cached struct {
	username string
	expires  time.Time
}

// maxCached bounds the cache. When it is full, expired answers are
// dropped, and if that is not enough, arbitrary ones: a dropped answer
// only costs one more request.
const maxCached = 10000

// maxResponse bounds an introspection response or a key set.
const maxResponse = 1 << 20

// NewIntrospector returns an Introspector for cfg: IntrospectionURL,
// ClientID and a client secret (ClientSecret or ClientSecretFile) are
// required.
func NewIntrospector(cfg Config) (*Introspector, error) {
	cfg = cfg.withDefaults("username")
	u, err := url.Parse(cfg.IntrospectionURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("oauth: introspection URL %q is not an http(s) URL", cfg.IntrospectionURL)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("oauth: introspection needs a client ID")
	}
	secret := cfg.ClientSecret
	switch {
	case secret != "" && cfg.ClientSecretFile != "":
		return nil, errors.New("oauth: both a client secret and a client secret file")
	case cfg.ClientSecretFile != "":
		if secret, err = readSecretFile(cfg.ClientSecretFile); err != nil {
			return nil, err
		}
	case secret == "":
		return nil, errors.New("oauth: introspection needs a client secret")
	}
	// RFC 6749 §2.3.1: the client ID and secret are form-encoded before
	// they go into the Basic credentials.
	basic := url.QueryEscape(cfg.ClientID) + ":" + url.QueryEscape(secret)
	return &Introspector{
		endpoint:      cfg.IntrospectionURL,
		authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte(basic)),
		client:        cfg.httpClient(),
		check:         newChecker(cfg),
		cacheTTL:      cfg.CacheTTL,
		now:           cfg.now,
		cache:         map[[sha256.Size]byte]cached{},
	}, nil
}

// ValidateToken returns the user name the token was issued for. A
// rejected token gives an *Error (wrapping auth.ErrFailed); an endpoint
// that cannot be reached, answers with an HTTP error or with something
// that is not an introspection response gives an error wrapping
// auth.ErrUnavailable: those are the server's problems, not the client's.
func (v *Introspector) ValidateToken(ctx context.Context, token string) (string, error) {
	if err := checkTokenSyntax(token); err != nil {
		return "", err
	}
	digest := sha256.Sum256([]byte(token))
	if name, ok := v.lookup(digest); ok {
		return name, nil
	}
	c, err := v.introspect(ctx, token)
	if err != nil {
		return "", err
	}
	now := v.now()
	name, err := v.check.check(c, now, false)
	if err != nil {
		return "", err
	}
	v.store(digest, name, c, now)
	return name, nil
}

// introspect asks the endpoint about token (RFC 7662 §2.1) and returns
// the claims of an active token.
func (v *Introspector) introspect(ctx context.Context, token string) (*claims, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, unavailable("introspection request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", v.authorization)
	resp, err := v.client.Do(req)
	if err != nil {
		// *url.Error names the endpoint and the cause, not the body.
		return nil, unavailable("introspection: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, unavailable("introspection: read response: %v", err)
	}
	// RFC 7662 §2.3: an invalid token is answered 200 with active false;
	// any other status means this server's request or credentials are
	// wrong, or the endpoint is in trouble.
	if resp.StatusCode != http.StatusOK {
		return nil, unavailable("introspection endpoint answered %s", resp.Status)
	}
	if len(body) > maxResponse {
		return nil, unavailable("introspection response larger than %d bytes", maxResponse)
	}
	return parseIntrospection(body)
}

// parseIntrospection reads an RFC 7662 §2.2 response. A response that is
// not a JSON object with a boolean "active" is the endpoint's fault
// (auth.ErrUnavailable); an inactive token is the client's (*Error).
func parseIntrospection(body []byte) (*claims, error) {
	var head struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(body, &head); err != nil || head.Active == nil {
		return nil, unavailable("introspection response is not a JSON object with a boolean \"active\"")
	}
	if !*head.Active {
		return nil, invalidToken("inactive (introspection)")
	}
	c, err := parseClaims(body)
	if err != nil {
		return nil, invalidToken("introspection: %v", err)
	}
	return c, nil
}

// lookup returns a cached user name for a token digest.
func (v *Introspector) lookup(digest [sha256.Size]byte) (string, bool) {
	if v.cacheTTL <= 0 {
		return "", false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	entry, ok := v.cache[digest]
	if !ok {
		return "", false
	}
	if !v.now().Before(entry.expires) {
		delete(v.cache, digest)
		return "", false
	}
	return entry.username, true
}

// store caches a positive answer until the earlier of the cache TTL and
// the token's expiry.
func (v *Introspector) store(digest [sha256.Size]byte, name string, c *claims, now time.Time) {
	if v.cacheTTL <= 0 {
		return
	}
	expires := now.Add(v.cacheTTL)
	// check has refused an exp far in the past, so converting one
	// before expires cannot overflow.
	if c.expiry != nil && *c.expiry < float64(expires.Unix()) {
		expires = time.Unix(0, int64(*c.expiry*1e9))
	}
	if !now.Before(expires) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCached {
		for k, e := range v.cache {
			if !now.Before(e.expires) {
				delete(v.cache, k)
			}
		}
		for k := range v.cache {
			if len(v.cache) < maxCached {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[digest] = cached{username: name, expires: expires}
}
