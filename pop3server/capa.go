package pop3server

import (
	"strconv"
	"strings"

	"github.com/postoffice-mail/postoffice/pop3"
)

// handleCapa lists the capabilities (RFC 2449 §5). The list is the same in
// both states but for STLS, which only AUTHORIZATION allows: RFC 2449 says
// USER and SASL stay listed after login.
func (c *conn) handleCapa(cmd pop3.Command) error {
	if err := wantArgs(cmd, 0, 0); err != nil {
		return err
	}
	c.ok("capability list follows")
	for _, line := range c.capabilities() {
		c.writeLine(line)
	}
	c.writeLine(".")
	return nil
}

func (c *conn) capabilities() []string {
	cfg := c.cfg
	caps := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	// Offer USER only where it would be accepted (RFC 2595 §4).
	if c.plaintextAllowed() {
		caps = append(caps, "USER")
	}
	// RFC 2449 §6.3: SASL stays listed after login.
	if mechs := c.mechanisms(); len(mechs) > 0 {
		caps = append(caps, "SASL "+strings.Join(mechs, " "))
	}
	if cfg.TLS != nil && !c.tls && c.state == authorization {
		caps = append(caps, "STLS")
	}
	if cfg.ExpireDays < 0 {
		caps = append(caps, "EXPIRE NEVER")
	} else {
		caps = append(caps, "EXPIRE "+strconv.Itoa(cfg.ExpireDays))
	}
	// RFC 2449 §6.5: before login, "USER" says the delay may differ per
	// user (the passwd-file's login_delay); after login, the user's own.
	if c.state == authorization {
		caps = append(caps, "LOGIN-DELAY "+strconv.Itoa(int(cfg.LoginDelay.Seconds()))+" USER")
	} else {
		caps = append(caps, "LOGIN-DELAY "+strconv.Itoa(int(c.loginDelay(c.user).Seconds())))
	}
	// RFC 6856: UTF-8 mode, UTF-8 user names (USER), and LANG.
	caps = append(caps, "UTF8 USER", "LANG")
	if cfg.Implementation != "" {
		caps = append(caps, "IMPLEMENTATION "+cfg.Implementation)
	}
	return caps
}
