package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// What "postoffice migrate" (package migrate) needs of a Maildir: reading
// a maildrop with the numbers its unique ids are made of, and writing one
// that keeps them. Both hold the session lock, so no POP3 session changes
// the maildrop meanwhile.

// Export is a maildrop open for copying out.
type Export struct {
	md *maildrop
	// UIDValidity and NextUID are the index's.
	UIDValidity, NextUID uint64
	// Messages are the maildrop's messages, oldest first.
	Messages []store.Migrated
}

// Export opens the account's maildrop under the session lock (bringing
// its index up to date as a login would) for a migration to read.
func (s *Store) Export(ctx context.Context, acct store.Account) (*Export, error) {
	sm, err := s.Open(ctx, acct)
	if err != nil {
		return nil, err
	}
	md := sm.(*maildrop)
	md.mu.Lock()
	defer md.mu.Unlock()
	ex := &Export{md: md, UIDValidity: md.uidValidity, NextUID: md.nextUID}
	for i, info := range md.infos {
		m := store.Migrated{Seq: md.uids[i], Info: info}
		if name := parseName(md.files[i].name); name.hasInfo {
			m.MaildirInfo = name.info
		} else if md.files[i].cur {
			m.MaildirInfo = "2,"
		}
		ex.Messages = append(ex.Messages, m)
	}
	return ex, nil
}

// Open returns message i's content.
func (ex *Export) Open(ctx context.Context, i int) (io.ReadCloser, error) { return ex.md.Open(ctx, i) }

// Close releases the session lock.
func (ex *Export) Close() error { return ex.md.Close() }

// Import is a maildrop open for copying into.
type Import struct {
	s        *Store
	md       *maildrop
	validity uint64
	have     map[uint64]bool   // seqs already in the index
	ids      map[string]uint64 // unique ids in the index, and their seqs
	lastSeq  uint64
	nextUID  uint64
}

// ErrNotEmpty is returned by BeginImport for a destination that holds
// messages from elsewhere: a migration does not merge maildrops.
var ErrNotEmpty = errors.New("destination maildrop holds other messages")

// BeginImport opens the account's maildrop under the session lock for a
// migration from a maildrop of the given UIDValidity and uid counter. The
// maildrop must be empty, or hold what an earlier, interrupted migration
// of the same source copied (same UIDValidity): then Has tells what is
// there already. Its index takes the source's UIDValidity.
func (s *Store) BeginImport(ctx context.Context, acct store.Account, uidValidity, nextUID uint64) (*Import, error) {
	if uidValidity == 0 || uidValidity > maxNumber || nextUID == 0 || nextUID > maxNumber {
		return nil, fmt.Errorf("import into %q: bad uid validity %d or next uid %d", acct.Name, uidValidity, nextUID)
	}
	sm, err := s.Open(ctx, acct)
	if err != nil {
		return nil, err
	}
	md := sm.(*maildrop)
	im := &Import{s: s, md: md, validity: uidValidity, have: make(map[uint64]bool),
		ids: make(map[string]uint64), nextUID: nextUID}
	unlock, err := s.lockIndex(ctx, md.root, md.dir)
	if err != nil {
		md.Close()
		return nil, err
	}
	defer unlock()
	ix, err := loadIndex(md.root)
	if err == nil && ix == nil {
		ix = newIndex(uidValidity)
	}
	if err != nil {
		md.Close()
		return nil, err
	}
	if len(ix.entries) > 0 && ix.uidValidity != uidValidity {
		md.Close()
		return nil, fmt.Errorf("import into %q: %w (%d messages of uid validity %d, not %d)", acct.Name, ErrNotEmpty, len(ix.entries), ix.uidValidity, uidValidity)
	}
	if ix.uidValidity != uidValidity {
		// An empty maildrop takes the source's validity: its old ids
		// (none left) were of another validity, so none can come back.
		ix.uidValidity = uidValidity
	}
	for _, e := range ix.entries {
		im.have[e.uid] = true
		im.ids[ix.idOf(e)] = e.uid
		im.lastSeq = max(im.lastSeq, e.uid)
	}
	if err := writeIndex(md.root, ix); err != nil {
		md.Close()
		return nil, err
	}
	return im, nil
}

// Has reports whether the message numbered seq is there already.
func (im *Import) Has(seq uint64) bool { return im.have[seq] }

