package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, wrapped.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	client, server = Wrap(c), Wrap(s)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// A stream larger than the socket buffers, read in small pieces, arrives
// whole: the writer waits in the poller whenever the buffer is full.
func TestStream(t *testing.T) {
	c, s := pair(t)
	if _, ok := c.(*Conn); !ok {
		t.Fatalf("Wrap of a TCP connection gave %T", c)
	}
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		n, err := s.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		s.Close()
		errc <- err
	}()
	var got bytes.Buffer
	buf := make([]byte, 1000)
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d octets: %v", got.Len(), err)
		}
		if got.Len()%(1<<20) < 1000 {
			time.Sleep(time.Millisecond) // let the writer fill the buffers
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d octets, not the %d written", got.Len(), len(want))
	}
}

// Errors look as net.Conn's do: deadlines time out with
// os.ErrDeadlineExceeded, a closed connection gives net.ErrClosed, a
// reset peer a system call error, all as *net.OpError.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		do    func(c, s net.Conn) error
		check func(error) bool
	}{
		{"read deadline", func(c, s net.Conn) error {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			_, err := c.Read(make([]byte, 10))
			return err
		}, func(err error) bool {
			var ne net.Error
			return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
		}},
		{"write deadline", func(c, s net.Conn) error {
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := c.Write(make([]byte, 64<<20)) // more than the buffers hold
			return err
		}, func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }},
		{"closed", func(c, s net.Conn) error {
			c.Close()
			_, err := c.Read(make([]byte, 10))
			return err
		}, func(err error) bool { return errors.Is(err, net.ErrClosed) }},
		{"end of stream", func(c, s net.Conn) error {
			s.Close()
			_, err := c.Read(make([]byte, 10))
			return err
		}, func(err error) bool { return err == io.EOF }},
		{"reset peer", func(c, s net.Conn) error {
			s.(*Conn).Conn.(*net.TCPConn).SetLinger(0)
			s.Close()
			time.Sleep(20 * time.Millisecond)
			var err error
			for range 10 {
				if _, err = c.Write([]byte("x")); err != nil {
					break
				}
			}
			return err
		}, func(err error) bool {
			return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			err := tc.do(c, s)
			var oe *net.OpError
			if err != io.EOF && !errors.As(err, &oe) {
				t.Fatalf("error %v (%T), want a *net.OpError", err, err)
			}
			if !tc.check(err) {
				t.Fatalf("unexpected error: %v", err)
			}
		})
	}
}

// What is not a TCP connection is used as it is.
func TestWrapOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a net.Pipe")
	}
}
