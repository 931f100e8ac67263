package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// errClosed is returned by a maildrop's methods after Close.
var errClosed = errors.New("maildrop already closed")

// maildrop is one locked maildrop, open for a session. It implements
// store.Maildrop.
type maildrop struct {
	store *Store
	root  *os.Root
	dir   string
	lease *lease
	infos []store.MessageInfo // the snapshot; never changes

	// uids are the snapshot's uids (infos[i] has uids[i]), and
	// uidValidity and nextUID the index's, as read at Open: what the
	// session needs of the index, which it does not keep (see
	// snapshotIndex).
	uids                 []uint64
	uidValidity, nextUID uint64

	mu    sync.Mutex // guards everything below; methods may be called from several goroutines
	files []msgFile  // where each snapshot message's file was last seen
	// sharedFiles says files belongs to the snapshot cache too: it is
	// copied before its first change.
	sharedFiles bool
	gone        []bool // messages known to have been removed by another program; nil until one is
	// newDir and curDir are opened at the first message read from each.
	newDir, curDir *dirFile
	closed         bool
}

// snapshotIndex rebuilds the index as it was at Open from the snapshot.
func (md *maildrop) snapshotIndex() *index {
	ix := &index{uidValidity: md.uidValidity, nextUID: md.nextUID, entries: make(map[string]*entry, len(md.infos))}
	for i, info := range md.infos {
		e := &entry{uid: md.uids[i], vsize: info.Size, received: info.Received.Unix(), base: md.files[i].base}
		if info.UID != ix.uniqueID(e.uid) {
			e.id = info.UID
		}
		if !info.FirstRetrieved.IsZero() {
			e.firstRetrieved = info.FirstRetrieved.Unix()
		}
		ix.entries[e.base] = e
	}
	return ix
}

// isGone reports whether message i is known to have been removed.
func (md *maildrop) isGone(i int) bool { return md.gone != nil && md.gone[i] }

// markGone notes that message i has been removed by another program.
func (md *maildrop) markGone(i int) {
	if md.gone == nil {
		md.gone = make([]bool, len(md.infos))
	}
	md.gone[i] = true
}

// Messages implements store.Maildrop.
func (md *maildrop) Messages() []store.MessageInfo { return md.infos }

// Open implements store.Maildrop. If the file has been moved or renamed
// (new/ to cur/, flags changed) since the snapshot, it is found again by
// base name.
func (md *maildrop) Open(ctx context.Context, index int) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if err := md.usable(index); err != nil {
		return nil, fmt.Errorf("open message %d: %w", index, err)
	}
	f, err := md.openFile(index)
	if err != nil {
		return nil, fmt.Errorf("open message %d of %s: %w", index, md.dir, err)
	}
	return f, nil
}

// usable checks that the maildrop is open and index is in the snapshot.
func (md *maildrop) usable(index int) error {
	if md.closed {
		return errClosed
	}
	if index < 0 || index >= len(md.infos) {
		return fmt.Errorf("index out of range [0,%d)", len(md.infos))
	}
	return nil
}

// relocateAttempts bounds the rescans for one message that keeps moving.
const relocateAttempts = 3

