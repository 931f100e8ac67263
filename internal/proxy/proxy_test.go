package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// serve runs a greeting server on a proxy Listener: it reports each
// connection's remote address in its greeting, then echoes one line.
func serve(t *testing.T, cfg Config) string {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, cfg)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, "+OK "+c.RemoteAddr().String()+"\r\n")
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				io.WriteString(c, "echo "+line)
			}()
		}
	}()
	return inner.Addr().String()
}

// dial connects, sends prefix first (a PROXY header or nothing), and
// returns the greeting.
func dial(t *testing.T, addr string, prefix []byte) (net.Conn, *bufio.Reader, string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if len(prefix) > 0 {
		c.Write(prefix)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	return c, r, strings.TrimSpace(line), err
}

func header(t *testing.T, version byte, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(version,
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:110")))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// From a trusted load balancer, v1 and v2 headers name the client.
func TestTrustedHeaders(t *testing.T) {
	t.Parallel()
	addr := serve(t, Config{Trusted: loopback})
	for _, tc := range []struct {
		version byte
		src     string
	}{{1, "198.51.100.7:40000"}, {2, "198.51.100.8:40001"}, {2, "[2001:db8::9]:40002"}, {1, "[2001:db8::10]:40003"}} {
		c, r, greeting, err := dial(t, addr, header(t, tc.version, tc.src))
		if err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		if want := "+OK " + tc.src; greeting != want {
			t.Errorf("v%d: greeting %q, want %q", tc.version, greeting, want)
		}
		// Octets after the header reach the server untouched.
		io.WriteString(c, "CAPA\r\n")
		if line, _ := r.ReadString('\n'); line != "echo CAPA\r\n" {
			t.Errorf("v%d: echo %q", tc.version, line)
		}
	}
}

// A health check's LOCAL header keeps the load balancer's own address.
func TestLocalCommand(t *testing.T) {
	t.Parallel()
	addr := serve(t, Config{Trusted: loopback})
	h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	_, _, greeting, err := dial(t, addr, b)
	if err != nil || !strings.HasPrefix(greeting, "+OK 127.0.0.1:") {
		t.Errorf("greeting %q, %v; want the load balancer's address", greeting, err)
	}
}

// A trusted address must send a header: a connection without one (or
// with garbage) is closed without a greeting once the timeout passes,
// and meanwhile other connections are accepted.
func TestTrustedWithoutHeader(t *testing.T) {
	t.Parallel()
	addr := serve(t, Config{Trusted: loopback, HeaderTimeout: 500 * time.Millisecond})
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A silent connection does not hold up the next one.
	start := time.Now()
	if _, _, greeting, err := dial(t, addr, header(t, 2, "203.0.113.5:1")); err != nil || greeting != "+OK 203.0.113.5:1" {
		t.Errorf("greeting %q, %v", greeting, err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("second connection waited %v behind a silent one", d)
	}
	silent.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := silent.Read(make([]byte, 100)); err == nil {
		t.Errorf("silent connection got %d octets, want it closed", n)
	}
	_, _, greeting, err := dial(t, addr, []byte("USER alice\r\n"))
	if err == nil {
		t.Errorf("connection without a header was greeted: %q", greeting)
	}
}

// From an untrusted address connections are served directly, and a forged
// header (either version) closes the connection instead of being believed.
func TestUntrusted(t *testing.T) {
	t.Parallel()
	addr := serve(t, Config{Trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	_, r, greeting, err := dial(t, addr, nil)
	if err != nil || !strings.HasPrefix(greeting, "+OK 127.0.0.1:") {
		t.Fatalf("direct greeting %q, %v", greeting, err)
	}
	_ = r
	for _, v := range []byte{1, 2} {
		c, r, greeting, err := dial(t, addr, header(t, v, "198.51.100.7:1"))
		if err != nil || strings.Contains(greeting, "198.51.100.7") {
			t.Fatalf("v%d forged: greeting %q, %v", v, greeting, err)
		}
		io.WriteString(c, "CAPA\r\n")
		if line, err := r.ReadString('\n'); err == nil {
			t.Errorf("v%d forged header: connection still served (%q)", v, line)
		}
	}
}

func TestLooksLikeHeader(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n": true,
		"PROXY":                              true,
		"\r\n\r\n\x00\r\nQUIT\n!":            true,
		"\r\n\r\n\x00":                       true,
		"\r\n":                               false,
		"\r\n\r\n":                           false,
		"CAPA\r\n":                           false,
		"USER proxy\r\n":                     false,
		"\x16\x03\x01":                       false, // a TLS ClientHello
	} {
		if got := looksLikeHeader([]byte(in)); got != want {
			t.Errorf("looksLikeHeader(%q) = %v, want %v", in, got, want)
		}
	}
}

// Close ends Accept with the inner listener's error.
func TestClose(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, Config{})
	go l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}
