package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it returns
// is consistent: a configuration passes validation, and an error is made
// of *Error values that name the file.
func FuzzParse(f *testing.F) {
	if example, err := os.ReadFile("../postoffice.example.toml"); err == nil {
		f.Add(example)
	}
	for _, seed := range []string{
		"",
		withCert,
		withCert + "[limits]\nidle_timeout = \"5m\"\n",
		withCert + "limits = { idle_timeout = 600, max_connections = \"x\" }\n",
		"[pop3]\nlisten = [\n  \":110\",\n  [1, 2],\n  {a = 1},\n]\nexpire = 0x10\n",
		"[[pop3]]\nlisten = 1\n[pop3.expire]\n[maildir]\nlocation = \"{home}{user}{\"\n",
		"a.b.c = 1\n'quoted.key' = \"v\"\n\"limits\".\"idle_timeout\" = \"10m\"\n",
		"[server]\r\nhostname = \"\"\"\nmulti\nline\"\"\"\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err == nil {
			if problems := validate(c); len(problems) > 0 {
				t.Fatalf("Parse returned a configuration that fails validation: %v", problems)
			}
			return
		}
		for _, e := range flatten(err) {
			var cerr *Error
			if !errors.As(e, &cerr) || cerr.File != "fuzz.toml" {
				t.Fatalf("problem %v (%T) is not an *Error naming the file", e, e)
			}
		}
	})
}

// flatten returns the problems joined in err.
func flatten(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	return []error{err}
}
