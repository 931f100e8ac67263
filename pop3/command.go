package pop3

import (
	"bytes"
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
	keyword, rest, found := bytes.Cut(line, []byte(" "))
	if len(keyword) == 0 || len(keyword) > maxKeywordLength {
		return Command{}, ErrBadKeyword
	}
	var upper [maxKeywordLength]byte
	for i, c := range keyword {
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return Command{}, ErrBadKeyword
		}
		upper[i] = c
	}
	cmd := Command{Name: keywordName(upper[:len(keyword)])}
	if found {
		// One string for everything after the keyword; the arguments
		// are slices of it.
		cmd.Rest = string(rest)
		if args := strings.Fields(cmd.Rest); len(args) > 0 {
			cmd.Args = args
		}
	}
	return cmd, nil
}

// keywordName returns an upper-case keyword as a string, without
// allocating for the keywords of RFC 1939 and its extensions.
func keywordName(upper []byte) string {
	switch string(upper) {
	case "USER":
		return "USER"
	case "PASS":
		return "PASS"
	case "STAT":
		return "STAT"
	case "LIST":
		return "LIST"
	case "RETR":
		return "RETR"
	case "DELE":
		return "DELE"
	case "NOOP":
		return "NOOP"
	case "RSET":
		return "RSET"
	case "QUIT":
		return "QUIT"
	case "TOP":
		return "TOP"
	case "UIDL":
		return "UIDL"
	case "APOP":
		return "APOP"
	case "CAPA":
		return "CAPA"
	case "STLS":
		return "STLS"
	case "AUTH":
		return "AUTH"
	case "UTF8":
		return "UTF8"
	case "LANG":
		return "LANG"
	}
	return string(upper)
}
