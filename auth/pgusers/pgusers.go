// Package pgusers is a user database kept in PostgreSQL, for servers that
// share their state through one database (see store/postgres, whose
// migrations create the users table). It speaks the same password schemes
// as the passwd-file (package auth/scheme: "{SCHEME}data" strings), so a
// passwd-file can be loaded into it unchanged, and it implements the same
// interfaces: auth.Authenticator, auth.APOPAuthenticator,
// auth.PasswordLookup and auth.UserLookup.
//
// Each lookup is one primary-key read. A database that cannot be reached
// gives errors wrapping auth.ErrUnavailable (the client is told to try
// again later); an unknown user and a wrong password give auth.ErrFailed
// after the same work.
package pgusers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// Compile-time checks that DB is what the server and delivery expect.
var (
	_ auth.Authenticator     = (*DB)(nil)
	_ auth.APOPAuthenticator = (*DB)(nil)
	_ auth.PasswordLookup    = (*DB)(nil)
	_ auth.UserLookup        = (*DB)(nil)
)

// DB is the user database. It is safe for concurrent use.
type DB struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	timeout time.Duration
	// standIn is checked in place of an unknown user's password
	// (scheme.CheckPassword); tests make it cheap.
	standIn func() (string, error)
}

// New returns the user database on pool (store/postgres's Store.Pool, so
// that users and maildrops share connections). Each lookup waits at most
// timeout for a connection (0 means 5s); log receives stored passwords that
// cannot be checked (nil discards).
func New(pool *pgxpool.Pool, timeout time.Duration, log *slog.Logger) *DB {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DB{pool: pool, log: log, timeout: timeout, standIn: scheme.DefaultStandIn}
}

// record is one row of the users table.
type record struct {
	name, password, home, mail string
}

func (r *record) user() *auth.User {
	return &auth.User{Name: r.name, Home: r.home, Mail: r.mail}
}

// lookup reads a user; nil, nil for an unknown or invalid name.
func (db *DB) lookup(ctx context.Context, username string) (*record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if auth.ValidUsername(username) != nil {
		return nil, nil
	}
	actx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	conn, err := db.pool.Acquire(actx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	defer conn.Release()
	r := &record{name: username}
	err = conn.QueryRow(ctx, "SELECT password, home, mail FROM users WHERE name = $1", username).Scan(&r.password, &r.home, &r.mail)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	return r, nil
}

// Authenticate implements auth.Authenticator. An unknown user, an invalid
// name, a user without a password, an empty password and a wrong password
// all return auth.ErrFailed after the same work.
func (db *DB) Authenticate(ctx context.Context, username, password string) (*auth.User, error) {
	r, err := db.lookup(ctx, username)
	if err != nil {
		return nil, err
	}
	standIn, err := db.standIn()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	stored := ""
	if r != nil {
		stored = r.password
	}
	ok, err := scheme.CheckPassword(stored, standIn, password)
	if err != nil {
		db.log.Error("cannot check stored password", "user", username, "err", err)
		return nil, auth.ErrFailed
	}
	if !ok {
		return nil, auth.ErrFailed
	}
	return r.user(), nil
}

// AuthenticateAPOP implements auth.APOPAuthenticator: the RFC 1939 §7
// digest, MD5 of the greeting's timestamp and the shared secret, which
// only users stored with a plaintext scheme have.
func (db *DB) AuthenticateAPOP(ctx context.Context, username, timestamp, digest string) (*auth.User, error) {
	r, err := db.lookup(ctx, username)
	if err != nil {
		return nil, err
	}
	secret := ""
	if r != nil {
		if plain, ok := scheme.Plaintext(r.password); ok {
			secret = plain
		}
	}
	ok, err := scheme.CheckAPOP(secret, timestamp, digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	if !ok {
		return nil, auth.ErrFailed
	}
	return r.user(), nil
}

// LookupPassword implements auth.PasswordLookup: the stored password as
// "{SCHEME}data", for CRAM-MD5 and SCRAM. A user without a password counts
// as unknown.
func (db *DB) LookupPassword(ctx context.Context, username string) (*auth.User, string, error) {
	r, err := db.lookup(ctx, username)
	if err != nil {
		return nil, "", err
	}
	if r == nil || r.password == "" {
		return nil, "", auth.ErrFailed
	}
	return r.user(), r.password, nil
}

// LookupUser implements auth.UserLookup, for delivery and the mechanisms
// without a password. A user whose password is empty counts as unknown,
// as in the passwd-file: clearing the password disables the account.
func (db *DB) LookupUser(ctx context.Context, username string) (*auth.User, error) {
	r, err := db.lookup(ctx, username)
	if err != nil {
		return nil, err
	}
	if r == nil || r.password == "" {
		return nil, auth.ErrFailed
	}
	return r.user(), nil
}
