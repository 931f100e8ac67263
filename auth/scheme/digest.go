package scheme

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// encoding is how a digest or plaintext scheme writes its bytes, chosen by
// Dovecot's scheme-name suffix.
type encoding int

const (
	// encDefault is no suffix: the scheme's own convention applies.
	encDefault encoding = iota
	// encBase64 is the .B64 (or .BASE64) suffix.
	encBase64
	// encHex is the .HEX suffix.
	encHex
)

// suffixes maps the upper-cased suffixes Dovecot accepts to encodings.
var suffixes = map[string]encoding{
	"B64":    encBase64,
	"BASE64": encBase64,
	"HEX":    encHex,
}

// suffix returns the scheme-name suffix that selects e.
func (e encoding) suffix() string {
	switch e {
	case encBase64:
		return ".B64"
	case encHex:
		return ".HEX"
	}
	return ""
}

// decode returns the bytes data encodes; with encDefault, data itself.
func (e encoding) decode(data string) ([]byte, error) {
	switch e {
	case encBase64:
		return decodeBase64(data)
	case encHex:
		b, err := hex.DecodeString(data)
		if err != nil {
			return nil, fmt.Errorf("%w: invalid hex", ErrMalformed)
		}
		return b, nil
	}
	return []byte(data), nil
}

// encode is the inverse of decode. Base64 is written padded, as Dovecot
// writes it.
func (e encoding) encode(raw []byte) string {
	switch e {
	case encBase64:
		return base64.StdEncoding.EncodeToString(raw)
	case encHex:
		return hex.EncodeToString(raw)
	}
	return string(raw)
}

// decodeBase64 accepts standard base64 with or without padding, since
// hand-made entries often lack it and Dovecot does not insist on it.
func decodeBase64(data string) ([]byte, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(data, "="))
	if err != nil {
		return nil, fmt.Errorf("%w: invalid base64", ErrMalformed)
	}
	return b, nil
}

// digestFunc describes one hash function.
type digestFunc struct {
	new  func() hash.Hash
	size int
}

var (
	md5Digest    = digestFunc{md5.New, md5.Size}
	sha1Digest   = digestFunc{sha1.New, sha1.Size}
	sha256Digest = digestFunc{sha256.New, sha256.Size}
	sha512Digest = digestFunc{sha512.New, sha512.Size}
)

// sum returns the digest of the concatenated parts.
func (d digestFunc) sum(parts ...[]byte) []byte {
	h := d.new()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// digestScheme is an unsalted digest. It is accepted for verification
// only: without a salt, equal passwords have equal hashes and precomputed
// tables apply, so nothing new should be stored that way.
func digestScheme(name string, d digestFunc, defaultEnc encoding) *scheme {
	return &scheme{
		name:      name,
		encodable: true,
		parse: func(data string, enc encoding, _ *limits) (matcher, error) {
			want, err := decodeDigest(data, enc, defaultEnc, d.size)
			if err != nil {
				return nil, err
			}
			return func(password []byte) bool {
				return subtle.ConstantTimeCompare(d.sum(password), want) == 1
			}, nil
		},
	}
}

// decodeDigest decodes a digest of a known size. Without a suffix the
// encoding is recognised by length, as Dovecot does: twice the size in hex
// digits is hex, anything else is tried as the scheme's default.
func decodeDigest(data string, enc, defaultEnc encoding, size int) ([]byte, error) {
	if enc == encDefault {
		enc = defaultEnc
		if len(data) == 2*size && isHex(data) {
			enc = encHex
		} else if len(data) == base64.StdEncoding.EncodedLen(size) || len(data) == base64.RawStdEncoding.EncodedLen(size) {
			enc = encBase64
		}
	}
	raw, err := enc.decode(data)
	if err != nil {
		return nil, err
	}
	if len(raw) != size {
		return nil, fmt.Errorf("%w: digest is %d bytes, want %d", ErrMalformed, len(raw), size)
	}
	return raw, nil
}

// isHex reports whether s consists of hex digits only.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// saltLength is the salt size of new salted digests. Dovecot writes shorter
// salts, but verifies any length, as this package does.
const saltLength = 16

// saltedScheme is digest(password || salt), stored as digest || salt.
func saltedScheme(name string, d digestFunc) *scheme {
	return &scheme{
		name:      name,
		encodable: true,
		parse: func(data string, enc encoding, _ *limits) (matcher, error) {
			if enc == encDefault {
				enc = encBase64
			}
			raw, err := enc.decode(data)
			if err != nil {
				return nil, err
			}
			// Dovecot refuses an empty salt too: it would be the
			// unsalted scheme under a misleading name.
			if len(raw) <= d.size {
				return nil, fmt.Errorf("%w: %d bytes, want a %d-byte digest and a salt", ErrMalformed, len(raw), d.size)
			}
			want, salt := raw[:d.size], raw[d.size:]
			return func(password []byte) bool {
				return subtle.ConstantTimeCompare(d.sum(password, salt), want) == 1
			}, nil
		},
		hash: func(password []byte, enc encoding, _ *Params) (string, error) {
			if enc == encDefault {
				enc = encBase64
			}
			salt := make([]byte, saltLength)
			if _, err := rand.Read(salt); err != nil {
				return "", fmt.Errorf("read salt: %w", err)
			}
			return enc.encode(append(d.sum(password, salt), salt...)), nil
		},
	}
}
