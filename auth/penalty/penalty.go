// Package penalty slows down password guessing, in the spirit of
// Dovecot's auth penalty: each failed login makes the next attempts from
// the same client address, and for the same user name, wait longer before
// they are answered.
//
// The server asks Delay before it checks the credentials of an attempt and
// waits that long, then reports the outcome with Failure or Success.
// Waiting before the check rather than after a failure means a right guess
// is not answered sooner than a wrong one, so a guesser gains nothing by
// hanging up early and trying again on a new connection.
//
// Rules:
//
//   - Failures are counted under two keys, separately: the client address
//     (an IPv4 address, or the /64 an IPv6 address is in, since one
//     client usually has a whole /64) and the user name (case-folded).
//     The delay is the larger of the two, so neither one address trying
//     many users nor many addresses trying one user goes fast.
//   - After n failures the delay is Base·2^(n-1), capped at Max: with the
//     defaults 0 before any failure, then 2, 4, 8 and 15 seconds.
//   - Repeating a wrong password already counted for that user (a mail
//     client polling with an outdated password) does not count again: the
//     last few failed passwords of each key are remembered as short
//     HMAC-SHA-256 values under a key made at random for each process.
//     Passwords themselves are never stored.
//   - Failures are forgotten Window after the last one.
//   - A success clears its user name's failures. It clears the address's
//     failures only when every failure remembered for that address was for
//     that same user (someone who mistyped their own password): an
//     attacker who owns one account cannot wipe the penalty of the address
//     they guess other users' passwords from by logging in between
//     guesses.
//   - Trusted networks are neither counted nor delayed.
//   - At most MaxTracked keys are remembered; when full, the key whose last
//     failure is oldest is forgotten. Each key takes about 250 bytes, so
//     the default of 100000 bounds the memory at about 25 MB. User names
//     are remembered as keyed digests too, so a long name costs no more
//     than a short one.
//
// A Tracker is safe for concurrent use.
package penalty

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults, as in Dovecot (2, 4, 8, 15 seconds) but with a longer memory:
// Dovecot forgets after the delays have run, which lets a patient guesser
// go on at one try every 30 seconds.
const (
	DefaultBase       = 2 * time.Second
	DefaultMax        = 15 * time.Second
	DefaultWindow     = 15 * time.Minute
	DefaultMaxTracked = 100000
)

