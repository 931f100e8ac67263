package scheme

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2Variant is Argon2i or Argon2id (x/crypto has no Argon2d, and
// Dovecot does not offer it either).
type argon2Variant struct {
	id  string // PHC identifier
	key func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
}

var (
	argon2i  = argon2Variant{"argon2i", argon2.Key}
	argon2id = argon2Variant{"argon2id", argon2.IDKey}
)

// Sizes for Argon2. The minimums are RFC 9106 §3.1's; the new-hash sizes
// are libsodium's, hence Dovecot's.
const (
	argon2Version   = 19 // 0x13, the only version x/crypto computes
	argon2MinSalt   = 8
	argon2MinKey    = 4
	argon2MaxKey    = 1024 // no real hash is longer; bounds the work
	argon2SaltBytes = 16
	argon2KeyBytes  = 32
)

// argon2Scheme is Dovecot's ARGON2I or ARGON2ID. The data is a PHC string.
func argon2Scheme(name string, v argon2Variant) *scheme {
	return &scheme{
		name: name,
		parse: func(data string, _ encoding, lim *limits) (matcher, error) {
			return parseArgon2(data, v, lim)
		},
		hash: func(password []byte, _ encoding, p *Params) (string, error) {
			if err := checkArgon2Params(p.Argon2Memory, p.Argon2Time, p.Argon2Threads); err != nil {
				return "", err
			}
			salt := make([]byte, argon2SaltBytes)
			if _, err := rand.Read(salt); err != nil {
				return "", fmt.Errorf("read salt: %w", err)
			}
			key := v.key(password, salt, p.Argon2Time, p.Argon2Memory, p.Argon2Threads, argon2KeyBytes)
			return formatArgon2(v, p.Argon2Memory, p.Argon2Time, p.Argon2Threads, salt, key), nil
		},
	}
}

// formatArgon2 writes a PHC string; salt and hash are unpadded base64.
func formatArgon2(v argon2Variant, memory, time uint32, threads uint8, salt, key []byte) string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", v.id, argon2Version, memory, time, threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// checkArgon2Params applies RFC 9106 §3.1's bounds. x/crypto would
// silently raise a memory cost below 8 per lane, computing a hash no other
// implementation agrees with, and panics on zero passes or lanes.
func checkArgon2Params(memory, time uint32, threads uint8) error {
	switch {
	case time < 1:
		return fmt.Errorf("argon2 time cost %d below 1", time)
	case threads < 1:
		return fmt.Errorf("argon2 parallelism %d below 1", threads)
	case uint64(memory) < 8*uint64(threads):
		return fmt.Errorf("argon2 memory %d KiB below 8 KiB per lane", memory)
	}
	return nil
}

// parseArgon2 parses "$argon2id$v=19$m=M,t=T,p=P$salt$hash".
func parseArgon2(data string, v argon2Variant, lim *limits) (matcher, error) {
	parts := strings.Split(data, "$")
	if len(parts) == 5 && parts[0] == "" && parts[1] == v.id {
		// Without "v=" the PHC string means version 16 (1.0).
		return nil, fmt.Errorf("%w: argon2 version 16 is not supported", ErrMalformed)
	}
	if len(parts) != 6 || parts[0] != "" || parts[1] != v.id {
		return nil, fmt.Errorf("%w: not a $%s$v=…$m=…,t=…,p=…$salt$hash string", ErrMalformed, v.id)
	}
	if parts[2] != "v="+strconv.Itoa(argon2Version) {
		return nil, fmt.Errorf("%w: argon2 version other than %d", ErrMalformed, argon2Version)
	}
	memory, time, threads, err := parseArgon2Params(parts[3])
	if err != nil {
		return nil, err
	}
	if memory > lim.maxArgon2Memory || time > lim.maxArgon2Time {
		return nil, fmt.Errorf("%w: argon2 cost m=%d,t=%d above m=%d,t=%d", ErrMalformed, memory, time, lim.maxArgon2Memory, lim.maxArgon2Time)
	}
	salt, err := decodeBase64(parts[4])
	if err != nil {
		return nil, err
	}
	want, err := decodeBase64(parts[5])
	if err != nil {
		return nil, err
	}
	if len(salt) < argon2MinSalt {
		return nil, fmt.Errorf("%w: argon2 salt shorter than %d bytes", ErrMalformed, argon2MinSalt)
	}
	if len(want) < argon2MinKey || len(want) > argon2MaxKey {
		return nil, fmt.Errorf("%w: argon2 hash of %d bytes outside %d..%d", ErrMalformed, len(want), argon2MinKey, argon2MaxKey)
	}
	return func(password []byte) bool {
		got := v.key(password, salt, time, memory, threads, uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1
	}, nil
}

// parseArgon2Params parses "m=M,t=T,p=P". The order is free, but each
// parameter must appear exactly once; the optional keyid and data of the
// PHC format are refused, since x/crypto cannot use them.
func parseArgon2Params(s string) (memory, time uint32, threads uint8, err error) {
	seen := map[string]bool{}
	for field := range strings.SplitSeq(s, ",") {
		key, value, ok := strings.Cut(field, "=")
		if !ok || seen[key] {
			return 0, 0, 0, fmt.Errorf("%w: bad argon2 parameters", ErrMalformed)
		}
		seen[key] = true
		n, err := parseDecimal(value)
		if err != nil {
			return 0, 0, 0, err
		}
		switch key {
		case "m":
			memory = n
		case "t":
			time = n
		case "p":
			if n > 255 {
				return 0, 0, 0, fmt.Errorf("%w: argon2 parallelism %d above 255", ErrMalformed, n)
			}
			threads = uint8(n)
		default:
			return 0, 0, 0, fmt.Errorf("%w: unsupported argon2 parameter", ErrMalformed)
		}
	}
	if len(seen) != 3 {
		return 0, 0, 0, fmt.Errorf("%w: argon2 parameters m, t and p are all required", ErrMalformed)
	}
	if err := checkArgon2Params(memory, time, threads); err != nil {
		return 0, 0, 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return memory, time, threads, nil
}

// parseDecimal parses a 32-bit unsigned decimal number written with digits
// only: no sign, no leading zeros (the PHC format forbids them).
func parseDecimal(s string) (uint32, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%w: bad number in argon2 parameters", ErrMalformed)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: number out of range in argon2 parameters", ErrMalformed)
	}
	return uint32(n), nil
}
