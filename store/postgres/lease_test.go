package postgres

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// deliverN delivers n small messages to acct.
func deliverN(t *testing.T, s *Store, acct store.Account, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Deliver(t.Context(), acct, strings.NewReader(fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i))); err != nil {
			t.Fatal(err)
		}
	}
}

// crash makes a Store behave like a node that died: it stops renewing its
// leases and drops its connections without releasing anything.
func crash(s *Store) {
	s.leases.stop()
	s.pool.Close()
}

// Two nodes on one database: a session held on one is refused on the
// other; once the first node dies, its lease expires and the second node
// gets the maildrop, with the first session's uncommitted deletions not
// applied.
func TestLeaseAcrossNodes(t *testing.T) {
	t.Parallel()
	dsn := cluster.Database(t)
	const lease = 1500 * time.Millisecond
	a := newTestStore(t, Config{DSN: dsn, Lease: lease, Holder: "node-a"})
	b := newTestStore(t, Config{DSN: dsn, Lease: lease, Holder: "node-b"})
	acct := store.Account{Name: "alice"}
	deliverN(t, a, acct, 3)

	md, err := a.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	// Renewals keep it held well past the lease.
	deadline := time.Now().Add(2 * lease)
	for time.Now().Before(deadline) {
		if _, err := b.Open(t.Context(), acct); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("Open on node b while node a holds the maildrop: %v, want ErrInUse", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var holder string
	if err := b.pool.QueryRow(t.Context(), "SELECT holder FROM leases").Scan(&holder); err != nil || holder != "node-a" {
		t.Errorf("lease holder = %q (%v), want node-a", holder, err)
	}
	_ = md // node a dies with the session open: no Commit, no Close
	crash(a)
	start := time.Now()
	for {
		md2, err := b.Open(t.Context(), acct)
		if err == nil {
			if n := len(md2.Messages()); n != 3 {
				t.Errorf("after takeover: %d messages, want 3", n)
			}
			md2.Close()
			break
		}
		if !errors.Is(err, store.ErrInUse) {
			t.Fatal(err)
		}
		if time.Since(start) > 3*lease {
			t.Fatalf("lease of the dead node not expired after %v", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if waited := time.Since(start); waited > 2*lease {
		t.Errorf("took %v to take over a lease of %v", waited, lease)
	}
}

// A node cut off from the database for longer than the lease loses it; its
// session's Commit then fails and deletes nothing, while the session that
// took the maildrop over works on.
func TestLostLeaseCommitFails(t *testing.T) {
	t.Parallel()
	dsn := cluster.Database(t)
	const lease = time.Second
	a := newTestStore(t, Config{DSN: dsn, Lease: lease})
	b := newTestStore(t, Config{DSN: dsn, Lease: lease})
	acct := store.Account{Name: "bob"}
	deliverN(t, a, acct, 2)
	md, err := a.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	a.leases.stop() // the renewals stop getting through
	var md2 store.Maildrop
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if md2, err = b.Open(t.Context(), acct); err == nil {
			break
		}
		if time.Since(start) > 5*lease {
			t.Fatalf("no takeover: %v", err)
		}
	}
	if err := md.Commit(t.Context(), []int{0, 1}, nil); !errors.Is(err, errLeaseLost) {
		t.Errorf("Commit after losing the lease: %v, want errLeaseLost", err)
	}
	md.Close() // must not release the new holder's lease
	if _, err := b.Open(t.Context(), acct); !errors.Is(err, store.ErrInUse) {
		t.Errorf("old session's Close released the new holder's lease: %v", err)
	}
	if err := md2.Commit(t.Context(), []int{0}, nil); err != nil {
		t.Errorf("new holder's Commit: %v", err)
	}
	md2.Close()
	u, err := b.Usage(t.Context(), acct)
	if err != nil || u.Messages != 1 {
		t.Errorf("Usage = %+v, %v; want 1 message", u, err)
	}
}

// Bodies larger than a chunk are stored in several and read back whole,
// a chunk at a time.
func TestLargeMessage(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Config{})
	acct := store.Account{Name: "carol"}
	var b strings.Builder
	for i := 0; b.Len() < 3*ChunkSize+1000; i++ {
		fmt.Fprintf(&b, "line %d of a large message\r\n", i)
	}
	want := b.String()
	info, err := s.Deliver(t.Context(), acct, strings.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(want)) {
		t.Errorf("Size = %d, want %d", info.Size, len(want))
	}
	var chunks int
	s.pool.QueryRow(t.Context(), "SELECT count(*) FROM message_chunks").Scan(&chunks)
	if chunks != 4 {
		t.Errorf("stored in %d chunks, want 4", chunks)
	}
	md, err := s.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	r, err := md.Open(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != want {
		t.Errorf("read back %d octets (%v), want %d", len(got), err, len(want))
	}
	if md.Messages()[0].UID != info.UID {
		t.Errorf("UID %q, Deliver said %q", md.Messages()[0].UID, info.UID)
	}
}

// A delivery that fails at any step leaves nothing behind: no message, no
// chunk, no change to the totals (design invariant 5).
func TestDeliverFailureAtEachStep(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Config{})
	acct := store.Account{Name: "dave"}
	deliverN(t, s, acct, 1)
	big := strings.Repeat("x", 2*ChunkSize+10)
	for _, step := range []string{"read", "write-chunk", "insert", "commit-delivery"} {
		for _, body := range []string{"Subject: small\n\nx\n", big} {
			if (step == "write-chunk" || step == "commit-delivery") && len(body) < ChunkSize {
				continue // a one-chunk message has no such step
			}
			s.faultHook = func(got string) error {
				if got == step {
					return errors.New("injected failure at " + step)
				}
				return nil
			}
			_, err := s.Deliver(t.Context(), acct, strings.NewReader(body))
			s.faultHook = nil
			if err == nil {
				t.Errorf("step %s, %d octets: Deliver succeeded", step, len(body))
			}
		}
	}
	var messages, chunks int
	s.pool.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM message_chunks)").Scan(&messages, &chunks)
	if messages != 1 || chunks != 1 {
		t.Errorf("after failed deliveries: %d messages, %d chunks; want 1 and 1", messages, chunks)
	}
	if u, _ := s.Usage(t.Context(), acct); u.Messages != 1 {
		t.Errorf("Usage = %+v, want 1 message", u)
	}
}

// The schema: migrations apply once, a second run has nothing to do, and
// CheckSchema tells an unmigrated database from a current one.
func TestMigrate(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Config{DSN: cluster.Database(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckSchema(t.Context()); !errors.Is(err, ErrSchema) {
		t.Errorf("CheckSchema on an empty database: %v, want ErrSchema", err)
	}
	var wg sync.WaitGroup
	applied := make([]int, 3)
	for i := range applied {
		wg.Go(func() {
			ms, err := s.Migrate(t.Context())
			if err != nil {
				t.Error(err)
			}
			applied[i] = len(ms)
		})
	}
	wg.Wait()
	if total := applied[0] + applied[1] + applied[2]; total != LatestVersion() {
		t.Errorf("concurrent migrations applied %v steps, want %d in all", applied, LatestVersion())
	}
	if err := s.CheckSchema(t.Context()); err != nil {
		t.Errorf("CheckSchema after Migrate: %v", err)
	}
	if _, err := s.pool.Exec(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(t.Context()); err == nil {
		t.Error("Migrate on a newer schema succeeded")
	}
}

// The unique ids are store/maildir's and Dovecot's (%08Xu%08Xv), in Go and
// in the schema's function alike.
func TestUniqueIDFormat(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Config{})
	for _, c := range []struct{ uid, v int64 }{{1, 1700000000}, {255, 1}, {1 << 33, 1 << 32}} {
		want := uniqueID(c.uid, c.v)
		var got string
		if err := s.pool.QueryRow(t.Context(), "SELECT postoffice_uidl($1, $2)", c.uid, c.v).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("postoffice_uidl(%d, %d) = %q, Go says %q", c.uid, c.v, got, want)
		}
	}
	if got := uniqueID(1, 0x6553F100); got != "000000016553F100" {
		t.Errorf("uniqueID = %q", got)
	}
}

// cutProxy is a TCP proxy to the test cluster's socket that a test can cut,
// as a database that goes away (crash, network partition) would be.
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func newCutProxy(t *testing.T) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	socket := filepath.Join(cluster.SocketDir(), ".s.PGSQL.5432")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("unix", socket)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); p.setCut(true) })
	return p
}

