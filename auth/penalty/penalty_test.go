package penalty

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newTracker returns a tracker with the defaults and a fake clock.
func newTracker(t testing.TB, edit func(*Config)) (*Tracker, *clock) {
	t.Helper()
	c := &clock{now: time.Unix(1_700_000_000, 0)}
	cfg := DefaultConfig()
	cfg.Now = c.Now
	if edit != nil {
		edit(&cfg)
	}
	return New(cfg), c
}

var (
	attacker = netip.MustParseAddr("192.0.2.66")
	neighbor = netip.MustParseAddr("192.0.2.67")
	alice    = netip.MustParseAddr("198.51.100.1")
	v6a      = netip.MustParseAddr("2001:db8:1:2::a")
	v6b      = netip.MustParseAddr("2001:db8:1:2:ffff::b") // same /64
	v6c      = netip.MustParseAddr("2001:db8:1:3::a")      // next /64
)

const s = time.Second

// TestDelaySchedule checks the Dovecot-like schedule: nothing before the
// first failure, then 2, 4, 8, and 15 seconds from then on.
func TestDelaySchedule(t *testing.T) {
	t.Parallel()
	tr, _ := newTracker(t, nil)
	want := []time.Duration{0, 2 * s, 4 * s, 8 * s, 15 * s, 15 * s, 15 * s}
	for i, w := range want {
		if got := tr.Delay(attacker, "alice"); got != w {
			t.Errorf("after %d failures: Delay = %v, want %v", i, got, w)
		}
		tr.Failure(attacker, "alice", fmt.Sprint("guess", i))
	}
}

func TestDelayScheduleCustom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, max time.Duration
		want      []time.Duration
	}{
		{1 * s, 60 * s, []time.Duration{0, 1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s}},
		{3 * s, 3 * s, []time.Duration{0, 3 * s, 3 * s, 3 * s}},
		{5 * s, 1 * s, []time.Duration{0, 5 * s, 5 * s}}, // Max below Base is Base
		{0, 15 * s, []time.Duration{0, 0, 0}},            // disabled
	}
	for _, tt := range tests {
		tr, _ := newTracker(t, func(c *Config) { c.Base, c.Max = tt.base, tt.max })
		for i, w := range tt.want {
			if got := tr.Delay(attacker, "alice"); got != w {
				t.Errorf("base %v, max %v, after %d failures: Delay = %v, want %v", tt.base, tt.max, i, got, w)
			}
			tr.Failure(attacker, "alice", fmt.Sprint("guess", i))
		}
		if tt.base == 0 && tr.Len() != 0 {
			t.Errorf("a disabled tracker remembers %d keys", tr.Len())
		}
	}
}

// TestKeysAreSeparate checks that the address and the user name are
// counted apart and the delay is the larger of the two.
func TestKeysAreSeparate(t *testing.T) {
	t.Parallel()
	tr, _ := newTracker(t, nil)
	// One address, many users: the address is delayed for every user.
	for i := range 3 {
		tr.Failure(attacker, fmt.Sprint("user", i), "guess")
	}
	tests := []struct {
		name   string
		remote netip.Addr
		user   string
		want   time.Duration
	}{
		{"same address, new user", attacker, "someone", 8 * s},
		{"neighbouring IPv4 address", neighbor, "someone", 0},
		{"other address, a tried user", alice, "user0", 2 * s},
		{"no address, a tried user", netip.Addr{}, "user1", 2 * s},
		{"user names are case-folded", alice, "USER2", 2 * s},
		{"IPv4-mapped form of the address", netip.AddrFrom16(attacker.As16()), "x", 8 * s},
	}
	for _, tt := range tests {
		if got := tr.Delay(tt.remote, tt.user); got != tt.want {
			t.Errorf("%s: Delay = %v, want %v", tt.name, got, tt.want)
		}
	}

	// Many addresses, one user: the user is delayed from everywhere.
	for i := range 4 {
		tr.Failure(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), "bob", fmt.Sprint("guess", i))
	}
	if got := tr.Delay(alice, "bob"); got != 15*s {
		t.Errorf("user guessed from 4 addresses: Delay = %v, want 15s", got)
	}
	if got := tr.Delay(netip.MustParseAddr("203.0.113.0"), "carol"); got != 2*s {
		t.Errorf("one of those addresses, another user: Delay = %v, want 2s", got)
	}
}

