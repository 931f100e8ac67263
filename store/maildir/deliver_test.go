package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// deliverSteps are the steps of Deliver at which faultHook can make it
// fail, in order.
var deliverSteps = []string{"create", "write", "sync-file", "lock-index", "append-index", "sync-index", "rename", "sync-new"}

// A delivery that fails at any step leaves nothing: no file in tmp/ or
// new/, no record in the index, no message in the next session, and the
// next delivery works and gets a fresh unique id (design invariant 5).
func TestDeliverFailureAtEachStep(t *testing.T) {
	for _, step := range deliverSteps {
		t.Run(step, func(t *testing.T) {
			s, base := newTestStore(t, Config{})
			dir := filepath.Join(base, "alice", "Maildir")
			before, err := s.Deliver(t.Context(), alice, strings.NewReader("Subject: before\n\nkept\n"))
			if err != nil {
				t.Fatal(err)
			}
			injected := errors.New("injected failure at " + step)
			s.faultHook = func(at string) error {
				if at == step {
					return injected
				}
				return nil
			}
			if _, err := s.Deliver(t.Context(), alice, strings.NewReader("Subject: lost\n\nnever acknowledged\n")); !errors.Is(err, injected) {
				t.Fatalf("Deliver with a failure at %s: %v, want the injected error", step, err)
			}
			s.faultHook = nil
			if names := listDir(t, filepath.Join(dir, "tmp")); len(names) != 0 {
				t.Errorf("tmp/ holds %q after a failure at %s", names, step)
			}
			if names := listDir(t, filepath.Join(dir, "new")); len(names) != 1 {
				t.Errorf("new/ holds %q after a failure at %s, want only the first message", names, step)
			}
			ix, err := loadIndex(mustRoot(t, dir))
			if err != nil || len(ix.entries) != 1 {
				t.Fatalf("index after a failure at %s: %v, %+v", step, err, ix)
			}
			after, err := s.Deliver(t.Context(), alice, strings.NewReader("Subject: after\n\nretried\n"))
			if err != nil {
				t.Fatalf("Deliver after the failure: %v", err)
			}
			md := open(t, s, alice)
			msgs := md.Messages()
			if len(msgs) != 2 || msgs[0].UID != before.UID || msgs[1].UID != after.UID {
				t.Fatalf("after a failure at %s the maildrop holds %+v, want %q and %q", step, msgs, before.UID, after.UID)
			}
			if got := read(t, md, 1); got != "Subject: after\n\nretried\n" {
				t.Errorf("second message = %q", got)
			}
		})
	}
}

func mustRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

