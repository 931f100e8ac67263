package passwdfile

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
	"strconv"
	"time"
)

// Entry is one user of a passwd-file, as List reports it. The stored
// password is left out on purpose: listing users should not hand out
// hashes.
type Entry struct {
	// Name is the login name.
	Name string
	// Scheme is the canonical name of the password scheme, such as
	// "ARGON2ID", or "" if the user has no password and cannot log in.
	Scheme string
	// UID and GID are the third and fourth fields, as written. This
	// server does not use them; they are kept for Dovecot.
	UID, GID string
	// Gecos is the fifth field, a free-form comment.
	Gecos string
	// Home is the home directory: the sixth field, or a home or
	// userdb_home extra field, which overrides it.
	Home string
	// Shell is the seventh field, unused by mail servers.
	Shell string
	// Mail is the mail or userdb_mail extra field: the user's maildrop
	// location, overriding the store's template.
	Mail string
	// LoginDelay is the login_delay extra field (whole seconds): this
	// user's RFC 2449 LOGIN-DELAY; 0 when unset.
	LoginDelay time.Duration
	// Extra holds the extra fields as written, one "key=value" or bare
	// "key" each, including those this server ignores.
	Extra []string
}

// record is a parsed user line.
type record struct {
	Entry
	// password is the stored password, "{SCHEME}data", or "".
	password string
	// plaintext is the secret for APOP, if the scheme keeps one.
	plaintext    string
	hasPlaintext bool
}

// user returns a fresh auth.User for r, so callers cannot modify the
// loaded database.
func (r *record) user() *auth.User {
	return &auth.User{Name: r.Name, Home: r.Home, Mail: r.Mail, LoginDelay: r.LoginDelay}
}

// numFields is the number of colon-separated fields in a full line. The
// last one, the extra fields, takes the rest of the line, colons and all,
// since values such as "userdb_mail=maildir:~/Maildir" contain them.
const numFields = 8

// isIgnored reports whether a line (without its terminator) is blank or a
// comment.
func isIgnored(line string) bool {
	trimmed := strings.TrimSpace(line)
	return trimmed == "" || trimmed[0] == '#'
}

// trimEOL removes a line terminator: "\n", or "\r\n" for files edited on
// Windows.
func trimEOL(line string) string {
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r")
}

// parseLine parses one user line, without its terminator, in Dovecot's
// format user:password:uid:gid:gecos:home:shell:extra_fields, where every
// field after the user name may be left out. It returns nil for a blank or
// comment line. Errors name the problem but never quote the password.
func parseLine(line string) (*record, error) {
	line = strings.TrimSuffix(line, "\r")
	if isIgnored(line) {
		return nil, nil
	}
	fields := strings.SplitN(line, ":", numFields)
	// Missing trailing fields are empty.
	for len(fields) < numFields {
		fields = append(fields, "")
	}
	r := &record{Entry: Entry{
		Name:  fields[0],
		UID:   fields[2],
		GID:   fields[3],
		Gecos: fields[4],
		Home:  fields[5],
		Shell: fields[6],
		Extra: strings.Fields(fields[7]),
	}}
	if err := auth.ValidUsername(r.Name); err != nil {
		return nil, err
	}
	r.password = fields[1]
	if r.password != "" {
		name, err := scheme.Identify(r.password)
		if err != nil {
			return nil, fmt.Errorf("password of %s: %w", r.Name, err)
		}
		r.Scheme = name
		r.plaintext, r.hasPlaintext = scheme.Plaintext(r.password)
	}
	for _, field := range r.Extra {
		key, value, _ := strings.Cut(field, "=")
		// As in Dovecot's passwd-file userdb, "userdb_" marks a
		// userdb field and is otherwise the same as none; a later
		// field overrides an earlier one and the home column.
		switch strings.TrimPrefix(key, "userdb_") {
		case "home":
			r.Home = value
		case "mail":
			r.Mail = value
		case "login_delay":
			secs, err := strconv.Atoi(value)
			if err != nil || secs < 0 || secs > 7*24*3600 {
				return nil, fmt.Errorf("login_delay of %s: want whole seconds up to a week, got %q", r.Name, value)
			}
			r.LoginDelay = time.Duration(secs) * time.Second
		}
	}
	if r.Home != "" && !filepath.IsAbs(r.Home) {
		// Dovecot refuses relative homes too: relative to what?
		return nil, fmt.Errorf("home of %s is not an absolute path", r.Name)
	}
	return r, nil
}

// errDuplicate reports a user defined on two lines: which one Dovecot
// would use is an accident of implementation, so neither is guessed.
var errDuplicate = errors.New("user defined more than once")

// database is one parsed version of a passwd-file.
type database struct {
	users map[string]*record
	// order lists the users as they appear in the file.
	order []*record
	// standIn is checked in place of an unknown user's password: a
	// hash stored the way most users here are (scheme.Typical), or ""
	// for the default scheme's.
	standIn string
}

// parse parses a whole file. Errors name the path and line.
func parse(path string, data []byte) (*database, error) {
	db := &database{users: map[string]*record{}}
	firstLine := map[string]int{}
	for i, line := range splitLines(string(data)) {
		lineNo := i + 1
		r, err := parseLine(trimEOL(line))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, lineNo, err)
		}
		if r == nil {
			continue
		}
		if first, dup := firstLine[r.Name]; dup {
			return nil, fmt.Errorf("%s:%d: %w: %s, first on line %d", path, lineNo, errDuplicate, r.Name, first)
		}
		firstLine[r.Name] = lineNo
		db.users[r.Name] = r
		db.order = append(db.order, r)
	}
	stored := make([]string, 0, len(db.order))
	for _, r := range db.order {
		stored = append(stored, r.password)
	}
	db.standIn = scheme.Typical(stored)
	return db, nil
}

// lookup returns the record for name, or nil. A name that fails
// auth.ValidUsername is never looked up, whatever the file holds.
func (db *database) lookup(name string) *record {
	if auth.ValidUsername(name) != nil {
		return nil
	}
	return db.users[name]
}

// splitLines splits s after each "\n", keeping the terminators so that
// the lines join back to s byte for byte. A final line without "\n" is
// kept as it is.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
