package maildir

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// The session lock (RFC 1939 §4: the server takes an exclusive-access
// lock on the maildrop for the session; design invariant 6) is the file
// postoffice-pop3.lock in the maildir root, which stays from one session
// to the next. A session holds an exclusive flock(2) of it from login to
// the end: the kernel drops an flock when its holder exits, however it
// exits, so a crash leaves nothing to clean up, and taking the lock
// changes no directory. (Creating a lock file with O_EXCL for each
// session and removing it after cost about 30% of a login's CPU time;
// docs/performance.md.)
//
// An flock does not always reach the other hosts that share a maildir
// over NFS: not with a mount option such as local_lock=flock, nor without
// a lock manager. So the holder also writes a record into the file (its
// host, its process and a random token) and refreshes the file's
// modification time every LockLease/3. A record of another host younger
// than LockLease is a live lease whatever the flock said; an older one
// belongs to a holder that crashed or hung, and is taken over. A record of
// this host under a free flock was left by a session that ended without
// releasing it (a crash): every live session here holds the flock. "This
// host" is this running kernel, named by its boot id, whose flocks reach
// every process and container on it; the configured host name cannot tell,
// as hosts serving one domain often share it. (Where there is no boot id,
// outside Linux, the host name stands in for it.)
//
// Release overwrites the record in place with one of the same length that
// says the lock is free: the file keeps its size and its blocks, so taking
// the lock needs no space even on a full disk.
//
// Where the flock does not reach another host, two hosts may both take
// the lock at one moment (both find it free or stale). Each reads the
// record again at every renewal and before Commit; the one that no longer
// finds its token there has lost, and its session changes nothing.
const (
	lockFile   = "postoffice-pop3.lock"
	lockMagic  = "postoffice-pop3-lock 1"
	lockFree   = "free"
	recordSize = 512 // a record's length, padded: more than any host name needs
)

// DefaultLockLease is the lease of a session lock when Config.LockLease is
// zero.
const DefaultLockLease = 2 * time.Minute

// held lists the maildirs this process has a session (or an Open in
// progress) on, so that a second Open of one is refused before it touches
// the file.
var held = struct {
	sync.Mutex
	dirs map[string]bool
}{dirs: map[string]bool{}}

// lockHolder is the record of a held lock.
type lockHolder struct {
	host  string // for people: the configured host name
	boot  string // the holder's kernel (bootID)
	pid   int
	token string
}

// lockState is what a lock file says.
type lockState int

const (
	stateFree    lockState = iota // empty (new), or released
	stateHeld                     // a holder's record
	stateUnknown                  // not a record: damaged, or being written by a host the flock does not reach
)

// marshal returns the holder's record, padded to recordSize (or to
// atLeast, if more) with empty lines.
func (h lockHolder) marshal(atLeast int) []byte {
	return padRecord(fmt.Appendf(nil, "%s\nhost %s\nboot %s\npid %d\ntoken %s\n\n", lockMagic, h.host, h.boot, h.pid, h.token), atLeast)
}

// freeRecord returns the record of a released lock, of length n (or
// recordSize, if more).
func freeRecord(n int) []byte {
	return padRecord([]byte(lockMagic+"\n"+lockFree+"\n\n"), n)
}

func padRecord(b []byte, atLeast int) []byte {
	n := max(recordSize, atLeast)
	for len(b) < n {
		b = append(b, '\n')
	}
	return b
}

// parseLock reads the content of a lock file. A record ends at its first
// empty line: what follows is padding (or the tail of a longer record
// that a shorter one overwrote).
func parseLock(data []byte) (lockHolder, lockState) {
	var h lockHolder
	if len(data) == 0 {
		return h, stateFree
	}
	line, rest, _ := bytes.Cut(data, []byte("\n"))
	if string(line) != lockMagic {
		return h, stateUnknown
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		key, value, _ := strings.Cut(string(line), " ")
		switch key {
		case "":
			rest = nil // the record's end
		case lockFree:
			return h, stateFree
		case "host":
			h.host = value
		case "boot":
			h.boot = value
		case "pid":
			h.pid, _ = strconv.Atoi(value)
		case "token":
			h.token = value
		}
	}
	if h.token == "" {
		return h, stateUnknown
	}
	return h, stateHeld
}

