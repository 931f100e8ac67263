// Package legacy reads the state other POP3 servers kept in a Maildir and
// works out the unique ids and the message order they showed their
// clients, so that postoffice can serve the same maildrop without a single
// message being downloaded again.
//
// Three kinds of server are known:
//
//   - Dovecot ("dovecot"): its dovecot-uidlist (version 3, and the old
//     version 1) maps file names to IMAP uids and may hold a saved POP3
//     UIDL (extension P) and POP3 order (O) per message; the ids are what
//     its pop3_uidl_format makes of them (see Format), or the X-UIDL
//     header with its pop3_reuse_xuidl.
//   - Courier ("courier"): its courierpop3dsizelist (versions 2 and 3)
//     gives each file a "UID<n>-<uidvalidity>" id; without the file, the
//     id is the file name (Courier's oldest scheme, with "+XX" escapes).
//   - qmail-pop3d and other servers that used the file name
//     ("filename"): the base name of the file, up to ':'.
//
// Read never changes anything. What it could not carry over it says, per
// message and with the reason, in a Report: a damaged state file, a record
// without a usable id, duplicate ids made unique the way Dovecot's
// pop3_uidl_duplicates=rename does ("-2", "-3", …). The Maildir store
// freezes the result into its index the first time it opens the maildrop
// (store/maildir), after which the other server's files are no longer
// needed.
package legacy

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// Source names a kind of server whose ids are taken over.
type Source string

// The known sources.
const (
	// None takes over nothing: postoffice gives every message its own id.
	None     Source = ""
	Dovecot  Source = "dovecot"
	Courier  Source = "courier"
	FileName Source = "filename"
)

// DefaultDovecotFormat is Dovecot's default pop3_uidl_format.
const DefaultDovecotFormat = "%08Xu%08Xv"

// Files the sources keep in the Maildir root.
const (
	DovecotUIDList      = "dovecot-uidlist"
	CourierPOP3SizeList = "courierpop3dsizelist"
)

// maxStateFile bounds how much of a state file is read: far above the
// uidlist of a maildrop of millions of messages.
const maxStateFile = 1 << 30

// Config says whose ids to take over.
type Config struct {
	// Source is the server the maildrops come from.
	Source Source
	// DovecotFormat is Dovecot's pop3_uidl_format, for Source Dovecot;
	// empty means DefaultDovecotFormat.
	DovecotFormat string
	// DovecotReuseXUIDL is Dovecot's pop3_reuse_xuidl: a message's
	// X-UIDL header, where it has one, was its id (after a saved UIDL,
	// before the format).
	DovecotReuseXUIDL bool
}

// XUIDLFunc returns the value of the first X-UIDL header of the message
// whose file has the given base name, and whether it has one.
type XUIDLFunc func(base string) (value string, ok bool, err error)

// Validate checks the configuration, the Dovecot format included.
func (c Config) Validate() error {
	switch c.Source {
	case None, Courier, FileName:
		return nil
	case Dovecot:
		_, err := ParseFormat(c.dovecotFormat())
		return err
	}
	return fmt.Errorf("unknown source %q (want %q, %q or %q)", c.Source, Dovecot, Courier, FileName)
}

func (c Config) dovecotFormat() string {
	if c.DovecotFormat == "" {
		return DefaultDovecotFormat
	}
	return c.DovecotFormat
}

// Message is one message whose id was carried over.
type Message struct {
	// Base is the message file's name up to ':'.
	Base string
	// ID is the unique id the old server showed.
	ID string
}

// Result is what Read learnt of one maildrop.
type Result struct {
	// Messages are the messages whose ids were kept, in the old server's
	// POP3 order.
	Messages []Message
	// UIDValidity is the old server's, or 0 if it had none.
	UIDValidity uint64
	// Report says what was kept and what not.
	Report Report
}

// Report tells an administrator what a takeover keeps and what it cannot.
type Report struct {
	// Source and StateFile name where the ids came from
	// ("dovecot", "dovecot-uidlist").
	Source    Source
	StateFile string
	// Format is the Dovecot pop3_uidl_format used.
	Format string
	// Found is false when the maildrop has no state file: then no id
	// could be kept, except file-name based ones.
	Found bool
	// Kept counts the messages whose id is kept, Renamed ones included.
	Kept int
	// Renamed are the duplicate ids made unique.
	Renamed []Renamed
	// Lost are the messages whose id cannot be kept; they get new ids
	// and leave-on-server clients download them again.
	Lost []Lost
	// Unlisted are the messages the state file does not mention:
	// delivered after the old server last looked, so no client saw an
	// id for them. They get new ids.
	Unlisted []string
	// Problems are damaged or unknown parts of the state file, with line
	// numbers.
	Problems []string
}

// Renamed is a duplicate id made unique.
type Renamed struct {
	Base     string
	Was, Now string
}

// Lost is a message whose id cannot be kept.
type Lost struct {
	Base   string
	ID     string // the id the old server would show, if known
	Reason string
}

