package config

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// validDefault is Default with the certificate the default implicit-TLS
// listener needs, matching withCert.
func validDefault() *Config {
	c := Default()
	c.TLS.Cert = "/etc/postoffice/cert.pem"
	c.TLS.Key = "/etc/postoffice/key.pem"
	return c
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	if c.Server.Hostname == "" {
		t.Error("Default().Server.Hostname is empty, want the system host name")
	}
	checks := []struct {
		setting   string
		got, want any
	}{
		{"server.implementation", c.Server.Implementation, "postoffice"},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout.Duration, 30 * time.Second},
		{"server.state_dir", c.Server.StateDir, "/var/lib/postoffice"},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"log.file", c.Log.File, ""},
		{"pop3.listen", c.POP3.Listen, []string{"[::]:110"}},
		{"pop3.listen_tls", c.POP3.ListenTLS, []string{"[::]:995"}},
		{"pop3.allow_insecure_auth", c.POP3.AllowInsecureAuth, false},
		{"pop3.apop", c.POP3.APOP, false},
		{"pop3.expire", c.POP3.Expire, Expire{}},
		{"pop3.login_delay", c.POP3.LoginDelay.Duration, time.Duration(0)},
		{"tls.cert", c.TLS.Cert, ""},
		{"tls.key", c.TLS.Key, ""},
		{"tls.min_version", c.TLS.MinVersion, "1.2"},
		{"limits.max_connections", c.Limits.MaxConnections, 1000},
		{"limits.max_connections_per_ip", c.Limits.MaxConnectionsPerIP, 20},
		{"limits.max_line_length", c.Limits.MaxLineLength, 255},
		{"limits.max_bad_commands", c.Limits.MaxBadCommands, 20},
		{"limits.idle_timeout", c.Limits.IdleTimeout.Duration, 10 * time.Minute},
		{"limits.write_timeout", c.Limits.WriteTimeout.Duration, 60 * time.Second},
		{"limits.tls_handshake_timeout", c.Limits.TLSHandshakeTimeout.Duration, 30 * time.Second},
		{"limits.auth_failure_delay", c.Limits.AuthFailureDelay.Duration, 2 * time.Second},
		{"users.passwd_file", c.Users.PasswdFile, "/etc/postoffice/passwd"},
		{"users.default_scheme", c.Users.DefaultScheme, "ARGON2ID"},
		{"maildir.location", c.Maildir.Location, "{home}/Maildir"},
		{"maildir.lock_lease", c.Maildir.LockLease.Duration, 2 * time.Minute},
		{"auth.penalty_base", c.Auth.PenaltyBase.Duration, 2 * time.Second},
		{"auth.penalty_max", c.Auth.PenaltyMax.Duration, 15 * time.Second},
		{"auth.penalty_window", c.Auth.PenaltyWindow.Duration, 15 * time.Minute},
		{"auth.trusted_networks", c.Auth.TrustedNetworks, []string{}},
		{"auth.max_tracked", c.Auth.MaxTracked, 100000},
		{"oauth.mode", c.OAuth.Mode, "none"},
		{"oauth.introspection_url", c.OAuth.IntrospectionURL, ""},
		{"oauth.client_id", c.OAuth.ClientID, ""},
		{"oauth.client_secret", c.OAuth.ClientSecret, ""},
		{"oauth.client_secret_file", c.OAuth.ClientSecretFile, ""},
		{"oauth.jwks_url", c.OAuth.JWKSURL, ""},
		{"oauth.issuer", c.OAuth.Issuer, ""},
		{"oauth.audience", c.OAuth.Audience, ""},
		{"oauth.required_scope", c.OAuth.RequiredScope, ""},
		{"oauth.username_claim", c.OAuth.UsernameClaim, ""},
		{"oauth.timeout", c.OAuth.Timeout.Duration, 10 * time.Second},
		{"oauth.cache_ttl", c.OAuth.CacheTTL.Duration, 5 * time.Minute},
	}
	for _, check := range checks {
		if !reflect.DeepEqual(check.got, check.want) {
			t.Errorf("%s = %v, want %v", check.setting, check.got, check.want)
		}
	}
	if c.TLSMinVersion() != tls.VersionTLS12 {
		t.Errorf("TLSMinVersion() = %#x, want TLS 1.2", c.TLSMinVersion())
	}
	if days, set := c.ExpireDays(); days != -1 || set {
		t.Errorf("ExpireDays() = %d, %v; want -1, false", days, set)
	}
	// Default must not share slices between calls: a caller editing one
	// configuration must not change the next.
	c.POP3.Listen[0] = "changed"
	if Default().POP3.Listen[0] != "[::]:110" {
		t.Error("Default() shares its listen slice between calls")
	}
}

