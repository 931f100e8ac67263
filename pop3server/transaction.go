package pop3server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// The TRANSACTION state (RFC 1939 §5) and the UPDATE state (§6). Message
// numbers are 1-based on the wire and fixed for the session; messages
// marked deleted are hidden from every command until RSET.

func (c *conn) handleStat(cmd pop3.Command) error {
	if err := wantArgs(cmd, 0, 0); err != nil {
		return err
	}
	count, octets := c.totals()
	return c.ok(fmt.Sprintf("%d %d", count, octets))
}

// totals counts the messages not marked deleted and their size.
func (c *conn) totals() (count int, octets int64) {
	for i, m := range c.messages {
		if !c.deleted[i] {
			count++
			octets += m.Size
		}
	}
	return count, octets
}

// messageArg resolves a message-number argument: it rejects 0, numbers
// past the snapshot, junk, and messages marked deleted (RFC 1939 §5).
func (c *conn) messageArg(arg string) (int, error) {
	n, ok := parseNumber(arg)
	if !ok {
		return 0, pop3.Err("invalid message number")
	}
	if n < 1 || n > len(c.messages) {
		return 0, pop3.Err("no such message")
	}
	if c.deleted[n-1] {
		return 0, pop3.Err("message already deleted")
	}
	return n - 1, nil
}

func (c *conn) handleList(cmd pop3.Command) error {
	return c.listing(cmd, func(i int) string { return strconv.FormatInt(c.messages[i].Size, 10) })
}

func (c *conn) handleUidl(cmd pop3.Command) error {
	return c.listing(cmd, func(i int) string { return c.messages[i].UID })
}

// listing answers LIST and UIDL, which differ only in the value shown.
func (c *conn) listing(cmd pop3.Command, value func(i int) string) error {
	if err := wantArgs(cmd, 0, 1); err != nil {
		return err
	}
	if len(cmd.Args) == 1 {
		i, err := c.messageArg(cmd.Args[0])
		if err != nil {
			return err
		}
		return c.ok(strconv.Itoa(i+1) + " " + value(i))
	}
	count, octets := c.totals()
	c.ok(fmt.Sprintf("%d messages (%d octets)", count, octets))
	var num [20]byte
	for i := range c.messages {
		if c.deleted[i] {
			continue
		}
		c.w.Write(strconv.AppendInt(num[:0], int64(i+1), 10))
		c.w.WriteByte(' ')
		c.w.WriteString(value(i))
		c.w.WriteString("\r\n")
	}
	c.w.WriteString(".\r\n")
	return nil
}

func (c *conn) handleRetr(cmd pop3.Command) error {
	if err := wantArgs(cmd, 1, 1); err != nil {
		return err
	}
	i, err := c.messageArg(cmd.Args[0])
	if err != nil {
		return err
	}
	return c.send(i, -1)
}

// handleTop sends the header and the first n body lines (RFC 1939 §7).
// A line count past the end sends the whole message: fetchmail downloads
// with TOP n 99999999.
func (c *conn) handleTop(cmd pop3.Command) error {
	if err := wantArgs(cmd, 2, 2); err != nil {
		return err
	}
	i, err := c.messageArg(cmd.Args[0])
	if err != nil {
		return err
	}
	lines, ok := parseNumber(cmd.Args[1])
	if !ok {
		return pop3.Err("invalid line count")
	}
	return c.send(i, lines)
}

// send streams message i as a multi-line reply: all of it, or for TOP
// (bodyLines >= 0) its header and that many body lines. The body is
// copied in chunks straight from the store to the socket buffer; only
// the header is looked at, for RFC 6856 (see prepareHeader).
func (c *conn) send(i, bodyLines int) error {
	ctx, cancel := context.WithTimeout(c.ctx, backendTimeout)
	body, err := c.maildrop.Open(ctx, i)
	cancel()
	if errors.Is(err, store.ErrNoSuchMessage) {
		return pop3.Err("message was removed by another program")
	}
	if err != nil {
		return fmt.Errorf("open message %d: %w", i+1, err)
	}
	defer body.Close()
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	first, size, err := c.prepareHeader(body, *buf, c.messages[i].Size)
	if err != nil {
		return err
	}
	if bodyLines < 0 {
		c.ok(strconv.FormatInt(size, 10) + " octets")
	} else {
		c.ok("top of message follows")
	}
	dw := pop3.NewDotWriter(c.w)
	var dst io.Writer = dw
	if bodyLines >= 0 {
		dst = pop3.NewTopWriter(dw, bodyLines)
	}
	n, err := dst.Write(first)
	if err == nil {
		var m int64
		m, err = io.CopyBuffer(dst, readerOnly{body}, *buf)
		n += int(m)
	}
	whole := err == nil
	if errors.Is(err, pop3.ErrTopDone) {
		err = nil
	}
	if err == nil {
		err = dw.Close()
	}
	if err != nil {
		// The +OK is out: the reply cannot be ended honestly.
		return fmt.Errorf("%w: message %d after %d octets: %v", errConnBroken, i+1, n, err)
	}
	if whole {
		c.retrieved[i] = true
		c.stats.retrieved++
		c.stats.retrievedOctets += size
	}
	return nil
}

