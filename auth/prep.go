package auth

import (
	"errors"
	"unicode/utf8"

	"github.com/xdg-go/stringprep"
)

// ErrBadString is returned by Prepare for a name or password that is not
// valid UTF-8 or that SASLprep prohibits (control characters, unassigned
// code points, mixed-direction text).
var ErrBadString = errors.New("not a valid UTF-8 name or password")

// Prepare applies SASLprep (RFC 4013) to a user name or password, as RFC
// 6856 §2.1 and the SASL mechanisms ask: equivalent spellings of the same
// text (composed or decomposed accents, non-ASCII spaces) become one.
// ASCII text without control characters comes back unchanged, so
// passwords stored before stay valid. Passwords are hashed in prepared
// form (postoffice user add), so the two sides agree.
func Prepare(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", ErrBadString
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == 0x7f {
				return "", ErrBadString
			}
		}
		return s, nil // SASLprep maps nothing in printable ASCII
	}
	out, err := stringprep.SASLprep.Prepare(s)
	if err != nil || out == "" {
		return "", ErrBadString
	}
	return out, nil
}