// TestValidDefaultPasses checks that the defaults satisfy every rule once
// the certificate is given.
func TestValidDefaultPasses(t *testing.T) {
	t.Parallel()
	if problems := validate(validDefault()); len(problems) > 0 {
		t.Errorf("validate(default) = %v", problems)
	}
}

// TestMissingSettingsTakeDefaults checks that a partial file changes only
// what it sets.
func TestMissingSettingsTakeDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse("/etc/postoffice/postoffice.toml", []byte(withCert+"[limits]\nmax_connections = 50\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := validDefault()
	want.Limits.MaxConnections = 50
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", c, want)
	}
}

// TestListReplacesDefault checks that a list in the file replaces the
// default list rather than being appended to it.
func TestListReplacesDefault(t *testing.T) {
	t.Parallel()
	c, err := Parse("po.toml", []byte(withCert+"[pop3]\nlisten = [\"127.0.0.1:1110\"]\nlisten_tls = []\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !reflect.DeepEqual(c.POP3.Listen, []string{"127.0.0.1:1110"}) || len(c.POP3.ListenTLS) != 0 {
		t.Errorf("listen = %q, listen_tls = %q; want [127.0.0.1:1110], []", c.POP3.Listen, c.POP3.ListenTLS)
	}
}

func TestEmptyHostnameMeansSystemName(t *testing.T) {
	t.Parallel()
	c, err := Parse("po.toml", []byte(withCert+"[server]\nhostname = \"\"\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Server.Hostname != defaultHostname() {
		t.Errorf("hostname = %q, want %q", c.Server.Hostname, defaultHostname())
	}
}

func TestTLSMinVersion(t *testing.T) {
	t.Parallel()
	for version, want := range map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		c := Default()
		c.TLS.MinVersion = version
		if got := c.TLSMinVersion(); got != want {
			t.Errorf("TLSMinVersion() for %q = %#x, want %#x", version, got, want)
		}
	}
}

func TestExpireDays(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value    string
		wantDays int
		wantSet  bool
	}{
		{`"never"`, -1, false},
		{`0`, 0, true},
		{`"0"`, 0, true},
		{`7`, 7, true},
	}
	if never, three := (Expire{}).String(), (Expire{Days: 3, Set: true}).String(); never != "never" || three != "3" {
		t.Errorf("Expire.String() = %q, %q; want never, 3", never, three)
	}
	for _, tc := range tests {
		c, err := Parse("po.toml", []byte(withCert+"pop3.expire = "+tc.value+"\n"))
		if err != nil {
			t.Fatalf("expire = %s: %v", tc.value, err)
		}
		if days, set := c.ExpireDays(); days != tc.wantDays || set != tc.wantSet {
			t.Errorf("expire = %s: ExpireDays() = %d, %v; want %d, %v", tc.value, days, set, tc.wantDays, tc.wantSet)
		}
	}
}

