package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
)

// A destination stores downloaded messages. Messages arrive with the line
// ends of the wire (CRLF); destinations store them with local line ends
// (LF), as fetchmail, mpop and every Unix mail store do.
type destination interface {
	// write stores one message read from body: all of it or, when body
	// or the destination fails, nothing. The message need not be
	// durable before commit.
	write(ctx context.Context, m *message, body io.Reader) error
	// commit makes every message written since the last commit durable.
	// Only after it returns nil are they recorded as delivered.
	commit(ctx context.Context) error
	// batchSize is how many messages may wait for one commit (and one
	// fsync of the journal).
	batchSize() int
	// durableOnWrite reports whether write returns only once the message
	// is delivered for good (commit does nothing): then each message is
	// recorded as soon as it is written.
	durableOnWrite() bool
	// recover runs after an interrupted run, before anything is fetched:
	// it reports which unique ids the destination already holds.
	recover(ctx context.Context, r *recovery) (map[string]bool, error)
	// close releases the destination; written messages not committed
	// are removed.
	close() error
	// String names the destination for messages.
	String() string
}

// message is one message being fetched.
type message struct {
	account string
	uid     string
	number  int
	size    int64
}

// recovery is what a destination may use to settle an interrupted run.
type recovery struct {
	// account is the account's name (for message tags).
	account string
	// unseen are the unique ids on the server not recorded as delivered.
	unseen []string
	// pending are the deliveries begun and not settled (uid → token).
	pending map[string]string
	// refetch downloads a message again by unique id (mbox compares).
	refetch func(ctx context.Context, uid string) (io.ReadCloser, error)
	// warn reports something the user should know.
	warn func(format string, args ...any)
}

// journal is the part of the state file a destination writes to.
type journal interface {
	begin(uid, token string) error
	cancel(uid string)
}

// messageTag is a short, stable name of (account, unique id): what ties
// a file in a Maildir to the message it came from, so that an interrupted
// run can find what it already wrote.
func messageTag(account, uid string) string {
	sum := sha256.Sum256([]byte(account + "\x00" + uid))
	return hex.EncodeToString(sum[:8])
}

// lfReader turns CRLF into LF as it reads; a CR not followed by LF is
// kept.
type lfReader struct {
	r       io.Reader
	heldCR  bool // the last chunk ended in CR: decided by the next octet
	pending []byte
	err     error
	buf     [32 << 10]byte
}

func newLFReader(r io.Reader) *lfReader { return &lfReader{r: r} }

func (l *lfReader) Read(p []byte) (int, error) {
	for len(l.pending) == 0 {
		if l.err != nil {
			return 0, l.err
		}
		start := 0
		if l.heldCR {
			l.buf[0], start = '\r', 1
		}
		n, err := l.r.Read(l.buf[start:])
		data := l.buf[:start+n]
		l.heldCR = false
		j := 0
		for i := 0; i < len(data); i++ {
			c := data[i]
			if c == '\r' {
				if i+1 < len(data) {
					if data[i+1] == '\n' {
						continue
					}
				} else if err == nil {
					l.heldCR = true
					continue
				}
			}
			data[j] = c
			j++
		}
		l.pending, l.err = data[:j], err
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}
