package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
)

// problem is a rule a setting breaks, before it is given a position.
type problem struct {
	setting string
	err     error
}

// validate checks every setting of a decoded, resolved configuration. It
// is one table, one row per rule, in the order of the file, so that a
// reader can see at a glance what each setting must satisfy. Each row's
// error is nil when the rule holds.
func validate(c *Config) []problem {
	rules := []struct {
		setting string
		err     error
	}{
		{"server.hostname", hostName(c.Server.Hostname)},
		{"server.implementation", capabilityText(c.Server.Implementation)},
		{"server.shutdown_timeout", positive(c.Server.ShutdownTimeout)},
		{"server.state_dir", required(c.Server.StateDir)},

		{"log.level", oneOf(c.Log.Level, "debug", "info", "warn", "error")},
		{"log.format", oneOf(c.Log.Format, "text", "json")},
		{"log.trace_user", traceUser(c.Log.TraceUser)},

		{"pop3.listen", listenAddresses(c.POP3.Listen)},
		{"pop3.listen", distinct(c.POP3.Listen, nil, "")},
		{"pop3.listen", someListener(c.POP3)},
		{"pop3.listen_tls", listenAddresses(c.POP3.ListenTLS)},
		{"pop3.listen_tls", distinct(c.POP3.ListenTLS, c.POP3.Listen, "pop3.listen")},
		{"pop3.listen_tls", certificateFor(c.POP3.ListenTLS, c.TLS)},
		{"pop3.expire", expireDays(c.POP3.Expire)},
		{"pop3.login_delay", wholeSeconds(c.POP3.LoginDelay)},

		{"tls.cert", pairedWith(c.TLS.Cert, c.TLS.Key, "tls.key")},
		{"tls.key", pairedWith(c.TLS.Key, c.TLS.Cert, "tls.cert")},
		{"tls.min_version", tlsVersion(c.TLS.MinVersion)},

		{"limits.max_connections", between(c.Limits.MaxConnections, 1, math.MaxInt, "")},
		{"limits.max_connections_per_ip", perIPLimit(c.Limits.MaxConnectionsPerIP, c.Limits.MaxConnections)},
		// RFC 2449 §4: command lines may be up to 255 octets; the upper
		// bound keeps one line's buffer small.
		{"limits.max_line_length", between(c.Limits.MaxLineLength, 255, 65536, "the RFC 2449 §4 minimum")},
		{"limits.max_bad_commands", between(c.Limits.MaxBadCommands, 1, math.MaxInt, "")},
		// RFC 1939 §3: the autologout timer must be at least 10 minutes.
		{"limits.idle_timeout", atLeast(c.Limits.IdleTimeout, 10*time.Minute, "the RFC 1939 §3 minimum")},
		{"limits.write_timeout", positive(c.Limits.WriteTimeout)},
		{"limits.tls_handshake_timeout", positive(c.Limits.TLSHandshakeTimeout)},
		// 0 is allowed (tests, trusted networks) though it makes password
		// guessing cheap; past a minute clients give up instead.
		{"limits.auth_failure_delay", durationBetween(c.Limits.AuthFailureDelay, 0, time.Minute)},

		{"users.backend", oneOf(c.Users.Backend, "passwd-file", "postgres")},
		{"users.passwd_file", requiredFor(c.Users.PasswdFile, c.Users.Backend == "passwd-file", `users.backend is "passwd-file"`)},
		{"users.default_scheme", oneOf(c.Users.DefaultScheme, "ARGON2ID", "SHA512-CRYPT", "BLF-CRYPT", "SSHA512", "SCRAM-SHA-256", "SCRAM-SHA-1")},

		{"maildir.location", locationTemplate(c.Maildir.Location)},
		{"maildir.lock_lease", atLeast(c.Maildir.LockLease, 10*time.Second, "")},
		{"maildir.import_uidl", oneOf(c.Maildir.ImportUIDL, "", "dovecot", "courier", "filename")},
		{"maildir.dovecot_uidl_format", uidlFormat(c.Maildir.DovecotUIDLFormat)},

		// Past a minute clients give up rather than wait.
		{"auth.mechanisms", mechanisms(c.Auth.Mechanisms, c)},
		{"auth.timeout", durationBetween(c.Auth.Timeout, time.Second, 10*time.Minute)},
		{"auth.penalty_base", durationBetween(c.Auth.PenaltyBase, 0, time.Minute)},
		{"auth.penalty_max", penaltyMax(c.Auth.PenaltyMax, c.Auth.PenaltyBase)},
		{"auth.penalty_window", durationBetween(c.Auth.PenaltyWindow, time.Minute, 24*time.Hour)},
		{"auth.trusted_networks", networks(c.Auth.TrustedNetworks)},
		{"auth.max_tracked", between(c.Auth.MaxTracked, 1000, 10_000_000, "")},

		{"oauth.mode", oneOf(c.OAuth.Mode, "none", "introspection", "jwks")},
		{"oauth.introspection_url", endpoint(c.OAuth.IntrospectionURL, c.OAuth.Mode == "introspection", "introspection")},
		{"oauth.client_id", requiredInMode(c.OAuth.ClientID, c.OAuth.Mode, "introspection")},
		{"oauth.client_secret", clientSecret(c.OAuth)},
		{"oauth.jwks_url", endpoint(c.OAuth.JWKSURL, c.OAuth.Mode == "jwks", "jwks")},
		// RFC 9068 §4: a resource server must check the issuer and that
		// the token was meant for it.
		{"oauth.issuer", requiredInMode(c.OAuth.Issuer, c.OAuth.Mode, "jwks")},
		{"oauth.audience", requiredInMode(c.OAuth.Audience, c.OAuth.Mode, "jwks")},
		{"oauth.required_scope", scopeToken(c.OAuth.RequiredScope)},
		{"oauth.username_claim", claimName(c.OAuth.UsernameClaim)},
		{"oauth.timeout", durationBetween(c.OAuth.Timeout, time.Millisecond, time.Minute)},
		{"oauth.cache_ttl", durationBetween(c.OAuth.CacheTTL, 0, time.Hour)},
	}

	for _, p := range slices.Concat(deliveryRules(c), clusterRules(c), adminRules(c), logLevelRules(c.Log.Levels)) {
		rules = append(rules, struct {
			setting string
			err     error
		}{p.setting, p.err})
	}

	var problems []problem
	for _, rule := range rules {
		if rule.err == nil {
			continue
		}
		setting, err := rule.setting, rule.err
		var elem *elementError
		if errors.As(err, &elem) {
			setting = fmt.Sprintf("%s[%d]", setting, elem.index)
			err = elem.err
		}
		problems = append(problems, problem{setting, err})
	}
	return problems
}

