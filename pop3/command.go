package pop3

import (
	"errors"
	"strings"
)

// MinLineLength is the shortest command-line limit a server may impose:
// RFC 2449 §4 raises RFC 1939's limit to 255 octets including CRLF.
const MinLineLength = 255

// maxKeywordLength bounds a command keyword. RFC 1939 keywords are three
// or four characters; extensions may be longer, but never this long.
const maxKeywordLength = 16

// Errors from ParseCommand.
var (
	ErrEmptyCommand = errors.New("empty command")
	ErrBadKeyword   = errors.New("malformed command keyword")
	ErrBadArgument  = errors.New("malformed command argument")
)

// Command is one parsed command line.
type Command struct {
	// Name is the keyword in upper case (RFC 1939 §3: keywords are
	// case-insensitive).
	Name string
	// Args are the space-separated arguments.
	Args []string
	// Rest is the raw text after the keyword and one space. PASS uses it:
	// RFC 1939 §7 lets a server treat spaces in the password as part of
	// it.
	Rest string
}

// ParseCommand parses a command line without its line ending. Keywords
// are letters and digits; arguments may be any printable text but no
// control characters (a NUL or escape in a command is junk, not input).
func ParseCommand(line []byte) (Command, error) {
	if len(line) == 0 {
		return Command{}, ErrEmptyCommand
	}
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return Command{}, ErrBadArgument
		}
	}
	keyword, rest, _ := strings.Cut(string(line), " ")
	if keyword == "" || len(keyword) > maxKeywordLength {
		return Command{}, ErrBadKeyword
	}
	for i := 0; i < len(keyword); i++ {
		c := keyword[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return Command{}, ErrBadKeyword
		}
	}
	cmd := Command{Name: strings.ToUpper(keyword), Rest: rest}
	if args := strings.Fields(rest); len(args) > 0 {
		cmd.Args = args
	}
	return cmd, nil
}
