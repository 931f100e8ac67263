package chaos

import (
	"bufio"
	"fmt"
	"github.com/postoffice-mail/postoffice/internal/ready"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/internal/certs"
)

// abuseOptions are the settings an abuse test gives "postoffice serve".
type abuseOptions struct {
	maxConns, perIP  int    // limits.max_connections(_per_ip); 0: the defaults
	handshakeTimeout string // limits.tls_handshake_timeout; "": the default
	users            int    // users u000, u001, ... besides alice and carol
}

// abuseServer is "postoffice serve" with POP3 (STLS offered) and POP3S on
// loopback ports, its users in a passwd-file with {PLAIN} passwords.
type abuseServer struct {
	plain, tls string // host:port
	certFile   string
	log        string
	cmd        *exec.Cmd
	exited     chan error
}

// startAbuseServer starts the server; it is stopped with SIGTERM when the
// test ends and must then exit 0.
func startAbuseServer(t *testing.T, opt abuseOptions) *abuseServer {
	t.Helper()
	s := newSite(t)
	for i := range opt.users {
		if err := passwdfile.Add(s.passwd, fmt.Sprintf("u%03d", i), password, "PLAIN", s.dir); err != nil {
			t.Fatal(err)
		}
	}
	certFile, keyFile, err := certs.WriteSelfSigned(s.dir, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var limits strings.Builder
	if opt.maxConns > 0 {
		fmt.Fprintf(&limits, "max_connections = %d\n", opt.maxConns)
	}
	if opt.perIP > 0 {
		fmt.Fprintf(&limits, "max_connections_per_ip = %d\n", opt.perIP)
	}
	if opt.handshakeTimeout != "" {
		fmt.Fprintf(&limits, "tls_handshake_timeout = %q\n", opt.handshakeTimeout)
	}
	bin := postofficeBinary(t, "")
	for attempt := 1; ; attempt++ {
		srv, err := tryStartAbuseServer(t, bin, s, certFile, keyFile, limits.String())
		if err == nil {
			return srv
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func tryStartAbuseServer(t *testing.T, bin string, s *site, certFile, keyFile, limits string) (*abuseServer, error) {
	plainPort, err := freePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	srv := &abuseServer{
		plain:    fmt.Sprintf("127.0.0.1:%d", plainPort),
		tls:      fmt.Sprintf("127.0.0.1:%d", tlsPort),
		certFile: certFile,
		log:      filepath.Join(s.dir, "server.log"),
	}
	conf := filepath.Join(s.dir, "postoffice.toml")
	err = os.WriteFile(conf, fmt.Appendf(nil, `# Written by the chaos abuse tests.
[server]
hostname = "localhost"
state_dir = %q
shutdown_timeout = "5s"

[log]
level = "info"

[pop3]
listen = [%q]
listen_tls = [%q]

[tls]
cert = %q
key = %q

[users]
passwd_file = %q

[maildir]
location = %q

[limits]
auth_failure_delay = "0s"
%s`, filepath.Join(s.dir, "state"), srv.plain, srv.tls, certFile, keyFile, s.passwd,
		filepath.Join(s.mailRoot, "{user}", "Maildir"), limits), 0o600)
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(srv.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	srv.cmd = exec.Command(bin, "serve", "-config", conf)
	srv.cmd.Stdout, srv.cmd.Stderr = logFile, logFile
	if err := srv.cmd.Start(); err != nil {
		return nil, err
	}
	srv.exited = make(chan error, 1)
	go func() { srv.exited <- srv.cmd.Wait() }()
	if err := ready.WaitGreeting(srv.plain, srv.exited); err != nil {
		srv.cmd.Process.Kill()
		<-srv.exited
		return nil, fmt.Errorf("postoffice serve did not start: %v\nlog:\n%s", err, srv.logTail(30))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log (last lines):\n%s", srv.logTail(40))
		}
		srv.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-srv.exited:
			if err != nil {
				t.Errorf("postoffice serve after SIGTERM: %v (want exit status 0)", err)
			}
		case <-time.After(30 * time.Second):
			srv.cmd.Process.Kill()
			<-srv.exited
			t.Error("postoffice serve: no exit within 30s of SIGTERM; killed")
		}
	})
	return srv, nil
}

func (srv *abuseServer) logTail(lines int) string {
	data, _ := os.ReadFile(srv.log)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// alive fails the test if the server has exited.
func (srv *abuseServer) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-srv.exited:
		srv.exited <- err
		t.Fatalf("the server exited: %v", err)
	default:
	}
}

// limitFDs sets the server's RLIMIT_NOFILE (soft and hard) to n.
func (srv *abuseServer) limitFDs(t *testing.T, n uint64) {
	t.Helper()
	lim := unix.Rlimit{Cur: n, Max: n}
	if err := unix.Prlimit(srv.cmd.Process.Pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatalf("prlimit RLIMIT_NOFILE of the server: %v", err)
	}
}

// fds is the number of the server's open file descriptors.
func (srv *abuseServer) fds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", srv.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("counting the server's descriptors: %v", err)
	}
	return len(ents)
}