// elementError is a rule broken by one element of a list setting; validate
// names the element ("pop3.listen[1]") so that its line can be found.
type elementError struct {
	index int
	err   error
}

func (e *elementError) Error() string { return e.err.Error() }

// logLevelRules checks each entry of log.levels: a known subsystem, a
// known level.
func logLevelRules(levels map[string]string) []problem {
	keys := make([]string, 0, len(levels))
	for k := range levels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // problems in a stable order
	var out []problem
	for _, k := range keys {
		err := oneOf(levels[k], "debug", "info", "warn", "error")
		if !slices.Contains(LogSubsystems, k) {
			err = fmt.Errorf("unknown subsystem %q; known are %s", k, strings.Join(LogSubsystems, ", "))
		}
		out = append(out, problem{"log.levels." + k, err})
	}
	return out
}

// traceUser refuses a name no login could present.
func traceUser(name string) error {
	if len(name) > 255 {
		return errors.New("is longer than 255 characters")
	}
	if strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("%q contains a space or a control character", name)
	}
	return nil
}

// required refuses an empty string.
func required(s string) error {
	if s == "" {
		return errors.New("must be set")
	}
	return nil
}

// oneOf refuses a value outside a fixed set. The comparison is exact, so
// that the file uses one spelling of each value.
func oneOf(s string, allowed ...string) error {
	if slices.Contains(allowed, s) {
		return nil
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(allowed, ", "))
}

// between refuses an integer outside [lo, hi]. minimum names the lower
// bound when a standard sets it ("the RFC 2449 §4 minimum").
func between(n, lo, hi int, minimum string) error {
	switch {
	case n < lo:
		return fmt.Errorf("%d is below %s of %d", n, orTheMinimum(minimum), lo)
	case n > hi:
		return fmt.Errorf("%d is above the maximum of %d", n, hi)
	}
	return nil
}

// orTheMinimum returns minimum, or "the minimum" when it is empty.
func orTheMinimum(minimum string) string {
	if minimum == "" {
		return "the minimum"
	}
	return minimum
}

