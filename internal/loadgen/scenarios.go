package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/pop3client"
)

// retryPause keeps a client that keeps failing (a server that is down)
// from spinning.
const retryPause = 20 * time.Millisecond

// loginClient is one client of the login scenarios: whole sessions, one
// after the other, through its own users in turn.
func (r *runner) loginClient(ctx context.Context, id int, w *worker) {
	users := r.cfg.usersOf(id)
	opts := r.cfg.clientOptions()
	for i := 0; !r.stopping(ctx) && !(r.cfg.Once && i >= len(users)); i++ {
		user := users[i%len(users)]
		start := time.Now()
		if err := r.loginOnce(ctx, user, opts); err != nil {
			r.fail(ctx, fmt.Errorf("login %s: %w", user, err))
			sleepCtx(ctx, retryPause)
			continue
		}
		r.record(w, start, 0)
	}
}

// loginOnce is one session: connect (and TLS), USER, PASS, STAT, QUIT.
func (r *runner) loginOnce(ctx context.Context, user string, opts *pop3client.Options) error {
	c, err := pop3client.Dial(ctx, r.cfg.Addr, opts)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(ctx, user, r.cfg.Password); err != nil {
		return err
	}
	n, _, err := c.Stat(ctx)
	if err != nil {
		return err
	}
	if want := r.cfg.ExpectMessages; want > 0 && n != want {
		return fmt.Errorf("STAT: %d messages, want %d", n, want)
	}
	return c.Quit(ctx)
}

// messageClient is one client of retr and top: it logs in, downloads
// every message of the maildrop with Window commands in flight, checks
// each, quits, and starts over with its next user.
func (r *runner) messageClient(ctx context.Context, id int, w *worker) {
	users := r.cfg.usersOf(id)
	buf := make([]byte, 64<<10)
	chk := &checker{}
	for i := 0; !r.stopping(ctx); i++ {
		user := users[i%len(users)]
		if err := r.fetchAll(ctx, user, w, buf, chk); err != nil {
			r.fail(ctx, fmt.Errorf("%s %s: %w", r.cfg.Scenario, user, err))
			sleepCtx(ctx, retryPause)
		}
	}
}

func (r *runner) fetchAll(ctx context.Context, user string, w *worker, buf []byte, chk *checker) error {
	c, err := pop3client.Dial(ctx, r.cfg.Addr, r.cfg.clientOptions())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(ctx, user, r.cfg.Password); err != nil {
		return err
	}
	caps, err := c.Capabilities(ctx) // turns pipelining on
	if err != nil {
		return err
	}
	if r.cfg.Window > 1 && !caps.Has("PIPELINING") {
		return errors.New("server does not offer PIPELINING; use -window 1")
	}
	msgs, err := c.Messages(ctx)
	if err != nil {
		return err
	}
	if want := r.cfg.ExpectMessages; want > 0 && len(msgs) != want {
		return fmt.Errorf("LIST: %d messages, want %d", len(msgs), want)
	}
	if len(msgs) == 0 {
		return errors.New("empty maildrop")
	}
	top := r.cfg.Scenario == ScenarioTop
	p := c.Pipeline()
	resps := make([]*pop3client.Response, len(msgs))
	sent := 0
	for k, m := range msgs {
		// Keep up to Window commands in flight, topped up when half have
		// been answered (so that they go out in one write), and send no
		// new ones once the run is over.
		if sent-k <= r.cfg.Window/2 {
			for sent < len(msgs) && sent < k+r.cfg.Window && (sent == k || !r.stopping(ctx)) {
				if top {
					resps[sent] = p.Top(ctx, msgs[sent].Number, r.cfg.TopLines)
				} else {
					resps[sent] = p.Retr(ctx, msgs[sent].Number)
				}
				sent++
			}
		}
		if k >= sent {
			break
		}
		start := time.Now()
		body, err := resps[k].Message(ctx)
		if err != nil {
			return fmt.Errorf("message %d: %w", m.Number, err)
		}
		chk.reset(top && r.cfg.TopLines == TopLines)
		if _, err := io.CopyBuffer(chk, body, buf); err != nil {
			return fmt.Errorf("message %d: %w", m.Number, err)
		}
		if err := checkSize(top, body, m); err != nil {
			return err
		}
		verified, err := chk.done()
		if err != nil {
			return fmt.Errorf("message %d: %w", m.Number, err)
		}
		if verified {
			w.verified++
		} else {
			w.unverified++
		}
		r.record(w, start, body.N())
	}
	if r.stopping(ctx) && ctx.Err() != nil {
		return nil
	}
	return c.Quit(ctx)
}

