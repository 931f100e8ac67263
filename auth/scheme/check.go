package scheme

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
)

// The functions below are how a user database checks a login without
// telling, by its answer or its response time, whether the user exists:
// an unknown user (or one without a password) is checked against a
// stand-in hash with the same work as a known user, and then refused.

// CheckPassword reports whether password matches stored, the user's
// stored password. For a user that does not exist or has no password,
// stored is "": password is then checked against standIn instead — the
// same work as for a real user stored like standIn — and refused. An empty
// password is refused even where the stored one matches it ("{PLAIN}"):
// that is never what an administrator meant. An error means stored (or
// standIn) could not be checked at all.
func CheckPassword(stored, standIn, password string) (bool, error) {
	known := stored != ""
	if !known {
		stored = standIn
	}
	ok, err := Verify(stored, password)
	if err != nil {
		return false, err
	}
	return known && ok && password != "", nil
}

// DefaultStandIn is a hash of a random password in the default scheme
// with the default parameters, made once per process, for user databases
// that cannot tell how their users are typically stored (see Typical).
var DefaultStandIn = sync.OnceValues(func() (string, error) {
	secret, err := randomSecret()
	if err != nil {
		return "", err
	}
	stored, err := Hash(DefaultScheme, secret)
	if err != nil {
		return "", fmt.Errorf("make stand-in password hash: %w", err)
	}
	return stored, nil
})

// Typical returns a stand-in for CheckPassword that costs what checking a
// typical user of a database costs: one of the stored passwords in the
// scheme most of them use (the first such, in the order given). Checking
// a wrong password against a real user's hash reveals nothing, as the
// result is refused whatever it is, and it times unknown users like the
// majority of known ones, also when that majority is not stored in the
// default scheme. It returns "" for a database without passwords.
func Typical(stored []string) string {
	count := make(map[string]int)
	first := make(map[string]string)
	best := ""
	for _, s := range stored {
		name, err := Identify(s)
		if err != nil || s == "" {
			continue
		}
		if _, ok := first[name]; !ok {
			first[name] = s
		}
		count[name]++
		if best == "" || count[name] > count[best] {
			best = name
		}
	}
	return first[best]
}

// dummySecret stands in for an APOP secret a user does not have.
var dummySecret = sync.OnceValues(randomSecret)

// CheckAPOP checks an RFC 1939 §7 APOP digest: the lower-case hex MD5 of
// the greeting's timestamp followed by the shared secret. A user without
// a secret (unknown, or not stored in a plaintext scheme) passes "" and
// is refused after the same work. RFC 1939 writes the digest in lower
// case; upper case is accepted too, which costs nothing and helps odd
// clients.
func CheckAPOP(secret, timestamp, digest string) (bool, error) {
	known := secret != ""
	if !known {
		var err error
		if secret, err = dummySecret(); err != nil {
			return false, err
		}
	}
	sum := md5.Sum([]byte(timestamp + secret))
	want := hex.EncodeToString(sum[:])
	ok := subtle.ConstantTimeCompare([]byte(strings.ToLower(digest)), []byte(want)) == 1
	return known && ok, nil
}

// randomSecret returns 32 random hex digits.
func randomSecret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
