// Package config reads postoffice's TOML configuration file.
//
// Load and Parse are strict: a key the schema does not know, a value of the
// wrong type and a value out of range are all errors, and every error names
// the file, the line and the setting, for example
//
//	postoffice.toml:12: limits.idle_timeout: "5m" is below the RFC 1939 §3 minimum of 10m
//
// A configuration that loads is complete and valid: settings missing from
// the file take the values of Default, and relative file paths are resolved
// against the directory of the configuration file, so that the server does
// not depend on the directory it was started from.
//
// docs/configuration.md describes every setting; postoffice.example.toml is
// the default file, commented.
package config

import (
	"crypto/tls"
	"net/netip"
	"os"
	"time"
)

// Config is the whole configuration file. Each field is one TOML table.
type Config struct {
	// Server is the [server] table: identity and process lifetime.
	Server Server `toml:"server"`
	// Log is the [log] table.
	Log Log `toml:"log"`
	// POP3 is the [pop3] table: listeners and protocol policy.
	POP3 POP3 `toml:"pop3"`
	// LMTP is the [lmtp] table: the listener mail transfer agents
	// deliver to.
	LMTP LMTP `toml:"lmtp"`
	// Delivery is the [delivery] table: how mail is put into maildrops.
	Delivery Delivery `toml:"delivery"`
	// Quota is the [quota] table: per-user limits.
	Quota Quota `toml:"quota"`
	// TLS is the [tls] table: certificate for STLS and implicit TLS.
	TLS TLS `toml:"tls"`
	// Limits is the [limits] table: resource bounds and timeouts.
	Limits Limits `toml:"limits"`
	// Users is the [users] table: the user database.
	Users Users `toml:"users"`
	// Maildir is the [maildir] table: where maildrops live.
	Maildir Maildir `toml:"maildir"`
	// Store is the [store] table: which store keeps the maildrops.
	Store Store `toml:"store"`
	// Postgres is the [postgres] table: the database of the PostgreSQL
	// store and user database.
	Postgres Postgres `toml:"postgres"`
	// Auth is the [auth] table: the defence against password guessing.
	Auth Auth `toml:"auth"`
	// OAuth is the [oauth] table: OAuth 2.0 bearer tokens (SASL
	// OAUTHBEARER and XOAUTH2).
	OAuth OAuth `toml:"oauth"`
	// Admin is the [admin] table: the monitoring HTTP listener
	// (metrics, health and readiness), off by default.
	Admin Admin `toml:"admin"`
}

// Server is the [server] table.
type Server struct {
	// Hostname appears in the greeting and in APOP timestamps. Empty in
	// the file means os.Hostname(); after Load it is never empty.
	Hostname string `toml:"hostname"`
	// Implementation is the RFC 2449 IMPLEMENTATION capability text;
	// empty hides it, which some operators prefer so as not to advertise
	// the server software.
	Implementation string `toml:"implementation"`
	// ShutdownTimeout is how long a graceful shutdown waits for sessions
	// to end before closing them.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// StateDir is reserved for server state. It is required now so that
	// a future release that uses it does not break existing files.
	StateDir string `toml:"state_dir"`
}

// Log is the [log] table: what the server logs, and where.
type Log struct {
	// Level is the minimum level logged: debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text or json (log/slog's two handlers).
	Format string `toml:"format"`
	// File is the log file; empty means standard error.
	File string `toml:"file"`
}

// POP3 is the [pop3] table.
type POP3 struct {
	// Listen lists host:port addresses for plain POP3, upgraded with STLS
	// (RFC 2595) when TLS is configured. Empty disables plain POP3.
	Listen []string `toml:"listen"`
	// ListenTLS lists host:port addresses for implicit TLS (RFC 8314,
	// port 995). It requires TLS.Cert and TLS.Key. Empty disables it.
	ListenTLS []string `toml:"listen_tls"`
	// ProxyProtocolFrom lists the addresses and CIDR prefixes of load
	// balancers whose connections start with a PROXY protocol header
	// (v1 or v2) naming the real client; see Config.ProxyNetworks.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
	// AllowInsecureAuth permits USER/PASS and APOP on unencrypted
	// connections from non-loopback addresses, which RFC 2595 §2.1 and
	// RFC 8314 advise against.
	AllowInsecureAuth bool `toml:"allow_insecure_auth"`
	// APOP enables the RFC 1939 §7 APOP command and the greeting
	// timestamp it needs.
	APOP bool `toml:"apop"`
	// Expire is the RFC 2449 EXPIRE policy; see Config.ExpireDays.
	Expire Expire `toml:"expire"`
	// LoginDelay is the RFC 2449 LOGIN-DELAY: the minimum time between two
	// logins of one user, in whole seconds. 0 disables it.
	LoginDelay Duration `toml:"login_delay"`
}

