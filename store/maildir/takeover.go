package maildir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
)

// Taking over another POP3 server's unique ids (Config.Legacy). The first
// time this store indexes a maildrop — the first login or delivery after
// the switch, when there is no index yet — it reads the other server's
// state (package legacy) and gives each message it knew the id it showed,
// in its POP3 order, ahead of any message it never listed. The ids go
// into the new index as explicit ids (see index.go), so they stay as they
// are for good, also once the other server's files are deleted. Later
// logins never read those files again.
//
// Nothing is taken over silently: the outcome (ids kept, renamed as
// duplicates, not kept and why, damage in the state file) is logged when
// the index is made, and CheckTakeover tells it beforehand.

// takenOver is a message's id and place in the other server's POP3 order.
type takenOver struct {
	pos int
	id  string
}

// maxReportLines bounds the log lines of one kind a takeover writes.
const maxReportLines = 20

// startIndex returns the index of a maildrop that has none yet, and the
// ids to take over for its files (nil when Config.Legacy names no
// source). An unreadable state file is an error: a login that went on
// without it would give every message a new id for good.
func (s *Store) startIndex(root *os.Root, dir string, files map[string]msgFile) (*index, map[string]takenOver, error) {
	// UIDVALIDITY: fixed now, for the life of the index.
	ix := newIndex(uint64(time.Now().Unix()))
	if s.legacy.Source == legacy.None {
		return ix, nil, nil
	}
	res, err := s.readLegacy(root, dir, files)
	if err != nil {
		return nil, nil, fmt.Errorf("take over the unique ids of %s: %w", s.legacy.Source, err)
	}
	s.logTakeover(dir, &res.Report)
	adopted := make(map[string]takenOver, len(res.Messages))
	for i, m := range res.Messages {
		adopted[m.Base] = takenOver{pos: i, id: m.ID}
	}
	return ix, adopted, nil
}

// readLegacy reads the other server's ids for files.
func (s *Store) readLegacy(root *os.Root, dir string, files map[string]msgFile) (*legacy.Result, error) {
	bases := make([]string, 0, len(files))
	for base := range files {
		bases = append(bases, base)
	}
	fsys, done, err := s.legacyFS(root, dir)
	if err != nil {
		return nil, err
	}
	defer done()
	headers := &xuidlReader{root: root, files: files}
	defer headers.close()
	return legacy.Read(fsys, s.legacy, bases, headers.read)
}

// maxHeaderScan bounds how much of a message is read for its X-UIDL
// header.
const maxHeaderScan = 256 << 10

// xuidlReader reads the first X-UIDL header of messages, for Dovecot's
// pop3_reuse_xuidl. It opens them as RETR does (fastio.go): no symbolic
// link is followed, and a FIFO in their place cannot block the open.
type xuidlReader struct {
	root  *os.Root
	files map[string]msgFile
	dirs  [2]*dirFile // new/, cur/, opened at first use
}

func (x *xuidlReader) read(base string) (string, bool, error) {
	f, ok := x.files[base]
	if !ok {
		return "", false, nil
	}
	i, sub := 0, dirNew
	if f.cur {
		i, sub = 1, dirCur
	}
	if x.dirs[i] == nil {
		d, err := openDir(x.root, sub)
		if err != nil {
			return "", false, err
		}
		x.dirs[i] = d
	}
	fd, st, err := openAt(x.dirs[i].fd, f.name)
	if err != nil {
		return "", false, err
	}
	m := &messageFile{fd: fd, left: st.Size}
	defer m.Close()
	return firstHeader(io.LimitReader(m, maxHeaderScan), "X-UIDL")
}

func (x *xuidlReader) close() {
	x.dirs[0].close()
	x.dirs[1].close()
}

// firstHeader returns the value of the first header field called name
// (in any case) of the message r, unfolded, without the white space
// around it, and whether there is one.
func firstHeader(r io.Reader, name string) (string, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxHeaderScan)
	var value strings.Builder
	found := false
	for sc.Scan() {
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" {
			break // the end of the header
		}
		if found {
			if text[0] != ' ' && text[0] != '\t' {
				break
			}
			value.WriteString(text) // unfolding removes only the line break
			continue
		}
		if field, rest, ok := strings.Cut(text, ":"); ok && strings.EqualFold(strings.TrimRight(field, " \t"), name) {
			found = true
			value.WriteString(rest)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return "", false, err
	}
	return strings.Trim(value.String(), " \t"), found, nil
}

// logTakeover logs a takeover's report: a summary, then what was renamed,
// not kept or damaged, a bounded number of lines of each.
func (s *Store) logTakeover(dir string, r *legacy.Report) {
	level := "info"
	if len(r.Lost) > 0 || len(r.Problems) > 0 || len(r.Renamed) > 0 || (!r.Found && r.Source != legacy.FileName) {
		level = "warn"
	}
	attrs := []any{"maildir", dir, "source", string(r.Source), "file", r.StateFile, "kept", r.Kept,
		"renamed", len(r.Renamed), "not_kept", len(r.Lost), "not_listed", len(r.Unlisted), "problems", len(r.Problems)}
	if r.Format != "" {
		attrs = append(attrs, "format", r.Format)
	}
	if level == "warn" {
		s.logger.Warn("taking over unique ids: "+r.Summary(), attrs...)
	} else {
		s.logger.Info("taking over unique ids: "+r.Summary(), attrs...)
	}
	for i, p := range r.Problems {
		if i == maxReportLines {
			s.logger.Warn("taking over unique ids: more problems not logged", "maildir", dir, "count", len(r.Problems)-i)
			break
		}
		s.logger.Warn("taking over unique ids: "+r.StateFile+" "+p, "maildir", dir)
	}
	for i, x := range r.Renamed {
		if i == maxReportLines {
			s.logger.Warn("taking over unique ids: more renamed duplicates not logged", "maildir", dir, "count", len(r.Renamed)-i)
			break
		}
		s.logger.Warn("taking over unique ids: duplicate id renamed as Dovecot's pop3_uidl_duplicates=rename does",
			"maildir", dir, "file", x.Base, "was", x.Was, "now", x.Now)
	}
	for i, x := range r.Lost {
		if i == maxReportLines {
			s.logger.Warn("taking over unique ids: more ids not kept not logged", "maildir", dir, "count", len(r.Lost)-i)
			break
		}
		s.logger.Warn("taking over unique ids: id not kept; the message gets a new one", "maildir", dir,
			"file", x.Base, "id", x.ID, "reason", x.Reason)
	}
}