// setCut drops every connection and refuses new ones (true), or lets
// connections through again (false).
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *cutProxy) dsn(database string) string {
	host, port, _ := net.SplitHostPort(p.l.Addr().String())
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable", host, port, database)
}

// The database goes away mid-session: reading a message and committing
// fail with errors (the POP3 server's [SYS/TEMP]), nothing is deleted,
// Close returns, and once the database is back the maildrop is whole and
// free again.
func TestDatabaseGoesAway(t *testing.T) {
	t.Parallel()
	direct := cluster.Database(t)
	p := newCutProxy(t)
	dbname := direct[strings.LastIndex(direct, "dbname=")+len("dbname="):]
	dbname = dbname[:strings.IndexByte(dbname, ' ')]
	const lease = 2 * time.Second
	s := newTestStore(t, Config{DSN: p.dsn(dbname), Lease: lease, AcquireTimeout: 500 * time.Millisecond})
	acct := store.Account{Name: "erin"}
	deliverN(t, s, acct, 3)
	md, err := s.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	p.setCut(true)
	if _, err := md.Open(t.Context(), 0); err == nil || errors.Is(err, store.ErrNoSuchMessage) {
		t.Errorf("RETR with the database gone: %v, want a temporary error", err)
	}
	if err := md.Commit(t.Context(), []int{0, 1, 2}, nil); err == nil {
		t.Error("Commit with the database gone succeeded")
	}
	done := make(chan struct{})
	go func() { md.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while the database is gone")
	}
	if _, err := s.Deliver(t.Context(), acct, strings.NewReader("x\n")); err == nil || !errors.Is(err, ErrBusy) {
		t.Errorf("Deliver with the database gone: %v, want ErrBusy", err)
	}
	p.setCut(false)
	// The lease could not be released: it expires.
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		md, err = s.Open(t.Context(), acct)
		if err == nil {
			break
		}
		if time.Since(start) > 3*lease {
			t.Fatalf("maildrop not usable after the database came back: %v", err)
		}
	}
	defer md.Close()
	if n := len(md.Messages()); n != 3 {
		t.Errorf("after the outage: %d messages, want 3 (nothing deleted)", n)
	}
}