// TLS is the [tls] table.
type TLS struct {
	// Cert is the PEM certificate chain file, leaf first.
	Cert string `toml:"cert"`
	// Key is the PEM private key file for Cert.
	Key string `toml:"key"`
	// MinVersion is "1.2" or "1.3"; see Config.TLSMinVersion.
	MinVersion string `toml:"min_version"`
	// ClientCA is a PEM file of certificate authorities whose client
	// certificates the server accepts for SASL EXTERNAL; "" asks for
	// none.
	ClientCA string `toml:"client_ca"`
}

// Limits is the [limits] table. Its field names match pop3server.Config.
type Limits struct {
	// MaxConnections bounds simultaneous connections.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP bounds simultaneous connections from one address.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxLineLength bounds a command line including CRLF; RFC 2449 §4
	// requires at least 255.
	MaxLineLength int `toml:"max_line_length"`
	// MaxBadCommands closes a session after that many -ERR replies.
	MaxBadCommands int `toml:"max_bad_commands"`
	// IdleTimeout is the inactivity autologout timer; RFC 1939 §3
	// requires at least 10 minutes.
	IdleTimeout Duration `toml:"idle_timeout"`
	// WriteTimeout bounds each write to a client.
	WriteTimeout Duration `toml:"write_timeout"`
	// TLSHandshakeTimeout bounds a TLS handshake.
	TLSHandshakeTimeout Duration `toml:"tls_handshake_timeout"`
	// AuthFailureDelay is the pause before answering a failed login, which
	// slows down password guessing. 0 is allowed but unsafe.
	AuthFailureDelay Duration `toml:"auth_failure_delay"`
}

// Users is the [users] table.
type Users struct {
	// Backend is the user database: "passwd-file" or "postgres" (the
	// users table of [postgres]).
	Backend string `toml:"backend"`
	// PasswdFile is the Dovecot-compatible passwd-file.
	PasswdFile string `toml:"passwd_file"`
	// DefaultScheme is the password scheme `postoffice user add` and
	// `postoffice user passwd` hash new passwords with.
	DefaultScheme string `toml:"default_scheme"`
}

// Maildir is the [maildir] table.
type Maildir struct {
	// Location is the maildrop path template. Placeholders {user},
	// {localpart}, {domain} and {home} are replaced per user; {home} may
	// only start the template.
	Location string `toml:"location"`
	// LockLease is how long a maildrop lock stays valid without being
	// renewed, so that a crashed server's locks expire.
	LockLease Duration `toml:"lock_lease"`
}

// Auth is the [auth] table: the growing delay that slows down password
// guessing (package auth/penalty), in the spirit of Dovecot's auth
// penalty.
type Auth struct {
	// Mechanisms are the SASL mechanisms AUTH offers (RFC 5034), in
	// order. PLAIN, LOGIN and the OAuth ones are offered only where
	// plaintext authentication is allowed.
	Mechanisms []string `toml:"mechanisms"`
	// Timeout bounds one AUTH exchange.
	Timeout Duration `toml:"timeout"`
	// PenaltyBase is the delay after the first failure; it doubles with
	// each further failure up to PenaltyMax. 0 disables the penalty.
	PenaltyBase Duration `toml:"penalty_base"`
	// PenaltyMax caps the delay.
	PenaltyMax Duration `toml:"penalty_max"`
	// PenaltyWindow is how long failures are remembered after the last
	// one.
	PenaltyWindow Duration `toml:"penalty_window"`
	// TrustedNetworks lists addresses and CIDR prefixes that are never
	// delayed, such as a webmail front end; see Config.TrustedNetworks.
	TrustedNetworks []string `toml:"trusted_networks"`
	// MaxTracked bounds the number of addresses and user names
	// remembered at once, which bounds the memory the defence takes.
	MaxTracked int `toml:"max_tracked"`
}

// OAuth is the [oauth] table: how bearer tokens are checked (package
// auth/oauth).
type OAuth struct {
	// Mode is "none" (no OAuth), "introspection" (RFC 7662: ask the
	// authorization server about each token) or "jwks" (verify JWT
	// access tokens, RFC 9068, with the server's published keys).
	Mode string `toml:"mode"`
	// IntrospectionURL is the RFC 7662 introspection endpoint.
	IntrospectionURL string `toml:"introspection_url"`
	// ClientID and ClientSecret authenticate this server to the
	// introspection endpoint (HTTP Basic, RFC 6749 §2.3.1).
	ClientID string `toml:"client_id"`
	// ClientSecret is the client secret, written in the file.
	ClientSecret string `toml:"client_secret"`
	// ClientSecretFile names a file holding the client secret instead,
	// so that the configuration file can be world-readable.
	ClientSecretFile string `toml:"client_secret_file"`
	// JWKSURL is the authorization server's JSON Web Key Set.
	JWKSURL string `toml:"jwks_url"`
	// Issuer is the required "iss" claim.
	Issuer string `toml:"issuer"`
	// Audience is a value the "aud" claim must contain.
	Audience string `toml:"audience"`
	// RequiredScope is a scope the token must carry, or "".
	RequiredScope string `toml:"required_scope"`
	// UsernameClaim names the claim that holds the user name; "" means
	// "username" in introspection mode and "sub" in jwks mode.
	UsernameClaim string `toml:"username_claim"`
	// Timeout bounds each request to the authorization server.
	Timeout Duration `toml:"timeout"`
	// CacheTTL is how long a valid introspection answer is reused (never
	// past the token's expiry); 0 asks every time.
	CacheTTL Duration `toml:"cache_ttl"`
}

