// Package memstore is an in-memory store.Store and store.Deliverer for
// tests of the POP3 engine and the delivery code. It keeps everything in
// one mutex-guarded map, is safe for concurrent use, and passes the
// storetest conformance suite, so the engine's tests can trust its
// behaviour to be the one real stores have.
//
// Its extra methods let tests set up a maildrop directly (Add), look at it
// without a session (Messages, Locked), change it behind a session's back
// as another program would (RemoveBehind), and inject failures (SetFaults,
// SetMessageFault).
package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// Store is an in-memory store. The zero value is an empty store ready to
// use; New is there for symmetry with the other stores.
type Store struct {
	mu        sync.Mutex
	maildrops map[string]*maildrop // by store.Account.Name
	faults    Faults
	msgFaults map[messageKey]MessageFault
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Deliverer = (*Store)(nil)
)

// New returns an empty store.
func New() *Store { return &Store{} }

// maildrop is one account's messages, oldest first.
type maildrop struct {
	messages []*message
	nextUID  uint64 // only grows, so ids are never reused
	locked   bool
}

// message is one stored message. Its info is guarded by Store.mu; content
// never changes after the message is stored.
type message struct {
	info    store.MessageInfo
	content []byte
}

// Message is a message as tests see it: for Add, what to put into a
// maildrop; from Messages, what is there.
type Message struct {
	// UID is the unique id. Add assigns the next free one when empty.
	UID string
	// Content is the message as stored, with LF or CRLF line endings.
	Content []byte
	// Received is the arrival time. Add uses the current time when zero.
	Received time.Time
	// FirstRetrieved is when the message was first retrieved, or zero.
	FirstRetrieved time.Time
}

// maildropLocked returns the account's maildrop, creating it if asked.
// The caller holds s.mu.
func (s *Store) maildropLocked(name string, create bool) *maildrop {
	md := s.maildrops[name]
	if md == nil && create {
		if s.maildrops == nil {
			s.maildrops = make(map[string]*maildrop)
		}
		md = &maildrop{nextUID: 1}
		s.maildrops[name] = md
	}
	return md
}

// Open implements store.Store: it locks the account's maildrop and takes a
// snapshot of it.
func (s *Store) Open(ctx context.Context, acct store.Account) (store.Maildrop, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open maildrop %q: %w", acct.Name, err)
	}
	s.mu.Lock()
	hook := s.faults.OnOpen
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, acct); err != nil {
			return nil, err
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.Open != nil {
		return nil, s.faults.Open
	}
	md := s.maildropLocked(acct.Name, true)
	if md.locked {
		return nil, fmt.Errorf("open maildrop %q: %w", acct.Name, store.ErrInUse)
	}
	md.locked = true
	sess := &session{
		store:    s,
		name:     acct.Name,
		maildrop: md,
		messages: append([]*message(nil), md.messages...),
		infos:    make([]store.MessageInfo, len(md.messages)),
	}
	for i, m := range md.messages {
		sess.infos[i] = m.info
	}
	return sess, nil
}

