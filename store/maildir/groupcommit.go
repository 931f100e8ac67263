package maildir

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// Group commit. Steps 2 and 3 of a delivery (the index record and the
// rename into new/, each made durable) happen under the index lock, so
// concurrent deliveries to one maildrop would take turns paying for two
// fsyncs each. Instead, a delivery that finds another one committing
// queues its request; the committing one, when done with its own batch,
// takes everything queued meanwhile as the next batch: one append and one
// fsync of the index for all its records, the renames, one fsync of new/.
// Each delivery still returns only once its own message is durable. Across
// processes the index lock keeps batches apart as before.

// commitRequest is one delivery waiting for steps 2 and 3.
type commitRequest struct {
	tmp   string // its file in tmp/
	entry *entry // its record (uid set by the batch)

	info store.MessageInfo
	err  error
	done chan struct{}
}

// committer queues the requests of one maildir.
type committer struct {
	mu      sync.Mutex
	pending []*commitRequest
	running bool
	refs    int
}

var committers = struct {
	sync.Mutex
	dirs map[string]*committer
}{dirs: map[string]*committer{}}

// commitDelivery is steps 2 and 3 of Deliver for one message, possibly in
// a batch with concurrent deliveries to the same maildir. On failure the
// file is not in new/ and its record is gone (or, if removing it failed,
// dropped by the next Open); the caller removes the tmp/ file.
func (s *Store) commitDelivery(ctx context.Context, root *os.Root, dir, tmp, unique string, size, vsize int64, now time.Time) (store.MessageInfo, error) {
	req := &commitRequest{
		tmp:   tmp,
		entry: &entry{vsize: vsize, received: now.Unix(), base: formatName(unique, size, vsize)},
		done:  make(chan struct{}),
	}
	committers.Lock()
	c := committers.dirs[dir]
	if c == nil {
		c = &committer{}
		committers.dirs[dir] = c
	}
	c.refs++
	committers.Unlock()
	defer func() {
		committers.Lock()
		if c.refs--; c.refs == 0 {
			delete(committers.dirs, dir)
		}
		committers.Unlock()
	}()

	c.mu.Lock()
	c.pending = append(c.pending, req)
	if c.running {
		c.mu.Unlock()
		<-req.done
		return req.info, req.err
	}
	c.running = true
	for len(c.pending) > 0 {
		batch := c.pending
		c.pending = nil
		c.mu.Unlock()
		// The batch carries other deliveries: it must not stop because
		// this one's client went away.
		s.commitBatch(context.WithoutCancel(ctx), root, dir, batch)
		c.mu.Lock()
	}
	c.running = false
	c.mu.Unlock()
	<-req.done
	return req.info, req.err
}

// commitBatch does steps 2 and 3 for a batch and completes each request.
func (s *Store) commitBatch(ctx context.Context, root *os.Root, dir string, batch []*commitRequest) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	failAll := func(err error) {
		for _, r := range batch {
			r.err = err
		}
	}
	unlock, err := s.lockIndex(ctx, root, dir)
	if err != nil {
		failAll(err)
		return
	}
	defer unlock()
	entries := make([]*entry, len(batch))
	for i, r := range batch {
		entries[i] = r.entry
	}
	uidValidity, undo, err := s.appendRecords(ctx, root, dir, entries)
	if err != nil {
		failAll(err)
		return
	}
	var renamed []*commitRequest
	var failed []string
	for _, r := range batch {
		err := s.fault("rename")
		if err == nil {
			err = root.Rename(r.tmp, dirNew+"/"+r.entry.base)
		}
		if err != nil {
			r.err = err
			failed = append(failed, r.entry.base)
			continue
		}
		renamed = append(renamed, r)
	}
	if len(renamed) > 0 {
		err := s.fault("sync-new")
		if err == nil {
			err = syncDir(root, dirNew)
		}
		if err != nil {
			// Not durable, so not delivered: the senders will retry,
			// and a copy left here could make a message appear twice.
			for _, r := range renamed {
				root.Remove(dirNew + "/" + r.entry.base)
				r.err = err
				failed = append(failed, r.entry.base)
			}
			renamed = nil
		}
	}
	switch {
	case len(failed) == len(batch):
		undo()
	case len(failed) > 0:
		s.dropRecords(root, failed)
	}
	ix := index{uidValidity: uidValidity}
	for _, r := range renamed {
		r.info = store.MessageInfo{
			UID:      ix.uniqueID(r.entry.uid),
			Size:     r.entry.vsize,
			Received: time.Unix(r.entry.received, 0),
		}
	}
}