func TestIPv6GroupedBy64(t *testing.T) {
	t.Parallel()
	tr, _ := newTracker(t, nil)
	tr.Failure(v6a, "u1", "x")
	tr.Failure(v6b, "u2", "x")
	if got := tr.Delay(v6b, "u3"); got != 4*s {
		t.Errorf("same /64: Delay = %v, want 4s", got)
	}
	if got := tr.Delay(v6c, "u3"); got != 0 {
		t.Errorf("next /64: Delay = %v, want 0", got)
	}
	zoned := netip.MustParseAddr("fe80::1%eth0")
	tr.Failure(zoned, "u4", "x")
	if got := tr.Delay(netip.MustParseAddr("fe80::2"), "u5"); got != 2*s {
		t.Errorf("zones are ignored: Delay = %v, want 2s", got)
	}
}

// TestRepeatedPasswordDoesNotGrow pins the rule for clients polling with
// an outdated password.
func TestRepeatedPasswordDoesNotGrow(t *testing.T) {
	t.Parallel()
	tr, clk := newTracker(t, nil)
	for range 10 {
		tr.Failure(alice, "alice", "old password")
		clk.Advance(time.Minute)
	}
	if got := tr.Delay(alice, "alice"); got != 2*s {
		t.Errorf("one password repeated: Delay = %v, want 2s", got)
	}
	// Each repetition keeps the penalty alive: the window counts from
	// the last failure.
	clk.Advance(DefaultWindow - time.Minute - time.Second)
	if got := tr.Delay(alice, "alice"); got != 2*s {
		t.Errorf("within the window of the last repetition: Delay = %v, want 2s", got)
	}
	// Alternating between a few old passwords counts each once.
	tr.Failure(alice, "alice", "older password")
	for range 5 {
		tr.Failure(alice, "alice", "old password")
		tr.Failure(alice, "alice", "older password")
	}
	if got := tr.Delay(alice, "alice"); got != 4*s {
		t.Errorf("two passwords alternating: Delay = %v, want 4s", got)
	}
	// The same password for another user is another guess.
	tr.Failure(alice, "alice2", "old password")
	if got := tr.Delay(alice, "nobody"); got != 8*s {
		t.Errorf("same password, other user: address Delay = %v, want 8s", got)
	}
	// Without a password every failure counts.
	tr2, _ := newTracker(t, nil)
	for range 3 {
		tr2.Failure(alice, "alice", "")
	}
	if got := tr2.Delay(alice, "alice"); got != 8*s {
		t.Errorf("three failures without passwords: Delay = %v, want 8s", got)
	}
}

