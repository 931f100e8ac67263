package oauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
)

// claims are the members of a JWT claims set (RFC 7519 §4.1) or an
// introspection response (RFC 7662 §2.2) that the checks use. Both put
// them at the top level of one JSON object, with the same names.
type claims struct {
	issuer    string
	audience  []string
	expiry    *float64 // NumericDate, seconds since the epoch
	notBefore *float64
	issuedAt  *float64
	scope     string
	// members holds every member undecoded, for the user name claim.
	members map[string]json.RawMessage
}

// parseClaims decodes a JSON object of claims. A registered claim of the
// wrong type is an error: RFC 7519 §4.1 fixes their types, and a token
// that breaks them is not one to guess about.
func parseClaims(data []byte) (*claims, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil {
		return nil, fmt.Errorf("claims are not a JSON object")
	}
	c := &claims{members: members}
	if err := decodeMember(members, "iss", &c.issuer); err != nil {
		return nil, err
	}
	if err := decodeMember(members, "scope", &c.scope); err != nil {
		return nil, err
	}
	for name, field := range map[string]**float64{"exp": &c.expiry, "nbf": &c.notBefore, "iat": &c.issuedAt} {
		raw, ok := members[name]
		if !ok || isNull(raw) {
			continue
		}
		var n float64
		if err := json.Unmarshal(raw, &n); err != nil || math.IsInf(n, 0) {
			return nil, fmt.Errorf("claim %q is not a NumericDate", name)
		}
		*field = &n
	}
	if raw, ok := members["aud"]; ok && !isNull(raw) {
		// RFC 7519 §4.1.3: a string or an array of strings.
		var one string
		if err := json.Unmarshal(raw, &one); err == nil {
			c.audience = []string{one}
		} else if err := json.Unmarshal(raw, &c.audience); err != nil {
			return nil, fmt.Errorf(`claim "aud" is neither a string nor an array of strings`)
		}
	}
	return c, nil
}

// decodeMember decodes a string member, if present and not null.
func decodeMember(members map[string]json.RawMessage, name string, into *string) error {
	raw, ok := members[name]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("claim %q is not a string", name)
	}
	return nil
}

// isNull reports whether a raw JSON value is null.
func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// checker applies the configured rules to claims.
type checker struct {
	issuer, audience, scope, usernameClaim string
	skew                                   time.Duration
}

// newChecker takes the rules from cfg, after defaults.
func newChecker(cfg Config) checker {
	return checker{
		issuer:        cfg.Issuer,
		audience:      cfg.Audience,
		scope:         cfg.RequiredScope,
		usernameClaim: cfg.UsernameClaim,
		skew:          cfg.ClockSkew,
	}
}

// check applies the rules to c at time now and returns the user name.
// requireExpiry is set for JWTs, which RFC 9068 §2.2 requires to expire.
func (k checker) check(c *claims, now time.Time, requireExpiry bool) (string, error) {
	t := float64(now.UnixNano()) / 1e9
	skew := k.skew.Seconds()
	switch {
	case c.expiry == nil && requireExpiry:
		return "", invalidToken("no exp claim")
	case c.expiry != nil && t >= *c.expiry+skew:
		return "", invalidToken("expired")
	case c.notBefore != nil && t+skew < *c.notBefore:
		return "", invalidToken("not valid yet (nbf)")
	case c.issuedAt != nil && t+skew < *c.issuedAt:
		return "", invalidToken("issued in the future (iat)")
	case k.issuer != "" && c.issuer != k.issuer:
		return "", invalidToken("wrong issuer %q", c.issuer)
	case k.audience != "" && !slices.Contains(c.audience, k.audience):
		return "", invalidToken("audience %q does not include %q", c.audience, k.audience)
	}
	// RFC 6749 §3.3: the scope is a space-separated list.
	if k.scope != "" && !slices.Contains(strings.Fields(c.scope), k.scope) {
		return "", &Error{Status: StatusInsufficientScope, Scope: k.scope, Reason: fmt.Sprintf("scope lacks %q", k.scope)}
	}
	return k.username(c)
}

// username returns the configured claim, which must be a string that
// auth.ValidUsername accepts.
func (k checker) username(c *claims) (string, error) {
	raw, ok := c.members[k.usernameClaim]
	if !ok || isNull(raw) {
		return "", invalidToken("no %q claim for the user name", k.usernameClaim)
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return "", invalidToken("claim %q is not a string", k.usernameClaim)
	}
	if err := auth.ValidUsername(name); err != nil {
		return "", invalidToken("claim %q: %v", k.usernameClaim, err)
	}
	// OpenID Connect Core §5.1: an address the provider has not verified
	// may have been typed in by anyone.
	if k.usernameClaim == "email" {
		if raw, ok := c.members["email_verified"]; ok && string(bytes.TrimSpace(raw)) == "false" {
			return "", invalidToken("email address not verified")
		}
	}
	return name, nil
}
