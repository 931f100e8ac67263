package interop

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// lmtpMessage is sent over LMTP and SMTP by the delivery tests: 8-bit
// text, lines starting with dots (which the sender stuffs and the server
// must unstuff), trailing white space, a long line within RFC 5321's
// limit, and an empty line at the end.
var lmtpMessage = strings.Join([]string{
	"From: Sender <sender@example.net>",
	"To: Alice <alice@example.org>",
	"Subject: delivery interop",
	"Date: Fri, 27 Nov 2026 10:00:00 +0000",
	"Message-ID: <interop-1@example.net>",
	"MIME-Version: 1.0",
	"Content-Type: text/plain; charset=utf-8",
	"Content-Transfer-Encoding: 8bit",
	"",
	"Hello Alice \u2014 \u00fcn\u00efc\u00f6d\u00e9.",
	".a line starting with a dot",
	"..two dots",
	".",
	"trailing spaces   ",
	strings.Repeat("0123456789", 90),
	"",
	"last line",
	"",
}, "\r\n") + "\r\n"

// checkDelivered checks one message as a POP3 client retrieved it: the
// trace fields postoffice adds (and any Received field of an MTA in
// front), then exactly the octets the sender sent, CRLF line ends.
func checkDelivered(t *testing.T, got, sent, sender, rcpt string, mtaHops int) {
	t.Helper()
	trace, rest := splitTrace(got)
	if rest != sent {
		t.Errorf("retrieved message differs from what was sent:\n got %q\nwant %q", rest, sent)
	}
	if len(trace) != 3+mtaHops {
		t.Fatalf("trace fields %q: want Return-Path, Delivered-To, Received and %d MTA Received", trace, mtaHops)
	}
	if want := "Return-Path: <" + sender + ">\r"; trace[0] != want {
		t.Errorf("first field %q, want %q", trace[0], want)
	}
	if want := "Delivered-To: " + rcpt + "\r"; trace[1] != want {
		t.Errorf("second field %q, want %q", trace[1], want)
	}
	received := regexp.MustCompile(`^Received: from \S+ \(127\.0\.0\.1\)\r\n\tby mx\.example\.org \(postoffice\) with LMTP id [A-Z2-7]{16}\r\n\tfor <` + regexp.QuoteMeta(rcpt) + `>; \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r$`)
	if !received.MatchString(trace[2]) {
		t.Errorf("Received field %q", trace[2])
	}
}

// TestSwaksLMTP delivers with swaks speaking LMTP to two recipients, one
// with an address extension, and fetches each copy with Python's poplib:
// the retrieved octets are the sent ones behind the trace fields, and the
// size LIST announced is what RETR sent.
func TestSwaksLMTP(t *testing.T) {
	swaks := need(t, "swaks")
	python := need(t, "python3")
	t.Parallel()
	site := newSite(t)
	srv := startDeliveryBinary(t, site, "")
	dataFile := filepath.Join(t.TempDir(), "message.eml")
	// swaks ends the data with CRLF "." CRLF itself, so a file that ends
	// in CRLF would gain an empty line: leave the last CRLF to swaks.
	if err := os.WriteFile(dataFile, []byte(strings.TrimSuffix(lmtpMessage, "\r\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(srv.lmtp, ":")
	r := run(t, command{}, swaks, "--protocol", "LMTP", "--server", host, "--port", port,
		"--helo", "swaks.example.net", "--from", "sender@example.net",
		"--to", "alice@example.org,carol+news@example.org", "--data", "@"+dataFile)
	if r.exitCode != 0 {
		t.Fatalf("swaks: %s", r.output())
	}
	for _, want := range []string{"250 2.0.0 <alice@example.org>", "250 2.0.0 <carol+news@example.org>", "LHLO swaks.example.net", "PIPELINING", "ENHANCEDSTATUSCODES"} {
		if !strings.Contains(string(r.stdout), want) {
			t.Errorf("swaks transcript lacks %q:\n%s", want, r.stdout)
		}
	}

	for _, who := range []struct{ user, password, rcpt string }{
		{alice, alicePassword, "alice@example.org"},
		{carol, carolPassword, "carol+news@example.org"},
	} {
		spec := poplibConnect(srv.server, "plain")
		spec.User, spec.Password = who.user, who.password
		res := runPoplib(t, python, spec)
		if len(res.List) != 1 {
			t.Fatalf("%s: LIST %q, want one message", who.user, res.List)
		}
		got := string(readFile(t, res.outdir, "1.eml"))
		if _, size, _ := strings.Cut(res.List[0], " "); size != strconv.Itoa(len(got)) {
			t.Errorf("%s: LIST announced %s octets, RETR sent %d", who.user, size, len(got))
		}
		checkDelivered(t, got, lmtpMessage, "sender@example.net", who.rcpt, 0)
	}

	// An unknown recipient is refused at RCPT, and swaks says so.
	r = run(t, command{}, swaks, "--protocol", "LMTP", "--server", host, "--port", port,
		"--from", "sender@example.net", "--to", "nobody@example.org", "--data", "@"+dataFile)
	if r.exitCode == 0 || !strings.Contains(string(r.stdout), "550 5.1.1") {
		t.Errorf("swaks to an unknown user: %s", r.output())
	}
}
