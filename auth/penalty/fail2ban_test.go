package penalty

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fail2ban filter in contrib/ and docs/fail2ban.md must match the line
// pop3server writes for each failed login: a logger carrying session and
// remote, and Warn("authentication failed", "user", name).

const (
	filterPath = "../../contrib/fail2ban/filter.d/postoffice.conf"
	docPath    = "../../docs/fail2ban.md"
)

// filter is a fail2ban filter's two expressions.
type filter struct {
	fail, date string
}

// readFilter reads the filter file and returns its text from
// [Definition] on, and its expressions.
func readFilter(t *testing.T) (string, filter) {
	t.Helper()
	data, err := os.ReadFile(filterPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "[Definition]")
	if start < 0 {
		t.Fatal("filter has no [Definition]")
	}
	var f filter
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, "failregex = "); ok {
			f.fail = v
		}
		if v, ok := strings.CutPrefix(line, "datepattern = "); ok {
			f.date = v
		}
	}
	if f.fail == "" || f.date == "" {
		t.Fatal("filter lacks failregex or datepattern")
	}
	return text[start:], f
}

// goRegexps translates the filter to Go: fail2ban's <HOST> becomes a
// capture of an address, and its date directives (%% in the file) digit
// patterns.
func (f filter) goRegexps(t *testing.T) (fail, date *regexp.Regexp) {
	t.Helper()
	failExpr := strings.Replace(f.fail, "<HOST>", `(?P<host>[0-9A-Fa-f:.]+)`, 1)
	dateExpr := strings.NewReplacer(
		"%%Y", `\d{4}`, "%%m", `\d{2}`, "%%d", `\d{2}`,
		"%%H", `\d{2}`, "%%M", `\d{2}`, "%%S", `\d{2}`,
		"%%f", `\d+`, "%%z", `(?:Z|[+-]\d{2}:?\d{2})`,
	).Replace(f.date)
	return regexp.MustCompile(failExpr), regexp.MustCompile(dateExpr)
}

// matchHost does what fail2ban does with a line: cut out the date, then
// apply failregex. It returns the host captured, if any.
func matchHost(fail, date *regexp.Regexp, line string) (string, bool) {
	loc := date.FindStringIndex(line)
	if loc == nil {
		return "", false
	}
	rest := line[:loc[0]] + line[loc[1]:]
	m := fail.FindStringSubmatch(rest)
	if m == nil {
		return "", false
	}
	return m[fail.SubexpIndex("host")], true
}

// logLine is one line from slog's text handler, as the server writes it.
type logLine struct {
	text string
	want string // the host fail2ban must find, or "" for none
}

// serverLines logs what the server logs for a few sessions, with the
// timestamps in zone.
func serverLines(t *testing.T, zone *time.Location) []logLine {
	t.Helper()
	var buf bytes.Buffer
	at := time.Date(2026, 5, 4, 10, 15, 2, 123e6, zone)
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				a.Value = slog.TimeValue(at)
				at = at.Add(time.Second)
			}
			return a
		},
	}))
	var lines []logLine
	logged := func(want string) {
		text := strings.TrimSuffix(buf.String(), "\n")
		if strings.Contains(text, "\n") {
			t.Fatalf("more than one line: %q", text)
		}
		lines = append(lines, logLine{text, want})
		buf.Reset()
	}
	for i, remote := range []string{"192.0.2.7", "2001:db8::7", "::1", "203.0.113.250"} {
		session := base.With("session", []string{"1", "1f", "a0c3", "ffffffff"}[i], "remote", netip.MustParseAddr(remote).String())
		session.Info("session started")
		logged("")
		session.Warn("authentication failed", "user", "alice")
		logged(remote)
		// Hostile user names are quoted and cannot supply a remote.
		session.Warn("authentication failed", "user", "x remote=198.51.100.1")
		logged(remote)
		session.Warn("authentication failed", "user", "\nlevel=WARN msg=\"authentication failed\" session=9 remote=198.51.100.2")
		logged(remote)
		session.Warn("authentication failed", "user", "bob", "mech", "PLAIN")
		logged(remote)
		session.Error("user database error", "user", "alice", "err", "unavailable")
		logged("")
		session.Info("session ended", "tls", true, "duration", "1.5s")
		logged("")
	}
	base.Info("listening", "addr", "[::]:110")
	logged("")
	base.Warn("authentication failed but not from a session", "remote", "198.51.100.3")
	logged("")
	return lines
}

