package postgres

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/pop3server"
	"github.com/postoffice-mail/postoffice/store"
)

// anyPassword lets every user in, for the server tests.
type anyPassword struct{}

func (anyPassword) Authenticate(_ context.Context, name, _ string) (*auth.User, error) {
	return &auth.User{Name: name}, nil
}

// The database goes away in the middle of a POP3 session on the real
// engine: RETR is answered -ERR [SYS/TEMP], QUIT's deletions fail with
// -ERR [SYS/TEMP] and the session ends cleanly, the server stays up, and
// once the database is back every message is still there.
func TestServerDatabaseGoesAway(t *testing.T) {
	t.Parallel()
	direct := cluster.Database(t)
	p := newCutProxy(t)
	dbname := direct[strings.LastIndex(direct, "dbname=")+len("dbname="):]
	dbname = dbname[:strings.IndexByte(dbname, ' ')]
	const lease = 2 * time.Second
	s := newTestStore(t, Config{DSN: p.dsn(dbname), Lease: lease, AcquireTimeout: 300 * time.Millisecond})
	acct := store.Account{Name: "frank"}
	deliverN(t, s, acct, 2)

	srv, err := pop3server.New(pop3server.Config{Hostname: "test", Auth: anyPassword{}, Store: s, AuthFailureDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	say := func(cmd string) string {
		t.Helper()
		if cmd != "" {
			fmt.Fprintf(nc, "%s\r\n", cmd)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return strings.TrimSpace(line)
	}
	say("")
	say("USER frank")
	if got := say("PASS x"); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	p.setCut(true)
	if got := say("RETR 1"); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
		t.Errorf("RETR with the database gone: %q, want -ERR [SYS/TEMP]", got)
	}
	say("DELE 1")
	say("DELE 2")
	if got := say("QUIT"); !strings.HasPrefix(got, "-ERR [SYS/TEMP]") {
		t.Errorf("QUIT with the database gone: %q, want -ERR [SYS/TEMP]", got)
	}
	if got := say(""); !strings.Contains(got, "EOF") {
		t.Errorf("after QUIT the session goes on: %q", got)
	}
	p.setCut(false)

	// The server is still up, and once the lease the session could not
	// release has expired, both messages are there.
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		md, err := s.Open(t.Context(), acct)
		if err == nil {
			if n := len(md.Messages()); n != 2 {
				t.Errorf("after the outage: %d messages, want 2", n)
			}
			md.Close()
			break
		}
		if time.Since(start) > 3*lease {
			t.Fatalf("maildrop not usable again: %v", err)
		}
	}
	nc2, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("server gone after the outage: %v", err)
	}
	nc2.Close()
}
