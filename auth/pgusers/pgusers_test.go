package pgusers

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/auth/scheme"
	"github.com/postoffice-mail/postoffice/internal/pgtest"
	"github.com/postoffice-mail/postoffice/store/postgres"
)

var cluster = pgtest.New()

func TestMain(m *testing.M) {
	// The stand-in hash for unknown users, with test costs: the default
	// Argon2id costs a second or more per check under the race detector.
	os.Exit(cluster.Run(m))
}

// newDB returns a user database on a fresh, migrated database.
func newDB(t *testing.T) *DB {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{DSN: cluster.Database(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	db := New(s.Pool(), time.Second, nil)
	db.standIn = cheapStandIn
	return db
}

// cheapStandIn is the stand-in hash for unknown users with test costs:
// the default Argon2id costs a second or more per check under the race
// detector.
var cheapStandIn = sync.OnceValues(func() (string, error) {
	return scheme.HashWithParams(scheme.DefaultScheme, "not a password", cheap)
})

// cheap are the cost parameters of the test hashes.
var cheap = scheme.Params{Argon2Memory: 64, Argon2Time: 1, Argon2Threads: 1, BcryptCost: 4, SHACryptRounds: 1000, SCRAMIterations: 4096}

// users are stored in every scheme the passwd-file reads.
var users = []struct{ name, scheme, password string }{
	{"argon", "ARGON2ID", "pa ss 1"},
	{"sha512crypt", "SHA512-CRYPT", "pass2"},
	{"bcrypt", "BLF-CRYPT", "pass3"},
	{"ssha512", "SSHA512", "pass4"},
	{"scram", "SCRAM-SHA-256", "pass5"},
	{"plain", "PLAIN", "apop-secret"},
}

// The same users, in a passwd-file and in PostgreSQL, get the same
// answers from both databases for every check the server makes.
func TestSameAnswersAsPasswdFile(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	path := filepath.Join(t.TempDir(), "passwd")
	var lines string
	for _, u := range users {
		stored, err := scheme.HashWithParams(u.scheme, u.password, cheap)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Put(t.Context(), u.name, stored, "/home/"+u.name, ""); err != nil {
			t.Fatal(err)
		}
		lines += u.name + ":" + stored + "::::/home/" + u.name + "::\n"
	}
	if err := db.Put(t.Context(), "nopassword", "", "/home/x", "maildir:/var/mail/x"); err != nil {
		t.Fatal(err)
	}
	lines += "nopassword:::::/home/x::userdb_mail=maildir:/var/mail/x\n"
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := passwdfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	type backend interface {
		auth.Authenticator
		auth.APOPAuthenticator
		auth.PasswordLookup
		auth.UserLookup
	}
	ctx := t.Context()
	stamp := "<1.2@example.org>"
	digest := func(secret string) string { s := md5.Sum([]byte(stamp + secret)); return hex.EncodeToString(s[:]) }
	answers := func(b backend) []string {
		var out []string
		note := func(u *auth.User, err error) {
			switch {
			case errors.Is(err, auth.ErrFailed):
				out = append(out, "failed")
			case err != nil:
				out = append(out, "error "+err.Error())
			default:
				out = append(out, "ok "+u.Name+" "+u.Home)
			}
		}
		for _, u := range users {
			note(b.Authenticate(ctx, u.name, u.password))
			note(b.Authenticate(ctx, u.name, u.password+"x"))
			note(b.Authenticate(ctx, u.name, ""))
			note(b.AuthenticateAPOP(ctx, u.name, stamp, digest(u.password)))
			pu, stored, err := b.LookupPassword(ctx, u.name)
			note(pu, err)
			if err == nil {
				if ok, _ := scheme.Verify(stored, u.password); !ok {
					out = append(out, "stored password does not verify")
				}
			}
			note(b.LookupUser(ctx, u.name))
		}
		for _, name := range []string{"nobody-here", "nopassword", "../etc"} {
			note(b.Authenticate(ctx, name, "x"))
			note(b.AuthenticateAPOP(ctx, name, stamp, digest("")))
			pu, _, err := b.LookupPassword(ctx, name)
			note(pu, err)
			note(b.LookupUser(ctx, name))
		}
		return out
	}
	want, got := answers(file), answers(db)
	if len(got) != len(want) {
		t.Fatalf("got %d answers, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("answer %d: postgres says %q, passwd-file %q", i, got[i], want[i])
		}
	}
}

// Editing: Add refuses duplicates and bad names, SetPassword and Delete
// need the user, List shows schemes but no hashes.
func TestEdit(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := t.Context()
	if err := db.Add(ctx, "alice", "secret", "SSHA512", "/home/alice"); err != nil {
		t.Fatal(err)
	}
	if err := db.Add(ctx, "alice", "x", "SSHA512", ""); !errors.Is(err, ErrExists) {
		t.Errorf("second Add: %v, want ErrExists", err)
	}
	if err := db.Add(ctx, "../x", "x", "SSHA512", ""); !errors.Is(err, auth.ErrInvalidUsername) {
		t.Errorf("Add of a bad name: %v", err)
	}
	if err := db.Put(ctx, "bob", "{NOSUCH}x", "", ""); err == nil {
		t.Error("Put with an unknown scheme succeeded")
	}
	if err := db.SetPassword(ctx, "alice", "new", "SSHA512"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, "alice", "new"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	if err := db.SetPassword(ctx, "nobody", "new", "SSHA512"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword of nobody: %v", err)
	}
	list, err := db.List(ctx)
	if err != nil || len(list) != 1 || list[0].Scheme != "SSHA512" || list[0].Home != "/home/alice" {
		t.Errorf("List = %+v, %v", list, err)
	}
	if err := db.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
}

// A database that cannot be reached is "try later" (auth.ErrUnavailable),
// never "wrong password", and answers within the timeout.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "host="+t.TempDir()+" user=postgres dbname=x connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db := New(pool, 500*time.Millisecond, nil)
	start := time.Now()
	if _, err := db.Authenticate(t.Context(), "alice", "x"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("Authenticate: %v, want ErrUnavailable", err)
	}
	if _, err := db.LookupUser(t.Context(), "alice"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("LookupUser: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
