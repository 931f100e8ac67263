package postgres

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/internal/pgtest"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/storetest"
)

// cluster is this package's throwaway PostgreSQL, started on first use.
var cluster = pgtest.New()

func TestMain(m *testing.M) { os.Exit(cluster.Run(m)) }

// newTestStore opens a Store on a fresh, migrated database.
func newTestStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.DSN == "" {
		cfg.DSN = cluster.Database(t)
	}
	// Migrated with the default timeouts: a test's short acquire
	// timeout is for what it tests, not for the set-up on a busy machine.
	m, err := Open(t.Context(), Config{DSN: cfg.DSN})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Migrate(t.Context())
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// harness adds the storetest hook for messages removed by other programs
// (an administrator's DELETE, another tool).
type harness struct{ *Store }

// RemoveBehind implements storetest.ExternalRemover.
func (h harness) RemoveBehind(ctx context.Context, acct store.Account, uid string) error {
	_, err := h.pool.Exec(ctx, `WITH gone AS (DELETE FROM messages WHERE unique_id = $2
			AND maildrop_id = (SELECT id FROM maildrops WHERE name = $1) RETURNING maildrop_id, size)
		UPDATE maildrops SET message_count = message_count - 1, total_size = total_size - gone.size
		FROM gone WHERE maildrops.id = gone.maildrop_id`, acct.Name, uid)
	return err
}

// The conformance suite, on one database: every subtest uses fresh
// account names.
func TestConformance(t *testing.T) {
	s := newTestStore(t, Config{Lease: 30 * time.Second})
	storetest.Run(t, func(t *testing.T) (store.Store, store.Deliverer) {
		return harness{s}, s
	})
}
