package lmtp

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that counts each event as a string.
type recorder struct {
	mu     sync.Mutex
	events map[string]int
	octets int64
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[fmt.Sprintf(format, args...)]++
}

func (r *recorder) ConnectionOpened() { r.add("open") }
func (r *recorder) ConnectionClosed() { r.add("close") }
func (r *recorder) Panic()            { r.add("panic") }
func (r *recorder) Delivery(code int, enhanced [3]int, octets int64, d time.Duration) {
	r.add("%d %d.%d.%d timed=%v", code, enhanced[0], enhanced[1], enhanced[2], d > 0)
	r.mu.Lock()
	r.octets += octets
	r.mu.Unlock()
}

// TestObserver: every recipient's outcome is reported with the reply it
// got, at RCPT, after DATA, and for a message refused as a whole.
func TestObserver(t *testing.T) {
	e := newEnv(t, options{})
	rec := &recorder{events: map[string]int{}}
	e.srv.SetObserver(rec)
	c := e.dial()
	c.lhlo()
	c.cmd("MAIL FROM:<s@example.net>").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("250 ")
	c.cmd("RCPT TO:<broken@example.org>").want("250 ")
	c.cmd("RCPT TO:<nobody@example.org>").want("550 5.1.1")
	c.cmd("DATA").want("354 ")
	c.send("Subject: hi\r\n\r\nhello\r\n.\r\n")
	c.want("250 ")
	c.want("451 ")
	c.cmd("MAIL FROM:<s@example.net>").want("250 ")
	c.cmd("RCPT TO:<bob@example.org>").want("250 ")
	c.cmd("DATA").want("354 ")
	c.send("Subject: nul\r\n\r\na\x00b\r\n.\r\n")
	c.want("554 5.6.0")
	c.cmd("QUIT").want("221 ")
	c.nc.Close()

	want := map[string]int{
		"open": 1, "close": 1,
		"250 2.0.0 timed=true": 1, "451 4.3.0 timed=true": 1, "550 5.1.1 timed=false": 1, "554 5.6.0 timed=false": 1,
	}
	var got map[string]int
	for deadline := time.Now().Add(5 * time.Second); ; {
		rec.mu.Lock()
		got = maps.Clone(rec.events)
		rec.mu.Unlock()
		if got["close"] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !maps.Equal(got, want) {
		t.Errorf("events %v\nwant %v", got, want)
	}
	if stored := e.messages("alice"); len(stored) != 1 || rec.octets == 0 {
		t.Errorf("octets reported %d for %d stored", rec.octets, len(stored))
	}
}
