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
	b := append(c.w.AvailableBuffer(), "+OK "...)
	b = strconv.AppendInt(b, int64(c.count), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, c.octets, 10)
	c.w.Write(append(b, "\r\n"...))
	return nil
}

// totals returns the number of messages not marked deleted and their
// size.
func (c *conn) totals() (count int, octets int64) { return c.count, c.octets }

// countTotals computes the totals afresh (at login and RSET).
func (c *conn) countTotals() {
	c.count, c.octets = 0, 0
	for i, m := range c.messages {
		if !c.deleted[i] {
			c.count++
			c.octets += m.Size
		}
	}
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
	return c.listing(cmd, false)
}

func (c *conn) handleUidl(cmd pop3.Command) error {
	return c.listing(cmd, true)
}

// listing answers LIST and UIDL, which differ only in the value shown:
// the size, or the unique id. Lines are built in the reply buffer, with
// no allocation per message.
func (c *conn) listing(cmd pop3.Command, uidl bool) error {
	if err := wantArgs(cmd, 0, 1); err != nil {
		return err
	}
	line := func(b []byte, i int) []byte {
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, ' ')
		if uidl {
			b = append(b, c.messages[i].UID...)
		} else {
			b = strconv.AppendInt(b, c.messages[i].Size, 10)
		}
		return append(b, "\r\n"...)
	}
	if len(cmd.Args) == 1 {
		i, err := c.messageArg(cmd.Args[0])
		if err != nil {
			return err
		}
		c.w.Write(line(append(c.w.AvailableBuffer(), "+OK "...), i))
		return nil
	}
	count, octets := c.totals()
	c.ok(fmt.Sprintf("%d messages (%d octets)", count, octets))
	for i := range c.messages {
		if !c.deleted[i] {
			c.w.Write(line(c.w.AvailableBuffer(), i))
		}
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
	var start time.Time // read only for the Observer
	if c.obs != nil {
		start = time.Now()
	}
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
	firstRead := 0 // RETR: as much as the buffer holds
	if bodyLines >= 0 && bodyLines <= topFirstReadLines {
		firstRead = topFirstRead
	}
	first, size, err := c.prepareHeader(body, *buf, c.messages[i].Size, firstRead)
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
	if bodyLines >= 0 {
		c.stats.top++
		c.stats.topOctets += int64(n)
	}
	if whole {
		c.retrieved[i] = true
		if c.obs != nil {
			c.obs.Retrieved(size, time.Since(start), bodyLines < 0)
		}
		if bodyLines < 0 {
			c.stats.retrieved++
			c.stats.retrievedOctets += size
		}
	}
	return nil
}

// prepareHeader reads the start of a message into buf and returns what to
// send first and the size to announce. For a client that has not sent
// UTF8, a header with UTF-8 text is replaced by its ASCII surrogate (RFC
// 6856 §2.1), or the message is refused with [UTF8] when its header does
// not fit in buf.
func (c *conn) prepareHeader(body io.Reader, buf []byte, size int64, firstRead int) ([]byte, int64, error) {
	n, complete, err := readHeader(body, buf, firstRead)
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

// TOP with a few body lines reads the message in a small first piece:
// the header and those lines are usually well within it, and the rest of
// the message is then never read.
const (
	topFirstRead      = 8 << 10
	topFirstReadLines = 100
)

// copyBuffers hold the buffers RETR and TOP copy through: shared between
// sessions, so an idle session costs no copy buffer.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 64*1024); return &b }}

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
	c.count--
	c.octets -= c.messages[i].Size
	b := append(c.w.AvailableBuffer(), "+OK message "...)
	b = strconv.AppendInt(b, int64(i+1), 10)
	c.w.Write(append(b, " deleted\r\n"...))
	return nil
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
	c.countTotals()
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
	expire := c.cfg.ExpireDays
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
		if len(deleted) == 0 {
			// Only the first retrieval times (EXPIRE's clock) were to
			// be recorded: say so, not that deletions failed.
			c.log.Error("recording retrievals failed", "err", err, "retrieved", len(retrieved))
			return pop3.ErrCode(pop3.CodeSysTemp, "retrievals not recorded; no message was to be deleted")
		}
		c.log.Error("applying deletions failed", "err", err, "deleted", len(deleted))
		return pop3.ErrCode(pop3.CodeSysTemp, "some deleted messages not removed")
	}
	c.stats.deleted = len(deleted)
	if c.obs != nil && len(deleted) > 0 {
		c.obs.Deleted(len(deleted))
	}
	for _, i := range deleted {
		c.stats.deletedOctets += c.messages[i].Size
	}
	return c.ok(fmt.Sprintf("bye (%d messages deleted)", len(deleted)))
}
