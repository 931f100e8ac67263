package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/postoffice-mail/postoffice/store"
)

// The index is a small text file in the maildir root that remembers what
// would be expensive or impossible to learn again from the files: each
// message's permanent unique id, its CRLF size, when it arrived and when it
// was first retrieved. It is keyed by base name (see fileName), which
// survives other programs moving a file from new/ to cur/ or changing its
// flags.
//
// Format, version 2 (one record per line, LF-terminated, fields separated
// by one space, numbers in decimal; see indexappend.go for how Deliver
// appends records):
//
//	postoffice-maildir-index 2
//	uidvalidity <n>
//	nextuid <n>
//	<uid> <vsize> <received> <first-retrieved> <unique id> <base name>
//	...
//
// uidvalidity is fixed when the index is created (the Unix time then);
// nextuid only ever grows, so a uid is never handed out twice, even after
// its message and record are gone. received and first-retrieved are Unix
// seconds, first-retrieved 0 meaning never. The unique id field is "-"
// for the id this index makes from the uid and uidvalidity (uniqueID),
// or "=" and an explicit id: one kept from another server (a Dovecot
// uidlist, a Courier sizelist, an imported mbox), any RFC 1939 §7 id of 1
// to 70 octets in 0x21..0x7E, frozen with its record for good. The base
// name comes last so it may hold any byte except LF, CR, NUL, '/' and
// ':'. Records are in ascending uid order, and the whole file is replaced
// atomically (see writeIndex).
//
// Unique ids are unique in the maildrop: no two explicit ids are equal,
// and an explicit id that has the generated form of some uid (a Dovecot
// id kept from a maildrop of the same uidvalidity) keeps nextuid above
// that uid, so that no later message can be given the same id.
//
// Version 1 is version 2 without the unique id field (every id
// generated). It is still read, and appended to in its own format; the
// next rewrite of the file (a login that finds new files, a QUIT that
// deletes) writes version 2.
const (
	indexFile    = "postoffice-index"
	indexMagic   = "postoffice-maildir-index"
	indexVersion = 2
)

// maxNumber bounds every number in the index, far above any real uid,
// size or time, so that nextuid cannot overflow and sizes fit an int64.
const maxNumber = 1 << 62

// index is the parsed index file.
type index struct {
	uidValidity uint64
	nextUID     uint64
	entries     map[string]*entry // by base name
}

// entry is one message's record.
type entry struct {
	uid            uint64
	vsize          int64
	received       int64 // Unix seconds
	firstRetrieved int64 // Unix seconds, 0 = never
	// id is the message's explicit unique id, or "" for the one made
	// from uid and the uidvalidity (index.uniqueID). It is never the
	// generated id of its own uid (parseIndex and setID normalise that).
	id   string
	base string
}

// newIndex returns the index of a maildrop that had none.
func newIndex(uidValidity uint64) *index {
	return &index{uidValidity: uidValidity, nextUID: 1, entries: make(map[string]*entry)}
}

// bases yields the base names of the indexed messages; none for a nil
// index (a maildrop without one yet).
func (ix *index) bases() iter.Seq[string] {
	return func(yield func(string) bool) {
		if ix == nil {
			return
		}
		for base := range ix.entries {
			if !yield(base) {
				return
			}
		}
	}
}

// uniqueID is the generated POP3 unique id of uid: the layout of
// Dovecot's default pop3_uidl_format "%08Xu%08Xv", but in upper-case hex
// (Dovecot writes lower case; ids taken over from Dovecot are explicit, so
// the two never meet, and changing this would change every existing id).
// It writes the hex digits by hand because it runs once per message at
// every login.
func (ix *index) uniqueID(uid uint64) string {
	var buf [32]byte
	b := appendHex8(buf[:0], uid)
	b = appendHex8(b, ix.uidValidity)
	return string(b)
}

// isGenerated reports whether id is the generated id of uid, without
// making that id (parseIndex asks for every explicit record).
func (ix *index) isGenerated(uid uint64, id string) bool {
	var buf [32]byte
	return string(appendHex8(appendHex8(buf[:0], uid), ix.uidValidity)) == id
}

// idOf is e's unique id: its explicit one, or the generated one.
func (ix *index) idOf(e *entry) string {
	if e.id != "" {
		return e.id
	}
	return ix.uniqueID(e.uid)
}

// appendID appends e's unique id to b.
func (ix *index) appendID(b []byte, e *entry) []byte {
	if e.id != "" {
		return append(b, e.id...)
	}
	return appendHex8(appendHex8(b, e.uid), ix.uidValidity)
}

