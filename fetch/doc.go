// Package fetch is the logic of "postoffice fetch": download mail from POP3
// accounts (package pop3client) into a Maildir, an mbox file or a mail
// delivery agent, delete it from the server or leave it there and never
// download it twice, and survive being killed at any moment without
// losing or duplicating a message.
//
// # Accounts
//
// An accounts file (TOML, see LoadConfig and docs/fetch.md) lists the
// servers, credentials, destinations and policies. Errors name the file,
// line and setting.
//
// # Exactly once
//
// Each account has a state file, a journal (see state.go) of the unique
// ids (UIDL, RFC 1939 §7) already delivered. A run does, in this order:
//
//  1. Log in and list the messages with their unique ids.
//  2. If the journal says the previous run was interrupted (it recorded a
//     start, "R", and no end, "E"), ask the destination which unseen
//     messages it already holds, and record those (see below).
//  3. Record the start of this run, durably.
//  4. For each message not in the journal: stream it into the destination
//     (not yet visible or durable); every batch, make the batch durable
//     and visible (commit), then append its unique ids to the journal and
//     fsync it, and only then send DELE for the batch if the policy
//     deletes.
//  5. QUIT, which makes the server apply the deletions (RFC 1939 §6);
//     then rewrite the journal (temporary file, fsync, rename, fsync of
//     the directory) without the ids no longer on the server.
//
// A crash before a message's commit leaves nothing visible of it: it is
// fetched again. A crash after the journal records it and before QUIT
// leaves it on the server, recorded: it is not fetched again, and is
// deleted by the next run if the policy deletes. The one window left is a
// crash between the commit and the journal's fsync: the message is in the
// destination but not recorded. Step 2 closes it, per destination:
//
//   - Maildir: the file name carries a tag derived from the account and
//     the unique id ("<time>.F<tag>.<host>,S=…,W=…"); recovery looks for
//     the tags of the unrecorded messages in new/ and cur/ (a reader may
//     have moved it) and removes leftovers in tmp/. A file is renamed into
//     new/ only after it is complete and synced, so a tag found there is a
//     complete message.
//   - mbox: before appending, the journal records (durably) the offset the
//     message starts at and the date of its "From " line; recovery
//     downloads the message again and compares it with the file from that
//     offset: equal is delivered, a partial copy at the end of the file is
//     cut off (and the message fetched again).
//   - MDA: the message is spooled completely before the MDA sees it, and
//     recorded as soon as the MDA exits 0. An MDA that exits 0 as fetch is
//     killed, before the journal's fsync, gets the message again on the
//     next run: at least once, like fetchmail and mpop. Use a Maildir or
//     mbox destination where exactly once matters.
//
// The crash test (crash_test.go) kills the real binary at random moments
// of a 1,000-message run and checks that every message arrived exactly
// once.
//
// A message whose size differs from what LIST announced, a connection
// that ends inside a message, or a destination that fails leaves nothing
// of that message in the destination: the account stops with an error
// naming the message, the messages before it are settled and recorded,
// and no message is deleted from the server in that run.
//
// Two runs of the same account never overlap: the run holds a lock file
// next to the state file, and a second run fails with a temporary error.
package fetch