// Deliver implements store.Deliverer. The UID is assigned at once and
// returned.
func (s *Store) Deliver(ctx context.Context, acct store.Account, msg io.Reader) (store.MessageInfo, error) {
	content, err := io.ReadAll(contextReader{ctx, msg})
	if err != nil {
		return store.MessageInfo{}, fmt.Errorf("deliver to %q: read message: %w", acct.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.Deliver != nil {
		return store.MessageInfo{}, s.faults.Deliver
	}
	return s.addLocked(acct.Name, Message{Content: content})
}

// Add puts a message into the account's maildrop directly, with the given
// metadata, bypassing faults and locks (a session already open does not see
// it). Use it to set up old messages (EXPIRE), imported unique ids, or
// large maildrops. It fails if UID is malformed or already in use.
func (s *Store) Add(account string, m Message) (store.MessageInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(account, Message{
		UID:            m.UID,
		Content:        bytes.Clone(m.Content),
		Received:       m.Received,
		FirstRetrieved: m.FirstRetrieved,
	})
}

// addLocked stores m, which the caller no longer modifies. The caller
// holds s.mu.
func (s *Store) addLocked(account string, m Message) (store.MessageInfo, error) {
	md := s.maildropLocked(account, true)
	if m.UID == "" {
		// Skip ids taken by Add with an explicit UID.
		for md.find(strconv.FormatUint(md.nextUID, 10)) >= 0 {
			md.nextUID++
		}
		m.UID = strconv.FormatUint(md.nextUID, 10)
		md.nextUID++
	} else {
		if !validUID(m.UID) {
			return store.MessageInfo{}, fmt.Errorf("add to %q: invalid unique id %q", account, m.UID)
		}
		if md.find(m.UID) >= 0 {
			return store.MessageInfo{}, fmt.Errorf("add to %q: unique id %q already in use", account, m.UID)
		}
	}
	if m.Received.IsZero() {
		m.Received = time.Now()
	}
	size, err := pop3.NormalizedSize(bytes.NewReader(m.Content))
	if err != nil {
		return store.MessageInfo{}, fmt.Errorf("add to %q: %w", account, err)
	}
	info := store.MessageInfo{UID: m.UID, Size: size, Received: m.Received, FirstRetrieved: m.FirstRetrieved}
	md.messages = append(md.messages, &message{info: info, content: m.Content})
	return info, nil
}

// find returns the index of the message with the given uid, or -1.
func (md *maildrop) find(uid string) int {
	for i, m := range md.messages {
		if m.info.UID == uid {
			return i
		}
	}
	return -1
}

// remove takes m out of the maildrop and reports whether it was there.
func (md *maildrop) remove(m *message) bool {
	for i, x := range md.messages {
		if x == m {
			md.messages = append(md.messages[:i], md.messages[i+1:]...)
			return true
		}
	}
	return false
}

// contains reports whether m is still in the maildrop.
func (md *maildrop) contains(m *message) bool {
	for _, x := range md.messages {
		if x == m {
			return true
		}
	}
	return false
}

// Messages returns a copy of the account's current messages, oldest first,
// whether or not a session holds the maildrop.
func (s *Store) Messages(account string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.maildropLocked(account, false)
	if md == nil {
		return nil
	}
	out := make([]Message, len(md.messages))
	for i, m := range md.messages {
		out[i] = Message{
			UID:            m.info.UID,
			Content:        bytes.Clone(m.content),
			Received:       m.info.Received,
			FirstRetrieved: m.info.FirstRetrieved,
		}
	}
	return out
}

// Locked reports whether a session holds the account's maildrop, so tests
// can check that the engine released it.
func (s *Store) Locked(account string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.maildropLocked(account, false)
	return md != nil && md.locked
}

// RemoveBehind removes the message with the given unique id as another
// program would: ignoring the lock, so that an open session's snapshot
// still lists it but Open returns store.ErrNoSuchMessage. It returns an
// error wrapping store.ErrNoSuchMessage if there is no such message. It
// implements storetest.ExternalRemover.
func (s *Store) RemoveBehind(ctx context.Context, acct store.Account, uid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.maildropLocked(acct.Name, false)
	if md == nil {
		return fmt.Errorf("remove %q from %q: %w", uid, acct.Name, store.ErrNoSuchMessage)
	}
	i := md.find(uid)
	if i < 0 {
		return fmt.Errorf("remove %q from %q: %w", uid, acct.Name, store.ErrNoSuchMessage)
	}
	md.remove(md.messages[i])
	return nil
}

// validUID reports whether uid has the RFC 1939 §7 form.
func validUID(uid string) bool {
	if len(uid) < 1 || len(uid) > 70 {
		return false
	}
	for i := 0; i < len(uid); i++ {
		if uid[i] < 0x21 || uid[i] > 0x7E {
			return false
		}
	}
	return true
}

// contextReader stops a read loop once ctx is done, so a delivery from a
// slow client can be abandoned.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// errClosed is returned by a session's methods after Close.
var errClosed = errors.New("maildrop already closed")
