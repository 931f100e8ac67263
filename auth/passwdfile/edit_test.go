package passwdfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// readString returns a file's content.
func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkLogin asserts that name can log in with password.
func checkLogin(t *testing.T, path, name, password string) {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Authenticate(context.Background(), name, password); err != nil {
		t.Errorf("Authenticate(%s) after edit = %v", name, err)
	}
}

func TestAddCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := Add(path, "alice", "secret", "", "/home/alice"); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v, want 0600", info.Mode().Perm())
	}
	content := readString(t, path)
	if !strings.HasPrefix(content, "alice:{"+scheme.DefaultScheme+"}") || !strings.HasSuffix(content, "::::/home/alice\n") {
		t.Errorf("new file %q", content)
	}
	checkLogin(t, path, "alice", "secret")
	entries, err := List(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name != "alice" || entries[0].Scheme != scheme.DefaultScheme || entries[0].Home != "/home/alice" {
		t.Errorf("List = %+v", entries)
	}
}

// original is a file written by hand, with everything an edit must keep.
const original = "# mail users\n" +
	"\n" +
	"alice:{PLAIN}a:1000:1000:Alice:/home/alice::userdb_mail=maildir:~/Maildir quota=1G\n" +
	"  # indented comment with trailing space \n" +
	"bob:{PLAIN}b\n" +
	"carol:{PLAIN}c:::::  \n" +
	"weird:{PLAIN}w:x:y:z:/w:/bin/sh:a=1\tb=2"

func TestEditsKeepOtherLines(t *testing.T) {
	tests := []struct {
		name string
		edit func(path string) error
		want string
	}{
		{
			name: "add",
			edit: func(path string) error { return Add(path, "dave", "d", "PLAIN", "/home/dave") },
			want: original + "\ndave:{PLAIN}d::::/home/dave\n",
		},
		{
			name: "set password keeps extra fields",
			edit: func(path string) error { return SetPassword(path, "alice", "new", "PLAIN") },
			want: strings.Replace(original, "alice:{PLAIN}a:", "alice:{PLAIN}new:", 1),
		},
		{
			name: "set password of last line without newline",
			edit: func(path string) error { return SetPassword(path, "weird", "W", "CLEAR") },
			want: strings.Replace(original, "weird:{PLAIN}w:", "weird:{CLEAR}W:", 1),
		},
		{
			name: "delete",
			edit: func(path string) error { return Delete(path, "bob") },
			want: strings.Replace(original, "bob:{PLAIN}b\n", "", 1),
		},
		{
			name: "delete last line",
			edit: func(path string) error { return Delete(path, "weird") },
			want: strings.TrimSuffix(original, "weird:{PLAIN}w:x:y:z:/w:/bin/sh:a=1\tb=2"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, original)
			if err := tt.edit(path); err != nil {
				t.Fatal(err)
			}
			if got := readString(t, path); got != tt.want {
				t.Errorf("file after edit:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestEditsKeepCRLF(t *testing.T) {
	path := writeFile(t, "# users\r\nalice:{PLAIN}a\r\nbob:{PLAIN}b\r\n")
	if err := SetPassword(path, "alice", "A", "PLAIN"); err != nil {
		t.Fatal(err)
	}
	if err := Add(path, "carol", "c", "PLAIN", ""); err != nil {
		t.Fatal(err)
	}
	want := "# users\r\nalice:{PLAIN}A\r\nbob:{PLAIN}b\r\ncarol:{PLAIN}c\r\n"
	if got := readString(t, path); got != want {
		t.Errorf("file %q, want %q", got, want)
	}
}

func TestSetPasswordHashes(t *testing.T) {
	path := writeFile(t, "alice:{PLAIN}a::::/home/alice::mail=maildir:~/M\n")
	if err := SetPassword(path, "alice", "s3cret", "SSHA512"); err != nil {
		t.Fatal(err)
	}
	content := readString(t, path)
	if !strings.HasPrefix(content, "alice:{SSHA512}") || !strings.HasSuffix(content, "::::/home/alice::mail=maildir:~/M\n") {
		t.Errorf("file %q", content)
	}
	checkLogin(t, path, "alice", "s3cret")
	// A user line with no password field at all gets one.
	path = writeFile(t, "bob\n")
	if err := SetPassword(path, "bob", "pw", "PLAIN"); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path); got != "bob:{PLAIN}pw\n" {
		t.Errorf("file %q", got)
	}
}

func TestPlaintextWithSeparatorIsEncoded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	const password = "a:b\nc"
	if err := Add(path, "alice", password, "plain", ""); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path); got != "alice:{PLAIN.B64}YTpiCmM=\n" {
		t.Errorf("file %q", got)
	}
	checkLogin(t, path, "alice", password)
}

func TestEditErrors(t *testing.T) {
	path := writeFile(t, "alice:{PLAIN}a\ndup:{PLAIN}1\ndup:{PLAIN}2\n")
	before := readString(t, path)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"add existing", Add(path, "alice", "pw", "PLAIN", ""), ErrUserExists},
		{"add invalid name", Add(path, "../x", "pw", "PLAIN", ""), auth.ErrInvalidUsername},
		{"add relative home", Add(path, "bob", "pw", "PLAIN", "home/bob"), nil},
		{"add empty password", Add(path, "bob", "", "PLAIN", ""), nil},
		{"add unknown scheme", Add(path, "bob", "pw", "NOPE", ""), scheme.ErrUnknownScheme},
		{"add unsalted scheme", Add(path, "bob", "pw", "SHA256", ""), nil},
		{"set unknown user", SetPassword(path, "bob", "pw", "PLAIN"), ErrNoSuchUser},
		{"set duplicate user", SetPassword(path, "dup", "pw", "PLAIN"), errDuplicate},
		{"delete unknown user", Delete(path, "bob"), ErrNoSuchUser},
		{"delete invalid name", Delete(path, "a b"), auth.ErrInvalidUsername},
		{"set missing file", SetPassword(filepath.Join(t.TempDir(), "none"), "alice", "pw", "PLAIN"), os.ErrNotExist},
	}
	for _, tt := range tests {
		if tt.err == nil || tt.want != nil && !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if got := readString(t, path); got != before {
		t.Errorf("failed edits changed the file to %q", got)
	}
}

func TestEditKeepsMode(t *testing.T) {
	path := writeFile(t, "alice:{PLAIN}a\n")
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := Add(path, "bob", "b", "PLAIN", ""); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Errorf("mode after edit %v, want 0640", info.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".users.tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestEditThroughSymlink(t *testing.T) {
	target := writeFile(t, "alice:{PLAIN}a\n")
	link := filepath.Join(t.TempDir(), "users-link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Add(link, "bob", "b", "PLAIN", ""); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v, %v", info, err)
	}
	if got := readString(t, target); got != "alice:{PLAIN}a\nbob:{PLAIN}b\n" {
		t.Errorf("target %q", got)
	}
}

// TestConcurrentAddsAllLand fails without the lock: each Add would read the
// same old file and the last rename would win.
func TestConcurrentAddsAllLand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := Add(path, fmt.Sprintf("user%02d", i), "pw", "PLAIN", ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	entries, err := List(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Errorf("%d users after %d concurrent adds:\n%s", len(entries), n, readString(t, path))
	}
}

func TestListErrors(t *testing.T) {
	if _, err := List(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("List(missing) = %v", err)
	}
	path := writeFile(t, "ok:{PLAIN}x\nbad::::::\nbad:\n")
	if _, err := List(path); err == nil || !strings.HasPrefix(err.Error(), path+":3: ") {
		t.Errorf("List(duplicate) = %v", err)
	}
}
