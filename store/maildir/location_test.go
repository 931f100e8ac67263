package maildir

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/store"
)

func TestNewValidatesLocation(t *testing.T) {
	for _, tmpl := range []string{
		"Maildir",            // relative
		"{user}/Maildir",     // relative after expansion
		"/var/mail/{nobody}", // unknown placeholder
		"/var/mail/{user",    // unmatched
		"/var/mail/user}",    // unmatched
		"/srv/{home}/x",      // {home} not at the start
		"{home}Maildir",      // no separator after {home}
		"mbox:~/mail",        // not a Maildir
		"mdbox:/var/mail/{user}",
		"maildir:",
	} {
		if _, err := New(Config{Location: tmpl, Hostname: "h"}); err == nil {
			t.Errorf("New(Location %q) succeeded, want an error", tmpl)
		}
	}
	if _, err := New(Config{Hostname: "h"}); err != nil {
		t.Errorf("New with the default location: %v", err)
	}
	if _, err := New(Config{Hostname: "two words"}); err == nil {
		t.Error("New accepted a host name with a space")
	}
}

func TestLocation(t *testing.T) {
	tests := []struct {
		tmpl string
		acct store.Account
		want string // "" = error
	}{
		{"", store.Account{Name: "alice", Home: "/home/alice"}, "/home/alice/Maildir"},
		{"", store.Account{Name: "alice", Home: "/home/alice/"}, "/home/alice/Maildir"},
		{"", store.Account{Name: "alice"}, ""}, // needs {home}
		{"", store.Account{Name: "alice", Home: "home/alice"}, ""},
		{"~/Mail", store.Account{Name: "alice", Home: "/home/alice"}, "/home/alice/Mail"},
		{"maildir:~/Maildir:LAYOUT=fs", store.Account{Name: "a", Home: "/h/a"}, "/h/a/Maildir"},
		{"/var/vmail/{domain}/{localpart}", store.Account{Name: "bob@example.org"}, "/var/vmail/example.org/bob"},
		{"/var/vmail/{domain}/{localpart}", store.Account{Name: "a@b@example.org"}, "/var/vmail/example.org/a@b"},
		{"/var/vmail/{domain}/{localpart}", store.Account{Name: "bob"}, ""}, // no domain: empty segment
		{"/var/vmail/{user}/Maildir", store.Account{Name: "bob@example.org"}, "/var/vmail/bob@example.org/Maildir"},
		{"/var/vmail/%d/%n", store.Account{Name: "bob@example.org"}, "/var/vmail/example.org/bob"},
		{"/var/vmail/u-{domain}", store.Account{Name: "bob"}, "/var/vmail/u-"},
		// The account's Mail field wins, Dovecot style.
		{"/unused/{user}", store.Account{Name: "c@d", Mail: "maildir:/var/mail/%d/%n"}, "/var/mail/d/c"},
		{"/unused/{user}", store.Account{Name: "c", Home: "/h/c", Mail: "maildir:~/Maildir:INDEX=/x"}, "/h/c/Maildir"},
		{"/unused/{user}", store.Account{Name: "c", Mail: "/srv/{user}/md"}, "/srv/c/md"},
		{"/unused/{user}", store.Account{Name: "c", Mail: "%h/Maildir", Home: "/h/c"}, "/h/c/Maildir"},
		{"/unused/{user}", store.Account{Name: "c", Mail: "/srv/100%%/%u"}, "/srv/100%/c"},
		{"/unused/{user}", store.Account{Name: "c", Mail: "/srv/%x"}, ""},
		{"/unused/{user}", store.Account{Name: "c", Mail: "relative/path"}, ""},
		{"/unused/{user}", store.Account{Name: "c", Mail: "mbox:/var/mail/c"}, ""},
	}
	for _, tc := range tests {
		s, err := New(Config{Location: tc.tmpl, Hostname: "h"})
		if err != nil {
			t.Fatalf("New(%q): %v", tc.tmpl, err)
		}
		got, err := s.maildropDir(tc.acct)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%q with %+v = %q, want an error", tc.tmpl, tc.acct, got)
		case tc.want != "" && err != nil:
			t.Errorf("%q with %+v: %v", tc.tmpl, tc.acct, err)
		case got != tc.want:
			t.Errorf("%q with %+v = %q, want %q", tc.tmpl, tc.acct, got, tc.want)
		}
	}
}

// User names are validated at login, but the path code must not depend on
// it: no name can lead outside the template's directory.
func TestLocationHostileNames(t *testing.T) {
	const top = "/srv/mail"
	templates := []string{
		top + "/{user}",
		top + "/{domain}/{localpart}",
		top + "/{domain}/{localpart}/Maildir",
		top + "/x{user}x/{localpart}.{domain}",
	}
	names := []string{
		"..", ".", "../..", "../../etc", "/etc/passwd", "a/../../b", "a/b",
		"..@example.org", "alice@..", "alice@.", "@", "@..", "..@..",
		"alice@example.org/../..", "alice\x00@example.org", `..\..\x`,
		"", "alice@", "@example.org", "%2e%2e", "~root", "{home}", "{user}",
	}
	for _, tmpl := range templates {
		s, err := New(Config{Location: tmpl, Hostname: "h"})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			dir, err := s.maildropDir(store.Account{Name: name, Home: "/home/x"})
			if err != nil {
				continue // refusing is fine
			}
			if !strings.HasPrefix(dir, top+"/") || dir != filepath.Clean(dir) {
				t.Errorf("%q with user %q gives %q, outside %s", tmpl, name, dir, top)
			}
			for seg := range strings.SplitSeq(dir, "/") {
				if seg == ".." {
					t.Errorf("%q with user %q gives %q", tmpl, name, dir)
				}
			}
		}
	}
}
