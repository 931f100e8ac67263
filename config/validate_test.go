package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// withCert is a prefix that satisfies the default implicit-TLS listener,
// so that a test document fails only for the reason it is about. It is two
// lines long: a document's own lines start at line 3.
const withCert = "tls.cert = \"/etc/postoffice/cert.pem\"\ntls.key = \"/etc/postoffice/key.pem\"\n"

// failure is a document and the one problem Parse must report for it.
type failure struct {
	name    string
	doc     string
	line    int    // 0: the setting is not in the file
	column  int    // 0: validation errors carry only the line
	setting string // dotted key, with [i] for list elements
	msg     string // substring of the message
}

// checkFailure parses tc.doc and checks that the error names the file,
// the position and the setting, in the documented form.
func checkFailure(t *testing.T, tc failure) {
	t.Helper()
	const file = "postoffice.toml"
	_, err := Parse(file, []byte(tc.doc))
	if err == nil {
		t.Fatalf("Parse accepted:\n%s", tc.doc)
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	var prefix string
	switch {
	case tc.line == 0:
		prefix = file + ": "
	case tc.column == 0:
		prefix = fmt.Sprintf("%s:%d: ", file, tc.line)
	default:
		prefix = fmt.Sprintf("%s:%d:%d: ", file, tc.line, tc.column)
	}
	if tc.setting != "" {
		prefix += tc.setting + ": "
	}
	if got := err.Error(); !strings.HasPrefix(got, prefix) || !strings.Contains(got, tc.msg) {
		t.Errorf("error:\n  %s\nwant prefix %q and message containing %q", got, prefix, tc.msg)
	}
	if cerr.File != file || cerr.Line != tc.line || cerr.Setting != tc.setting {
		t.Errorf("*Error = {File:%q Line:%d Setting:%q}, want {%q %d %q}",
			cerr.File, cerr.Line, cerr.Setting, file, tc.line, tc.setting)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("want exactly one problem, got:\n%v", err)
	}
}

// TestValidationRules has one case per rule of validate, at least.
func TestValidationRules(t *testing.T) {
	t.Parallel()
	tests := []failure{
		// [server]
		{name: "hostname with space", doc: withCert + "[server]\nhostname = \"mail server\"\n",
			line: 4, setting: "server.hostname", msg: `"mail server" is not a host name`},
		{name: "hostname empty label", doc: withCert + "[server]\nhostname = \"mail..example\"\n",
			line: 4, setting: "server.hostname", msg: "is not a host name"},
		{name: "hostname too long", doc: withCert + "[server]\nhostname = \"" + strings.Repeat("a", 254) + "\"\n",
			line: 4, setting: "server.hostname", msg: "longer than 253"},
		{name: "implementation with CR", doc: withCert + "[server]\nimplementation = \"po\\r\\n+OK\"\n",
			line: 4, setting: "server.implementation", msg: "only printable ASCII"},
		{name: "implementation too long", doc: withCert + "[server]\nimplementation = \"" + strings.Repeat("x", 496) + "\"\n",
			line: 4, setting: "server.implementation", msg: "495"},
		{name: "shutdown timeout zero", doc: withCert + "[server]\nshutdown_timeout = \"0s\"\n",
			line: 4, setting: "server.shutdown_timeout", msg: `"0s" must be more than 0`},
		{name: "state dir empty", doc: withCert + "[server]\n\nstate_dir = \"\"\n",
			line: 5, setting: "server.state_dir", msg: "must be set"},

		// [log]
		{name: "log level", doc: withCert + "[log]\nlevel = \"verbose\"\n",
			line: 4, setting: "log.level", msg: `"verbose" is not one of debug, info, warn, error`},
		{name: "log level case", doc: withCert + "[log]\nlevel = \"INFO\"\n",
			line: 4, setting: "log.level", msg: "is not one of"},
		{name: "log format", doc: withCert + "[log]\nformat = \"xml\"\n",
			line: 4, setting: "log.format", msg: `"xml" is not one of text, json`},

		// [pop3]
		{name: "listen without port", doc: withCert + "[pop3]\nlisten = [\n  \"[::]:110\",\n  \"[::]\",\n]\n",
			line: 6, setting: "pop3.listen[1]", msg: `"[::]" is not host:port`},
		{name: "listen IPv6 without brackets", doc: withCert + "[pop3]\nlisten = [\"::1:110\"]\n",
			line: 4, setting: "pop3.listen[0]", msg: "is not host:port"},
		{name: "listen port zero", doc: withCert + "[pop3]\nlisten = [\"127.0.0.1:0\"]\n",
			line: 4, setting: "pop3.listen[0]", msg: `port "0"; want a number from 1 to 65535`},
		{name: "listen named port", doc: withCert + "[pop3]\nlisten = [\"127.0.0.1:pop3\"]\n",
			line: 4, setting: "pop3.listen[0]", msg: "want a number from 1 to 65535"},
		{name: "listen bad host", doc: withCert + "[pop3]\nlisten = [\"mail server:110\"]\n",
			line: 4, setting: "pop3.listen[0]", msg: "neither an IP address nor a host name"},
		{name: "listen twice", doc: withCert + "[pop3]\nlisten = [\":110\", \":110\"]\n",
			line: 4, setting: "pop3.listen[1]", msg: `":110" is listed twice`},
		{name: "no listener", doc: withCert + "[pop3]\nlisten = []\nlisten_tls = []\n",
			line: 4, setting: "pop3.listen", msg: "accept no connections"},
		{name: "listen_tls bad element", doc: withCert + "[pop3]\nlisten_tls = [\"[::]:995\", \"995\"]\n",
			line: 4, setting: "pop3.listen_tls[1]", msg: `"995" is not host:port`},
		{name: "listen_tls also plain", doc: withCert + "[pop3]\nlisten = [\":110\"]\nlisten_tls = [\":995\", \":110\"]\n",
			line: 5, setting: "pop3.listen_tls[1]", msg: `":110" is also in pop3.listen`},
		{name: "listen_tls without certificate", doc: "[pop3]\nlisten_tls = [\"[::]:995\"]\n",
			line: 2, setting: "pop3.listen_tls", msg: "needs tls.cert and tls.key"},
		{name: "default listen_tls without certificate", doc: "",
			line: 0, setting: "pop3.listen_tls", msg: "implicit TLS on [::]:995 needs tls.cert and tls.key"},
		{name: "expire too long", doc: withCert + "[pop3]\nexpire = 36501\n",
			line: 4, setting: "pop3.expire", msg: "36501 days is outside the range 0 to 36500"},
		{name: "expire overflow", doc: withCert + "[pop3]\nexpire = \"99999999999999999999999\"\n",
			line: 4, setting: "pop3.expire", msg: "outside the range"},
		{name: "login delay fraction", doc: withCert + "[pop3]\nlogin_delay = \"1500ms\"\n",
			line: 4, setting: "pop3.login_delay", msg: `"1.5s" is not a whole number of seconds`},
		{name: "login delay negative", doc: withCert + "[pop3]\nlogin_delay = \"-1m\"\n",
			line: 4, setting: "pop3.login_delay", msg: `"-1m" is negative`},

		// [tls]
		{name: "cert without key", doc: "[tls]\ncert = \"/etc/c.pem\"\n",
			line: 2, setting: "tls.cert", msg: "is set but tls.key is not; set both or neither"},
		{name: "key without cert", doc: "[pop3]\nlisten_tls = []\n[tls]\nkey = \"/etc/k.pem\"\n",
			line: 4, setting: "tls.key", msg: "is set but tls.cert is not"},
		{name: "TLS 1.1", doc: withCert + "tls.min_version = \"1.1\"\n",
			line: 3, setting: "tls.min_version", msg: "TLS 1.1 is refused: RFC 8996"},
		{name: "TLS 1.0", doc: withCert + "tls.min_version = \"1.0\"\n",
			line: 3, setting: "tls.min_version", msg: "TLS 1.0 is refused"},
		{name: "TLS version unknown", doc: withCert + "tls.min_version = \"1.4\"\n",
			line: 3, setting: "tls.min_version", msg: `"1.4" is not one of 1.2, 1.3`},

		// [limits]
		{name: "max connections zero", doc: withCert + "[limits]\nmax_connections = 0\n",
			line: 4, setting: "limits.max_connections", msg: "0 is below the minimum of 1"},
		{name: "per-IP zero", doc: withCert + "[limits]\nmax_connections_per_ip = 0\n",
			line: 4, setting: "limits.max_connections_per_ip", msg: "0 is below the minimum of 1"},
		{name: "per-IP above total", doc: withCert + "[limits]\nmax_connections = 10\nmax_connections_per_ip = 11\n",
			line: 5, setting: "limits.max_connections_per_ip", msg: "11 is above limits.max_connections (10)"},
		{name: "line length below RFC", doc: withCert + "[limits]\nmax_line_length = 254\n",
			line: 4, setting: "limits.max_line_length", msg: "254 is below the RFC 2449 §4 minimum of 255"},
		{name: "line length too large", doc: withCert + "[limits]\nmax_line_length = 65537\n",
			line: 4, setting: "limits.max_line_length", msg: "65537 is above the maximum of 65536"},
		{name: "bad commands zero", doc: withCert + "[limits]\nmax_bad_commands = 0\n",
			line: 4, setting: "limits.max_bad_commands", msg: "0 is below the minimum of 1"},
		{name: "idle timeout below RFC", doc: withCert + "\n\n\n\n\n\n\n\n[limits]\nidle_timeout = \"5m\"\n",
			line: 12, setting: "limits.idle_timeout", msg: `"5m" is below the RFC 1939 §3 minimum of 10m`},
		{name: "write timeout zero", doc: withCert + "[limits]\nwrite_timeout = \"0s\"\n",
			line: 4, setting: "limits.write_timeout", msg: "must be more than 0"},
		{name: "handshake timeout negative", doc: withCert + "[limits]\ntls_handshake_timeout = \"-1s\"\n",
			line: 4, setting: "limits.tls_handshake_timeout", msg: `"-1s" must be more than 0`},
		{name: "auth failure delay too long", doc: withCert + "[limits]\nauth_failure_delay = \"61s\"\n",
			line: 4, setting: "limits.auth_failure_delay", msg: `"1m1s" is above the maximum of 1m`},
		{name: "auth failure delay negative", doc: withCert + "[limits]\nauth_failure_delay = \"-2s\"\n",
			line: 4, setting: "limits.auth_failure_delay", msg: `"-2s" is below the minimum of 0s`},

		// [users]
		{name: "passwd file empty", doc: withCert + "[users]\npasswd_file = \"\"\n",
			line: 4, setting: "users.passwd_file", msg: "must be set"},
		{name: "scheme unknown", doc: withCert + "[users]\ndefault_scheme = \"MD5-CRYPT\"\n",
			line: 4, setting: "users.default_scheme", msg: `"MD5-CRYPT" is not one of ARGON2ID, SHA512-CRYPT, BLF-CRYPT, SSHA512`},
		{name: "scheme lower case", doc: withCert + "[users]\ndefault_scheme = \"argon2id\"\n",
			line: 4, setting: "users.default_scheme", msg: "is not one of"},

		// [maildir]
		{name: "location empty", doc: withCert + "[maildir]\nlocation = \"\"\n",
			line: 4, setting: "maildir.location", msg: "must be set"},
		{name: "location without placeholder", doc: withCert + "[maildir]\nlocation = \"/srv/mail\"\n",
			line: 4, setting: "maildir.location", msg: "users would share maildrops"},
		{name: "location with domain only", doc: withCert + "[maildir]\nlocation = \"/srv/mail/{domain}\"\n",
			line: 4, setting: "maildir.location", msg: "does not contain {user}, {localpart} or {home}"},
		{name: "location unknown placeholder", doc: withCert + "[maildir]\nlocation = \"/srv/{usr}\"\n",
			line: 4, setting: "maildir.location", msg: "unknown placeholder {usr}"},
		{name: "location unmatched brace", doc: withCert + "[maildir]\nlocation = \"/srv/{user\"\n",
			line: 4, setting: "maildir.location", msg: "unmatched brace"},
		{name: "location home inside", doc: withCert + "[maildir]\nlocation = \"/srv/{home}/Maildir\"\n",
			line: 4, setting: "maildir.location", msg: "{home} after the start"},
		{name: "location starts with user", doc: withCert + "[maildir]\nlocation = \"{user}/Maildir\"\n",
			line: 4, setting: "maildir.location", msg: "not an absolute path once expanded"},
		{name: "lock lease short", doc: withCert + "[maildir]\nlock_lease = \"5s\"\n",
			line: 4, setting: "maildir.lock_lease", msg: `"5s" is below the minimum of 10s`},
		{name: "import_uidl unknown", doc: withCert + "[maildir]\nimport_uidl = \"cyrus\"\n",
			line: 4, setting: "maildir.import_uidl", msg: `"cyrus" is not one of`},
		{name: "dovecot_uidl_format unknown variable", doc: withCert + "[maildir]\ndovecot_uidl_format = \"%08Xq\"\n",
			line: 4, setting: "maildir.dovecot_uidl_format", msg: "unknown variable %q"},
		{name: "dovecot_uidl_format without variable", doc: withCert + "[maildir]\ndovecot_uidl_format = \"uidl\"\n",
			line: 4, setting: "maildir.dovecot_uidl_format", msg: "has no variable"},

		// [auth]
		{name: "unknown mechanism", doc: withCert + "[auth]\nmechanisms = [\"PLAIN\", \"DIGEST-MD5\"]\n",
			line: 4, setting: "auth.mechanisms[1]", msg: `"DIGEST-MD5" is not one of`},
		{name: "mechanism twice", doc: withCert + "[auth]\nmechanisms = [\"PLAIN\", \"PLAIN\"]\n",
			line: 4, setting: "auth.mechanisms[1]", msg: "listed twice"},
		{name: "oauth mechanism without oauth", doc: withCert + "[auth]\nmechanisms = [\"XOAUTH2\"]\n",
			line: 4, setting: "auth.mechanisms[0]", msg: "needs oauth.mode"},
		{name: "external without client ca", doc: withCert + "[auth]\nmechanisms = [\"EXTERNAL\"]\n",
			line: 4, setting: "auth.mechanisms[0]", msg: "needs tls.client_ca"},
		{name: "auth timeout", doc: withCert + "[auth]\ntimeout = \"0s\"\n",
			line: 4, setting: "auth.timeout", msg: "below the minimum of 1s"},
		{name: "penalty base negative", doc: withCert + "[auth]\npenalty_base = \"-1s\"\n",
			line: 4, setting: "auth.penalty_base", msg: `"-1s" is below the minimum of 0s`},
		{name: "penalty base too long", doc: withCert + "[auth]\npenalty_base = \"2m\"\npenalty_max = \"1m\"\n",
			line: 4, setting: "auth.penalty_base", msg: `"2m" is above the maximum of 1m`},
		{name: "penalty max below base", doc: withCert + "[auth]\npenalty_base = \"10s\"\npenalty_max = \"5s\"\n",
			line: 5, setting: "auth.penalty_max", msg: `"5s" is below auth.penalty_base (10s)`},
		{name: "penalty max below default base", doc: withCert + "[auth]\npenalty_max = \"1s\"\n",
			line: 4, setting: "auth.penalty_max", msg: "below auth.penalty_base (2s)"},
		{name: "penalty max too long", doc: withCert + "[auth]\npenalty_max = \"90s\"\n",
			line: 4, setting: "auth.penalty_max", msg: "above the maximum of 1m"},
		{name: "penalty window short", doc: withCert + "[auth]\npenalty_window = \"30s\"\n",
			line: 4, setting: "auth.penalty_window", msg: `"30s" is below the minimum of 1m`},
		{name: "penalty window long", doc: withCert + "[auth]\npenalty_window = \"25h\"\n",
			line: 4, setting: "auth.penalty_window", msg: "above the maximum of 24h"},
		{name: "trusted network host bits", doc: withCert + "[auth]\ntrusted_networks = [\"127.0.0.1\", \"192.0.2.1/24\"]\n",
			line: 4, setting: "auth.trusted_networks[1]", msg: `"192.0.2.1/24" has host bits set; did you mean "192.0.2.0/24"?`},
		{name: "trusted network name", doc: withCert + "[auth]\ntrusted_networks = [\"localhost\"]\n",
			line: 4, setting: "auth.trusted_networks[0]", msg: "neither an address nor a CIDR prefix"},
		{name: "trusted network mapped", doc: withCert + "[auth]\ntrusted_networks = [\"::ffff:192.0.2.0/120\"]\n",
			line: 4, setting: "auth.trusted_networks[0]", msg: "IPv4-mapped"},
		{name: "max tracked small", doc: withCert + "[auth]\nmax_tracked = 10\n",
			line: 4, setting: "auth.max_tracked", msg: "10 is below the minimum of 1000"},

		// [oauth]
		{name: "oauth mode", doc: withCert + "[oauth]\nmode = \"jwt\"\n",
			line: 4, setting: "oauth.mode", msg: `"jwt" is not one of none, introspection, jwks`},
		{name: "introspection without URL", doc: withCert + "[oauth]\nmode = \"introspection\"\nclient_id = \"pop\"\nclient_secret = \"s\"\n",
			line: 0, setting: "oauth.introspection_url", msg: `must be set when oauth.mode is "introspection"`},
		{name: "introspection over HTTP", doc: withCert + "[oauth]\nmode = \"introspection\"\nintrospection_url = \"http://auth.example.com/introspect\"\nclient_id = \"pop\"\nclient_secret = \"s\"\n",
			line: 5, setting: "oauth.introspection_url", msg: "plain HTTP"},
		{name: "introspection URL relative", doc: withCert + "[oauth]\nintrospection_url = \"/introspect\"\n",
			line: 4, setting: "oauth.introspection_url", msg: "not an absolute URL"},
		{name: "introspection URL with password", doc: withCert + "[oauth]\nintrospection_url = \"https://pop:hunter2@auth.example.com/\"\n",
			line: 4, setting: "oauth.introspection_url", msg: "has credentials in it"},
		{name: "introspection URL ftp", doc: withCert + "[oauth]\nintrospection_url = \"ftp://auth.example.com/\"\n",
			line: 4, setting: "oauth.introspection_url", msg: "not an https URL"},
		{name: "introspection without client", doc: withCert + "[oauth]\nmode = \"introspection\"\nintrospection_url = \"https://a.example/i\"\nclient_secret = \"s\"\n",
			line: 0, setting: "oauth.client_id", msg: "must be set when"},
		{name: "introspection without secret", doc: withCert + "[oauth]\nmode = \"introspection\"\nintrospection_url = \"https://a.example/i\"\nclient_id = \"pop\"\n",
			line: 0, setting: "oauth.client_secret", msg: "or oauth.client_secret_file"},
		{name: "two secrets", doc: withCert + "[oauth]\nclient_secret = \"s\"\nclient_secret_file = \"/etc/s\"\n",
			line: 4, setting: "oauth.client_secret", msg: "set one of them"},
		{name: "jwks without URL", doc: withCert + "[oauth]\nmode = \"jwks\"\nissuer = \"https://a.example\"\naudience = \"pop\"\n",
			line: 0, setting: "oauth.jwks_url", msg: `must be set when oauth.mode is "jwks"`},
		{name: "jwks without issuer", doc: withCert + "[oauth]\nmode = \"jwks\"\njwks_url = \"https://a.example/jwks\"\naudience = \"pop\"\n",
			line: 0, setting: "oauth.issuer", msg: "must be set when"},
		{name: "jwks without audience", doc: withCert + "[oauth]\nmode = \"jwks\"\njwks_url = \"https://a.example/jwks\"\nissuer = \"https://a.example\"\n",
			line: 0, setting: "oauth.audience", msg: "must be set when"},
		{name: "scope with space", doc: withCert + "[oauth]\nrequired_scope = \"mail pop\"\n",
			line: 4, setting: "oauth.required_scope", msg: "is not one RFC 6749 §3.3 scope"},
		{name: "claim with space", doc: withCert + "[oauth]\nusername_claim = \"user name\"\n",
			line: 4, setting: "oauth.username_claim", msg: "is not a claim name"},
		{name: "oauth timeout zero", doc: withCert + "[oauth]\ntimeout = \"0s\"\n",
			line: 4, setting: "oauth.timeout", msg: "below the minimum"},
		{name: "oauth timeout long", doc: withCert + "[oauth]\ntimeout = \"2m\"\n",
			line: 4, setting: "oauth.timeout", msg: "above the maximum of 1m"},
		{name: "cache ttl long", doc: withCert + "[oauth]\ncache_ttl = \"2h\"\n",
			line: 4, setting: "oauth.cache_ttl", msg: "above the maximum of 1h"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkFailure(t, tc)
		})
	}
}

