package pop3client

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Capabilities is a CAPA reply (RFC 2449 §5): upper-cased capability
// names mapped to their arguments.
type Capabilities map[string][]string

// Has reports whether the capability is listed.
func (c Capabilities) Has(name string) bool {
	_, ok := c[strings.ToUpper(name)]
	return ok
}

// Args returns a capability's arguments.
func (c Capabilities) Args(name string) []string { return c[strings.ToUpper(name)] }

// SASL returns the SASL mechanisms offered (RFC 5034 §3), upper-cased.
func (c Capabilities) SASL() []string {
	var mechs []string
	for _, m := range c["SASL"] {
		mechs = append(mechs, strings.ToUpper(m))
	}
	return mechs
}

// HasSASL reports whether a SASL mechanism is offered.
func (c Capabilities) HasSASL(mech string) bool {
	for _, m := range c["SASL"] {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// LoginDelay returns the LOGIN-DELAY capability's minimum time between
// logins (RFC 2449 §6.5), if listed with a valid number.
func (c Capabilities) LoginDelay() (time.Duration, bool) {
	args := c["LOGIN-DELAY"]
	if len(args) == 0 {
		return 0, false
	}
	secs, err := strconv.Atoi(args[0])
	if err != nil || secs < 0 {
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

// Expire returns the EXPIRE capability (RFC 2449 §6.7): the days a
// retrieved message stays on the server, never for "NEVER", and ok false
// when not listed.
func (c Capabilities) Expire() (days int, never, ok bool) {
	args := c["EXPIRE"]
	if len(args) == 0 {
		return 0, false, false
	}
	if strings.EqualFold(args[0], "NEVER") {
		return 0, true, true
	}
	days, err := strconv.Atoi(args[0])
	if err != nil || days < 0 {
		return 0, false, false
	}
	return days, false, true
}

// Capabilities sends CAPA and returns the server's capabilities. A server
// that predates RFC 2449 answers -ERR: the error is then a *CommandError
// with a *pop3.Error, and the connection is still usable. Capabilities
// can change after STLS and after login (RFC 2449 §5), so ask again then:
// the client uses pipelining according to the latest answer.
func (c *Client) Capabilities(ctx context.Context) (Capabilities, error) {
	r := c.send(ctx, kindLines, "CAPA")
	if err := r.Wait(ctx); err != nil {
		if isNegative(err) {
			c.caps, c.pipelining = Capabilities{}, false
		}
		return nil, err
	}
	caps := make(Capabilities, len(r.lines))
	for _, line := range r.lines {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		caps[strings.ToUpper(f[0])] = f[1:]
	}
	c.caps = caps
	c.pipelining = caps.Has("PIPELINING")
	return caps, nil
}

// LastCapabilities returns the answer of the last CAPA, or nil.
func (c *Client) LastCapabilities() Capabilities { return c.caps }
