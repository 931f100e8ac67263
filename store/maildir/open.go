package maildir

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// Open implements store.Store: it locks the account's maildrop (creating
// the directories on first use), brings the index up to date with the
// files and takes the snapshot.
//
// Messages that appeared since the last session get the next unique ids,
// in order of arrival; their sizes are read from their names or, for
// messages other programs delivered without ",W=", computed once from the
// file. The index is written (durably) before Open returns whenever ids were
// handed out, so an id a client has seen is never given to another message.
func (s *Store) Open(ctx context.Context, acct store.Account) (store.Maildrop, error) {
	dir, err := s.maildropDir(acct)
	if err != nil {
		return nil, err
	}
	root, err := openMaildir(dir)
	if err != nil {
		return nil, fmt.Errorf("open maildrop of %q: %w", acct.Name, err)
	}
	l, err := s.acquire(ctx, root, dir)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("open maildrop of %q: %w", acct.Name, err)
	}
	md, err := s.load(ctx, root, dir)
	if err != nil {
		l.release(context.WithoutCancel(ctx))
		root.Close()
		return nil, fmt.Errorf("open maildrop of %q: %w", acct.Name, err)
	}
	md.lease = l
	s.cleanTmp(root, dir)
	return md, nil
}

// load reconciles the index with the files and builds the snapshot. The
// caller holds the lock.
func (s *Store) load(ctx context.Context, root *os.Root, dir string) (*maildrop, error) {
	ix, err := loadIndex(root)
	if err != nil {
		return nil, err
	}
	changed := false
	if ix == nil {
		// UIDVALIDITY: fixed now, for the life of the index.
		ix = newIndex(uint64(time.Now().Unix()))
	}
	files, err := s.scan(root, dir)
	if err != nil {
		return nil, err
	}
	if missing(ix, files) {
		// A file renamed by another program while we listed its
		// directory may be missing from the listing (POSIX leaves that
		// open). Dropping its record would give it a new id at the next
		// login and a duplicate download, so look once more first.
		again, err := s.scan(root, dir)
		if err != nil {
			return nil, err
		}
		for base, f := range again {
			files[base] = f
		}
	}
	for base := range ix.entries {
		if _, ok := files[base]; !ok {
			delete(ix.entries, base) // deleted by another program; its uid stays used
			changed = true
		}
	}

	var fresh []freshMessage
	for base, f := range files {
		if ix.entries[base] != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if m, ok := s.describe(root, dir, f); ok {
			fresh = append(fresh, m)
		} else {
			delete(files, base)
		}
	}
	// New messages are numbered in order of arrival: delivery time, then
	// the name, whose numbers (microseconds, delivery counter) order
	// deliveries of the same second.
	slices.SortFunc(fresh, func(a, b freshMessage) int {
		if c := cmp.Compare(a.received, b.received); c != 0 {
			return c
		}
		if naturalLess(a.file.base, b.file.base) {
			return -1
		}
		if naturalLess(b.file.base, a.file.base) {
			return 1
		}
		return strings.Compare(a.file.base, b.file.base)
	})
	for _, m := range fresh {
		ix.entries[m.file.base] = &entry{
			uid:      ix.nextUID,
			vsize:    m.vsize,
			received: m.received,
			base:     m.file.base,
		}
		ix.nextUID++
		changed = true
	}
	if changed {
		if err := writeIndex(root, ix); err != nil {
			return nil, err
		}
	}
	return s.snapshot(root, dir, ix, files), nil
}

// missing reports whether some indexed message has no file.
func missing(ix *index, files map[string]msgFile) bool {
	for base := range ix.entries {
		if _, ok := files[base]; !ok {
			return true
		}
	}
	return false
}

// snapshot builds the session's message list, in uid order, which is
// arrival order (store.Maildrop.Messages: oldest first).
func (s *Store) snapshot(root *os.Root, dir string, ix *index, files map[string]msgFile) *maildrop {
	entries := make([]*entry, 0, len(ix.entries))
	for _, e := range ix.entries {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *entry) int { return cmp.Compare(a.uid, b.uid) })
	md := &maildrop{
		store: s,
		root:  root,
		dir:   dir,
		index: ix,
		infos: make([]store.MessageInfo, len(entries)),
		files: make([]msgFile, len(entries)),
		gone:  make([]bool, len(entries)),
	}
	for i, e := range entries {
		md.infos[i] = store.MessageInfo{
			UID:      ix.uniqueID(e.uid),
			Size:     e.vsize,
			Received: time.Unix(e.received, 0),
		}
		if e.firstRetrieved != 0 {
			md.infos[i].FirstRetrieved = time.Unix(e.firstRetrieved, 0)
		}
		md.files[i] = files[e.base]
	}
	return md
}