// generatedUID reports whether id has the form uniqueID gives uids in a
// maildrop of the given uidvalidity, and for which uid.
func generatedUID(id string, validity uint64) (uint64, bool) {
	var buf [16]byte
	suffix := appendHex8(buf[:0], validity)
	prefix, ok := strings.CutSuffix(id, string(suffix))
	if !ok || len(prefix) < 8 || len(prefix) > 16 {
		return 0, false
	}
	uid, err := strconv.ParseUint(prefix, 16, 64)
	if err != nil || uid == 0 || uid > maxNumber {
		return 0, false
	}
	// Only the one spelling uniqueID writes: upper case, no extra zeros.
	if string(appendHex8(buf[:0], uid)) != prefix {
		return 0, false
	}
	return uid, true
}

// appendHex8 appends n as upper-case hex, zero-padded to 8 digits (like
// "%08X").
func appendHex8(b []byte, n uint64) []byte {
	const digits = "0123456789ABCDEF"
	var tmp [16]byte
	i := len(tmp)
	for n > 0 || i > len(tmp)-8 {
		i--
		tmp[i] = digits[n&0xF]
		n >>= 4
	}
	return append(b, tmp[i:]...)
}

// validBase reports whether a base name can be stored in the index (and is
// a plausible file name at all).
func validBase(base string) bool {
	return base != "" && base != "." && base != ".." && !strings.ContainsAny(base, "\n\r\x00/:")
}

