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

// Server is the [server] table: the server's identity and lifetime.
type Server struct {
	// Hostname is the host name in the greeting and in APOP timestamps
	// (`<pid.clock@hostname>`, RFC 1939 §7): letters, digits, `-` and `_`
	// in dot-separated labels, at most 253 characters. Empty means the
	// system's host name, or `localhost` if the system has none.
	Hostname string `toml:"hostname"`
	// Implementation is the text of the IMPLEMENTATION capability (RFC
	// 2449 §6.9). Empty hides it, for operators who prefer not to
	// advertise their software. Printable ASCII, at most 495 characters
	// (what a 512-octet CAPA line leaves, RFC 2449 §4).
	Implementation string `toml:"implementation"`
	// ShutdownTimeout is how long a graceful shutdown (SIGTERM or SIGINT)
	// waits for sessions to finish before closing them; a session closed
	// this way applies none of its deletions. More than 0.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// StateDir is the directory for server state. Reserved: not used yet,
	// but required so that a release that uses it will not break existing
	// files.
	StateDir string `toml:"state_dir"`
}

// Log is the [log] table: what the server logs, and where.
type Log struct {
	// Level is the minimum level logged: debug, info, warn or error.
	Level string `toml:"level"`
	// Format is text or json (log/slog's two handlers).
	Format string `toml:"format"`
	// File is the log file; empty means standard error. The server
	// opens it again on SIGHUP, so that logrotate can rename it.
	File string `toml:"file"`
	// Levels sets the level of single subsystems, overriding `level`:
	// a table such as `{ pop3 = "debug", lmtp = "warn" }`. The
	// subsystems are server (start, stop, reload), pop3 (sessions),
	// lmtp, delivery, auth (user databases, OAuth), store (Maildir and
	// PostgreSQL), proxy (PROXY protocol), admin (the monitoring
	// listener) and trace (see `trace_user`). Each record names its
	// subsystem in a `subsystem` attribute.
	Levels map[string]string `toml:"levels"`
	// TraceUser names one user whose POP3 sessions are traced, at info
	// level in the trace subsystem: every command with passwords, APOP
	// digests and SASL responses masked, and the first line of every
	// reply (message bodies are not logged). Commands a session sent
	// before it named the user are included. Empty traces nobody; the
	// setting is for chasing one client's problem, not for everyday use.
	TraceUser string `toml:"trace_user"`
}

// LogSubsystems are the names log.levels accepts.
var LogSubsystems = []string{"server", "pop3", "lmtp", "delivery", "auth", "store", "proxy", "admin", "trace"}

// POP3 is the [pop3] table: the POP3 listeners and the protocol policy.
type POP3 struct {
	// Listen lists the addresses for plain POP3 (RFC 1939). When [tls] has
	// a certificate, these listeners offer STLS (RFC 2595) to upgrade the
	// connection. Each entry is `host:port`: an IP address (IPv6 in
	// brackets) or a host name, or nothing for every address (`":110"`),
	// and a port from 1 to 65535. `[]` disables plain POP3.
	Listen []string `toml:"listen"`
	// ListenTLS lists the addresses for implicit TLS, where TLS starts
	// before the first POP3 byte (RFC 8314, port 995). It needs `tls.cert`
	// and `tls.key`; `[]` disables it. An address may appear only once
	// across `listen` and `listen_tls`, and at least one of the two lists
	// must be non-empty.
	ListenTLS []string `toml:"listen_tls"`
	// ProxyProtocolFrom lists the load balancers whose connections start
	// with a PROXY protocol header, version 1 or 2, naming the real
	// client: addresses (`"10.0.0.5"`) and CIDR prefixes
	// (`"2001:db8:1::/64"`), host bits zero. A connection from one of them
	// must send the header (one without is closed); its client address is
	// then the one the header names, in the log, for
	// `limits.max_connections_per_ip`, the `auth.penalty_*` delays,
	// `auth.trusted_networks` and the loopback checks. A connection from
	// anywhere else is served directly, and one that starts with a PROXY
	// header is closed: a forged header is never believed. Applies to
	// `listen` and `listen_tls`; see docs/cluster.md.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
	// AllowInsecureAuth allows USER/PASS and APOP, and offers the
	// plaintext SASL mechanisms, on unencrypted connections from
	// non-loopback addresses. RFC 2595 §2.1 and RFC 8314 advise against
	// it: passwords would cross the network in the clear. Loopback
	// connections are always allowed.
	AllowInsecureAuth bool `toml:"allow_insecure_auth"`
	// APOP enables the APOP command (RFC 1939 §7) and the timestamp in the
	// greeting it needs. APOP needs the plaintext-equivalent secret on the
	// server, so it works only for users whose passwd-file entry keeps one
	// (hashed schemes such as ARGON2ID cannot); the server refuses to
	// start if the user database cannot verify APOP digests at all.
	APOP bool `toml:"apop"`
	// Expire is the EXPIRE capability (RFC 2449 §6.7): `"never"` keeps
	// messages until the client deletes them; a whole number of days from
	// 0 to 36500 (written `30` or `"30"`) deletes a message that many days
	// after its first retrieval, and 0 deletes retrieved messages when the
	// session ends with QUIT.
	Expire Expire `toml:"expire"`
	// LoginDelay is the LOGIN-DELAY capability (RFC 2449 §6.5): the
	// minimum time between two logins of one user. Whole seconds only,
	// since the capability announces seconds; `"0s"` disables it.
	LoginDelay Duration `toml:"login_delay"`
}