// TestFail2banFilter checks the filter's expression, translated to Go,
// against real slog lines for IPv4 and IPv6 clients.
func TestFail2banFilter(t *testing.T) {
	t.Parallel()
	_, f := readFilter(t)
	fail, date := f.goRegexps(t)
	for _, zone := range []*time.Location{time.UTC, time.FixedZone("CEST", 2*3600), time.FixedZone("", -(3*3600 + 1800))} {
		for _, line := range serverLines(t, zone) {
			host, ok := matchHost(fail, date, line.text)
			switch {
			case line.want == "" && ok:
				t.Errorf("filter matches a line it must not, finding %s:\n%s", host, line.text)
			case line.want != "" && !ok:
				t.Errorf("filter does not match:\n%s", line.text)
			case ok && host != line.want:
				t.Errorf("filter finds host %s, want %s:\n%s", host, line.want, line.text)
			}
		}
	}
}

// TestFail2banDocMatchesFilter keeps docs/fail2ban.md and the filter file
// the same.
func TestFail2banDocMatchesFilter(t *testing.T) {
	t.Parallel()
	definition, _ := readFilter(t)
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```ini\n"+definition+"```") {
		t.Errorf("docs/fail2ban.md does not show the filter as in %s:\n%s", filterPath, definition)
	}
}

// TestFail2banRegex runs the real fail2ban-regex on the lines, when it is
// installed; under POSTOFFICE_INTEROP=1 (scripts/test.sh) it must be.
func TestFail2banRegex(t *testing.T) {
	t.Parallel()
	prog, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		if os.Getenv("POSTOFFICE_INTEROP") == "1" {
			t.Fatal("fail2ban-regex is not installed (apt-get install fail2ban)")
		}
		t.Skip("fail2ban-regex is not installed")
	}
	var log strings.Builder
	var want []string
	for _, zone := range []*time.Location{time.UTC, time.FixedZone("CEST", 2*3600)} {
		for _, line := range serverLines(t, zone) {
			log.WriteString(line.text + "\n")
			if line.want != "" {
				want = append(want, line.want)
			}
		}
	}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "postoffice.log")
	if err := os.WriteFile(logFile, []byte(log.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	filterFile, err := filepath.Abs(filterPath)
	if err != nil {
		t.Fatal(err)
	}
	// -v lists the host and time found on each matched line.
	out, err := exec.Command(prog, "-v", logFile, filterFile).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	total := len(strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n"))
	summary := regexp.MustCompile(`Lines: (\d+) lines, 0 ignored, (\d+) matched, (\d+) missed`).FindStringSubmatch(string(out))
	if summary == nil {
		t.Fatalf("no summary in fail2ban-regex output:\n%s", out)
	}
	if summary[1] != strconv.Itoa(total) || summary[2] != strconv.Itoa(len(want)) {
		t.Errorf("fail2ban-regex: %s; want %d lines, %d matched\n%s", summary[0], total, len(want), out)
	}
	for _, forged := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		if hostListed(string(out), forged) {
			t.Errorf("fail2ban-regex found forged host %s:\n%s", forged, out)
		}
	}
	for _, host := range want {
		if !hostListed(string(out), host) {
			t.Errorf("fail2ban-regex did not find %s:\n%s", host, out)
		}
	}
}

// hostListed reports whether fail2ban-regex's failregex section lists
// host as found (a line "|      HOST  date").
func hostListed(out, host string) bool {
	return regexp.MustCompile(`(?m)^\|\s+` + regexp.QuoteMeta(host) + `\s\s`).MatchString(out)
}