// A crash in the middle of an append leaves a last index line without its
// LF: Open ignores it, and the next delivery cuts it off first.
func TestTornIndexRecord(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	first, err := s.Deliver(t.Context(), alice, strings.NewReader("one\n"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, indexFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("2 5 1700000000 0 1700000000.M1P1Q1.torn,S=")
	f.Close()

	md := open(t, s, alice)
	if msgs := md.Messages(); len(msgs) != 1 || msgs[0].UID != first.UID {
		t.Fatalf("with a torn record: %+v", msgs)
	}
	md.Close()
	second, err := s.Deliver(t.Context(), alice, strings.NewReader("two\n"))
	if err != nil {
		t.Fatalf("Deliver after a torn record: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseIndex(string(data)); err != nil || strings.Contains(string(data), "torn") {
		t.Fatalf("index after the repair: %v\n%s", err, data)
	}
	md = open(t, s, alice)
	if msgs := md.Messages(); len(msgs) != 2 || msgs[1].UID != second.UID {
		t.Fatalf("after the repair: %+v", msgs)
	}
}

// Delivery never waits for a POP3 session (it takes only the index lock,
// briefly), the session keeps its snapshot, its Commit keeps the records
// delivered meanwhile, and the next session shows them with the ids
// Deliver returned.
func TestDeliverDuringSessionDoesNotBlock(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	old, err := s.Deliver(t.Context(), alice, strings.NewReader("old\n"))
	if err != nil {
		t.Fatal(err)
	}
	md := open(t, s, alice)
	var infos []store.MessageInfo
	start := time.Now()
	for range 20 {
		info, err := s.Deliver(t.Context(), alice, strings.NewReader("new\n"))
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("20 deliveries during a session took %v", d)
	}
	if len(md.Messages()) != 1 {
		t.Errorf("the session's snapshot changed: %+v", md.Messages())
	}
	if err := md.Commit(t.Context(), []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	md.Close()
	md = open(t, s, alice)
	msgs := md.Messages()
	if len(msgs) != len(infos) {
		t.Fatalf("next session has %d messages, want %d", len(msgs), len(infos))
	}
	for i, m := range msgs {
		if m.UID != infos[i].UID || m.UID == old.UID {
			t.Errorf("message %d has UID %q, Deliver returned %q", i, m.UID, infos[i].UID)
		}
	}
}

// Usage counts from the index, follows appends and rewrites, and agrees
// with the snapshot.
func TestUsage(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	if u, err := s.Usage(t.Context(), alice); err != nil || u != (store.Usage{}) {
		t.Fatalf("Usage of an empty maildrop = %+v, %v", u, err)
	}
	var want store.Usage
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			info, err := s.Deliver(t.Context(), alice, strings.NewReader(strings.Repeat("x\n", i+1)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			want.Messages++
			want.Bytes += info.Size
			mu.Unlock()
		})
		if i%3 == 0 {
			if _, err := s.Usage(t.Context(), alice); err != nil {
				t.Error(err)
			}
		}
	}
	wg.Wait()
	if u, err := s.Usage(t.Context(), alice); err != nil || u != want {
		t.Fatalf("Usage = %+v, %v; want %+v", u, err, want)
	}
	md := open(t, s, alice)
	gone := md.Messages()[0].Size
	if err := md.Commit(t.Context(), []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	md.Close()
	want.Messages--
	want.Bytes -= gone
	if u, err := s.Usage(t.Context(), alice); err != nil || u != want {
		t.Fatalf("after a deletion Usage = %+v, %v; want %+v", u, err, want)
	}
}

// Concurrent deliveries share index appends and directory syncs (group
// commit); when some of a batch fail after their records were appended,
// the others are delivered, and only they are indexed.
func TestGroupCommitPartialFailure(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	var mu sync.Mutex
	renames := 0
	s.faultHook = func(step string) error {
		if step != "rename" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		renames++
		if renames%3 == 0 {
			return errors.New("injected rename failure")
		}
		return nil
	}
	const n = 30
	var wg sync.WaitGroup
	results := make(chan store.MessageInfo, n)
	failures := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			info, err := s.Deliver(t.Context(), alice, strings.NewReader("message "+strings.Repeat("x", i)+"\n"))
			if err != nil {
				failures <- err
				return
			}
			results <- info
		})
	}
	wg.Wait()
	close(results)
	close(failures)
	s.faultHook = nil
	delivered := map[string]bool{}
	for info := range results {
		if delivered[info.UID] {
			t.Errorf("UID %q returned twice", info.UID)
		}
		delivered[info.UID] = true
	}
	if len(failures) == 0 || len(delivered) == 0 || len(failures)+len(delivered) != n {
		t.Fatalf("%d delivered, %d failed; want some of each, %d in all", len(delivered), len(failures), n)
	}
	if names := listDir(t, filepath.Join(dir, "tmp")); len(names) != 0 {
		t.Errorf("tmp/ holds %d files", len(names))
	}
	ix, err := loadIndex(mustRoot(t, dir))
	if err != nil || len(ix.entries) != len(delivered) {
		t.Fatalf("index has %d records, want %d (%v)", len(ix.entries), len(delivered), err)
	}
	md := open(t, s, alice)
	if len(md.Messages()) != len(delivered) {
		t.Fatalf("next session has %d messages, want %d", len(md.Messages()), len(delivered))
	}
	for _, m := range md.Messages() {
		if !delivered[m.UID] {
			t.Errorf("session shows UID %q, which no successful Deliver returned", m.UID)
		}
	}
}