// Summary is the report in one line.
func (r *Report) Summary() string {
	if !r.Found && r.Source != FileName {
		return fmt.Sprintf("no %s: no id kept, %d messages get new ids", r.StateFile, len(r.Lost)+len(r.Unlisted))
	}
	return fmt.Sprintf("%d ids kept (%d renamed as duplicates), %d could not be kept, %d messages not listed, %d problems in %s",
		r.Kept, len(r.Renamed), len(r.Lost), len(r.Unlisted), len(r.Problems), r.StateFile)
}

// problem notes a damaged or unknown part of the state file.
func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Read works out the ids the old server showed for the message files
// present, given by base name (the file name up to ':'). It reads the
// state file of cfg.Source from fsys, the Maildir root (or Dovecot's
// control directory). A missing state file is no error (Report.Found is
// false); an unreadable one is. xuidl reads a message's X-UIDL header,
// for cfg.DovecotReuseXUIDL; it may be nil otherwise.
func Read(fsys fs.FS, cfg Config, bases []string, xuidl XUIDLFunc) (*Result, error) {
	switch cfg.Source {
	case None:
		return &Result{}, nil
	case Dovecot:
		format, err := ParseFormat(cfg.dovecotFormat())
		if err != nil {
			return nil, err
		}
		data, found, err := readState(fsys, DovecotUIDList)
		if err != nil {
			return nil, err
		}
		res := &Result{Report: Report{Source: Dovecot, StateFile: DovecotUIDList, Format: format.String(), Found: found}}
		if !found {
			res.Report.Unlisted = sortedCopy(bases)
			return res, nil
		}
		if !cfg.DovecotReuseXUIDL {
			xuidl = nil
		} else if xuidl == nil {
			return nil, errors.New("pop3_reuse_xuidl needs the messages' headers")
		}
		list := ParseUIDList(data)
		list.dovecotIDs(res, format, bases, xuidl)
		return res, nil
	case Courier:
		data, found, err := readState(fsys, CourierPOP3SizeList)
		if err != nil {
			return nil, err
		}
		res := &Result{Report: Report{Source: Courier, StateFile: CourierPOP3SizeList, Found: found}}
		if !found {
			// Courier before its size list (and a Courier that never
			// wrote one) showed the file name.
			courierNameIDs(res, bases)
			return res, nil
		}
		list := ParseSizeList(data)
		list.courierIDs(res, bases)
		return res, nil
	case FileName:
		res := &Result{Report: Report{Source: FileName, StateFile: "file names", Found: true}}
		fileNameIDs(res, bases)
		return res, nil
	}
	return nil, fmt.Errorf("unknown source %q", cfg.Source)
}

// readState reads a state file, reporting whether it exists. Only a
// regular file is read: opening a FIFO put in its place would block.
func readState(fsys fs.FS, name string) ([]byte, bool, error) {
	info, err := fs.Stat(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	if !info.Mode().IsRegular() {
		return nil, false, fmt.Errorf("read %s: not a regular file", name)
	}
	if info.Size() > maxStateFile {
		return nil, false, fmt.Errorf("read %s: larger than %d octets", name, maxStateFile)
	}
	// Read at its size in one go, not grown as it is read.
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	return data, true, nil
}

// candidate is a message with the id the old server would show, before
// duplicates are renamed and ids checked.
type candidate struct {
	base string
	id   string
	// lost is why there is no id (id may still name what it would be).
	lost string
}

// finish renames duplicate ids (in the order given, the one in which the
// old server numbered the messages), checks the ids and fills res; order
// is then the POP3 order, as indexes into cands.
func finish(res *Result, cands []candidate, order []int) {
	renameDuplicates(res, cands)
	res.Messages = make([]Message, 0, len(order))
	for _, i := range order {
		c := cands[i]
		switch {
		case c.lost != "":
			res.Report.Lost = append(res.Report.Lost, Lost{Base: c.base, ID: c.id, Reason: c.lost})
		default:
			res.Messages = append(res.Messages, Message{Base: c.base, ID: c.id})
			res.Report.Kept++
		}
	}
}

// renameDuplicates makes ids unique as Dovecot's pop3_uidl_duplicates =
// rename does: the first message keeps its id, the next ones with it get
// "-2", "-3", … appended (and so on, should that name be taken too).
// Invalid ids take part, as they did on the old server.
func renameDuplicates(res *Result, cands []candidate) {
	counts := make(map[string]int, len(cands))
	for i := range cands {
		c := &cands[i]
		if c.id == "" {
			continue
		}
		was := c.id
		for {
			n := counts[c.id]
			if n == 0 {
				break
			}
			counts[c.id] = n + 1
			c.id += "-" + strconv.Itoa(n+1)
		}
		counts[c.id] = 1
		if c.id != was && c.lost == "" {
			res.Report.Renamed = append(res.Report.Renamed, Renamed{Base: c.base, Was: was, Now: c.id})
		}
		if c.lost == "" && !validID(c.id) {
			c.lost = "not a valid POP3 unique id (RFC 1939 §7: 1 to 70 characters in 0x21..0x7E)"
		}
	}
}

// validID is store.ValidUniqueID, without the import.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 70 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7E {
			return false
		}
	}
	return true
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// baseOf is a file name up to ':', the part that stays when a mail
// program changes the flags.
func baseOf(name string) string {
	base, _, _ := strings.Cut(name, ":")
	return base
}