// TestDecodeErrors covers what go-toml finds: syntax, types, unknown keys,
// and the text values checked before decoding. These errors carry the
// column too.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []failure{
		{name: "unknown key", doc: withCert + "[limits]\nidle_timout = \"10m\"\n",
			line: 4, column: 1, setting: "limits.idle_timout", msg: "unknown setting; did you mean limits.idle_timeout?"},
		{name: "key in wrong table", doc: withCert + "[server]\nidle_timeout = \"10m\"\n",
			line: 4, column: 1, setting: "server.idle_timeout", msg: "did you mean limits.idle_timeout?"},
		{name: "unknown table", doc: withCert + "[limit]\nmax_connections = 5\n",
			line: 3, column: 2, setting: "limit", msg: "unknown setting; did you mean limits?"},
		{name: "unknown key without suggestion", doc: withCert + "[pop3]\nsmtp_relay = true\n",
			line: 4, column: 1, setting: "pop3.smtp_relay", msg: "unknown setting"},
		{name: "string for integer", doc: withCert + "[limits]\nmax_connections = \"5\"\n",
			line: 4, column: 19, setting: "limits.max_connections", msg: "expected an integer, not a string"},
		{name: "integer for boolean", doc: withCert + "[pop3]\napop = 1\n",
			line: 4, column: 8, setting: "pop3.apop", msg: "expected true or false, not an integer"},
		{name: "string for list", doc: withCert + "[pop3]\nlisten = \"[::]:110\"\n",
			line: 4, column: 10, setting: "pop3.listen", msg: `expected a list of strings such as ["[::]:110"], not a string`},
		{name: "integer in list", doc: withCert + "[pop3]\nlisten = [\"[::]:110\", 995]\n",
			line: 4, column: 23, setting: "pop3.listen[1]", msg: "expected a string, not an integer"},
		{name: "table for string", doc: withCert + "[log]\nfile = { path = \"x\" }\n",
			line: 4, column: 8, setting: "log.file", msg: "expected a string, not an inline table"},
		{name: "dotted key below a setting", doc: withCert + "[maildir]\nlocation.deep = 1\n",
			line: 4, column: 10, setting: "maildir.location", msg: "expected a string, not a table"},
		{name: "array in list", doc: withCert + "[pop3]\nlisten = [[\"[::]:110\"]]\n",
			line: 4, column: 1, setting: "pop3.listen", msg: "expected a string, not an array"},
		{name: "inline table in list", doc: withCert + "[pop3]\nlisten = [{ addr = \"[::]:110\" }]\n",
			line: 4, column: 11, setting: "pop3.listen[0]", msg: "expected a string, not an inline table"},
		{name: "table for section", doc: withCert + "pop3 = 110\n",
			line: 3, column: 8, setting: "pop3", msg: "expected a table, not an integer"},
		{name: "date for boolean", doc: withCert + "pop3.apop = 2024-01-01\n",
			line: 3, column: 13, setting: "pop3.apop", msg: "expected true or false, not a local date"},
		{name: "integer too large", doc: withCert + "[limits]\nmax_connections = 99999999999999999999\n",
			line: 4, column: 19, setting: "limits.max_connections", msg: "too large"},
		{name: "duration as integer", doc: withCert + "[limits]\nidle_timeout = 600\n",
			line: 4, column: 1, setting: "limits.idle_timeout", msg: `expected a duration string such as "30s" or "10m", not an integer`},
		{name: "duration as boolean", doc: withCert + "[server]\nshutdown_timeout = true\n",
			line: 4, column: 1, setting: "server.shutdown_timeout", msg: "not a boolean"},
		{name: "duration as table", doc: withCert + "[maildir.lock_lease]\n",
			line: 3, column: 2, setting: "maildir.lock_lease", msg: "not a table"},
		{name: "duration without unit", doc: withCert + "[limits]\nwrite_timeout = \"60\"\n",
			line: 4, column: 17, setting: "limits.write_timeout", msg: `"60" is not a duration such as "30s" or "10m"`},
		{name: "expire word", doc: withCert + "[pop3]\nexpire = \"soon\"\n",
			line: 4, column: 10, setting: "pop3.expire", msg: `"soon" must be "never" or a whole number of days`},
		{name: "expire negative", doc: withCert + "[pop3]\nexpire = -1\n",
			line: 4, column: 1, setting: "pop3.expire", msg: `"-1" must be "never" or a whole number of days`},
		{name: "expire hexadecimal", doc: withCert + "[pop3]\nexpire = 0x10\n",
			line: 4, column: 1, setting: "pop3.expire", msg: "whole number of days"},
		{name: "expire float", doc: withCert + "[pop3]\nexpire = 1.5\n",
			line: 4, column: 1, setting: "pop3.expire", msg: "not a float"},
		{name: "syntax error", doc: withCert + "[pop3]\nlisten = [\n",
			line: 4, column: 11, setting: "", msg: "array is incomplete"},
		{name: "duplicate key", doc: withCert + "[server]\nhostname = \"a\"\nhostname = \"b\"\n",
			line: 5, column: 1, setting: "server.hostname", msg: "already defined"},
		{name: "dotted key position", doc: withCert + "\nlimits.idle_timeout = \"1m\"\n",
			line: 4, setting: "limits.idle_timeout", msg: "RFC 1939 §3"},
		{name: "inline table position", doc: withCert + "limits = {\n  max_bad_commands = 0,\n}\n",
			line: 4, setting: "limits.max_bad_commands", msg: "below the minimum of 1"},
		{name: "CRLF line endings", doc: "tls.cert = \"/c\"\r\ntls.key = \"/k\"\r\n[limits]\r\nidle_timeout = \"9m\"\r\n",
			line: 4, setting: "limits.idle_timeout", msg: "minimum of 10m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkFailure(t, tc)
		})
	}
}

