// Package maildir stores POP3 maildrops in Maildir directories, the format
// that Postfix (home_mailbox = Maildir/), procmail, Exim and Dovecot write
// and read, so postoffice can serve mail those programs deliver and they
// can read what postoffice delivers.
//
// A maildrop is a directory with new/, cur/ and tmp/ subdirectories, one
// file per message. Next to them this package keeps files of its own: an
// index ("postoffice-index", a small text file, see index.go for the
// format) that holds each message's permanent unique id, CRLF size,
// arrival and first retrieval time, so that a login reads no message
// bodies; the session lock ("postoffice-pop3.lock", an flock held for the
// session with a lease record for hosts it does not reach, see lock.go);
// and the index lock ("postoffice-index.lock", an flock held for
// milliseconds).
//
// Unique ids have the layout of Dovecot's default pop3_uidl_format
// (%08Xu%08Xv: the message's uid and the maildrop's UIDVALIDITY in 8 hex
// digits each), in upper-case hex where Dovecot writes lower case, unless
// a message came with an id of its own: one kept from another server by an
// import or a takeover (Config.Legacy), which the index stores as it is
// and never changes.
//
// Other programs may deliver, move (new/ to cur/), re-flag or delete
// messages at any time, also during a POP3 session: a message is known by
// its base name, which those operations keep, and a session's snapshot
// stays valid whatever happens to the files.
//
// Delivery (Store.Deliver) writes the file the Maildir way and gives the
// message its unique id at once, by appending its record to the index
// under a short index lock ("postoffice-index.lock", see indexlock.go)
// that Open and Commit also take for their read-modify-write of the index.
// It never takes the session lock, so it never waits for a POP3 session;
// a session keeps its snapshot and, at QUIT, merges its changes into the
// index as it is then. Messages other programs deliver get their ids at
// the next Open, in order of arrival.
package maildir

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
)

// Config configures a Store.
type Config struct {
	// Location is where a user's maildrop is: an absolute path template
	// with the placeholders {user} (the login name), {localpart} and
	// {domain} (the name split at its last '@'; {domain} is empty if there
	// is none) and {home} (the account's home directory, only at the
	// start; "~" means the same). Dovecot's %u, %n, %d, %h and %% may be
	// used as well. Empty means DefaultLocation, "{home}/Maildir". A
	// Dovecot mail_location such as "maildir:~/Maildir:LAYOUT=fs" is
	// accepted; its options are ignored, except that a Dovecot takeover
	// (Legacy) reads dovecot-uidlist from the CONTROL= directory when
	// there is one.
	//
	// A path segment that a placeholder leaves empty, "." or ".." is
	// refused (so "/var/vmail/{domain}/{localpart}" refuses users without
	// a domain), as is a substituted value with '/', '' or NUL.
	//
	// An account's own Mail field (store.Account.Mail), when set, replaces
	// the template for that account, with the same syntax.
	Location string
	// LockLease is how long a session lock lasts without renewal before
	// a session on another host may take it over; zero means
	// DefaultLockLease. The holder renews it every LockLease/3.
	LockLease time.Duration
	// Logger receives lock takeovers, skipped files and similar events;
	// nil discards them.
	Logger *slog.Logger
	// Hostname names this host in delivered file names and in lock files
	// (where it decides whether the holder's pid can be checked). Empty
	// means os.Hostname.
	Hostname string
	// SnapshotCacheMessages bounds the snapshot cache (see snapcache.go):
	// the total number of messages of the maildrops whose last snapshot
	// is kept in memory, so that a login finds them without reading the
	// index or listing the directories. Zero means DefaultSnapshotCache;
	// a negative value turns the cache off.
	SnapshotCacheMessages int
	// Legacy names another POP3 server that served these maildrops
	// before, whose unique ids (and message order) a maildrop keeps when
	// this store first indexes it (see takeover.go and package legacy):
	// no leave-on-server client downloads anything again after the
	// switch. The zero value takes over nothing.
	Legacy legacy.Config
}

// Store is the Maildir store. It implements store.Store and
// store.Deliverer and is safe for concurrent use.
type Store struct {
	location  *location
	lockLease time.Duration
	logger    *slog.Logger
	hostname  string
	legacy    legacy.Config
	// locationTemplate is Config.Location as given, for its Dovecot
	// options; controlDirs maps maildrop directories to their Dovecot
	// control directories (see takeover.go).
	locationTemplate string
	controlDirs      sync.Map

	// faultHook, set only by tests, makes the named step of a delivery
	// or an index update fail (see fault).
	faultHook func(step string) error
	usage     usageCache
	snapshots snapshotCache
	tmpClean  tmpCleaner
	observer  observerSlot
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Deliverer = (*Store)(nil)
)

// New returns a Store for cfg, or an error if the location template is
// invalid (not absolute, unknown placeholder, unsupported format).
func New(cfg Config) (*Store, error) {
	tmpl := cfg.Location
	if tmpl == "" {
		tmpl = DefaultLocation
	}
	tmpl, err := translateDovecot(tmpl)
	if err != nil {
		return nil, fmt.Errorf("maildir store: location: %w", err)
	}
	loc, err := parseLocation(tmpl)
	if err != nil {
		return nil, fmt.Errorf("maildir store: %w", err)
	}
	if err := cfg.Legacy.Validate(); err != nil {
		return nil, fmt.Errorf("maildir store: %w", err)
	}
	s := &Store{location: loc, lockLease: cfg.LockLease, logger: cfg.Logger, hostname: cfg.Hostname, legacy: cfg.Legacy,
		locationTemplate: cfg.Location}
	if s.locationTemplate == "" {
		s.locationTemplate = DefaultLocation
	}
	switch {
	case cfg.SnapshotCacheMessages == 0:
		s.snapshots.limit = DefaultSnapshotCache
	case cfg.SnapshotCacheMessages > 0:
		s.snapshots.limit = cfg.SnapshotCacheMessages
	}
	if s.lockLease == 0 {
		s.lockLease = DefaultLockLease
	}
	if s.lockLease < 0 {
		return nil, errors.New("maildir store: negative lock lease")
	}
	if s.logger == nil {
		s.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.hostname == "" {
		if s.hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("maildir store: %w", err)
		}
	}
	// The host name goes into one-line fields of the lock file.
	if s.hostname == "" || strings.ContainsAny(s.hostname, " \t\r\n\x00") {
		return nil, fmt.Errorf("maildir store: unusable host name %q", s.hostname)
	}
	return s, nil
}

// fault returns the error a test injected for step, or nil.
func (s *Store) fault(step string) error {
	if s.faultHook == nil {
		return nil
	}
	return s.faultHook(step)
}

// Maildir subdirectories (http://cr.yp.to/proto/maildir.html).
const (
	dirNew = "new"
	dirCur = "cur"
	dirTmp = "tmp"
)

// openMaildir opens the maildrop directory, creating it and its
// subdirectories (mode 0700: mail is private) if needed, as Dovecot does on
// first use. All later file access goes through the returned os.Root, so
// no file name from a directory listing or a symbolic link in the maildir
// can reach outside it (design invariant 7).
func openMaildir(dir string) (*os.Root, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create maildir: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open maildir: %w", err)
	}
	for _, sub := range []string{dirNew, dirCur, dirTmp} {
		if err := root.Mkdir(sub, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			root.Close()
			return nil, fmt.Errorf("create maildir: %w", err)
		}
	}
	return root, nil
}
