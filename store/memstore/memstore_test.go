package memstore_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/memstore"
	"github.com/postoffice-mail/postoffice/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, store.Deliverer) {
		s := memstore.New()
		return s, s
	})
}

var (
	_       storetest.ExternalRemover = (*memstore.Store)(nil)
	alice                             = store.Account{Name: "alice"}
	errBoom                           = errors.New("boom")
)

func deliver(t *testing.T, s *memstore.Store, content string) store.MessageInfo {
	t.Helper()
	info, err := s.Deliver(t.Context(), alice, strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestStoreFaults(t *testing.T) {
	var s memstore.Store // the zero value works
	deliver(t, &s, "Subject: x\n\n1\n")

	s.SetFaults(memstore.Faults{Open: errBoom, Deliver: errBoom})
	if _, err := s.Open(t.Context(), alice); err != errBoom {
		t.Errorf("Open with fault: %v, want errBoom", err)
	}
	if s.Locked("alice") {
		t.Error("a failed Open left the maildrop locked")
	}
	if _, err := s.Deliver(t.Context(), alice, strings.NewReader("y")); err != errBoom {
		t.Errorf("Deliver with fault: %v, want errBoom", err)
	}
	if n := len(s.Messages("alice")); n != 1 {
		t.Errorf("a failed Deliver stored something: %d messages", n)
	}

	s.SetFaults(memstore.Faults{Commit: errBoom, Close: errBoom})
	md, err := s.Open(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(t.Context(), []int{0}, nil); err != errBoom {
		t.Errorf("Commit with fault: %v, want errBoom", err)
	}
	if n := len(s.Messages("alice")); n != 1 {
		t.Errorf("a failed Commit deleted something: %d messages left", n)
	}
	if err := md.Close(); err != errBoom {
		t.Errorf("Close with fault: %v, want errBoom", err)
	}
	if s.Locked("alice") {
		t.Error("a failed Close left the maildrop locked")
	}
	s.SetFaults(memstore.Faults{})
	md, err = s.Open(t.Context(), alice)
	if err != nil {
		t.Fatalf("Open after clearing faults: %v", err)
	}
	md.Close()
}

func TestOnOpenHook(t *testing.T) {
	s := memstore.New()
	release := make(chan struct{})
	s.SetFaults(memstore.Faults{OnOpen: func(ctx context.Context, acct store.Account) error {
		if acct.Name == "bob" {
			return errBoom
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	if _, err := s.Open(t.Context(), store.Account{Name: "bob"}); err != errBoom {
		t.Errorf("Open(bob): %v, want errBoom", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Open(ctx, alice); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocked Open: %v, want the deadline", err)
	}
	close(release)
	md, err := s.Open(t.Context(), alice)
	if err != nil {
		t.Fatalf("released Open: %v", err)
	}
	md.Close()
}

func TestMessageFaults(t *testing.T) {
	s := memstore.New()
	a := deliver(t, s, "Subject: a\n\nfirst\n")
	b := deliver(t, s, "Subject: b\n\nsecond message\n")
	s.SetMessageFault("alice", a.UID, memstore.MessageFault{Open: errBoom})
	s.SetMessageFault("alice", b.UID, memstore.MessageFault{Read: errBoom, ReadAfter: 5})

	md, err := s.Open(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	if _, err := md.Open(t.Context(), 0); err != errBoom {
		t.Errorf("Open of a failing message: %v, want errBoom", err)
	}
	r, err := md.Open(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != errBoom || string(got) != "Subje" {
		t.Errorf("read = %q, %v; want %q, errBoom", got, err, "Subje")
	}

	s.SetMessageFault("alice", a.UID, memstore.MessageFault{})
	if r, err := md.Open(t.Context(), 0); err != nil {
		t.Errorf("Open after clearing the fault: %v", err)
	} else {
		r.Close()
	}
}

func TestAddAndInspect(t *testing.T) {
	s := memstore.New()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	info, err := s.Add("alice", memstore.Message{
		UID: "imported-1", Content: []byte("a\nb\n"), Received: old, FirstRetrieved: old,
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 6 || info.UID != "imported-1" || !info.Received.Equal(old) {
		t.Errorf("Add returned %+v", info)
	}
	if _, err := s.Add("alice", memstore.Message{UID: "imported-1"}); err == nil {
		t.Error("Add of a duplicate UID succeeded")
	}
	if _, err := s.Add("alice", memstore.Message{UID: "has space"}); err == nil {
		t.Error("Add of a malformed UID succeeded")
	}
	// An explicit UID that looks like a generated one is skipped.
	if _, err := s.Add("alice", memstore.Message{UID: "1"}); err != nil {
		t.Fatal(err)
	}
	if d := deliver(t, s, "x"); d.UID == "1" || d.UID == "imported-1" {
		t.Errorf("Deliver reused UID %q", d.UID)
	}
	msgs := s.Messages("alice")
	if len(msgs) != 3 || string(msgs[0].Content) != "a\nb\n" || !msgs[0].FirstRetrieved.Equal(old) {
		t.Errorf("Messages = %+v", msgs)
	}
	if s.Messages("nobody") != nil {
		t.Error("Messages of an unknown account is not empty")
	}
}

func TestCanceledContext(t *testing.T) {
	s := memstore.New()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Deliver(ctx, alice, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver with a canceled context: %v", err)
	}
	if _, err := s.Open(ctx, alice); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a canceled context: %v", err)
	}
}
