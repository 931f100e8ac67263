package maildir

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/postoffice-mail/postoffice/store"
)

// DefaultLocation is the location template used when Config.Location is
// empty: the Maildir in the user's home directory, where Postfix
// (home_mailbox = Maildir/), procmail and Dovecot look by default.
const DefaultLocation = "{home}/Maildir"

// placeholders are the names a location template may use.
var placeholders = map[string]bool{"user": true, "localpart": true, "domain": true, "home": true}

// location is a parsed location template: an optional home-directory
// prefix, then '/'-separated segments of literals and placeholders.
type location struct {
	home     bool // starts with {home} or ~
	segments [][]part
}

// part is a literal or (when placeholder is set) a variable of a segment.
type part struct {
	text        string
	placeholder bool
}

// parseLocation parses a template such as "/var/mail/{domain}/{localpart}"
// or "{home}/Maildir". A Dovecot-style "maildir:" prefix and any ":OPTION"
// suffix (Dovecot's mail_location syntax) are accepted and dropped, so a
// value copied from dovecot.conf works; other formats (mbox:, mdbox:) are
// refused because this store cannot read them.
func parseLocation(tmpl string) (*location, error) {
	if format, rest, ok := strings.Cut(tmpl, ":"); ok && isFormatName(format) {
		if format != "maildir" {
			return nil, fmt.Errorf("mailbox format %q is not supported, only maildir", format)
		}
		tmpl = rest
	}
	// Dovecot separates options (":LAYOUT=fs", ":INDEX=...") with ':', so
	// a path cannot contain one there either.
	tmpl, _, _ = strings.Cut(tmpl, ":")
	if tmpl == "" {
		return nil, errors.New("empty location")
	}
	loc := &location{}
	switch {
	case tmpl == "~" || strings.HasPrefix(tmpl, "~/"):
		loc.home, tmpl = true, tmpl[1:]
	case strings.HasPrefix(tmpl, "{home}"):
		loc.home, tmpl = true, tmpl[len("{home}"):]
	case !strings.HasPrefix(tmpl, "/"):
		// A relative maildrop would depend on the server's working
		// directory: refuse it here rather than at the first login.
		return nil, fmt.Errorf("location %q is not absolute and does not start with {home}", tmpl)
	}
	if loc.home && tmpl != "" && tmpl[0] != '/' {
		return nil, fmt.Errorf("location: {home} must be followed by '/'")
	}
	for _, seg := range strings.Split(tmpl, "/") {
		parts, err := parseSegment(seg)
		if err != nil {
			return nil, err
		}
		loc.segments = append(loc.segments, parts)
	}
	return loc, nil
}

// locationOption returns the value of a Dovecot mail_location option
// ("CONTROL" in "maildir:~/Maildir:CONTROL=/var/control/%u"), or "".
func locationOption(tmpl, name string) string {
	if format, rest, ok := strings.Cut(tmpl, ":"); ok && isFormatName(format) {
		tmpl = rest
	}
	options := strings.Split(tmpl, ":")
	for _, opt := range options[1:] {
		if value, ok := strings.CutPrefix(opt, name+"="); ok {
			return value
		}
	}
	return ""
}

// isFormatName reports whether s looks like a Dovecot mailbox format name
// ("maildir", "mbox") rather than the start of a path.
func isFormatName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// parseSegment splits one path segment into literals and placeholders.
func parseSegment(seg string) ([]part, error) {
	var parts []part
	for seg != "" {
		open := strings.IndexAny(seg, "{}")
		if open < 0 {
			parts = append(parts, part{text: seg})
			break
		}
		if seg[open] == '}' {
			return nil, fmt.Errorf("location: unmatched '}' in %q", seg)
		}
		if open > 0 {
			parts = append(parts, part{text: seg[:open]})
		}
		end := strings.IndexByte(seg[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("location: unmatched '{' in %q", seg)
		}
		name := seg[open+1 : open+end]
		if !placeholders[name] {
			return nil, fmt.Errorf("location: unknown placeholder {%s}", name)
		}
		if name == "home" {
			return nil, errors.New("location: {home} may only start the location")
		}
		parts = append(parts, part{text: name, placeholder: true})
		seg = seg[open+end+1:]
	}
	return parts, nil
}

// dovecotVariables maps the Dovecot %-variables that a userdb mail field
// commonly uses to this package's placeholders.
var dovecotVariables = map[byte]string{'u': "{user}", 'n': "{localpart}", 'd': "{domain}", 'h': "{home}"}

// translateDovecot rewrites %u, %n, %d, %h and %% in an account's mail
// field into placeholders, so "maildir:/var/vmail/%d/%n" from a Dovecot
// passwd-file means what it meant there.
func translateDovecot(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("location ends with '%'")
		}
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, ok := dovecotVariables[s[i]]
		if !ok {
			return "", fmt.Errorf("unsupported variable %%%c", s[i])
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// expand returns the maildrop directory of acct: a clean absolute path.
//
// The user name was validated at login (auth.ValidUsername), but the path
// is the one place where a bad name would turn into a file-system attack
// (design invariant 7), so expand checks again: a substituted value may
// not contain '/', '\' or NUL, and a segment made by substitution may not
// be empty, "." or "..". Those rules also keep, say, a user without a
// domain from getting the parent directory of a whole domain's maildrops.
func (loc *location) expand(acct store.Account) (string, error) {
	local, domain := acct.Name, ""
	if at := strings.LastIndexByte(acct.Name, '@'); at >= 0 {
		local, domain = acct.Name[:at], acct.Name[at+1:]
	}
	values := map[string]string{"user": acct.Name, "localpart": local, "domain": domain}
	for name, v := range values {
		if strings.ContainsAny(v, "/\\\x00") {
			return "", fmt.Errorf("unsafe {%s} %q for a path", name, v)
		}
	}

	var b strings.Builder
	if loc.home {
		if acct.Home == "" {
			return "", errors.New("location needs {home}, but the account has no home directory")
		}
		if strings.IndexByte(acct.Home, 0) >= 0 || !filepath.IsAbs(acct.Home) {
			return "", fmt.Errorf("home directory %q is not an absolute path", acct.Home)
		}
		b.WriteString(filepath.Clean(acct.Home))
	}
	for i, seg := range loc.segments {
		if i > 0 {
			b.WriteByte('/')
		}
		var text strings.Builder
		substituted := false
		for _, p := range seg {
			if p.placeholder {
				text.WriteString(values[p.text])
				substituted = true
			} else {
				text.WriteString(p.text)
			}
		}
		if s := text.String(); substituted && (s == "" || s == "." || s == "..") {
			return "", fmt.Errorf("location segment for %q would be %q", acct.Name, s)
		}
		b.WriteString(text.String())
	}
	dir := filepath.Clean(b.String())
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("maildrop %q is not an absolute path", dir)
	}
	return dir, nil
}

// maildropDir returns the directory of acct's maildrop: from acct.Mail if
// set, else from the store's template.
func (s *Store) maildropDir(acct store.Account) (string, error) {
	loc := s.location
	if acct.Mail != "" {
		tmpl, err := translateDovecot(acct.Mail)
		if err != nil {
			return "", fmt.Errorf("mail location of %q: %w", acct.Name, err)
		}
		if loc, err = parseLocation(tmpl); err != nil {
			return "", fmt.Errorf("mail location of %q: %w", acct.Name, err)
		}
	}
	dir, err := loc.expand(acct)
	if err != nil {
		return "", fmt.Errorf("maildrop of %q: %w", acct.Name, err)
	}
	return dir, nil
}
