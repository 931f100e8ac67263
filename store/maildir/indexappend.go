package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Deliver adds a message to the index by appending one record to the end
// of the file, under the index lock, instead of rewriting the whole index:
// the cost of a delivery does not grow with the maildrop, and a reader
// that reads the file meanwhile sees the old end or the new one. A record
// appended this way has the next uid, so records stay in ascending uid
// order and the "nextuid" header line may lag behind the last record; the
// reader takes the larger of the two (parseIndex does). Every rewrite
// (Open's reconciliation, Commit) writes the header afresh.
//
// A crash in the middle of an append can leave a last line without its
// LF. loadIndex ignores such a line, and the next append cuts it off
// before writing: it belongs to a delivery that never got as far as
// renaming its file into new/, so no message is lost with it.

// maxIndexHeader bounds the three header lines of an index (their numbers
// have at most 19 digits).
const maxIndexHeader = 256

// maxIndexTail is how much of the end of the index is read to find the
// last record: far more than one record (a base name is at most NAME_MAX
// octets).
const maxIndexTail = 4096

// appendRecords appends the records of messages being delivered, with
// consecutive new uids, in one write, syncs the index, and returns the
// uidvalidity and a function that removes the records again (for a
// delivery that fails after this step). The caller holds the index lock.
// A maildrop without an index gets one first, built from the files it
// already holds, so that they keep their order.
func (s *Store) appendRecords(ctx context.Context, root *os.Root, dir string, entries []*entry) (uidValidity uint64, undo func(), err error) {
	f, err := root.OpenFile(indexFile, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.createIndex(ctx, root, dir); err != nil {
			return 0, nil, err
		}
		f, err = root.OpenFile(indexFile, os.O_RDWR, 0)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("open index: %w", err)
	}
	defer f.Close()

	head, version, size, err := s.indexEnd(f, dir)
	if err != nil {
		return 0, nil, fmt.Errorf("index %s/%s: %w", dir, indexFile, err)
	}
	var lines []byte
	for i, e := range entries {
		e.uid = head.nextUID + uint64(i)
		lines = e.appendTo(lines, version)
	}
	if err := s.fault("append-index"); err != nil {
		return 0, nil, err
	}
	undo = func() {
		// Best effort: a record whose file never arrives is dropped by
		// the next Open anyway.
		if f, err := root.OpenFile(indexFile, os.O_RDWR, 0); err == nil {
			if f.Truncate(size) == nil {
				f.Sync()
			}
			f.Close()
		}
	}
	if _, err := f.WriteAt(lines, size); err != nil {
		undo()
		return 0, nil, fmt.Errorf("append to index: %w", err)
	}
	if err := s.fault("sync-index"); err != nil {
		undo()
		return 0, nil, err
	}
	if err := f.Sync(); err != nil {
		undo()
		return 0, nil, fmt.Errorf("sync index: %w", err)
	}
	return head.uidValidity, undo, nil
}

// dropRecords removes the records of some messages of a batch whose
// delivery failed after the append, by rewriting the index. The caller
// holds the index lock. It is the rare path; on failure the records stay,
// and the next Open drops them (their files never arrived).
func (s *Store) dropRecords(root *os.Root, bases []string) {
	ix, err := loadIndex(root)
	if err != nil || ix == nil {
		return
	}
	for _, base := range bases {
		delete(ix.entries, base)
	}
	writeIndex(root, ix)
}

// indexEnd reads the header and the last record of an open index file and
// returns the header, with nextuid raised past the last record, the file's
// format version (records are appended in it) and the size of the file's
// complete lines. A torn last line (a crashed append) is cut off.
func (s *Store) indexEnd(f *os.File, dir string) (head *index, version int, size int64, err error) {
	info, err := f.Stat()
	if err != nil {
		return nil, 0, 0, err
	}
	size = info.Size()
	buf := make([]byte, min(size, maxIndexHeader))
	if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, 0, 0, err
	}
	head, version, err = parseHeader(string(buf))
	if err != nil {
		return nil, 0, 0, err
	}

	tailStart := max(0, size-maxIndexTail)
	tail := make([]byte, size-tailStart)
	if _, err := f.ReadAt(tail, tailStart); err != nil && err != io.EOF {
		return nil, 0, 0, err
	}
	end := strings.LastIndexByte(string(tail), '\n')
	if end < 0 {
		return nil, 0, 0, errors.New("no complete line at the end")
	}
	if end != len(tail)-1 {
		torn := int64(len(tail) - end - 1)
		s.logger.Warn("cutting off a torn last index record (an interrupted delivery)",
			"maildir", dir, "octets", torn)
		if err := f.Truncate(size - torn); err != nil {
			return nil, 0, 0, fmt.Errorf("cut torn record: %w", err)
		}
		size -= torn
		tail = tail[:end+1]
	}
	last := string(tail[:end])
	last = last[strings.LastIndexByte(last, '\n')+1:]
	if last != "" && isDigit(last[0]) {
		e, err := parseEntry(last, version >= 2)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("last record: %w", err)
		}
		if e.uid >= head.nextUID {
			head.nextUID = e.uid + 1
		}
	}
	if head.nextUID > maxNumber {
		return nil, 0, 0, errors.New("uids exhausted")
	}
	return head, version, size, nil
}

// parseHeader reads the three header lines at the start of data, and the
// format version.
func parseHeader(data string) (*index, int, error) {
	line, data, _ := strings.Cut(data, "\n")
	var version int
	switch line {
	case indexMagic + " 1":
		version = 1
	case indexMagic + " 2":
		version = 2
	default:
		return nil, 0, errors.New("not a postoffice index file of a known version")
	}
	ix := &index{}
	var err error
	if ix.uidValidity, data, err = headerField(data, "uidvalidity"); err != nil {
		return nil, 0, err
	}
	if ix.nextUID, _, err = headerField(data, "nextuid"); err != nil {
		return nil, 0, err
	}
	if ix.nextUID == 0 || ix.nextUID > maxNumber {
		return nil, 0, fmt.Errorf("bad nextuid %d", ix.nextUID)
	}
	return ix, version, nil
}

// appendTo appends the record's line, in the index format of the given
// version. A record with an explicit unique id has no version 1 form:
// callers rewrite a version 1 file before adding one.
func (e *entry) appendTo(b []byte, version int) []byte {
	b = strconv.AppendUint(b, e.uid, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.vsize, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.received, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.firstRetrieved, 10)
	b = append(b, ' ')
	if version >= 2 {
		if e.id == "" {
			b = append(b, '-')
		} else {
			b = append(b, '=')
			b = append(b, e.id...)
		}
		b = append(b, ' ')
	}
	b = append(b, e.base...)
	return append(b, '\n')
}

// createIndex builds the index of a maildrop that has none (first use, or
// a maildir other programs filled) from its files and writes it. The
// caller holds the index lock.
func (s *Store) createIndex(ctx context.Context, root *os.Root, dir string) error {
	files, err := s.scan(root, dir)
	if err != nil {
		return err
	}
	ix, adopted, err := s.startIndex(root, dir, files)
	if err != nil {
		return err
	}
	if _, err := s.reconcile(ctx, root, dir, ix, files, adopted); err != nil {
		return err
	}
	return writeIndex(root, ix)
}
