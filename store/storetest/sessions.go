package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// RFC 1939 §7: unique ids are 1..70 characters of 0x21..0x7E, distinct
// within the maildrop.
func testUIDFormat(t *testing.T, e *env) {
	for i := range 10 {
		e.deliver(fmt.Sprintf("Subject: %d\n\nsame body\n", i%2))
	}
	s := e.open()
	checkDistinct(t, s.uids()) // messages() already checked the form
	s.close()
}

// RFC 1939 §7: a unique id never changes, so leave-on-server clients do not
// download a message twice.
func testUIDsStable(t *testing.T, e *env) {
	for i := range 4 {
		e.deliver(fmt.Sprintf("Subject: %d\n\nbody\n", i))
	}
	s := e.open()
	first := s.messages()
	s.close()

	s = e.open()
	if got := s.messages(); !sameInfos(got, first) {
		t.Fatalf("snapshot changed between sessions:\n got %v\nwant %v", got, first)
	}
	s.commit([]int{1}, nil)
	s.close()

	// The survivors keep their ids after another message was removed.
	s = e.open()
	if got, want := s.uids(), pick(uidsOf(first), 0, 2, 3); !slices.Equal(got, want) {
		t.Errorf("after deleting message 1, UIDs = %q, want %q", got, want)
	}
	s.close()
}

// RFC 1939 §7 and design invariant 4: an id is never reused, even after
// the message that had it was deleted, even when the maildrop became empty.
func testUIDsNeverReused(t *testing.T, e *env) {
	seen := map[string]bool{}
	remember := func(uids []string) {
		for _, u := range uids {
			seen[u] = true
		}
	}
	checkNew := func(uid string) {
		t.Helper()
		if seen[uid] {
			t.Errorf("UID %q was reused", uid)
		}
		seen[uid] = true
	}

	for i := range 3 {
		e.deliver(fmt.Sprintf("Subject: %d\n\nfirst batch\n", i))
	}
	s := e.open()
	uids := s.uids()
	remember(uids)
	s.commit([]int{2}, nil) // the newest: the one a counter would hand out again
	s.close()

	e.deliver("Subject: next\n\nafter a deletion\n")
	s = e.open()
	got := s.uids()
	if len(got) != 3 {
		t.Fatalf("snapshot has %d messages, want 3", len(got))
	}
	checkNew(got[2])
	s.commit([]int{0, 1, 2}, nil) // empty the maildrop
	s.close()

	e.deliver("Subject: again\n\nafter emptying\n")
	s = e.open()
	got = s.uids()
	if len(got) != 1 {
		t.Fatalf("snapshot has %d messages, want 1", len(got))
	}
	checkNew(got[0])
	s.close()
}

func uidsOf(msgs []store.MessageInfo) []string {
	var uids []string
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	return uids
}

// Store.Open: "It returns ErrInUse when another session holds the lock"
// (RFC 1939 §4, RFC 2449 [IN-USE]); Close releases it; other accounts are
// not affected.
func testInUse(t *testing.T, e *env) {
	e.deliver("Subject: x\n\n1\n")
	s := e.open()

	md, err := e.st.Open(t.Context(), e.acct)
	if err == nil {
		md.Close()
		t.Fatal("second Open of a held maildrop succeeded, want ErrInUse")
	}
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}

	other := openSession(t, e.st, newAccount(t, "bob"))
	other.close()

	// The refused Open must not have disturbed the holder.
	if got := s.content(0); got != "Subject: x\n\n1\n" {
		t.Errorf("holder's content = %q", got)
	}
	s.close()

	s = e.open()
	if n := len(s.messages()); n != 1 {
		t.Errorf("after Close and reopen: %d messages, want 1", n)
	}
	s.close()
}

