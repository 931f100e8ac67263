package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPrometheusScrapes points the real Prometheus server (Debian's) at
// the admin listener of "postoffice serve": after a POP3 login it must
// have scraped the target and hold the login counter; promtool, its
// linter, must find nothing wrong with the exposition; and Prometheus
// must accept every query of the Grafana dashboard.
func TestPrometheusScrapes(t *testing.T) {
	prometheus := need(t, "prometheus")
	promtool := need(t, "promtool")
	bin := postofficeBinary(t)
	s := newSite(t)
	pop3Port, adminPort, promPort := freePort(t), freePort(t), freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	config := filepath.Join(s.dir, "postoffice.toml")
	err := os.WriteFile(config, fmt.Appendf(nil, `[server]
hostname = "localhost"
state_dir = %q
[pop3]
listen = ["127.0.0.1:%d"]
listen_tls = []
[users]
passwd_file = %q
[maildir]
location = %q
[limits]
auth_failure_delay = "0s"
[auth]
penalty_base = "0s"
[admin]
listen = %q
`, filepath.Join(s.dir, "state"), pop3Port, s.passwd, filepath.Join(s.mailRoot, "{user}", "Maildir"), admin), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	showLogsOnFailure(t, logs)
	startProcess(t, "postoffice", exec.Command(bin, "serve", "-config", config), logs)
	if err := retryFor(20*time.Second, func() error { return httpOK("http://" + admin + "/readyz") }); err != nil {
		t.Fatalf("postoffice not ready: %v", err)
	}

	// One login, so that a counter of the server's own has moved.
	nc, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", pop3Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(nc)
	for _, cmd := range []string{"", "USER " + alice, "PASS " + alicePassword, "QUIT"} {
		if cmd != "" {
			fmt.Fprintf(nc, "%s\r\n", cmd)
		}
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("%q: %q, %v", cmd, line, err)
		}
	}
	nc.Close()

	// promtool lints the exposition as Prometheus's own tools see it.
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(exposition)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// Prometheus scrapes every second; its query API must then show the
	// target up and the login.
	promConfig := filepath.Join(s.dir, "prometheus.yml")
	if err := os.WriteFile(promConfig, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: postoffice
    static_configs:
      - targets: [%q]
`, admin), 0o600); err != nil {
		t.Fatal(err)
	}
	promLogs := &syncBuffer{}
	showLogsOnFailure(t, promLogs)
	promAddr := fmt.Sprintf("127.0.0.1:%d", promPort)
	startProcess(t, "prometheus", exec.Command(prometheus,
		"--config.file="+promConfig,
		"--storage.tsdb.path="+filepath.Join(s.dir, "tsdb"),
		"--web.listen-address="+promAddr,
		"--log.level=warn"), promLogs)
	query := func(q string) (string, error) {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var answer struct {
			Status string
			Data   struct {
				Result []struct {
					Value [2]any
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			return "", err
		}
		if answer.Status != "success" || len(answer.Data.Result) != 1 {
			return "", fmt.Errorf("%s: %+v", q, answer)
		}
		v, _ := answer.Data.Result[0].Value[1].(string)
		return v, nil
	}
	err = retryFor(30*time.Second, func() error {
		for q, want := range map[string]string{
			`up{job="postoffice"}`: "1",
			`postoffice_pop3_logins_total{job="postoffice",mechanism="USER",result="ok"}`:        "1",
			`postoffice_pop3_commands_total{job="postoffice",command="QUIT",result="ok"}`:        "1",
			`postoffice_pop3_sessions_open{job="postoffice",listener="pop3"}`:                    "0",
			`sum(postoffice_pop3_maildrop_open_duration_seconds_count{job="postoffice"})`:        "1",
			`count(postoffice_pop3_logins_total{job="postoffice",mechanism="USER"})`:             "8",
			`absent(postoffice_pop3_logins_total{job="postoffice",mechanism="USER",result="x"})`: "1",
		} {
			got, err := query(q)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s = %s, want %s", q, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("Prometheus: %v", err)
	}

	// Every query of the Grafana dashboard is valid PromQL that
	// Prometheus evaluates, with Grafana's variables filled in.
	for _, q := range dashboardExprs(t) {
		q = strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*").Replace(q)
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			t.Fatal(err)
		}
		var answer struct{ Status, Error string }
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil || answer.Status != "success" {
			t.Errorf("dashboard query %s: %s %s %v", q, answer.Status, answer.Error, err)
		}
	}
}

// dashboardExprs returns the PromQL expressions of the Grafana dashboard's
// panels.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../contrib/grafana/postoffice.json")
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dashboard); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			exprs = append(exprs, target.Expr)
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d dashboard queries", len(exprs))
	}
	return exprs
}

// startProcess starts cmd with its output in logs and stops it with
// SIGTERM (SIGKILL after 10 seconds) when the test ends.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, logs *syncBuffer) {
	t.Helper()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop within 10s of SIGTERM", name)
		}
	})
}

// retryFor calls f until it succeeds or d passes, and returns its last
// error.
func retryFor(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// httpOK fetches u and fails unless the answer is 200.
func httpOK(u string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return nil
}
