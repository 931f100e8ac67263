package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// mdaDest feeds each message on standard input to a mail delivery agent
// (procmail, maildrop, "postoffice deliver"), which has delivered it when
// it exits 0 (the sendmail convention; 75, EX_TEMPFAIL, means try later).
//
// The message is first downloaded completely into a spool file and only
// then given to the MDA: a connection that fails mid-message must not
// hand the MDA a truncated message that it would deliver. The MDA runs in
// its own process group, so a Ctrl-C meant for fetch does not interrupt a
// delivery half-way; fetch waits for it.
//
// Exactly once holds except in one window: an MDA that exits 0 just as
// fetch is killed, before the journal records it, delivers the message
// again on the next run (at least once, as with fetchmail and mpop). The
// record is written as soon as the MDA exits and fsynced once per batch
// of messages (before their DELEs): a power failure may repeat up to a
// batch of deliveries, a killed fetch at most the one in flight.
// POSTOFFICE_FETCH_ACCOUNT and POSTOFFICE_FETCH_UID in its environment
// let an MDA that keeps its own record drop such a repeat.
type mdaDest struct {
	argv     []string
	spoolDir string
	timeout  time.Duration
}

func newMDADest(argv []string, spoolDir string) *mdaDest {
	return &mdaDest{argv: argv, spoolDir: spoolDir, timeout: 5 * time.Minute}
}

func (d *mdaDest) String() string { return "mda " + strings.Join(d.argv, " ") }

func (d *mdaDest) batchSize() int { return 32 }

// durableOnWrite: each delivery is recorded as soon as the MDA exits, to
// keep the window above as short as it can be.
func (d *mdaDest) durableOnWrite() bool { return true }

func (d *mdaDest) write(ctx context.Context, m *message, body io.Reader) error {
	spool, err := os.CreateTemp(d.spoolDir, ".spool-*")
	if err != nil {
		return fmt.Errorf("%s: spool: %w", d, err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	w := bufio.NewWriterSize(spool, 64<<10)
	if _, err := io.Copy(w, newLFReader(contextReader{ctx, body})); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%s: spool: %w", d, err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: spool: %w", d, err)
	}
	// Not CommandContext: a cancelled fetch lets the delivery finish.
	cmd := exec.Command(d.argv[0], d.argv[1:]...)
	cmd.Stdin = spool
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "POSTOFFICE_FETCH_ACCOUNT="+m.account, "POSTOFFICE_FETCH_UID="+m.uid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(d.timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s: no exit after %v; killed", d, d.timeout)
	}
	if werr != nil {
		var ee *exec.ExitError
		msg := strings.TrimSpace(tailString(stderr.String(), 500))
		if errors.As(werr, &ee) {
			return &mdaError{dest: d.String(), code: ee.ExitCode(), output: msg}
		}
		return fmt.Errorf("%s: %w", d, werr)
	}
	return nil
}

// mdaError is an MDA that refused a message.
type mdaError struct {
	dest   string
	code   int
	output string
}

func (e *mdaError) Error() string {
	s := fmt.Sprintf("%s exited with status %d", e.dest, e.code)
	if e.code == 75 {
		s += " (temporary failure)"
	}
	if e.output != "" {
		s += ": " + e.output
	}
	return s
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (d *mdaDest) commit(ctx context.Context) error { return nil }

func (d *mdaDest) recover(ctx context.Context, r *recovery) (map[string]bool, error) {
	return map[string]bool{}, nil
}

func (d *mdaDest) close() error { return nil }