// openFile opens a message's file, looking for it again if it is not
// where it was.
func (md *maildrop) openFile(i int) (io.ReadCloser, error) {
	if md.isGone(i) {
		return nil, store.ErrNoSuchMessage
	}
	f, err := md.openMessage(md.files[i])
	// Not where it was: moved (new/ to cur/, flags changed) or deleted.
	// A file that another program renames again between the rescan and
	// the open is looked for again, a few times; only a rescan that does
	// not find it says it is gone.
	for attempt := 0; errors.Is(err, fs.ErrNotExist); attempt++ {
		if attempt == relocateAttempts {
			return nil, fmt.Errorf("message keeps being renamed by another program: %w", err)
		}
		if err := md.relocate(); err != nil {
			return nil, err
		}
		if md.isGone(i) {
			return nil, store.ErrNoSuchMessage
		}
		f, err = md.openMessage(md.files[i])
	}
	if errors.Is(err, errNotMessage) {
		// Replaced since the scan by something that is no message.
		return nil, store.ErrNoSuchMessage
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// openMessage opens a message file where f says it is, through the
// session's open new/ or cur/ directory (see fastio.go).
func (md *maildrop) openMessage(f msgFile) (*messageFile, error) {
	dir := &md.newDir
	sub := dirNew
	if f.cur {
		dir, sub = &md.curDir, dirCur
	}
	if *dir == nil {
		d, err := openDir(md.root, sub)
		if err != nil {
			return nil, err
		}
		*dir = d
	}
	fd, st, err := openAt((*dir).fd, f.name)
	if err != nil {
		return nil, err
	}
	return &messageFile{fd: fd, left: st.Size}, nil
}

// relocate lists new/ and cur/ again and updates where each message of
// the snapshot is. One listing finds every moved file, so a session whose
// messages an IMAP client moved all at once rescans once, not per message.
func (md *maildrop) relocate() error {
	files, err := md.store.scanConfirmed(md.root, md.dir, func(yield func(string) bool) {
		for i, f := range md.files {
			if !md.isGone(i) && !yield(f.base) {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	// Something moved: the cached snapshot is out of date anyway, and
	// the directories are opened afresh (should one have been replaced).
	md.store.snapshots.drop(md.dir)
	md.newDir.close()
	md.curDir.close()
	md.newDir, md.curDir = nil, nil
	if md.sharedFiles {
		md.files = slices.Clone(md.files)
		md.sharedFiles = false
	}
	for i, f := range md.files {
		if now, ok := files[f.base]; ok {
			md.files[i] = now
		} else {
			md.markGone(i)
		}
	}
	return nil
}

// Commit implements store.Maildrop (the RFC 1939 §6 UPDATE state). It
// removes the deleted messages' files, makes the removals durable, then
// updates the index once: deleted messages leave it, retrieved ones get
// their first retrieval time if they had none.
//
// The order matters: if the index lost a message's record while the file
// survived a crash, the message would come back under a new unique id and
// be downloaded again. A message that is already gone counts as removed;
// its record is dropped by the next Open, which checks it is really gone.
func (md *maildrop) Commit(ctx context.Context, deleted, retrieved []int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.closed {
		return fmt.Errorf("commit %s: %w", md.dir, errClosed)
	}
	for _, list := range [][]int{deleted, retrieved} {
		for _, i := range list {
			if err := md.usable(i); err != nil {
				return fmt.Errorf("commit %s: message %d: %w", md.dir, i, err)
			}
		}
	}
	if len(deleted) == 0 && len(retrieved) == 0 {
		return nil // nothing to change
	}
	// Never change a maildrop whose lock another session has taken over.
	if err := md.lease.check(); err != nil {
		return fmt.Errorf("commit %s: %w", md.dir, err)
	}

	var (
		removed   []string
		failed    []error
		relocated bool
		done      = make(map[int]bool, len(deleted))
	)
	for _, i := range deleted {
		if done[i] {
			continue
		}
		done[i] = true
		ok, err := md.removeFile(i, &relocated)
		switch {
		case err != nil:
			failed = append(failed, err)
		case ok:
			removed = append(removed, md.files[i].base)
		}
	}
	var errs []error
	if len(failed) > 0 {
		errs = append(errs, fmt.Errorf("%d of %d deletions failed: %w", len(failed), len(done), errors.Join(failed...)))
	}
	durable := true
	if len(removed) > 0 {
		if err := md.syncMessageDirs(); err != nil {
			// Not durable: keep the records, the next Open drops those
			// whose files are really gone.
			errs = append(errs, fmt.Errorf("deletions may not be durable: %w", err))
			durable = false
		}
	}
	if !durable {
		removed = nil
	}
	var firstRetrieved []string
	for _, i := range retrieved {
		firstRetrieved = append(firstRetrieved, md.files[i].base)
	}
	if len(removed) > 0 || len(firstRetrieved) > 0 {
		// If this fails, the old index stays: removed messages are
		// dropped from it by the next Open, but first retrieval times of
		// this session are lost.
		if err := md.updateIndex(ctx, removed, firstRetrieved); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("commit %s: %w", md.dir, errors.Join(errs...))
	}
	return nil
}

// updateIndex applies a session's end to the index as it is now, not to
// the session's copy of it: deliveries during the session appended
// records the session never saw, and they must stay. Under the index
// lock, it reads the index again, drops the records of removed messages,
// sets the first retrieval time of retrieved ones that had none, and
// rewrites the file.
func (md *maildrop) updateIndex(ctx context.Context, removed, retrieved []string) error {
	unlock, err := md.store.lockIndex(context.WithoutCancel(ctx), md.root, md.dir)
	if err != nil {
		return err
	}
	defer unlock()
	ix, err := loadIndex(md.root)
	if err != nil {
		return err
	}
	if ix == nil {
		// Removed behind our back: the session's snapshot is the best
		// knowledge there is.
		ix = md.snapshotIndex()
	}
	changed := false
	now := time.Now().Unix()
	for _, base := range retrieved {
		if e := ix.entries[base]; e != nil && e.firstRetrieved == 0 {
			e.firstRetrieved = now
			changed = true
		}
	}
	for _, base := range removed {
		if ix.entries[base] != nil {
			delete(ix.entries, base)
			changed = true
		}
	}
	// nextuid never goes back, whichever copy saw the larger one.
	if md.uidValidity == ix.uidValidity && md.nextUID > ix.nextUID {
		ix.nextUID = md.nextUID
		changed = true
	}
	if !changed {
		return nil
	}
	if err := md.store.fault("write-index"); err != nil {
		return err
	}
	return writeIndex(md.root, ix)
}

// removeFile unlinks message i's file. It reports false, nil if the file
// is already gone (after looking for a moved file once per Commit).
func (md *maildrop) removeFile(i int, relocated *bool) (bool, error) {
	if md.isGone(i) {
		return false, nil
	}
	err := md.root.Remove(md.files[i].path())
	if errors.Is(err, fs.ErrNotExist) && !*relocated {
		*relocated = true
		if err := md.relocate(); err != nil {
			return false, err
		}
		if md.isGone(i) {
			return false, nil
		}
		err = md.root.Remove(md.files[i].path())
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("remove %s: %w", md.files[i].path(), err)
	}
	return true, nil
}

// syncMessageDirs makes unlinks in new/ and cur/ durable.
func (md *maildrop) syncMessageDirs() error {
	return errors.Join(syncDir(md.root, dirNew), syncDir(md.root, dirCur))
}

// Close implements store.Maildrop: it releases the lock. Without a Commit
// nothing was changed (RFC 1939 §6). A second Close does nothing.
func (md *maildrop) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.closed {
		return nil
	}
	md.closed = true
	err := md.lease.release()
	md.newDir.close()
	md.curDir.close()
	md.root.Close()
	if err != nil {
		return fmt.Errorf("close %s: %w", md.dir, err)
	}
	return nil
}
