package scheme

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM credentials, as Dovecot stores them for its SCRAM-SHA-1 and
// SCRAM-SHA-256 schemes (src/auth/password-scheme-scram.c):
//
//	{SCRAM-SHA-256}iterations,base64(salt),base64(StoredKey),base64(ServerKey)
//
// with padded standard base64. They are what a SCRAM server (RFC 5802)
// needs to check a client without knowing the password, and they also
// verify a plaintext password (USER/PASS, SASL PLAIN) by deriving the
// StoredKey again.

// SCRAM iteration counts.
const (
	// MinSCRAMIterations is the smallest iteration count accepted.
	// RFC 5802 §5.1 and RFC 7677 §4 say the count SHOULD be at least
	// 4096, and Dovecot refuses entries below it, so entries below it
	// are malformed here too.
	MinSCRAMIterations = 4096
	// DefaultSCRAMIterations is the iteration count of new SCRAM
	// credentials. It is above Dovecot's default (4096, the minimum)
	// because the stored keys are as open to offline guessing as any
	// password hash, and below what would suit a hash only the server
	// computes: every SCRAM client repeats the derivation at each
	// login, some on slow phones or in scripting languages.
	// Administrators who want more use HashWithParams.
	DefaultSCRAMIterations = 10000
	// scramSaltBytes is the salt size of new credentials, as Dovecot.
	scramSaltBytes = 16
	// scramMaxSalt bounds a stored salt; Dovecot writes 16 bytes.
	scramMaxSalt = 1024
)

// SCRAMCredentials are the values a SCRAM server keeps for a user
// (RFC 5802 §3): the salt and iteration count it sends in the
// server-first-message, StoredKey to check the ClientProof, and ServerKey
// to sign the server-final-message.
type SCRAMCredentials struct {
	// Iterations is the PBKDF2 iteration count, "i" in RFC 5802.
	Iterations int
	// Salt is the raw salt; the server sends it base64-encoded.
	Salt []byte
	// StoredKey is H(HMAC(SaltedPassword, "Client Key")).
	StoredKey []byte
	// ServerKey is HMAC(SaltedPassword, "Server Key").
	ServerKey []byte
}

// scramHash describes the hash function of one SCRAM variant.
type scramHash struct {
	scheme string // the scheme name, "SCRAM-SHA-256"
	name   string // the hash name DeriveSCRAM takes, "SHA-256"
	new    func() hash.Hash
	size   int
}

var (
	scramSHA1   = scramHash{"SCRAM-SHA-1", "SHA-1", sha1.New, sha1.Size}
	scramSHA256 = scramHash{"SCRAM-SHA-256", "SHA-256", sha256.New, sha256.Size}
)

// scramScheme is Dovecot's SCRAM-SHA-1 or SCRAM-SHA-256.
func scramScheme(h scramHash) *scheme {
	return &scheme{
		name: h.scheme,
		parse: func(data string, _ encoding, lim *limits) (matcher, error) {
			cred, err := parseSCRAM(data, h, lim)
			if err != nil {
				return nil, err
			}
			return func(password []byte) bool {
				got := h.derive(string(password), cred.Salt, cred.Iterations)
				return subtle.ConstantTimeCompare(got.StoredKey, cred.StoredKey) == 1
			}, nil
		},
		hash: func(password []byte, _ encoding, p *Params) (string, error) {
			if p.SCRAMIterations < MinSCRAMIterations || p.SCRAMIterations > maxSCRAMIterations {
				return "", fmt.Errorf("SCRAM iteration count %d outside %d..%d", p.SCRAMIterations, MinSCRAMIterations, maxSCRAMIterations)
			}
			salt := make([]byte, scramSaltBytes)
			if _, err := rand.Read(salt); err != nil {
				return "", fmt.Errorf("read salt: %w", err)
			}
			return formatSCRAM(h.derive(string(password), salt, p.SCRAMIterations)), nil
		},
	}
}

// maxSCRAMIterations is the largest count HashWithParams writes and
// verifyLimits accepts: about a second of work per login on a current
// core, which no sane configuration exceeds.
const maxSCRAMIterations = 4_000_000

// formatSCRAM writes the data part of a stored SCRAM password.
func formatSCRAM(c SCRAMCredentials) string {
	enc := base64.StdEncoding
	return strconv.Itoa(c.Iterations) + "," + enc.EncodeToString(c.Salt) + "," +
		enc.EncodeToString(c.StoredKey) + "," + enc.EncodeToString(c.ServerKey)
}

