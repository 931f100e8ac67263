package lmtp

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Observer is told of the events a server's metrics count (package
// metrics implements it). Without one, the default, nothing is counted.
// The methods are called from connection goroutines, concurrently: they
// must be cheap and must not block. No argument names a user, an address
// or a host.
type Observer interface {
	// ConnectionOpened and ConnectionClosed bracket an accepted
	// connection.
	ConnectionOpened()
	ConnectionClosed()
	// Delivery reports what one recipient was told: the reply code (250
	// once its copy is durable, 4xx or 5xx if refused at RCPT or after
	// DATA) and the RFC 3463 enhanced code. For a copy that was stored,
	// or tried, octets is its size and d the time the store took;
	// otherwise both are 0.
	Delivery(code int, enhanced [3]int, octets int64, d time.Duration)
	// Panic counts a session's panic, which go-smtp recovered.
	Panic()
}

// SetObserver makes o receive the server's events from now on (nil stops
// them). It may be called at any time.
func (s *Server) SetObserver(o Observer) {
	if o == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&o)
}

// obs returns the current observer, or nil.
func (s *Server) obs() Observer {
	if p := s.observer.Load(); p != nil {
		return *p
	}
	return nil
}

// observerSlot holds a Server's Observer.
type observerSlot = atomic.Pointer[Observer]

// delivered is the status of a recipient whose copy is durable.
var delivered = [3]int{2, 0, 0}

// observeReply reports the reply a recipient got for err (nil: 250).
func (s *Server) observeReply(err error, octets int64, d time.Duration) {
	o := s.obs()
	if o == nil {
		return
	}
	if err == nil {
		o.Delivery(250, delivered, octets, d)
		return
	}
	// go-smtp's own refusals (the size limit) are SMTP errors already;
	// reply turns the rest into one.
	var e *smtp.SMTPError
	if !errors.As(err, &e) {
		errors.As(reply(err), &e)
	}
	o.Delivery(e.Code, [3]int(e.EnhancedCode), octets, d)
}