// TestSeveralProblems checks that every problem is reported, in file
// order, with the problems about defaults last.
func TestSeveralProblems(t *testing.T) {
	t.Parallel()
	doc := "[maildir]\nlock_lease = \"1s\"\n[log]\nlevel = \"loud\"\n"
	_, err := Parse("po.toml", []byte(doc))
	if err == nil {
		t.Fatal("Parse accepted an invalid file")
	}
	want := []string{
		"po.toml:2: maildir.lock_lease: ",
		"po.toml:4: log.level: ",
		"po.toml: pop3.listen_tls: ",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, line := range lines {
		if !strings.HasPrefix(line, want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, line, want[i])
		}
	}
}

// TestSeveralUnknownKeys checks that go-toml's StrictMissingError is
// unpacked into one problem per key.
func TestSeveralUnknownKeys(t *testing.T) {
	t.Parallel()
	doc := withCert + "[server]\nname = \"x\"\n[pop3]\nport = 110\n"
	_, err := Parse("po.toml", []byte(doc))
	if err == nil {
		t.Fatal("Parse accepted unknown keys")
	}
	got := err.Error()
	for _, want := range []string{"po.toml:4:1: server.name: unknown setting", "po.toml:6:1: pop3.port: unknown setting"} {
		if !strings.Contains(got, want) {
			t.Errorf("error:\n%s\nwant it to contain %q", got, want)
		}
	}
}

