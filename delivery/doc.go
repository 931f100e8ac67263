// Package delivery puts one message into the maildrops of its recipients,
// exactly once each. It is the one delivery path: the LMTP listener
// (package lmtp) and the "postoffice deliver" command both use it, so
// they resolve recipients, check quotas, normalise and stamp messages the
// same way.
//
// The steps, and who does them:
//
//   - Resolve maps an envelope address to a user (delivery.recipient:
//     the local part or the whole address; delivery.domains;
//     "+detail" stripped when no user has the full local part) and asks
//     the user database (auth.UserLookup: the passwd-file today,
//     PostgreSQL later). An unknown user is 550 5.1.1; a user database
//     that cannot answer is 451 4.3.0, so the MTA retries.
//   - CheckQuota compares the maildrop's usage, read from the store's
//     index (store.UsageReporter: no message is read), with [quota].
//   - ReadMessage reads the message once, bounded by max_message_size,
//     normalises every line end (CRLF, bare LF and bare CR alike) to one
//     LF — the Maildir convention, which POP3 sends as CRLF, so the size
//     the store records is exactly what RETR sends — and refuses NUL
//     octets and lines over 1,000 octets (RFC 5321 §4.5.3.1.6). It spools
//     the result in memory, or in an unlinked temporary file past 1 MiB,
//     so that nothing is left behind whatever happens.
//   - Deliver writes, per recipient, Return-Path, Delivered-To and a
//     Received field followed by the spooled message into the store
//     (store.Deliverer), which makes it durable before returning.
//
// Each recipient gets its own copy, written separately rather than hard
// linked: the Delivered-To and Received fields name the recipient (and
// Delivered-To is what loop detection reads), maildrops may live on
// different file systems where links fail, quotas are per copy, and a
// Maildir program that rewrites a file in place (flag changes do not, but
// some tools do) would otherwise change every recipient's copy.
//
// Errors returned to callers are *Error values carrying the SMTP reply
// (code, RFC 3463 enhanced code, text) so that the LMTP listener can reply
// and the deliver command can pick an exit code; their Err field holds the
// internal cause, for the log only.
package delivery
