package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTLSAudit runs testssl.sh (Debian package testssl.sh) against the
// real server's POP3S port and against STLS on its POP3 port, and fails on
// any protocol below TLS 1.2 offered, any weak cipher category offered,
// or any finding testssl.sh rates LOW or worse. It checks protocols (-p)
// and the standard cipher categories (-s) only: the certificate is the
// test's own self-signed one, and the rest of testssl.sh's checks take
// minutes. docs/reliability.md records the findings.
func TestTLSAudit(t *testing.T) {
	testssl := findTestssl(t)
	// testssl.sh spends most of its time starting (it runs awk once per
	// cipher suite it knows, a few hundred times) and waiting for its
	// probes: little CPU, so it runs beside the other tests.
	t.Parallel()
	srv := startAbuseServer(t, abuseOptions{})
	dir := t.TempDir()

	scans := []struct {
		name string
		args []string
	}{
		{"POP3S", []string{srv.tls}},
		{"STLS", []string{"--starttls", "pop3", srv.plain}},
	}
	// The scans may take what is left of the test binary's -timeout,
	// less a minute for the rest: minutes on a loaded machine, mostly
	// testssl.sh starting.
	timeout := 10 * time.Minute
	if deadline, ok := t.Deadline(); ok {
		timeout = time.Until(deadline) - time.Minute
	}
	results := make([][]finding, len(scans))
	errs := make([]error, len(scans))
	took := make([]time.Duration, len(scans))
	var wg sync.WaitGroup
	for i, scan := range scans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			results[i], errs[i] = runTestssl(testssl, filepath.Join(dir, scan.name+".json"), scan.args, timeout)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, scan := range scans {
		t.Run(scan.name, func(t *testing.T) {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			t.Logf("testssl.sh -p -s against %s: %v", scan.name, took[i].Round(time.Second))
			for _, problem := range auditProblems(results[i]) {
				t.Error(problem)
			}
		})
	}
}

// findTestssl is the testssl.sh program: missing, it fails the test under
// the project's test command and skips it elsewhere.
func findTestssl(t *testing.T) string {
	for _, name := range []string{"testssl", "testssl.sh"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv(strictEnv) == "1" {
		t.Fatal("testssl.sh is not installed (Debian package testssl.sh; scripts/test.sh installs it)")
	}
	t.Skip("testssl.sh is not installed (Debian package testssl.sh)")
	return ""
}

// finding is one entry of testssl.sh's JSON output (--jsonfile).
type finding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// runTestssl runs one scan and returns its findings.
func runTestssl(testssl, jsonFile string, target []string, timeout time.Duration) ([]finding, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{
		"--quiet", "--color", "0", "--warnings", "off",
		"--nodns", "none", // loopback: no DNS, which this machine may not have
		"--connect-timeout", "10", "--openssl-timeout", "10",
		"-p", "-s", "--jsonfile", jsonFile,
	}
	cmd := exec.CommandContext(ctx, testssl, append(args, target...)...)
	cmd.Dir = filepath.Dir(jsonFile)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("testssl.sh %s: not done after %v:\n%s", strings.Join(target, " "), timeout.Round(time.Second), out)
	}
	// testssl.sh exits non-zero when it merely has findings to report;
	// what counts is its JSON.
	data, rerr := os.ReadFile(jsonFile)
	if rerr != nil {
		return nil, fmt.Errorf("testssl.sh %s: %v, no JSON (%v):\n%s", strings.Join(target, " "), err, rerr, out)
	}
	var findings []finding
	if err := json.Unmarshal(data, &findings); err != nil {
		return nil, fmt.Errorf("testssl.sh JSON: %v:\n%s", err, data)
	}
	return findings, nil
}

// auditProblems says what is wrong with a scan's findings, if anything.
func auditProblems(findings []finding) []string {
	byID := make(map[string]finding)
	for _, f := range findings {
		byID[f.ID] = f
	}
	var problems []string
	expect := func(id, want string) {
		f, ok := byID[id]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: no finding (the scan did not run?)", id))
		case !strings.HasPrefix(f.Finding, want):
			problems = append(problems, fmt.Sprintf("%s: %q, want %q", id, f.Finding, want))
		}
	}
	for _, id := range []string{"SSLv2", "SSLv3", "TLS1", "TLS1_1"} {
		expect(id, "not offered")
	}
	expect("TLS1_2", "offered")
	expect("TLS1_3", "offered")
	// The weak categories of -s: NULL, anonymous, export, 64-bit and
	// DES/RC2/RC4, 3DES and IDEA, and the obsoleted CBC suites.
	for _, id := range []string{"cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
		"cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"} {
		expect(id, "not offered")
	}
	expect("cipherlist_STRONG", "offered")
	for _, f := range findings {
		if f.ID == "engine_problem" {
			continue // about the local openssl, not the server
		}
		if slices.Contains([]string{"LOW", "MEDIUM", "HIGH", "CRITICAL", "FATAL"}, f.Severity) ||
			f.ID == "scanProblem" {
			problems = append(problems, fmt.Sprintf("%s rated %s: %s", f.ID, f.Severity, f.Finding))
		}
	}
	return problems
}

// The audit's judgement, on findings like those testssl.sh reported for
// Go's default cipher suites (before the server narrowed them), and for
// output missing its protocol findings.
func TestAuditProblems(t *testing.T) {
	good := []finding{
		{"engine_problem", "WARN", "No engine or GOST support via engine with your /usr/bin/openssl"},
		{"SSLv2", "OK", "not offered"}, {"SSLv3", "OK", "not offered"},
		{"TLS1", "INFO", "not offered"}, {"TLS1_1", "INFO", "not offered"},
		{"TLS1_2", "OK", "offered"}, {"TLS1_3", "OK", "offered with final"},
		{"cipherlist_NULL", "OK", "not offered"}, {"cipherlist_aNULL", "OK", "not offered"},
		{"cipherlist_EXPORT", "OK", "not offered"}, {"cipherlist_LOW", "OK", "not offered"},
		{"cipherlist_3DES_IDEA", "INFO", "not offered"}, {"cipherlist_AVERAGE", "OK", "not offered"},
		{"cipherlist_STRONG", "OK", "offered"},
	}
	if p := auditProblems(good); len(p) != 0 {
		t.Errorf("clean scan: %v", p)
	}
	cbc := slices.Clone(good)
	cbc[len(cbc)-2] = finding{"cipherlist_AVERAGE", "LOW", "offered"}
	if p := auditProblems(cbc); len(p) != 2 {
		t.Errorf("CBC suites offered: %v, want two problems (the finding and its rating)", p)
	}
	tls10 := slices.Clone(good)
	tls10[3] = finding{"TLS1", "LOW", "offered (deprecated)"}
	if p := auditProblems(tls10); len(p) == 0 {
		t.Error("TLS 1.0 offered: no problem reported")
	}
	if p := auditProblems(good[:1]); len(p) < 10 {
		t.Errorf("a scan without findings: %v, want every expected finding missing", p)
	}
}
