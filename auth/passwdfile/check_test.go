package passwdfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	content := "# users\nalice:{PLAIN}pw::::/home/alice\nbad line without password scheme:{NOPE}x\nbob:{PLAIN}pw\n\nalice:{PLAIN}again\ncarol:{PLAIN}pw::::relative\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	users, problems, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" {
		t.Errorf("users %+v", users)
	}
	var lines []string
	for _, p := range problems {
		lines = append(lines, p.Error())
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{path + ":3:", path + ":6: user defined more than once: alice, first on line 2", path + ":7: home of carol"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if len(problems) != 3 || strings.Contains(got, "again") {
		t.Errorf("%d problems (a password quoted?):\n%s", len(problems), got)
	}
	if _, _, err := Check(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("Check of a missing file succeeded")
	}
}
