package passwdfile

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// cheap keeps hashing fast in tests.
var cheap = scheme.Params{Argon2Memory: 64, Argon2Time: 1, Argon2Threads: 1, BcryptCost: 4, SHACryptRounds: 1000, SCRAMIterations: scheme.MinSCRAMIterations}

// mustHash hashes password with cheap parameters.
func mustHash(t *testing.T, schemeName, password string) string {
	t.Helper()
	stored, err := scheme.HashWithParams(schemeName, password, cheap)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// writeFile writes a passwd-file in a fresh directory and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeClock is a settable clock for the reload interval.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openWithClock opens path with a fake clock and a captured log.
func openWithClock(t *testing.T, path string) (*File, *fakeClock, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	f, err := Open(path, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	f.now = clock.Now
	f.checked = clock.Now()
	return f, clock, &logs
}

func TestAuthenticateEachScheme(t *testing.T) {
	var lines []string
	schemes := []string{"ARGON2ID", "ARGON2I", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "SCRAM-SHA-256", "SCRAM-SHA-1", "SSHA512", "SSHA256", "SSHA", "PLAIN", "CLEAR", "CLEARTEXT", "PLAIN.B64"}
	for i, s := range schemes {
		lines = append(lines, "user"+string(rune('a'+i))+":"+mustHash(t, s, "pw-"+s)+"::::/home/x::mail=maildir:~/Mail")
	}
	// Verification-only schemes, written by hand: "password" in each.
	lines = append(lines,
		"sha256:{SHA256}XohImNooBHFR0OVvjcYpJ3NgPQ1qq73WKhHvch0VQtg=",
		"sha256hex:{SHA256.HEX}5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
		"sha1:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
		"md5:{PLAIN-MD5}5f4dcc3b5aa765d61d8327deb882cf99",
		"crypt:$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
	)
	f, err := Open(writeFile(t, strings.Join(lines, "\n")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, s := range schemes {
		name := "user" + string(rune('a'+i))
		u, err := f.Authenticate(ctx, name, "pw-"+s)
		if err != nil {
			t.Errorf("%s (%s): Authenticate = %v", name, s, err)
			continue
		}
		if *u != (auth.User{Name: name, Home: "/home/x", Mail: "maildir:~/Mail"}) {
			t.Errorf("%s: user %+v", name, *u)
		}
		if _, err := f.Authenticate(ctx, name, "wrong"); err != auth.ErrFailed {
			t.Errorf("%s (%s): wrong password gives %v, want auth.ErrFailed", name, s, err)
		}
	}
	for _, name := range []string{"sha256", "sha256hex", "sha1", "md5"} {
		if _, err := f.Authenticate(ctx, name, "password"); err != nil {
			t.Errorf("%s: Authenticate = %v", name, err)
		}
	}
	if _, err := f.Authenticate(ctx, "crypt", "Hello world!"); err != nil {
		t.Errorf("crypt: Authenticate = %v", err)
	}
}

// TestUnknownUserLooksLikeWrongPassword pins that the error values are the
// same, and that an unknown user is checked against a hash as costly as a
// default one rather than answered at once.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	f, err := Open(writeFile(t, "alice:"+mustHash(t, "SSHA512", "right")+"\nnopw:\nemptyplain:{PLAIN}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct{ name, password string }{
		{"alice", "wrong"},
		{"alice", ""},
		{"bob", "right"},      // unknown
		{"../alice", "right"}, // invalid name
		{"nopw", ""},          // no password
		{"nopw", "x"},
		{"emptyplain", ""}, // "{PLAIN}" would match an empty password
	}
	for _, c := range cases {
		u, err := f.Authenticate(ctx, c.name, c.password)
		if u != nil || err != auth.ErrFailed {
			t.Errorf("Authenticate(%q, %q) = %v, %v; want nil, auth.ErrFailed", c.name, c.password, u, err)
		}
	}
	// Unknown users are checked against the hash of the scheme most
	// users have: here alice's, the only one.
	if db, _ := f.current(); db.standIn != f.db.users["alice"].password {
		t.Errorf("stand-in hash %q, want alice's", db.standIn)
	}
}

func TestAuthenticateCanceled(t *testing.T) {
	f, err := Open(writeFile(t, "alice:{PLAIN}pw\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Authenticate(ctx, "alice", "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Authenticate with canceled context = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Open(missing) = %v, want auth.ErrUnavailable", err)
	}
	path := writeFile(t, "alice:{PLAIN}pw\nbob:{NOPE}x\n")
	if _, err := Open(path); err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Errorf("Open(bad line 2) = %v, want an error starting %q", err, path+":2: ")
	}
}

func TestReload(t *testing.T) {
	path := writeFile(t, "alice:{PLAIN}old\n")
	f, clock, logs := openWithClock(t, path)
	ctx := context.Background()

	// Replace the file as Add and editors do.
	if err := SetPassword(path, "alice", "new", "PLAIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Authenticate(ctx, "alice", "old"); err != nil {
		t.Errorf("within the check interval the old password stops working: %v", err)
	}
	clock.Advance(checkInterval)
	if _, err := f.Authenticate(ctx, "alice", "new"); err != nil {
		t.Errorf("after the check interval the new password fails: %v", err)
	}
	if _, err := f.Authenticate(ctx, "alice", "old"); err != auth.ErrFailed {
		t.Errorf("after reload the old password gives %v", err)
	}

	// A change written in place (no new inode) is seen by its size.
	if err := os.WriteFile(path, []byte("alice:{PLAIN}newer\nbob:{PLAIN}b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(checkInterval)
	if _, ok := f.Lookup("bob"); !ok {
		t.Error("a user added in place is not found after the check interval")
	}

	// A broken version is logged once and the last good one kept.
	if err := os.WriteFile(path, []byte("alice:{PLAIN}newer\nbob:{NOPE}b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Advance(checkInterval)
		if _, err := f.Authenticate(ctx, "bob", "b"); err != nil {
			t.Errorf("a broken file stops the last good version: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "still using the previous version"); n != 1 {
		t.Errorf("broken file logged %d times, want once:\n%s", n, logs)
	}
	if err := f.Reload(); err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Errorf("Reload of a broken file = %v, want the path and line", err)
	}

	// A vanished file makes logins fail temporarily, not silently
	// succeed for users it no longer has.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock.Advance(checkInterval)
	if _, err := f.Authenticate(ctx, "bob", "b"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Authenticate with the file gone = %v, want auth.ErrUnavailable", err)
	}
	if _, ok := f.Lookup("bob"); ok {
		t.Error("Lookup with the file gone finds a user")
	}
	if err := os.WriteFile(path, []byte("carol:{PLAIN}c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(checkInterval)
	if _, err := f.Authenticate(ctx, "carol", "c"); err != nil {
		t.Errorf("Authenticate after the file came back = %v", err)
	}
}

func TestAPOP(t *testing.T) {
	// The example of RFC 1939 §7.
	const timestamp = "<1896.697170952@dbc.mtview.ca.us>"
	const digest = "c4c9334bac560ecc979e58001b3e22fb"
	f, err := Open(writeFile(t, strings.Join([]string{
		"mrose:{PLAIN}tanstaaf",
		"b64:{PLAIN.B64}dGFuc3RhYWY=",
		"hashed:" + mustHash(t, "SSHA512", "tanstaaf"),
		"nopw:",
		"empty:{PLAIN}",
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"mrose", "b64"} {
		u, err := f.AuthenticateAPOP(ctx, name, timestamp, digest)
		if err != nil || u.Name != name {
			t.Errorf("AuthenticateAPOP(%s) = %v, %v", name, u, err)
		}
	}
	if _, err := f.AuthenticateAPOP(ctx, "mrose", timestamp, strings.ToUpper(digest)); err != nil {
		t.Errorf("upper-case digest refused: %v", err)
	}
	for _, c := range []struct{ name, timestamp, digest string }{
		{"mrose", timestamp, "c4c9334bac560ecc979e58001b3e22fc"},
		{"mrose", "<other@host>", digest},
		{"mrose", timestamp, ""},
		{"hashed", timestamp, digest},
		{"unknown", timestamp, digest},
		{"nopw", timestamp, digest},
		{"empty", timestamp, digest},
		{"bad/name", timestamp, digest},
	} {
		if u, err := f.AuthenticateAPOP(ctx, c.name, c.timestamp, c.digest); u != nil || err != auth.ErrFailed {
			t.Errorf("AuthenticateAPOP(%q, %q, %q) = %v, %v; want auth.ErrFailed", c.name, c.timestamp, c.digest, u, err)
		}
	}
}

func TestLookup(t *testing.T) {
	f, err := Open(writeFile(t, "alice:{PLAIN}pw::::/home/alice::userdb_mail=maildir:/var/mail/alice\n"))
	if err != nil {
		t.Fatal(err)
	}
	u, ok := f.Lookup("alice")
	if !ok || *u != (auth.User{Name: "alice", Home: "/home/alice", Mail: "maildir:/var/mail/alice"}) {
		t.Errorf("Lookup(alice) = %+v, %v", u, ok)
	}
	u.Home = "/tmp" // must not change the database
	if u2, _ := f.Lookup("alice"); u2.Home != "/home/alice" {
		t.Error("changing a returned user changed the database")
	}
	for _, name := range []string{"bob", "", "..", "Alice"} {
		if _, ok := f.Lookup(name); ok {
			t.Errorf("Lookup(%q) found a user", name)
		}
	}
}

func TestConcurrentAuthenticateAndReload(t *testing.T) {
	path := writeFile(t, "alice:{PLAIN}pw\n")
	f, clock, _ := openWithClock(t, path)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 50 {
				if i == 0 {
					clock.Advance(checkInterval)
				}
				if _, err := f.Authenticate(context.Background(), "alice", "pw"); err != nil {
					t.Errorf("Authenticate = %v", err)
					return
				}
			}
		})
	}
	for i := range 5 {
		if err := Add(path, "user"+string(rune('0'+i)), "pw", "PLAIN", ""); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}
