// Package pop3client is a Post Office Protocol version 3 client (RFC 1939)
// with the extensions people meet on real servers: CAPA and response codes
// (RFC 2449, RFC 3206), STLS and implicit TLS (RFC 2595, RFC 8314), SASL
// authentication (RFC 5034) and pipelining (RFC 2449 §6.6).
//
// # Streaming
//
// RETR and TOP return a *MessageReader: an io.Reader over the message as
// the server sent it, CRLF line ends included, with the byte-stuffing dots
// removed, ending at the terminating "." line. The message is never held
// in memory as a whole, however large it is, and a line of any length is
// passed through in pieces. A connection that ends before the "." line is
// an error (pop3.ErrUnexpectedEOF), never a silent short message.
//
// # Errors
//
// A negative reply is returned as a *pop3.Error wrapped in a *CommandError
// naming the command; errors.As finds either. The *pop3.Error carries the
// RFC 2449 / RFC 3206 response code (pop3.CodeInUse, pop3.CodeLoginDelay,
// pop3.CodeAuth, pop3.CodeSysTemp, pop3.CodeSysPerm) and Temporary tells
// whether trying later may help. Network failures, time-outs and protocol
// violations are returned as they are, wrapped with the command; after one
// of them the connection is in an unknown state, so the Client refuses
// further commands (ErrBroken) and should be closed.
//
// # Contexts and time-outs
//
// Every call that talks to the server takes a context.Context: its
// cancellation or deadline interrupts the call at once (the connection is
// then broken, as the server's state is unknown). Options.Timeout bounds
// each wait for the server separately — a slow but steady download of a
// large message is not cut, a server that stops answering is.
//
// # Pipelining
//
// When the server lists PIPELINING in its capabilities, a Pipeline sends
// several commands before reading their replies, saving a round trip per
// command; without it, the same calls run one at a time. Replies are read
// in the order the commands were sent.
//
// A Client is not safe for concurrent use.
package pop3client
