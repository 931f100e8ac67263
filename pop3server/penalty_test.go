package pop3server

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/penalty"
	"github.com/postoffice-mail/postoffice/pop3"
)

// 1,000 rapid wrong passwords from one address slow that address down,
// while another address still logs in at once.
func TestPenaltySlowsOneAddressOnly(t *testing.T) {
	const (
		attempts = 1000
		conns    = 20
		base     = 2 * time.Millisecond
		maxDelay = 20 * time.Millisecond
	)
	guard := penalty.New(penalty.Config{Base: base, Max: maxDelay, Window: time.Minute, MaxTracked: 1000})
	ts := newTestServer(t, func(c *Config) {
		c.LoginGuard = guard
		c.MaxBadCommands = attempts
		c.MaxConnectionsPerIP = conns + 1
		c.AllowInsecureAuth = true // the pipe's fake remote addresses are not loopback
	})
	l := servePipe(t, ts)
	attacker, victim := "203.0.113.66", "198.51.100.20"

	start := time.Now()
	var wg sync.WaitGroup
	for i := range conns {
		c := l.dial(t, attacker)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range attempts / conns {
				// A different guess each time: repeats would not count.
				c.send(fmt.Sprintf("USER user%d", j%5)).wantOK()
				c.send(fmt.Sprintf("PASS guess-%d-%d", i, j)).wantErr(pop3.CodeAuth)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Once penalised, every attempt waits the maximum: at least
	// (attempts/conns - a few) × maxDelay per connection.
	if min := time.Duration(attempts/conns-5) * maxDelay; elapsed < min {
		t.Errorf("%d wrong passwords took %v; the penalty should have made it at least %v", attempts, elapsed, min)
	}
	if d := guard.Delay(netip.MustParseAddr(attacker), ""); d != maxDelay {
		t.Errorf("attacker's delay %v, want the maximum %v", d, maxDelay)
	}

	// Another address is not slowed down at all.
	c := l.dial(t, victim)
	c.send("USER alice").wantOK()
	before := time.Now()
	c.send("PASS wonderland").wantOK()
	if d := time.Since(before); d >= maxDelay {
		t.Errorf("a login from an innocent address took %v", d)
	}
	// The attacker, even with the right password, waits first.
	c = l.dial(t, attacker)
	c.send("USER bob").wantOK()
	before = time.Now()
	c.send("PASS builder").wantOK()
	if d := time.Since(before); d < maxDelay {
		t.Errorf("the penalised address logged in after %v, want at least %v", d, maxDelay)
	}
}

// A client that keeps sending the same wrong password (an outdated one in
// a polling mail client) is not pushed to the maximum delay.
func TestPenaltyRepeatedPasswordDoesNotGrow(t *testing.T) {
	guard := penalty.New(penalty.Config{Base: time.Millisecond, Max: time.Second, Window: time.Minute, MaxTracked: 1000})
	ts := newTestServer(t, func(c *Config) {
		c.LoginGuard, c.MaxBadCommands, c.AllowInsecureAuth = guard, 100, true
	})
	c := servePipe(t, ts).dial(t, "192.0.2.80")
	for range 10 {
		c.send("USER alice").wantOK()
		c.send("PASS old-password").wantErr(pop3.CodeAuth)
	}
	if d := guard.Delay(netip.MustParseAddr("192.0.2.80"), "alice"); d > 2*time.Millisecond {
		t.Errorf("delay grew to %v for a repeated password", d)
	}
}
