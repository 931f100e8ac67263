package pop3

// The client's side of *Error: a negative reply read from a server is the
// same value a server handler returns, so code that inspects response codes
// works alike on both sides.

// AsError returns a negative reply as an *Error carrying its response code
// and text, or nil for a positive reply.
func (r Reply) AsError() *Error {
	if r.OK {
		return nil
	}
	return &Error{Code: r.Code, Text: r.Text}
}

// Temporary reports whether the condition behind the reply is expected to
// clear by itself, so that trying again later is the right reaction:
// SYS/TEMP (RFC 3206 §4), IN-USE and LOGIN-DELAY (RFC 2449 §8.1). AUTH,
// SYS/PERM and replies without a code are not temporary.
func (e *Error) Temporary() bool {
	switch e.Code {
	case CodeSysTemp, CodeInUse, CodeLoginDelay:
		return true
	}
	return false
}
