package maildir

import (
	"context"
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
// lock on the maildrop for the session; design invariant 6) is a lease: a
// file in the maildir root that names its holder and whose modification
// time the holder refreshes every LockLease/3. A lock whose time is older
// than LockLease belongs to a holder that crashed or hung and may be taken
// over, on this host or on another one sharing the maildir (NFS). On the
// holder's own host a lock whose process is gone is taken over at once, so
// a restarted server does not make its users wait for the lease to run out.
//
// Deciding "stale, take it over" and doing it must be one step, or two
// contenders could both take over the same stale lock. That step runs under
// an flock(2) of a separate guard file, held only for those few
// milliseconds (never for the session, so a process that dies cannot leave
// it held). Where flock does not work between hosts, creation with O_EXCL
// still keeps two hosts from both creating the lock; only the takeover of
// an already stale lock could then race, and the loser notices at its next
// renewal (the lock no longer holds its token) and refuses to Commit.
const (
	lockFile   = "postoffice-pop3.lock"
	guardFile  = "postoffice-pop3.lock.guard"
	lockMagic  = "postoffice-pop3-lock 1"
	guardWait  = 3 * time.Second // longest wait for another process's takeover step
	guardRetry = 5 * time.Millisecond
)

// DefaultLockLease is the lease of a session lock when Config.LockLease is
// zero.
const DefaultLockLease = 2 * time.Minute

// held is what this process holds, so that two sessions in the same
// process can neither race each other nor mistake a lock of this process
// (same host, same pid) for one left by a dead process.
var held = struct {
	sync.Mutex
	dirs   map[string]bool // maildir paths with a session or an Open in progress
	tokens map[string]bool // tokens of the lock files this process holds
}{dirs: map[string]bool{}, tokens: map[string]bool{}}

// lockHolder is the content of a lock file.
type lockHolder struct {
	host  string
	pid   int
	pidns string // the pid namespace, so containers sharing a host name do not judge each other's pids
	token string
}

func (h lockHolder) marshal() []byte {
	return fmt.Appendf(nil, "%s\nhost %s\npid %d\npidns %s\ntoken %s\n", lockMagic, h.host, h.pid, h.pidns, h.token)
}

// parseLockHolder reads a lock file; ok is false if it is not one (for
// example a lock being written right now by another process).
func parseLockHolder(data string) (h lockHolder, ok bool) {
	line, data, _ := strings.Cut(data, "\n")
	if line != lockMagic {
		return h, false
	}
	for data != "" {
		line, data, _ = strings.Cut(data, "\n")
		key, value, _ := strings.Cut(line, " ")
		switch key {
		case "host":
			h.host = value
		case "pid":
			h.pid, _ = strconv.Atoi(value)
		case "pidns":
			h.pidns = value
		case "token":
			h.token = value
		}
	}
	return h, h.token != ""
}

// lease is a held session lock.
type lease struct {
	root   *os.Root
	dir    string
	token  string
	logger *slog.Logger
	// taken is the lock file's modification time when it was written:
	// the file system's clock at the start of the session, which the
	// snapshot cache compares directory times with (see snapcache.go).
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
func (s *Store) acquire(ctx context.Context, root *os.Root, dir string) (*lease, error) {
	held.Lock()
	if held.dirs[dir] {
		held.Unlock()
		return nil, store.ErrInUse
	}
	held.dirs[dir] = true
	held.Unlock()

	l, err := s.acquireFile(ctx, root, dir)
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

// acquireFile creates or takes over the lock file.
//
// The common case, no lock file, needs no guard: O_EXCL creation is
// atomic, and every other change to the lock file (a takeover's rename, a
// release's removal) is made under the guard, so the file cannot vanish
// and reappear between another session's decision and its action. Only
// when a lock file exists is the guard taken, to decide under it.
func (s *Store) acquireFile(ctx context.Context, root *os.Root, dir string) (*lease, error) {
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	me := lockHolder{host: s.hostname, pid: myPid, pidns: pidNamespace(), token: token}
	l := &lease{root: root, dir: dir, token: token, logger: s.logger}

	// Register the token first: a concurrent Open in this process that
	// reads our fresh lock file must see it as live.
	held.Lock()
	held.tokens[token] = true
	held.Unlock()
	ok := false
	defer func() {
		if !ok {
			held.Lock()
			delete(held.tokens, token)
			held.Unlock()
		}
	}()

	// The lock need not survive a crash (its holder would not), so it is
	// not synced: no fsync on the login path.
	l.taken, err = createLockFile(root, me.marshal())
	if errors.Is(err, fs.ErrExist) {
		unguard, gerr := guard(ctx, root)
		if gerr != nil {
			return nil, gerr
		}
		defer unguard()
		// The holder may have released it meanwhile.
		l.taken, err = createLockFile(root, me.marshal())
	}
	switch {
	case errors.Is(err, fs.ErrExist):
		if err := s.takeOver(root, dir, me); err != nil {
			return nil, err
		}
		// Read back: on a file system where the guard does not work
		// between hosts, another host may have won a takeover race. (A
		// lock this session created with O_EXCL is its own: nobody
		// takes over a fresh lease.)
		info, err := root.Lstat(lockFile)
		if got, rerr := readLockHolder(root); err != nil || rerr != nil || got.token != token {
			return nil, fmt.Errorf("lock %s/%s: lost a takeover race: %w", dir, lockFile, store.ErrInUse)
		}
		l.taken = info.ModTime()
	case err != nil:
		return nil, fmt.Errorf("create lock %s/%s: %w", dir, lockFile, err)
	}
	ok = true
	return l, nil
}

// createLockFile creates the lock file with O_EXCL, writes it, and
// returns its modification time: the file system's clock now.
func createLockFile(root *os.Root, data []byte) (time.Time, error) {
	f, err := root.OpenFile(lockFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL|quickOpen, 0o600)
	if err != nil {
		return time.Time{}, err
	}
	_, err = f.Write(data)
	var info os.FileInfo
	if err == nil {
		info, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		root.Remove(lockFile)
		return time.Time{}, err
	}
	return info.ModTime(), nil
}

// takeOver replaces an existing lock file if it is stale and returns
// store.ErrInUse if it is not. The caller holds the guard.
func (s *Store) takeOver(root *os.Root, dir string, me lockHolder) error {
	info, err := root.Lstat(lockFile)
	if err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	data, err := root.ReadFile(lockFile)
	if err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	holder, parsed := parseLockHolder(string(data))
	reason := s.staleReason(holder, parsed, info.ModTime())
	if reason == "" {
		return store.ErrInUse
	}
	// Rename a complete new lock over the old one, so there is no moment
	// without a lock file for an O_EXCL creator to slip into.
	tmp := lockFile + ".tmp-" + me.token
	if err := writeNewFile(root, tmp, me.marshal(), false); err != nil {
		return fmt.Errorf("take over lock %s: %w", dir, err)
	}
	if err := root.Rename(tmp, lockFile); err != nil {
		root.Remove(tmp)
		return fmt.Errorf("take over lock %s: %w", dir, err)
	}
	s.logger.Warn("took over stale maildrop lock", "maildir", dir, "reason", reason,
		"holder_host", holder.host, "holder_pid", holder.pid)
	if o := s.obs(); o != nil {
		o.LockTakenOver()
	}
	return nil
}

// staleReason says why a lock may be taken over, or returns "" if its
// holder may still be alive.
func (s *Store) staleReason(h lockHolder, parsed bool, mtime time.Time) string {
	if age := time.Since(mtime); age > s.lockLease {
		return fmt.Sprintf("lease expired %v ago", (age - s.lockLease).Round(time.Second))
	}
	if !parsed || h.host != s.hostname || h.pidns != pidNamespace() || h.pid <= 0 {
		// Another host, or a lock being written: only its lease can
		// tell.
		return ""
	}
	if h.pid == myPid {
		held.Lock()
		live := held.tokens[h.token]
		held.Unlock()
		if live {
			return ""
		}
		// Our pid, but not our lock: left by an earlier process that had
		// the same pid (common in containers, where the server is pid 1).
		return "left by an earlier process with this pid"
	}
	if !processAlive(h.pid) {
		return fmt.Sprintf("holder process %d is gone", h.pid)
	}
	return ""
}

// readLockHolder reads and parses the current lock file.
func readLockHolder(root *os.Root) (lockHolder, error) {
	f, err := root.OpenFile(lockFile, os.O_RDONLY|quickOpen, 0)
	if err != nil {
		return lockHolder{}, err
	}
	defer f.Close()
	// A lock file is a few lines; one that does not fit is not ours.
	var buf [4096]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return lockHolder{}, err
	}
	h, _ := parseLockHolder(string(buf[:n]))
	return h, nil
}

// quickOpen is added to the flags of the lock and guard files' opens:
// os.File then leaves the descriptor's blocking mode alone instead of
// switching it back and forth (four fcntl calls for each open), which
// for a regular file means nothing anyway.
const quickOpen = syscall.O_NONBLOCK

// myPid is this process's id, read once.
var myPid = os.Getpid()

// guard takes the guard flock, retrying while another process holds it
// for its (short) takeover step.
func guard(ctx context.Context, root *os.Root) (unguard func(), err error) {
	f, err := root.OpenFile(guardFile, os.O_RDWR|os.O_CREATE|quickOpen, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock guard: %w", err)
	}
	deadline := time.Now().Add(guardWait)
	for {
		locked, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock guard: %w", err)
		}
		if locked {
			// Closing the file releases the flock.
			return func() { f.Close() }, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock guard busy: %w", store.ErrInUse)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(guardRetry):
		}
	}
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

// check returns an error if the lock is no longer ours: someone took it
// over because this process did not renew it in time (it was stopped, or
// the file system hung), or removed it.
func (l *lease) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	h, err := readLockHolder(l.root)
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

// release stops the renewal and removes the lock file if it is still
// ours; a lock another session took over is left alone.
func (l *lease) release(ctx context.Context) error {
	l.stopRenewal()
	defer func() {
		held.Lock()
		delete(held.tokens, l.token)
		delete(held.dirs, l.dir)
		held.Unlock()
	}()
	unguard, err := guard(ctx, l.root)
	if err != nil {
		return fmt.Errorf("release lock %s: %w", l.dir, err)
	}
	defer unguard()
	h, err := readLockHolder(l.root)
	if err != nil || h.token != l.token {
		return nil // not ours any more (lost or removed): nothing to release
	}
	if err := l.root.Remove(lockFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
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

// pidNamespace identifies this process's pid namespace on Linux, or is
// empty elsewhere.
var pidNamespace = sync.OnceValue(func() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
})