// parseIndex reads an index file. It rejects anything it did not write:
// silently rebuilding a damaged index would change every unique id and make
// leave-on-server clients download the whole maildrop again, so damage is
// an error for an administrator to look at (deleting the file rebuilds it,
// with new ids).
func parseIndex(data string) (*index, error) {
	line, data, _ := strings.Cut(data, "\n")
	magic, version, _ := strings.Cut(line, " ")
	if magic != indexMagic {
		return nil, errors.New("not a postoffice index file")
	}
	var v2 bool
	switch version {
	case "1":
	case "2":
		v2 = true
	default:
		return nil, fmt.Errorf("unsupported index version %q", version)
	}
	// Sized up front: at 100,000 messages, growing the map is a good part
	// of the load time.
	ix := &index{entries: make(map[string]*entry, strings.Count(data, "\n"))}
	var err error
	if ix.uidValidity, data, err = headerField(data, "uidvalidity"); err != nil {
		return nil, err
	}
	if ix.nextUID, data, err = headerField(data, "nextuid"); err != nil {
		return nil, err
	}
	if ix.nextUID == 0 || ix.nextUID > maxNumber {
		return nil, fmt.Errorf("bad nextuid %d", ix.nextUID)
	}
	var lastUID uint64
	explicit := 0
	for lineNo := 4; data != ""; lineNo++ {
		var ok bool
		line, data, ok = strings.Cut(data, "\n")
		if !ok {
			return nil, fmt.Errorf("line %d: truncated", lineNo)
		}
		e, err := parseEntry(line, v2)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if e.id != "" {
			if ix.isGenerated(e.uid, e.id) {
				e.id = "" // written by hand, or by a future version: one spelling
			} else {
				explicit++
			}
		}
		// Records are in uid order, which also rules out duplicates.
		if e.uid <= lastUID {
			return nil, fmt.Errorf("line %d: uid %d out of order", lineNo, e.uid)
		}
		lastUID = e.uid
		if ix.entries[e.base] != nil {
			return nil, fmt.Errorf("line %d: duplicate base name %q", lineNo, e.base)
		}
		ix.entries[e.base] = e
		// Never hand out a uid that is in use, even if the counter was
		// damaged.
		if e.uid >= ix.nextUID {
			ix.nextUID = e.uid + 1
		}
	}
	if explicit > 0 {
		if err := ix.checkExplicitIDs(explicit); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// checkExplicitIDs checks that the explicit unique ids (n of them) are
// unique in the maildrop, and raises nextuid above every uid whose
// generated id one of them has (see the format comment).
func (ix *index) checkExplicitIDs(n int) error {
	seen := make(map[string]*entry, n)
	var byUID map[uint64]*entry
	for _, e := range ix.entries {
		if e.id == "" {
			continue
		}
		// One map operation per record (this runs at every uncached
		// login); a repeat shows as a map that did not grow.
		before := len(seen)
		seen[e.id] = e
		if len(seen) == before {
			for _, other := range ix.entries {
				if other != e && other.id == e.id {
					return fmt.Errorf("unique id %q of uid %d is also that of uid %d", e.id, e.uid, other.uid)
				}
			}
		}
		uid, ok := generatedUID(e.id, ix.uidValidity)
		if !ok {
			continue
		}
		if byUID == nil {
			byUID = make(map[uint64]*entry, len(ix.entries))
			for _, o := range ix.entries {
				byUID[o.uid] = o
			}
		}
		if other := byUID[uid]; other != nil && other.id == "" {
			return fmt.Errorf("unique id %q of uid %d is also that of uid %d", e.id, e.uid, other.uid)
		}
		ix.reserve(uid)
	}
	return nil
}

// reserve raises nextuid above uid.
func (ix *index) reserve(uid uint64) {
	if uid >= ix.nextUID {
		ix.nextUID = uid + 1
	}
}

// headerField reads a "name <number>" header line.
func headerField(data, name string) (uint64, string, error) {
	line, rest, ok := strings.Cut(data, "\n")
	value, found := strings.CutPrefix(line, name+" ")
	if !ok || !found {
		return 0, "", fmt.Errorf("missing %s line", name)
	}
	n, err := parseUint(value)
	if err != nil {
		return 0, "", fmt.Errorf("bad %s: %w", name, err)
	}
	return n, rest, nil
}

// parseEntry reads "<uid> <vsize> <received> <first-retrieved> <base>"
// (version 1) or "<uid> <vsize> <received> <first-retrieved> <unique id>
// <base>" (version 2, v2 set).
func parseEntry(line string, v2 bool) (*entry, error) {
	var nums [4]uint64
	for i := range nums {
		field, rest, ok := strings.Cut(line, " ")
		if !ok {
			return nil, errors.New("too few fields")
		}
		n, err := parseUint(field)
		if err != nil || n > maxNumber {
			return nil, fmt.Errorf("bad number %q", field)
		}
		nums[i], line = n, rest
	}
	if nums[0] == 0 {
		return nil, errors.New("uid 0")
	}
	var id string
	if v2 {
		field, rest, ok := strings.Cut(line, " ")
		if !ok {
			return nil, errors.New("too few fields")
		}
		if field != "-" {
			explicit, ok := strings.CutPrefix(field, "=")
			if !ok || !store.ValidUniqueID(explicit) {
				return nil, fmt.Errorf("bad unique id field %q", field)
			}
			id = explicit
		}
		line = rest
	}
	if !validBase(line) {
		return nil, fmt.Errorf("bad base name %q", line)
	}
	return &entry{
		uid:            nums[0],
		vsize:          int64(nums[1]),
		received:       int64(nums[2]),
		firstRetrieved: int64(nums[3]),
		id:             id,
		base:           line,
	}, nil
}

// parseUint reads a plain decimal number: digits only, so that the file
// has exactly one spelling of each value and round-trips.
func parseUint(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad number %q", s)
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// marshal writes the index in its file format, records in uid order.
func (ix *index) marshal() []byte {
	sorted := make([]*entry, 0, len(ix.entries))
	for _, e := range ix.entries {
		sorted = append(sorted, e)
	}
	slices.SortFunc(sorted, func(a, b *entry) int { return cmpUint(a.uid, b.uid) })

	b := make([]byte, 0, 64+len(sorted)*80)
	b = append(b, indexMagic+" "...)
	b = strconv.AppendInt(b, indexVersion, 10)
	b = append(b, "\nuidvalidity "...)
	b = strconv.AppendUint(b, ix.uidValidity, 10)
	b = append(b, "\nnextuid "...)
	b = strconv.AppendUint(b, ix.nextUID, 10)
	b = append(b, '\n')
	for _, e := range sorted {
		b = e.appendTo(b, indexVersion)
	}
	return b
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// loadIndex reads the maildrop's index, or returns nil if it has none yet.
func loadIndex(root *os.Root) (*index, error) {
	data, err := root.ReadFile(indexFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	return indexFromData(root, data)
}

// indexFromData parses the content of the index file.
func indexFromData(root *os.Root, data []byte) (*index, error) {
	// A last line without its LF is a record whose append was
	// interrupted (by a crash, or because it is being written right
	// now): its message was not delivered yet, so leave it out. Only
	// a record can be torn; the header is written by whole-file
	// replacement.
	if n := len(data); n > 0 && data[n-1] != '\n' {
		if end := bytes.LastIndexByte(data, '\n'); end >= 0 && bytes.Count(data[:end+1], []byte{'\n'}) >= 3 {
			data = data[:end+1]
		}
	}
	ix, err := parseIndex(string(data))
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", root.Name()+"/"+indexFile, err)
	}
	return ix, nil
}

// writeIndex replaces the index file atomically: the new content goes to a
// temporary file that is synced and then renamed over the old one, and the
// directory is synced so the rename itself is durable. A crash leaves
// either the old index or the new one, never a mix — which matters because
// a lost index would change every unique id.
func writeIndex(root *os.Root, ix *index) error {
	token, err := randomToken()
	if err != nil {
		return err
	}
	tmp := indexFile + ".tmp-" + token
	if err := writeNewFile(root, tmp, ix.marshal(), true); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := root.Rename(tmp, indexFile); err != nil {
		root.Remove(tmp)
		return fmt.Errorf("write index: %w", err)
	}
	if err := syncDir(root, "."); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// writeNewFile creates name, which must not exist, and writes data,
// syncing it to stable storage if durable is set. Creation fails with an
// error wrapping fs.ErrExist if the file exists; after any later failure
// the file is removed again.
func writeNewFile(root *os.Root, name string, data []byte, durable bool) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		root.Remove(name)
	}
	return err
}

// syncDir makes a directory's entries (created or renamed files) durable.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
