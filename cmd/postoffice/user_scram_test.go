package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// TestUserAddSCRAM checks that `user add -scheme SCRAM-SHA-256` stores
// credentials the SASL SCRAM mechanism can read and USER/PASS can check,
// and that the configuration's default_scheme may name SCRAM too.
func TestUserAddSCRAM(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if _, stderr, code := runCmd(t, "pencil\n", "user", "add", "-passwd-file", passwd, "-scheme", "SCRAM-SHA-256", "alice"); code != exitOK {
		t.Fatalf("add -scheme SCRAM-SHA-256: exit %d: %s", code, stderr)
	}
	conf := filepath.Join(dir, "postoffice.toml")
	doc := "pop3.listen_tls = []\n[users]\npasswd_file = \"passwd\"\ndefault_scheme = \"SCRAM-SHA-1\"\n"
	if err := os.WriteFile(conf, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCmd(t, "pencil\n", "user", "add", "-config", conf, "bob"); code != exitOK {
		t.Fatalf("add with default_scheme SCRAM-SHA-1: exit %d: %s", code, stderr)
	}
	data, err := os.ReadFile(passwd)
	if err != nil {
		t.Fatal(err)
	}
	users, err := passwdfile.Open(passwd)
	if err != nil {
		t.Fatal(err)
	}
	for name, mech := range map[string]string{"alice": "SCRAM-SHA-256", "bob": "SCRAM-SHA-1"} {
		if _, err := users.Authenticate(t.Context(), name, "pencil"); err != nil {
			t.Errorf("%s: password rejected: %v", name, err)
		}
		_, stored, err := users.LookupPassword(t.Context(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, cred, ok := scheme.ParseSCRAM(stored); !ok || got != mech || cred.Iterations != scheme.DefaultSCRAMIterations {
			t.Errorf("%s: ParseSCRAM = %q, %d, %v; want %s with the default iteration count\n%s", name, got, cred.Iterations, ok, mech, data)
		}
	}
	if !strings.Contains(string(data), "alice:{SCRAM-SHA-256}") {
		t.Errorf("passwd-file:\n%s", data)
	}
}
