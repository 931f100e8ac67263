package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/store/postgres"
)

// adminSite is a running server with the admin listener on loopback.
type adminSite struct {
	*deliverSite
	pop3, lmtp, admin string
}

// startAdminSite runs serve with POP3, LMTP and the admin listener on
// loopback ports, and stops it when the test ends.
func startAdminSite(t *testing.T) *adminSite {
	t.Helper()
	lmtpPort, adminPort := freePort(t), freePort(t)
	s := &adminSite{
		lmtp:  fmt.Sprintf("127.0.0.1:%d", lmtpPort),
		admin: fmt.Sprintf("127.0.0.1:%d", adminPort),
	}
	s.deliverSite = newDeliverSite(t, fmt.Sprintf(`[limits]
auth_failure_delay = "0s"
[auth]
penalty_base = "0s"
[lmtp]
listen = [%q]
[admin]
listen = %q
`, s.lmtp, s.admin))
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.POP3.Listen = []string{"127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		done <- serve(ctx, cfg, io.Discard, func(plain, _ []net.Addr) { ready <- plain[0].String() })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case s.pop3 = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready after 10s")
	}
	return s
}

// get fetches a path of the admin listener.
func (s *adminSite) get(t *testing.T, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + s.admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// scrape reads /metrics and returns each sample's value by its name and
// labels in the exposition format's order, such as
// `postoffice_pop3_logins_total{mechanism="USER",result="ok"}`;
// histograms give name_count and name_sum.
func (s *adminSite) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := s.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name + labelString(m.GetLabel())
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+labelString(m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+labelString(m.GetLabel())] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func labelString(labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return ""
	}
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// countingConn counts the octets the client receives, to compare with
// the server's count of octets sent.
type countingConn struct {
	net.Conn
	read int
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += n
	return n, err
}

// TestAdminMetrics runs a scripted POP3 session and an LMTP transaction
// against the real server, then scrapes /metrics over HTTP and checks
// the counters' exact values.
func TestAdminMetrics(t *testing.T) {
	s := startAdminSite(t)
	if code, body := s.get(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := s.get(t, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}

	// LMTP: one message for alice, one recipient unknown.
	lc, err := net.Dial("tcp", s.lmtp)
	if err != nil {
		t.Fatal(err)
	}
	lc.SetDeadline(time.Now().Add(10 * time.Second))
	lr := bufio.NewReader(lc)
	fmt.Fprintf(lc, "LHLO test\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n")
	var replies []string
	for len(replies) < 6 { // greeting, LHLO, MAIL, RCPT, RCPT, DATA
		line, err := lr.ReadString('\n')
		if err != nil {
			t.Fatalf("LMTP: %v (%q)", err, replies)
		}
		if len(line) > 3 && line[3] == ' ' {
			replies = append(replies, line)
		}
	}
	if !strings.HasPrefix(replies[4], "550 5.1.1") {
		t.Fatalf("unknown recipient: %q", replies[4])
	}
	fmt.Fprintf(lc, "Subject: metrics\r\n\r\nhello\r\n.\r\n")
	if line, _ := lr.ReadString('\n'); !strings.HasPrefix(line, "250 ") {
		t.Fatalf("after DATA: %q", line)
	}
	fmt.Fprintf(lc, "QUIT\r\n")
	lr.ReadString('\n')
	lc.Close()

	// POP3: a failed login, a good one, STAT, RETR, DELE, QUIT.
	raw, err := net.Dial("tcp", s.pop3)
	if err != nil {
		t.Fatal(err)
	}
	nc := &countingConn{Conn: raw}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	line := func(want string) string {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, want) {
			t.Fatalf("got %q, %v; want %q", l, err, want)
		}
		return l
	}
	send := func(cmd, want string) string {
		t.Helper()
		fmt.Fprintf(nc, "%s\r\n", cmd)
		return line(want)
	}
	line("+OK")
	send("USER alice", "+OK")
	send("PASS wrong", "-ERR [AUTH]")
	send("USER alice", "+OK")
	send("PASS pw", "+OK")
	stat := strings.Fields(send("STAT", "+OK 1 "))
	size, _ := strconv.Atoi(stat[2])
	send("RETR 1", "+OK")
	for l := ""; l != ".\r\n"; l = line("") {
	}
	send("DELE 1", "+OK")
	send("QUIT", "+OK")
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("after QUIT: %v", err)
	}
	nc.Close()

	// The session's end is counted after the client has gone: wait for it.
	var got map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; {
		got = s.scrape(t)
		if got[`postoffice_pop3_sessions_open{listener="pop3"}`] == 0 && got[`postoffice_lmtp_connections_open`] == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]float64{
		`postoffice_pop3_sessions_total{listener="pop3"}`:                     1,
		`postoffice_pop3_sessions_open{listener="pop3"}`:                      0,
		`postoffice_pop3_logins_total{mechanism="USER",result="failed"}`:      1,
		`postoffice_pop3_logins_total{mechanism="USER",result="ok"}`:          1,
		`postoffice_pop3_logins_total{mechanism="PLAIN",result="ok"}`:         0,
		`postoffice_pop3_logins_total{mechanism="USER",result="in_use"}`:      0,
		`postoffice_pop3_commands_total{command="USER",result="ok"}`:          2,
		`postoffice_pop3_commands_total{command="PASS",result="error"}`:       1,
		`postoffice_pop3_commands_total{command="PASS",result="ok"}`:          1,
		`postoffice_pop3_commands_total{command="STAT",result="ok"}`:          1,
		`postoffice_pop3_commands_total{command="RETR",result="ok"}`:          1,
		`postoffice_pop3_commands_total{command="DELE",result="ok"}`:          1,
		`postoffice_pop3_commands_total{command="QUIT",result="ok"}`:          1,
		`postoffice_pop3_commands_total{command="other",result="error"}`:      0,
		`postoffice_pop3_messages_retrieved_total{command="RETR"}`:            1,
		`postoffice_pop3_retrieved_bytes_total{command="RETR"}`:               float64(size),
		`postoffice_pop3_messages_deleted_total`:                              1,
		`postoffice_pop3_sent_bytes_total`:                                    float64(nc.read),
		`postoffice_pop3_login_duration_seconds_count`:                        2,
		`postoffice_pop3_maildrop_open_duration_seconds_count`:                1,
		`postoffice_pop3_retr_duration_seconds_count`:                         1,
		`postoffice_pop3_tls_handshakes_total{mode="pop3s",result="ok"}`:      0,
		`postoffice_pop3_connections_refused_total{reason="max_connections"}`: 0,
		`postoffice_lmtp_connections_total`:                                   1,
		`postoffice_lmtp_connections_open`:                                    0,
		`postoffice_lmtp_deliveries_total{result="delivered",status="2.0.0"}`: 1,
		`postoffice_lmtp_deliveries_total{result="rejected",status="5.1.1"}`:  1,
		`postoffice_lmtp_delivery_duration_seconds_count`:                     1,
		`postoffice_lmtp_delivered_bytes_total`:                               float64(size),
		`postoffice_panics_recovered_total{server="pop3"}`:                    0,
		`postoffice_panics_recovered_total{server="lmtp"}`:                    0,
	}
	for key, v := range want {
		if g, ok := got[key]; !ok {
			t.Errorf("%s missing", key)
		} else if g != v {
			t.Errorf("%s = %v, want %v", key, g, v)
		}
	}
	// Deliveries and QUIT took the index lock; their waits are counted.
	if n := got[`postoffice_maildir_index_lock_wait_seconds_count`]; n < 1 {
		t.Errorf("index lock waits counted: %v", n)
	}
	for key := range got {
		if strings.Contains(key, "alice") || strings.Contains(key, "127.0.0.1") {
			t.Errorf("a user name or address became a label: %s", key)
		}
	}

	// Only GET (and HEAD) are served; unknown paths are not found.
	resp, err := http.Post("http://"+s.admin+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
	if code, _ := s.get(t, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/: %d, want 404", code)
	}
}

// TestReadyzStoreUnreachable: /readyz answers 503 with the reason while
// the Maildir location's base is unusable, and 200 again once it is back;
// /healthz answers throughout.
func TestReadyzStoreUnreachable(t *testing.T) {
	s := startAdminSite(t)
	if err := os.MkdirAll(s.mail, 0o700); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.get(t, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before: %d", code)
	}
	// The base of "<dir>/mail/{user}/Maildir" replaced by a file: what a
	// lost mount or a broken file system looks like from here.
	if err := os.Rename(s.mail, s.mail+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.mail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := s.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: maildir: ") || !strings.Contains(body, "not a directory") {
		t.Errorf("/readyz with the store gone: %d %q", code, body)
	}
	// The passwd-file gone too: both reasons are given.
	passwd := filepath.Join(s.dir, "passwd")
	if err := os.Rename(passwd, passwd+".away"); err != nil {
		t.Fatal(err)
	}
	code, body = s.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: users: passwd-file") || !strings.Contains(body, "not ready: maildir:") {
		t.Errorf("/readyz with the passwd-file gone: %d %q", code, body)
	}
	if code, _ := s.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200 while the process lives", code)
	}
	os.Remove(s.mail)
	os.Rename(s.mail+".away", s.mail)
	os.Rename(passwd+".away", passwd)
	if code, body := s.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after: %d %q", code, body)
	}
}

