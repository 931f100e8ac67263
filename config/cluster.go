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
	// Backend is "maildir" (the [maildir] table: one machine) or
	// "postgres" (the [postgres] table: any number of nodes on one
	// database).
	Backend string `toml:"backend"`
}

// Postgres is the [postgres] table: the database of store.backend and
// users.backend "postgres" (packages store/postgres and auth/pgusers).
type Postgres struct {
	// DSN is the connection string ("host=db1 dbname=postoffice
	// user=postoffice" or a postgres:// URL).
	DSN string `toml:"dsn"`
	// DSNFile names a file holding the connection string instead, so
	// that a password in it need not be in this file.
	DSNFile string `toml:"dsn_file"`
	// MaxConns bounds the connections each node opens.
	MaxConns int `toml:"max_conns"`
	// Lease is how long a maildrop's session lock lasts without renewal,
	// so that the locks of a node that died expire.
	Lease Duration `toml:"lease"`
	// AcquireTimeout is how long an operation waits for a free
	// connection before the client gets a temporary error.
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