// lease is a held session lock.
type lease struct {
	root   *os.Root
	file   *os.File // the lock file, flocked while the lease is held
	size   int      // the length of the record written
	dir    string
	token  string
	logger *slog.Logger
	// taken is the lock file's modification time when the record was
	// written: the file system's clock at the start of the session, which
	// the snapshot cache compares directory times with (see snapcache.go).
	taken time.Time

	// Renewal runs on a timer, not in a goroutine of its own: an idle
	// session costs no goroutine stack for it. renewMu is held while a
	// renewal runs, so that release can wait for one in progress.
	renewMu sync.Mutex
	timer   *time.Timer
	period  time.Duration
	stopped bool

	mu   sync.Mutex
	lost error // why the lock is no longer ours, once it is not
}

// acquire takes the session lock of the maildrop at dir (opened as root)
// or returns an error wrapping store.ErrInUse.
func (s *Store) acquire(root *os.Root, dir string) (*lease, error) {
	held.Lock()
	if held.dirs[dir] {
		held.Unlock()
		return nil, store.ErrInUse
	}
	held.dirs[dir] = true
	held.Unlock()

	l, err := s.acquireFile(root, dir)
	if err != nil {
		held.Lock()
		delete(held.dirs, dir)
		held.Unlock()
		return nil, err
	}
	l.period = max(s.lockLease/3, time.Millisecond)
	l.timer = time.AfterFunc(l.period, l.renew)
	return l, nil
}

// acquireFile opens the lock file, takes its flock and writes this
// session's record, taking over a stale one.
func (s *Store) acquireFile(root *os.Root, dir string) (*lease, error) {
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	f, err := root.OpenFile(lockFile, os.O_RDWR|os.O_CREATE|quickOpen, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s/%s: %w", dir, lockFile, err)
	}
	l := &lease{root: root, file: f, dir: dir, token: token, logger: s.logger}
	if err := s.take(l); err != nil {
		f.Close() // drops the flock, if taken
		return nil, err
	}
	return l, nil
}

// take takes the flock of l.file and writes l's record into it.
func (s *Store) take(l *lease) error {
	locked, err := tryLock(l.file)
	if err != nil {
		return fmt.Errorf("lock %s/%s: %w", l.dir, lockFile, err)
	}
	if !locked {
		return fmt.Errorf("lock %s/%s: %w", l.dir, lockFile, store.ErrInUse)
	}
	holder, state, n, err := readRecord(l.file)
	if err != nil {
		return fmt.Errorf("read lock %s/%s: %w", l.dir, lockFile, err)
	}
	if state != stateFree {
		info, err := l.file.Stat()
		if err != nil {
			return fmt.Errorf("lock %s/%s: %w", l.dir, lockFile, err)
		}
		reason := s.staleReason(holder, state, info.ModTime())
		if reason == "" {
			return fmt.Errorf("lock %s/%s: %w", l.dir, lockFile, store.ErrInUse)
		}
		s.logger.Warn("took over stale maildrop lock", "maildir", l.dir, "reason", reason,
			"holder_host", holder.host, "holder_pid", holder.pid)
		if o := s.obs(); o != nil {
			o.LockTakenOver()
		}
	}
	// The record need not survive a crash (its holder would not), so it
	// is not synced: no fsync on the login path.
	record := lockHolder{host: s.hostname, boot: bootID(), pid: myPid, token: l.token}.marshal(n)
	if _, err := l.file.WriteAt(record, 0); err != nil {
		return fmt.Errorf("write lock %s/%s: %w", l.dir, lockFile, err)
	}
	info, err := l.file.Stat()
	if err != nil {
		return fmt.Errorf("lock %s/%s: %w", l.dir, lockFile, err)
	}
	l.size, l.taken = len(record), info.ModTime()
	return nil
}

// staleReason says why a lock whose flock this process holds may be taken
// over, or returns "" if its holder may still be alive.
func (s *Store) staleReason(h lockHolder, state lockState, mtime time.Time) string {
	if state == stateHeld && s.sameKernel(h) {
		return "its holder on this host ended without releasing it"
	}
	if age := time.Since(mtime); age > s.lockLease {
		return fmt.Sprintf("lease expired %v ago", (age - s.lockLease).Round(time.Second))
	}
	// Another host's lease, or a record being written: only its age can
	// tell.
	return ""
}

