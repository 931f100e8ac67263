package refdoc

import (
	"os"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/config"
)

func TestFirstSentence(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"One. Two.", "One."},
		{"No full stop", "No full stop"},
		{"Wrapped\nover lines. Next.", "Wrapped over lines."},
		{"At `MAIL FROM ... SIZE=` too. Next.", "At `MAIL FROM ... SIZE=` too."},
		{"Ends here.", "Ends here."},
		{"", ""},
	} {
		if got := firstSentence(c.doc); got != c.want {
			t.Errorf("firstSentence(%q) = %q, want %q", c.doc, got, c.want)
		}
	}
}

func TestLinkDocs(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"see docs/cluster.md.", "see [cluster.md](cluster.md)."},
		{"docs/a.md and docs/b-c.md", "[a.md](a.md) and [b-c.md](b-c.md)"},
		{"not mydocs/x.md", "not mydocs/x.md"},
		{"no path", "no path"},
	} {
		if got := linkDocs(c.doc); got != c.want {
			t.Errorf("linkDocs(%q) = %q, want %q", c.doc, got, c.want)
		}
	}
}

// TestCheckNamesUndocumented checks that a missing comment is reported
// with the Go field to document.
func TestCheckNamesUndocumented(t *testing.T) {
	tables := []config.TableDoc{{Name: "x", Doc: "X.", Settings: []config.SettingDoc{
		{Name: "x.a", Key: "a", Doc: "A.", GoName: "X.A"},
		{Name: "x.b", Key: "b", GoName: "X.B"},
	}}, {Name: "y"}}
	err := Check(tables)
	if err == nil || !strings.Contains(err.Error(), "x.b (field X.B)") || !strings.Contains(err.Error(), "[y]") || strings.Contains(err.Error(), "x.a") {
		t.Errorf("Check = %v", err)
	}
	if err := Check(tables[:1][:0]); err != nil {
		t.Errorf("Check(none) = %v", err)
	}
}

// TestComments parses a package written for the test: field comments
// above and beside, several names on one field, types without toml tags
// left out.
func TestComments(t *testing.T) {
	dir := t.TempDir()
	src := "package p\n\n" +
		"// T is the [t] table.\ntype T struct {\n" +
		"\t// A is documented above.\n\tA string `toml:\"a\"`\n" +
		"\tB int `toml:\"b\"` // B is documented beside.\n" +
		"\tC, D bool `toml:\"c\"`\n" +
		"\tinternal int\n}\n\n" +
		"// U has no toml fields.\ntype U struct{ X int }\n"
	if err := writeFile(dir+"/p.go", src); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir+"/p_test.go", "package p\n\ntype V struct {\n\t// Skipped.\n\tE string `toml:\"e\"`\n}\n"); err != nil {
		t.Fatal(err)
	}
	got, err := Comments(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"T":   "T is the [t] table.",
		"T.A": "A is documented above.",
		"T.B": "B is documented beside.",
		"T.C": "",
		"T.D": "",
	}
	if len(got) != len(want) {
		t.Errorf("Comments = %q, want %q", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Comments[%q] = %q, want %q", k, got[k], v)
		}
	}
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}
