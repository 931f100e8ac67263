package chaos

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/pop3client"
)

// testMessage is the content of the test message id: a header naming it
// and a body whose length and text follow from the id, so that any copy
// of it can be checked for completeness. Lines end in CRLF, as LMTP
// sends them and RETR returns them. Ids starting with "full-" and "big-"
// have longer bodies.
func testMessage(id string) string {
	if m, ok := messages.Load(id); ok {
		return m.(string)
	}
	m := makeTestMessage(id)
	messages.Store(id, m)
	return m
}

// messages caches test messages: the checks compare thousands of them.
var messages sync.Map

func makeTestMessage(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	lines := int(h.Sum32()%300) + 1 // up to about 10 KiB
	switch {
	case strings.HasPrefix(id, "full-"): // the disk-full test's, up to 40 KiB
		lines *= 4
	case strings.HasPrefix(id, "big-"): // RETR streams, about 256 KiB
		lines += 8000
	}
	var b strings.Builder
	fmt.Fprintf(&b, "X-Test-ID: %s\r\nSubject: chaos test %s\r\n\r\n", id, id)
	for i := range lines {
		fmt.Fprintf(&b, "%s line %d of %d\r\n", id, i, lines)
	}
	return b.String()
}

// state is what the test knows of one message in one maildrop.
type state int

const (
	// sent: the final dot (or a foreign program's write) went out but no
	// acknowledgement came back. The message may be stored or not — no
	// protocol can tell the sender which (RFC 5321 §6.1 accepts the
	// duplicate a retry then makes) — but never twice, never in part.
	sent state = iota + 1
	// acked: acknowledged (LMTP 250, or renamed into new/ by a foreign
	// program): must be there exactly once until deleted.
	acked
	// refused: answered with a failure (LMTP 4xx): must not be there.
	refused
	// deleting: marked with DELE and QUIT sent, its answer unknown (the
	// server was killed): there or gone, both are right.
	deleting
	// deleted: QUIT answered +OK: must be gone for good.
	deleted
	// absent: was sent or deleting, and a check after the crash found
	// it gone: it must never come back.
	absent
)

// record is one message in one maildrop.
type record struct {
	state state
	epoch int    // the ledger's epoch when the state was set
	seq   int64  // the ledger's change count then
	uid   string // the unique id first seen, "" before that
	size  int64  // the size LIST first announced
}

// ledger is the test's knowledge of every message it sent, keyed by user
// and test id. It is safe for concurrent use.
//
// Its epoch counts the server's crashes: a message whose fate was open
// (sent, deleting) when the server was killed has it decided by the first
// look after the restart, and is held to it from then on, while messages
// sent after the restart are still on their way.
type ledger struct {
	mu      sync.Mutex
	records map[[2]string]*record
	byUID   map[[2]string]string // (user, unique id) -> test id
	epoch   int
	seq     int64 // changes so far
}

func newLedger() *ledger {
	return &ledger{records: make(map[[2]string]*record), byUID: make(map[[2]string]string)}
}

// stateOf is the message's state, 0 if unknown.
func (l *ledger) stateOf(user, id string) state {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.records[[2]string{user, id}]; r != nil {
		return r.state
	}
	return 0
}

// idOf is the test id of the message user's maildrop lists under uid, if
// a check has seen it.
func (l *ledger) idOf(user, uid string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := l.byUID[[2]string{user, uid}]
	return id, ok
}

func (l *ledger) set(user, id string, s state) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLocked(user, id, s)
}

func (l *ledger) setLocked(user, id string, s state) {
	r := l.records[[2]string{user, id}]
	if r == nil {
		r = &record{}
		l.records[[2]string{user, id}] = r
	}
	l.seq++
	r.state, r.epoch, r.seq = s, l.epoch, l.seq
}

// mark is the ledger's change count: a view taken after it must agree
// with every state set before it.
func (l *ledger) mark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// advance sets the state unless the message is already further along.
func (l *ledger) advance(user, id string, s state) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.records[[2]string{user, id}]; r == nil || r.state < s {
		l.setLocked(user, id, s)
	}
}

// crashed notes that the server was killed: no message sent before can
// still be on its way.
func (l *ledger) crashed() {
	l.mu.Lock()
	l.epoch++
	l.mu.Unlock()
}

// epochNow is the number of crashes so far.
func (l *ledger) epochNow() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// uidOf is the unique id first seen for the message, or "".
func (l *ledger) uidOf(user, id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.records[[2]string{user, id}]; r != nil {
		return r.uid
	}
	return ""
}

// sent and acked never take a message back: a session may have seen and
// deleted a message before its sender heard the acknowledgement.
func (l *ledger) sent(user, id string)     { l.advance(user, id, sent) }
func (l *ledger) acked(user, id string)    { l.advance(user, id, acked) }
func (l *ledger) refused(user, id string)  { l.set(user, id, refused) }
func (l *ledger) deleting(user, id string) { l.set(user, id, deleting) }
func (l *ledger) deleted(user, id string)  { l.set(user, id, deleted) }