// sameKernel reports whether h was written on this running kernel, whose
// flocks this process shares.
func (s *Store) sameKernel(h lockHolder) bool {
	if boot := bootID(); boot != "" {
		return h.boot == boot
	}
	return h.host == s.hostname
}

// bootID identifies the running Linux kernel: one random id per boot, the
// same in every container on it. It is empty elsewhere.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// readLockHolder reads the lock file at its name, which may by now be
// another file than the one this session opened (if someone removed it).
func readLockHolder(root *os.Root) (lockHolder, lockState, error) {
	f, err := root.OpenFile(lockFile, os.O_RDONLY|quickOpen, 0)
	if err != nil {
		return lockHolder{}, stateUnknown, err
	}
	defer f.Close()
	h, state, _, err := readRecord(f)
	return h, state, err
}

// readRecord reads and parses the record at the start of a lock file; n
// is how many octets it read (the length a new record should cover).
func readRecord(f *os.File) (h lockHolder, state lockState, n int, err error) {
	var buf [2 * recordSize]byte
	n, err = f.ReadAt(buf[:], 0)
	if err != nil && err != io.EOF {
		return lockHolder{}, stateUnknown, 0, err
	}
	h, state = parseLock(buf[:n])
	return h, state, n, nil
}

// quickOpen is added to the flags of the lock file's opens: os.File then
// leaves the descriptor's blocking mode alone instead of switching it
// back and forth (four fcntl calls for each open), which for a regular
// file means nothing anyway.
const quickOpen = syscall.O_NONBLOCK

// myPid is this process's id, read once.
var myPid = os.Getpid()

// tryLock takes an exclusive flock(2) of f without waiting; it is released
// when f is closed.
func tryLock(f *os.File) (bool, error) {
	// Through SyscallConn rather than Fd, which would switch the
	// descriptor to blocking mode first.
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	if cerr := rc.Control(func(fd uintptr) {
		err = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	}); cerr != nil {
		return false, cerr
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// renew refreshes the lease, every period until release (it runs on
// l.timer), and notices when the lock stops being ours.
func (l *lease) renew() {
	l.renewMu.Lock()
	defer l.renewMu.Unlock()
	if l.stopped {
		return
	}
	if err := l.check(); err != nil {
		return // check logged it; the session fails at Commit
	}
	now := time.Now()
	if err := l.root.Chtimes(lockFile, now, now); err != nil {
		l.logger.Error("cannot renew maildrop lock", "maildir", l.dir, "err", err)
	}
	l.timer.Reset(l.period)
}

// stopRenewal ends the renewals, waiting for one in progress.
func (l *lease) stopRenewal() {
	l.renewMu.Lock()
	l.stopped = true
	l.timer.Stop()
	l.renewMu.Unlock()
}

// check returns an error if the lock is no longer ours: another host
// took it over because this process did not renew it in time (it was
// stopped, or the file system hung), or someone removed the file.
func (l *lease) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	h, _, err := readLockHolder(l.root)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && h.token != l.token) {
		l.lost = fmt.Errorf("maildrop lock %s/%s is no longer held by this session", l.dir, lockFile)
		l.logger.Error("lost maildrop lock", "maildir", l.dir, "holder_host", h.host, "holder_pid", h.pid)
		return l.lost
	}
	if err != nil {
		// A read error is not proof of loss; the next renewal tries again.
		l.logger.Warn("cannot check maildrop lock", "maildir", l.dir, "err", err)
	}
	return nil
}

// release stops the renewal, marks the record free if it is still ours
// (a lock another host took over is left alone), and drops the flock.
func (l *lease) release() error {
	l.stopRenewal()
	defer func() {
		l.file.Close()
		held.Lock()
		delete(held.dirs, l.dir)
		held.Unlock()
	}()
	h, _, _, err := readRecord(l.file)
	if err != nil {
		return fmt.Errorf("release lock %s: %w", l.dir, err)
	}
	if h.token != l.token {
		return nil // not ours any more: nothing to release
	}
	if _, err := l.file.WriteAt(freeRecord(l.size), 0); err != nil {
		return fmt.Errorf("release lock %s: %w", l.dir, err)
	}
	return nil
}

// randomToken returns 128 random bits in hex.
func randomToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
