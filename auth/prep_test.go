package auth

import (
	"errors"
	"testing"
)

func TestPrepare(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"password", "password", false},
		{"pass word!", "pass word!", false},
		{"caf\u00e9", "caf\u00e9", false},  // composed é
		{"cafe\u0301", "caf\u00e9", false}, // decomposed é becomes composed
		{"a\u00a0b", "a b", false},         // non-ASCII space maps to space
		{"I\u00adX", "IX", false},          // soft hyphen maps to nothing (RFC 4013 §3)
		{"\u2168", "IX", false},            // Roman numeral nine, NFKC
		{"tab\there", "", true},            // control character
		{"\x07", "", true},
		{"bad\xffutf8", "", true},
		{"\u00ad", "", true},       // maps to empty
		{"\u0627\u0031", "", true}, // RandALCat then L/EN: bidi rule
	}
	for _, tt := range tests {
		got, err := Prepare(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("Prepare(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrBadString) {
			t.Errorf("Prepare(%q): error %v is not ErrBadString", tt.in, err)
		}
	}
}

func FuzzPrepare(f *testing.F) {
	for _, s := range []string{"pw", "cafe\u0301", "\xff", "a\u00a0b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Prepare(s)
		if err != nil {
			return
		}
		// Preparing is idempotent.
		again, err := Prepare(out)
		if err != nil || again != out {
			t.Fatalf("Prepare(%q) = %q, but Prepare(%q) = %q, %v", s, out, out, again, err)
		}
	})
}
