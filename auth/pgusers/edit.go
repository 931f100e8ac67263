package pgusers

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// ErrExists is returned by Add for a user that is already there, and
// ErrNotFound by SetPassword and Delete for one that is not.
var (
	ErrExists   = errors.New("user already exists")
	ErrNotFound = errors.New("no such user")
)

// Entry is one user as List reports it, without the stored password.
type Entry struct {
	Name string
	// Scheme is the password scheme ("ARGON2ID"), or "" for a user who
	// cannot log in.
	Scheme string
	Home   string
	Mail   string
}

// Put adds a user or replaces one with a stored password ("{SCHEME}data",
// checked with scheme.Identify; "" for a user who cannot log in), home
// directory and mail location: what loading a passwd-file needs.
func (db *DB) Put(ctx context.Context, name, stored, home, mail string) error {
	if err := check(name, stored); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO users (name, password, home, mail) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET password = EXCLUDED.password, home = EXCLUDED.home, mail = EXCLUDED.mail, updated_at = now()`,
		name, stored, home, mail)
	if err != nil {
		return fmt.Errorf("put user %s: %w", name, err)
	}
	return nil
}

// Add adds a user with a password hashed in the named scheme.
func (db *DB) Add(ctx context.Context, name, password, schemeName, home string) error {
	stored, err := scheme.Hash(schemeName, password)
	if err != nil {
		return err
	}
	if err := check(name, stored); err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, "INSERT INTO users (name, password, home) VALUES ($1, $2, $3)", name, stored, home)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("add user %s: %w", name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("add user %s: %w", name, err)
	}
	return nil
}

// SetPassword replaces a user's password with one hashed in the named
// scheme.
func (db *DB) SetPassword(ctx context.Context, name, password, schemeName string) error {
	stored, err := scheme.Hash(schemeName, password)
	if err != nil {
		return err
	}
	tag, err := db.pool.Exec(ctx, "UPDATE users SET password = $2, updated_at = now() WHERE name = $1", name, stored)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set password of %s: %w", name, ErrNotFound)
	}
	return nil
}

// Delete removes a user. Their maildrop is left alone.
func (db *DB) Delete(ctx context.Context, name string) error {
	tag, err := db.pool.Exec(ctx, "DELETE FROM users WHERE name = $1", name)
	if err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete user %s: %w", name, ErrNotFound)
	}
	return nil
}

// List returns every user, by name.
func (db *DB) List(ctx context.Context) ([]Entry, error) {
	rows, err := db.pool.Query(ctx, "SELECT name, password, home, mail FROM users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var stored string
		if err := rows.Scan(&e.Name, &stored, &e.Home, &e.Mail); err != nil {
			return nil, err
		}
		if stored != "" {
			e.Scheme, _ = scheme.Identify(stored)
			if e.Scheme == "" {
				e.Scheme = "?"
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// check refuses a name no store could use and a password string no
// scheme reads.
func check(name, stored string) error {
	if err := auth.ValidUsername(name); err != nil {
		return err
	}
	if stored == "" {
		return nil
	}
	if _, err := scheme.Identify(stored); err != nil {
		return fmt.Errorf("password of %s: %w", name, err)
	}
	return nil
}
