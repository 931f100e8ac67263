// Package postgres stores POP3 maildrops in PostgreSQL, so that any number
// of stateless "postoffice serve" nodes can share them: the database keeps
// every piece of state, the nodes keep none.
//
// The schema (migrations/, applied by Migrate: "postoffice db migrate") has
// a row per maildrop (its uid counter and usage totals), a row per message
// (permanent unique id, CRLF size, arrival and first retrieval, computed
// once at delivery), the message bodies in chunks of up to ChunkSize
// octets, one lease row per locked maildrop, and the users of package
// auth/pgusers.
//
// What each POP3 step costs:
//
//   - Open (login): one round trip that takes the maildrop's lease and
//     reads the snapshot from an index-only scan (no body is touched).
//   - RETR: one query per chunk, each on a pool connection held only for
//     that query, so a large message is never loaded whole and a session
//     holds no connection while idle.
//   - QUIT: one transaction that checks the lease is still ours, deletes
//     the marked messages (their chunks go with them) and records first
//     retrievals.
//   - Deliver: the chunks are written as the message is read, then the
//     maildrop row hands out the next uid and the message row goes in, in
//     one transaction; the maildrop row is locked only for that last step.
//
// Session locks are leases in the database (see lease.go): a second session
// on any node gets store.ErrInUse, and a node that dies stops renewing its
// leases, which then expire. All lease times are the database's clock, so
// the nodes' clocks do not matter.
//
// Every operation waits at most AcquireTimeout for a pool connection and
// then fails with an error wrapping ErrBusy (the POP3 server answers it
// with [SYS/TEMP], LMTP with 451), so a connection storm makes sessions
// wait briefly rather than pile up.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postoffice-mail/postoffice/store"
)

// Defaults for Config's zero values.
const (
	DefaultMaxConns       = 20
	DefaultLease          = 2 * time.Minute
	DefaultAcquireTimeout = 5 * time.Second
	// ChunkSize is the largest body chunk: large enough that a 10 MB
	// message takes 40 queries, small enough that a chunk is cheap to
	// hold in memory per RETR.
	ChunkSize = 256 * 1024
)

// ErrBusy is wrapped by the errors of operations that found no free pool
// connection within Config.AcquireTimeout (or could not connect at all):
// a temporary condition.
var ErrBusy = errors.New("database busy or unreachable")

// Config configures a Store.
type Config struct {
	// DSN is the connection string, as libpq takes it
	// ("host=db1 dbname=postoffice user=postoffice" or a postgres:// URL).
	// Pool settings in it (pool_max_conns and so on) are overridden by the
	// fields below.
	DSN string
	// MaxConns bounds the pool's connections; 0 means DefaultMaxConns.
	MaxConns int
	// Lease is how long a maildrop lock lasts without renewal; the holder
	// renews it every Lease/3. 0 means DefaultLease.
	Lease time.Duration
	// AcquireTimeout is how long an operation waits for a pool connection
	// before it fails with ErrBusy; 0 means DefaultAcquireTimeout.
	AcquireTimeout time.Duration
	// Holder names this node in lease rows, for administrators looking at
	// who holds a maildrop; "" means "hostname:pid".
	Holder string
	// Logger receives lost leases and similar events; nil discards them.
	Logger *slog.Logger
}

// Store is the PostgreSQL store. It implements store.Store,
// store.Deliverer and store.UsageReporter, and is safe for concurrent use.
type Store struct {
	pool           *pgxpool.Pool
	log            *slog.Logger
	lease          time.Duration
	acquireTimeout time.Duration
	holder         string
	leases         *leaseKeeper

	// faultHook, set only by tests, makes the named step fail.
	faultHook func(step string) error
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.Deliverer     = (*Store)(nil)
	_ store.UsageReporter = (*Store)(nil)
)

// Open creates the connection pool (connecting lazily: a database that is
// down at start-up is reported by the first operation, and by CheckSchema)
// and starts the lease keeper. Close releases both.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, errors.New("postgres store: no DSN")
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("postgres store: cannot parse the DSN")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.AcquireTimeout <= 0 {
		cfg.AcquireTimeout = DefaultAcquireTimeout
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pc.MaxConns = int32(min(cfg.MaxConns, 1<<20))
	pc.MinConns = 0
	// A connection that waits this long to be established is not going
	// to help a client waiting for its login.
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > cfg.AcquireTimeout {
		pc.ConnConfig.ConnectTimeout = cfg.AcquireTimeout
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "postoffice"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s := &Store{
		pool:           pool,
		log:            cfg.Logger,
		lease:          cfg.Lease,
		acquireTimeout: cfg.AcquireTimeout,
		holder:         cfg.Holder,
	}
	s.leases = newLeaseKeeper(s)
	return s, nil
}

// Close stops renewing leases and closes the pool. Sessions should be
// closed first: their leases are then released rather than left to
// expire.
func (s *Store) Close() {
	s.leases.stop()
	s.pool.Close()
}

// Pool is the connection pool, for the user database (package
// auth/pgusers) to share.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// AcquireTimeout is how long an operation waits for a pool connection.
func (s *Store) AcquireTimeout() time.Duration { return s.acquireTimeout }

// acquire takes a pool connection, waiting at most the acquire timeout.
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, s.acquireTimeout)
	defer cancel()
	conn, err := s.pool.Acquire(actx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return conn, nil
}

// fault returns the error a test injected for step, or nil.
func (s *Store) fault(step string) error {
	if s.faultHook == nil {
		return nil
	}
	return s.faultHook(step)
}

// uniqueID is the unique id of uid in a maildrop of the given validity:
// the same as store/maildir's, in the layout of Dovecot's default
// pop3_uidl_format (%08Xu%08Xv) but in upper-case hex where Dovecot
// writes lower case, and as the schema's postoffice_uidl function.
func uniqueID(uid, validity int64) string {
	return hex8(uid) + hex8(validity)
}

func hex8(n int64) string {
	h := strings.ToUpper(strconv.FormatUint(uint64(n), 16))
	if len(h) < 8 {
		h = strings.Repeat("0", 8-len(h)) + h
	}
	return h
}
