package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postoffice-mail/postoffice/lmtp"
)

// LMTP counts the LMTP listener's events; it implements lmtp.Observer.
type LMTP struct {
	open       prometheus.Gauge
	total      prometheus.Counter
	deliveries *prometheus.CounterVec
	duration   prometheus.Histogram
	octets     prometheus.Counter
	panics     prometheus.Counter
}

var _ lmtp.Observer = (*LMTP)(nil)

func newLMTP(panics prometheus.Counter) *LMTP {
	l := &LMTP{
		panics: panics,
		open: newGauge("lmtp", "connections_open",
			"LMTP connections open now."),
		total: newCounter("lmtp", "connections_total",
			"LMTP connections accepted."),
		deliveries: newCounterVec("lmtp", "deliveries_total",
			"LMTP recipients by what they were told: result delivered (250, the copy is durable), "+
				"deferred (4xx, the MTA retries) or rejected (5xx, the MTA bounces), and the RFC 3463 status.", "result", "status"),
		duration: newHistogram("lmtp", "delivery_duration_seconds",
			"Time the store took to make one recipient's copy durable (or to fail), fsyncs included.", latencyBuckets),
		octets: newCounter("lmtp", "delivered_bytes_total",
			"Size of the copies delivered, trace fields included."),
	}
	l.deliveries.WithLabelValues("delivered", "2.0.0")
	l.deliveries.WithLabelValues("deferred", "4.3.0")
	return l
}

func (l *LMTP) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.open, l.total, l.deliveries, l.duration, l.octets}
}

// ConnectionOpened implements lmtp.Observer.
func (l *LMTP) ConnectionOpened() {
	l.open.Inc()
	l.total.Inc()
}

// ConnectionClosed implements lmtp.Observer.
func (l *LMTP) ConnectionClosed() { l.open.Dec() }

// Delivery implements lmtp.Observer.
func (l *LMTP) Delivery(code int, enhanced [3]int, octets int64, d time.Duration) {
	result := "rejected"
	switch code / 100 {
	case 2:
		result = "delivered"
		l.octets.Add(float64(octets))
	case 4:
		result = "deferred"
	}
	l.deliveries.WithLabelValues(result, statusLabel(enhanced)).Inc()
	if d > 0 {
		l.duration.Observe(d.Seconds())
	}
}

// Panic implements lmtp.Observer.
func (l *LMTP) Panic() { l.panics.Inc() }

// statusLabel writes an enhanced status code as "5.1.1". The codes come
// from the server's own replies, a small set.
func statusLabel(e [3]int) string {
	b := make([]byte, 0, 12)
	b = strconv.AppendInt(b, int64(e[0]), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(e[1]), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(e[2]), 10)
	return string(b)
}