// perIPLimit refuses a per-address limit that the total limit makes
// meaningless. An invalid total is reported on its own row.
func perIPLimit(perIP, total int) error {
	if err := between(perIP, 1, math.MaxInt, ""); err != nil {
		return err
	}
	if total >= 1 && perIP > total {
		return fmt.Errorf("%d is above limits.max_connections (%d)", perIP, total)
	}
	return nil
}

// positive refuses a zero or negative duration.
func positive(d Duration) error {
	if d.Duration <= 0 {
		return fmt.Errorf("%q must be more than 0", formatDuration(d.Duration))
	}
	return nil
}

// atLeast refuses a duration shorter than lo. minimum names the bound
// when a standard sets it ("the RFC 1939 §3 minimum").
func atLeast(d Duration, lo time.Duration, minimum string) error {
	if d.Duration < lo {
		return fmt.Errorf("%q is below %s of %s", formatDuration(d.Duration), orTheMinimum(minimum), formatDuration(lo))
	}
	return nil
}

// durationBetween refuses a duration outside [lo, hi].
func durationBetween(d Duration, lo, hi time.Duration) error {
	if err := atLeast(d, lo, ""); err != nil {
		return err
	}
	if d.Duration > hi {
		return fmt.Errorf("%q is above the maximum of %s", formatDuration(d.Duration), formatDuration(hi))
	}
	return nil
}

// wholeSeconds refuses a LOGIN-DELAY that RFC 2449 §6.5 cannot express:
// the capability announces it as a number of seconds.
func wholeSeconds(d Duration) error {
	if d.Duration < 0 {
		return fmt.Errorf("%q is negative", formatDuration(d.Duration))
	}
	if d.Duration%time.Second != 0 {
		return fmt.Errorf("%q is not a whole number of seconds, which RFC 2449 LOGIN-DELAY requires", formatDuration(d.Duration))
	}
	return nil
}

// expireDays refuses an EXPIRE period past maxExpireDays. UnmarshalText
// has already refused anything that is not "never" or a number.
func expireDays(e Expire) error {
	if e.Set && (e.Days < 0 || e.Days > maxExpireDays) {
		return fmt.Errorf("%d days is outside the range 0 to %d", e.Days, maxExpireDays)
	}
	return nil
}

// maxHostName is the longest DNS name (RFC 1035 §2.3.4).
const maxHostName = 253

// hostName refuses a name that cannot appear in the greeting and in an
// RFC 1939 §7 APOP timestamp (<pid.clock@hostname>): letters, digits,
// '-' and '_' in dot-separated labels.
func hostName(s string) error {
	if len(s) > maxHostName {
		return fmt.Errorf("%q is longer than %d characters", s, maxHostName)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || strings.IndexFunc(label, notHostNameChar) >= 0 {
			return fmt.Errorf("%q is not a host name (letters, digits, '-' and '_' in dot-separated labels)", s)
		}
	}
	return nil
}

// notHostNameChar reports whether r cannot appear in a host name label.
func notHostNameChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

// maxCapabilityText is what fits on an "IMPLEMENTATION <text>" CAPA line:
// RFC 2449 §4 bounds a response line at 512 octets including CRLF.
const maxCapabilityText = 512 - len("IMPLEMENTATION ") - len("\r\n")

// capabilityText refuses text that would break the CAPA response.
func capabilityText(s string) error {
	if len(s) > maxCapabilityText {
		return fmt.Errorf("is longer than the %d characters a CAPA line leaves for it (RFC 2449 §4)", maxCapabilityText)
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return fmt.Errorf("%q contains %U; only printable ASCII is allowed on the wire", s, r)
		}
	}
	return nil
}

// listenAddresses refuses a list element that is not host:port with a
// numeric port. An empty host listens on every address, as in net.Listen.
func listenAddresses(addrs []string) error {
	for i, addr := range addrs {
		if err := listenAddress(addr); err != nil {
			return &elementError{i, err}
		}
	}
	return nil
}

// listenAddress checks one host:port.
func listenAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf(`%q is not host:port, such as "[::]:110" or "192.0.2.1:995"`, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has port %q; want a number from 1 to 65535", addr, port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if hostName(host) != nil {
		return fmt.Errorf("%q has host %q, which is neither an IP address nor a host name", addr, host)
	}
	return nil
}

