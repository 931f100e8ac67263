package delivery

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCandidates(t *testing.T) {
	local := AddressPolicy{DetailDelimiter: "+-"}
	whole := AddressPolicy{ByAddress: true, Domains: []string{"example.org"}, DetailDelimiter: "+"}
	for _, tc := range []struct {
		policy AddressPolicy
		addr   string
		want   []string
		err    error
	}{
		{local, "alice@example.org", []string{"alice"}, nil},
		{local, "Alice@Example.ORG", []string{"Alice", "alice"}, nil},
		{local, "alice+lists@example.org", []string{"alice+lists", "alice"}, nil},
		{local, "alice-x+y@example.org", []string{"alice-x+y", "alice"}, nil},
		{local, "postmaster", []string{"postmaster"}, nil},
		{local, `"alice"@example.org`, []string{"alice"}, nil},
		{local, `"a\"b"@example.org`, []string{`a"b`}, nil},
		{local, "+x@example.org", []string{"+x"}, nil},
		{whole, "Bob+tag@EXAMPLE.org", []string{"Bob+tag@example.org", "bob+tag@example.org", "Bob@example.org", "bob@example.org"}, nil},
		{whole, "bob@other.example", nil, ErrUnknownDomain},
		{whole, "bob", nil, ErrBadAddress},
		{local, "", nil, ErrBadAddress},
		{local, "@example.org", nil, ErrBadAddress},
		{local, "a@", nil, ErrBadAddress},
		{local, "a\r\nb@example.org", nil, ErrBadAddress},
		{local, "a@[192.0.2.1]", nil, ErrBadAddress},
		{local, strings.Repeat("a", 65) + "@example.org", nil, ErrBadAddress},
		{local, "\xff@example.org", nil, ErrBadAddress},
		{local, `"unterminated@example.org`, nil, ErrBadAddress},
	} {
		got, err := tc.policy.Candidates(tc.addr)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Candidates(%q) = %q, %v; want %v", tc.addr, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Candidates(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
}

func TestCheckSender(t *testing.T) {
	for _, ok := range []string{"", "a@example.org", "bounce+x=y@example.org"} {
		if err := CheckSender(ok); err != nil {
			t.Errorf("CheckSender(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a\nb@example.org", "<a@b>", "a b@c", strings.Repeat("x", 300)} {
		if err := CheckSender(bad); !errors.Is(err, ErrBadSender) {
			t.Errorf("CheckSender(%q) = %v, want ErrBadSender", bad, err)
		}
	}
}

// FuzzCandidates: every candidate is non-empty, valid UTF-8 without
// control characters, and never names a path outside the maildrop once
// auth.ValidUsername (which Resolve applies) has passed it.
func FuzzCandidates(f *testing.F) {
	for _, seed := range []string{"alice+x@example.org", `"a b"@c`, "a@[1.2.3.4]", "x", "@", "a+@b"} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, addr string, byAddress bool) {
		p := AddressPolicy{ByAddress: byAddress, DetailDelimiter: "+"}
		names, err := p.Candidates(addr)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Temporary() {
				t.Fatalf("Candidates(%q): %v, want a permanent *Error", addr, err)
			}
			return
		}
		if len(names) == 0 {
			t.Fatalf("Candidates(%q) returned no names and no error", addr)
		}
		for _, n := range names {
			if n == "" || !utf8.ValidString(n) || strings.ContainsAny(n, "\r\n\x00") {
				t.Fatalf("Candidates(%q) returned %q", addr, n)
			}
		}
	})
}
