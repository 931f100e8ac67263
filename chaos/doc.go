// Package chaos is the reliability suite: tests that break things on
// purpose and then check, from the outside, that postoffice kept its
// promises — an acknowledged message is never lost or doubled, a message
// not marked deleted is never removed, a unique id never changes, no half
// message is ever visible, and the server keeps serving.
//
// Every test drives the real "postoffice serve" binary (built once per
// run) on loopback ports, over LMTP and POP3, and then looks at what a
// client sees over POP3 and what is on disk:
//
//   - crash_test.go, crashpop3_test.go, crashindex_test.go: SIGKILL during
//     500 concurrent LMTP deliveries, during a QUIT that applies 1,000
//     deletions, during RETR streams, and during index rewrites; then a
//     restart and every invariant checked, including that the restarted
//     server removes the crashed deliveries' files from tmp/.
//   - diskfull_test.go: the maildrops on a small tmpfs the test mounts:
//     LMTP answers 452 and "postoffice deliver" exits 75 and both leave
//     nothing behind, POP3 sessions keep working, QUIT reports a failure
//     honestly, and all is consistent once space is freed.
//   - foreign_test.go: other programs (as Dovecot, procmail or a user's
//     script would) move, re-flag, deliver and delete files while POP3
//     sessions run.
//   - soak_test.go: a mixed workload with crashes at random moments and a
//     running invariant check; its length is the -soak flag.
//   - abuse_test.go, abuse_fds_test.go, tlsaudit_test.go: slowloris,
//     connection limits, half-open TLS handshakes, running out of file
//     descriptors, and a testssl.sh audit of POP3S and STLS.
//
// ledger_test.go keeps what every sender and session was told and checks
// each look at a maildrop against it; harness_test.go builds and runs the
// binary.
//
// The checks themselves are tested: faults_test.go builds a second binary
// with the build tag chaosfault (cmd/postoffice/chaosfault.go), whose
// store misbehaves in the way POSTOFFICE_CHAOS_FAULT names (acknowledging
// a delivery before it is stored, removing an unmarked message, changing a
// unique id, ...), runs each scenario against it, and requires the
// scenario's checker to report the fault. A check that cannot fail proves
// nothing.
//
// Loops are bounded in count and time; everything talks to loopback only.
// The disk-full test needs root to mount its tmpfs: under the project's
// test command (POSTOFFICE_INTEROP=1, as scripts/test.sh sets) a failure to
// mount fails the test; elsewhere it is skipped. docs/reliability.md
// describes the suite, the longer local campaigns and their results.
//
// The package has no code of its own besides this comment.
package chaos
