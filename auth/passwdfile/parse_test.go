package passwdfile

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want *Entry // nil: ignored line
	}{
		{"", nil},
		{"   ", nil},
		{"\r", nil},
		{"# comment: with colons", nil},
		{"  # indented comment", nil},
		{"alice", &Entry{Name: "alice"}},
		{"alice:", &Entry{Name: "alice"}},
		{"alice:{PLAIN}pw", &Entry{Name: "alice", Scheme: "PLAIN"}},
		{"alice:{PLAIN}pw\r", &Entry{Name: "alice", Scheme: "PLAIN"}},
		{"alice:{plain}pw:1000:1000", &Entry{Name: "alice", Scheme: "PLAIN", UID: "1000", GID: "1000"}},
		// The example from Dovecot's passwd-file documentation.
		{"user:{plain}password:1000:1000::/home/user::userdb_mail=maildir:~/Maildir allow_nets=192.168.0.0/24",
			&Entry{Name: "user", Scheme: "PLAIN", UID: "1000", GID: "1000", Home: "/home/user",
				Mail: "maildir:~/Maildir", Extra: []string{"userdb_mail=maildir:~/Maildir", "allow_nets=192.168.0.0/24"}}},
		{"bob@example.org:{SHA256}XohImNooBHFR0OVvjcYpJ3NgPQ1qq73WKhHvch0VQtg=:vmail:vmail:Bob Smith:/srv/mail/bob:/bin/false:mail=mbox:~/mail nopassword=y",
			&Entry{Name: "bob@example.org", Scheme: "SHA256", UID: "vmail", GID: "vmail", Gecos: "Bob Smith",
				Home: "/srv/mail/bob", Shell: "/bin/false", Mail: "mbox:~/mail", Extra: []string{"mail=mbox:~/mail", "nopassword=y"}}},
		// A per-user RFC 2449 LOGIN-DELAY, in seconds.
		{"carol:{PLAIN}pw::::::userdb_login_delay=900",
			&Entry{Name: "carol", Scheme: "PLAIN", LoginDelay: 15 * time.Minute, Extra: []string{"userdb_login_delay=900"}}},
		// home and userdb_home override the column; the last one wins.
		{"carol:::::/home/a::home=/home/b userdb_home=/home/c",
			&Entry{Name: "carol", Home: "/home/c", Extra: []string{"home=/home/b", "userdb_home=/home/c"}}},
		{"dave:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1::::::\tquota_rule=*:storage=1G\t",
			&Entry{Name: "dave", Scheme: "CRYPT", Extra: []string{"quota_rule=*:storage=1G"}}},
	}
	for _, tt := range tests {
		r, err := parseLine(tt.line)
		if err != nil {
			t.Errorf("parseLine(%q) = %v", tt.line, err)
			continue
		}
		if tt.want == nil {
			if r != nil {
				t.Errorf("parseLine(%q) = %+v, want an ignored line", tt.line, r.Entry)
			}
			continue
		}
		if r == nil {
			t.Errorf("parseLine(%q) ignored the line", tt.line)
			continue
		}
		if !entriesEqual(r.Entry, *tt.want) {
			t.Errorf("parseLine(%q) =\n %+v, want\n %+v", tt.line, r.Entry, *tt.want)
		}
	}
}

func entriesEqual(a, b Entry) bool {
	return a.Name == b.Name && a.Scheme == b.Scheme && a.UID == b.UID && a.GID == b.GID &&
		a.Gecos == b.Gecos && a.Home == b.Home && a.Shell == b.Shell && a.Mail == b.Mail &&
		slices.Equal(a.Extra, b.Extra)
}

func TestParseLineErrors(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{":{PLAIN}pw", "invalid user name"},
		{" alice:{PLAIN}pw", "invalid user name"},
		{"../etc:{PLAIN}pw", "invalid user name"},
		{"alice:{NOPE}secret-value", "unknown password scheme"},
		{"alice:{SHA256}short", "malformed stored password"},
		{"alice:plaintext-without-scheme", "unknown password scheme"},
		{"alice:{PLAIN}pw::::relative/home", "not an absolute path"},
		{"alice:{PLAIN}pw::::/home/alice::home=relative", "not an absolute path"},
		{"alice:{PLAIN}pw::::::login_delay=15m", "login_delay of alice"},
		{"alice:{PLAIN}pw::::::login_delay=-1", "login_delay of alice"},
	}
	for _, tt := range tests {
		_, err := parseLine(tt.line)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseLine(%q) = %v, want an error containing %q", tt.line, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-value") {
			t.Errorf("parseLine(%q) error %q quotes the password", tt.line, err)
		}
	}
}

func TestParseFile(t *testing.T) {
	data := "# users\r\nalice:{PLAIN}a\r\n\r\nbob:{PLAIN}b\nlast:{PLAIN}c"
	db, err := parse("users", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range db.order {
		names = append(names, r.Name)
	}
	if want := []string{"alice", "bob", "last"}; !slices.Equal(names, want) {
		t.Errorf("users %v, want %v", names, want)
	}
	if r := db.lookup("alice"); r == nil || r.plaintext != "a" {
		t.Errorf("lookup(alice) = %+v", r)
	}
}

func TestParseFileErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		data, want string
	}{
		{"alice:{PLAIN}a\n# ok\nbad name:{PLAIN}b\n", "users:3: invalid user name"},
		{"alice:{PLAIN}a\nalice:{PLAIN}b\n", "users:2: user defined more than once: alice, first on line 1"},
	}
	for _, tt := range tests {
		_, err := parse("users", []byte(tt.data))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("parse(%q) = %v, want %q", tt.data, err, tt.want)
		}
	}
	_, err := parse("users", []byte("x y:"))
	if !errors.Is(err, auth.ErrInvalidUsername) {
		t.Errorf("parse error %v does not wrap auth.ErrInvalidUsername", err)
	}
}

func TestSplitLinesRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a", "a\n", "a\r\nb", "\n\n", "a\nb\n"} {
		if got := strings.Join(splitLines(s), ""); got != s {
			t.Errorf("splitLines(%q) joins to %q", s, got)
		}
	}
}

// FuzzParseLine checks that no line makes the parser panic, and that what
// it accepts holds up: a valid name, and fields that cannot reach outside
// the line.
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{
		"alice:{PLAIN}pw:1000:1000::/home/alice::userdb_mail=maildir:~/Maildir",
		"bob:{SHA256.HEX}5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
		"carol:$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
		"# comment",
		"d::::::: home=/x mail=",
		"e\r",
		":",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") {
			return // parse splits lines first
		}
		r, err := parseLine(line)
		if err != nil || r == nil {
			return
		}
		if auth.ValidUsername(r.Name) != nil {
			t.Fatalf("parseLine(%q) accepted invalid name %q", line, r.Name)
		}
		if r.Home != "" && r.Home[0] != '/' {
			t.Fatalf("parseLine(%q) accepted relative home %q", line, r.Home)
		}
		if r.password != "" && r.Scheme == "" {
			t.Fatalf("parseLine(%q) has a password without a scheme", line)
		}
		if r.hasPlaintext && !strings.HasPrefix(strings.ToUpper(r.password), "{PLAIN") && !strings.HasPrefix(strings.ToUpper(r.password), "{CLEAR") {
			t.Fatalf("parseLine(%q) found a plaintext secret in a non-plaintext scheme", line)
		}
		// The line is found again by the editor's name matching.
		if i, err := findUser([]string{line}, r.Name); i != 0 || err != nil {
			t.Fatalf("findUser does not find %q in %q", r.Name, line)
		}
	})
}
