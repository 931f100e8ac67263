package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/auth/pgusers"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
	"github.com/postoffice-mail/postoffice/store/postgres"
)

// userDatabase is what serve and deliver need of a user database; the
// optional abilities (APOP, SASL lookups) are found by type assertion on
// the concrete value, as pop3server does.
type userDatabase interface {
	auth.Authenticator
	auth.UserLookup
}

// mailStore is what serve and deliver need of a store.
type mailStore interface {
	store.Store
	store.Deliverer
}

// backends are the user database and store the configuration names, and
// the PostgreSQL connection pool they share when either is in PostgreSQL.
type backends struct {
	users userDatabase
	mail  mailStore
	pg    *postgres.Store // nil unless a backend is "postgres"
}

// close releases the database pool, if any. Sessions must be closed first.
func (b *backends) close() {
	if b.pg != nil {
		b.pg.Close()
	}
}

// schemaCheckTimeout bounds the start-up check of the database schema.
const schemaCheckTimeout = 15 * time.Second

// openBackends opens [users] and [store]. When PostgreSQL is used its
// schema must be at this build's version: a node never runs against a
// schema it does not know ("postoffice db migrate" first).
//
// logFor returns the logger of a subsystem: "auth" for the user database,
// "store" for the store.
func openBackends(cfg *config.Config, logFor func(subsystem string) *slog.Logger, exitCode int) (*backends, error) {
	b := &backends{}
	if cfg.UsesPostgres() {
		pg, err := openPostgres(cfg, logFor("store"))
		if err != nil {
			return nil, fail(exitCode, "%v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), schemaCheckTimeout)
		defer cancel()
		if err := pg.CheckSchema(ctx); err != nil {
			pg.Close()
			return nil, fail(exitCode, "postgres: %v", err)
		}
		b.pg = pg
	}
	switch cfg.Users.Backend {
	case "postgres":
		b.users = pgusers.New(b.pg.Pool(), cfg.Postgres.AcquireTimeout.Duration, logFor("auth"))
	default:
		users, err := passwdfile.Open(cfg.Users.PasswdFile, passwdfile.WithLogger(logFor("auth")))
		if err != nil {
			b.close()
			return nil, fail(exitCode, "users: %v", err)
		}
		b.users = users
	}
	switch cfg.Store.Backend {
	case "postgres":
		b.mail = b.pg
	default:
		mail, err := maildir.New(maildir.Config{
			Location:  cfg.Maildir.Location,
			LockLease: cfg.Maildir.LockLease.Duration,
			Logger:    logFor("store"),
			Legacy: legacy.Config{
				Source:        legacy.Source(cfg.Maildir.ImportUIDL),
				DovecotFormat: cfg.Maildir.DovecotUIDLFormat,
				// Dovecot's pop3_reuse_xuidl.
				DovecotReuseXUIDL: cfg.Maildir.DovecotReuseXUIDL,
			},
		})
		if err != nil {
			b.close()
			return nil, fail(exitCode, "maildir: %v", err)
		}
		b.mail = mail
	}
	if wrapStore != nil {
		b.mail = wrapStore(b.mail)
	}
	return b, nil
}

// wrapStore is nil except in a build with the chaosfault tag (see
// chaosfault.go), where it wraps the store in the fault the chaos test
// suite asks for.
var wrapStore func(mailStore) mailStore

// openPostgres opens the [postgres] database's pool (no connection is made
// yet).
func openPostgres(cfg *config.Config, logger *slog.Logger) (*postgres.Store, error) {
	dsn, err := cfg.PostgresDSN()
	if err != nil {
		return nil, err
	}
	host := cfg.Server.Hostname
	return postgres.Open(context.Background(), postgres.Config{
		DSN:            dsn,
		MaxConns:       cfg.Postgres.MaxConns,
		Lease:          cfg.Postgres.Lease.Duration,
		AcquireTimeout: cfg.Postgres.AcquireTimeout.Duration,
		Holder:         host + ":" + strconv.Itoa(os.Getpid()),
		Logger:         logger,
	})
}
