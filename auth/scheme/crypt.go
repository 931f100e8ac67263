package scheme

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-crypt/crypt/algorithm/shacrypt"
	"golang.org/x/crypto/bcrypt"
)

// cryptScheme is Dovecot's CRYPT: the data is a crypt(3) string whose
// prefix names the algorithm. DES and MD5 crypt are deliberately not
// supported: both are broken, and a store still using them should be
// rehashed, not carried forward.
func cryptScheme() *scheme {
	return &scheme{
		name: "CRYPT",
		parse: func(data string, _ encoding, lim *limits) (matcher, error) {
			switch {
			case strings.HasPrefix(data, "$argon2id$"):
				return parseArgon2(data, argon2id, lim)
			case strings.HasPrefix(data, "$argon2i$"):
				return parseArgon2(data, argon2i, lim)
			case isBcrypt(data):
				return parseBcrypt(data, lim)
			case strings.HasPrefix(data, "$5$"):
				return parseSHACrypt(data, shaCrypt256, lim)
			case strings.HasPrefix(data, "$6$"):
				return parseSHACrypt(data, shaCrypt512, lim)
			}
			return nil, fmt.Errorf("%w: crypt(3) format not supported (want $argon2id$, $argon2i$, $2y$, $5$ or $6$)", ErrUnknownScheme)
		},
	}
}

// isBcrypt reports whether data has one of the bcrypt prefixes that mean
// the correct algorithm. $2x$ (hashes made by the buggy pre-2011 crypt_blowfish)
// is left out: those hashes do not verify with a correct implementation.
func isBcrypt(data string) bool {
	return strings.HasPrefix(data, "$2a$") || strings.HasPrefix(data, "$2b$") || strings.HasPrefix(data, "$2y$")
}

// bcryptLength is the length of every bcrypt string: "$2y$NN$", a 22-char
// salt and a 31-char hash.
const bcryptLength = 60

