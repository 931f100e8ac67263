package storetest

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// checkUID checks the RFC 1939 §7 form of a unique id: 1 to 70 characters
// in the range 0x21 to 0x7E.
func checkUID(t *testing.T, uid string) {
	t.Helper()
	if len(uid) < 1 || len(uid) > 70 {
		t.Errorf("UID %q has %d characters, want 1..70", uid, len(uid))
	}
	for i := 0; i < len(uid); i++ {
		if c := uid[i]; c < 0x21 || c > 0x7E {
			t.Errorf("UID %q has character %#x outside 0x21..0x7E", uid, c)
			return
		}
	}
}

// checkRecent checks that a store's timestamp is set and plausible for
// something that happened after before.
func checkRecent(t *testing.T, what string, got, before time.Time) {
	t.Helper()
	if got.IsZero() {
		t.Errorf("%s is zero", what)
		return
	}
	if got.Before(before.Add(-clockSlack)) || got.After(time.Now().Add(clockSlack)) {
		t.Errorf("%s = %v, want about %v", what, got, before)
	}
}

// normalizedSize is the size the store must announce for content.
func normalizedSize(t *testing.T, content string) int64 {
	t.Helper()
	n, err := pop3.NormalizedSize(strings.NewReader(content))
	if err != nil {
		t.Fatalf("NormalizedSize: %v", err)
	}
	return n
}

// checkContents checks a session's snapshot against the expected contents,
// in order: sizes and bytes.
func checkContents(t *testing.T, s *session, want []string) {
	t.Helper()
	msgs := s.messages()
	if len(msgs) != len(want) {
		t.Fatalf("snapshot has %d messages, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		if got := s.content(i); got != w {
			t.Errorf("message %d content = %s, want %s", i, abbrev(got), abbrev(w))
		}
		if n := normalizedSize(t, w); msgs[i].Size != n {
			t.Errorf("message %d Size = %d, want %d", i, msgs[i].Size, n)
		}
	}
}

// checkDistinct fails if any unique id appears twice.
func checkDistinct(t *testing.T, uids []string) {
	t.Helper()
	seen := make(map[string]bool, len(uids))
	for _, u := range uids {
		if seen[u] {
			t.Errorf("UID %q appears twice in %q", u, uids)
		}
		seen[u] = true
	}
}

// pick returns the elements of all at the given indexes.
func pick[E any](all []E, indexes ...int) []E {
	var out []E
	for _, i := range indexes {
		out = append(out, all[i])
	}
	return out
}

// sameInfos reports whether two snapshots agree on ids, sizes and times.
func sameInfos(a, b []store.MessageInfo) bool {
	return slices.EqualFunc(a, b, func(x, y store.MessageInfo) bool {
		return x.UID == y.UID && x.Size == y.Size &&
			x.Received.Equal(y.Received) && x.FirstRetrieved.Equal(y.FirstRetrieved)
	})
}

// abbrev quotes s for an error message, shortening long contents.
func abbrev(s string) string {
	const max = 60
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}