// memory is the server's resident set and proportional set size, in KiB
// (/proc/PID/smaps_rollup).
func (srv *abuseServer) memory() (rss, pss int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", srv.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the server's memory use: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = n
		case "Pss:":
			pss = n
		}
	}
	return rss, pss, nil
}

// memoryPeak samples the server's memory every 100ms until stop is
// closed, and then sends the highest RSS and PSS seen, in KiB.
func (srv *abuseServer) memoryPeak(stop <-chan struct{}) <-chan [2]int64 {
	out := make(chan [2]int64, 1)
	go func() {
		var peak [2]int64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, pss, err := srv.memory(); err == nil {
				peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// waitFDs waits up to 20 seconds for the server's descriptors to be back
// to at most want, and fails the test if they are not.
func (srv *abuseServer) waitFDs(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	n := srv.fds(t)
	for n > want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n = srv.fds(t)
	}
	if n > want {
		t.Errorf("the server has %d descriptors open 20s after the clients left, want at most %d (the baseline)", n, want)
	}
}

// raiseFDLimit raises this process's RLIMIT_NOFILE soft limit to the hard
// limit and fails the test if that leaves fewer than need descriptors.
func raiseFDLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raising RLIMIT_NOFILE to %d: %v", lim.Max, err)
		}
	}
	if lim.Cur < need {
		t.Fatalf("RLIMIT_NOFILE hard limit %d: the test needs %d descriptors (raise it: ulimit -Hn)", lim.Max, need)
	}
}

// sourceAddr is the i-th of the loopback addresses 127.77.0.1 and up that
// the abusive clients connect from (all of 127.0.0.0/8 is the loopback
// interface on Linux), so that the per-address limit does not stop them
// before the total limit does.
func sourceAddr(i int) *net.TCPAddr {
	a := netip.AddrFrom4([4]byte{127, 77, byte(i >> 8), byte(i&0xff) + 1})
	return &net.TCPAddr{IP: a.AsSlice()}
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(src *net.TCPAddr, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
	return d.Dial("tcp", addr)
}

// popLogin logs in over plain POP3 with USER/PASS and quits, and returns
// how long it took from the connect to the +OK for PASS.
func popLogin(addr, user string) (time.Duration, error) {
	start := time.Now()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(nc)
	expect := func(cmd string) error {
		if cmd != "" {
			if _, err := fmt.Fprintf(nc, "%s\r\n", cmd); err != nil {
				return err
			}
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("after %q: %w", cmd, err)
		}
		if !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("after %q: %q", cmd, strings.TrimSpace(line))
		}
		return nil
	}
	for _, cmd := range []string{"", "USER " + user, "PASS " + password} {
		if err := expect(cmd); err != nil {
			return 0, err
		}
	}
	took := time.Since(start)
	if err := expect("STAT"); err != nil {
		return 0, err
	}
	return took, expect("QUIT")
}

// latencies summarises measured durations: median, 99th percentile, max.
func latencies(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("n=%d median %v p99 %v max %v", len(s), p(0.5).Round(10*time.Microsecond),
		p(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}