// bcryptScheme is Dovecot's BLF-CRYPT.
func bcryptScheme() *scheme {
	return &scheme{
		name: "BLF-CRYPT",
		parse: func(data string, _ encoding, lim *limits) (matcher, error) {
			if !isBcrypt(data) {
				return nil, fmt.Errorf("%w: not a $2a$, $2b$ or $2y$ bcrypt string", ErrMalformed)
			}
			return parseBcrypt(data, lim)
		},
		hash: func(password []byte, _ encoding, p *Params) (string, error) {
			if p.BcryptCost < bcrypt.MinCost || p.BcryptCost > bcrypt.MaxCost {
				return "", fmt.Errorf("bcrypt cost %d outside %d..%d", p.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
			}
			// bcrypt ignores everything after 72 bytes; refusing such
			// a password is better than silently weakening it.
			h, err := bcrypt.GenerateFromPassword(password, p.BcryptCost)
			if errors.Is(err, bcrypt.ErrPasswordTooLong) {
				return "", errors.New("password longer than 72 bytes, which bcrypt would truncate")
			}
			if err != nil {
				return "", err
			}
			// x/crypto writes $2a$, which for it is the same correct
			// algorithm as $2b$ and $2y$; $2y$ is what Dovecot and
			// libxcrypt write, so files stay uniform.
			return "$2y$" + string(h[len("$2a$"):]), nil
		},
	}
}

// parseBcrypt checks a bcrypt string fully, since x/crypto reports a bad
// salt only when it is used.
func parseBcrypt(data string, lim *limits) (matcher, error) {
	if len(data) != bcryptLength {
		return nil, fmt.Errorf("%w: bcrypt string is %d characters, want %d", ErrMalformed, len(data), bcryptLength)
	}
	cost, err := bcrypt.Cost([]byte(data))
	if err != nil {
		return nil, fmt.Errorf("%w: bad bcrypt cost", ErrMalformed)
	}
	if cost > lim.maxBcryptCost {
		return nil, fmt.Errorf("%w: bcrypt cost %d above %d", ErrMalformed, cost, lim.maxBcryptCost)
	}
	// x/crypto reads the cost with Atoi, which would take "+5".
	if !isDigit(data[4]) || !isDigit(data[5]) || data[6] != '$' || !isCryptBase64(data[7:]) {
		return nil, fmt.Errorf("%w: bad bcrypt salt or hash", ErrMalformed)
	}
	hashed := []byte(data)
	return func(password []byte) bool {
		// Like crypt(3), bcrypt uses the first 72 bytes only.
		return bcrypt.CompareHashAndPassword(hashed, password) == nil
	}, nil
}

// isDigit reports whether c is an ASCII decimal digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isCryptBase64 reports whether s uses only the crypt(3) base64 alphabet,
// which bcrypt and SHA-crypt share (in different orders).
func isCryptBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '/' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// shaCryptVariant is SHA-256-crypt or SHA-512-crypt.
type shaCryptVariant struct {
	id      string // "5" or "6"
	keyLen  int    // length of the encoded hash
	variant shacrypt.Variant
}

var (
	shaCrypt256 = shaCryptVariant{"5", 43, shacrypt.VariantSHA256}
	shaCrypt512 = shaCryptVariant{"6", 86, shacrypt.VariantSHA512}
)

// SHA-crypt limits, from the spec.
const (
	shaCryptMinRounds     = 1000
	shaCryptMaxRounds     = 999999999
	shaCryptDefaultRounds = 5000
	shaCryptMaxSalt       = 16
)

// shaCryptScheme is Dovecot's SHA256-CRYPT or SHA512-CRYPT.
func shaCryptScheme(name string, v shaCryptVariant) *scheme {
	return &scheme{
		name: name,
		parse: func(data string, _ encoding, lim *limits) (matcher, error) {
			return parseSHACrypt(data, v, lim)
		},
		hash: func(password []byte, _ encoding, p *Params) (string, error) {
			if p.SHACryptRounds < shaCryptMinRounds || p.SHACryptRounds > shaCryptMaxRounds {
				return "", fmt.Errorf("SHA-crypt rounds %d outside %d..%d", p.SHACryptRounds, shaCryptMinRounds, shaCryptMaxRounds)
			}
			h, err := shacrypt.New(
				shacrypt.WithVariant(v.variant),
				shacrypt.WithRounds(p.SHACryptRounds),
				shacrypt.WithSaltLength(shaCryptMaxSalt),
			)
			if err != nil {
				return "", err
			}
			d, err := h.Hash(string(password))
			if err != nil {
				return "", err
			}
			return d.Encode(), nil
		},
	}
}

// parseSHACrypt parses "$5$[rounds=N$]salt$hash" the way glibc reads it and
// hands a normalised string to go-crypt for the computation.
func parseSHACrypt(data string, v shaCryptVariant, lim *limits) (matcher, error) {
	rest, ok := strings.CutPrefix(data, "$"+v.id+"$")
	if !ok {
		return nil, fmt.Errorf("%w: not a $%s$ SHA-crypt string", ErrMalformed, v.id)
	}
	rounds := shaCryptDefaultRounds
	// As in glibc, "rounds=" counts only if digits and a '$' follow;
	// otherwise it is part of the salt.
	if after, ok := strings.CutPrefix(rest, "rounds="); ok {
		digits, tail, found := strings.Cut(after, "$")
		if found && digits != "" && strings.Trim(digits, "0123456789") == "" {
			n, err := strconv.ParseUint(digits, 10, 64)
			if err != nil || n > shaCryptMaxRounds {
				n = shaCryptMaxRounds // ParseUint fails only on overflow here
			}
			// The spec clamps rather than refuses.
			rounds = max(int(n), shaCryptMinRounds)
			rest = tail
		}
	}
	if rounds > lim.maxSHACryptRounds {
		return nil, fmt.Errorf("%w: %d SHA-crypt rounds, above %d", ErrMalformed, rounds, lim.maxSHACryptRounds)
	}
	salt, key, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, fmt.Errorf("%w: SHA-crypt string without hash", ErrMalformed)
	}
	// crypt(3) truncates a longer salt before hashing and writes the
	// truncated one, so a stored longer salt can never have matched.
	if len(salt) > shaCryptMaxSalt {
		return nil, fmt.Errorf("%w: SHA-crypt salt longer than %d characters", ErrMalformed, shaCryptMaxSalt)
	}
	if len(key) != v.keyLen || !isCryptBase64(key) {
		return nil, fmt.Errorf("%w: SHA-crypt hash is not %d crypt-base64 characters", ErrMalformed, v.keyLen)
	}
	// Always spelling out the rounds keeps go-crypt from reading a salt
	// that starts with "rounds=" as a parameter.
	normalised := fmt.Sprintf("$%s$rounds=%d$%s$%s", v.id, rounds, salt, key)
	d, err := shacrypt.DecodeVariant(v.variant)(normalised)
	if err != nil {
		// go-crypt's message could quote the salt; keep it out.
		return nil, fmt.Errorf("%w: SHA-crypt string not accepted by go-crypt", ErrMalformed)
	}
	return d.MatchBytes, nil
}