// TestReadyzPostgresUnreachable: the PostgreSQL check fails, within its
// bound, when the database does not answer.
func TestReadyzPostgresUnreachable(t *testing.T) {
	port := freePort(t) // nothing listens there
	pg, err := postgres.Open(context.Background(), postgres.Config{
		DSN:            fmt.Sprintf("host=127.0.0.1 port=%d dbname=postoffice user=postoffice connect_timeout=1", port),
		AcquireTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	cfg := config.Default()
	cfg.Store.Backend, cfg.Users.Backend = "postgres", "postgres"
	a := &admin{checks: readinessChecks(cfg, &backends{pg: pg}), checking: make(chan struct{}, 1)}
	if len(a.checks) != 1 || a.checks[0].name != "postgresql" {
		t.Fatalf("checks %+v, want the PostgreSQL ping alone", a.checks)
	}
	problems := a.readiness(context.Background())
	if len(problems) != 1 || !strings.Contains(problems[0], "listeners not serving") {
		t.Errorf("before setReady: %q", problems)
	}
	a.setReady(true)
	start := time.Now()
	problems = a.readiness(context.Background())
	if len(problems) != 1 || !strings.HasPrefix(problems[0], "postgresql: ping: ") {
		t.Errorf("readiness = %q, want the ping's failure", problems)
	}
	if d := time.Since(start); d > readinessTimeout+time.Second {
		t.Errorf("readiness took %v", d)
	}
	// The pool's counters for the metrics.
	if st := poolStats(pg)(); st.Max != pg.Pool().Config().MaxConns || st.Acquired != 0 {
		t.Errorf("pool stats %+v", st)
	}
}

// TestReadyzHungCheck: a check that never returns (a hung network file
// system) makes /readyz answer "not ready" in time, and probes that come
// meanwhile do not start more checks.
func TestReadyzHungCheck(t *testing.T) {
	release := make(chan struct{})
	started := 0
	a := &admin{checking: make(chan struct{}, 1), checks: []readinessCheck{{"maildir", func(context.Context) error {
		started++
		<-release
		return nil
	}}}}
	a.setReady(true)
	if p := a.readiness(context.Background()); len(p) != 1 || !strings.Contains(p[0], "no answer within") {
		t.Errorf("hung check: %q", p)
	}
	if p := a.readiness(context.Background()); len(p) != 1 || !strings.Contains(p[0], "still running") {
		t.Errorf("second probe: %q", p)
	}
	close(release)
	for deadline := time.Now().Add(5 * time.Second); len(a.checking) != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if p := a.readiness(context.Background()); len(p) != 0 {
		t.Errorf("after the check returned: %q", p)
	}
	if started != 2 {
		t.Errorf("check ran %d times, want 2", started)
	}
}

// TestMaildirBase: the directory /readyz stats for a location template.
func TestMaildirBase(t *testing.T) {
	for _, tc := range []struct{ location, want string }{
		{"{home}/Maildir", ""},
		{"~/Maildir", ""},
		{"/srv/mail/{domain}/{localpart}", "/srv/mail"},
		{"/srv/mail/vmail_{user}", "/srv/mail"},
		{"/var/vmail/%d/%n/Maildir", "/var/vmail"},
		{"maildir:/srv/mail/%u:LAYOUT=fs", "/srv/mail"},
		{"/{user}", ""},
		{"relative/{user}", ""},
	} {
		if got := maildirBase(tc.location); got != tc.want {
			t.Errorf("maildirBase(%q) = %q, want %q", tc.location, got, tc.want)
		}
	}
}