// A connection storm larger than the pool: operations wait up to the
// acquire timeout, then fail with ErrBusy; none hangs, and the store
// serves again as soon as connections are free.
func TestPoolExhausted(t *testing.T) {
	t.Parallel()
	dsn := cluster.Database(t)
	newTestStore(t, Config{DSN: dsn}) // migrates
	s, err := Open(t.Context(), Config{DSN: dsn, MaxConns: 2, AcquireTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Hold both connections, as two long queries would.
	var held []interface{ Release() }
	for range 2 {
		c, err := s.acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	start := time.Now()
	for i := range 20 {
		wg.Go(func() {
			_, err := s.Open(t.Context(), store.Account{Name: fmt.Sprintf("storm%d", i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrBusy) {
			t.Errorf("Open with the pool exhausted: %v, want ErrBusy", err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("storm took %v; operations should give up after the acquire timeout", d)
	}
	for _, c := range held {
		c.Release()
	}
	md, err := s.Open(t.Context(), store.Account{Name: "after-storm"})
	if err != nil {
		t.Fatalf("Open after the storm: %v", err)
	}
	md.Close()
}

// A session holds no database connection between commands: many open
// sessions share a pool of one.
func TestIdleSessionsHoldNoConnection(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, Config{MaxConns: 1})
	var sessions []store.Maildrop
	for i := range 20 {
		acct := store.Account{Name: fmt.Sprintf("idle%d", i)}
		deliverN(t, s, acct, 1)
		md, err := s.Open(t.Context(), acct)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, md)
	}
	if n := s.pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections held by 20 idle sessions, want 0", n)
	}
	for _, md := range sessions {
		r, err := md.Open(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(r)
		r.Close()
		if err := md.Commit(t.Context(), []int{0}, nil); err != nil {
			t.Fatal(err)
		}
		md.Close()
	}
}
