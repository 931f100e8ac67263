package fetch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/pop3server"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/memstore"
)

// The end-to-end tests run postoffice's own server in the test process
// (pop3server with the in-memory store) and fetch from it.

type users map[string]string

func (u users) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	if pw, ok := u[name]; ok && pw == password {
		return &auth.User{Name: name}, nil
	}
	return nil, auth.ErrFailed
}

type testServer struct {
	t      *testing.T
	store  *memstore.Store
	plain  string
	tls    string
	caFile string
}

func newServer(t *testing.T, configure ...func(*pop3server.Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, err := certs.WriteSelfSigned(dir, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, store: memstore.New(), caFile: certFile}
	cfg := pop3server.Config{
		Hostname:         "pop.test",
		Auth:             users{"alice": "wonderland"},
		Store:            ts.store,
		TLS:              &tls.Config{Certificates: []tls.Certificate{cert}},
		AuthFailureDelay: -1,
	}
	for _, f := range configure {
		f(&cfg)
	}
	srv, err := pop3server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.plain, ts.tls = pl.Addr().String(), tl.Addr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(pl) }()
	go func() { defer wg.Done(); srv.ServeTLS(tl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		wg.Wait()
		if n := srv.Panics(); n != 0 {
			t.Errorf("%d server panics", n)
		}
	})
	return ts
}

func (ts *testServer) deliver(msgs ...string) {
	ts.t.Helper()
	for _, m := range msgs {
		if _, err := ts.store.Deliver(context.Background(), store.Account{Name: "alice"}, strings.NewReader(m)); err != nil {
			ts.t.Fatal(err)
		}
	}
}

func (ts *testServer) onServer() int { return len(ts.store.Messages("alice")) }

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// account returns an account for alice on the server's TLS port with a
// Maildir destination in a fresh directory.
func (ts *testServer) account(t *testing.T) (*Config, *Account) {
	dir := t.TempDir()
	cfg := &Config{StateDir: filepath.Join(dir, "state")}
	on := true
	cfg.Accounts = []Account{{
		Name: "alice", Server: "127.0.0.1", Port: port(ts.tls), TLS: "implicit", CAFile: ts.caFile,
		TLSServerName: "localhost", User: "alice", Password: "wonderland", Mechanism: "auto",
		Maildir: filepath.Join(dir, "Maildir"), Timeout: Duration{10 * time.Second}, Pipelining: &on,
	}}
	return cfg, &cfg.Accounts[0]
}

func fetchOnce(t *testing.T, cfg *Config, a *Account, opts ...func(*Options)) Result {
	t.Helper()
	var log bytes.Buffer
	o := Options{Log: &log}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := FetchAccount(ctx, cfg, a, o)
	if log.Len() > 0 {
		t.Logf("fetch log:\n%s", log.String())
	}
	return r
}

func wantOK(t *testing.T, r Result, fetched int) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("fetch: %v", r.Err)
	}
	if r.Fetched != fetched {
		t.Fatalf("fetched %d messages, want %d", r.Fetched, fetched)
	}
}

// maildirMessages returns the contents of every message in new/ and cur/,
// sorted.
func maildirMessages(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	sort.Strings(out)
	return out
}

func dirEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s is not empty: %v", dir, names)
	}
}

// readState checks that the state file is valid and returns its seen ids.
func readState(t *testing.T, cfg *Config, account string) map[string]bool {
	t.Helper()
	s, err := openState(cfg.StateDir, account, true)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	out := make(map[string]bool)
	for uid := range s.seen {
		out[uid] = true
	}
	return out
}

// fakeServer is a hand-written server for misbehaviour the real one never
// shows: it serves a fixed list of messages whose wire bodies (with the
// terminating line, or not) and announced sizes are given.
type fakeServer struct {
	t        *testing.T
	addr     string
	messages []fakeMessage
	tlsCfg   *tls.Config
}

type fakeMessage struct {
	uid  string
	size int64
	wire string // what follows "+OK\r\n" for RETR, as sent
	drop bool   // close the connection after wire
	// pause is how long the server waits before sending wire.
	pause time.Duration
}

func startFake(t *testing.T, implicitTLS *tls.Config, msgs ...fakeMessage) *fakeServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, addr: l.Addr().String(), messages: msgs, tlsCfg: implicitTLS}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go fs.serve(nc)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return fs
}

func (fs *fakeServer) serve(nc net.Conn) {
	defer nc.Close()
	if fs.tlsCfg != nil {
		nc = tls.Server(nc, fs.tlsCfg)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(nc)
	w := bufio.NewWriter(nc)
	reply := func(s string) { w.WriteString(s); w.Flush() }
	reply("+OK fake\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "CAPA":
			reply("+OK\r\nUSER\r\nUIDL\r\n.\r\n")
		case "USER", "PASS", "NOOP", "DELE", "RSET":
			reply("+OK\r\n")
		case "QUIT":
			reply("+OK\r\n")
			return
		case "LIST", "UIDL":
			var b strings.Builder
			b.WriteString("+OK\r\n")
			for i, m := range fs.messages {
				v := m.uid
				if f[0] == "LIST" {
					v = strconv.FormatInt(m.size, 10)
				}
				fmt.Fprintf(&b, "%d %s\r\n", i+1, v)
			}
			b.WriteString(".\r\n")
			reply(b.String())
		case "RETR":
			n, _ := strconv.Atoi(f[1])
			m := fs.messages[n-1]
			reply("+OK\r\n")
			time.Sleep(m.pause)
			reply(m.wire)
			if m.drop {
				return
			}
		default:
			reply("-ERR unknown\r\n")
		}
	}
}

func (fs *fakeServer) account(t *testing.T) (*Config, *Account) {
	dir := t.TempDir()
	off := false
	cfg := &Config{StateDir: filepath.Join(dir, "state")}
	cfg.Accounts = []Account{{
		Name: "fake", Server: "127.0.0.1", Port: port(fs.addr), TLS: "none", User: "alice", Password: "x",
		Mechanism: "user", Maildir: filepath.Join(dir, "Maildir"), Timeout: Duration{10 * time.Second}, Pipelining: &off,
	}}
	return cfg, &cfg.Accounts[0]
}

var _ = io.EOF

func certsSelfSigned() (tls.Certificate, []byte, []byte, error) {
	return certs.SelfSigned("localhost", "127.0.0.1")
}