// Config configures a Tracker.
type Config struct {
	// Base is the delay after the first failure. 0 disables the
	// tracker: Delay is always 0 and nothing is remembered.
	Base time.Duration
	// Max caps the delay; a Max below Base is taken as Base.
	Max time.Duration
	// Window is how long failures are remembered after the last one;
	// 0 means DefaultWindow.
	Window time.Duration
	// Trusted lists the networks that are never delayed nor counted.
	Trusted []netip.Prefix
	// MaxTracked bounds the number of keys remembered; 0 means
	// DefaultMaxTracked.
	MaxTracked int
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// DefaultConfig returns the defaults, with no trusted networks.
func DefaultConfig() Config {
	return Config{Base: DefaultBase, Max: DefaultMax, Window: DefaultWindow, MaxTracked: DefaultMaxTracked}
}

// Sizes of what each key remembers.
const (
	// rememberedPasswords is how many distinct wrong passwords a key
	// remembers: enough for a client that alternates between a couple
	// of old passwords, few enough to keep entries small.
	rememberedPasswords = 8
	// rememberedUsers is how many user names an address entry keeps to
	// decide whether a success may clear it; past that it never does.
	rememberedUsers = 4
	// maxCount caps the failure count; the delay reaches Max long
	// before.
	maxCount = 64
)

// kind tells the two key spaces apart.
type kind byte

const (
	addressKey kind = 'a'
	userKey    kind = 'u'
)

// label is the kind's prefix in the digests of its keys.
func (k kind) label() string {
	if k == addressKey {
		return "a"
	}
	return "u"
}

// key identifies an entry: a keyed digest of the address prefix or user
// name, so that every key has the same small size.
type key struct {
	kind kind
	sum  [16]byte
}

// entry is what the tracker remembers about one key. Entries form a list
// ordered by last failure, newest first, for expiry and eviction.
type entry struct {
	key      key
	failures int
	last     time.Time
	// passwords are digests of the wrong (user, password) pairs counted,
	// newest at passwords[next-1], a ring of rememberedPasswords.
	passwords [rememberedPasswords]uint64
	next      int
	// users are digests of the user names that failed from an address;
	// manyUsers is set once there were more than rememberedUsers.
	users     []uint64
	manyUsers bool

	newer, older *entry
}

// Tracker counts failed logins and says how long to delay the next ones.
type Tracker struct {
	base, max, window time.Duration
	trusted           []netip.Prefix
	maxTracked        int
	now               func() time.Time
	// macs holds HMAC-SHA-256 states keyed with a secret made at
	// random for each tracker; pooled, since keying one costs more
	// than using it.
	macs sync.Pool

	mu      sync.Mutex
	entries map[key]*entry
	newest  *entry
	oldest  *entry
}

// New returns a Tracker for cfg.
func New(cfg Config) *Tracker {
	t := &Tracker{
		base:       max(cfg.Base, 0),
		max:        max(cfg.Max, cfg.Base),
		window:     cfg.Window,
		trusted:    slices.Clone(cfg.Trusted),
		maxTracked: cfg.MaxTracked,
		now:        cfg.Now,
		entries:    map[key]*entry{},
	}
	if t.window <= 0 {
		t.window = DefaultWindow
	}
	if t.maxTracked <= 0 {
		t.maxTracked = DefaultMaxTracked
	}
	// One attempt adds two keys; a smaller bound would evict the
	// address's key to make room for the user name's.
	t.maxTracked = max(t.maxTracked, 2)
	if t.now == nil {
		t.now = time.Now
	}
	for i, p := range t.trusted {
		t.trusted[i] = p.Masked()
	}
	secret := make([]byte, 32)
	// crypto/rand.Read never fails (it panics rather than return bad
	// randomness).
	rand.Read(secret)
	t.macs.New = func() any { return hmac.New(sha256.New, secret) }
	return t
}

// IsTrusted reports whether remote is in a trusted network.
func (t *Tracker) IsTrusted(remote netip.Addr) bool {
	remote = remote.Unmap().WithZone("")
	for _, p := range t.trusted {
		if p.Contains(remote) {
			return true
		}
	}
	return false
}

// Delay returns how long to wait before checking the credentials of a
// login attempt by username from remote: 0 unless that address or that
// user name failed recently. It never exceeds the configured maximum.
// An invalid remote (a connection that has no IP address) is judged by
// the user name alone.
func (t *Tracker) Delay(remote netip.Addr, username string) time.Duration {
	if t.base == 0 || t.IsTrusted(remote) {
		return 0
	}
	keys := t.keys(remote, username)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	count := 0
	for _, k := range keys {
		if e := t.entries[k]; e != nil && !t.expired(e, now) {
			count = max(count, e.failures)
		}
	}
	return t.delayFor(count)
}

// delayFor returns the delay after count failures.
func (t *Tracker) delayFor(count int) time.Duration {
	if count <= 0 {
		return 0
	}
	d := t.base
	for i := 1; i < count && d < t.max; i++ {
		if d > t.max/2 {
			d = t.max
			break
		}
		d *= 2
	}
	return min(d, t.max)
}

// Failure records a failed login by username from remote. password is
// the wrong password tried, used only to recognise a repetition; pass ""
// when the mechanism has no reusable password (a SCRAM proof, a token),
// and every failure counts.
func (t *Tracker) Failure(remote netip.Addr, username, password string) {
	if t.base == 0 || t.IsTrusted(remote) {
		return
	}
	keys := t.keys(remote, username)
	var pw uint64
	if password != "" {
		pw = t.digest64("p", strings.ToLower(username), password)
	}
	user := t.digest64("n", strings.ToLower(username), "")

	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.expireOld(now)
	for _, k := range keys {
		e := t.entries[k]
		if e != nil && t.expired(e, now) {
			t.remove(e)
			e = nil
		}
		if e == nil {
			e = t.add(k)
		}
		if pw == 0 || !slices.Contains(e.passwords[:], pw) {
			e.failures = min(e.failures+1, maxCount)
			if pw != 0 {
				e.passwords[e.next] = pw
				e.next = (e.next + 1) % rememberedPasswords
			}
		}
		if k.kind == addressKey && !e.manyUsers && !slices.Contains(e.users, user) {
			if len(e.users) == rememberedUsers {
				e.manyUsers, e.users = true, nil
			} else {
				e.users = append(e.users, user)
			}
		}
		e.last = now
		t.touch(e)
	}
}

// Success records a successful login by username from remote. It clears
// the user name's failures, and the address's if all of them were for
// this user.
func (t *Tracker) Success(remote netip.Addr, username string) {
	if t.base == 0 || t.IsTrusted(remote) {
		return
	}
	keys := t.keys(remote, username)
	user := t.digest64("n", strings.ToLower(username), "")
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		e := t.entries[k]
		if e == nil {
			continue
		}
		if k.kind == userKey || !e.manyUsers && len(e.users) == 1 && e.users[0] == user {
			t.remove(e)
		}
	}
}

