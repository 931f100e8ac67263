package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/config"
)

// TestHelpForEveryCommand runs -h, and "help", for every subcommand in the
// table: each must exit 0 and print its usage, description and examples,
// so that a subcommand added without help fails here.
func TestHelpForEveryCommand(t *testing.T) {
	t.Parallel()
	for _, sc := range subcommands {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runCmd(t, "", sc.name, "-h")
			if code != exitOK {
				t.Fatalf("postoffice %s -h: exit %d, want 0\n%s", sc.name, code, stderr)
			}
			checkHelp(t, sc.name, stdout+stderr)

			stdout, stderr, code = runCmd(t, "", "help", sc.name)
			if code != exitOK || stderr != "" {
				t.Fatalf("postoffice help %s: exit %d, stderr %q", sc.name, code, stderr)
			}
			checkHelp(t, sc.name, stdout)
		})
	}
}

// checkHelp checks that out is a whole help text of the subcommand name.
func checkHelp(t *testing.T, name, out string) {
	t.Helper()
	for _, want := range []string{"Usage:\n  postoffice " + name, "\nExamples:\n  # ", "\n  postoffice " + name} {
		if !strings.Contains(out, want) {
			t.Errorf("help of %s has no %q:\n%s", name, want, out)
		}
	}
	// The description: a paragraph between the usage and the rest.
	if parts := strings.SplitN(out, "\n\n", 3); len(parts) < 3 || len(strings.TrimSpace(parts[1])) < 40 {
		t.Errorf("help of %s has no description paragraph:\n%s", name, out)
	}
}

// TestHelpOfVerbs checks the commands with verbs: each verb's -h is the
// command's help with its flags, and "help CMD VERB" works too.
func TestHelpOfVerbs(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"user", "add", "-h"},
		{"user", "list", "--help"},
		{"db", "migrate", "-h"},
		{"bench", "maildir", "-h"},
		{"bench", "retr", "-h"},
		{"help", "user", "passwd"},
	} {
		stdout, stderr, code := runCmd(t, "", args...)
		if code != exitOK {
			t.Errorf("postoffice %s: exit %d, want 0\n%s", strings.Join(args, " "), code, stderr)
			continue
		}
		name := args[0]
		if name == "help" {
			name = args[1]
		}
		checkHelp(t, name, stdout+stderr)
		if !strings.Contains(stdout+stderr, "\nFlags:\n  -") {
			t.Errorf("postoffice %s: no flags listed:\n%s", strings.Join(args, " "), stdout+stderr)
		}
	}
}

// TestHelpKeepsUsageErrors checks that asking for help did not turn mistakes into
// successes: a wrong flag or verb is still exit 64, with the help.
func TestHelpKeepsUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "-no-such-flag"},
		{"user", "frobnicate"},
		{"user"},
		{"db"},
		{"bench"},
		{"man", "extra"},
	} {
		_, stderr, code := runCmd(t, "", args...)
		if code != exitUsage {
			t.Errorf("postoffice %s: exit %d, want %d\n%s", strings.Join(args, " "), code, exitUsage, stderr)
		}
		if !strings.Contains(stderr, "Usage:") {
			t.Errorf("postoffice %s: no usage on standard error:\n%s", strings.Join(args, " "), stderr)
		}
	}
	if _, _, code := runCmd(t, "", "help", "no-such-command"); code != exitUsage {
		t.Errorf("postoffice help no-such-command: exit %d, want %d", code, exitUsage)
	}
	stdout, _, code := runCmd(t, "", "help")
	if code != exitOK || !strings.Contains(stdout, "serve") {
		t.Errorf("postoffice help: exit %d\n%s", code, stdout)
	}
}

// TestManPageUpToDate compares docs/postoffice.8 with what "postoffice man"
// writes, so that a flag, example or setting changed without `go generate
// ./cmd/postoffice` fails here.
func TestManPageUpToDate(t *testing.T) {
	t.Parallel()
	page, err := manPage()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../docs/postoffice.8")
	if err != nil {
		t.Fatalf("%v: run go generate ./cmd/postoffice", err)
	}
	if !bytes.Equal(page, committed) {
		got, want := strings.Split(string(committed), "\n"), strings.Split(string(page), "\n")
		for i := range max(len(got), len(want)) {
			if i >= len(got) || i >= len(want) || got[i] != want[i] {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				t.Fatalf("docs/postoffice.8 is out of date: run go generate ./cmd/postoffice\nline %d is\n\t%q\nwant\n\t%q", i+1, g, w)
			}
		}
	}
}

