// Package scheme verifies and creates stored passwords in the format
// Dovecot uses, "{SCHEME}data", so that an existing Dovecot passwd-file
// can be used unchanged and files written here can be read by Dovecot.
//
// The scheme name is case-insensitive. A stored password without a
// "{SCHEME}" prefix is taken as CRYPT, as Dovecot does: its format is then
// recognised by its crypt(3) prefix ($argon2id$, $argon2i$, $2a$, $2b$,
// $2y$, $5$, $6$).
//
// Supported schemes:
//
//   - ARGON2ID, ARGON2I: PHC strings "$argon2id$v=19$m=…,t=…,p=…$salt$hash"
//     (RFC 9106), as Dovecot writes them through libsodium.
//   - BLF-CRYPT: bcrypt, "$2y$…".
//   - SHA512-CRYPT, SHA256-CRYPT: SHA-crypt, "$6$…" and "$5$…", per Ulrich
//     Drepper's "Unix crypt using SHA-256 and SHA-512". The computation is
//     github.com/go-crypt/crypt's; this package parses the string itself so
//     that it follows glibc on the spec's edge cases (rounds outside
//     1000..999999999 are clamped, not refused).
//   - SCRAM-SHA-256, SCRAM-SHA-1: SCRAM credentials (RFC 5802, RFC 7677)
//     "iterations,salt,StoredKey,ServerKey", as Dovecot writes them; the
//     SASL SCRAM mechanisms read them with ParseSCRAM.
//   - SSHA512, SSHA256, SSHA: base64 of digest || salt.
//   - SHA512, SHA256, SHA (alias SHA1), PLAIN-MD5: an unsalted digest,
//     base64 or hex (recognised by length, as Dovecot does).
//   - PLAIN, CLEAR, CLEARTEXT: the password itself.
//   - CRYPT: any of the crypt(3) formats above.
//
// The digest and plaintext schemes take Dovecot's encoding suffix:
// "{SHA256.HEX}" or "{SSHA512.B64}" says how the data is encoded.
//
// Every comparison is constant-time. Errors never include the stored data
// or the password, so they can be logged.
package scheme

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultScheme is the scheme new passwords are hashed with unless the
// administrator asks for another.
const DefaultScheme = "ARGON2ID"

// Default cost parameters for new hashes. The Argon2id ones are OWASP's
// recommendation (19 MiB, two passes, one lane). Dovecot creates
// SHA-crypt hashes with glibc's default of 5000 rounds, which today costs
// an attacker far too little; the rounds are written into the hash, so the
// higher default is still verified by Dovecot and glibc.
const (
	// DefaultArgon2Memory is the Argon2 memory cost in KiB.
	DefaultArgon2Memory uint32 = 19456
	// DefaultArgon2Time is the number of Argon2 passes over the memory.
	DefaultArgon2Time uint32 = 2
	// DefaultArgon2Threads is the Argon2 degree of parallelism (lanes).
	DefaultArgon2Threads uint8 = 1
	// DefaultBcryptCost is the bcrypt cost (log2 of the rounds).
	DefaultBcryptCost = 10
	// DefaultSHACryptRounds is the number of SHA-crypt rounds.
	DefaultSHACryptRounds = 100000
)

// Params are the cost parameters HashWithParams uses. Each applies only to
// its own scheme.
type Params struct {
	// Argon2Memory is the memory cost in KiB; at least 8×Argon2Threads.
	Argon2Memory uint32
	// Argon2Time is the number of passes, at least 1.
	Argon2Time uint32
	// Argon2Threads is the number of lanes, at least 1.
	Argon2Threads uint8
	// BcryptCost is the bcrypt cost, 4 to 31.
	BcryptCost int
	// SHACryptRounds is the number of SHA-crypt rounds, 1000 to 999999999.
	SHACryptRounds int
	// SCRAMIterations is the PBKDF2 iteration count of SCRAM
	// credentials, MinSCRAMIterations to 4000000.
	SCRAMIterations int
}

