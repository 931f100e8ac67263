//go:build chaosfault

// This file is compiled only with the build tag chaosfault, which the
// chaos test suite (package chaos) uses to build a second, deliberately
// broken server: with POSTOFFICE_CHAOS_FAULT naming one fault below, the
// store misbehaves in that one way, and the suite shows that each of its
// checks notices. A normal build has none of this.

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// chaosFaults are the faults POSTOFFICE_CHAOS_FAULT may name, each a bug
// a chaos test must catch.
var chaosFaults = map[string]string{
	"ack-early":         "acknowledge a delivery at once and store it half a second later (lost by a crash in between)",
	"ack-on-error":      "acknowledge a delivery the store refused (disk full)",
	"double-deliver":    "store every delivery twice",
	"delete-unmarked":   "remove one message more than QUIT asked for",
	"commit-ignores":    "report QUIT's deletions done even when the store failed",
	"uid-change":        "list the newest message under a different unique id",
	"size-lie":          "announce the oldest message one octet longer than it is",
	"truncate-retr":     "send only the first half of every message RETR asks for",
	"skip-delete-marks": "ignore QUIT's deletions",
}

func init() {
	fault := os.Getenv("POSTOFFICE_CHAOS_FAULT")
	if fault == "" {
		return
	}
	if _, ok := chaosFaults[fault]; !ok {
		fmt.Fprintf(os.Stderr, "postoffice: POSTOFFICE_CHAOS_FAULT=%q is not a known fault\n", fault)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "postoffice: chaos fault %q injected: %s\n", fault, chaosFaults[fault])
	wrapStore = func(m mailStore) mailStore { return &faultyStore{mailStore: m, fault: fault} }
}

// faultyStore is the configured store with one fault.
type faultyStore struct {
	mailStore
	fault string
}

// Usage keeps the quota checks of the wrapped store.
func (f *faultyStore) Usage(ctx context.Context, acct store.Account) (store.Usage, error) {
	if u, ok := f.mailStore.(store.UsageReporter); ok {
		return u.Usage(ctx, acct)
	}
	return store.Usage{}, nil
}

func (f *faultyStore) Deliver(ctx context.Context, acct store.Account, msg io.Reader) (store.MessageInfo, error) {
	switch f.fault {
	case "ack-early":
		data, err := io.ReadAll(msg)
		if err != nil {
			return store.MessageInfo{}, err
		}
		go func() {
			time.Sleep(500 * time.Millisecond)
			f.mailStore.Deliver(context.Background(), acct, bytes.NewReader(data))
		}()
		return store.MessageInfo{UID: "early", Size: int64(len(data))}, nil
	case "ack-on-error":
		info, err := f.mailStore.Deliver(ctx, acct, msg)
		if err != nil {
			return store.MessageInfo{UID: "lost", Size: 1}, nil
		}
		return info, nil
	case "double-deliver":
		data, err := io.ReadAll(msg)
		if err != nil {
			return store.MessageInfo{}, err
		}
		if _, err := f.mailStore.Deliver(ctx, acct, bytes.NewReader(data)); err != nil {
			return store.MessageInfo{}, err
		}
		return f.mailStore.Deliver(ctx, acct, bytes.NewReader(data))
	}
	return f.mailStore.Deliver(ctx, acct, msg)
}

func (f *faultyStore) Open(ctx context.Context, acct store.Account) (store.Maildrop, error) {
	md, err := f.mailStore.Open(ctx, acct)
	if err != nil {
		return nil, err
	}
	fm := &faultyMaildrop{Maildrop: md, fault: f.fault, infos: md.Messages()}
	if n := len(fm.infos); n > 0 && (f.fault == "uid-change" || f.fault == "size-lie") {
		fm.infos = append([]store.MessageInfo(nil), fm.infos...)
		if f.fault == "uid-change" {
			fm.infos[n-1].UID += "x"
		} else {
			fm.infos[0].Size++
		}
	}
	return fm, nil
}

// faultyMaildrop is an open maildrop with the store's fault.
type faultyMaildrop struct {
	store.Maildrop
	fault string
	infos []store.MessageInfo
}

func (m *faultyMaildrop) Messages() []store.MessageInfo { return m.infos }

func (m *faultyMaildrop) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	r, err := m.Maildrop.Open(ctx, i)
	if err != nil || m.fault != "truncate-retr" {
		return r, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(r, m.infos[i].Size/2), r}, nil
}

func (m *faultyMaildrop) Commit(ctx context.Context, deleted, retrieved []int) error {
	switch m.fault {
	case "delete-unmarked":
		marked := make(map[int]bool, len(deleted))
		for _, i := range deleted {
			marked[i] = true
		}
		// First, so that a crash part-way through still shows it.
		for i := range m.infos {
			if !marked[i] {
				deleted = append([]int{i}, deleted...)
				break
			}
		}
	case "skip-delete-marks":
		deleted = nil
	case "commit-ignores":
		m.Maildrop.Commit(ctx, deleted, retrieved)
		return nil
	}
	return m.Maildrop.Commit(ctx, deleted, retrieved)
}
