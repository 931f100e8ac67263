package maildir

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
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
// Messages delivered by Deliver already have their unique ids. Messages
// other programs put there since the last session get the next ids, in
// order of arrival; their sizes are read from their names or, for messages
// delivered without ",W=", computed once from the file. The index is
// written (durably) before Open returns whenever ids were handed out, so an
// id a client has seen is never given to another message.
func (s *Store) Open(ctx context.Context, acct store.Account) (store.Maildrop, error) {
	dir, err := s.maildropDir(acct)
	if err != nil {
		return nil, err
	}
	if err := s.noteControlDir(acct, dir); err != nil {
		return nil, err
	}
	// The common case is a maildrop that exists: open it, and create
	// what is missing only when something is.
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		root, err = openMaildir(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open maildrop of %q: %w", acct.Name, err)
	}
	l, err := s.acquire(root, dir)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("open maildrop of %q: %w", acct.Name, err)
	}
	md, err := s.load(ctx, root, dir, l.taken)
	if err != nil {
		l.release()
		root.Close()
		return nil, fmt.Errorf("open maildrop of %q: %w", acct.Name, err)
	}
	md.lease = l
	if s.tmpClean.due(dir, time.Now()) {
		s.cleanTmp(root, dir)
	}
	return md, nil
}

// load reconciles the index with the files and builds the snapshot. The
// caller holds the session lock, taken at the file system's time taken.
//
// The most common case reads nothing: the index and the directories are
// as they were when the snapshot cache took this maildrop's snapshot (see
// snapcache.go). The next most common case takes no index lock: mail
// delivered by this store is indexed at delivery, so when every file has a
// record and every record a file, the index read and the directory
// listing are the snapshot. Only when they disagree (another program
// delivered or removed mail, or a delivery is between its index record and
// its rename) does load take the index lock, read both again, and bring
// the index up to date.
func (s *Store) load(ctx context.Context, root *os.Root, dir string, taken time.Time) (*maildrop, error) {
	// The stamps are read before the index and the directories, so that
	// any change made while those are read shows in the next stamps.
	key, keyed, err := s.stamps(root)
	if err != nil {
		return nil, fmt.Errorf("stat maildir: %w", err)
	}
	// The index's content, read at most once.
	var data []byte
	read := false
	readIndex := func() ([]byte, error) {
		if !read {
			var err error
			data, err = root.ReadFile(indexFile)
			if err != nil {
				return nil, err
			}
			read = true
		}
		return data, nil
	}
	if keyed && s.snapshots.limit > 0 {
		if c := s.snapshots.get(dir, key, taken, readIndex); c != nil {
			return &maildrop{store: s, root: root, dir: dir, uids: c.uids,
				uidValidity: c.uidValidity, nextUID: c.nextUID,
				infos: c.infos, files: c.files, sharedFiles: true}, nil
		}
	}
	var ix *index
	switch data, err := readIndex(); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read index: %w", err)
	default:
		if ix, err = indexFromData(root, data); err != nil {
			return nil, err
		}
	}
	if ix != nil {
		files, err := s.scan(root, dir)
		if err != nil {
			return nil, err
		}
		if upToDate(ix, files) {
			md := s.snapshot(root, dir, ix, files)
			// The key's stamps were read before the index and the
			// listing: whatever changed since shows in the next ones.
			if keyed && s.snapshots.limit > 0 && key.dirsSettled(taken) && int64(len(data)) == key.index.size {
				s.snapshots.put(dir, &cachedSnapshot{key: key, sum: indexSum(data), uids: md.uids,
					uidValidity: ix.uidValidity, nextUID: ix.nextUID, infos: md.infos, files: md.files})
				md.sharedFiles = true
			}
			return md, nil
		}
	}

	unlock, err := s.lockIndex(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ix, err = loadIndex(root); err != nil {
		return nil, err
	}
	// What this listing misses, reconcile drops from the index.
	files, err := s.scanConfirmed(root, dir, ix.bases())
	if err != nil {
		return nil, err
	}
	created := false
	var adopted map[string]takenOver
	if ix == nil {
		if ix, adopted, err = s.startIndex(root, dir, files); err != nil {
			return nil, err
		}
		created = true
	}
	firstNew := ix.nextUID
	changed, err := s.reconcile(ctx, root, dir, ix, files, adopted)
	if err != nil {
		return nil, err
	}
	if created || changed {
		err := s.fault("write-index")
		if err == nil {
			err = writeIndex(root, ix)
		}
		if err != nil {
			if created || !store.NoSpace(err) {
				return nil, err
			}
			// A full disk or quota: the session serves the messages
			// that have their unique ids, and the new ones wait for a
			// later session, rather than none being served at all.
			if n := withholdNew(ix, files, firstNew); n > 0 {
				s.logger.Warn("no space to index new messages: they are left for a later session",
					"maildir", dir, "messages", n, "err", err)
			}
		}
	}
	return s.snapshot(root, dir, ix, files), nil
}

