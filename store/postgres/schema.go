package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The schema is created and upgraded by numbered SQL files embedded in the
// binary, migrations/NNNN_name.sql, applied in order, each in its own
// transaction together with its row in schema_migrations. A file once
// released is never edited: changes come as new files.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one step of the schema.
type Migration struct {
	// Version is the file's number; versions start at 1 and have no gaps.
	Version int
	// Name is the rest of the file name, such as "initial".
	Name string
	sql  string
}

// migrations are the embedded steps, in order.
var migrations = func() []Migration {
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	var ms []Migration
	for _, f := range files {
		base := strings.TrimSuffix(path.Base(f), ".sql")
		num, name, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			panic("postgres: bad migration file name " + f)
		}
		data, err := migrationFiles.ReadFile(f)
		if err != nil {
			panic(err)
		}
		ms = append(ms, Migration{Version: v, Name: name, sql: string(data)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			panic(fmt.Sprintf("postgres: migration versions must be 1..n without gaps; found %d at %d", m.Version, i+1))
		}
	}
	return ms
}()

// LatestVersion is the schema version this build of postoffice uses.
func LatestVersion() int { return len(migrations) }

// migrationLock is the advisory lock key that keeps two "postoffice db
// migrate" runs (on two nodes, say) from migrating at once.
const migrationLock = 0x706f73746f666663 // "postoffc"

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate brings the schema up to LatestVersion and returns the steps it
// applied (none if it was up to date). It is safe to run from several
// nodes at once: they take turns, and all but the first find nothing to
// do. A database whose schema is newer than this build knows is an error.
func (s *Store) Migrate(ctx context.Context) ([]Migration, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	current, err := currentVersion(ctx, conn.QueryRow)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if current > LatestVersion() {
		return nil, fmt.Errorf("migrate: the database schema is at version %d, newer than this postoffice knows (%d): upgrade postoffice", current, LatestVersion())
	}
	var applied []Migration
	for _, m := range migrations[current:] {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return applied, fmt.Errorf("migrate to version %d: %w", m.Version, err)
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			tx.Rollback(ctx)
			return applied, fmt.Errorf("migrate to version %d (%s): %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			tx.Rollback(ctx)
			return applied, fmt.Errorf("migrate to version %d: %w", m.Version, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return applied, fmt.Errorf("migrate to version %d: %w", m.Version, err)
		}
		applied = append(applied, m)
	}
	return applied, nil
}

// SchemaVersion returns the version the database's schema is at: 0 for a
// database "postoffice db migrate" never ran on.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	return currentVersion(ctx, conn.QueryRow)
}

// ErrSchema is wrapped by CheckSchema's error for a schema at another
// version than this build's.
var ErrSchema = errors.New("database schema version mismatch")

// CheckSchema reports an error wrapping ErrSchema unless the schema is at
// LatestVersion, and any error reaching the database: the server checks
// at start-up, so that a node never runs against a schema it does not
// know.
func (s *Store) CheckSchema(ctx context.Context) error {
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case v < LatestVersion():
		return fmt.Errorf("%w: the database is at version %d, this postoffice needs %d: run \"postoffice db migrate\"", ErrSchema, v, LatestVersion())
	case v > LatestVersion():
		return fmt.Errorf("%w: the database is at version %d, newer than this postoffice knows (%d): upgrade postoffice", ErrSchema, v, LatestVersion())
	}
	return nil
}

// currentVersion reads the highest applied migration.
func currentVersion(ctx context.Context, queryRow func(ctx context.Context, sql string, args ...any) pgx.Row) (int, error) {
	var v int
	if err := queryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}