// TLS is the [tls] table: the certificate for STLS and implicit TLS. `cert`
// and `key` are set together or not at all; without them STLS is not offered
// and `pop3.listen_tls` must be `[]`. See docs/tls.md.
type TLS struct {
	// Cert is the PEM certificate chain file, leaf certificate first.
	Cert string `toml:"cert"`
	// Key is the PEM private key file of the certificate.
	Key string `toml:"key"`
	// MinVersion is the oldest TLS version accepted: `"1.2"` or `"1.3"`.
	// TLS 1.0 and 1.1 are always refused (RFC 8996 deprecates them).
	MinVersion string `toml:"min_version"`
	// ClientCA is a PEM file of the certificate authorities whose client
	// certificates are accepted for SASL EXTERNAL; the certificate's first
	// e-mail address (or else its common name) is the user name. Empty: no
	// client certificate is asked for.
	ClientCA string `toml:"client_ca"`
}

// Limits is the [limits] table: resource bounds and timeouts of POP3 sessions.
// Its field names match pop3server.Config.
type Limits struct {
	// MaxConnections bounds the simultaneous POP3 connections in total; at
	// least 1.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP bounds the simultaneous connections from one
	// address (IPv6 addresses are grouped by /64); from 1 to
	// `max_connections`.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxLineLength bounds a command line, CRLF included: from 255 (RFC
	// 2449 §4 raises RFC 1939's limit to 255 octets) to 65536. Longer
	// lines are refused without being buffered.
	MaxLineLength int `toml:"max_line_length"`
	// MaxBadCommands closes a session after that many `-ERR` replies; at
	// least 1.
	MaxBadCommands int `toml:"max_bad_commands"`
	// IdleTimeout is the inactivity autologout timer; RFC 1939 §3 requires
	// at least 10 minutes.
	IdleTimeout Duration `toml:"idle_timeout"`
	// WriteTimeout is the deadline of each write to a client; more than 0.
	WriteTimeout Duration `toml:"write_timeout"`
	// TLSHandshakeTimeout is the deadline of a TLS handshake; more than 0.
	TLSHandshakeTimeout Duration `toml:"tls_handshake_timeout"`
	// AuthFailureDelay is the pause before answering a failed login, which
	// slows down password guessing: from `"0s"` to `"60s"`. `"0s"` is
	// allowed for tests and trusted networks but is unsafe on the
	// Internet. It comes before the growing delays of [auth].
	AuthFailureDelay Duration `toml:"auth_failure_delay"`
}

// Users is the [users] table: the user database.
type Users struct {
	// Backend is the user database: `"passwd-file"` (`passwd_file`) or
	// `"postgres"` (the users table of the [postgres] database, with the
	// same password schemes; see docs/cluster.md).
	Backend string `toml:"backend"`
	// PasswdFile is the Dovecot-compatible passwd-file
	// (`user:{SCHEME}hash:uid:gid::home::extra`). Required when `backend`
	// is `"passwd-file"`.
	PasswdFile string `toml:"passwd_file"`
	// DefaultScheme is the scheme `postoffice user add` and `postoffice
	// user passwd` hash new passwords with: ARGON2ID, SHA512-CRYPT,
	// BLF-CRYPT, SSHA512, SCRAM-SHA-256 or SCRAM-SHA-1, spelled exactly
	// so. Existing entries keep their scheme. The SCRAM schemes store what
	// the SASL SCRAM-SHA-256 and SCRAM-SHA-1 mechanisms need (RFC 5802,
	// RFC 7677) in Dovecot's format, with 10000 iterations, and also work
	// with USER/PASS and PLAIN; choose them only for users whose clients
	// speak SCRAM, because ARGON2ID resists guessing far better if the
	// file leaks.
	DefaultScheme string `toml:"default_scheme"`
}

