package pop3server

import (
	"container/list"
	"errors"
	"net"
	"syscall"
)

// Defences against clients that hold connections without using them.
//
// A slowloris client opens many connections and keeps each one alive by
// sending a byte now and then, never a whole command. The idle timeout
// cannot be shortened to fight it: RFC 1939 §3 wants at least ten minutes.
// Without more, MaxConnections such clients would lock everyone else out
// for that long. So when the server is full, a new connection takes the
// place of the oldest one that has not logged in (it is told so, with
// RFC 3206 SYS/TEMP, and closed); a new connection is refused only when
// every connection belongs to a logged-in user, or while evicted
// connections are still winding down (see evictionHeadroom). A real client
// logs in within moments of connecting, so it would take MaxConnections
// newer connections arriving during its own login to push it out.

// preauthQueue lists the admitted connections that have not logged in,
// oldest first. It is guarded by Server.mu.
type preauthQueue struct {
	order   list.List // of *conn
	elem    map[*conn]*list.Element
	evicted map[*conn]bool // told to go, not yet released
}

func (q *preauthQueue) push(c *conn) {
	if q.elem == nil {
		q.elem = make(map[*conn]*list.Element)
		q.evicted = make(map[*conn]bool)
	}
	q.elem[c] = q.order.PushBack(c)
}

func (q *preauthQueue) remove(c *conn) {
	if e, ok := q.elem[c]; ok {
		q.order.Remove(e)
		delete(q.elem, c)
	}
}

// evictionHeadroom is how far above MaxConnections evictions may take the
// number of open connections while the evicted ones end (a session blocked
// in a read ends at once; one pausing after a failed login, only when the
// pause is over): a tenth of the limit, at least one.
func evictionHeadroom(maxConns int) int { return max(maxConns/10, 1) }

// evictOldest makes room for a new connection by telling the oldest one
// not logged in to go. It reports whether it did; s.mu is held.
func (s *Server) evictOldest(maxConns int) bool {
	if len(s.conns) >= maxConns+evictionHeadroom(maxConns) {
		return false
	}
	e := s.preauth.order.Front()
	if e == nil {
		return false
	}
	old := e.Value.(*conn)
	s.preauth.remove(old)
	s.preauth.evicted[old] = true
	// The session's reads see the end of the stream from now on (a read
	// deadline would not do: the session sets its own before each read);
	// the session itself then says why and closes (conn.loop), so that
	// only its goroutine ever writes to the connection. A connection that
	// cannot be half-closed is closed.
	if hc, ok := old.raw.(interface{ CloseRead() error }); !ok || hc.CloseRead() != nil {
		old.raw.Close()
	}
	old.log.Warn("connection evicted: server full", "reason", "oldest connection not logged in")
	return true
}

// loggedIn takes a session out of the eviction queue once its user has
// logged in.
func (s *Server) loggedIn(c *conn) {
	s.mu.Lock()
	s.preauth.remove(c)
	s.mu.Unlock()
}

// wasEvicted reports whether the session was told to go by evictOldest.
func (s *Server) wasEvicted(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.preauth.evicted[c]
}

// evictedReply is the last line an evicted session sends.
const evictedReply = "-ERR [SYS/TEMP] server busy, closing connection not logged in, try again later"

// retryAccept reports whether an Accept error is one to wait out rather
// than a dead listener: running out of file descriptors (EMFILE, ENFILE)
// or kernel memory (ENOBUFS, ENOMEM), a connection that went away while
// queued (ECONNABORTED), a timeout. Go's Temporary() says so for some of
// these, but is deprecated and silent about ENOBUFS and ENOMEM; naming the
// errors keeps the loop right whatever wraps them.
func retryAccept(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS,
		syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EPROTO} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