// parseSCRAM parses "iterations,salt,StoredKey,ServerKey".
func parseSCRAM(data string, h scramHash, lim *limits) (SCRAMCredentials, error) {
	fields := strings.Split(data, ",")
	if len(fields) != 4 {
		return SCRAMCredentials{}, fmt.Errorf("%w: not iterations,salt,StoredKey,ServerKey", ErrMalformed)
	}
	iter := fields[0]
	// Digits only: strconv would also take a sign.
	if iter == "" || len(iter) > 10 || strings.Trim(iter, "0123456789") != "" {
		return SCRAMCredentials{}, fmt.Errorf("%w: bad SCRAM iteration count", ErrMalformed)
	}
	n, _ := strconv.Atoi(iter) // at most 10 digits: fits an int64
	if n < MinSCRAMIterations || n > lim.maxSCRAMIterations {
		return SCRAMCredentials{}, fmt.Errorf("%w: SCRAM iteration count %d outside %d..%d", ErrMalformed, n, MinSCRAMIterations, lim.maxSCRAMIterations)
	}
	salt, err := decodeBase64(fields[1])
	if err != nil {
		return SCRAMCredentials{}, err
	}
	if len(salt) == 0 || len(salt) > scramMaxSalt {
		return SCRAMCredentials{}, fmt.Errorf("%w: SCRAM salt of %d bytes outside 1..%d", ErrMalformed, len(salt), scramMaxSalt)
	}
	stored, err := decodeBase64(fields[2])
	if err != nil {
		return SCRAMCredentials{}, err
	}
	server, err := decodeBase64(fields[3])
	if err != nil {
		return SCRAMCredentials{}, err
	}
	if len(stored) != h.size || len(server) != h.size {
		return SCRAMCredentials{}, fmt.Errorf("%w: %s keys must be %d bytes", ErrMalformed, h.scheme, h.size)
	}
	return SCRAMCredentials{Iterations: n, Salt: salt, StoredKey: stored, ServerKey: server}, nil
}

// ParseSCRAM returns the SCRAM credentials in stored, a "{SCRAM-SHA-1}…"
// or "{SCRAM-SHA-256}…" string, and the canonical scheme name, which is
// also the SASL mechanism name ("SCRAM-SHA-256"). It returns false for
// every other scheme and for malformed data, including iteration counts
// below MinSCRAMIterations.
func ParseSCRAM(stored string) (mech string, cred SCRAMCredentials, ok bool) {
	s, _, data, err := split(stored)
	if err != nil {
		return "", SCRAMCredentials{}, false
	}
	var h scramHash
	switch s.name {
	case scramSHA1.scheme:
		h = scramSHA1
	case scramSHA256.scheme:
		h = scramSHA256
	default:
		return "", SCRAMCredentials{}, false
	}
	cred, err = parseSCRAM(data, h, &verifyLimits)
	if err != nil {
		return "", SCRAMCredentials{}, false
	}
	return h.scheme, cred, true
}

// DeriveSCRAM computes SCRAM credentials from a password (RFC 5802 §3):
//
//	SaltedPassword = PBKDF2-HMAC-H(password, salt, iterations)
//	StoredKey      = H(HMAC(SaltedPassword, "Client Key"))
//	ServerKey      = HMAC(SaltedPassword, "Server Key")
//
// hashName is "SHA-1" or "SHA-256" (the suffix of the mechanism name). A
// SCRAM server uses it for users whose stored password is plaintext.
//
// The password is used as given. RFC 5802 asks for it to be normalised
// with SASLprep first; Dovecot does not, and credentials made here must
// match Dovecot's. For printable ASCII passwords, SASLprep changes
// nothing.
//
// DeriveSCRAM panics if hashName is neither, or iterations is below 1:
// both are programming errors, not data errors.
func DeriveSCRAM(hashName, password string, salt []byte, iterations int) SCRAMCredentials {
	var h scramHash
	switch hashName {
	case scramSHA1.name:
		h = scramSHA1
	case scramSHA256.name:
		h = scramSHA256
	default:
		panic(fmt.Sprintf("scheme.DeriveSCRAM: unknown hash %q, want SHA-1 or SHA-256", hashName))
	}
	if iterations < 1 {
		panic(fmt.Sprintf("scheme.DeriveSCRAM: iteration count %d below 1", iterations))
	}
	return h.derive(password, salt, iterations)
}

// derive computes the credentials for password with hash h.
func (h scramHash) derive(password string, salt []byte, iterations int) SCRAMCredentials {
	salted, err := pbkdf2.Key(h.new, password, salt, iterations, h.size)
	if err != nil {
		// Only the FIPS 140-only mode refuses these parameters.
		panic(fmt.Sprintf("scheme: PBKDF2 refused its parameters: %v", err))
	}
	clientKey := h.hmac(salted, "Client Key")
	stored := h.new()
	stored.Write(clientKey)
	return SCRAMCredentials{
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  stored.Sum(nil),
		ServerKey:  h.hmac(salted, "Server Key"),
	}
}

// hmac returns HMAC-H(key, text).
func (h scramHash) hmac(key []byte, text string) []byte {
	mac := hmac.New(h.new, key)
	mac.Write([]byte(text))
	return mac.Sum(nil)
}