func TestRememberedPasswordsAreBounded(t *testing.T) {
	t.Parallel()
	tr, _ := newTracker(t, func(c *Config) { c.Max = time.Hour })
	for i := range rememberedPasswords + 1 {
		tr.Failure(alice, "alice", fmt.Sprint("pw", i))
	}
	// pw0 has been pushed out, so it counts again; pw8 is remembered.
	tr.Failure(alice, "alice", "pw0")
	tr.Failure(alice, "alice", fmt.Sprint("pw", rememberedPasswords))
	want := tr.delayFor(rememberedPasswords + 2)
	if got := tr.Delay(alice, "alice"); got != want {
		t.Errorf("Delay = %v, want %v", got, want)
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	tr, clk := newTracker(t, nil)
	tr.Failure(attacker, "alice", "a")
	tr.Failure(attacker, "alice", "b")
	clk.Advance(DefaultWindow - time.Second)
	if got := tr.Delay(attacker, "alice"); got != 4*s {
		t.Errorf("just inside the window: Delay = %v, want 4s", got)
	}
	clk.Advance(time.Second)
	if got := tr.Delay(attacker, "alice"); got != 0 {
		t.Errorf("window over: Delay = %v, want 0", got)
	}
	// A failure after the window starts again from one.
	tr.Failure(attacker, "alice", "c")
	if got := tr.Delay(attacker, "alice"); got != 2*s {
		t.Errorf("first failure of a new window: Delay = %v, want 2s", got)
	}
	// And an old password is forgotten with the rest.
	clk.Advance(DefaultWindow)
	tr.Failure(attacker, "alice", "c")
	if got := tr.Delay(attacker, "alice"); got != 2*s {
		t.Errorf("old password after the window: Delay = %v, want 2s", got)
	}
	// Expired entries are cleaned up by later failures.
	clk.Advance(DefaultWindow)
	tr.Failure(alice, "bob", "x")
	if n := tr.Len(); n != 2 {
		t.Errorf("Len after expiry = %d, want 2 (bob's address and name)", n)
	}
}

func TestSuccess(t *testing.T) {
	t.Parallel()
	t.Run("own typos are forgiven", func(t *testing.T) {
		tr, _ := newTracker(t, nil)
		tr.Failure(alice, "alice", "typo1")
		tr.Failure(alice, "alice", "typo2")
		tr.Success(alice, "alice")
		if got := tr.Delay(alice, "alice"); got != 0 {
			t.Errorf("after success: Delay = %v, want 0", got)
		}
		if tr.Len() != 0 {
			t.Errorf("Len = %d, want 0", tr.Len())
		}
	})
	t.Run("one owned account does not reset the address", func(t *testing.T) {
		tr, _ := newTracker(t, nil)
		for i := range 3 {
			tr.Failure(attacker, "victim", fmt.Sprint("guess", i))
			tr.Success(attacker, "mallory") // logs into their own account
		}
		if got := tr.Delay(attacker, "victim2"); got != 8*s {
			t.Errorf("attacker's address: Delay = %v, want 8s", got)
		}
		if got := tr.Delay(alice, "victim"); got != 8*s {
			t.Errorf("victim's name: Delay = %v, want 8s", got)
		}
	})
	t.Run("success clears the user name everywhere", func(t *testing.T) {
		tr, _ := newTracker(t, nil)
		tr.Failure(attacker, "alice", "guess")
		tr.Success(alice, "Alice")
		if got := tr.Delay(alice, "alice"); got != 0 {
			t.Errorf("alice from her address: Delay = %v, want 0", got)
		}
		if got := tr.Delay(attacker, "alice"); got != 2*s {
			t.Errorf("the attacker's address keeps its penalty: Delay = %v, want 2s", got)
		}
	})
	t.Run("shared address with several failing users", func(t *testing.T) {
		tr, _ := newTracker(t, nil)
		tr.Failure(alice, "alice", "typo")
		tr.Failure(alice, "bob", "typo")
		tr.Success(alice, "alice")
		if got := tr.Delay(alice, "carol"); got != 4*s {
			t.Errorf("address after a success by one of two users: Delay = %v, want 4s", got)
		}
	})
	t.Run("many users overflow", func(t *testing.T) {
		tr, _ := newTracker(t, nil)
		for i := range rememberedUsers + 1 {
			tr.Failure(attacker, fmt.Sprint("u", i), "x")
		}
		tr.Success(attacker, "u0")
		if got := tr.Delay(attacker, "z"); got == 0 {
			t.Error("a success cleared an address that tried many users")
		}
	})
}

func TestTrusted(t *testing.T) {
	t.Parallel()
	tr, _ := newTracker(t, func(c *Config) {
		c.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	})
	for range 5 {
		tr.Failure(attacker, "alice", "")
		tr.Failure(v6a, "bob", "")
	}
	if tr.Len() != 0 {
		t.Errorf("trusted failures were remembered: Len = %d", tr.Len())
	}
	if got := tr.Delay(attacker, "alice"); got != 0 {
		t.Errorf("trusted: Delay = %v, want 0", got)
	}
	tr.Failure(alice, "carol", "")
	if got := tr.Delay(netip.AddrFrom16(attacker.As16()), "carol"); got != 0 {
		t.Errorf("trusted (IPv4-mapped) user with failures elsewhere: Delay = %v, want 0", got)
	}
	if !tr.IsTrusted(v6b) || tr.IsTrusted(alice) || tr.IsTrusted(netip.Addr{}) {
		t.Error("IsTrusted is wrong")
	}
}

// TestMaxTracked checks the memory bound and that the key forgotten is
// the one whose last failure is oldest.
func TestMaxTracked(t *testing.T) {
	t.Parallel()
	tr, clk := newTracker(t, func(c *Config) { c.MaxTracked = 10 })
	tr.Failure(alice, "alice", "x") // 2 keys
	for i := range 20 {
		clk.Advance(time.Second)
		tr.Failure(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), "spray", "")
		// Keep alice's address fresh; her name goes stale.
		if i == 10 {
			tr.Failure(alice, "other", "y")
		}
	}
	if n := tr.Len(); n > 10 {
		t.Errorf("Len = %d, above MaxTracked", n)
	}
	if got := tr.Delay(netip.MustParseAddr("203.0.113.0"), "nobody"); got != 0 {
		t.Errorf("oldest address still remembered: Delay = %v", got)
	}
	if got := tr.Delay(netip.MustParseAddr("203.0.113.19"), "nobody"); got != 2*s {
		t.Errorf("newest address forgotten: Delay = %v", got)
	}
	if got := tr.Delay(netip.Addr{}, "spray"); got != 15*s {
		t.Errorf("user refreshed by every failure was forgotten: Delay = %v", got)
	}
	if got := tr.Delay(netip.Addr{}, "alice"); got != 0 {
		t.Errorf("stale user name still remembered: Delay = %v", got)
	}
}

