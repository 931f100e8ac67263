package pop3client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/internal/certs"
)

// A script is a fake server that plays a transcript byte for byte: it
// sends exactly the "S:" bytes and fails the test unless the client sends
// exactly the "C:" bytes, in order. Expecting two commands in one "C:"
// step before answering the first is how pipelining is tested: a client
// that waited for the first reply would never send the second, and the
// step times out.

type step func(sc *scriptConn) error

type scriptConn struct {
	nc   net.Conn
	cert tls.Certificate
}

// S sends raw bytes.
func S(data string) step {
	return func(sc *scriptConn) error {
		sc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := io.WriteString(sc.nc, data)
		return err
	}
}

// C expects exactly these bytes from the client.
func C(want string) step {
	return func(sc *scriptConn) error {
		sc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(want))
		n, err := io.ReadFull(sc.nc, got)
		if err != nil {
			return fmt.Errorf("want client to send %q, got %q then %v", want, got[:n], err)
		}
		if string(got) != want {
			return fmt.Errorf("client sent %q, want %q", got, want)
		}
		return nil
	}
}

// Pause waits before the next step (a slow server).
func Pause(d time.Duration) step {
	return func(sc *scriptConn) error { time.Sleep(d); return nil }
}

// Hangup closes the connection (a server that dies).
func Hangup() step {
	return func(sc *scriptConn) error { return sc.nc.Close() }
}

// ServerTLS runs the server side of a TLS handshake (after STLS).
func ServerTLS() step {
	return func(sc *scriptConn) error {
		tc := tls.Server(sc.nc, &tls.Config{Certificates: []tls.Certificate{sc.cert}})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("server handshake: %w", err)
		}
		tc.SetDeadline(time.Time{})
		sc.nc = tc
		return nil
	}
}

type script struct {
	t     *testing.T
	addr  string
	roots *x509.CertPool
	done  chan error
}

// testCert is one certificate for all scripted TLS servers.
var testCert, testCertPEM = func() (tls.Certificate, []byte) {
	cert, pem, _, err := certs.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		panic(err)
	}
	return cert, pem
}()

// play starts a scripted server on a loopback port. implicitTLS makes
// it a port-995 server. The test must end the client (Close or Quit)
// before calling wait.
func play(t *testing.T, implicitTLS bool, steps ...step) *script {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(testCertPEM)
	s := &script{t: t, addr: l.Addr().String(), roots: roots, done: make(chan error, 1)}
	go func() {
		defer l.Close()
		nc, err := l.Accept()
		if err != nil {
			s.done <- err
			return
		}
		defer nc.Close()
		sc := &scriptConn{nc: nc, cert: testCert}
		if implicitTLS {
			if err := ServerTLS()(sc); err != nil {
				s.done <- err
				return
			}
		}
		for i, st := range steps {
			if err := st(sc); err != nil {
				s.done <- fmt.Errorf("step %d: %w", i+1, err)
				return
			}
		}
		// The client must send nothing the script did not expect.
		sc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		rest, _ := io.ReadAll(sc.nc)
		if len(rest) > 0 {
			s.done <- fmt.Errorf("client sent unexpected %q after the script", rest)
			return
		}
		s.done <- nil
	}()
	t.Cleanup(func() {
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("script: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("script did not finish")
		}
	})
	return s
}

// dial connects a client to the script in plaintext.
func (s *script) dial(opts ...func(*Options)) *Client {
	s.t.Helper()
	c, err := s.dialErr(opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

func (s *script) dialErr(opts ...func(*Options)) (*Client, error) {
	o := &Options{Security: SecurityNone, Timeout: 5 * time.Second, TLSConfig: &tls.Config{RootCAs: s.roots, ServerName: "localhost"}}
	for _, f := range opts {
		f(o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, s.addr, o)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// readAll reads a message body, failing the test on error.
func readAll(t *testing.T, m *MessageReader, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// wantCode checks that err is a negative reply with the response code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	perr, ok := ReplyError(err)
	if !ok {
		t.Fatalf("error %v is not a -ERR reply", err)
	}
	if perr.Code != code {
		t.Fatalf("error %v has code %q, want %q", err, perr.Code, code)
	}
}

func wantErrIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

const greeting = "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n"

func crlf(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n" }