// count is the number of user's messages in state s.
func (l *ledger) count(user string, s state) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for key, r := range l.records {
		if key[0] == user && r.state == s {
			n++
		}
	}
	return n
}

// seen is one message as a POP3 client saw it.
type seen struct {
	number int
	uid    string
	size   int64  // as LIST announced it
	id     string // its X-Test-ID, "" if none could be read
	damage string // why its content is not the test message id, or ""
}

// observe logs in as user, lists the maildrop and retrieves every
// message, then ends the session with QUIT (deleting nothing). A session
// refused because the maildrop is in use is retried for a while.
func observe(ctx context.Context, srv *server, user string) ([]seen, error) {
	return observeKnown(ctx, srv, user, nil, 0)
}

// observeKnown is observe, except that messages listed under a unique id
// the ledger l has seen are taken to be what they were (check compares
// their ids and sizes) and only sample of them, at random, are retrieved
// again; new ones are always retrieved. It keeps the checks of large
// maildrops cheap.
func observeKnown(ctx context.Context, srv *server, user string, l *ledger, sample int) ([]seen, error) {
	var c *pop3client.Client
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err = srv.login(ctx, user); err == nil {
			break
		}
		var perr *pop3.Error
		if !errors.As(err, &perr) || perr.Code != pop3.CodeInUse || time.Now().After(deadline) {
			return nil, fmt.Errorf("log in as %s: %w", user, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer c.Close()
	list, err := c.Messages(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: LIST/UIDL: %w", user, err)
	}
	out := make([]seen, 0, len(list))
	for _, m := range list {
		if l != nil {
			if id, ok := l.idOf(user, m.UID); ok && rand.IntN(len(list)) >= sample {
				out = append(out, seen{number: m.Number, uid: m.UID, size: m.Size, id: id})
				continue
			}
		}
		s, err := retrieve(ctx, c, m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", user, err)
		}
		out = append(out, s)
	}
	if err := c.Quit(ctx); err != nil {
		return nil, fmt.Errorf("%s: QUIT: %w", user, err)
	}
	return out, nil
}

// retrieve reads message m with RETR and says what it is.
func retrieve(ctx context.Context, c *pop3client.Client, m pop3client.MessageInfo) (seen, error) {
	s := seen{number: m.Number, uid: m.UID, size: m.Size}
	r, err := c.Retr(ctx, m.Number)
	if err != nil {
		return s, fmt.Errorf("RETR %d: %w", m.Number, err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return s, fmt.Errorf("RETR %d: %w", m.Number, err)
	}
	s.id, s.damage = identify(string(data))
	if s.damage == "" && int64(len(data)) != m.Size {
		s.damage = fmt.Sprintf("RETR sent %d octets, LIST announced %d", len(data), m.Size)
	}
	return s, nil
}

// identify finds the test id of a retrieved message and checks that the
// message, less the trace fields delivery prepends, is exactly the test
// message of that id.
func identify(msg string) (id, damage string) {
	rest := skipTrace(msg)
	first, _, _ := strings.Cut(rest, "\r\n")
	id, ok := strings.CutPrefix(first, "X-Test-ID: ")
	if !ok {
		return "", fmt.Sprintf("no X-Test-ID in %.60q", rest)
	}
	if want := testMessage(id); rest != want {
		return id, fmt.Sprintf("content is %d octets, want %d", len(rest), len(want))
	}
	return id, ""
}

// skipTrace drops the trace fields at the top of a message (Return-Path,
// Delivered-To, Received, with continuation lines) that delivery adds.
func skipTrace(msg string) string {
	inTrace := false
	for {
		line, after, ok := strings.Cut(msg, "\r\n")
		if !ok {
			return msg
		}
		switch {
		case strings.HasPrefix(line, "Return-Path:"), strings.HasPrefix(line, "Delivered-To:"), strings.HasPrefix(line, "Received:"):
			inTrace = true
		case inTrace && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
		default:
			return msg
		}
		msg = after
	}
}

// check compares what a client saw of user's maildrop with the ledger
// and returns every broken promise. Messages whose fate was open (sent,
// deleting) before the last crash are settled as found, so that a later
// check holds them to it. It also remembers each message's unique id and
// reports any change. The view must have been taken after the last
// restart.
func (l *ledger) check(user string, view []seen) []string {
	problems, _ := l.checkSince(user, view, -1, math.MaxInt64)
	return problems
}

// checkSince is check for a view taken while traffic goes on: the view
// was begun (its session logged in) at the ledger's mark and epoch.
// Messages whose state changed since the mark are in flux and not held
// to it; and if the server crashed since (the view may predate writes the
// dead server made), it checks nothing and reports false. An epoch of -1
// checks in any case.
func (l *ledger) checkSince(user string, view []seen, epoch int, mark int64) ([]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if epoch >= 0 && epoch != l.epoch {
		return nil, false
	}
	var problems []string
	report := func(format string, args ...any) {
		problems = append(problems, user+": "+fmt.Sprintf(format, args...))
	}
	present := map[string]bool{}
	byUID := map[string]string{}
	for _, s := range view {
		if s.damage != "" {
			report("message %d (%q) is damaged or partial: %s", s.number, s.id, s.damage)
		}
		if s.id == "" {
			continue
		}
		if present[s.id] {
			report("message %q is there twice", s.id)
		}
		present[s.id] = true
		if other, dup := byUID[s.uid]; dup {
			report("unique id %q is given to %q and %q", s.uid, other, s.id)
		}
		byUID[s.uid] = s.id
		r := l.records[[2]string{user, s.id}]
		if r == nil {
			report("message %q is there but was never sent", s.id)
			continue
		}
		if r.seq > mark {
			// Changed since the view began: only its id is checked.
			if p := l.noteLocked(user, s, r); p != "" {
				report("%s", p)
			}
			continue
		}
		switch r.state {
		case refused:
			report("message %q is there though its delivery was refused", s.id)
		case deleted:
			report("message %q is there though its deletion was confirmed", s.id)
		case absent:
			report("message %q came back after it was gone", s.id)
		}
		if p := l.noteLocked(user, s, r); p != "" {
			report("%s", p)
		}
		if (r.state == sent || r.state == deleting) && r.epoch < l.epoch {
			r.state = acked
		}
	}
	var missing []string
	for key, r := range l.records {
		if key[0] != user || present[key[1]] || r.seq > mark {
			continue
		}
		switch r.state {
		case acked:
			what := key[1]
			if r.uid != "" {
				what += fmt.Sprintf(" (unique id %s)", r.uid)
			}
			missing = append(missing, what)
		case sent, deleting:
			if r.epoch < l.epoch {
				r.state = absent
			}
		}
	}
	sort.Strings(missing)
	for _, id := range missing {
		report("message %s was acknowledged (and not deleted) but is missing", id)
	}
	return problems, true
}

// note remembers the unique id and size a session listed for a message
// and describes how they differ from what was listed before, if they do.
func (l *ledger) note(user string, s seen) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.records[[2]string{user, s.id}]
	if r == nil {
		return fmt.Sprintf("%s: message %q is there but was never sent", user, s.id)
	}
	if p := l.noteLocked(user, s, r); p != "" {
		return user + ": " + p
	}
	return ""
}

func (l *ledger) noteLocked(user string, s seen, r *record) string {
	if other, ok := l.byUID[[2]string{user, s.uid}]; ok && other != s.id {
		return fmt.Sprintf("unique id %q was %q's and is now %q's", s.uid, other, s.id)
	}
	switch {
	case r.uid == "":
		r.uid, r.size = s.uid, s.size
		l.byUID[[2]string{user, s.uid}] = s.id
	case r.uid != s.uid:
		return fmt.Sprintf("message %q changed its unique id from %q to %q", s.id, r.uid, s.uid)
	case r.size != s.size:
		return fmt.Sprintf("message %q changed its size from %d to %d", s.id, r.size, s.size)
	}
	return ""
}

// diskProblems looks at user's Maildir after the restarted server has
// opened it: tmp/ must be empty (crashed deliveries' files removed), and
// new/ and cur/ must hold exactly the listed messages — no stray file the
// server skipped, such as half a message.
func diskProblems(s *site, user string, listed int) []string {
	var problems []string
	files := 0
	for _, sub := range []string{"new", "cur", "tmp"} {
		entries, err := os.ReadDir(filepath.Join(s.maildir(user), sub))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", user, err))
			continue
		}
		if sub == "tmp" {
			for _, e := range entries {
				problems = append(problems, fmt.Sprintf("%s: tmp/%s left behind", user, e.Name()))
			}
			continue
		}
		files += len(entries)
	}
	if files != listed {
		problems = append(problems, fmt.Sprintf("%s: %d files in new/ and cur/, %d messages listed", user, files, listed))
	}
	return problems
}

// ageTmp makes the files in tmp/ look a few minutes old, as they are when
// a server is restarted minutes after a crash: the store removes a crashed
// writer's file only after a minute's grace (store/maildir tmpGrace).
func ageTmp(s *site, user string) (int, error) {
	dir := filepath.Join(s.maildir(user), "tmp")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // a maildrop not made yet
	}
	if err != nil {
		return 0, err
	}
	then := time.Now().Add(-5 * time.Minute)
	for _, e := range entries {
		if err := os.Chtimes(filepath.Join(dir, e.Name()), then, then); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	return len(entries), nil
}