// prepareHeader reads the start of a message into buf and returns what to
// send first and the size to announce. For a client that has not sent
// UTF8, a header with UTF-8 text is replaced by its ASCII surrogate (RFC
// 6856 §2.1), or the message is refused with [UTF8] when its header does
// not fit in buf.
func (c *conn) prepareHeader(body io.Reader, buf []byte, size int64) ([]byte, int64, error) {
	n, complete, err := readHeader(body, buf)
	if err != nil {
		return nil, 0, fmt.Errorf("read message header: %w", err)
	}
	first := buf[:n]
	if c.utf8 {
		return first, size, nil
	}
	end := headerEnd(first)
	if end < 0 && complete {
		end = n // a message that is all header
	}
	switch {
	case end < 0:
		if hasUTF8(first) {
			return nil, 0, pop3.ErrCode(pop3.CodeUTF8, "message header needs UTF8 mode")
		}
	case hasUTF8(first[:end]):
		surrogate := downgradeHeader(first[:end])
		original, _ := pop3.NormalizedSize(bytes.NewReader(first[:end]))
		size += int64(len(surrogate)) - original
		first = append(surrogate, first[end:]...)
	}
	return first, size, nil
}

// copyBuffers hold the buffers RETR and TOP copy through: shared between
// sessions, so an idle session costs no copy buffer.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// readerOnly hides a reader's WriterTo (as *os.File has), which would make
// io.CopyBuffer ignore the pooled buffer and allocate its own.
type readerOnly struct{ io.Reader }

func (c *conn) handleDele(cmd pop3.Command) error {
	if err := wantArgs(cmd, 1, 1); err != nil {
		return err
	}
	i, err := c.messageArg(cmd.Args[0])
	if err != nil {
		return err
	}
	c.deleted[i] = true
	return c.ok(fmt.Sprintf("message %d deleted", i+1))
}

func (c *conn) handleNoop(cmd pop3.Command) error {
	if err := wantArgs(cmd, 0, 0); err != nil {
		return err
	}
	return c.ok("")
}

func (c *conn) handleRset(cmd pop3.Command) error {
	if err := wantArgs(cmd, 0, 0); err != nil {
		return err
	}
	clear(c.deleted)
	count, octets := c.totals()
	return c.ok(fmt.Sprintf("maildrop has %d messages (%d octets)", count, octets))
}

// update is the UPDATE state (RFC 1939 §6): remove the messages marked
// deleted, plus those the EXPIRE policy (RFC 2449 §6.7) removes, then
// release the maildrop. A failure is reported, never hidden.
func (c *conn) update() error {
	c.state = update
	var deleted, retrieved []int
	now := time.Now()
	expire := c.srv.cfg.ExpireDays
	for i, m := range c.messages {
		if c.retrieved[i] {
			retrieved = append(retrieved, i)
		}
		switch {
		case c.deleted[i]:
		case expire == 0 && c.retrieved[i]:
			// EXPIRE 0: the server does not keep retrieved mail.
		case expire > 0 && !m.FirstRetrieved.IsZero() &&
			now.Sub(m.FirstRetrieved) >= time.Duration(expire)*24*time.Hour:
		default:
			continue
		}
		deleted = append(deleted, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), backendTimeout)
	defer cancel()
	err := c.maildrop.Commit(ctx, deleted, retrieved)
	c.closeMaildrop()
	if err != nil {
		c.log.Error("applying deletions failed", "err", err, "deleted", len(deleted))
		return pop3.ErrCode(pop3.CodeSysTemp, "some deleted messages not removed")
	}
	c.stats.deleted = len(deleted)
	return c.ok(fmt.Sprintf("bye (%d messages deleted)", len(deleted)))
}