// distinct refuses an address listed twice, in list or in others (the
// other listener list, named otherName): the second bind would fail at
// start-up with a less helpful message.
func distinct(list, others []string, otherName string) error {
	for i, addr := range list {
		if slices.Contains(list[:i], addr) {
			return &elementError{i, fmt.Errorf("%q is listed twice", addr)}
		}
		if slices.Contains(others, addr) {
			return &elementError{i, fmt.Errorf("%q is also in %s", addr, otherName)}
		}
	}
	return nil
}

// someListener refuses a configuration that listens nowhere.
func someListener(p POP3) error {
	if len(p.Listen) == 0 && len(p.ListenTLS) == 0 {
		return errors.New("is empty and so is pop3.listen_tls: the server would accept no connections")
	}
	return nil
}

// certificateFor refuses implicit-TLS listeners without a certificate.
// When only one of cert and key is set, pairedWith explains that instead.
func certificateFor(listenTLS []string, t TLS) error {
	if len(listenTLS) > 0 && t.Cert == "" && t.Key == "" {
		return fmt.Errorf("implicit TLS on %s needs tls.cert and tls.key; set them, or set listen_tls = [] to disable implicit TLS",
			strings.Join(listenTLS, ", "))
	}
	return nil
}

// pairedWith refuses one of tls.cert and tls.key without the other.
func pairedWith(this, other, otherName string) error {
	if this != "" && other == "" {
		return fmt.Errorf("is set but %s is not; set both or neither", otherName)
	}
	return nil
}

// tlsVersion accepts "1.2" and "1.3" and explains why older versions are
// refused rather than merely listing the allowed ones.
func tlsVersion(v string) error {
	switch v {
	case "1.2", "1.3":
		return nil
	case "1.0", "1.1":
		return fmt.Errorf("TLS %s is refused: RFC 8996 deprecates TLS 1.0 and 1.1; use \"1.2\" or \"1.3\"", v)
	}
	return oneOf(v, "1.2", "1.3")
}

// placeholder matches one {name} in a maildir location template.
var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

// uidlFormat checks a Dovecot pop3_uidl_format.
func uidlFormat(s string) error {
	_, err := legacy.ParseFormat(s)
	return err
}

// locationTemplate checks maildir.location after path resolution: known
// placeholders only, one that tells users apart, and a result that is
// absolute once expanded.
func locationTemplate(s string) error {
	if s == "" {
		return errors.New("must be set")
	}
	for _, name := range placeholder.FindAllString(s, -1) {
		switch name {
		case "{user}", "{localpart}", "{domain}", "{home}":
		default:
			return fmt.Errorf("%q has unknown placeholder %s; known are {user}, {localpart}, {domain} and {home}", s, name)
		}
	}
	if strings.ContainsAny(placeholder.ReplaceAllString(s, ""), "{}") {
		return fmt.Errorf("%q has an unmatched brace", s)
	}
	// {home} is a whole absolute path: anywhere but the start it would be
	// glued into the middle of another path.
	if i := strings.Index(s, "{home}"); i > 0 {
		return fmt.Errorf("%q has {home} after the start; {home} is an absolute path and may only begin the template", s)
	}
	if !strings.Contains(s, "{user}") && !strings.Contains(s, "{localpart}") && !strings.Contains(s, "{home}") {
		return fmt.Errorf("%q does not contain {user}, {localpart} or {home}, so users would share maildrops", s)
	}
	if !strings.HasPrefix(s, "{home}") && !filepath.IsAbs(s) {
		return fmt.Errorf("%q is not an absolute path once expanded; start it with / or {home}", s)
	}
	return nil
}

// penaltyMax refuses a cap below the first delay, which would make the
// delay shrink, and one past a minute. An invalid base is reported on its
// own row.
func penaltyMax(limit, base Duration) error {
	if err := durationBetween(limit, 0, time.Minute); err != nil {
		return err
	}
	if durationBetween(base, 0, time.Minute) == nil && limit.Duration < base.Duration {
		return fmt.Errorf("%q is below auth.penalty_base (%s)", formatDuration(limit.Duration), formatDuration(base.Duration))
	}
	return nil
}

