package legacy

import (
	"strings"
	"testing"
)

// values are the variables of one message: uid 5 of uidvalidity
// 1700000000, file "1700000100.M1P2.host,S=10,W=12".
func values(key byte) string {
	switch key {
	case 'u':
		return "5"
	case 'v':
		return "1700000000"
	case 'f', 'g':
		return "1700000100.M1P2.host,S=10,W=12"
	}
	return ""
}

func TestFormatExpand(t *testing.T) {
	for _, c := range []struct{ format, want string }{
		{"%08Xu%08Xv", "000000056553f100"}, // Dovecot's default: lower-case hex
		{"%u", "5"},
		{"%v.%u", "1700000000.5"},
		{"%v-%u", "1700000000-5"},
		{"%08Xv%08Xu", "6553f10000000005"}, // UW-IMAP's
		{"%f", "1700000100.M1P2.host,S=10,W=12"},
		{"%g", "1700000100.M1P2.host,S=10,W=12"},
		{"%{uid}/%{uidvalidity}", "5/1700000000"},
		{"%08X{uid}", "00000005"},
		{"%XUv", "6553F100"}, // modifiers apply left to right
		{"%UXv", "6553f100"},
		{"%ULf", "1700000100.m1p2.host,s=10,w=12"},
		{"%Mu", "e4da3b7fbbce2345d7772b0674a318d5"},
		{"%Ru", "5"},
		{"%Rv", "0000000071"},
		{"%4v", "1700"},           // a width without 0 truncates
		{"%-4v", "1700"},          // a sign counts only for an offset
		{"%.-4v", "170000"},       // a negative width cuts off the end
		{"%3.2v", "00"},           // offset 3, width 2
		{"%-3.v", "000"},          // the last three
		{"%012u", "000000000005"}, // zero padding never truncates
		{"%02v", "1700000000"},
		{"100%% %u", "100% 5"},
		{"x%uy", "x5y"},
	} {
		f, err := ParseFormat(c.format)
		if err != nil {
			t.Errorf("ParseFormat(%q): %v", c.format, err)
			continue
		}
		if got := f.Expand(values); got != c.want {
			t.Errorf("%q expands to %q, want %q", c.format, got, c.want)
		}
	}
}

func TestFormatErrors(t *testing.T) {
	for _, bad := range []string{
		"", "fixed", "%%", "%", "%08X", "%q", "%{nosuch}", "%{uid", "%Hu", "%Eu", "%Nu", "%Du",
	} {
		if f, err := ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) = %+v, want an error", bad, f)
		}
	}
	f, err := ParseFormat("%v%m")
	if err != nil || !f.Uses('m') || f.Uses('u') {
		t.Errorf("Uses: %v", err)
	}
}

func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{"%08Xu%08Xv", "%v.%u", "%-3.02LUXRTMf", "%{guid}", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		format, err := ParseFormat(s)
		if err != nil {
			return
		}
		if format.String() != s {
			t.Fatalf("String() = %q, want %q", format.String(), s)
		}
		out := format.Expand(values)
		if len(out) > len(s)*64+1<<10 && !strings.Contains(s, "0") {
			t.Fatalf("expansion of %q is %d octets", s, len(out))
		}
	})
}
