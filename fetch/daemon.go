package fetch

import (
	"context"
	"slices"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/pop3client"
)

// Daemon fetches the accounts every interval until ctx is done, calling
// report with each account's result. An account is not polled again
// before the server's LOGIN-DELAY (RFC 2449 §6.5) has passed since its
// last login, and a refusal with [LOGIN-DELAY] or another temporary error
// puts it off by the same rule: the interval, or the server's delay if
// longer.
func Daemon(ctx context.Context, cfg *Config, names []string, interval time.Duration, opts Options, report func(Result)) {
	next := make(map[string]time.Time)
	for {
		for i := range cfg.Accounts {
			a := &cfg.Accounts[i]
			if len(names) > 0 && !slices.Contains(names, a.Name) {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if at, ok := next[a.Name]; ok && now().Before(at) {
				continue
			}
			started := now()
			res := FetchAccount(ctx, cfg, a, opts)
			report(res)
			next[a.Name] = nextPoll(started, interval, res)
		}
		wake := now().Add(interval)
		for _, at := range next {
			if at.Before(wake) {
				wake = at
			}
		}
		t := time.NewTimer(max(time.Until(wake), time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// nextPoll is when an account may be polled again.
func nextPoll(started time.Time, interval time.Duration, res Result) time.Time {
	wait := interval
	if res.LoginDelay > wait {
		wait = res.LoginDelay
	}
	if pop3client.HasCode(res.Err, pop3.CodeLoginDelay) && res.LoginDelay == 0 {
		// Refused for logging in too soon, and the delay is unknown
		// (the server lists LOGIN-DELAY only after login): back off.
		wait = max(interval, 15*time.Minute)
	}
	return started.Add(wait)
}
