package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// help is a subcommand's documentation. Each subcommand keeps its help
// next to its flag set and passes both to newFlagSet: -h prints them, and
// the man page (postoffice man) is built from the same two, so the manual
// cannot describe flags the command does not have.
type help struct {
	// synopsis lists the command's forms, without "postoffice ", such as
	// "serve [-config FILE]".
	synopsis []string
	// description says what the command does: paragraphs separated by
	// blank lines; lines indented by two spaces are kept as they are
	// (tables of verbs or exit codes).
	description string
	// examples are command lines with what they do.
	examples []example
}

// example is one command line of a help's Examples section.
type example struct {
	// what says what the command does, in a sentence.
	what string
	// command is the shell command, one or more lines.
	command string
}

// newFlagSet returns a flag set for the subcommand name whose usage (on
// -h, and after a wrong flag) is h with the flag set's flags. Parse errors
// are returned, not fatal; a -h comes back as flag.ErrHelp, which fail
// turns into exit status 0.
func newFlagSet(name string, h *help, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if c, ok := stderr.(*helpCollector); ok {
			c.collect(name, h, fs)
			return
		}
		h.write(stderr, fs)
	}
	return fs
}

// write prints the help as -h shows it.
func (h *help) write(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "Usage:")
	for _, s := range h.synopsis {
		fmt.Fprintf(w, "  postoffice %s\n", s)
	}
	fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(h.description))
	if fs != nil && hasFlags(fs) {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprintln(w, "\nExamples:")
	for i, e := range h.examples {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  # %s\n", e.what)
		for line := range strings.SplitSeq(strings.TrimSpace(e.command), "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
}

// hasFlags reports whether fs defines any flag.
func hasFlags(fs *flag.FlagSet) bool {
	any := false
	fs.VisitAll(func(*flag.Flag) { any = true })
	return any
}

// errHelpShown is what a subcommand returns after printing its help for
// -h: exit status 0 and nothing more to say.
var errHelpShown = &exitError{code: exitOK, err: flag.ErrHelp, quiet: true}

// isHelpFlag reports whether arg asks for help rather than naming a verb.
func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// helpCollector is an io.Writer passed as a subcommand's standard error
// to learn its help and flags without running it: newFlagSet's usage
// function hands them over instead of printing. A subcommand that prints
// its help some other way leaves the text in text.
type helpCollector struct {
	name string
	help *help
	fs   *flag.FlagSet
	text strings.Builder
}

func (c *helpCollector) Write(p []byte) (int, error) { return c.text.Write(p) }

func (c *helpCollector) collect(name string, h *help, fs *flag.FlagSet) {
	if c.help == nil {
		c.name, c.help, c.fs = name, h, fs
	}
}

// commandHelp runs a subcommand with -h to collect its help and flags.
func commandHelp(run func([]string, io.Reader, io.Writer, io.Writer) error) (*helpCollector, error) {
	c := &helpCollector{}
	err := run([]string{"-h"}, strings.NewReader(""), io.Discard, c)
	var ee *exitError
	if err != nil && !(errors.As(err, &ee) && ee.code == exitOK) {
		return c, err
	}
	return c, nil
}