// TestListConsistency drives random operations and checks the internal
// list against the map after each one.
func TestListConsistency(t *testing.T) {
	t.Parallel()
	tr, clk := newTracker(t, func(c *Config) { c.MaxTracked = 16; c.Window = time.Minute })
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		remote := netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(12))})
		user := fmt.Sprint("u", rng.IntN(12))
		switch rng.IntN(4) {
		case 0:
			tr.Success(remote, user)
		case 1:
			clk.Advance(time.Duration(rng.IntN(20)) * time.Second)
		default:
			tr.Failure(remote, user, fmt.Sprint(rng.IntN(3)))
		}
		checkList(t, tr, i)
	}
}

func checkList(t *testing.T, tr *Tracker, step int) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	var newer *entry
	for e := tr.newest; e != nil; e = e.older {
		if e.newer != newer || tr.entries[e.key] != e {
			t.Fatalf("step %d: list links broken at entry %d", step, n)
		}
		if newer != nil && e.last.After(newer.last) {
			t.Fatalf("step %d: list out of order", step)
		}
		newer = e
		n++
	}
	if newer != tr.oldest || n != len(tr.entries) || n > tr.maxTracked {
		t.Fatalf("step %d: list has %d entries, map %d, bound %d", step, n, len(tr.entries), tr.maxTracked)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	tr := New(Config{Base: time.Second, Max: 4 * time.Second, MaxTracked: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				remote := netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 40)})
				user := fmt.Sprint("u", i%30)
				if d := tr.Delay(remote, user); d < 0 || d > 4*time.Second {
					t.Errorf("Delay = %v", d)
				}
				if i%7 == 0 {
					tr.Success(remote, user)
				} else {
					tr.Failure(remote, user, fmt.Sprint(i%5))
				}
			}
		})
	}
	wg.Wait()
	if tr.Len() > 50 {
		t.Errorf("Len = %d, above MaxTracked", tr.Len())
	}
}

// FuzzDelayBounds is the property test: whatever the configuration and
// the sequence of events, Delay is never negative and never above the
// maximum, and it only grows with failures inside the window.
func FuzzDelayBounds(f *testing.F) {
	f.Add(int64(2*s), int64(15*s), []byte{0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(int64(1), int64(1<<62), []byte("failure after failure after failure"))
	f.Add(int64(-5), int64(-1), []byte{9, 9, 9})
	f.Add(int64(1<<62), int64(1<<63-1), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, base, maxDelay int64, ops []byte) {
		tr, clk := newTracker(t, func(c *Config) {
			c.Base, c.Max, c.MaxTracked = time.Duration(base), time.Duration(maxDelay), 8
		})
		limit := max(time.Duration(maxDelay), time.Duration(base), 0)
		for _, op := range ops {
			remote := netip.AddrFrom4([4]byte{192, 0, 2, op & 3})
			user := fmt.Sprint("u", op>>2&3)
			before := tr.Delay(remote, user)
			switch op >> 4 {
			case 0:
				clk.Advance(time.Duration(op) * time.Minute)
			case 1:
				tr.Success(remote, user)
			default:
				tr.Failure(remote, user, "")
				if after := tr.Delay(remote, user); after < before {
					t.Fatalf("a failure lowered Delay from %v to %v", before, after)
				}
			}
			if d := tr.Delay(remote, user); d < 0 || d > limit {
				t.Fatalf("Delay = %v outside [0, %v] (base %v, max %v)", d, limit, time.Duration(base), time.Duration(maxDelay))
			}
		}
	})
}

// BenchmarkContention measures Delay and Failure from many goroutines on
// a tracker that keeps evicting, the state of a server under a
// distributed guessing attack.
func BenchmarkContention(b *testing.B) {
	tr := New(Config{Base: time.Second, Max: 15 * time.Second, MaxTracked: 10000})
	var seq uint32
	var mu sync.Mutex
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		seq++
		rng := rand.New(rand.NewPCG(uint64(seq), 0))
		mu.Unlock()
		for pb.Next() {
			n := rng.Uint32()
			remote := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
			user := "user" + string(rune('a'+n%26))
			tr.Delay(remote, user)
			tr.Failure(remote, user, "guess")
		}
	})
}
