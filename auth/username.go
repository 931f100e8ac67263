package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxUsernameLength is the longest user name ValidUsername accepts, in
// octets. It matches the usual limit on a file name component (NAME_MAX),
// so a name always fits in one path element of a maildrop location.
const MaxUsernameLength = 255

// ErrInvalidUsername is wrapped by every error ValidUsername returns, so
// callers can tell a refused name from other failures with errors.Is.
var ErrInvalidUsername = errors.New("invalid user name")

// ValidUsername reports whether name may be used as a login name, and why
// not. It is the single rule that keeps a user name from ever naming a path
// outside its maildrop, or from breaking the line-based files and templates
// it is written into, so every user database and store relies on it.
//
// A valid name is 1 to MaxUsernameLength octets of valid UTF-8 made of
// letters, digits, marks and the ASCII characters '@', '.', '-', '_', '+'
// and '='. It does not start with '.' and contains no "..". Everything
// else is refused, in particular control characters, white space, the path
// separators '/' and '\', the passwd-file separator ':', and the template
// characters '%', '{' and '}'.
//
// The rule is an allow-list on purpose: a character nobody thought about
// (a Unicode slash look-alike, a bidirectional override) is refused rather
// than let through.
func ValidUsername(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidUsername)
	}
	if len(name) > MaxUsernameLength {
		return fmt.Errorf("%w: %d octets long, more than %d", ErrInvalidUsername, len(name), MaxUsernameLength)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidUsername)
	}
	// "." and ".." are covered by the two rules below, which also stop a
	// name from being a hidden file or climbing out of a directory
	// once a store joins it with a sub-path ("a/../..").
	if name[0] == '.' {
		return fmt.Errorf("%w: starts with '.'", ErrInvalidUsername)
	}
	if i := strings.Index(name, ".."); i >= 0 {
		return fmt.Errorf("%w: contains \"..\" at offset %d", ErrInvalidUsername, i)
	}
	for i, r := range name {
		if reason := refuseRune(r); reason != "" {
			return fmt.Errorf("%w: %s at offset %d", ErrInvalidUsername, reason, i)
		}
	}
	return nil
}

// refuseRune returns why r may not appear in a user name, or "" if it may.
// The explicit cases exist only to give a precise message; the final
// allow-list decides.
func refuseRune(r rune) string {
	switch {
	case r == 0:
		return "contains NUL"
	case unicode.IsControl(r):
		return fmt.Sprintf("contains control character %U", r)
	case unicode.IsSpace(r):
		return fmt.Sprintf("contains white space %U", r)
	case r == '/' || r == '\\':
		return fmt.Sprintf("contains path separator %q", r)
	case r == ':':
		return "contains ':', the passwd-file field separator"
	case r == '%' || r == '{' || r == '}':
		return fmt.Sprintf("contains template character %q", r)
	}
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return ""
		}
		if strings.ContainsRune("@.-_+=", r) {
			return ""
		}
		return fmt.Sprintf("contains %q", r)
	}
	// Beyond ASCII only letters, digits and the combining marks some
	// scripts need to spell a name are allowed; symbols, punctuation
	// (such as U+FF0F FULLWIDTH SOLIDUS) and invisible format characters
	// are not.
	if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) {
		return ""
	}
	return fmt.Sprintf("contains %U, which is not a letter or digit", r)
}