// Maildir is the [maildir] table: where the maildrops of store.backend
// "maildir" live.
type Maildir struct {
	// Location is where each user's maildrop is, as a template: `{user}`
	// is the login name, `{localpart}` and `{domain}` its parts around `@`
	// (`{domain}` is empty without one), `{home}` the home directory from
	// the user database. The template must contain `{user}`, `{localpart}`
	// or `{home}` (otherwise users would share a maildrop), `{home}` may
	// only start it, and it must be an absolute path once expanded: it
	// starts with `/` or `{home}`. A passwd-file entry's `userdb_mail`
	// overrides it for that user.
	Location string `toml:"location"`
	// LockLease is how long a maildrop lock stays valid without renewal
	// for the other hosts sharing the Maildirs (over NFS), so that the
	// locks of a crashed or hung host expire; on one host, a crashed
	// session's lock is free at once. At least `"10s"`.
	LockLease Duration `toml:"lock_lease"`
	// ImportUIDL names the POP3 server that served these Maildirs before,
	// so that each maildrop keeps the unique ids (and the message order)
	// that server showed and no leave-on-server client downloads anything
	// again: `"dovecot"` (its dovecot-uidlist, with
	// `dovecot_uidl_format`), `"courier"` (its courierpop3dsizelist, or
	// the file names where there is none), `"filename"` (the file name up
	// to `:`, as qmail-pop3d showed it), or `""` (none). The ids are taken
	// over when postoffice first opens a maildrop and are frozen in its
	// index from then on; what could not be kept is logged then, and
	// `postoffice import --check` tells it beforehand.
	ImportUIDL string `toml:"import_uidl"`
	// DovecotUIDLFormat is the `pop3_uidl_format` Dovecot used, for
	// `import_uidl = "dovecot"`: `"%08Xu%08Xv"` (its default), `"%u"`,
	// `"%v.%u"`, `"%f"`, `"%g"` or any other in Dovecot 2.3's syntax. A
	// UIDL Dovecot saved (pop3_save_uidl) is kept whatever the format; `%m`
	// works only through saved UIDLs, since Dovecot computes it for mbox
	// alone. If Dovecot's mail_location had a `CONTROL=` directory, append
	// it to `location` the same way (`"/var/vmail/{user}/Maildir:CONTROL=/var/dovecot/{user}"`,
	// or in a user's `userdb_mail`): dovecot-uidlist is read from there.
	DovecotUIDLFormat string `toml:"dovecot_uidl_format"`
	// DovecotReuseXUIDL is Dovecot's `pop3_reuse_xuidl`, for
	// `import_uidl = "dovecot"`: set it if Dovecot had it on, so that a
	// message's X-UIDL header is its id there too (a saved UIDL still
	// comes first).
	DovecotReuseXUIDL bool `toml:"dovecot_reuse_xuidl"`
}

// Auth is the [auth] table: the SASL mechanisms AUTH offers (RFC 5034) and the
// growing delay that slows down password guessing (package auth/penalty);
// docs/configuration.md explains how the delay grows.
type Auth struct {
	// Mechanisms are the SASL mechanisms offered, in order: PLAIN, LOGIN,
	// CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-256-PLUS,
	// OAUTHBEARER, XOAUTH2, EXTERNAL. PLAIN, LOGIN, OAUTHBEARER and
	// XOAUTH2 are offered only where plaintext authentication is allowed
	// (TLS, loopback, or `pop3.allow_insecure_auth`). CRAM-MD5 works only
	// for users stored with a plaintext scheme, and the SCRAM mechanisms
	// only for users stored with that SCRAM scheme or a plaintext one:
	// offer them only if your users' passwords are stored that way,
	// because clients such as curl and fetchmail pick CRAM-MD5 by
	// themselves when it is offered. OAUTHBEARER and XOAUTH2 need [oauth];
	// EXTERNAL needs `tls.client_ca`; SCRAM-SHA-256-PLUS (channel binding)
	// needs TLS.
	Mechanisms []string `toml:"mechanisms"`
	// Timeout bounds one AUTH exchange, from `"1s"` to `"10m"`: a client
	// that stops answering challenges is disconnected.
	Timeout Duration `toml:"timeout"`
	// PenaltyBase is the delay after the first failure, from `"0s"` to
	// `"1m"`; it doubles with each further failure up to `penalty_max`.
	// `"0s"` disables the penalty.
	PenaltyBase Duration `toml:"penalty_base"`
	// PenaltyMax is the longest delay, from `penalty_base` to `"1m"`.
	PenaltyMax Duration `toml:"penalty_max"`
	// PenaltyWindow is how long failures are remembered after the last
	// one: from `"1m"` to `"24h"`.
	PenaltyWindow Duration `toml:"penalty_window"`
	// TrustedNetworks lists addresses (`"192.0.2.10"`) and CIDR prefixes
	// (`"2001:db8:1::/48"`) whose logins are never delayed nor counted,
	// such as a webmail front end that logs in for many users. Host bits
	// must be zero (`"192.0.2.0/24"`, not `"192.0.2.1/24"`).
	TrustedNetworks []string `toml:"trusted_networks"`
	// MaxTracked bounds the addresses and user names remembered at once,
	// from 1000 to 10000000; when full, the one whose last failure is
	// oldest is forgotten. Each takes a few hundred bytes, so the default
	// bounds the memory at a few tens of MiB.
	MaxTracked int `toml:"max_tracked"`
}

