package maildir

import (
	"slices"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name     string
		base     string
		flags    string
		size     int64
		vsize    int64
		received int64
	}{
		{"1700000000.M123P456.host,S=1234,W=1260:2,S", "1700000000.M123P456.host,S=1234,W=1260", "S", 1234, 1260, 1700000000},
		{"1700000000.M123P456.host,S=1234,W=1260", "1700000000.M123P456.host,S=1234,W=1260", "", 1234, 1260, 1700000000},
		{"1700000000.M123P456.host,W=10,S=9:2,", "1700000000.M123P456.host,W=10,S=9", "", 9, 10, 1700000000},
		{"1500000001.12345_0.procmail:2,FRS", "1500000001.12345_0.procmail", "FRS", -1, -1, 1500000001},
		{"no-time-here", "no-time-here", "", -1, -1, -1},
		{"123.x,S=-5,W=+6,S=,W", "123.x,S=-5,W=+6,S=,W", "", -1, -1, 123},
		{"+123.x", "+123.x", "", -1, -1, -1},
		{"123.x:1,experimental", "123.x", "", -1, -1, 123},
		{"99999999999999999999.x,S=99999999999999999999", "99999999999999999999.x,S=99999999999999999999", "", -1, -1, -1},
		{".x", ".x", "", -1, -1, -1},
	}
	for _, tc := range tests {
		fn := parseName(tc.name)
		if fn.base != tc.base || fn.flags() != tc.flags || fn.size != tc.size || fn.vsize != tc.vsize || fn.received != tc.received {
			t.Errorf("parseName(%q) = %+v (flags %q)", tc.name, fn, fn.flags())
		}
	}
}

func TestNaturalLess(t *testing.T) {
	sorted := []string{
		"1700000000.M9P1Q9.h",
		"1700000000.M9P1Q10.h",
		"1700000000.M10P1Q1.h",
		"1700000000.M999999P1Q2.h",
		"1700000001.M0P1Q3.h",
		"1700000001.M0P1Q3.h2",
		"a",
		"b",
	}
	shuffled := slices.Clone(sorted)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, func(a, b string) int {
		switch {
		case naturalLess(a, b):
			return -1
		case naturalLess(b, a):
			return 1
		}
		return strings.Compare(a, b)
	})
	if !slices.Equal(shuffled, sorted) {
		t.Errorf("natural order:\n got %q\nwant %q", shuffled, sorted)
	}
	if naturalLess("x01", "x1") || naturalLess("x1", "x01") {
		t.Error("leading zeros change the order")
	}
}

func TestSanitizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"mail.example.org": "mail.example.org",
		"a/b":              `a\057b`,
		"a:b,c":            `a\072b\054c`,
		`a\b`:              `a\134b`,
	} {
		if got := sanitizeHost(in); got != want {
			t.Errorf("sanitizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseName: parsing never panics, and a name built from its parts
// parses back into them.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"1700000000.M123P456.host,S=1234,W=1260:2,S", "1500000001.12345_0.procmail", ":", ",", ",S=", "1.:2,", "",
	} {
		f.Add(s, "FS", int64(10), int64(12))
	}
	f.Fuzz(func(t *testing.T, name, flags string, size, vsize int64) {
		fn := parseName(name) // must not panic
		if fn.hasInfo && fn.base+":"+fn.info != name || !fn.hasInfo && fn.base != name {
			t.Fatalf("parseName(%q) = %+v loses bytes", name, fn)
		}
		// A name as Deliver writes it, then flagged by an IMAP client.
		unique, _, _ := strings.Cut(name, ",")
		unique, _, _ = strings.Cut(unique, ":")
		if size < 0 || vsize < 0 || strings.ContainsAny(flags, ":") {
			return
		}
		built := formatName(unique, size, vsize) + ":2," + flags
		fn = parseName(built)
		if fn.size != size || fn.vsize != vsize || fn.flags() != flags || fn.base != formatName(unique, size, vsize) {
			t.Fatalf("parseName(%q) = %+v, want size %d vsize %d flags %q", built, fn, size, vsize, flags)
		}
	})
}

// FuzzNaturalKey: comparing keys gives naturalLess's answer, ties
// included.
func FuzzNaturalKey(f *testing.F) {
	for _, pair := range [][2]string{
		{"1700000000.M9P1Q9.h", "1700000000.M10P1Q10.h"}, {"a01", "a1"}, {"a1b", "a1"},
		{"x9", "x-"}, {"007", "7x"}, {"", "0"}, {"a0", "a/"}, {"a0", "a:"},
	} {
		f.Add(pair[0], pair[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		want := 0
		switch {
		case naturalLess(a, b):
			want = -1
		case naturalLess(b, a):
			want = 1
		}
		if got := strings.Compare(naturalKey(a), naturalKey(b)); got != want {
			t.Fatalf("keys of %q and %q compare %d, naturalLess says %d", a, b, got, want)
		}
	})
}
