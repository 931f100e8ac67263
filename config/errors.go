package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a configuration file. Load and Parse
// return an *Error, or several joined with errors.Join when the file has
// more than one problem; errors.As finds the first.
type Error struct {
	// File is the name given to Parse or the path given to Load.
	File string
	// Line is the 1-based line of the setting, or 0 when the setting is
	// not written in the file (a default that conflicts with another
	// setting) or the problem concerns the whole file.
	Line int
	// Column is the 1-based column of the offending text, or 0 when only
	// the line is meaningful.
	Column int
	// Setting is the dotted TOML key, such as "limits.idle_timeout", with
	// an index for list elements ("pop3.listen[1]"); empty when the
	// problem is not about one setting (a syntax error, an unreadable
	// file).
	Setting string
	// Err is the problem itself; never nil.
	Err error
}

// Error formats the problem as file:line[:column]: setting: problem, the
// form compilers use, so that editors can jump to it.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
	}
	b.WriteString(": ")
	if e.Setting != "" {
		b.WriteString(e.Setting)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *Error) Unwrap() error {
	return e.Err
}

// maxProblems bounds how many problems an error lists: past a screenful,
// more lines do not help anyone fix the file.
const maxProblems = 20

// joinErrors sorts problems by position, so that they read in file order,
// and joins them. Problems without a line (defaults in conflict) come
// last: they are about what the file leaves out.
func joinErrors(problems []*Error) error {
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b *Error) int {
		return compareLines(a.Line, b.Line)
	})
	if len(problems) == 1 {
		return problems[0]
	}
	if len(problems) > maxProblems {
		more := len(problems) - maxProblems
		problems = append(problems[:maxProblems], &Error{
			File: problems[0].File,
			Err:  fmt.Errorf("%d more problems not shown", more),
		})
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// compareLines orders line numbers with 0 (unknown) after every real line.
func compareLines(a, b int) int {
	switch {
	case a == b:
		return 0
	case a == 0:
		return 1
	case b == 0:
		return -1
	case a < b:
		return -1
	default:
		return 1
	}
}
