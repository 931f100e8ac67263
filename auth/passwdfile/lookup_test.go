package passwdfile

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

func TestLookupPasswordAndUser(t *testing.T) {
	t.Parallel()
	scram, err := scheme.HashWithParams("SCRAM-SHA-256", "pencil", cheap)
	if err != nil {
		t.Fatal(err)
	}
	argon := mustHash(t, "ARGON2ID", "pw")
	path := writeFile(t, "alice:{PLAIN}secret::::/home/alice::userdb_mail=/srv/mail/alice\n"+
		"bob:"+scram+"\n"+
		"carol:"+argon+":1000:1000::/home/carol\n"+
		"dave:\n"+ // no password: cannot log in
		"# erin:{PLAIN}commented out\n")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name       string
		wantStored string // "" with wantErr
		wantUser   auth.User
		wantErr    error
	}{
		{"alice", "{PLAIN}secret", auth.User{Name: "alice", Home: "/home/alice", Mail: "/srv/mail/alice"}, nil},
		{"bob", scram, auth.User{Name: "bob"}, nil},
		{"carol", argon, auth.User{Name: "carol", Home: "/home/carol"}, nil},
		{"dave", "", auth.User{}, auth.ErrFailed},
		{"erin", "", auth.User{}, auth.ErrFailed},
		{"# erin", "", auth.User{}, auth.ErrFailed},
		{"ALICE", "", auth.User{}, auth.ErrFailed}, // names are exact
		{"../alice", "", auth.User{}, auth.ErrFailed},
		{"", "", auth.User{}, auth.ErrFailed},
	}
	for _, tt := range tests {
		user, stored, err := f.LookupPassword(ctx, tt.name)
		if !errors.Is(err, tt.wantErr) || err == nil && (stored != tt.wantStored || *user != tt.wantUser) {
			t.Errorf("LookupPassword(%q) = %+v, %q, %v; want %+v, %q, %v", tt.name, user, stored, err, tt.wantUser, tt.wantStored, tt.wantErr)
		}
		if tt.wantErr == nil {
			if _, _, ok := scheme.ParseSCRAM(stored); ok != (tt.name == "bob") {
				t.Errorf("LookupPassword(%q): ParseSCRAM of the stored password = %v", tt.name, ok)
			}
		}
		user, err = f.LookupUser(ctx, tt.name)
		if !errors.Is(err, tt.wantErr) || err == nil && *user != tt.wantUser {
			t.Errorf("LookupUser(%q) = %+v, %v; want %+v, %v", tt.name, user, err, tt.wantUser, tt.wantErr)
		}
	}

	// The user returned is a copy: changing it does not change the file's.
	user, _ := f.LookupUser(ctx, "alice")
	user.Home = "/tmp"
	if again, _ := f.LookupUser(ctx, "alice"); again.Home != "/home/alice" {
		t.Error("LookupUser handed out the loaded record")
	}
}

func TestLookupUnavailableAndCanceled(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "alice:{PLAIN}secret\n")
	f, clock, _ := openWithClock(t, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clock.Advance(checkInterval)
	ctx := context.Background()
	if _, _, err := f.LookupPassword(ctx, "alice"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("LookupPassword with the file gone = %v, want ErrUnavailable", err)
	}
	if _, err := f.LookupUser(ctx, "alice"); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("LookupUser with the file gone = %v, want ErrUnavailable", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := f.LookupPassword(canceled, "alice"); !errors.Is(err, context.Canceled) {
		t.Errorf("LookupPassword(canceled) = %v", err)
	}
	if _, err := f.LookupUser(canceled, "alice"); !errors.Is(err, context.Canceled) {
		t.Errorf("LookupUser(canceled) = %v", err)
	}
}
