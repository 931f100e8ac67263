package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Admin is the [admin] table: an HTTP listener for monitoring, serving
// /metrics (Prometheus text format), /healthz (the process is alive) and
// /readyz (the listeners are open and the store answers). It is off
// unless listen is set, and loopback-only unless allow_non_loopback says
// otherwise: it has no authentication, and the metrics tell an outsider
// how busy the server is and how often logins fail.
type Admin struct {
	// Listen is the host:port of the admin listener, such as
	// "127.0.0.1:9110"; empty disables it. The host must be a loopback
	// address (127.0.0.0/8, [::1] or localhost): any other address,
	// ":9110" and "[::]:9110" included, is refused unless
	// allow_non_loopback is true.
	Listen string `toml:"listen"`
	// AllowNonLoopback permits admin.listen on an address other than
	// loopback, for a Prometheus server on another machine. Put a
	// firewall or a reverse proxy with authentication in front of it.
	AllowNonLoopback bool `toml:"allow_non_loopback"`
}

// adminRules are the validate rows of [admin].
func adminRules(c *Config) []problem {
	return []problem{
		{"admin.listen", adminListen(c.Admin)},
	}
}

// adminListen checks admin.listen: host:port, and loopback unless the
// administrator consented to more.
func adminListen(a Admin) error {
	if a.Listen == "" {
		return nil
	}
	if err := listenAddress(a.Listen); err != nil {
		return err
	}
	if a.AllowNonLoopback || isLoopbackListen(a.Listen) {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address; the admin listener has no authentication, "+
		"so use 127.0.0.1 or [::1], or set admin.allow_non_loopback = true to expose it on purpose", a.Listen)
}

// isLoopbackListen reports whether a host:port that listenAddress
// accepted listens on loopback only. An empty host listens on every
// address; a host name other than localhost may resolve anywhere.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