// DefaultParams returns the parameters Hash uses.
func DefaultParams() Params {
	return Params{
		Argon2Memory:    DefaultArgon2Memory,
		Argon2Time:      DefaultArgon2Time,
		Argon2Threads:   DefaultArgon2Threads,
		BcryptCost:      DefaultBcryptCost,
		SHACryptRounds:  DefaultSHACryptRounds,
		SCRAMIterations: DefaultSCRAMIterations,
	}
}

// ErrUnknownScheme is wrapped by the errors for a scheme name this package
// does not know, or a crypt(3) format it does not support.
var ErrUnknownScheme = errors.New("unknown password scheme")

// ErrMalformed is wrapped by the errors for stored data that is not valid
// for its scheme, including cost parameters too high to verify in
// reasonable time.
var ErrMalformed = errors.New("malformed stored password")

// matcher reports whether a password matches one parsed stored password.
type matcher func(password []byte) bool

// scheme is one entry of the registry.
type scheme struct {
	// name is the canonical, upper-case name.
	name string
	// plaintext is set for schemes whose data is the password itself.
	plaintext bool
	// encodable is set for schemes that take a .B64 or .HEX suffix.
	encodable bool
	// parse checks data and prepares the comparison. It does no
	// expensive work, so that Identify stays cheap.
	parse func(data string, enc encoding, lim *limits) (matcher, error)
	// hash returns the data part for a new password, or is nil for a
	// scheme that is accepted for verification only.
	hash func(password []byte, enc encoding, p *Params) (string, error)
}

// limits bound the cost parameters a stored password may ask for, so that a
// corrupted or hostile entry cannot tie up the server. The fuzz tests use
// much lower ones.
type limits struct {
	maxArgon2Memory    uint32 // KiB
	maxArgon2Time      uint32
	maxBcryptCost      int
	maxSHACryptRounds  int
	maxSCRAMIterations int
}

// verifyLimits are generous: they refuse only what no sane configuration
// uses (more than 4 GiB of memory per login, for instance).
var verifyLimits = limits{
	maxArgon2Memory:    4 << 20,
	maxArgon2Time:      1000,
	maxBcryptCost:      31,
	maxSHACryptRounds:  shaCryptMaxRounds,
	maxSCRAMIterations: maxSCRAMIterations,
}

// registry maps each accepted name to its scheme.
var registry = map[string]*scheme{}

func init() {
	for _, s := range []*scheme{
		plainScheme("PLAIN"),
		plainScheme("CLEAR"),
		plainScheme("CLEARTEXT"),
		digestScheme("PLAIN-MD5", md5Digest, encHex),
		digestScheme("SHA", sha1Digest, encBase64),
		digestScheme("SHA1", sha1Digest, encBase64),
		digestScheme("SHA256", sha256Digest, encBase64),
		digestScheme("SHA512", sha512Digest, encBase64),
		saltedScheme("SSHA", sha1Digest),
		saltedScheme("SSHA256", sha256Digest),
		saltedScheme("SSHA512", sha512Digest),
		shaCryptScheme("SHA256-CRYPT", shaCrypt256),
		shaCryptScheme("SHA512-CRYPT", shaCrypt512),
		bcryptScheme(),
		argon2Scheme("ARGON2I", argon2i),
		argon2Scheme("ARGON2ID", argon2id),
		scramScheme(scramSHA1),
		scramScheme(scramSHA256),
		cryptScheme(),
	} {
		registry[s.name] = s
	}
}

// Names returns the names of all supported schemes, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Verify reports whether password matches stored, a "{SCHEME}data" string.
// A wrong password is (false, nil); an unknown scheme or malformed data is
// (false, err), never a panic.
func Verify(stored, password string) (bool, error) {
	return verify(stored, password, &verifyLimits)
}

func verify(stored, password string, lim *limits) (bool, error) {
	s, enc, data, err := split(stored)
	if err != nil {
		return false, err
	}
	match, err := s.parse(data, enc, lim)
	if err != nil {
		return false, fmt.Errorf("scheme %s: %w", s.name, err)
	}
	return match([]byte(password)), nil
}

