// Package mbox reads and writes mbox files, the one-file-per-mailbox
// format of Unix mail spools (/var/mail/USER) and of mail programs'
// archives, in the variants RFC 4155 and practice know:
//
//   - mboxo: each message starts with a "From " line; a message line
//     that starts with "From " is written as ">From ", and reading takes
//     one '>' off ">From " lines only (so an original ">From " line comes
//     back as "From ": the quoting is lossy). Postfix's local(8) and
//     procmail write this.
//   - mboxrd: like mboxo, but any line that starts with zero or more '>'
//     followed by "From " gets one more '>', and reading takes one off
//     every such line, so the quoting is reversible.
//   - mboxcl2: each message has a Content-Length header giving the octets
//     of its body, and nothing is quoted: the length, not the "From "
//     lines, says where a message ends.
//
// Scan indexes a file (where each message is, its "From " line's date, the
// headers an import needs) and reports what it had to guess: a "From "
// line without a date, a Content-Length that does not fit, a file that
// ends inside a message. Content returns a message as it was before it
// was written into the file. WriteMboxrd writes one message.
package mbox
