package pop3server

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/memstore"
)

// recorder is an Observer that counts each event as a string.
type recorder struct {
	mu       sync.Mutex
	events   map[string]int
	sent     int
	octets   int64 // of the messages retrieved
	checking time.Duration
}

func newRecorder() *recorder { return &recorder{events: map[string]int{}} }

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.events[fmt.Sprintf(format, args...)]++
	r.mu.Unlock()
}

func (r *recorder) SessionStarted(l string)    { r.add("start %s", l) }
func (r *recorder) SessionEnded(l string)      { r.add("end %s", l) }
func (r *recorder) ConnectionRefused(s string) { r.add("refused %s", s) }
func (r *recorder) TLSHandshake(mode string, err error) {
	r.add("tls %s %v", mode, err == nil)
}
func (r *recorder) Login(mech, result string, checking time.Duration) {
	r.add("login %s %s", mech, result)
	r.mu.Lock()
	r.checking += checking
	r.mu.Unlock()
}
func (r *recorder) MaildropOpened(d time.Duration, err error) { r.add("open %v", err == nil) }
func (r *recorder) Command(name string, ok bool)              { r.add("cmd %s %v", name, ok) }
func (r *recorder) Retrieved(octets int64, d time.Duration, retr bool) {
	r.add("retrieved retr=%v", retr)
	r.mu.Lock()
	r.octets += octets
	r.mu.Unlock()
}
func (r *recorder) Deleted(n int) { r.add("deleted %d", n) }
func (r *recorder) Sent(n int) {
	r.mu.Lock()
	r.sent += n
	r.mu.Unlock()
}
func (r *recorder) Panic() { r.add("panic") }

// snapshot returns the events once the sessions have ended (a session
// ends on the server after the client has gone).
func (r *recorder) snapshot(t *testing.T, sessions int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		ended := r.events["end pop3"] + r.events["end pop3s"]
		got := maps.Clone(r.events)
		r.mu.Unlock()
		if ended >= sessions || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestObserver runs scripted sessions and checks every event the
// Observer is told of, exactly.
func TestObserver(t *testing.T) {
	ts := newTestServer(t)
	rec := newRecorder()
	ts.srv.SetObserver(rec)
	const msg = "Subject: one\r\n\r\nbody\r\n"
	ts.deliver("alice", msg, "Subject: two\r\n\r\nsecond\r\n")

	c := ts.dial()
	c.send("USER alice").wantOK()
	c.send("PASS wrong").wantErr(pop3.CodeAuth)
	c.login("alice", "wonderland")
	c.send("STAT").wantOK()
	c.send("RETR 1").wantOK()
	c.readBody()
	c.send("TOP 2 0").wantOK() // header only: not a whole retrieval
	c.readBody()
	c.send("TOP 2 99").wantOK() // the whole message, as fetchmail does
	c.readBody()
	c.send("DELE 1").wantOK()
	c.send("RETR 1").wantErr("")
	c.send("FROB").wantErr("")
	c.send("QUIT").wantOK()
	c.wantClosed()

	// The maildrop in use, a cancelled SASL exchange, STLS.
	holder := ts.dial()
	holder.login("bob", "builder")
	second := ts.dial()
	second.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00bob\x00builder"))).wantErr(pop3.CodeInUse)
	second.send("AUTH PLAIN").readLine()
	second.send("*").wantErr("")
	second.startTLS(ts)
	second.send("QUIT").wantOK()
	holder.send("QUIT").wantOK()

	// Implicit TLS, and a handshake that fails.
	secure := ts.dialTLS()
	secure.send("QUIT").wantOK()
	nc, err := net.Dial("tcp", ts.tls)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("USER alice\r\n\r\n\r\n"))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	nc.Read(make([]byte, 100))
	nc.Close()

	got := rec.snapshot(t, 5)
	want := map[string]int{
		"start pop3": 3, "end pop3": 3, "start pop3s": 2, "end pop3s": 2,
		"tls pop3s true": 1, "tls pop3s false": 1, "tls stls true": 1,
		"login USER failed": 1, "login USER ok": 2, "login PLAIN in_use": 1, "login PLAIN cancelled": 1,
		"open true": 2, "open false": 1,
		"cmd USER true": 3, "cmd PASS false": 1, "cmd PASS true": 2, "cmd STAT true": 1,
		"cmd RETR true": 1, "cmd RETR false": 1, "cmd TOP true": 2, "cmd DELE true": 1,
		"cmd other false": 1, "cmd QUIT true": 4, "cmd AUTH false": 2, "cmd STLS true": 1,
		"retrieved retr=true": 1, "retrieved retr=false": 1, "deleted 1": 1,
	}
	if !maps.Equal(got, want) {
		keys := slices.Sorted(maps.Keys(got))
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "\n  %q: %d (want %d)", k, got[k], want[k])
		}
		for k, n := range want {
			if _, ok := got[k]; !ok {
				fmt.Fprintf(&b, "\n  missing %q: want %d", k, n)
			}
		}
		t.Errorf("events:%s", b.String())
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	size, _ := pop3.NormalizedSize(strings.NewReader(msg))
	size2, _ := pop3.NormalizedSize(strings.NewReader("Subject: two\r\n\r\nsecond\r\n"))
	if rec.octets != size+size2 {
		t.Errorf("retrieved octets %d, want %d", rec.octets, size+size2)
	}
	if rec.sent < 200 {
		t.Errorf("octets sent %d: not counted", rec.sent)
	}
	if rec.checking <= 0 {
		t.Errorf("no credential-checking time reported")
	}
}