// Default returns the configuration used for every setting a file leaves
// out. It is not valid on its own: pop3.listen_tls needs a certificate,
// which has no sensible default.
func Default() *Config {
	c := fileDefaults()
	c.Server.Hostname = defaultHostname()
	return c
}

// fileDefaults is Default as the configuration reference shows it: the
// host name is left empty, as a file that leaves it out has it until Load
// asks the system.
func fileDefaults() *Config {
	return &Config{
		Server: Server{
			Hostname:        "",
			Implementation:  "postoffice",
			ShutdownTimeout: Duration{30 * time.Second},
			StateDir:        "/var/lib/postoffice",
		},
		Log: Log{
			Level:  "info",
			Format: "text",
		},
		POP3: POP3{
			Listen:            []string{"[::]:110"},
			ListenTLS:         []string{"[::]:995"},
			ProxyProtocolFrom: []string{},
		},
		LMTP:     defaultLMTP(),
		Delivery: defaultDelivery(),
		TLS: TLS{
			MinVersion: "1.2",
		},
		Limits: Limits{
			MaxConnections:      1000,
			MaxConnectionsPerIP: 20,
			MaxLineLength:       255,
			MaxBadCommands:      20,
			IdleTimeout:         Duration{10 * time.Minute},
			WriteTimeout:        Duration{60 * time.Second},
			TLSHandshakeTimeout: Duration{30 * time.Second},
			AuthFailureDelay:    Duration{2 * time.Second},
		},
		Users: Users{
			Backend:       "passwd-file",
			PasswdFile:    "/etc/postoffice/passwd",
			DefaultScheme: "ARGON2ID",
		},
		Maildir: Maildir{
			Location:  "{home}/Maildir",
			LockLease: Duration{2 * time.Minute},
		},
		Store:    Store{Backend: "maildir"},
		Postgres: defaultPostgres(),
		Auth: Auth{
			Mechanisms:      []string{"PLAIN", "LOGIN"},
			Timeout:         Duration{60 * time.Second},
			PenaltyBase:     Duration{2 * time.Second},
			PenaltyMax:      Duration{15 * time.Second},
			PenaltyWindow:   Duration{15 * time.Minute},
			TrustedNetworks: []string{},
			MaxTracked:      100000,
		},
		OAuth: OAuth{
			Mode:     "none",
			Timeout:  Duration{10 * time.Second},
			CacheTTL: Duration{5 * time.Minute},
		},
	}
}

// defaultHostname is os.Hostname, or "localhost" when the system has no
// name: the greeting must name something, and a missing host name should
// not stop a server that was otherwise configured correctly.
func defaultHostname() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "localhost"
	}
	return name
}

// TLSMinVersion returns tls.Config.MinVersion for tls.min_version:
// tls.VersionTLS12 or tls.VersionTLS13.
func (c *Config) TLSMinVersion() uint16 {
	if c.TLS.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	// Load refuses anything but "1.2" and "1.3", so this is "1.2" — and
	// also the safe answer for a hand-built Config with a typo.
	return tls.VersionTLS12
}

// TrustedNetworks returns auth.trusted_networks as prefixes; a bare
// address is a prefix of its full length. Load has checked every entry,
// so an entry that does not parse (in a hand-built Config) is left out
// rather than trusted.
func (c *Config) TrustedNetworks() []netip.Prefix {
	prefixes := make([]netip.Prefix, 0, len(c.Auth.TrustedNetworks))
	for _, s := range c.Auth.TrustedNetworks {
		if p, err := parseNetwork(s); err == nil {
			prefixes = append(prefixes, p)
		}
	}
	return prefixes
}

// ExpireDays returns the RFC 2449 EXPIRE policy in the form
// pop3server.Config takes it: (-1, false) for NEVER, otherwise the number
// of days and true, where 0 deletes retrieved messages at QUIT.
func (c *Config) ExpireDays() (days int, set bool) {
	if !c.POP3.Expire.Set {
		return -1, false
	}
	return c.POP3.Expire.Days, true
}
