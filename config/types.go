package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in the configuration file as a
// string that time.ParseDuration accepts, such as "10m" or "2s". A bare
// TOML number is refused: "idle_timeout = 600" would otherwise be
// ambiguous between seconds and nanoseconds.
type Duration struct {
	time.Duration
}

// UnmarshalText parses a duration such as "90s" or "1h30m".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		// time's own message repeats the value and says "time:"; the
		// caller already names the setting, so say what is expected.
		return fmt.Errorf("%q is not a duration such as \"30s\" or \"10m\"", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in the form UnmarshalText reads, without
// the zero units time.Duration.String adds ("10m", not "10m0s"), so that a
// configuration written back out reads like one written by hand.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(formatDuration(d.Duration)), nil
}

// formatDuration is time.Duration.String without trailing zero units.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// maxExpireDays bounds pop3.expire. A century is far beyond any sensible
// retention policy and keeps days×24h well inside time.Duration's range
// (about 106,000 days), so later arithmetic cannot overflow.
const maxExpireDays = 36500

// Expire is the RFC 2449 §6.7 EXPIRE policy: how long the server keeps a
// message after a client first retrieved it. The zero value means NEVER:
// messages stay until the client deletes them.
type Expire struct {
	// Days is the number of days a retrieved message is kept; 0 deletes
	// retrieved messages at the end of the session (QUIT). Meaningful
	// only when Set is true.
	Days int
	// Set is false for the NEVER policy. It exists so that the zero value
	// of Expire is the harmless policy, not "delete everything at QUIT".
	Set bool
}

// errExpireSyntax is the message for every malformed expire value.
var errExpireSyntax = errors.New(`must be "never" or a whole number of days such as 30`)

// UnmarshalText accepts "never" (in any case, as RFC 2449 spells it NEVER)
// or a whole number of days in decimal. It is given the text of a TOML
// string, or the digits of a TOML integer: both `expire = 30` and
// `expire = "30"` mean 30 days.
func (e *Expire) UnmarshalText(text []byte) error {
	s := string(text)
	if strings.EqualFold(s, "never") {
		*e = Expire{}
		return nil
	}
	// Only plain digits: a sign, "0x", or TOML's "1_000" separators would
	// be accepted by strconv in some forms but not others.
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return fmt.Errorf("%q %w", s, errExpireSyntax)
	}
	days, err := strconv.Atoi(s)
	if err != nil {
		// Only overflow is left; validate reports the real bound.
		days = maxExpireDays + 1
	}
	*e = Expire{Days: days, Set: true}
	return nil
}

// MarshalText writes "never" or the number of days.
func (e Expire) MarshalText() ([]byte, error) {
	if !e.Set {
		return []byte("never"), nil
	}
	return []byte(strconv.Itoa(e.Days)), nil
}

// String returns the policy as the configuration file spells it.
func (e Expire) String() string {
	text, _ := e.MarshalText()
	return string(text)
}
