package pop3

import (
	"encoding/base64"
	"errors"
)

// ErrBadBase64 is returned by DecodeSASL for anything but canonical
// base64.
var ErrBadBase64 = errors.New("invalid base64 in SASL response")

// DecodeSASL decodes one SASL response line of RFC 5034 §4: canonical
// base64 with padding, no whitespace, and "=" standing for an empty
// response (in an initial response). A bad character, missing or
// misplaced padding, or non-zero pad bits are errors: a lenient decoder
// would let two different lines mean the same response.
func DecodeSASL(line string) ([]byte, error) {
	if line == "=" {
		return []byte{}, nil
	}
	if line == "" || len(line)%4 != 0 {
		return nil, ErrBadBase64
	}
	for i := 0; i < len(line); i++ {
		// base64.StdEncoding skips CR and LF; refuse them here.
		if line[i] == '\r' || line[i] == '\n' {
			return nil, ErrBadBase64
		}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(line)
	if err != nil {
		return nil, ErrBadBase64
	}
	return b, nil
}

// EncodeSASL encodes a challenge for a "+ " continuation line. An empty
// challenge is the empty string.
func EncodeSASL(challenge []byte) string {
	return base64.StdEncoding.EncodeToString(challenge)
}
