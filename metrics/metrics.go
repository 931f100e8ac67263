// Package metrics counts what the server does, for Prometheus: sessions,
// logins, commands, retrievals and deletions (package pop3server),
// deliveries (package lmtp), lock contention (package store/maildir), TLS
// handshakes, recovered panics, and the PostgreSQL pool (read from the
// pool at each scrape). It implements the narrow Observer
// interfaces of those packages, which know nothing of Prometheus, and
// keeps everything in a registry of its own (never the global one), so
// that several servers in one process (the tests) do not share counts.
//
// Labels come from small fixed sets: listener kinds, command names, SASL
// mechanisms the configuration offers, result words, reply codes. A user
// name or an address is never a label. docs/metrics.md lists every
// metric and what to alert on.
//
// The POP3 hooks on the data path (commands, retrievals, octets sent)
// allocate nothing: every series they touch is resolved when the
// Metrics is made.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace starts every metric name of the server's own.
const namespace = "postoffice"

// Metrics holds the server's metrics and the registry they are in.
type Metrics struct {
	reg *prometheus.Registry

	// POP3 receives pop3server's events (pop3server.Observer).
	POP3 *POP3
	// LMTP receives the LMTP listener's events (lmtp.Observer).
	LMTP *LMTP
	// Maildir receives the Maildir store's lock events
	// (maildir.Observer).
	Maildir *Maildir

	panics *prometheus.CounterVec
}

// New makes the metrics in a new registry, with the Go runtime's and the
// process's own collectors beside them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	m.panics = newCounterVec("", "panics_recovered_total",
		"Panics in a session handler that were recovered and logged (the session ended; the server went on). Any is a bug.", "server")
	m.POP3 = newPOP3(m.panics.WithLabelValues("pop3"))
	m.LMTP = newLMTP(m.panics.WithLabelValues("lmtp"))
	m.Maildir = newMaildir()
	reg.MustRegister(m.panics)
	reg.MustRegister(m.POP3.collectors()...)
	reg.MustRegister(m.LMTP.collectors()...)
	reg.MustRegister(m.Maildir.collectors()...)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return m
}

// Registry returns the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats. A
// collector that fails is reported in the answer, not by failing the
// scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// latencyBuckets are the histogram buckets, in seconds, of operations a
// client waits for: from a cached maildrop opened in a few hundred
// microseconds to a password hash or a large message taking seconds.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// lockBuckets are the buckets of lock waits: normally none at all, a few
// milliseconds when deliveries and sessions meet, up to the 30-second
// bound of the index lock.
var lockBuckets = []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30}

// The constructors of the server's own metrics: the namespace, a
// subsystem (pop3, lmtp, maildir), a name and a help text.

func newCounter(subsystem, name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help})
}

func newCounterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}, labels)
}

func newGauge(subsystem, name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help})
}

func newGaugeVec(subsystem, name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}, labels)
}

func newHistogram(subsystem, name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help, Buckets: buckets})
}
