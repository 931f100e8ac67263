package pop3

import "strings"

// Response codes: RFC 2449 §8 (IN-USE, LOGIN-DELAY) and RFC 3206 (SYS/TEMP,
// SYS/PERM, AUTH).
const (
	// CodeInUse: the maildrop is locked by another session.
	CodeInUse = "IN-USE"
	// CodeLoginDelay: the user logged in too recently.
	CodeLoginDelay = "LOGIN-DELAY"
	// CodeSysTemp: a temporary problem; the client may retry later.
	CodeSysTemp = "SYS/TEMP"
	// CodeSysPerm: a permanent problem that needs an administrator.
	CodeSysPerm = "SYS/PERM"
	// CodeAuth: the credentials were wrong, not the server.
	CodeAuth = "AUTH"
	// CodeUTF8: the message needs UTF-8 mode (RFC 6856 §5).
	CodeUTF8 = "UTF8"
)

// Error is a negative reply: "-ERR [Code] Text". Handlers return it; the
// server turns it into the wire reply in one place.
type Error struct {
	// Code is the RFC 2449 response code without brackets, or "".
	Code string
	// Text is the human-readable text.
	Text string
	// Close asks the server to end the connection after replying.
	Close bool
}

// Errorf-style constructors keep handler code short.

// Err returns an *Error without a response code.
func Err(text string) *Error { return &Error{Text: text} }

// ErrCode returns an *Error with a response code.
func ErrCode(code, text string) *Error { return &Error{Code: code, Text: text} }

func (e *Error) Error() string {
	if e.Code == "" {
		return "-ERR " + e.Text
	}
	return "-ERR [" + e.Code + "] " + e.Text
}

// Reply is a parsed status line, as a client reads it.
type Reply struct {
	OK   bool
	Code string
	Text string
}

// ParseReply parses a "+OK ..." or "-ERR ..." status line (without its line
// ending), including an RFC 2449 response code in brackets.
func ParseReply(line string) (Reply, bool) {
	var r Reply
	switch {
	case line == "+OK" || strings.HasPrefix(line, "+OK "):
		r.OK, r.Text = true, strings.TrimPrefix(strings.TrimPrefix(line, "+OK"), " ")
	case line == "-ERR" || strings.HasPrefix(line, "-ERR "):
		r.Text = strings.TrimPrefix(strings.TrimPrefix(line, "-ERR"), " ")
	default:
		return Reply{}, false
	}
	if strings.HasPrefix(r.Text, "[") {
		if end := strings.IndexByte(r.Text, ']'); end > 1 {
			r.Code = r.Text[1:end]
			r.Text = strings.TrimPrefix(r.Text[end+1:], " ")
		}
	}
	return r, true
}