// checkSize compares what RETR sent with LIST and the RETR status line
// (RFC 1939 §5: the sizes must agree).
func checkSize(top bool, body *pop3client.MessageReader, m pop3client.MessageInfo) error {
	if top {
		if body.N() > m.Size {
			return fmt.Errorf("message %d: TOP sent %d octets, more than its LIST size %d", m.Number, body.N(), m.Size)
		}
		return nil
	}
	if body.N() != m.Size {
		return fmt.Errorf("message %d: RETR sent %d octets, LIST said %d", m.Number, body.N(), m.Size)
	}
	// "+OK 1234 octets": a leading number, if any, is the size.
	if f := strings.Fields(body.Status()); len(f) > 0 {
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n != m.Size {
			return fmt.Errorf("message %d: RETR announced %d octets, LIST said %d", m.Number, n, m.Size)
		}
	}
	return nil
}

// pipelineClient is one client of the pipeline scenario: one session
// that sends batches of Window commands at once and checks each reply.
func (r *runner) pipelineClient(ctx context.Context, id int, w *worker) {
	users := r.cfg.usersOf(id)
	for i := 0; !r.stopping(ctx); i++ {
		user := users[i%len(users)]
		if err := r.pipelineSession(ctx, user, w); err != nil {
			r.fail(ctx, fmt.Errorf("pipeline %s: %w", user, err))
			sleepCtx(ctx, retryPause)
		}
	}
}

func (r *runner) pipelineSession(ctx context.Context, user string, w *worker) error {
	c, err := dialWire(ctx, &r.cfg, 64<<10)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.login(user, r.cfg.Password); err != nil {
		return err
	}
	caps, err := c.multi("CAPA")
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(caps, func(s string) bool { return strings.EqualFold(s, "PIPELINING") }) {
		return errors.New("server does not offer PIPELINING")
	}
	// What the replies must say: STAT's totals, each LIST n and UIDL n.
	list, err := c.multi("LIST")
	if err != nil {
		return err
	}
	uidl, err := c.multi("UIDL")
	if err != nil {
		return err
	}
	if len(list) != len(uidl) {
		return fmt.Errorf("LIST has %d lines, UIDL %d", len(list), len(uidl))
	}
	var total int64
	for _, l := range list {
		f := strings.Fields(l)
		if len(f) != 2 {
			return fmt.Errorf("LIST line %q", l)
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("LIST line %q", l)
		}
		total += size
	}
	// The commands go round a cycle, NOOP, STAT, LIST k, UIDL k for each
	// message k, built once with the exact reply each must get (NOOP:
	// any +OK). Replies are compared as bytes: the client stays cheap
	// next to the server it measures.
	stat := fmt.Sprintf("%d %d", len(list), total)
	type step struct{ cmd, want []byte }
	var cycle []step
	add := func(cmd, want string) {
		if want != "" {
			want = "+OK " + want
		}
		cycle = append(cycle, step{[]byte(cmd + "\r\n"), []byte(want)})
	}
	for k := range max(len(list), 1) {
		add("NOOP", "")
		add("STAT", stat)
		if len(list) > 0 {
			add("LIST "+strconv.Itoa(k+1), list[k])
			add("UIDL "+strconv.Itoa(k+1), uidl[k])
		}
	}
	batch := make([]*step, r.cfg.Window)
	for seq := 0; !r.stopping(ctx); {
		c.out = c.out[:0]
		for j := range batch {
			batch[j] = &cycle[seq%len(cycle)]
			c.out = append(c.out, batch[j].cmd...)
			seq++
		}
		start := time.Now()
		c.arm()
		c.last = "pipelined batch"
		if _, err := c.nc.Write(c.out); err != nil {
			return err
		}
		for j, st := range batch {
			line, err := pop3.ReadLine(c.r, maxReplyLine)
			switch {
			case err != nil:
				return fmt.Errorf("reply %d of the batch: %w", j+1, err)
			case len(st.want) == 0 && (bytes.Equal(line, []byte("+OK")) || bytes.HasPrefix(line, []byte("+OK "))):
			case len(st.want) > 0 && bytes.Equal(line, st.want):
			default:
				return fmt.Errorf("reply %d of the batch (%s): got %q, want %q", j+1, bytes.TrimSpace(st.cmd), line, st.want)
			}
		}
		r.recordN(w, start, int64(len(batch)), 0)
	}
	_, err = c.command("QUIT")
	return err
}

