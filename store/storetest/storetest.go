// Package storetest is the conformance suite every store.Store and
// store.Deliverer implementation must pass. A store's own tests call Run
// with a constructor; each subtest pins one promise that package store
// documents, so a failing subtest names the broken promise.
//
// The suite only uses the store package's interfaces, so that a new kind of
// store (PostgreSQL, say) can pass it without test hooks. The one exception
// is optional: a store harness that can remove a message "behind the
// session's back", as another program would, implements ExternalRemover and
// gains the subtests that need it; without it those subtests are skipped.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// ExternalRemover is implemented by test harnesses that can remove a
// message from a maildrop without going through a session, as another
// program (a second mail server, an administrator's shell) would. Run looks
// for it on the store.Store and then on the store.Deliverer that newStore
// returns.
type ExternalRemover interface {
	// RemoveBehind removes the message with the given unique id from the
	// account's maildrop, ignoring any session lock.
	RemoveBehind(ctx context.Context, acct store.Account, uid string) error
}

// clockSlack is how far a store's timestamps may be from the test's clock.
// Stores may keep whole seconds (Maildir names) or use a database server's
// clock, so the check is only that the time is plausible, not exact.
const clockSlack = time.Minute

// Run runs the conformance suite. newStore is called once per subtest and
// must return a store in which none of the suite's accounts has mail yet
// (every subtest uses fresh, randomly suffixed account names such as
// "alice-1a2b3c4d@example.org", so a harness may hand out the same store,
// or the same database, each time). Both return values may be the same
// object. Accounts carry only a Name: a store that needs a location
// template or a home directory must be configured to do without.
//
// Besides what package store documents, the suite expects Deliver to return
// the message's Size and Received time; its UID may be empty (assigned at
// the next Open), but if set it must be the one the next snapshot shows.
// Timestamps are checked to within a minute of the test's clock, so whole
// seconds and a database server's clock are fine.
func Run(t *testing.T, newStore func(t *testing.T) (store.Store, store.Deliverer)) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"EmptyUnknownAccount", testEmptyUnknownAccount},
		{"DeliverThenOpen", testDeliverThenOpen},
		{"Contents", testContents},
		{"DeliverReaderError", testDeliverReaderError},
		{"OrderOldestFirst", testOrderOldestFirst},
		{"UIDFormatAndUniqueness", testUIDFormat},
		{"UIDsStableAcrossSessions", testUIDsStable},
		{"UIDsNeverReused", testUIDsNeverReused},
		{"InUse", testInUse},
		{"ConcurrentOpen", testConcurrentOpen},
		{"CloseWithoutCommit", testCloseWithoutCommit},
		{"CommitDeletesExactly", testCommitDeletesExactly},
		{"CommitNothing", testCommitNothing},
		{"CommitAlreadyRemoved", testCommitAlreadyRemoved},
		{"OpenRemovedMessage", testOpenRemovedMessage},
		{"FirstRetrieved", testFirstRetrieved},
		{"OpenOutOfRange", testOpenOutOfRange},
		{"DeliveredDuringSession", testDeliveredDuringSession},
		{"ConcurrentDeliver", testConcurrentDeliver},
		{"DeliverDuringSessions", testDeliverDuringSessions},
		{"DeliveredUIDIsKept", testDeliveredUIDIsKept},
		{"CommitAfterClose", testCommitAfterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, dl := newStore(t)
			tc.run(t, &env{t: t, st: st, dl: dl, acct: newAccount(t, "alice")})
		})
	}
}

// env is one subtest's store and account.
type env struct {
	t    *testing.T
	st   store.Store
	dl   store.Deliverer
	acct store.Account
}

// newAccount returns an account whose name no other test uses, with a local
// part and a domain so that location templates using either work.
func newAccount(t *testing.T, prefix string) store.Account {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random account suffix: %v", err)
	}
	return store.Account{Name: prefix + "-" + hex.EncodeToString(b[:]) + "@example.org"}
}

// remover returns the harness's ExternalRemover, skipping the test if there
// is none.
func (e *env) remover() ExternalRemover {
	e.t.Helper()
	if r, ok := e.st.(ExternalRemover); ok {
		return r
	}
	if r, ok := e.dl.(ExternalRemover); ok {
		return r
	}
	e.t.Skip("store harness does not implement storetest.ExternalRemover")
	return nil
}

// deliver delivers content to the env's account and checks the returned
// MessageInfo.
func (e *env) deliver(content string) store.MessageInfo {
	e.t.Helper()
	return deliverTo(e.t, e.dl, e.acct, content)
}

func deliverTo(t *testing.T, dl store.Deliverer, acct store.Account, content string) store.MessageInfo {
	t.Helper()
	before := time.Now()
	info, err := dl.Deliver(t.Context(), acct, strings.NewReader(content))
	if err != nil {
		t.Fatalf("Deliver(%q): %v", acct.Name, err)
	}
	if want := normalizedSize(t, content); info.Size != want {
		t.Errorf("Deliver returned Size %d, want %d", info.Size, want)
	}
	checkRecent(t, "Deliver's Received", info.Received, before)
	if info.UID != "" {
		checkUID(t, info.UID)
	}
	return info
}

// session wraps an open maildrop so that a failing test still closes it.
type session struct {
	t      *testing.T
	md     store.Maildrop
	closed bool
}

// open opens the env's account, failing the test on error.
func (e *env) open() *session {
	e.t.Helper()
	return openSession(e.t, e.st, e.acct)
}

func openSession(t *testing.T, st store.Store, acct store.Account) *session {
	t.Helper()
	md, err := st.Open(t.Context(), acct)
	if err != nil {
		t.Fatalf("Open(%q): %v", acct.Name, err)
	}
	s := &session{t: t, md: md}
	t.Cleanup(func() {
		if !s.closed {
			s.md.Close()
		}
	})
	return s
}

func (s *session) close() {
	s.t.Helper()
	s.closed = true
	if err := s.md.Close(); err != nil {
		s.t.Fatalf("Close: %v", err)
	}
}

func (s *session) commit(deleted, retrieved []int) {
	s.t.Helper()
	if err := s.md.Commit(s.t.Context(), deleted, retrieved); err != nil {
		s.t.Fatalf("Commit(%v, %v): %v", deleted, retrieved, err)
	}
}

// messages returns a copy of the snapshot, checking every UID's form.
func (s *session) messages() []store.MessageInfo {
	s.t.Helper()
	msgs := append([]store.MessageInfo(nil), s.md.Messages()...)
	for _, m := range msgs {
		checkUID(s.t, m.UID)
	}
	return msgs
}

// uids returns the snapshot's unique ids in order.
func (s *session) uids() []string {
	s.t.Helper()
	var uids []string
	for _, m := range s.messages() {
		uids = append(uids, m.UID)
	}
	return uids
}

// content reads message i whole.
func (s *session) content(i int) string {
	s.t.Helper()
	r, err := s.md.Open(s.t.Context(), i)
	if err != nil {
		s.t.Fatalf("Open message %d: %v", i, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		s.t.Fatalf("read message %d: %v", i, err)
	}
	return string(b)
}

// contents reads every message of the snapshot.
func (s *session) contents() []string {
	s.t.Helper()
	var all []string
	for i := range s.md.Messages() {
		all = append(all, s.content(i))
	}
	return all
}