// Identify returns the canonical name of the scheme of stored (upper case,
// without an encoding suffix) after checking that its data is well formed.
// It computes no hash, so it is cheap enough to validate a whole user
// database when it is loaded.
func Identify(stored string) (string, error) {
	s, enc, data, err := split(stored)
	if err != nil {
		return "", err
	}
	if _, err := s.parse(data, enc, &verifyLimits); err != nil {
		return "", fmt.Errorf("scheme %s: %w", s.name, err)
	}
	return s.name, nil
}

// Plaintext returns the password stored in stored if its scheme keeps it in
// the clear (PLAIN, CLEAR, CLEARTEXT, with any encoding suffix), as APOP
// (RFC 1939 §7) needs. It returns false for every other scheme and for
// malformed data.
func Plaintext(stored string) (string, bool) {
	s, enc, data, err := split(stored)
	if err != nil || !s.plaintext {
		return "", false
	}
	secret, err := enc.decode(data)
	if err != nil {
		return "", false
	}
	return string(secret), true
}

// Hash returns password hashed with the named scheme and the default
// parameters, as "{SCHEME}data".
func Hash(schemeName, password string) (string, error) {
	p := DefaultParams()
	return HashWithParams(schemeName, password, p)
}

// HashWithParams is Hash with explicit cost parameters, for tests and for
// administrators who tune them. The schemes that can create passwords are
// ARGON2ID, ARGON2I, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, SCRAM-SHA-256,
// SCRAM-SHA-1, SSHA512, SSHA256, SSHA and the plaintext ones; the unsalted digests and CRYPT are
// accepted for verification only. A .B64 or .HEX suffix selects the
// encoding where the scheme takes one.
func HashWithParams(schemeName, password string, p Params) (string, error) {
	s, enc, err := lookup(schemeName)
	if err != nil {
		return "", err
	}
	if s.hash == nil {
		return "", fmt.Errorf("scheme %s can verify but not create passwords: unsalted or ambiguous", s.name)
	}
	data, err := s.hash([]byte(password), enc, &p)
	if err != nil {
		return "", fmt.Errorf("hash with %s: %w", s.name, err)
	}
	return "{" + s.name + enc.suffix() + "}" + data, nil
}

// split separates stored into its scheme, encoding and data.
func split(stored string) (*scheme, encoding, string, error) {
	if !strings.HasPrefix(stored, "{") {
		return registry["CRYPT"], encDefault, stored, nil
	}
	name, data, ok := strings.Cut(stored[1:], "}")
	if !ok {
		return nil, encDefault, "", fmt.Errorf("%w: \"{\" without \"}\"", ErrMalformed)
	}
	s, enc, err := lookup(name)
	if err != nil {
		return nil, encDefault, "", err
	}
	return s, enc, data, nil
}

// lookup finds the scheme for a name such as "ssha512" or "SHA256.HEX".
func lookup(name string) (*scheme, encoding, error) {
	upper := strings.ToUpper(name)
	if s, ok := registry[upper]; ok {
		return s, encDefault, nil
	}
	base, suffix, ok := strings.Cut(upper, ".")
	if ok {
		enc, known := suffixes[suffix]
		s, found := registry[base]
		if known && found {
			if !s.encodable {
				return nil, encDefault, fmt.Errorf("scheme %s takes no encoding suffix: %w", s.name, ErrUnknownScheme)
			}
			return s, enc, nil
		}
	}
	// %q keeps control characters in a hostile name out of the log.
	return nil, encDefault, fmt.Errorf("%w %q", ErrUnknownScheme, name)
}

// plainScheme is a scheme that stores the password itself.
func plainScheme(name string) *scheme {
	return &scheme{
		name:      name,
		plaintext: true,
		encodable: true,
		parse: func(data string, enc encoding, _ *limits) (matcher, error) {
			secret, err := enc.decode(data)
			if err != nil {
				return nil, err
			}
			// Comparing digests keeps the time independent of
			// where the passwords differ and of their lengths.
			want := sha256.Sum256(secret)
			return func(password []byte) bool {
				got := sha256.Sum256(password)
				return subtle.ConstantTimeCompare(got[:], want[:]) == 1
			}, nil
		},
		hash: func(password []byte, enc encoding, _ *Params) (string, error) {
			return enc.encode(password), nil
		},
	}
}