// manRequests are the roff requests and man macros the page may use: the
// classic man(7) set that every formatter (groff, mandoc, Plan 9's troff)
// knows.
var manRequests = regexp.MustCompile(`^\.(TH|SH|SS|PP|IP|TP|RS|RE|nf|fi|br|B|I|BI|BR|RI|nh|ad|\\")( |$)`)

// TestManPageStructure checks the roff: only known requests, no line that
// a formatter would take for a request by accident, balanced .RS/.RE and
// .nf/.fi, every command and every setting present.
func TestManPageStructure(t *testing.T) {
	t.Parallel()
	page, err := manPage()
	if err != nil {
		t.Fatal(err)
	}
	text := string(page)
	depth, nofill := 0, false
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "'"):
			t.Errorf("line %d starts with a control character: %q", i+1, line)
		case strings.HasPrefix(line, "."):
			if !manRequests.MatchString(line) {
				t.Errorf("line %d: unknown request %q", i+1, line)
			}
		case line == "" && !nofill:
			t.Errorf("line %d: blank line in filled text (use .PP)", i+1)
		}
		switch {
		case line == ".RS" || strings.HasPrefix(line, ".RS "):
			depth++
		case line == ".RE":
			depth--
		case line == ".nf":
			nofill = true
		case line == ".fi":
			nofill = false
		}
		if depth < 0 {
			t.Fatalf("line %d: .RE without .RS", i+1)
		}
		if strings.Contains(line, "\\") && regexp.MustCompile(`\\[^-e&f(" ]`).MatchString(line) {
			t.Errorf("line %d: unexpected escape in %q", i+1, line)
		}
	}
	if depth != 0 || nofill {
		t.Errorf("unbalanced page: .RS depth %d, no-fill %v at the end", depth, nofill)
	}
	if !strings.HasPrefix(text, `.\"`) || !strings.Contains(text, "\n.TH POSTOFFICE 8 ") {
		t.Error("no .TH POSTOFFICE 8 header")
	}
	for _, sc := range subcommands {
		if !strings.Contains(text, "\n.SS \"postoffice "+roffEscape(sc.name)+"\"\n") {
			t.Errorf("no section for postoffice %s", sc.name)
		}
	}
	for _, table := range config.Reference() {
		for _, s := range table.Settings {
			if !strings.Contains(text, "\n.B "+roffEscape(s.Name)+"\n") {
				t.Errorf("no entry for the setting %s", s.Name)
			}
		}
	}
}

// TestManPageRenders formats the page with groff, warnings on, when groff
// is installed; under POSTOFFICE_INTEROP=1 (scripts/test.sh) it must be.
func TestManPageRenders(t *testing.T) {
	t.Parallel()
	groff, err := exec.LookPath("groff")
	if err != nil {
		if os.Getenv("POSTOFFICE_INTEROP") == "1" {
			t.Fatal("groff is not installed (apt-get install groff-base)")
		}
		t.Skip("groff is not installed")
	}
	page, err := manPage()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-k")
	cmd.Stdin = bytes.NewReader(page)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("groff warns:\n%s", stderr.String())
	}
	// grotty shows bold and underline by overstriking: "N\bNA\bA".
	out := regexp.MustCompile(".\b").ReplaceAllString(stdout.String(), "")
	for _, want := range []string{"NAME", "COMMANDS", "CONFIGURATION", "postoffice serve", "pop3.listen_tls", "EXIT STATUS"} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered page has no %q", want)
		}
	}
}

// TestManPageSeeAlso checks that every document the page points to exists.
func TestManPageSeeAlso(t *testing.T) {
	t.Parallel()
	page, err := manPage()
	if err != nil {
		t.Fatal(err)
	}
	_, seeAlso, ok := strings.Cut(string(page), "\n.SH SEE ALSO\n")
	if !ok {
		t.Fatal("no SEE ALSO section")
	}
	docs := regexp.MustCompile(`[a-z0-9\\-]+\.md`).FindAllString(seeAlso, -1)
	if len(docs) < 5 {
		t.Fatalf("SEE ALSO names %d documents: %q", len(docs), seeAlso)
	}
	for _, doc := range docs {
		name := strings.ReplaceAll(doc, `\-`, "-")
		if _, err := os.Stat("../../docs/" + name); err != nil {
			t.Errorf("SEE ALSO names %s: %v", name, err)
		}
	}
}
