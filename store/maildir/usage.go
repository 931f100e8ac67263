package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/postoffice-mail/postoffice/store"
)

var _ store.UsageReporter = (*Store)(nil)

// Usage implements store.UsageReporter from the index: the number of
// records and the sum of their CRLF sizes. No message body is read.
// Messages other programs delivered since the last Open are not counted
// yet, and messages they removed still are, until the next Open.
//
// The store remembers, per maildrop, the totals and how far into the index
// file it has read them, so that the next call reads only the records
// appended since (by Deliver); a rewritten index (a new file) is read
// again whole. A quota check per delivery therefore costs a stat and a
// small read, not a pass over a large index.
func (s *Store) Usage(ctx context.Context, acct store.Account) (store.Usage, error) {
	dir, err := s.maildropDir(acct)
	if err != nil {
		return store.Usage{}, err
	}
	f, err := os.Open(dir + "/" + indexFile)
	if errors.Is(err, fs.ErrNotExist) {
		return store.Usage{}, nil // no index yet: nothing delivered
	}
	if err != nil {
		return store.Usage{}, fmt.Errorf("usage of %q: %w", acct.Name, err)
	}
	defer f.Close()
	u, err := s.usage.read(dir, f)
	if err != nil {
		return store.Usage{}, fmt.Errorf("usage of %q: index %s/%s: %w", acct.Name, dir, indexFile, err)
	}
	return u, nil
}

// maxUsageEntries bounds the usage cache; past it the cache starts over.
const maxUsageEntries = 10000

// usageCache holds the running totals of recently checked maildrops.
type usageCache struct {
	mu   sync.Mutex
	dirs map[string]*usageEntry
}

// usageEntry is what was learned from one index file.
type usageEntry struct {
	mu       sync.Mutex
	dev, ino uint64
	offset   int64 // the complete lines up to here are counted
	usage    store.Usage
}

func (c *usageCache) entry(dir string) *usageEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirs == nil || len(c.dirs) >= maxUsageEntries {
		c.dirs = make(map[string]*usageEntry)
	}
	e := c.dirs[dir]
	if e == nil {
		e = &usageEntry{}
		c.dirs[dir] = e
	}
	return e
}

// read brings the totals of dir up to date with the open index file f.
func (c *usageCache) read(dir string, f *os.File) (store.Usage, error) {
	info, err := f.Stat()
	if err != nil {
		return store.Usage{}, err
	}
	var dev, ino uint64
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(st.Dev), uint64(st.Ino)
	}
	e := c.entry(dir)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dev != dev || e.ino != ino || ino == 0 || info.Size() < e.offset {
		e.dev, e.ino, e.offset, e.usage = dev, ino, 0, store.Usage{}
	}
	if info.Size() == e.offset {
		return e.usage, nil
	}
	data := make([]byte, info.Size()-e.offset)
	n, err := f.ReadAt(data, e.offset)
	if err != nil && err != io.EOF {
		return store.Usage{}, err
	}
	data = data[:n]
	for {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			break // a torn or growing last line: counted once complete
		}
		line := data[:end]
		data = data[end+1:]
		e.offset += int64(end + 1)
		// Records start with their uid; the header lines with a word.
		if len(line) == 0 || !isDigit(line[0]) {
			continue
		}
		fields := bytes.SplitN(line, []byte{' '}, 3)
		if len(fields) < 3 {
			return store.Usage{}, errors.New("malformed record")
		}
		size, err := strconv.ParseInt(string(fields[1]), 10, 64)
		if err != nil || size < 0 {
			return store.Usage{}, errors.New("malformed record size")
		}
		e.usage.Messages++
		e.usage.Bytes += size
	}
	return e.usage, nil
}