// Check reports whether the message can be imported with its unique id:
// any RFC 1939 §7 id can, unless another message of the maildrop has it
// already. An id of the form this index generates for the message's
// number and the UIDValidity is kept as generated; any other is kept as
// an explicit id, frozen in the index.
func (im *Import) Check(m store.Migrated) error {
	if !store.ValidUniqueID(m.Info.UID) {
		return fmt.Errorf("unique id %q is not a valid POP3 unique id (RFC 1939 §7: 1 to 70 characters in 0x21..0x7E)", m.Info.UID)
	}
	if seq, ok := im.ids[m.Info.UID]; ok && seq != m.Seq {
		return fmt.Errorf("unique id %q of message number %d is taken by message number %d", m.Info.UID, m.Seq, seq)
	}
	return nil
}

// imports numbers this process's imported files.
var imports atomic.Uint64

// Add writes one message with its number, arrival and first retrieval
// time and Maildir flags, durably, in ascending order of seq: the file
// goes to tmp/ and is synced, its index record is appended and synced,
// then the file is renamed into cur/ or new/ (as Deliver does, so a crash
// never leaves a message without its record).
func (im *Import) Add(ctx context.Context, m store.Migrated, body io.Reader) error {
	if m.Seq <= im.lastSeq || m.Seq > maxNumber {
		return fmt.Errorf("import: message number %d is not after %d", m.Seq, im.lastSeq)
	}
	if err := im.Check(m); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	s, md := im.s, im.md
	received := m.Info.Received
	if received.IsZero() {
		received = time.Now()
	}
	unique := strconv.FormatInt(received.Unix(), 10) + ".M" + strconv.Itoa(received.Nanosecond()/1000) +
		"P" + strconv.Itoa(os.Getpid()) + "I" + strconv.FormatUint(imports.Add(1), 10) + "." + sanitizeHost(s.hostname)
	tmp := dirTmp + "/" + unique
	size, vsize, err := s.writeMessage(ctx, md.root, tmp, body)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	name := formatName(unique, size, vsize)
	dest := dirNew + "/" + name
	if m.MaildirInfo != "" {
		dest = dirCur + "/" + name + ":" + m.MaildirInfo
	}
	e := &entry{uid: m.Seq, vsize: vsize, received: received.Unix(), base: name}
	if ix := (index{uidValidity: im.validity}); !ix.isGenerated(m.Seq, m.Info.UID) {
		e.id = m.Info.UID
	}
	if !m.Info.FirstRetrieved.IsZero() {
		e.firstRetrieved = m.Info.FirstRetrieved.Unix()
	}
	if err := im.appendRecord(ctx, e); err != nil {
		md.root.Remove(tmp)
		return err
	}
	if err := md.root.Rename(tmp, dest); err != nil {
		md.root.Remove(tmp)
		return fmt.Errorf("import: %w", err)
	}
	if err := syncDir(md.root, dest[:3]); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	im.have[m.Seq] = true
	im.ids[m.Info.UID] = m.Seq
	im.lastSeq = m.Seq
	return nil
}

// appendRecord appends one record with its own uid under the index lock.
// A record whose explicit id has the generated form of a uid not below
// nextuid rewrites the index instead, with nextuid raised past that uid:
// a delivery reads nothing but the header and the last record, and must
// not hand the uid out.
func (im *Import) appendRecord(ctx context.Context, e *entry) error {
	s, md := im.s, im.md
	unlock, err := s.lockIndex(ctx, md.root, md.dir)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := md.root.OpenFile(indexFile, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	defer f.Close()
	head, version, size, err := s.indexEnd(f, md.dir)
	if err != nil {
		return err
	}
	if head.uidValidity != im.validity {
		return fmt.Errorf("import: the index's uid validity changed to %d", head.uidValidity)
	}
	if uid, ok := generatedUID(e.id, im.validity); (ok && uid >= head.nextUID) || (e.id != "" && version < 2) {
		ix, err := loadIndex(md.root)
		if err != nil {
			return err
		}
		if ix.entries[e.base] != nil {
			return fmt.Errorf("import: base name %q is in the index already", e.base)
		}
		ix.entries[e.base] = e
		ix.reserve(e.uid)
		ix.reserve(uid)
		return writeIndex(md.root, ix)
	}
	if _, err := f.WriteAt(e.appendTo(nil, version), size); err != nil {
		f.Truncate(size)
		return fmt.Errorf("append to index: %w", err)
	}
	return f.Sync()
}

// Close raises the index's uid counter to the source's, so that no id the
// source handed out is handed out again here, and releases the lock.
func (im *Import) Close() error {
	md := im.md
	err := func() error {
		unlock, err := im.s.lockIndex(context.Background(), md.root, md.dir)
		if err != nil {
			return err
		}
		defer unlock()
		ix, err := loadIndex(md.root)
		if err != nil || ix == nil {
			return err
		}
		if ix.nextUID >= im.nextUID {
			return nil
		}
		ix.nextUID = im.nextUID
		return writeIndex(md.root, ix)
	}()
	return errors.Join(err, md.Close())
}
