package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashDuringQuit kills the server while a QUIT applies 1,000
// deletions out of 1,500 messages — part-way through the unlinks, after
// the last unlink, and at a random moment — and after each restart checks
// that no unmarked message was removed, each marked one is either there
// whole or gone, nothing is doubled, and every survivor keeps its unique
// id. A last QUIT, not killed, must remove exactly what it marked.
func TestCrashDuringQuit(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	srv := startServer(t, s, serverOptions{})
	for _, p := range crashQuit(t, s, srv, 3, 1500, 1000) {
		t.Error(p)
	}
}

// crashQuit is TestCrashDuringQuit's scenario with rounds kills, each
// during a QUIT that deletes marks of total messages.
func crashQuit(t *testing.T, s *site, srv *server, rounds, total, marks int) []string {
	l := newLedger()
	var problems []string
	foreign := &foreignMDA{site: s, ledger: l}
	for round := 0; round <= rounds; round++ {
		// Top up to total messages, as another program would deliver them.
		view, err := observeKnown(t.Context(), srv, "alice", l, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(view); i < total; i++ {
			foreign.deliver(t, "alice", fmt.Sprintf("q%d-%d", round, i))
		}
		if view, err = observeKnown(t.Context(), srv, "alice", l, 20); err != nil {
			t.Fatal(err)
		}
		problems = append(problems, l.check("alice", view)...)
		marks := marks
		if round == rounds {
			marks /= 10 // the last QUIT runs to its end
		}
		// The session's own listing (the maildrop may have changed
		// since the look above, if the server is broken).
		p := dialPOP3(t, srv, "alice")
		view = p.uidl(l, "alice")
		if len(view) < marks {
			problems = append(problems, fmt.Sprintf("alice: %d messages listed, want at least %d", len(view), marks))
			p.close()
			return problems
		}
		numbers := rand.Perm(len(view))[:marks]
		var b strings.Builder
		for _, i := range numbers {
			fmt.Fprintf(&b, "DELE %d\r\n", view[i].number)
		}
		p.send(b.String())
		for _, i := range numbers {
			if line := p.line(); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("DELE %d: %q", view[i].number, line)
			}
			l.deleting("alice", view[i].id)
		}
		// The store unlinks in message order: the file of the k-th
		// marked message going away means k unlinks are done.
		slices.Sort(numbers)
		markedFile := func(k int) string {
			name, _ := foreign.names.Load([2]string{"alice", view[numbers[k]].id})
			return filepath.Join(s.maildir("alice"), "new", name.(string))
		}
		before := messageFiles(t, s, "alice")
		quitAnswer := make(chan string, 1)
		go func() { quitAnswer <- p.lineOrError() }()
		p.send("QUIT\r\n")
		started := time.Now()
		answer := ""
		if round < rounds {
			// Where to kill: in the middle of the unlinks, after all of
			// them (before or while the index is written), or at a
			// random moment.
			switch round % 3 {
			case 0:
				waitGone(markedFile(rand.IntN(marks-1)), quitAnswer)
			case 1:
				waitGone(markedFile(marks-1), quitAnswer)
			case 2:
				time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond)
			}
			pid := srv.pid()
			srv.kill(t)
			l.crashed()
			select {
			case answer = <-quitAnswer:
			case <-time.After(5 * time.Second):
			}
			t.Logf("round %d: killed %v after QUIT, %d of %d marked files unlinked; QUIT answer %q", round, time.Since(started), before-messageFiles(t, s, "alice"), marks, answer)
			p.close()
			if strings.HasPrefix(answer, "+OK") {
				for _, i := range numbers {
					l.deleted("alice", view[i].id)
				}
			}
			problems = append(problems, restartAndCheck(t, s, srv, l, pid)...)
			continue
		}
		if answer = <-quitAnswer; !strings.HasPrefix(answer, "+OK") {
			t.Fatalf("QUIT: %q", answer)
		}
		p.close()
		for _, i := range numbers {
			l.deleted("alice", view[i].id)
		}
		view, err = observeKnown(t.Context(), srv, "alice", l, 20)
		if err != nil {
			t.Fatal(err)
		}
		problems = append(problems, l.check("alice", view)...)
		problems = append(problems, diskProblems(s, "alice", len(view))...)
	}
	return problems
}

// TestCrashDuringRetr kills the server while two sessions stream RETR of
// large messages (and have messages marked deleted, without QUIT). Every
// message a client received in full, up to its terminating dot, must be
// whole; after the restart the crashed sessions' locks are taken over at
// once, nothing was deleted, and every unique id is unchanged.
func TestCrashDuringRetr(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	srv := startServer(t, s, serverOptions{})
	for _, p := range crashRetr(t, s, srv) {
		t.Error(p)
	}
}

// crashRetr is TestCrashDuringRetr's scenario.
func crashRetr(t *testing.T, s *site, srv *server) []string {
	l := newLedger()
	foreign := &foreignMDA{site: s, ledger: l}
	var problems []string
	for _, u := range users {
		for i := range 30 {
			id := fmt.Sprintf("r%d", i)
			if i%3 == 0 {
				id = fmt.Sprintf("big-%d", i) // about 256 KiB
			}
			foreign.deliver(t, u, id)
		}
		view, err := observe(t.Context(), srv, u)
		if err != nil {
			t.Fatal(err)
		}
		problems = append(problems, l.check(u, view)...)
	}
	var received atomic.Int64
	streamProblems := make(chan []string, len(users))
	for _, u := range users {
		p := dialPOP3(t, srv, u)
		// Marks that a crash must not apply.
		p.send("DELE 2\r\nDELE 3\r\n")
		p.line()
		p.line()
		var b strings.Builder
		for n := 1; n <= 30; n++ {
			if n != 2 && n != 3 {
				fmt.Fprintf(&b, "RETR %d\r\n", n)
			}
		}
		p.send(b.String())
		go func() {
			defer p.close()
			streamProblems <- p.readMessages(u, &received)
		}()
	}
	// Kill in the middle of the streams: after about a third of them.
	for deadline := time.Now().Add(20 * time.Second); received.Load() < 2<<20 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	pid := srv.pid()
	srv.kill(t)
	l.crashed()
	for range users {
		problems = append(problems, <-streamProblems...)
	}
	t.Logf("killed after %d octets of RETR streams", received.Load())
	return append(problems, restartAndCheck(t, s, srv, l, pid)...)
}

