package pop3

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

func TestDecodeSASL(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"=", "", false},
		{"AGFsaWNlAHNlY3JldA==", "\x00alice\x00secret", false},
		{"YQ==", "a", false},
		{"YWI=", "ab", false},
		{"YWJj", "abc", false},
		{"", "", true},
		{"YQ", "", true},    // missing padding
		{"YQ=", "", true},   // short padding
		{"Y===", "", true},  // misplaced padding
		{"YR==", "", true},  // non-zero pad bits
		{"YW Jj", "", true}, // space
		{"YWJj\r\n", "", true},
		{"YW\nJj", "", true},
		{"YWJ*", "", true},
		{"==", "", true},
		{"YQ==YQ==", "", true},
	}
	for _, tt := range tests {
		got, err := DecodeSASL(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("DecodeSASL(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadBase64) {
			t.Errorf("DecodeSASL(%q) error %v is not ErrBadBase64", tt.in, err)
		}
		if err == nil && string(got) != tt.want {
			t.Errorf("DecodeSASL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzDecodeSASL: whatever decodes must encode back to the same line, so
// that one response has exactly one spelling.
func FuzzDecodeSASL(f *testing.F) {
	for _, s := range []string{"=", "YQ==", "AGFsaWNlAHNlY3JldA==", "YR==", "Y==="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		b, err := DecodeSASL(line)
		if err != nil {
			return
		}
		if line == "=" {
			if len(b) != 0 {
				t.Fatalf("= decoded to %q", b)
			}
			return
		}
		if again := EncodeSASL(b); again != line {
			t.Fatalf("%q decoded to %q, which encodes as %q", line, b, again)
		}
		if !bytes.Equal(b, mustStd(line)) {
			t.Fatal("disagrees with encoding/base64")
		}
	})
}

func mustStd(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}
