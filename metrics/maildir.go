package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postoffice-mail/postoffice/store/maildir"
)

// Maildir counts the Maildir store's lock contention; it implements
// maildir.Observer. (A maildrop refused because another session holds it
// is a login result: postoffice_pop3_logins_total{result="in_use"}.)
type Maildir struct {
	indexWait     prometheus.Histogram
	indexTimeouts prometheus.Counter
	takeovers     prometheus.Counter
}

var _ maildir.Observer = (*Maildir)(nil)

func newMaildir() *Maildir {
	return &Maildir{
		indexWait: newHistogram("maildir", "index_lock_wait_seconds",
			"Time taken to get a maildir's index lock (deliveries, logins that bring the index up to date, QUIT), got or not.", lockBuckets),
		indexTimeouts: newCounter("maildir", "index_lock_failures_total",
			"Index locks not got: the 30-second bound passed or the caller gave up (the delivery or login failed with a temporary error)."),
		takeovers: newCounter("maildir", "lock_takeovers_total",
			"Session locks taken over from a holder that crashed, hung or whose lease ran out."),
	}
}

func (m *Maildir) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.indexWait, m.indexTimeouts, m.takeovers}
}

// IndexLockWaited implements maildir.Observer.
func (m *Maildir) IndexLockWaited(d time.Duration, err error) {
	m.indexWait.Observe(d.Seconds())
	if err != nil {
		m.indexTimeouts.Inc()
	}
}

// LockTakenOver implements maildir.Observer.
func (m *Maildir) LockTakenOver() { m.takeovers.Inc() }
