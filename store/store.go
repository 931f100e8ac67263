// Package store defines what a POP3 maildrop backend must do, and nothing
// else: open and lock one user's maildrop, list a snapshot of its messages,
// stream one message, and apply the session's changes at the end.
//
// The POP3 engine (package pop3server) keeps the deletion marks and enforces
// every state rule of RFC 1939; a store only stores. Implementations live in
// the sub-packages (maildir, memstore); storetest holds the conformance suite
// every implementation must pass.
package store

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"
)

// ErrInUse is returned by Store.Open when another session holds the
// maildrop. The POP3 server answers it with the RFC 2449 [IN-USE] code.
var ErrInUse = errors.New("maildrop in use by another session")

// ErrNoSuchMessage is returned by Maildrop.Open when a message of the
// snapshot has disappeared since (removed by another program).
var ErrNoSuchMessage = errors.New("message no longer exists")

// NoSpace reports whether err says the file system or the user's quota
// is full: a condition that passes once space is freed, which delivery
// answers with 452 4.3.1 and a session works around where it can.
func NoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Account names the owner of a maildrop, as the user database describes
// them. Stores use whichever fields locate the maildrop for them.
type Account struct {
	// Name is the validated login name (see auth.ValidUsername).
	Name string
	// Home is the user's home directory from the user database, if any.
	Home string
	// Mail overrides the store's location template for this user (the
	// passwd-file's userdb_mail / mail extra field), if set.
	Mail string
}

// MessageInfo describes one message of a maildrop snapshot.
type MessageInfo struct {
	// UID is the permanent unique id: 1 to 70 octets in 0x21..0x7E,
	// never changed and never reused within the maildrop (RFC 1939 §7).
	UID string
	// Size is the exact number of octets RETR sends for the message
	// before dot-stuffing, with every line ending as CRLF.
	Size int64
	// Received is when the message arrived in the maildrop.
	Received time.Time
	// FirstRetrieved is when a POP3 session first retrieved the message
	// and then ended with QUIT, or the zero time if never. It drives the
	// RFC 2449 EXPIRE policy.
	FirstRetrieved time.Time
}

// Store opens maildrops.
type Store interface {
	// Open opens and locks the account's maildrop for one POP3 session and
	// takes the snapshot of its messages. It returns ErrInUse when another
	// session holds the lock. A maildrop that does not exist yet is empty.
	Open(ctx context.Context, acct Account) (Maildrop, error)
}

// Maildrop is one locked maildrop, open for a single POP3 session. Its
// message numbers are 0-based indexes into the snapshot taken at Open;
// mail delivered meanwhile is not part of the snapshot.
type Maildrop interface {
	// Messages returns the snapshot, in a stable order (oldest first).
	// The caller must not modify the slice.
	Messages() []MessageInfo
	// Open returns the message's content as stored. Line endings may be
	// LF or CRLF; the POP3 writer makes them CRLF, and MessageInfo.Size
	// already counts them that way. It returns ErrNoSuchMessage if
	// another program removed the message.
	Open(ctx context.Context, index int) (io.ReadCloser, error)
	// Commit applies the end of a session that ended with QUIT (the
	// UPDATE state): it removes the deleted messages and records the first
	// retrieval time of the retrieved ones. A message that is already gone
	// counts as removed. An error means some deletions may not have been
	// applied; the maildrop stays consistent either way.
	Commit(ctx context.Context, deleted, retrieved []int) error
	// Close releases the lock. After a Commit it is still required; without
	// one it leaves the maildrop as it was (RFC 1939 §6: a session that ends
	// without QUIT removes nothing).
	Close() error
}

// Deliverer puts new messages into maildrops. Delivery must be durable
// before Deliver returns nil: the message is on stable storage, exactly
// once.
type Deliverer interface {
	Deliver(ctx context.Context, acct Account, msg io.Reader) (MessageInfo, error)
}

// Usage is how much a maildrop holds: what quotas are checked against.
type Usage struct {
	// Messages is the number of messages.
	Messages int64
	// Bytes is the sum of their sizes (MessageInfo.Size).
	Bytes int64
}

// UsageReporter is implemented by stores that can tell a maildrop's usage
// without reading message bodies, for quota checks at delivery. The figure
// may lag behind changes made by other programs until the next Open.
type UsageReporter interface {
	Usage(ctx context.Context, acct Account) (Usage, error)
}
