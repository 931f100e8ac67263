package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolStats is what the PostgreSQL connection pool reports (pgxpool's
// Stat, copied so that this package needs no database driver).
type PoolStats struct {
	Acquired, Idle, Constructing, Max int32
	// Acquires counts connections handed out; EmptyAcquires those that
	// had to wait for one; CanceledAcquires waits given up (the acquire
	// timeout passed, the client went); EmptyAcquireWait is the time
	// spent waiting.
	Acquires, EmptyAcquires, CanceledAcquires int64
	EmptyAcquireWait                          time.Duration
}

// poolCollector reads the pool's counters at each scrape: the pool keeps
// them anyway, so counting costs the data path nothing.
type poolCollector struct {
	stats                                          func() PoolStats
	conns, max, acquires, empty, canceled, waiting *prometheus.Desc
}

// WatchPool adds the PostgreSQL pool's metrics, read from stats at each
// scrape. Call it once, when the store or the user database is in
// PostgreSQL.
func (m *Metrics) WatchPool(stats func() PoolStats) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "postgres", name), help, labels, nil)
	}
	m.reg.MustRegister(&poolCollector{
		stats: stats,
		conns: d("pool_connections", "Connections of this node's PostgreSQL pool, by state (acquired, idle, constructing).", "state"),
		max:   d("pool_max_connections", "The pool's bound (postgres.max_conns)."),
		acquires: d("pool_acquires_total",
			"Connections taken from the pool (an operation: a login, a message chunk, a QUIT, a delivery, a lease renewal)."),
		empty: d("pool_empty_acquires_total",
			"Acquires that found no idle connection and waited for one: the pool is too small for the load or the database is slow."),
		canceled: d("pool_canceled_acquires_total",
			"Waits for a connection given up (postgres.acquire_timeout passed, or the client went): clients got a temporary error."),
		waiting: d("pool_acquire_wait_seconds_total",
			"Time spent waiting for a free connection; its rate over the rate of empty acquires is the average wait."),
	})
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.max, c.acquires, c.empty, c.canceled, c.waiting} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.Acquired), "acquired")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.Constructing), "constructing")
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(s.Max))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.Acquires))
	ch <- prometheus.MustNewConstMetric(c.empty, prometheus.CounterValue, float64(s.EmptyAcquires))
	ch <- prometheus.MustNewConstMetric(c.canceled, prometheus.CounterValue, float64(s.CanceledAcquires))
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.CounterValue, s.EmptyAcquireWait.Seconds())
}
