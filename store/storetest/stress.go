package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/postoffice-mail/postoffice/store"
)

// Deliveries racing sessions that list, read and delete: every message
// lands exactly once, keeps one unique id for its whole life, and no id is
// ever given to a second message (RFC 1939 §7, design invariants 4 and 5).
// This is where a store that assigns ids while scanning for new mail, or
// updates an index while files move, goes wrong.
func testDeliverDuringSessions(t *testing.T, e *env) {
	const (
		deliverers = 3
		perWorker  = 15
	)
	var wg sync.WaitGroup
	errs := make(chan error, deliverers*perWorker)
	for w := range deliverers {
		wg.Go(func() {
			for i := range perWorker {
				msg := fmt.Sprintf("Subject: w%d-%d\n\nbody\n", w, i)
				if _, err := e.dl.Deliver(t.Context(), e.acct, strings.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	uidOf := map[string]string{}     // content -> uid
	contentOf := map[string]string{} // uid -> content
	deleted := map[string]bool{}     // contents this test deleted
	see := func(s *session) {
		t.Helper()
		for i, m := range s.messages() {
			c := s.content(i)
			if deleted[c] {
				t.Errorf("deleted message %q is back with UID %q", c, m.UID)
			}
			if u, ok := uidOf[c]; ok && u != m.UID {
				t.Errorf("message %q changed UID from %q to %q", c, u, m.UID)
			}
			if old, ok := contentOf[m.UID]; ok && old != c {
				t.Errorf("UID %q reused: was %q, now %q", m.UID, old, c)
			}
			uidOf[c], contentOf[m.UID] = m.UID, c
		}
	}

	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		md, err := e.st.Open(t.Context(), e.acct)
		if errors.Is(err, store.ErrInUse) {
			continue
		}
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		s := &session{t: t, md: md}
		see(s)
		// Delete the oldest message, every other session.
		var del []int
		if n := len(s.md.Messages()); n > 0 && len(uidOf)%2 == 0 {
			del = []int{0}
			deleted[s.content(0)] = true
		}
		s.commit(del, []int{})
		s.close()
	}
	close(errs)
	for err := range errs {
		t.Fatalf("Deliver: %v", err)
	}

	s := e.open()
	see(s)
	s.close()
	if got, want := len(uidOf), deliverers*perWorker; got != want {
		t.Errorf("saw %d distinct messages, want %d", got, want)
	}
	if got, want := len(s.md.Messages())+len(deleted), deliverers*perWorker; got != want {
		t.Errorf("%d messages left + %d deleted, want %d in all", len(s.md.Messages()), len(deleted), want)
	}
}
