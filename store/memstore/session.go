package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// session is one open maildrop. Its snapshot holds pointers to the stored
// messages, so it still knows a message that another program removed and
// can answer store.ErrNoSuchMessage for it.
type session struct {
	store    *Store
	name     string
	maildrop *maildrop
	messages []*message
	infos    []store.MessageInfo
	closed   bool // guarded by store.mu
}

// Messages implements store.Maildrop.
func (s *session) Messages() []store.MessageInfo { return s.infos }

// Open implements store.Maildrop.
func (s *session) Open(ctx context.Context, index int) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("open message %d of %q: %w", index, s.name, errClosed)
	}
	if index < 0 || index >= len(s.messages) {
		return nil, fmt.Errorf("open message %d of %q: index out of range [0,%d)", index, s.name, len(s.messages))
	}
	m := s.messages[index]
	if !s.maildrop.contains(m) {
		return nil, fmt.Errorf("open message %d of %q: %w", index, s.name, store.ErrNoSuchMessage)
	}
	fault := s.store.msgFaults[messageKey{s.name, m.info.UID}]
	if fault.Open != nil {
		return nil, fault.Open
	}
	var r io.Reader = bytes.NewReader(m.content)
	if fault.Read != nil {
		r = io.MultiReader(io.LimitReader(r, fault.ReadAfter), errReader{fault.Read})
	}
	return io.NopCloser(r), nil
}

// Commit implements store.Maildrop. With a Commit fault it changes
// nothing and returns the fault.
func (s *session) Commit(ctx context.Context, deleted, retrieved []int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if s.closed {
		return fmt.Errorf("commit %q: %w", s.name, errClosed)
	}
	if s.store.faults.Commit != nil {
		return s.store.faults.Commit
	}
	for _, i := range append(append([]int(nil), deleted...), retrieved...) {
		if i < 0 || i >= len(s.messages) {
			return fmt.Errorf("commit %q: message index %d out of range [0,%d)", s.name, i, len(s.messages))
		}
	}
	now := time.Now()
	for _, i := range retrieved {
		if m := s.messages[i]; m.info.FirstRetrieved.IsZero() {
			m.info.FirstRetrieved = now
		}
	}
	for _, i := range deleted {
		// Already gone (RemoveBehind, or listed twice) counts as removed.
		s.maildrop.remove(s.messages[i])
	}
	return nil
}

// Close implements store.Maildrop. It always releases the lock, even when
// a Close fault makes it return an error; a second Close does nothing.
func (s *session) Close() error {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.maildrop.locked = false
	return s.store.faults.Close
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