// TakeoverCheck is what taking over another server's unique ids does, or
// did, for one maildrop.
type TakeoverCheck struct {
	// Dir is the maildrop's directory.
	Dir string
	// Exists is false when there is no maildrop yet (nothing to keep).
	Exists bool
	// Indexed is true when the maildrop has a postoffice index already:
	// its ids are frozen (taken over when it was made, if at all), and
	// nothing is read from the other server again.
	Indexed bool
	// Messages is the number of message files.
	Messages int
	// Report is what a takeover would keep, rename and lose; nil when
	// Indexed, when !Exists, or when Config.Legacy names no source.
	Report *legacy.Report
}

// CheckTakeover tells, without changing anything, what the first open of
// the account's maildrop would keep of the other server's unique ids
// (Config.Legacy): per message, kept, renamed as a duplicate, or not kept
// and why. It takes no lock; a maildrop in use by the other server may
// change before the switch.
func (s *Store) CheckTakeover(ctx context.Context, acct store.Account) (*TakeoverCheck, error) {
	dir, err := s.maildropDir(acct)
	if err != nil {
		return nil, err
	}
	check := &TakeoverCheck{Dir: dir}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return check, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check maildrop of %q: %w", acct.Name, err)
	}
	defer root.Close()
	check.Exists = true
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	files, err := s.scan(root, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return check, nil // no new/ or cur/: no messages
	}
	if err != nil {
		return nil, fmt.Errorf("check maildrop of %q: %w", acct.Name, err)
	}
	check.Messages = len(files)
	if _, err := root.Lstat(indexFile); err == nil {
		check.Indexed = true
		return check, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("check maildrop of %q: %w", acct.Name, err)
	}
	if s.legacy.Source == legacy.None {
		return check, nil
	}
	if err := s.noteControlDir(acct, dir); err != nil {
		return nil, err
	}
	res, err := s.readLegacy(root, dir, files)
	if err != nil {
		return nil, fmt.Errorf("check maildrop of %q: %w", acct.Name, err)
	}
	check.Report = &res.Report
	return check, nil
}

// Dovecot keeps dovecot-uidlist in the Maildir unless its mail_location
// has a CONTROL= option ("maildir:~/Maildir:CONTROL=/var/dovecot/%u").
// The location template (the store's, or an account's Mail) may be
// copied from there, so its CONTROL= directory is where the uidlist is
// looked for. The directory belongs to the account, but the first index
// is made deep inside Open and Deliver, which know only the maildrop's
// directory: they note the account's control directory by maildrop
// directory first (controlDirs), which is as stable as the location
// template.

// dovecotControlDir is the expanded CONTROL= directory of acct's mail
// location, or "" when there is none (or no Dovecot takeover).
func (s *Store) dovecotControlDir(acct store.Account) (string, error) {
	if s.legacy.Source != legacy.Dovecot {
		return "", nil
	}
	tmpl := s.locationTemplate
	if acct.Mail != "" {
		tmpl = acct.Mail
	}
	control := locationOption(tmpl, "CONTROL")
	if control == "" {
		return "", nil
	}
	control, err := translateDovecot(control)
	if err != nil {
		return "", fmt.Errorf("CONTROL= of the mail location of %q: %w", acct.Name, err)
	}
	loc, err := parseLocation(control)
	if err != nil {
		return "", fmt.Errorf("CONTROL= of the mail location of %q: %w", acct.Name, err)
	}
	dir, err := loc.expand(acct)
	if err != nil {
		return "", fmt.Errorf("CONTROL= of the mail location of %q: %w", acct.Name, err)
	}
	return dir, nil
}

// noteControlDir remembers acct's Dovecot control directory for its
// maildrop directory, for a takeover that may happen in this call.
func (s *Store) noteControlDir(acct store.Account, dir string) error {
	control, err := s.dovecotControlDir(acct)
	if err != nil || control == "" {
		return err
	}
	s.controlDirs.Store(dir, control)
	return nil
}

// legacyFS is where the other server's state files of the maildrop in
// dir (open as root) are: the Maildir itself, or Dovecot's control
// directory. close releases it.
func (s *Store) legacyFS(root *os.Root, dir string) (fsys fs.FS, close func(), err error) {
	control, ok := s.controlDirs.Load(dir)
	if !ok {
		return root.FS(), func() {}, nil
	}
	croot, err := os.OpenRoot(control.(string))
	if errors.Is(err, fs.ErrNotExist) {
		// No control directory: no uidlist (Read reports it).
		return emptyFS{}, func() {}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return croot.FS(), func() { croot.Close() }, nil
}

// emptyFS has no files.
type emptyFS struct{}

func (emptyFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}