// Len returns the number of keys remembered, expired ones included until
// they are cleaned up.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// keys returns the keys of an attempt: the address's, if there is one,
// then the user name's.
func (t *Tracker) keys(remote netip.Addr, username string) []key {
	keys := make([]key, 0, 2)
	if remote.IsValid() {
		keys = append(keys, t.addressKey(remote))
	}
	return append(keys, t.entryKey(userKey, strings.ToLower(username)))
}

// addressKey groups IPv6 addresses by /64: one subscriber or server
// usually has a whole /64, and counting its 2^64 addresses apart would
// make the penalty useless.
func (t *Tracker) addressKey(remote netip.Addr) key {
	remote = remote.Unmap().WithZone("")
	bits := 32
	if remote.Is6() {
		bits = 64
	}
	p, _ := remote.Prefix(bits) // bits fits the address family
	return t.entryKey(addressKey, p.String())
}

// mac returns HMAC-SHA-256 of parts under the tracker's secret, in sum.
func (t *Tracker) mac(sum *[sha256.Size]byte, parts ...string) {
	mac := t.macs.Get().(hash.Hash)
	mac.Reset()
	for _, p := range parts {
		io.WriteString(mac, p)
	}
	mac.Sum(sum[:0])
	t.macs.Put(mac)
}

// entryKey digests a key's text under the tracker's secret.
func (t *Tracker) entryKey(k kind, text string) key {
	var sum [sha256.Size]byte
	t.mac(&sum, k.label(), text)
	out := key{kind: k}
	copy(out.sum[:], sum[:])
	return out
}

// digest64 returns 64 bits of HMAC-SHA-256 over a labelled pair of
// strings, never 0 (0 means "no password"). A collision merely makes one
// failure not count.
func (t *Tracker) digest64(label, a, b string) uint64 {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(a)))
	var sum [sha256.Size]byte
	// The length keeps ("ab", "c") apart from ("a", "bc").
	t.mac(&sum, label, string(n[:]), a, b)
	return max(binary.BigEndian.Uint64(sum[:]), 1)
}

// expired reports whether e's failures are too old to count.
func (t *Tracker) expired(e *entry, now time.Time) bool {
	return now.Sub(e.last) >= t.window
}

// expireOld drops expired entries from the old end of the list. Entries
// are in order of last failure, so it stops at the first live one. A
// clock that goes backwards only delays the clean-up.
func (t *Tracker) expireOld(now time.Time) {
	for t.oldest != nil && t.expired(t.oldest, now) {
		t.remove(t.oldest)
	}
}

// add creates an entry for k, forgetting the oldest entry if the tracker
// is full. t.mu must be held.
func (t *Tracker) add(k key) *entry {
	if len(t.entries) >= t.maxTracked && t.oldest != nil {
		t.remove(t.oldest)
	}
	e := &entry{key: k}
	t.entries[k] = e
	t.pushNewest(e)
	return e
}

// touch moves e to the newest end of the list. t.mu must be held.
func (t *Tracker) touch(e *entry) {
	if t.newest == e {
		return
	}
	t.unlink(e)
	t.pushNewest(e)
}

// remove forgets e. t.mu must be held.
func (t *Tracker) remove(e *entry) {
	t.unlink(e)
	delete(t.entries, e.key)
}

func (t *Tracker) pushNewest(e *entry) {
	e.older, e.newer = t.newest, nil
	if t.newest != nil {
		t.newest.newer = e
	}
	t.newest = e
	if t.oldest == nil {
		t.oldest = e
	}
}

func (t *Tracker) unlink(e *entry) {
	if e.newer != nil {
		e.newer.older = e.older
	} else if t.newest == e {
		t.newest = e.older
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else if t.oldest == e {
		t.oldest = e.newer
	}
	e.newer, e.older = nil, nil
}
