package interop

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// oauthEndpoint stands in for an authorization server: an RFC 7662 token
// introspection endpoint on a loopback port. It knows the tokens it
// issued (issue) and the one client allowed to ask about them: the mail
// server, which must authenticate with HTTP Basic, its client ID and
// secret form-encoded first (RFC 6749 §2.3.1).
type oauthEndpoint struct {
	t            *testing.T
	url          string
	clientID     string
	clientSecret string

	mu      sync.Mutex
	tokens  map[string]string // token -> the user it was issued for
	asked   int               // introspection requests answered
	refused int               // requests without the right client credentials
}

// newOAuthEndpoint starts an endpoint that stops when the test ends.
func newOAuthEndpoint(t *testing.T) *oauthEndpoint {
	e := &oauthEndpoint{
		t:        t,
		clientID: "postoffice-interop",
		// ':' and ' ' must be form-encoded in the Basic credentials.
		clientSecret: "intro:spection secret",
		tokens:       map[string]string{},
	}
	srv := httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(srv.Close)
	e.url = srv.URL + "/oauth2/introspect"
	return e
}

// issue returns a new opaque access token for user.
func (e *oauthEndpoint) issue(user string) string {
	b := make([]byte, 24)
	rand.Read(b)
	token := "at." + hex.EncodeToString(b)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokens[token] = user
	return token
}

// counts returns how many introspection requests were answered and how
// many were refused for bad client credentials.
func (e *oauthEndpoint) counts() (asked, refused int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.asked, e.refused
}

// wantAsked checks that the mail server asked about tokens, always with
// the right client credentials.
func (e *oauthEndpoint) wantAsked(t *testing.T) {
	t.Helper()
	asked, refused := e.counts()
	if asked == 0 {
		t.Errorf("the server never asked the introspection endpoint")
	}
	if refused != 0 {
		t.Errorf("the introspection endpoint refused %d requests for bad client credentials", refused)
	}
}

func (e *oauthEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/oauth2/introspect" || r.Method != http.MethodPost {
		e.t.Errorf("introspection endpoint: unexpected %s %s", r.Method, r.URL)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		ok = err1 == nil && err2 == nil && id == e.clientID && secret == e.clientSecret
	}
	if !ok {
		e.mu.Lock()
		e.refused++
		e.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="introspection"`)
		http.Error(w, "client authentication failed", http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	token := r.PostForm.Get("token")
	e.mu.Lock()
	user, known := e.tokens[token]
	e.asked++
	e.mu.Unlock()
	// RFC 7662 §2.2: an unknown token is simply inactive, with nothing
	// else said about it.
	answer := map[string]any{"active": false}
	if known {
		now := time.Now()
		answer = map[string]any{
			"active":     true,
			"username":   user,
			"client_id":  "mail-client",
			"scope":      "pop3",
			"token_type": "Bearer",
			"iat":        now.Unix(),
			"exp":        now.Add(time.Hour).Unix(),
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(answer)
}