// withholdNew takes out of ix and files the messages that reconcile gave
// uids from firstNew on, which the index on disk does not hold, and
// returns how many there were. Records of files that are gone stay out:
// their files are not there to serve.
func withholdNew(ix *index, files map[string]msgFile, firstNew uint64) int {
	n := 0
	for base, e := range ix.entries {
		if e.uid >= firstNew {
			delete(ix.entries, base)
			delete(files, base)
			n++
		}
	}
	ix.nextUID = firstNew
	return n
}

// upToDate reports whether the index has a record for every file and a
// file for every record.
func upToDate(ix *index, files map[string]msgFile) bool {
	if len(ix.entries) != len(files) {
		return false
	}
	for base := range files {
		if ix.entries[base] == nil {
			return false
		}
	}
	return true
}

// reconcile brings ix up to date with files, the result of a scan made
// under the index lock (scanConfirmed, so that a file missing from it is
// gone): records of files that are gone are dropped (their uids stay
// used), and files the index does not know get the next uids, in order
// of arrival. Files that turn out not to be messages are removed
// from files. It reports whether ix changed.
//
// adopted, for a new index only, holds the ids taken over from another
// server (see takeover.go): those files come first, in that server's
// order, and keep their ids.
func (s *Store) reconcile(ctx context.Context, root *os.Root, dir string, ix *index, files map[string]msgFile, adopted map[string]takenOver) (bool, error) {
	changed := false
	for base := range ix.entries {
		if _, ok := files[base]; !ok {
			delete(ix.entries, base) // deleted by another program; its uid stays used
			changed = true
		}
	}

	var unknown []msgFile
	for base, f := range files {
		if ix.entries[base] == nil {
			unknown = append(unknown, f)
		}
	}
	fresh, skipped, err := s.describeAll(ctx, root, dir, unknown)
	if err != nil {
		return false, err
	}
	for _, base := range skipped {
		delete(files, base)
	}
	// New messages are numbered in order of arrival: delivery time, then
	// the name, whose numbers (microseconds, delivery counter) order
	// deliveries of the same second (naturalLess, by precomputed keys).
	keys := make(map[string]string, len(fresh))
	for _, m := range fresh {
		keys[m.file.base] = naturalKey(m.file.base)
	}
	slices.SortFunc(fresh, func(a, b freshMessage) int {
		ta, aok := adopted[a.file.base]
		tb, bok := adopted[b.file.base]
		switch {
		case aok && bok:
			return cmp.Compare(ta.pos, tb.pos)
		case aok:
			return -1
		case bok:
			return 1
		}
		if c := cmp.Compare(a.received, b.received); c != 0 {
			return c
		}
		if c := strings.Compare(keys[a.file.base], keys[b.file.base]); c != 0 {
			return c
		}
		return strings.Compare(a.file.base, b.file.base)
	})
	explicit := 0
	for _, m := range fresh {
		e := &entry{
			uid:      ix.nextUID,
			vsize:    m.vsize,
			received: m.received,
			base:     m.file.base,
		}
		if t, ok := adopted[m.file.base]; ok && !ix.isGenerated(e.uid, t.id) {
			e.id = t.id
			explicit++
			// Adopted files come first: no later file gets a uid
			// whose generated id this one has.
			if uid, ok := generatedUID(e.id, ix.uidValidity); ok {
				ix.reserve(uid)
			}
		}
		ix.entries[m.file.base] = e
		ix.reserve(e.uid)
		changed = true
	}
	if explicit > 0 {
		// What parseIndex will check at every load: never write an
		// index that would not load.
		if err := ix.checkExplicitIDs(explicit); err != nil {
			return false, fmt.Errorf("taking over unique ids: %w", err)
		}
	}
	return changed, nil
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
		store:       s,
		root:        root,
		dir:         dir,
		uids:        make([]uint64, len(entries)),
		uidValidity: ix.uidValidity,
		nextUID:     ix.nextUID,
		infos:       make([]store.MessageInfo, len(entries)),
		files:       make([]msgFile, len(entries)),
	}
	// The unique ids (ix.idOf) are made in one string, not one
	// allocation each: at 100,000 messages that is most of the time
	// snapshot takes.
	buf := make([]byte, 0, 16*len(entries))
	ends := make([]int, len(entries))
	for i, e := range entries {
		buf = ix.appendID(buf, e)
		ends[i] = len(buf)
	}
	uids := string(buf)
	for i, e := range entries {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		md.infos[i] = store.MessageInfo{
			UID:      uids[start:ends[i]],
			Size:     e.vsize,
			Received: time.Unix(e.received, 0),
		}
		if e.firstRetrieved != 0 {
			md.infos[i].FirstRetrieved = time.Unix(e.firstRetrieved, 0)
		}
		md.files[i] = files[e.base]
		md.uids[i] = e.uid
	}
	return md
}
