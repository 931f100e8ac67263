package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func records(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// Each subsystem logs at its own level; SetLevels changes them for
// loggers already handed out.
func TestLevels(t *testing.T) {
	var out bytes.Buffer
	logs, err := New(Options{Level: "info", Format: "json", Levels: map[string]string{"pop3": "debug", "lmtp": "warn"}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	pop3, lmtp, auth := logs.Logger("pop3"), logs.Logger("lmtp"), logs.Logger("auth")
	log := func() {
		for _, l := range []interface{ Debug(string, ...any) }{pop3, lmtp, auth} {
			l.Debug("debug")
		}
		pop3.Info("info")
		lmtp.Info("info")
		lmtp.Warn("warn")
		auth.Info("info", "session", "1")
	}
	log()
	want := []string{"pop3 debug", "pop3 info", "lmtp warn", "auth info"}
	check := func(want []string) {
		t.Helper()
		var got []string
		for _, rec := range records(t, out.String()) {
			got = append(got, rec["subsystem"].(string)+" "+rec["msg"].(string))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("logged %q, want %q", got, want)
		}
		out.Reset()
	}
	check(want)

	if err := logs.SetLevels("warn", map[string]string{"lmtp": "debug"}); err != nil {
		t.Fatal(err)
	}
	log()
	check([]string{"lmtp debug", "lmtp info", "lmtp warn"})

	if err := logs.SetLevels("loud", nil); err == nil {
		t.Error("SetLevels accepted level \"loud\"")
	}
	log() // unchanged by the refused call
	check([]string{"lmtp debug", "lmtp info", "lmtp warn"})
}

// The subsystem comes after the record's own attributes, so that text
// lines keep the shape log parsers match.
func TestTextFormat(t *testing.T) {
	var out bytes.Buffer
	logs, err := New(Options{Format: "text"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	logs.Logger("pop3").With("session", "1", "remote", "192.0.2.1").Warn("authentication failed", "user", "x")
	line := out.String()
	if !strings.Contains(line, `level=WARN msg="authentication failed" session=1 remote=192.0.2.1 user=x subsystem=pop3`) {
		t.Errorf("line %q", line)
	}
}

func TestBadOptions(t *testing.T) {
	for _, opts := range []Options{
		{Level: "verbose"},
		{Levels: map[string]string{"pop3": "trace"}},
		{Format: "xml"},
		{File: "/nonexistent/dir/log"},
	} {
		if _, err := New(opts, os.Stderr); err == nil {
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
}

// Reopen lets go of a renamed file and writes to a new one at the path.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postoffice.log")
	logs, err := New(Options{File: path, Format: "text"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	logs.Logger("server").Info("before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := logs.Reopen(); err != nil {
		t.Fatal(err)
	}
	logs.Logger("server").Info("after")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "before") || strings.Contains(string(old), "after") || !strings.Contains(string(cur), "after") {
		t.Errorf("rotated file %q, new file %q", old, cur)
	}
}
