package lmtp

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/delivery"
	"github.com/postoffice-mail/postoffice/internal/syncbuf"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

// users is the test user database: alice, bob, and broken, whose maildrop
// location is a path under a regular file, so every delivery to it fails.
type users struct{ base string }

func (u users) LookupUser(ctx context.Context, name string) (*auth.User, error) {
	switch name {
	case "alice", "bob":
		return &auth.User{Name: name}, nil
	case "broken":
		return &auth.User{Name: name, Mail: filepath.Join(u.base, "not-a-dir", "Maildir")}, nil
	}
	return nil, auth.ErrFailed
}

// env is a running server with a Maildir store under a temporary
// directory.
type env struct {
	t     *testing.T
	srv   *Server
	store *maildir.Store
	base  string
	addr  string
	logs  *syncBuffer
}

type options struct {
	quota          delivery.Quota
	maxMessageSize int64
	readTimeout    time.Duration
}

func newEnv(t *testing.T, opt options) *env {
	t.Helper()
	base := t.TempDir()
	if err := os.WriteFile(filepath.Join(base, "not-a-dir"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	st, err := maildir.New(maildir.Config{Location: base + "/{user}/Maildir", Hostname: "lmtp.test", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := delivery.New(delivery.Config{
		Hostname:       "mx.example.org",
		Users:          users{base},
		Store:          st,
		Addresses:      delivery.AddressPolicy{DetailDelimiter: "+"},
		MaxMessageSize: opt.maxMessageSize,
		Quota:          opt.quota,
		Logger:         logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Hostname: "mx.example.org", Agent: agent, Logger: logger, ReadTimeout: opt.readTimeout})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if n := srv.Panics(); n != 0 {
			t.Errorf("server recovered %d panics", n)
		}
	})
	return &env{t: t, srv: srv, store: st, base: base, addr: l.Addr().String(), logs: logs}
}

// messages returns the contents of a user's maildrop, through a session.
func (e *env) messages(user string) []string {
	e.t.Helper()
	md, err := e.store.Open(e.t.Context(), store.Account{Name: user})
	if err != nil {
		e.t.Fatal(err)
	}
	defer md.Close()
	var out []string
	for i := range md.Messages() {
		r, err := md.Open(e.t.Context(), i)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		out = append(out, string(b))
	}
	return out
}

// body returns a stored message without the trace fields delivery added.
func body(stored string) string {
	for range 5 { // Return-Path, Delivered-To, Received (3 lines)
		_, stored, _ = strings.Cut(stored, "\n")
	}
	return stored
}

// tmpEmpty checks that no delivery left a file in a user's tmp/.
func (e *env) tmpEmpty(user string) {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.base, user, "Maildir", "tmp"))
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	if len(entries) != 0 {
		e.t.Errorf("%s's tmp/ holds %d files", user, len(entries))
	}
}

// client is one LMTP connection, driven line by line.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func (e *env) dial() *client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	c := &client{t: e.t, nc: nc, r: bufio.NewReader(nc)}
	c.want("220 ")
	return c
}

// send writes raw text (CRLF is added to nothing: callers write it).
func (c *client) send(text string) *client {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, text); err != nil {
		c.t.Fatalf("send: %v", err)
	}
	return c
}

// cmd sends one command line.
func (c *client) cmd(line string) *client { return c.send(line + "\r\n") }

// reply reads one (possibly multi-line) reply and returns its lines.
func (c *client) reply() []string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read reply: %v (so far %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return lines
		}
	}
}

// want reads a reply and checks its last line starts with prefix.
func (c *client) want(prefix string) []string {
	c.t.Helper()
	lines := c.reply()
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("reply %q, want %q", lines, prefix)
	}
	return lines
}

// lhlo greets and returns the extension lines.
func (c *client) lhlo() []string {
	c.t.Helper()
	return c.cmd("LHLO client.example.net").want("250 ")
}

// syncBuffer collects output written from other goroutines.
type syncBuffer = syncbuf.Buffer
