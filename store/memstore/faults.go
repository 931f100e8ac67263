package memstore

import (
	"context"

	"github.com/postoffice-mail/postoffice/store"
)

// Faults are store-wide failures to inject. Each non-nil error is returned
// as is (not wrapped), so tests can compare it with ==; the zero value
// injects nothing.
type Faults struct {
	// Open makes Store.Open fail without locking anything.
	Open error
	// Commit makes Maildrop.Commit fail without changing anything, like a
	// store that lost its disk or database at QUIT.
	Commit error
	// Deliver makes Deliver fail without storing anything.
	Deliver error
	// Close makes Maildrop.Close return it; the lock is released anyway.
	Close error
	// OnOpen, if set, is called at the start of every Store.Open, without
	// the store's mutex held; a non-nil result fails the Open. It lets a
	// test make a login slow (block until ctx is done or a channel is
	// closed), count logins, or fail only some accounts.
	OnOpen func(ctx context.Context, acct store.Account) error
}

// SetFaults replaces the store-wide faults; SetFaults(Faults{}) clears
// them. It affects calls made after it returns, including calls on
// sessions already open.
func (s *Store) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// MessageFault is a failure of one message's content.
type MessageFault struct {
	// Open makes Maildrop.Open of the message fail with it.
	Open error
	// Read, if set, makes the reader that Maildrop.Open returns fail with
	// it after ReadAfter bytes of the content: the case where a body read
	// fails after the POP3 server has already answered +OK.
	Read error
	// ReadAfter is how many bytes the reader delivers before Read.
	ReadAfter int64
}

// messageKey names one message of one account.
type messageKey struct{ account, uid string }

// SetMessageFault sets the fault of the message with the given unique id
// in the account's maildrop; a zero MessageFault clears it. The message
// need not exist yet (uids from Deliver are "1", "2", ... per account).
func (s *Store) SetMessageFault(account, uid string, f MessageFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := messageKey{account, uid}
	if f == (MessageFault{}) {
		delete(s.msgFaults, key)
		return
	}
	if s.msgFaults == nil {
		s.msgFaults = make(map[messageKey]MessageFault)
	}
	s.msgFaults[key] = f
}
