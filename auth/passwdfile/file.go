// Package passwdfile is a user database kept in a Dovecot-compatible
// passwd-file: one user a line,
//
//	user:password:uid:gid:gecos:home:shell:extra_fields
//
// where every field after the password may be left out, the password is a
// "{SCHEME}data" string of package auth/scheme, and extra_fields is a
// space-separated list of key=value pairs. Of those, mail (or userdb_mail)
// sets the user's maildrop location and home (or userdb_home) the home
// directory; the others, nopassword included, are kept but ignored.
// Blank lines and lines starting with '#' are ignored.
//
// A File serves authentication and reloads itself when the file changes.
// Add, SetPassword and Delete edit a file safely for the administration
// commands, under a lock and by atomic replacement, so a running server
// never reads half a file.
//
// The package uses flock(2) and inode numbers, so it is for Unix systems.
package passwdfile

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// checkInterval is how often File looks at the file for changes: a stat
// per second is cheap, and a changed password taking effect within a
// second is soon enough.
const checkInterval = time.Second

// File is a passwd-file user database. It implements auth.Authenticator,
// auth.APOPAuthenticator, auth.PasswordLookup and auth.UserLookup, and is
// safe for concurrent use.
type File struct {
	path     string
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu sync.Mutex
	// db is the last version that parsed; never nil after Open.
	db *database
	// id identifies the file db was read from.
	id fileID
	// checked is when the file was last looked at.
	checked time.Time
	// err is why the file could not be read at that time, or nil. It
	// stays until the next check, so a vanished file fails every
	// login instead of silently serving users it no longer has.
	err error
	// badID is a version that failed to parse; it is not read again
	// (nor logged again) until the file changes once more.
	badID fileID
}

// Option configures a File.
type Option func(*File)

// WithLogger sets where File reports a changed file it could not parse, or
// a stored password it could not check. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(f *File) { f.log = l }
}

// Open loads and validates the passwd-file at path. Any malformed line is
// an error naming path:line, so that a mistake is found when the server
// starts rather than when that user logs in.
func Open(path string, opts ...Option) (*File, error) {
	f := &File{
		path:     path,
		log:      slog.Default(),
		interval: checkInterval,
		now:      time.Now,
	}
	for _, opt := range opts {
		opt(f)
	}
	// Pay for the default stand-in hash now rather than in the first
	// login.
	if _, err := scheme.DefaultStandIn(); err != nil {
		return nil, err
	}
	if err := f.load(); err != nil {
		return nil, err
	}
	f.checked = f.now()
	return f, nil
}

// Reload reads the file now, if it changed since it was last read. On a
// parse error it keeps serving the last good version and returns the
// error; on a read error it returns an error wrapping auth.ErrUnavailable,
// and logins fail until the file can be read again.
func (f *File) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = f.now()
	f.badID = fileID{} // an explicit reload retries a bad version
	err := f.refresh()
	if errors.Is(err, auth.ErrUnavailable) {
		f.err = err
	} else {
		f.err = nil
	}
	return err
}

// current returns the database to use, after looking for changes if the
// last look is older than the check interval.
func (f *File) current() (*database, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if since := now.Sub(f.checked); since >= f.interval || since < 0 {
		f.checked = now
		f.err = nil
		if err := f.refresh(); errors.Is(err, auth.ErrUnavailable) {
			f.err = err
		} else if err != nil {
			f.log.Warn("passwd-file changed but is invalid; still using the previous version", "err", err)
		}
	}
	return f.db, f.err
}

// refresh reloads the file if its identity changed. It returns an error
// wrapping auth.ErrUnavailable if the file cannot be read, and a parse
// error (leaving the loaded version in place) if it is malformed.
// f.mu must be held.
func (f *File) refresh() error {
	info, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	id := idOf(info)
	if id == f.id || id == f.badID {
		return nil
	}
	return f.load()
}

// load reads and parses the file, replacing the loaded version if it
// parses. f.mu must be held, or f not yet shared.
func (f *File) load() error {
	data, id, err := readFile(f.path)
	if err != nil {
		return fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	db, err := parse(f.path, data)
	if err != nil {
		f.badID = id
		return err
	}
	f.db, f.id, f.badID = db, id, fileID{}
	return nil
}

// readFile reads a file and identifies the version it read. Both come
// from one open file, so a rename between the two cannot mix versions.
func readFile(path string) ([]byte, fileID, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fileID{}, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, fileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	data, err := io.ReadAll(file)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("read %s: %w", path, err)
	}
	return data, idOf(info), nil
}

// fileID tells versions of a file apart without reading it. The inode
// changes on every atomic replacement (as Add and most editors do); size
// and modification time catch writes in place.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// idOf returns the identity of a file from its metadata.
func idOf(info os.FileInfo) fileID {
	id := fileID{size: info.Size(), mtime: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return id
}

// Lookup returns the user called name. It returns false for an unknown or
// invalid name, and also when the file cannot be read: Lookup has no way
// to say "try later", so callers that must tell the two apart should use
// Authenticate.
func (f *File) Lookup(name string) (*auth.User, bool) {
	db, err := f.current()
	if err != nil {
		return nil, false
	}
	r := db.lookup(name)
	if r == nil {
		return nil, false
	}
	return r.user(), true
}
