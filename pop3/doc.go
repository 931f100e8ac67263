// Package pop3 is the Post Office Protocol wire format, shared by the
// server (package pop3server) and the client: command lines read with a
// hard length limit, replies with RFC 2449 / RFC 3206 response codes, the
// dot-stuffing writer and reader for multi-line responses, and capability
// lists. It holds no I/O policy: timeouts, limits and state belong to its
// callers.
//
// It is written here rather than taken from a library because the Go POP3
// libraries available either buffer whole messages or mishandle
// dot-stuffed lines, and the wire format is small.
package pop3