// pop3Conn is a raw POP3 connection, for the crash tests, which must
// control exactly what is sent when.
type pop3Conn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

// dialPOP3 logs in as user.
func dialPOP3(t *testing.T, srv *server, user string) *pop3Conn {
	t.Helper()
	p, err := tryDialPOP3(srv, user)
	if err != nil {
		t.Fatal(err)
	}
	p.t = t
	return p
}

// tryDialPOP3 logs in as user; the connection it returns may only be
// closed until its t is set.
func tryDialPOP3(srv *server, user string) (*pop3Conn, error) {
	nc, err := net.DialTimeout("tcp", srv.pop3, 5*time.Second)
	if err != nil {
		return nil, err
	}
	p := &pop3Conn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10)}
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(nc, "USER %s\r\nPASS %s\r\n", user, password)
	for _, what := range []string{"greeting", "USER", "PASS"} {
		line, err := p.r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "+OK") {
			nc.Close()
			return nil, fmt.Errorf("%s %s: %q %v", what, user, line, err)
		}
	}
	return p, nil
}

func (p *pop3Conn) send(s string) {
	if _, err := p.nc.Write([]byte(s)); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// line reads one line, failing the test on an error.
func (p *pop3Conn) line() string {
	line, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(line, "\r\n")
}

// uidl lists the session's messages with UIDL, in number order, with
// the test ids the ledger knows for their unique ids.
func (p *pop3Conn) uidl(l *ledger, user string) []seen {
	p.send("UIDL\r\n")
	if line := p.line(); !strings.HasPrefix(line, "+OK") {
		p.t.Fatalf("UIDL: %q", line)
	}
	var list []seen
	for {
		line := p.line()
		if line == "." {
			return list
		}
		var sn seen
		if _, err := fmt.Sscanf(line, "%d %s", &sn.number, &sn.uid); err != nil {
			p.t.Fatalf("UIDL line %q: %v", line, err)
		}
		sn.id, _ = l.idOf(user, sn.uid)
		list = append(list, sn)
	}
}

// lineOrError reads one line, or returns the error's text.
func (p *pop3Conn) lineOrError() string {
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimRight(line, "\r\n")
}

func (p *pop3Conn) close() { p.nc.Close() }

// readMessages reads RETR replies until the connection ends, counting
// octets into received, and returns a problem for every message that
// ended with its terminating dot but is not whole. It must not call
// t.Fatal: it runs on its own goroutine.
func (p *pop3Conn) readMessages(user string, received *atomic.Int64) []string {
	var problems []string
	for {
		status, err := p.r.ReadString('\n')
		if err != nil {
			return problems
		}
		if !strings.HasPrefix(status, "+OK") {
			return append(problems, fmt.Sprintf("%s: RETR answered %q", user, status))
		}
		var b strings.Builder
		for {
			line, err := p.r.ReadString('\n')
			if err != nil {
				return problems // cut off mid-message: no dot, no claim
			}
			received.Add(int64(len(line)))
			if line == ".\r\n" {
				break
			}
			b.WriteString(strings.TrimPrefix(line, "."))
		}
		if id, damage := identify(b.String()); damage != "" {
			problems = append(problems, fmt.Sprintf("%s: RETR ended message %q with its dot, but it is not whole: %s", user, id, damage))
		}
	}
}

// foreignMDA delivers as another program (procmail, Dovecot's LDA)
// would: the message, with LF line ends, written into tmp/ and renamed
// into new/.
type foreignMDA struct {
	site   *site
	ledger *ledger
	n      atomic.Int64
	names  sync.Map // (user, test id) -> file name in new/
}

func (f *foreignMDA) deliver(t *testing.T, user, id string) {
	t.Helper()
	if err := f.tryDeliver(user, id); err != nil {
		t.Fatal(err)
	}
}

func (f *foreignMDA) tryDeliver(user, id string) error {
	dir := f.site.maildir(user)
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	n := f.n.Add(1)
	name := fmt.Sprintf("%d.F%dR%d.foreign.example", time.Now().Unix(), n, rand.IntN(1e6))
	content := strings.ReplaceAll(testMessage(id), "\r\n", "\n")
	if n%2 == 0 {
		// Dovecot's LDA names the sizes, which spares the reader
		// from reading the message; procmail does not.
		name += fmt.Sprintf(",S=%d,W=%d", len(content), len(testMessage(id)))
	}
	tmp := filepath.Join(dir, "tmp", name)
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	f.names.Store([2]string{user, id}, name)
	f.ledger.sent(user, id)
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		return err
	}
	f.ledger.acked(user, id)
	return nil
}

// messageFiles counts the files in new/ and cur/.
func messageFiles(t *testing.T, s *site, user string) int {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		d, err := os.Open(filepath.Join(s.maildir(user), sub))
		if err != nil {
			t.Fatal(err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += len(names)
	}
	return n
}

// waitGone waits until the file is gone, or the QUIT answer comes (too
// late to kill in the middle), or 10 seconds pass.
func waitGone(name string, answered chan string) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(answered) == 0; {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
}