// parseNetwork parses a CIDR prefix, or a bare address as a prefix of
// its full length. Host bits must be zero: "192.0.2.1/24" is more likely
// a typo than a way of writing 192.0.2.0/24.
func parseNetwork(s string) (netip.Prefix, error) {
	if addr, err := netip.ParseAddr(s); err == nil {
		addr = addr.Unmap()
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf(`%q is neither an address nor a CIDR prefix such as "192.0.2.0/24" or "2001:db8::/48"`, s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %q?", s, p.Masked().String())
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix; write the IPv4 prefix instead", s)
	}
	return p, nil
}

// networks checks every element of a list of prefixes.
func networks(list []string) error {
	for i, s := range list {
		if _, err := parseNetwork(s); err != nil {
			return &elementError{i, err}
		}
	}
	return nil
}

// requiredInMode refuses an empty setting that oauth.mode needs.
func requiredInMode(value, mode, needs string) error {
	if mode == needs && value == "" {
		return fmt.Errorf("must be set when oauth.mode is %q", needs)
	}
	return nil
}

// endpoint checks the URL of an authorization server endpoint: required
// when needed, and HTTPS, since tokens and client secrets cross it. Plain
// HTTP is allowed to a loopback address, for a local proxy or a test.
func endpoint(s string, needed bool, mode string) error {
	if s == "" {
		if needed {
			return fmt.Errorf("must be set when oauth.mode is %q", mode)
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL such as \"https://auth.example.com/...\"", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q has credentials in it; use oauth.client_id and oauth.client_secret", u.Redacted())
	}
	if u.Fragment != "" {
		return fmt.Errorf("%q has a fragment, which HTTP requests do not send", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q is plain HTTP; tokens must only be sent over HTTPS (plain HTTP is allowed to loopback addresses only)", s)
	}
	return fmt.Errorf("%q is not an https URL", s)
}

// isLoopbackHost reports whether host is "localhost" or a loopback
// address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// clientSecret checks that introspection has exactly one client secret,
// and that nobody sets both anywhere.
func clientSecret(o OAuth) error {
	switch {
	case o.ClientSecret != "" && o.ClientSecretFile != "":
		return errors.New("is set and so is oauth.client_secret_file; set one of them")
	case o.Mode == "introspection" && o.ClientSecret == "" && o.ClientSecretFile == "":
		return errors.New(`must be set, or oauth.client_secret_file, when oauth.mode is "introspection"`)
	}
	return nil
}

// scopeToken refuses what RFC 6749 §3.3 does not allow in one scope
// token: space (which separates scopes), '"', '\\' and control
// characters.
func scopeToken(s string) error {
	for _, r := range s {
		if r <= 0x20 || r == '"' || r == '\\' || r >= 0x7f {
			return fmt.Errorf("%q is not one RFC 6749 §3.3 scope: printable ASCII without space, '\"' or '\\'", s)
		}
	}
	return nil
}

// claimName refuses a claim name no token would use: claim names are JSON
// strings, but in practice printable ASCII, URIs included.
func claimName(s string) error {
	for _, r := range s {
		if r <= 0x20 || r >= 0x7f {
			return fmt.Errorf("%q is not a claim name (printable ASCII without space)", s)
		}
	}
	return nil
}

// saslMechanisms are the mechanisms package auth/sasl implements.
var saslMechanisms = []string{"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256",
	"SCRAM-SHA-256-PLUS", "OAUTHBEARER", "XOAUTH2", "EXTERNAL"}

// mechanisms checks auth.mechanisms: known names, each once, and the
// settings each one needs.
func mechanisms(names []string, c *Config) error {
	for i, name := range names {
		var err error
		switch {
		case !slices.Contains(saslMechanisms, name):
			err = fmt.Errorf("%q is not one of %s", name, strings.Join(saslMechanisms, ", "))
		case slices.Index(names, name) != i:
			err = fmt.Errorf("%q is listed twice", name)
		case (name == "OAUTHBEARER" || name == "XOAUTH2") && c.OAuth.Mode == "none":
			err = fmt.Errorf("%s needs oauth.mode", name)
		case name == "EXTERNAL" && c.TLS.ClientCA == "":
			err = errors.New("EXTERNAL needs tls.client_ca")
		case name == "SCRAM-SHA-256-PLUS" && c.TLS.Cert == "":
			err = errors.New("SCRAM-SHA-256-PLUS needs TLS (tls.cert)")
		}
		if err != nil {
			return &elementError{index: i, err: err}
		}
	}
	return nil
}
