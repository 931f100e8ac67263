package interop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/postoffice-mail/postoffice/internal/ready"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/internal/leakcheck"
)

// The server binary is built once per test run, into binaryDir, which
// TestMain removes.
var (
	binaryDir   string
	buildOnce   sync.Once
	binaryPath  string
	buildFailed error
)

func TestMain(m *testing.M) {
	leaks := leakcheck.Start()
	code := m.Run()
	pgCluster.Stop()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	// After the tests and their cleanups: no goroutine or descriptor of
	// this process (clients, in-process servers, pipes to the programs
	// run) may be left.
	os.Exit(leaks.Check(code))
}

// postofficeBinary builds cmd/postoffice from this module, once.
func postofficeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil {
			buildFailed = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		if binaryDir, err = os.MkdirTemp("", "postoffice-interop-"); err != nil {
			buildFailed = err
			return
		}
		binaryPath = filepath.Join(binaryDir, "postoffice")
		build := exec.CommandContext(ctx, "go", "build", "-o", binaryPath, "./cmd/postoffice")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			buildFailed = fmt.Errorf("go build ./cmd/postoffice: %v\n%s", err, out)
		}
	})
	if buildFailed != nil {
		t.Fatal(buildFailed)
	}
	return binaryPath
}

// startBinary runs "postoffice serve -config FILE" with a configuration
// written for the site, on two free loopback ports, and stops it with
// SIGTERM when the test ends: it must then exit 0.
func startBinary(t *testing.T, s *site, opt options) *server {
	t.Helper()
	bin := postofficeBinary(t)
	// The ports are found free and then given up for the server to
	// take: another process may take one in between, so retry.
	for attempt := 1; ; attempt++ {
		srv, err := tryStartBinary(t, bin, s, opt)
		if err == nil {
			return srv
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

var errPortTaken = errors.New("port taken")

func tryStartBinary(t *testing.T, bin string, s *site, opt options) (*server, error) {
	plainPort, tlsPort := freePort(t), freePort(t)
	config := filepath.Join(s.dir, "postoffice.toml")
	err := os.WriteFile(config, fmt.Appendf(nil, `# Written by the interop tests.
[server]
hostname = "localhost"
implementation = "postoffice-interop"
state_dir = %q
shutdown_timeout = "10s"

[log]
level = "debug"
format = "text"

[pop3]
listen = ["127.0.0.1:%d"]
listen_tls = ["127.0.0.1:%d"]
apop = %t

[tls]
cert = %q
key = %q

[users]
passwd_file = %q

[maildir]
location = %q
import_uidl = %q
dovecot_uidl_format = %q
dovecot_reuse_xuidl = %t

[limits]
auth_failure_delay = "0s"
%s`, filepath.Join(s.dir, "state"), plainPort, tlsPort, opt.apop, s.certFile, s.keyFile, s.passwd,
		filepath.Join(s.mailRoot, "{user}", "Maildir"), opt.importUIDL, cmp.Or(opt.dovecotUIDLFormat, "%08Xu%08Xv"), opt.dovecotReuseXUIDL,
		authTables(opt)), 0o600)
	if err != nil {
		return nil, err
	}

	logs := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "-config", config)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// stop ends the server with SIGTERM, a graceful shutdown, or SIGKILL
	// if that takes too long, and returns how it exited.
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			return errors.New("no exit within 30s of SIGTERM; killed")
		}
	}

	srv := &server{
		plain:  fmt.Sprintf("127.0.0.1:%d", plainPort),
		tls:    fmt.Sprintf("127.0.0.1:%d", tlsPort),
		caFile: s.certFile,
		logs:   logs,
	}
	if err := ready.WaitGreeting(srv.plain, exited); err != nil {
		stop()
		if strings.Contains(logs.String(), "address already in use") {
			return nil, fmt.Errorf("%w: %s", errPortTaken, logs.String())
		}
		return nil, fmt.Errorf("postoffice serve did not start: %v\nconfig %s\nlog:\n%s", err, config, logs.String())
	}
	// The probe's session ends on the server just after its answer to
	// QUIT: wait until that is logged, so that a test counting the log's
	// lines from here on counts only its own sessions.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), sessionEnded); {
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("the readiness probe's session was not logged as ended within 10s; log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	showLogsOnFailure(t, logs)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("postoffice serve after SIGTERM: %v (want exit status 0)", err)
		}
	})
	return srv, nil
}

// authTables is the [auth] and [oauth] configuration for opt: nothing
// when the test leaves the mechanisms and OAuth alone.
func authTables(opt options) string {
	var b strings.Builder
	if opt.mechanisms != nil {
		quoted := make([]string, len(opt.mechanisms))
		for i, m := range opt.mechanisms {
			quoted[i] = strconv.Quote(m)
		}
		fmt.Fprintf(&b, "\n[auth]\nmechanisms = [%s]\n", strings.Join(quoted, ", "))
	}
	if opt.oauth != nil {
		// Plain HTTP is accepted because the endpoint is on loopback;
		// cache_ttl 0 asks the endpoint about every token.
		fmt.Fprintf(&b, "\n[oauth]\nmode = \"introspection\"\nintrospection_url = %q\nclient_id = %q\nclient_secret = %q\ncache_ttl = \"0s\"\n",
			opt.oauth.url, opt.oauth.clientID, opt.oauth.clientSecret)
	}
	return b.String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	l := freeLoopbackListener(t)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