// OAuth is the [oauth] table: how the OAuth 2.0 bearer tokens of SASL
// OAUTHBEARER (RFC 7628) and XOAUTH2 are checked (package auth/oauth);
// docs/configuration.md describes the two modes.
type OAuth struct {
	// Mode is `"none"` (no OAuth), `"introspection"` (RFC 7662: ask the
	// authorization server about each token) or `"jwks"` (verify JWT
	// access tokens, RFC 9068, with the keys the authorization server
	// publishes).
	Mode string `toml:"mode"`
	// IntrospectionURL is the RFC 7662 introspection endpoint. Required
	// with `"introspection"`. Must be `https://`, except to a loopback
	// address.
	IntrospectionURL string `toml:"introspection_url"`
	// ClientID is this server's client ID at the authorization server,
	// which it authenticates with to the introspection endpoint (HTTP
	// Basic, RFC 6749 §2.3.1). Required with `"introspection"`.
	ClientID string `toml:"client_id"`
	// ClientSecret is the client secret, written in this file. With
	// `"introspection"`, set it or `client_secret_file`, not both.
	ClientSecret string `toml:"client_secret"`
	// ClientSecretFile names a file holding the client secret (one line)
	// instead, so that the configuration file need not be secret.
	ClientSecretFile string `toml:"client_secret_file"`
	// JWKSURL is the authorization server's JSON Web Key Set (`jwks_uri`
	// in its metadata). Required with `"jwks"`. Must be `https://`, except
	// to a loopback address.
	JWKSURL string `toml:"jwks_url"`
	// Issuer is the required `iss` claim, exactly as the authorization
	// server writes it. Required with `"jwks"`; checked when set with
	// `"introspection"`.
	Issuer string `toml:"issuer"`
	// Audience is a value the `aud` claim (a string or a list) must
	// contain: the identifier the authorization server gives this mail
	// server. Required with `"jwks"`, since RFC 9068 §4 requires the
	// check; checked when set with `"introspection"`.
	Audience string `toml:"audience"`
	// RequiredScope is a scope every token must carry (one RFC 6749 §3.3
	// scope token), or `""` for none. A token without it is refused with
	// `insufficient_scope`.
	RequiredScope string `toml:"required_scope"`
	// UsernameClaim names the claim that holds the user name; `""` means
	// `"username"` with `"introspection"` (RFC 7662 §2.2) and `"sub"` with
	// `"jwks"`. Use `"preferred_username"` or `"email"` only if the
	// authorization server does not let users change them (an `email`
	// claim is refused when `email_verified` is false).
	UsernameClaim string `toml:"username_claim"`
	// Timeout is the deadline of each request to the authorization server,
	// up to `"1m"`. A request that fails or times out is a temporary
	// error, not a failed login.
	Timeout Duration `toml:"timeout"`
	// CacheTTL is how long a valid introspection answer is reused, from
	// `"0s"` (ask every time) to `"1h"`, never past the token's expiry.
	// Tokens are kept only as SHA-256 digests.
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
			Levels: map[string]string{},
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
			Location:          "{home}/Maildir",
			LockLease:         Duration{2 * time.Minute},
			DovecotUIDLFormat: "%08Xu%08Xv",
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