// TestObserverRefusedAndPlaintext: connections over the limits and
// plaintext logins refused on an unencrypted connection are counted.
func TestObserverRefusedAndPlaintext(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxConnections = 1; c.APOP = true })
	rec := newRecorder()
	ts.srv.SetObserver(rec)
	first := ts.dial()
	// Logged in, so that the next connection cannot evict it.
	first.login("alice", "wonderland")
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	nc.Read(make([]byte, 100)) // "-ERR [SYS/TEMP] too many connections"
	nc.Close()
	first.send("QUIT").wantOK()
	first.wantClosed()
	rec.snapshot(t, 1)

	// From a public address, without TLS: every plaintext method is
	// refused before any credential is checked.
	c := servePipe(t, ts).dial(t, "192.0.2.10")
	c.send("USER alice").wantErr(pop3.CodeAuth)
	c.send("APOP alice 0123456789abcdef0123456789abcdef").wantErr(pop3.CodeAuth)
	c.send("AUTH PLAIN").wantErr(pop3.CodeAuth)
	c.send("QUIT").wantOK()
	c.wantClosed()

	got := rec.snapshot(t, 2)
	want := map[string]int{
		"refused max_connections": 1, "start pop3": 2, "end pop3": 2,
		"login USER ok": 1, "cmd USER true": 1, "cmd PASS true": 1, "open true": 1,
		"login USER refused": 1, "login APOP refused": 1, "login PLAIN refused": 1,
		"cmd USER false": 1, "cmd APOP false": 1, "cmd AUTH false": 1, "cmd QUIT true": 2,
	}
	if !maps.Equal(got, want) {
		t.Errorf("events %v\nwant %v", got, want)
	}
}

// TestObserverPanic: a recovered panic is reported, and the session's end
// still is.
func TestObserverPanic(t *testing.T) {
	ts := newTestServer(t)
	rec := newRecorder()
	ts.srv.SetObserver(rec)
	ts.store.SetFaults(memstore.Faults{OnOpen: func(context.Context, store.Account) error { panic("store bug") }})
	c := ts.dial()
	c.send("USER bob").wantOK()
	c.send("PASS builder")
	c.wantClosed()
	got := rec.snapshot(t, 1)
	ts.srv.panics.Store(0) // expected: not a failure of the cleanup check
	if got["panic"] != 1 || got["start pop3"] != 1 || got["end pop3"] != 1 {
		t.Errorf("events %v, want one panic in one session", got)
	}
}
