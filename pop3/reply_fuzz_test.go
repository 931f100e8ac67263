package pop3

import (
	"strings"
	"testing"
)

// FuzzParseReply: any status line a server sends parses without a panic;
// a recognised one says +OK exactly when the line starts with it, and a
// negative one turns back into the same Reply through Error, the server's
// side of the format.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"+OK", "+OK 2 320", "-ERR", "-ERR no such message",
		"-ERR [IN-USE] maildrop is locked", "-ERR [SYS/TEMP]", "-ERR []", "-ERR [x", "-ERR [A]x",
		"+OK [LOGIN-DELAY] wait", "+OKAY", "-ERRor", "", "* x", "-ERR  [AUTH]  two spaces"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, ok := ParseReply(line)
		if !ok {
			if r != (Reply{}) {
				t.Fatalf("%q: not a reply, yet %+v", line, r)
			}
			return
		}
		if r.OK != strings.HasPrefix(line, "+OK") {
			t.Fatalf("%q: OK = %v", line, r.OK)
		}
		if strings.Contains(r.Code, "]") {
			t.Fatalf("%q: code %q holds the closing bracket", line, r.Code)
		}
		if !r.OK {
			again, ok := ParseReply((&Error{Code: r.Code, Text: r.Text}).Error())
			if !ok || again != r {
				t.Fatalf("%q: parsed %+v, re-encoded and parsed %+v", line, r, again)
			}
		}
	})
}
