// Command gendoc writes the generated parts of the configuration
// reference; `go generate ./config` runs it twice, because the second step
// needs the first one compiled in:
//
//	gendoc -comments reference_docs.go       the doc comments, for config.Reference
//	gendoc -markdown ../docs/config-reference.md   the reference itself
//
// It runs in the directory of package config.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/config/internal/refdoc"
)

func main() {
	comments := flag.String("comments", "", "write the doc comments of the configuration structs as Go source to `file`")
	markdown := flag.String("markdown", "", "write the configuration reference as Markdown to `file`")
	flag.Parse()
	if (*comments == "") == (*markdown == "") || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*comments, *markdown); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}

func run(commentsFile, markdownFile string) error {
	if commentsFile != "" {
		comments, err := refdoc.Comments(".")
		if err != nil {
			return err
		}
		src, err := refdoc.GoFile(comments)
		if err != nil {
			return err
		}
		return os.WriteFile(commentsFile, src, 0o644)
	}
	tables := config.Reference()
	if err := refdoc.Check(tables); err != nil {
		return err
	}
	return os.WriteFile(markdownFile, refdoc.Markdown(tables), 0o644)
}
