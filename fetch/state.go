package fetch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The state file of one account is a journal of text lines, appended to
// and made durable with fsync at the points the exactly-once argument
// needs (see the package documentation):
//
//	postoffice-fetch-state 1        the first line of a compacted file
//	S <uid> <unix seconds>          the message was delivered then
//	P <uid> <token>                 a delivery began (mbox: where, when)
//	X <uid>                         that delivery did not happen
//	R <unix seconds>                a run began to write
//	E                               the run ended with every write settled
//
// A run that began (R) and did not end (E) was interrupted: messages it
// wrote may be in the destination without an S line, so the next run asks
// the destination before fetching anything (Recover). A line cut short by a
// crash (no final newline) is ignored and cut off. At the end of a run the
// file is rewritten (temporary file, fsync, rename, fsync of the
// directory) with only the S lines of messages still on the server: a
// unique id is never reused (RFC 1939 §7), so forgetting those is safe.

const stateHeader = "postoffice-fetch-state 1"

// state is one account's journal, open for the length of a run, with the
// account's lock held.
type state struct {
	path    string
	f       *os.File
	w       *bufio.Writer
	lock    *os.File
	seen    map[string]time.Time // uid → when it was delivered
	pending map[string]string    // uid → token of a delivery begun
	unclean bool                 // the last run began and did not end
	dirty   bool                 // lines written since the last sync
}

// errLocked is returned when another fetch holds the account.
var errLocked = errors.New("another postoffice fetch is running for this account")

// openState takes the account's lock and reads its journal. readOnly
// (dry runs) reads without creating anything.
func openState(dir, account string, readOnly bool) (*state, error) {
	s := &state{
		path:    filepath.Join(dir, account+".state"),
		seen:    make(map[string]time.Time),
		pending: make(map[string]string),
	}
	if readOnly {
		data, err := os.ReadFile(s.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if _, err := s.replay(data); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, account+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	s.lock = lock
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("state file: %w", err)
	}
	s.f = f
	data, err := io.ReadAll(f)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("state file: %w", err)
	}
	good, err := s.replay(data)
	if err != nil {
		s.close()
		return nil, err
	}
	if good < len(data) {
		// A line torn by a crash: cut it off before appending.
		if err := f.Truncate(int64(good)); err != nil {
			s.close()
			return nil, fmt.Errorf("state file: %w", err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		s.close()
		return nil, err
	}
	s.w = bufio.NewWriter(f)
	if good == 0 {
		s.w.WriteString(stateHeader + "\n")
		s.dirty = true
	}
	return s, nil
}

// replay applies the journal's lines and returns the length of its
// complete lines.
func (s *state) replay(data []byte) (int, error) {
	good := 0
	for n := 1; good < len(data); n++ {
		i := bytes.IndexByte(data[good:], '\n')
		if i < 0 {
			break // torn last line
		}
		line := string(data[good : good+i])
		good += i + 1
		if n == 1 && line == stateHeader {
			continue
		}
		if err := s.apply(line); err != nil {
			return 0, fmt.Errorf("state file %s line %d: %w", s.path, n, err)
		}
	}
	return good, nil
}

func (s *state) apply(line string) error {
	kind, rest, _ := strings.Cut(line, " ")
	switch kind {
	case "S":
		uid, at, ok := strings.Cut(rest, " ")
		secs, err := strconv.ParseInt(at, 10, 64)
		if !ok || uid == "" || err != nil {
			return fmt.Errorf("malformed record %q", clipText(line))
		}
		s.seen[uid] = time.Unix(secs, 0)
		delete(s.pending, uid)
	case "P":
		uid, token, _ := strings.Cut(rest, " ")
		if uid == "" {
			return fmt.Errorf("malformed record %q", clipText(line))
		}
		s.pending[uid] = token
	case "X":
		delete(s.pending, rest)
	case "R":
		s.unclean = true
	case "E":
		s.unclean = false
	default:
		return fmt.Errorf("unknown record %q", clipText(line))
	}
	return nil
}

func clipText(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func (s *state) append(line string) {
	s.w.WriteString(line)
	s.w.WriteByte('\n')
	s.dirty = true
}

// beginRun records that a run starts writing, durably, before the first
// destination write.
func (s *state) beginRun(now time.Time) error {
	s.append("R " + strconv.FormatInt(now.Unix(), 10))
	return s.sync()
}

// endRun records that every write of the run was settled.
func (s *state) endRun() error {
	s.append("E")
	return s.sync()
}

// begin records, durably, that a delivery is about to write at token.
func (s *state) begin(uid, token string) error {
	s.pending[uid] = token
	s.append("P " + uid + " " + token)
	return s.sync()
}

// cancel records that a begun delivery wrote nothing.
func (s *state) cancel(uid string) {
	if _, ok := s.pending[uid]; ok {
		delete(s.pending, uid)
		s.append("X " + uid)
	}
}

// delivered records a delivery; sync makes it durable.
func (s *state) delivered(uid string, at time.Time) {
	s.seen[uid] = at
	delete(s.pending, uid)
	s.append("S " + uid + " " + strconv.FormatInt(at.Unix(), 10))
}

// flush writes what was appended to the file, without fsync: it then
// survives the process being killed, not a power failure.
func (s *state) flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// sync writes and fsyncs what was appended.
func (s *state) sync() error {
	if !s.dirty {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	s.dirty = false
	return nil
}

// compact rewrites the journal with the S lines of the unique ids for
// which keep is true, and nothing else: the run is over and clean.
func (s *state) compact(keep func(uid string) bool) error {
	if err := s.sync(); err != nil {
		return err
	}
	uids := make([]string, 0, len(s.seen))
	for uid := range s.seen {
		if keep(uid) {
			uids = append(uids, uid)
		} else {
			delete(s.seen, uid)
		}
	}
	slices.Sort(uids)
	var b bytes.Buffer
	b.WriteString(stateHeader + "\n")
	for _, uid := range uids {
		fmt.Fprintf(&b, "S %s %d\n", uid, s.seen[uid].Unix())
	}
	// Pending deliveries stay: they were not settled.
	for uid, token := range s.pending {
		fmt.Fprintf(&b, "P %s %s\n", uid, token)
	}
	if err := writeFileDurably(s.path, b.Bytes()); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	// Go on appending to the new file.
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	s.f.Close()
	s.f = f
	s.w.Reset(f)
	s.unclean = false
	return nil
}

// close releases the journal and the lock. Unsynced lines are written
// (not fsynced): nothing depends on them being durable.
func (s *state) close() {
	if s.w != nil {
		s.w.Flush()
	}
	if s.f != nil {
		s.f.Close()
	}
	if s.lock != nil {
		s.lock.Close() // releases the flock
	}
}

// writeFileDurably replaces path with data: a temporary file in the same
// directory, fsync, rename over path, fsync of the directory.
func writeFileDurably(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
