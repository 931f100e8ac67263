package auth

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidUsername(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"Alice.Smith", true},
		{"alice@example.org", true},
		{"a-b_c+tag=x", true},
		{"0", true},
		{"a.b.c", true},
		{"trailing.", true},
		{"josé", true},
		{"мария", true},
		{"ユーザー", true},
		{"हिन्दी", true}, // combining vowel signs are marks
		{strings.Repeat("a", MaxUsernameLength), true},

		{"", false},
		{strings.Repeat("a", MaxUsernameLength+1), false},
		{strings.Repeat("é", 128), false}, // 256 octets
		{".", false},
		{"..", false},
		{".hidden", false},
		{"a..b", false},
		{"a/b", false},
		{"/etc/passwd", false},
		{"../x", false},
		{`a\b`, false},
		{"a:b", false},
		{"a b", false},
		{"a\tb", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\x7fb", false},
		{"a\u0085b", false}, // C1 control (NEL)
		{"a\u00a0b", false}, // no-break space
		{"a\u2028b", false}, // line separator
		{"a\u202eb", false}, // right-to-left override
		{"a\u200bb", false}, // zero width space
		{"a\uff0fb", false}, // fullwidth solidus
		{"a\u2215b", false}, // division slash
		{"%u", false},
		{"{user}", false},
		{"a*b", false},
		{"a?b", false},
		{"a'b", false},
		{`a"b`, false},
		{"a$b", false},
		{"a;b", false},
		{"a|b", false},
		{"a~", false},
		{"\xff", false},
		{"a\xc3", false}, // truncated UTF-8
	}
	for _, tt := range tests {
		err := ValidUsername(tt.name)
		if tt.ok && err != nil {
			t.Errorf("ValidUsername(%q) = %v, want nil", tt.name, err)
		}
		if !tt.ok {
			if err == nil {
				t.Errorf("ValidUsername(%q) = nil, want an error", tt.name)
			} else if !errors.Is(err, ErrInvalidUsername) {
				t.Errorf("ValidUsername(%q) = %v, which does not wrap ErrInvalidUsername", tt.name, err)
			}
		}
	}
}

func TestValidUsernameErrorNamesTheProblem(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"a/b", `path separator '/' at offset 1`},
		{"ab:c", `':', the passwd-file field separator at offset 2`},
		{"a\x01", "control character U+0001 at offset 1"},
		{"x..y", `contains ".." at offset 1`},
		{"", "empty"},
	}
	for _, tt := range tests {
		err := ValidUsername(tt.name)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidUsername(%q) = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// FuzzValidUsername checks the property stores rely on: a name that passes
// is exactly one path element directly below the base directory.
func FuzzValidUsername(f *testing.F) {
	for _, seed := range []string{"alice", "a/b", "..", ".x", "a..b", "é", `a\b`, "a\x00", "%d"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidUsername(name) != nil {
			return
		}
		const base = "/base"
		joined := filepath.Join(base, name)
		if filepath.Dir(joined) != base || filepath.Base(joined) != name {
			t.Fatalf("valid name %q joins to %q, not one element below %s", name, joined, base)
		}
		if strings.ContainsAny(name, `/\:%{}`) || strings.ContainsRune(name, filepath.Separator) {
			t.Fatalf("valid name %q contains a separator or template character", name)
		}
		if !filepath.IsLocal(name) {
			t.Fatalf("valid name %q is not local", name)
		}
	})
}
