package config_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/config/internal/refdoc"
)

// TestReferenceUpToDate regenerates the configuration reference in memory
// and compares it with the committed files, so that a setting added,
// renamed, re-documented or given another default without `go generate
// ./config` fails here rather than leaving the documentation wrong.
func TestReferenceUpToDate(t *testing.T) {
	t.Parallel()
	comments, err := refdoc.Comments(".")
	if err != nil {
		t.Fatal(err)
	}
	src, err := refdoc.GoFile(comments)
	if err != nil {
		t.Fatal(err)
	}
	compareFile(t, "reference_docs.go", "config/reference_docs.go", src)

	tables := config.Reference()
	if err := refdoc.Check(tables); err != nil {
		t.Error(err)
	}
	compareFile(t, "../docs/config-reference.md", "docs/config-reference.md", refdoc.Markdown(tables))
}

// compareFile fails the test if the file at path is not want, naming the
// first line that differs.
func compareFile(t *testing.T, path, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v: run go generate ./config", name, err)
		return
	}
	if bytes.Equal(got, want) {
		return
	}
	gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(gotLines), len(wantLines)) {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Errorf("%s is out of date with the configuration structs: run go generate ./config ./cmd/postoffice (the man page shows the reference too)\nline %d is\n\t%q\nwant\n\t%q", name, i+1, g, w)
			return
		}
	}
}

// TestReferenceCoversEverySetting checks Reference against what Load
// accepts: every table and setting of the example file, which shows them
// all, is in the reference, and nothing else is.
func TestReferenceCoversEverySetting(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for _, table := range config.Reference() {
		seen[table.Name] = true
		for _, s := range table.Settings {
			if !strings.HasPrefix(s.Name, table.Name+".") || s.Name != table.Name+"."+s.Key {
				t.Errorf("setting %s listed under [%s] as key %q", s.Name, table.Name, s.Key)
			}
			seen[s.Name] = true
			if s.Type == "" || s.Default == "" || strings.HasPrefix(s.Default, "<") {
				t.Errorf("%s: type %q, default %q", s.Name, s.Type, s.Default)
			}
		}
	}
	for _, name := range config.SettingNames() {
		if !seen[name] {
			t.Errorf("%s is a setting but not in the reference", name)
		}
		delete(seen, name)
	}
	for name := range seen {
		t.Errorf("%s is in the reference but not a setting", name)
	}
}

// TestReferenceDefaults spot-checks that the defaults shown are Default's,
// formatted as the file writes them.
func TestReferenceDefaults(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"server.hostname":        `""`,
		"pop3.listen":            `["[::]:110"]`,
		"pop3.expire":            `"never"`,
		"limits.idle_timeout":    `"10m"`,
		"limits.max_connections": "1000",
		"pop3.apop":              "false",
	}
	for _, table := range config.Reference() {
		for _, s := range table.Settings {
			if w, ok := want[s.Name]; ok {
				if s.Default != w {
					t.Errorf("%s default = %s, want %s", s.Name, s.Default, w)
				}
				delete(want, s.Name)
			}
		}
	}
	for name := range want {
		t.Errorf("%s missing from the reference", name)
	}
}