// Only one of many simultaneous Opens wins the lock (design invariant 6).
func testConcurrentOpen(t *testing.T, e *env) {
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []store.Maildrop
		others  []error
	)
	for range n {
		wg.Go(func() {
			md, err := e.st.Open(t.Context(), e.acct)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, md)
			} else if !errors.Is(err, store.ErrInUse) {
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	for _, md := range winners {
		md.Close()
	}
	for _, err := range others {
		t.Errorf("concurrent Open: %v, want success or ErrInUse", err)
	}
	if len(winners) != 1 {
		t.Errorf("%d of %d concurrent Opens succeeded, want exactly 1", len(winners), n)
	}
}

// RFC 1939 §6: a session that ends without QUIT removes nothing.
func testCloseWithoutCommit(t *testing.T, e *env) {
	want := []string{"Subject: a\n\n1\n", "Subject: b\n\n2\n"}
	for _, c := range want {
		e.deliver(c)
	}
	s := e.open()
	first := s.messages()
	s.content(0) // retrieved, but no QUIT
	s.close()

	s = e.open()
	checkContents(t, s, want)
	if got := s.messages(); !sameInfos(got, first) {
		t.Errorf("snapshot changed by a session without Commit:\n got %v\nwant %v", got, first)
	}
	s.close()
}

// Maildrop.Commit removes exactly the deleted messages (RFC 1939 §6).
func testCommitDeletesExactly(t *testing.T, e *env) {
	var all []string
	for i := range 6 {
		c := fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i)
		e.deliver(c)
		all = append(all, c)
	}
	s := e.open()
	uids := s.uids()
	s.commit([]int{4, 1, 0}, nil) // any order
	s.close()

	s = e.open()
	checkContents(t, s, pick(all, 2, 3, 5))
	if got, want := s.uids(), pick(uids, 2, 3, 5); !slices.Equal(got, want) {
		t.Errorf("UIDs after Commit = %q, want %q", got, want)
	}
	s.close()
}

// A QUIT with nothing marked changes nothing.
func testCommitNothing(t *testing.T, e *env) {
	e.deliver("Subject: a\n\n1\n")
	s := e.open()
	first := s.messages()
	s.commit(nil, nil)
	s.close()
	s = e.open()
	if got := s.messages(); !sameInfos(got, first) {
		t.Errorf("empty Commit changed the snapshot:\n got %v\nwant %v", got, first)
	}
	s.close()
}

// Maildrop.Commit: "A message that is already gone counts as removed."
func testCommitAlreadyRemoved(t *testing.T, e *env) {
	rm := e.remover()
	for i := range 3 {
		e.deliver(fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i))
	}
	s := e.open()
	uids := s.uids()
	if err := rm.RemoveBehind(t.Context(), e.acct, uids[1]); err != nil {
		t.Fatalf("RemoveBehind: %v", err)
	}
	if err := s.md.Commit(t.Context(), []int{0, 1}, []int{1, 2}); err != nil {
		t.Errorf("Commit including a message removed elsewhere: %v, want nil", err)
	}
	s.close()

	s = e.open()
	if got := s.uids(); !slices.Equal(got, uids[2:]) {
		t.Errorf("UIDs after Commit = %q, want %q", got, uids[2:])
	}
	s.close()
}

// MessageInfo.FirstRetrieved is set by the first session that retrieved
// the message and ended with QUIT, and never moved later (RFC 2449 EXPIRE
// counts from it).
func testFirstRetrieved(t *testing.T, e *env) {
	for i := range 3 {
		e.deliver(fmt.Sprintf("Subject: %d\n\nbody\n", i))
	}
	before := time.Now()
	s := e.open()
	s.commit(nil, []int{0})
	s.close()

	s = e.open()
	msgs := s.messages()
	checkRecent(t, "FirstRetrieved", msgs[0].FirstRetrieved, before)
	for i := 1; i < 3; i++ {
		if !msgs[i].FirstRetrieved.IsZero() {
			t.Errorf("message %d: FirstRetrieved = %v, want zero (never retrieved)", i, msgs[i].FirstRetrieved)
		}
	}
	first := msgs[0].FirstRetrieved
	// Retrieved again, and message 1 for the first time; message 2 only
	// in a session that never commits.
	s.commit(nil, []int{0, 1})
	s.close()
	s = e.open()
	s.content(2)
	s.close()

	s = e.open()
	msgs = s.messages()
	if !msgs[0].FirstRetrieved.Equal(first) {
		t.Errorf("FirstRetrieved of message 0 moved from %v to %v", first, msgs[0].FirstRetrieved)
	}
	checkRecent(t, "FirstRetrieved of message 1", msgs[1].FirstRetrieved, before)
	if !msgs[2].FirstRetrieved.IsZero() {
		t.Errorf("message 2: FirstRetrieved = %v after a session without Commit, want zero", msgs[2].FirstRetrieved)
	}
	s.close()
}

// A Commit after Close is a bug in the caller; it must fail rather than
// change a maildrop the session no longer holds.
func testCommitAfterClose(t *testing.T, e *env) {
	e.deliver("Subject: a\n\n1\n")
	s := e.open()
	s.close()
	if err := s.md.Commit(t.Context(), []int{0}, []int{0}); err == nil {
		t.Error("Commit on a closed maildrop succeeded, want an error")
	}
	s = e.open()
	if n := len(s.messages()); n != 1 {
		t.Errorf("Commit after Close removed a message: %d left, want 1", n)
	}
	s.close()
}
