package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Store is the [store] table: which store keeps the maildrops.
type Store struct {
	// Backend is `"maildir"` (the [maildir] table: one machine, no other
	// process needed) or `"postgres"` (the [postgres] database: any number
	// of `postoffice serve` nodes behind a load balancer share it; see
	// docs/cluster.md). `postoffice migrate` copies maildrops between the
	// two.
	Backend string `toml:"backend"`
}

// Postgres is the [postgres] table: the database of store.backend and
// users.backend "postgres" (packages store/postgres and auth/pgusers). Create
// its schema, and upgrade it after installing a new release, with `postoffice
// db migrate`; the server refuses to start on a schema of another version.
type Postgres struct {
	// DSN is the connection string, as libpq takes it:
	// `"host=db1.example.org dbname=postoffice user=postoffice
	// sslmode=verify-full"` or `"postgres://postoffice@db1/postoffice"`.
	// Several hosts with `target_session_attrs=read-write` follow a
	// fail-over. Required, or `dsn_file`, when a backend is `"postgres"`;
	// not both.
	DSN string `toml:"dsn"`
	// DSNFile names a file whose first line is the connection string, so
	// that a password in it need not be in this file.
	DSNFile string `toml:"dsn_file"`
	// MaxConns bounds the connections each node opens, from 1 to 10000.
	// Sessions hold one only while a command runs, so a few dozen serve
	// thousands of sessions; the database's max_connections must cover
	// every node's `max_conns`.
	MaxConns int `toml:"max_conns"`
	// Lease is how long a maildrop's session lock lasts without renewal;
	// each node renews its sessions' locks every third of it, in one
	// statement. A node that dies (or loses the database) for longer than
	// this loses its locks, and its users can log in on another node. From
	// `"2s"` to `"1h"`.
	Lease Duration `toml:"lease"`
	// AcquireTimeout is how long an operation waits for a free connection
	// (or for a new one) before giving up with a temporary error: `-ERR
	// [SYS/TEMP]` for POP3, `451` for LMTP. From `"10ms"` to `"1m"`.
	AcquireTimeout Duration `toml:"acquire_timeout"`
}

func defaultPostgres() Postgres {
	return Postgres{
		MaxConns:       20,
		Lease:          Duration{2 * time.Minute},
		AcquireTimeout: Duration{5 * time.Second},
	}
}

// clusterRules are the validate rows of [store], [postgres] and the PROXY
// protocol settings.
func clusterRules(c *Config) []problem {
	return []problem{
		{"pop3.proxy_protocol_from", networks(c.POP3.ProxyProtocolFrom)},
		{"lmtp.proxy_protocol_from", networks(c.LMTP.ProxyProtocolFrom)},
		{"store.backend", oneOf(c.Store.Backend, "maildir", "postgres")},
		{"postgres.dsn", dsnSource(c)},
		{"postgres.max_conns", between(c.Postgres.MaxConns, 1, 10000, "")},
		// The holder renews every third of the lease: below a couple of
		// seconds a slow database would make sessions lose their locks.
		{"postgres.lease", durationBetween(c.Postgres.Lease, 2*time.Second, time.Hour)},
		{"postgres.acquire_timeout", durationBetween(c.Postgres.AcquireTimeout, 10*time.Millisecond, time.Minute)},
	}
}

// requiredFor refuses an empty setting that another setting needs.
func requiredFor(s string, needed bool, because string) error {
	if needed && s == "" {
		return fmt.Errorf("must be set when %s", because)
	}
	return nil
}

// UsesPostgres reports whether the store or the user database is in
// PostgreSQL.
func (c *Config) UsesPostgres() bool {
	return c.Store.Backend == "postgres" || c.Users.Backend == "postgres"
}

// dsnSource checks that exactly one of postgres.dsn and postgres.dsn_file
// is set when PostgreSQL is used, and neither looks like a mistake.
func dsnSource(c *Config) error {
	p := c.Postgres
	switch {
	case p.DSN != "" && p.DSNFile != "":
		return errors.New("is set and so is postgres.dsn_file; set one of them")
	case c.UsesPostgres() && p.DSN == "" && p.DSNFile == "":
		return errors.New(`must be set, or postgres.dsn_file, when store.backend or users.backend is "postgres"`)
	case strings.ContainsAny(p.DSN, "\r\n\x00"):
		return errors.New("contains a line break or NUL")
	}
	return nil
}

// PostgresDSN returns the connection string: postgres.dsn, or the first
// line of postgres.dsn_file.
func (c *Config) PostgresDSN() (string, error) {
	if c.Postgres.DSNFile == "" {
		return c.Postgres.DSN, nil
	}
	data, err := os.ReadFile(c.Postgres.DSNFile)
	if err != nil {
		return "", fmt.Errorf("postgres.dsn_file: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("postgres.dsn_file: %s is empty", c.Postgres.DSNFile)
	}
	return line, nil
}

// ProxyNetworks returns pop3.proxy_protocol_from (lmtp false) or
// lmtp.proxy_protocol_from (lmtp true) as prefixes, a bare address as a
// prefix of its full length. An entry that does not parse (in a
// hand-built Config) is left out rather than trusted.
func (c *Config) ProxyNetworks(lmtp bool) []netip.Prefix {
	list := c.POP3.ProxyProtocolFrom
	if lmtp {
		list = c.LMTP.ProxyProtocolFrom
	}
	prefixes := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := parseNetwork(s); err == nil {
			prefixes = append(prefixes, p)
		}
	}
	return prefixes
}