// TestValidValues checks edge values each rule must accept.
func TestValidValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		doc   string
		check func(*Config) bool
	}{
		{"expire zero", "[pop3]\nexpire = 0\n", func(c *Config) bool { return c.POP3.Expire == Expire{Days: 0, Set: true} }},
		{"expire integer", "[pop3]\nexpire = 30\n", func(c *Config) bool { return c.POP3.Expire == Expire{Days: 30, Set: true} }},
		{"expire string", "[pop3]\nexpire = \"30\"\n", func(c *Config) bool { return c.POP3.Expire == Expire{Days: 30, Set: true} }},
		{"expire NEVER", "[pop3]\nexpire = \"NEVER\"\n", func(c *Config) bool { return c.POP3.Expire == Expire{} }},
		{"expire maximum", "[pop3]\nexpire = 36500\n", func(c *Config) bool { return c.POP3.Expire.Days == 36500 }},
		{"login delay", "[pop3]\nlogin_delay = \"15m\"\n", func(c *Config) bool { return c.POP3.LoginDelay.Minutes() == 15 }},
		{"no auth delay", "[limits]\nauth_failure_delay = \"0s\"\n", func(c *Config) bool { return c.Limits.AuthFailureDelay.Duration == 0 }},
		{"longest auth delay", "[limits]\nauth_failure_delay = \"1m\"\n", func(c *Config) bool { return c.Limits.AuthFailureDelay.Seconds() == 60 }},
		{"line length bounds", "[limits]\nmax_line_length = 65536\n", func(c *Config) bool { return c.Limits.MaxLineLength == 65536 }},
		{"per-IP equals total", "[limits]\nmax_connections = 5\nmax_connections_per_ip = 5\n", func(c *Config) bool { return c.Limits.MaxConnectionsPerIP == 5 }},
		{"TLS 1.3", "tls.min_version = \"1.3\"\n", func(c *Config) bool { return c.TLS.MinVersion == "1.3" }},
		{"listen forms", "[pop3]\nlisten = [\":110\", \"localhost:1110\", \"[fe80::1%eth0]:110\", \"192.0.2.1:110\"]\n",
			func(c *Config) bool { return len(c.POP3.Listen) == 4 }},
		{"hidden implementation", "[server]\nimplementation = \"\"\n", func(c *Config) bool { return c.Server.Implementation == "" }},
		{"hostname", "[server]\nhostname = \"pop.example.com\"\n", func(c *Config) bool { return c.Server.Hostname == "pop.example.com" }},
		{"location with localpart", "[maildir]\nlocation = \"/srv/{domain}/{localpart}\"\n",
			func(c *Config) bool { return c.Maildir.Location == "/srv/{domain}/{localpart}" }},
		{"SCRAM default scheme", "[users]\ndefault_scheme = \"SCRAM-SHA-256\"\n", func(c *Config) bool { return c.Users.DefaultScheme == "SCRAM-SHA-256" }},
		{"SCRAM-SHA-1 default scheme", "[users]\ndefault_scheme = \"SCRAM-SHA-1\"\n", func(c *Config) bool { return c.Users.DefaultScheme == "SCRAM-SHA-1" }},
		{"penalty disabled", "[auth]\npenalty_base = \"0s\"\npenalty_max = \"0s\"\n", func(c *Config) bool { return c.Auth.PenaltyBase.Duration == 0 }},
		{"penalty base equals max", "[auth]\npenalty_base = \"1m\"\npenalty_max = \"1m\"\n", func(c *Config) bool { return c.Auth.PenaltyMax.Minutes() == 1 }},
		{"introspection", "[oauth]\nmode = \"introspection\"\nintrospection_url = \"https://auth.example.com/introspect\"\nclient_id = \"pop\"\nclient_secret_file = \"oauth-secret\"\ncache_ttl = \"0s\"\n",
			func(c *Config) bool {
				return c.OAuth.ClientSecretFile == "/etc/postoffice/oauth-secret" && c.OAuth.CacheTTL.Duration == 0
			}},
		{"introspection on loopback", "[oauth]\nmode = \"introspection\"\nintrospection_url = \"http://127.0.0.1:8080/introspect\"\nclient_id = \"pop\"\nclient_secret = \"s\"\n",
			func(c *Config) bool { return c.OAuth.Mode == "introspection" }},
		{"introspection on localhost", "[oauth]\nmode = \"introspection\"\nintrospection_url = \"http://localhost/introspect\"\nclient_id = \"pop\"\nclient_secret = \"s\"\n",
			func(c *Config) bool { return c.OAuth.Mode == "introspection" }},
		{"jwks", "[oauth]\nmode = \"jwks\"\njwks_url = \"https://auth.example.com/jwks\"\nissuer = \"https://auth.example.com\"\naudience = \"pop.example.com\"\nrequired_scope = \"mail:pop\"\nusername_claim = \"https://example.com/claims/mailbox\"\n",
			func(c *Config) bool { return c.OAuth.Mode == "jwks" && c.OAuth.RequiredScope == "mail:pop" }},
		{"jwks on IPv6 loopback", "[oauth]\nmode = \"jwks\"\njwks_url = \"http://[::1]:8080/jwks\"\nissuer = \"i\"\naudience = \"a\"\n",
			func(c *Config) bool { return c.OAuth.JWKSURL == "http://[::1]:8080/jwks" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse("/etc/postoffice/postoffice.toml", []byte(withCert+tc.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected result: %+v", c)
			}
		})
	}
}

// TestImplicitTLSDisabledNeedsNoCertificate checks the way out the
// listen_tls error suggests.
func TestImplicitTLSDisabledNeedsNoCertificate(t *testing.T) {
	t.Parallel()
	c, err := Parse("po.toml", []byte("[pop3]\nlisten_tls = []\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(c.POP3.ListenTLS) != 0 || len(c.POP3.Listen) != 1 {
		t.Errorf("listeners = %q, %q; want [[::]:110], []", c.POP3.Listen, c.POP3.ListenTLS)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"limits.idle_timout":   "limits.idle_timeout", // typo
		"server.idle_timeout":  "limits.idle_timeout", // wrong table
		"pop3.cert":            "tls.cert",
		"limit":                "limits",
		"tls.min_versoin":      "tls.min_version",
		"x":                    "", // too short to guess
		"pop3.smtp_relay":      "",
		"completely.unrelated": "",
	}
	for unknown, want := range tests {
		if got := suggest(unknown); got != want {
			t.Errorf("suggest(%q) = %q, want %q", unknown, got, want)
		}
	}
}
