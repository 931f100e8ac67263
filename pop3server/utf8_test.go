package pop3server

import (
	"strconv"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/pop3"
)

const eaiMessage = "From: J\u00f6rg M\u00fcller <joerg@example.org>\nSubject: Gr\u00fc\u00dfe aus K\u00f6ln\nTo: alice@example.org\n\nK\u00f6rper bleibt 8bit.\n"

func TestUTF8HeaderDowngradedForLegacyClient(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver("alice", eaiMessage)
	c := ts.dial()
	c.login("alice", "wonderland")
	reply := c.send("RETR 1").wantOK()
	lines := c.readBody()
	got := strings.Join(lines, "\r\n") + "\r\n"
	if want := reply; !strings.HasPrefix(want, strconv.Itoa(len(got))+" ") {
		t.Errorf("RETR announced %q, sent %d octets", reply, len(got))
	}
	for _, l := range lines[:3] {
		for _, r := range l {
			if r >= 0x80 {
				t.Fatalf("non-ASCII header line %q sent to a client not in UTF-8 mode", l)
			}
		}
	}
	if lines[0] != "From: =?UTF-8?B?SsO2cmc=?= =?UTF-8?B?TcO8bGxlcg==?= <joerg@example.org>" {
		t.Errorf("From line %q", lines[0])
	}
	if lines[len(lines)-1] != "K\u00f6rper bleibt 8bit." {
		t.Errorf("body changed: %q", lines[len(lines)-1])
	}
	c.send("TOP 1 0").wantOK()
	top := c.readBody()
	if len(top) != 4 || !strings.HasPrefix(top[1], "Subject: =?UTF-8?B?") {
		t.Errorf("TOP 1 0: %q", top)
	}
}

func TestUTF8ModeSendsMessageAsIs(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver("alice", eaiMessage)
	c := ts.dial()
	c.send("CAPA").wantOK()
	c.wantLinesContaining("UTF8 USER", "LANG")
	c.send("UTF8").wantOK()
	c.send("STLS").wantErr("") // RFC 6856: not after UTF8
	c.login("alice", "wonderland")
	c.send("UTF8").wantErr("") // AUTHORIZATION only
	c.send("RETR 1").wantOK()
	c.wantLines(strings.Split(strings.TrimSuffix(eaiMessage, "\n"), "\n")...)
}

func TestUTF8UserNames(t *testing.T) {
	ts := newTestServer(t)
	ts.auth.passwords["j\u00f6rg"] = "p\u00e4ss"
	c := ts.dial()
	// Decomposed ö and ä: SASLprep makes them the composed forms.
	c.send("USER jo\u0308rg").wantOK()
	c.send("PASS pa\u0308ss").wantOK()

	c = ts.dial()
	c.send("USER j\xf6rg").wantOK() // Latin-1, not UTF-8
	c.send("PASS p\xe4ss").wantErr(pop3.CodeAuth)
}

func TestLang(t *testing.T) {
	c := newTestServer(t).dial()
	c.send("LANG").wantOK()
	c.wantLines("en English")
	if got := c.send("LANG en-GB").wantOK(); !strings.HasPrefix(got, "en ") {
		t.Errorf("LANG en-GB: %q", got)
	}
	c.send("LANG *").wantOK()
	c.send("LANG sv").wantErr("")
	c.send("LANG english").wantErr("")
	c.login("alice", "wonderland")
	c.send("LANG en").wantOK()
}

func TestHeaderEnd(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"a: b\n\nbody", 6},
		{"a: b\r\n\r\nbody", 8},
		{"\nbody", 1},
		{"\r\nbody", 2},
		{"a: b\nc: d\n", -1},
		{"a: b\r\n", -1},
		{"", -1},
	}
	for _, tt := range tests {
		if got := headerEnd([]byte(tt.in)); got != tt.want {
			t.Errorf("headerEnd(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func FuzzDowngradeHeader(f *testing.F) {
	f.Add([]byte("Subject: Gr\u00fc\u00dfe\r\nFrom: a\r\n\r\n"))
	f.Add([]byte("X: \xff\xfe\n\n"))
	f.Fuzz(func(t *testing.T, header []byte) {
		out := downgradeHeader(header)
		if hasUTF8(header) {
			for _, b := range out {
				if b >= 0x80 && hasUTF8(out) {
					t.Fatalf("downgraded header still has UTF-8: %q", out)
				}
			}
		}
		if !strings.HasSuffix(string(out), "\r\n") {
			t.Fatalf("no final line end: %q", out)
		}
	})
}
