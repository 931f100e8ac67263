package delivery

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// AddressPolicy is how an envelope address names a user.
type AddressPolicy struct {
	// ByAddress makes the whole address the user name ("alice@example.org",
	// domain in lower case) instead of its local part ("alice").
	ByAddress bool
	// Domains lists the domains served; empty serves any domain.
	// Compared without regard to case.
	Domains []string
	// DetailDelimiter lists the characters that start an address
	// extension ("+" for "alice+lists"); "" means none.
	DetailDelimiter string
}

// Limits of RFC 5321 §4.5.3.1.
const (
	maxLocalPart = 64
	maxDomain    = 255
	maxPath      = 256
)

// Candidates returns the user names addr may belong to, in the order to
// try them: the local part (or whole address) as given, then without its
// extension, each also in lower case if that differs. The local part as
// given comes first so that a user whose name contains the delimiter
// ("a+b") is still found. An address the policy does not serve, or that
// is malformed, is an *Error (ErrUnknownDomain, ErrBadAddress).
func (p *AddressPolicy) Candidates(addr string) ([]string, error) {
	local, domain, err := splitAddress(addr)
	if err != nil {
		return nil, ErrBadAddress.with("", err)
	}
	domain = strings.ToLower(domain)
	if p.ByAddress && domain == "" {
		return nil, ErrBadAddress.with("Recipient address needs a domain", nil)
	}
	// A bare local part ("postmaster", RFC 5321 §4.5.1) is served
	// whatever the domain list says.
	if len(p.Domains) > 0 && domain != "" {
		served := false
		for _, d := range p.Domains {
			if strings.EqualFold(d, domain) {
				served = true
				break
			}
		}
		if !served {
			return nil, ErrUnknownDomain.with("", nil)
		}
	}
	locals := []string{local}
	if p.DetailDelimiter != "" {
		if i := strings.IndexAny(local, p.DetailDelimiter); i > 0 {
			locals = append(locals, local[:i])
		}
	}
	var names []string
	add := func(name string) {
		for _, n := range names {
			if n == name {
				return
			}
		}
		names = append(names, name)
	}
	for _, l := range locals {
		for _, variant := range []string{l, strings.ToLower(l)} {
			if p.ByAddress {
				variant += "@" + domain
			}
			add(variant)
		}
	}
	return names, nil
}

// splitAddress splits a mailbox (RFC 5321 §4.1.2, without the angle
// brackets, as go-smtp hands it over) into its local part, unquoted, and
// its domain, which may be empty ("postmaster"). It refuses what no user
// name can come from: control characters, invalid UTF-8, over-long parts,
// and address literals ("user@[192.0.2.1]").
func splitAddress(addr string) (local, domain string, err error) {
	if err := checkText(addr, maxPath); err != nil {
		return "", "", err
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		local = addr
	} else {
		local, domain = addr[:at], addr[at+1:]
		if domain == "" {
			return "", "", errors.New("empty domain")
		}
	}
	if len(domain) > maxDomain {
		return "", "", errors.New("domain too long")
	}
	if strings.HasPrefix(domain, "[") {
		return "", "", errors.New("address literals are not served")
	}
	if strings.HasPrefix(local, "\"") {
		if local, err = unquote(local); err != nil {
			return "", "", err
		}
	}
	if local == "" {
		return "", "", errors.New("empty local part")
	}
	if len(local) > maxLocalPart {
		return "", "", errors.New("local part longer than 64 octets")
	}
	return local, domain, nil
}

// unquote decodes an RFC 5321 Quoted-string local part.
func unquote(q string) (string, error) {
	if len(q) < 2 || q[len(q)-1] != '"' {
		return "", errors.New("unterminated quoted local part")
	}
	var b strings.Builder
	body := q[1 : len(q)-1]
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\\':
			i++
			if i == len(body) {
				return "", errors.New("bad quoted local part")
			}
			b.WriteByte(body[i])
		case c == '"':
			return "", errors.New("bad quoted local part")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// checkText refuses a string that must not reach a header field or a log
// line: too long, invalid UTF-8, or with control characters.
func checkText(s string, max int) error {
	if len(s) > max {
		return errors.New("too long")
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return errors.New("contains a control character")
		}
	}
	return nil
}

// CheckSender checks a reverse path (MAIL FROM, the -f option): the null
// path "" and any mailbox without control characters, at most 256 octets,
// are accepted; the result goes into Return-Path.
func CheckSender(from string) error {
	if from == "" {
		return nil
	}
	if err := checkText(from, maxPath); err != nil {
		return ErrBadSender.with("", err)
	}
	if strings.ContainsAny(from, "<> \t") {
		return ErrBadSender.with("", errors.New("angle brackets or white space"))
	}
	return nil
}
