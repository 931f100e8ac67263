// Package interop holds the interoperability tests: they start the real
// POP3 server on loopback ports, point real clients that nobody on this
// project wrote at it — Python's poplib, curl, fetchmail and mpop — and
// check, byte for byte, what each client downloaded and what is left in
// the Maildir afterwards.
//
// The package has no code of its own besides this comment; everything is in
// the _test.go files. The client programs come from Debian packages that
// scripts/test.sh installs. A test whose program is missing is skipped,
// except when POSTOFFICE_INTEROP=1 is set, as the test script does: then it
// fails, so that a machine without the clients cannot pass by testing
// nothing.
//
// Every test runs against two servers: the engine started in the test
// process with the real Maildir store and passwd-file, and the
// "postoffice serve" binary, built once per run and configured through its
// TOML file. Each covers plain POP3, STLS and implicit TLS, with the
// clients verifying the server's certificate.
//
// Messages are delivered the way Postfix or procmail would, as files with
// LF line ends in the Maildir's new/ directory. What a client must
// receive is the message with every line end as CRLF (what RETR sends,
// RFC 1939 §3), less what the client itself is documented to change: the
// Received: field fetchmail and mpop prepend, and mpop's conversion of
// line ends to LF. The comments at each comparison say which.
package interop
