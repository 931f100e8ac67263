package passwdfile

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// Compile-time checks that File is what the server expects.
var (
	_ auth.Authenticator     = (*File)(nil)
	_ auth.APOPAuthenticator = (*File)(nil)
)

// dummyHash is a hash of a random password in the default scheme with the
// default parameters, made once per process. Checking a password for an
// unknown user against it takes as long as checking a real user's hash
// made with the same scheme, so response time does not reveal which users
// exist. Users whose hashes use another scheme or other costs still take a
// different time; rehashing them with the default closes that gap.
var dummyHash = sync.OnceValues(func() (string, error) {
	secret, err := randomSecret()
	if err != nil {
		return "", err
	}
	stored, err := scheme.Hash(scheme.DefaultScheme, secret)
	if err != nil {
		return "", fmt.Errorf("make dummy password hash: %w", err)
	}
	return stored, nil
})

// dummySecret stands in for an APOP secret the user does not have.
var dummySecret = sync.OnceValues(randomSecret)

// randomSecret returns 32 random hex digits.
func randomSecret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Authenticate checks a user name and password. An unknown user, an
// invalid user name, a user without a password, an empty password and a
// wrong password all return auth.ErrFailed after the same work. A file
// that cannot be read gives an error wrapping auth.ErrUnavailable.
func (f *File) Authenticate(ctx context.Context, username, password string) (*auth.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := f.current()
	if err != nil {
		return nil, err
	}
	r := db.lookup(username)
	stored, err := dummyHash()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	known := r != nil && r.password != ""
	if known {
		stored = r.password
	}
	ok, err := scheme.Verify(stored, password)
	if err != nil {
		// Open validated every password, so this is a bug or a
		// limit; either way the user cannot log in until fixed.
		f.log.Error("cannot check stored password", "user", username, "err", err)
		return nil, auth.ErrFailed
	}
	// An empty password is refused even where the stored one matches
	// it ("{PLAIN}"): it is never what an administrator meant.
	if !known || !ok || password == "" {
		return nil, auth.ErrFailed
	}
	return r.user(), nil
}

// AuthenticateAPOP checks an RFC 1939 §7 APOP digest: the lower-case hex
// MD5 of the timestamp from the greeting followed by the shared secret.
// Only users whose password is stored in a plaintext scheme have a shared
// secret; everyone else gets auth.ErrFailed, after the same work.
func (f *File) AuthenticateAPOP(ctx context.Context, username, timestamp, digest string) (*auth.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := f.current()
	if err != nil {
		return nil, err
	}
	secret, err := dummySecret()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	r := db.lookup(username)
	known := r != nil && r.hasPlaintext && r.plaintext != ""
	if known {
		secret = r.plaintext
	}
	sum := md5.Sum([]byte(timestamp + secret))
	want := hex.EncodeToString(sum[:])
	// RFC 1939 writes the digest in lower case; accepting upper case
	// costs nothing and helps odd clients.
	ok := subtle.ConstantTimeCompare([]byte(strings.ToLower(digest)), []byte(want)) == 1
	if !known || !ok {
		return nil, auth.ErrFailed
	}
	return r.user(), nil
}