// idleBuffer is the read buffer of an idle session: status lines only.
const idleBuffer = 512

// runIdle opens Concurrency sessions, logs each in, holds them all for
// Duration, samples the server's memory, then checks that every session
// still answers and ends it with QUIT.
func (r *runner) runIdle(ctx context.Context) {
	r.res.OpName = "session"
	if r.cfg.ServerPID != 0 {
		r.samplePSS(&r.res.ServerPSSBaseline)
	}
	sessions := make([]*wire, r.cfg.Concurrency)
	var opened atomic.Int64
	r.parallel(ctx, len(sessions), func(i int) {
		user := r.cfg.user(i)
		c, err := dialWire(ctx, &r.cfg, idleBuffer)
		if err == nil {
			err = c.login(user, r.cfg.Password)
			if err == nil {
				_, err = c.command("STAT")
			}
			if err != nil {
				c.close()
			}
		}
		if err != nil {
			r.fail(ctx, fmt.Errorf("idle session %s: %w", user, err))
			return
		}
		c.disarm()
		sessions[i] = c
		if n := opened.Add(1); n%1000 == 0 {
			r.progress("idle: %d sessions open", n)
		}
	})
	r.progress("idle: %d sessions open; holding them %v", opened.Load(), r.cfg.Duration)
	r.beginMeasure()
	if !sleepCtx(ctx, r.cfg.Duration) {
		r.disturbed("interrupted while holding the sessions")
	}
	if r.cfg.ServerPID != 0 {
		r.samplePSS(&r.res.ServerPSS)
	}
	r.endMeasure()
	var alive atomic.Int64
	r.parallel(ctx, len(sessions), func(i int) {
		c := sessions[i]
		if c == nil {
			return
		}
		defer c.close()
		_, err := c.command("NOOP")
		if err == nil {
			_, err = c.command("QUIT")
		}
		if err != nil {
			r.fail(ctx, fmt.Errorf("idle session %s after the hold: %w", r.cfg.user(i), err))
			return
		}
		alive.Add(1)
	})
	r.res.Ops = alive.Load()
	if r.res.Ops > 0 {
		r.res.PSSPerSession = r.res.ServerPSS / r.res.Ops
	}
}

// parallel runs f(0..n-1) on a bounded number of goroutines.
func (r *runner) parallel(ctx context.Context, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, 64) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// runStat measures connect-to-STAT time: MaxOps connections one after
// the other, each timed from the connect to STAT's reply. The first
// one on a maildrop without an index is the "first STAT".
func (r *runner) runStat(ctx context.Context) {
	r.res.OpName = "connection"
	opts := r.cfg.clientOptions()
	var times []time.Duration
	r.beginMeasure()
	for i := int64(0); i < r.cfg.MaxOps && ctx.Err() == nil; i++ {
		user := r.cfg.user(0)
		n, d, err := r.statOnce(ctx, user, opts)
		if err != nil {
			r.fail(ctx, fmt.Errorf("stat %s: %w", user, err))
			continue
		}
		times = append(times, d)
		r.progress("stat: connection %d: %d messages, STAT after %v", i+1, n, d.Round(time.Millisecond))
	}
	r.endMeasure()
	r.res.Ops = int64(len(times))
	if len(times) > 0 {
		r.res.FirstMs = float64(times[0]) / 1e6
	}
	if len(times) > 1 {
		rest := slices.Clone(times[1:])
		slices.Sort(rest)
		r.res.RepeatedMedianMs = float64(rest[len(rest)/2]) / 1e6
	} else {
		r.disturbed("fewer than two connections: no repeated STAT")
	}
	r.samples = times
}

// statOnce connects, logs in and sends STAT, and returns the time from
// the connect to STAT's reply; the QUIT after it is not timed.
func (r *runner) statOnce(ctx context.Context, user string, opts *pop3client.Options) (int, time.Duration, error) {
	start := time.Now()
	c, err := pop3client.Dial(ctx, r.cfg.Addr, opts)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if err := c.Login(ctx, user, r.cfg.Password); err != nil {
		return 0, 0, err
	}
	n, _, err := c.Stat(ctx)
	if err != nil {
		return 0, 0, err
	}
	elapsed := time.Since(start)
	if want := r.cfg.ExpectMessages; want > 0 && n != want {
		return n, 0, fmt.Errorf("STAT: %d messages, want %d", n, want)
	}
	return n, elapsed, c.Quit(ctx)
}
