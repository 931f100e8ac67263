package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/memstore"
)

// users is a user database for tests; err, if set, is returned for every
// lookup (a database that is down).
type users struct {
	names map[string]bool
	err   error
}

func (u *users) LookupUser(ctx context.Context, name string) (*auth.User, error) {
	if u.err != nil {
		return nil, u.err
	}
	if !u.names[name] {
		return nil, auth.ErrFailed
	}
	return &auth.User{Name: name}, nil
}

func mustList(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

var testTime = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newMaildirAgent(t *testing.T, quota Quota) (*Agent, *maildir.Store, string) {
	t.Helper()
	base := t.TempDir()
	st, err := maildir.New(maildir.Config{Location: base + "/{user}/Maildir", Hostname: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{
		Hostname:  "mx.example.org",
		Users:     &users{names: map[string]bool{"alice": true, "bob": true}},
		Store:     st,
		Addresses: AddressPolicy{DetailDelimiter: "+"},
		Quota:     quota,
		Now:       func() time.Time { return testTime },
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, st, base
}

func read(t *testing.T, st store.Store, name string) ([]store.MessageInfo, []string) {
	t.Helper()
	md, err := st.Open(t.Context(), store.Account{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	var contents []string
	for i := range md.Messages() {
		r, err := md.Open(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		contents = append(contents, string(b))
	}
	return md.Messages(), contents
}

// The whole path: resolve, read, stamp, store; the stored message is the
// trace fields and the normalised message, its size is what RETR sends,
// and its unique id is the one the next session shows.
func TestDeliverToMaildir(t *testing.T) {
	a, st, base := newMaildirAgent(t, Quota{})
	env := &Envelope{From: "sender@example.net", Helo: "mx.example.net", RemoteIP: "192.0.2.7", Protocol: "LMTP", ID: "ABC123"}
	rcpt, err := a.Resolve(t.Context(), "alice+news@example.org")
	if err != nil || rcpt.User.Name != "alice" {
		t.Fatalf("Resolve = %+v, %v", rcpt, err)
	}
	msg, err := a.ReadMessage(strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer msg.Close()
	info, err := a.Deliver(t.Context(), env, msg, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	want := "Return-Path: <sender@example.net>\n" +
		"Delivered-To: alice+news@example.org\n" +
		"Received: from mx.example.net (192.0.2.7)\n" +
		"\tby mx.example.org (postoffice) with LMTP id ABC123\n" +
		"\tfor <alice+news@example.org>; Fri, 27 Nov 2026 10:00:00 +0000\n" +
		"Subject: hi\n\nhello\n"
	infos, contents := read(t, st, "alice")
	if len(contents) != 1 || contents[0] != want {
		t.Fatalf("stored %q, want %q", contents, want)
	}
	size, _ := pop3.NormalizedSize(strings.NewReader(want))
	if infos[0].Size != size || info.Size != size || infos[0].UID != info.UID {
		t.Errorf("Deliver returned %+v, session shows %+v; want size %d", info, infos[0], size)
	}
	if names := mustList(t, filepath.Join(base, "alice", "Maildir", "tmp")); len(names) != 0 {
		t.Errorf("tmp/ holds %q", names)
	}

	// A local pipe has no client: no "from" clause, no protocol.
	env = &Envelope{From: ""}
	if _, err := a.Deliver(t.Context(), env, msg, rcpt); err != nil {
		t.Fatal(err)
	}
	_, contents = read(t, st, "alice")
	if !strings.HasPrefix(contents[1], "Return-Path: <>\nDelivered-To: alice+news@example.org\nReceived: by mx.example.org (postoffice)\n\tfor <alice+news@example.org>; ") {
		t.Errorf("local delivery stamped %q", contents[1])
	}
}

func TestResolve(t *testing.T) {
	a, _, _ := newMaildirAgent(t, Quota{})
	for addr, want := range map[string]error{
		"bob@example.org":       nil,
		"BOB@example.org":       nil,
		"bob+x@example.org":     nil,
		"carol@example.org":     ErrUnknownUser,
		"../bob@example.org":    ErrUnknownUser,
		"bob/x@example.org":     ErrUnknownUser,
		"a\x00b@example.org":    ErrBadAddress,
		"bob@[127.0.0.1]":       ErrBadAddress,
		"bob@example.org@other": nil, // the last '@' splits; "bob@example.org" is no user...
	} {
		r, err := a.Resolve(t.Context(), addr)
		if addr == "bob@example.org@other" {
			if !errors.Is(err, ErrUnknownUser) {
				t.Errorf("Resolve(%q) = %v, want ErrUnknownUser", addr, err)
			}
			continue
		}
		if want == nil {
			if err != nil || r.User.Name != "bob" {
				t.Errorf("Resolve(%q) = %+v, %v", addr, r, err)
			}
			continue
		}
		if !errors.Is(err, want) {
			t.Errorf("Resolve(%q) = %v, want %v", addr, err, want)
		}
	}
	// A user database that cannot answer is a temporary failure, never
	// "no such user": mail must not bounce because a file was unreadable.
	a.cfg.Users = &users{err: fmt.Errorf("%w: disk on fire", auth.ErrUnavailable)}
	_, err := a.Resolve(t.Context(), "bob@example.org")
	var e *Error
	if !errors.As(err, &e) || !e.Temporary() {
		t.Errorf("Resolve with the database down = %v, want a temporary *Error", err)
	}
}

func TestQuota(t *testing.T) {
	a, _, _ := newMaildirAgent(t, Quota{Messages: 2, Bytes: 2000})
	rcpt, _ := a.Resolve(t.Context(), "alice@example.org")
	small, _ := a.ReadMessage(strings.NewReader("Subject: s\n\nsmall\n"))
	for i := range 2 {
		if _, err := a.Deliver(t.Context(), &Envelope{}, small, rcpt); err != nil {
			t.Fatalf("delivery %d within quota: %v", i, err)
		}
	}
	if _, err := a.Deliver(t.Context(), &Envelope{}, small, rcpt); !errors.Is(err, ErrQuota) {
		t.Errorf("third message: %v, want ErrQuota (2 messages)", err)
	}
	if err := a.CheckQuota(t.Context(), rcpt, 0); !errors.Is(err, ErrQuota) {
		t.Errorf("CheckQuota at the limit: %v", err)
	}

	b, _, _ := newMaildirAgent(t, Quota{Bytes: 2000})
	rcpt, _ = b.Resolve(t.Context(), "bob@example.org")
	if err := b.CheckQuota(t.Context(), rcpt, 5000); !errors.Is(err, ErrQuota) {
		t.Errorf("CheckQuota with a SIZE over the limit: %v", err)
	}
	big, _ := b.ReadMessage(strings.NewReader(strings.Repeat("x\n", 1000)))
	if _, err := b.Deliver(t.Context(), &Envelope{}, big, rcpt); !errors.Is(err, ErrQuota) {
		t.Errorf("message over the storage quota: %v, want ErrQuota", err)
	}
	if _, err := b.Deliver(t.Context(), &Envelope{}, small, rcpt); err != nil {
		t.Errorf("small message within quota: %v", err)
	}
}

// A loop: the message already went through this recipient.
func TestLoopRefused(t *testing.T) {
	a, st, _ := newMaildirAgent(t, Quota{})
	rcpt, _ := a.Resolve(t.Context(), "alice@example.org")
	msg, _ := a.ReadMessage(strings.NewReader("Delivered-To: ALICE@example.org\n\nlooping\n"))
	if _, err := a.Deliver(t.Context(), &Envelope{}, msg, rcpt); !errors.Is(err, ErrLoop) {
		t.Fatalf("Deliver = %v, want ErrLoop", err)
	}
	if infos, _ := read(t, st, "alice"); len(infos) != 0 {
		t.Errorf("looping message stored")
	}
}

// Store failures are temporary, a full disk says so, and nothing is kept.
func TestStoreFailures(t *testing.T) {
	ms := memstore.New()
	a, err := New(Config{Hostname: "h", Users: &users{names: map[string]bool{"alice": true}}, Store: ms})
	if err != nil {
		t.Fatal(err)
	}
	rcpt, _ := a.Resolve(t.Context(), "alice@example.org")
	msg, _ := a.ReadMessage(strings.NewReader("x\n"))
	for _, tc := range []struct {
		fault error
		want  *Error
	}{
		{errors.New("lock trouble"), ErrTemporary},
		{&os.PathError{Op: "write", Path: "f", Err: syscall.ENOSPC}, ErrDiskFull},
		{fmt.Errorf("wrapped: %w", syscall.EDQUOT), ErrDiskFull},
	} {
		ms.SetFaults(memstore.Faults{Deliver: tc.fault})
		_, err := a.Deliver(t.Context(), &Envelope{}, msg, rcpt)
		var e *Error
		if !errors.Is(err, tc.want) || !errors.As(err, &e) || !e.Temporary() {
			t.Errorf("store failing with %v: Deliver = %v, want %v", tc.fault, err, tc.want)
		}
	}
	if got := ms.Messages("alice"); len(got) != 0 {
		t.Errorf("failed deliveries stored %d messages", len(got))
	}
	ms.SetFaults(memstore.Faults{})
	if _, err := a.Deliver(t.Context(), &Envelope{}, msg, rcpt); err != nil {
		t.Errorf("after the faults: %v", err)
	}
}

// Values from the client cannot break out of the trace fields.
func TestTraceFieldsInjection(t *testing.T) {
	env := &Envelope{From: "a@b\r\nX-Evil: 1", Helo: "evil (x)\r\nBcc: victim", RemoteIP: "192.0.2.1", Protocol: "LMTP", ID: "1"}
	got := string(traceFields("host", env, "rcpt@example.org\nX: y", testTime))
	if strings.Count(got, "\n") != 5 || strings.Contains(got, "\nX-Evil") || strings.Contains(got, "\nBcc") || strings.Contains(got, "\nX:") {
		t.Errorf("trace fields %q let a value break a line", got)
	}
}

func TestNewRefusesQuotaWithoutUsage(t *testing.T) {
	_, err := New(Config{Hostname: "h", Users: &users{}, Store: memstore.New(), Quota: Quota{Messages: 1}})
	if err == nil {
		t.Error("New accepted a quota with a store that cannot report usage")
	}
}

// FuzzTraceFields: whatever the sender, client name and recipient, the
// trace fields are exactly five lines (three fields, two continuations),
// each a field or a folded continuation.
func FuzzTraceFields(f *testing.F) {
	f.Add("a@b", "helo", "192.0.2.1", "rcpt@example.org")
	f.Add("a\r\nX: y", "(x)\n", "", "r\x00")
	f.Fuzz(func(t *testing.T, from, helo, ip, rcpt string) {
		got := string(traceFields("mx.example.org", &Envelope{From: from, Helo: helo, RemoteIP: ip, Protocol: "LMTP", ID: "ID"}, rcpt, testTime))
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 5 && len(lines) != 4 {
			t.Fatalf("%d lines: %q", len(lines), got)
		}
		for i, line := range lines {
			if strings.ContainsRune(line, '\r') {
				t.Fatalf("CR in line %d: %q", i, line)
			}
		}
		for i, prefix := range []string{"Return-Path: <", "Delivered-To: ", "Received: "} {
			if !strings.HasPrefix(lines[i], prefix) {
				t.Fatalf("line %d = %q, want prefix %q", i, lines[i], prefix)
			}
		}
		for _, line := range lines[3:] {
			if !strings.HasPrefix(line, "\t") {
				t.Fatalf("continuation %q not folded", line)
			}
		}
	})
}