// TestTextRoundTrip checks that the TOML encoding of a configuration (as
// a "show configuration" command would print it) reads back the same.
func TestTextRoundTrip(t *testing.T) {
	t.Parallel()
	want := validDefault()
	want.POP3.Expire = Expire{Days: 3, Set: true}
	want.Limits.IdleTimeout = Duration{90 * time.Minute}
	data, err := toml.Marshal(want)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	for _, text := range []string{`idle_timeout = '1h30m'`, `expire = '3'`, `lock_lease = '2m'`} {
		if !strings.Contains(string(data), text) {
			t.Errorf("encoding lacks %s:\n%s", text, data)
		}
	}
	got, err := Parse("/po.toml", data)
	if err != nil {
		t.Fatalf("Parse(Marshal(c)): %v\n%s", err, data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip =\n%+v\nwant\n%+v", got, want)
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                                    "0s",
		1500 * time.Millisecond:              "1.5s",
		10 * time.Minute:                     "10m",
		time.Hour:                            "1h",
		time.Hour + 30*time.Minute:           "1h30m",
		time.Hour + 5*time.Second:            "1h0m5s",
		-time.Minute:                         "-1m",
		10*time.Minute + 30*time.Second:      "10m30s",
		100*time.Hour + 10*time.Minute:       "100h10m",
		2*time.Minute + 500*time.Microsecond: "2m0.0005s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestPathResolution checks that relative paths are taken from the
// directory of the configuration file, whatever the working directory.
func TestPathResolution(t *testing.T) {
	dir := t.TempDir()
	doc := `
[server]
state_dir = "state"
[log]
file = "log/postoffice.log"
[tls]
cert = "tls/cert.pem"
key = "/abs/key.pem"
[users]
passwd_file = "passwd"
[maildir]
location = "mail/{user}"
[oauth]
client_secret_file = "secrets/oauth"
`
	path := filepath.Join(dir, "postoffice.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	// Load from another working directory, with a relative path, so that
	// the result can only be right if Load made the directory absolute.
	t.Chdir(filepath.Dir(dir))
	c, err := Load(filepath.Join(filepath.Base(dir), "postoffice.toml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct{ setting, got, want string }{
		{"server.state_dir", c.Server.StateDir, filepath.Join(dir, "state")},
		{"log.file", c.Log.File, filepath.Join(dir, "log", "postoffice.log")},
		{"tls.cert", c.TLS.Cert, filepath.Join(dir, "tls", "cert.pem")},
		{"tls.key", c.TLS.Key, "/abs/key.pem"},
		{"users.passwd_file", c.Users.PasswdFile, filepath.Join(dir, "passwd")},
		{"maildir.location", c.Maildir.Location, filepath.Join(dir, "mail", "{user}")},
		{"oauth.client_secret_file", c.OAuth.ClientSecretFile, filepath.Join(dir, "secrets", "oauth")},
	}
	for _, check := range checks {
		if check.got != check.want {
			t.Errorf("%s = %q, want %q", check.setting, check.got, check.want)
		}
	}
}

// TestPathResolutionParse checks that Parse resolves against the
// directory of name as written, and leaves alone what is not a path yet.
func TestPathResolutionParse(t *testing.T) {
	t.Parallel()
	doc := withCert + "[log]\nfile = \"po.log\"\n[users]\npasswd_file = \"../passwd\"\n[maildir]\nlocation = \"{home}/mail\"\n"
	c, err := Parse("/etc/postoffice/postoffice.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Log.File != "/etc/postoffice/po.log" || c.Users.PasswdFile != "/etc/passwd" || c.Maildir.Location != "{home}/mail" {
		t.Errorf("paths = %q, %q, %q", c.Log.File, c.Users.PasswdFile, c.Maildir.Location)
	}

	// A relative name gives relative paths, and so a maildir location
	// that is not absolute.
	_, err = Parse("conf/postoffice.toml", []byte(withCert+"[maildir]\nlocation = \"mail/{user}\"\n"))
	if err == nil || !strings.Contains(err.Error(), `"conf/mail/{user}" is not an absolute path`) {
		t.Errorf("Parse with relative name: %v, want a relative maildir.location error", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "absent.toml")
	_, err := Load(path)
	var cerr *Error
	if !errors.As(err, &cerr) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(absent) = %v, want an *Error wrapping os.ErrNotExist", err)
	}
	if want := path + ": read configuration: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want prefix %q", err, want)
	}
}

// TestExampleFile checks that postoffice.example.toml loads, equals the
// defaults apart from the certificate paths it has to set, and shows every
// setting.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "../postoffice.example.toml"
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.TLS.Cert = "/etc/postoffice/tls/fullchain.pem"
	want.TLS.Key = "/etc/postoffice/tls/privkey.pem"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("example file =\n%+v\nwant defaults\n%+v", c, want)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := indexDocument(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range settingNames {
		if _, ok := idx.lookup(name); !ok {
			t.Errorf("example file does not show %s", name)
		}
	}
}

// TestDocumentation checks that docs/configuration.md, which explains
// the tables, has a section for every table. The settings themselves are
// in docs/config-reference.md, generated from the structs (see
// TestReferenceUpToDate).
func TestDocumentation(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, name := range settingNames {
		if strings.Contains(name, ".") {
			continue
		}
		if !strings.Contains(doc, "## `["+name+"]`") {
			t.Errorf("docs/configuration.md has no section for [%s]", name)
		}
		if !strings.Contains(doc, "(config-reference.md#"+name+")") {
			t.Errorf("docs/configuration.md does not link [%s] to its settings in config-reference.md", name)
		}
	}
}

// TestConcurrentParse gives the race detector something to look at: Parse
// shares only read-only package state.
func TestConcurrentParse(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../postoffice.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for range 4 {
		go func() {
			_, err := Parse("/etc/postoffice/postoffice.toml", data)
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestFileTooLarge checks the size bound, which also keeps Load from
// reading a device forever.
func TestFileTooLarge(t *testing.T) {
	t.Parallel()
	big := []byte(withCert + "#" + strings.Repeat("x", maxFileSize) + "\n")
	if _, err := Parse("big.toml", big); !errors.Is(err, errTooLarge) {
		t.Errorf("Parse(%d bytes) = %v, want errTooLarge", len(big), err)
	}
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	if _, err := Load("/dev/zero"); !errors.Is(err, errTooLarge) {
		t.Errorf("Load(/dev/zero) = %v, want errTooLarge", err)
	}
}

// TestManyProblemsAreCut checks that a file full of mistakes gives a
// screenful, not thousands of lines.
func TestManyProblemsAreCut(t *testing.T) {
	t.Parallel()
	var doc strings.Builder
	for i := range 100 {
		doc.WriteString("unknown" + strings.Repeat("x", i) + " = 1\n")
	}
	_, err := Parse("po.toml", []byte(doc.String()))
	if err == nil {
		t.Fatal("Parse accepted unknown keys")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxProblems+1 || lines[maxProblems] != "po.toml: 80 more problems not shown" {
		t.Errorf("got %d lines, last %q; want %d and the count of the rest", len(lines), lines[len(lines)-1], maxProblems+1)
	}
	if !strings.HasPrefix(lines[0], "po.toml:1:1: unknown: ") {
		t.Errorf("first problem = %q, want the first line's", lines[0])
	}
}

// TestLoadErrorNamesPath checks that Load's errors name the path as the
// caller gave it, with the line, like Parse's.
func TestLoadErrorNamesPath(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "postoffice.toml")
	if err := os.WriteFile(path, []byte(withCert+"[limits]\nmax_bad_commands = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ":4: limits.max_bad_commands: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load = %v, want prefix %q", err, want)
	}
}

func TestTrustedNetworks(t *testing.T) {
	t.Parallel()
	c, err := Parse("po.toml", []byte(withCert+"[auth]\ntrusted_networks = [\"192.0.2.10\", \"2001:db8::/32\", \"::ffff:198.51.100.7\", \"10.0.0.0/8\"]\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.10/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("198.51.100.7/32"), // unmapped
		netip.MustParsePrefix("10.0.0.0/8"),
	}
	if got := c.TrustedNetworks(); !reflect.DeepEqual(got, want) {
		t.Errorf("TrustedNetworks() = %v, want %v", got, want)
	}
	// A hand-built configuration with a bad entry trusts nothing extra.
	c.Auth.TrustedNetworks = []string{"nonsense", "127.0.0.1"}
	if got := c.TrustedNetworks(); len(got) != 1 || got[0] != netip.MustParsePrefix("127.0.0.1/32") {
		t.Errorf("TrustedNetworks() with a bad entry = %v", got)
	}
	if got := Default().TrustedNetworks(); len(got) != 0 {
		t.Errorf("default TrustedNetworks() = %v, want none", got)
	}
}
