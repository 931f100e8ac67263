package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// mdaDest feeds each message on standard input to a mail delivery agent
// (procmail, maildrop, "postoffice deliver"), which has delivered it when
// it exits 0 (the sendmail convention; 75, EX_TEMPFAIL, means try later).
//
// The message is first downloaded completely into a spool (in memory, or
// a file for a large message) and only then given to the MDA: a
// connection that fails mid-message must not hand the MDA a truncated
// message that it would deliver. The MDA runs in
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

	// Kept for the whole run, so that a message costs the MDA's process
	// and little else: the environment, a spool in memory for messages
	// up to memSpoolMax octets (a file on disk, unlinked at once, for
	// larger ones), and a file that catches the MDA's output. Each is
	// rewritten for every message and given to the MDA as a descriptor:
	// no pipe, and no goroutine copying into one.
	env      []string
	memSpool *os.File
	diskFile *os.File
	out      *os.File
	w        *bufio.Writer
}

// memSpoolMax is the largest message spooled in memory; larger ones go
// to a file in the state directory.
const memSpoolMax = 4 << 20

func newMDADest(argv []string, spoolDir string) *mdaDest {
	return &mdaDest{argv: argv, spoolDir: spoolDir, timeout: 5 * time.Minute}
}

func (d *mdaDest) String() string { return "mda " + strings.Join(d.argv, " ") }

func (d *mdaDest) batchSize() int { return 32 }

// durableOnWrite: each delivery is recorded as soon as the MDA exits, to
// keep the window above as short as it can be.
func (d *mdaDest) durableOnWrite() bool { return true }

func (d *mdaDest) write(ctx context.Context, m *message, body io.Reader) error {
	spool, err := d.spool(m.size)
	if err != nil {
		return fmt.Errorf("%s: spool: %w", d, err)
	}
	// The previous MDA left the shared offset wherever it stopped reading.
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: spool: %w", d, err)
	}
	if d.w == nil {
		d.w = bufio.NewWriterSize(spool, 64<<10)
	}
	d.w.Reset(spool)
	n, err := io.Copy(d.w, newLFReader(contextReader{ctx, body}))
	if err != nil {
		return err
	}
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("%s: spool: %w", d, err)
	}
	// The file may hold a longer message from before: cut it to this one,
	// which the MDA reads from the start.
	if err := spool.Truncate(n); err != nil {
		return fmt.Errorf("%s: spool: %w", d, err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("%s: spool: %w", d, err)
	}
	if err := d.resetOutput(); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	if d.env == nil {
		d.env = append(os.Environ(), "POSTOFFICE_FETCH_ACCOUNT="+m.account)
	}
	// Not CommandContext: a cancelled fetch lets the delivery finish.
	cmd := exec.Command(d.argv[0], d.argv[1:]...)
	cmd.Stdin = spool
	cmd.Stdout = d.out
	cmd.Stderr = d.out
	cmd.Env = append(d.env[:len(d.env):len(d.env)], "POSTOFFICE_FETCH_UID="+m.uid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(d.timeout, func() {
		timedOut.Store(true)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	waitExit(cmd.Process.Pid)
	werr := cmd.Wait()
	timer.Stop()
	if timedOut.Load() {
		return fmt.Errorf("%s: no exit after %v; killed", d, d.timeout)
	}
	if werr != nil {
		var ee *exec.ExitError
		msg := strings.TrimSpace(d.outputTail(500))
		if errors.As(werr, &ee) {
			return &mdaError{dest: d.String(), code: ee.ExitCode(), output: msg}
		}
		return fmt.Errorf("%s: %w", d, werr)
	}
	return nil
}

// spool returns the file for a message of about size octets: one in
// memory, or for a large message the one on disk.
func (d *mdaDest) spool(size int64) (*os.File, error) {
	var err error
	if size <= memSpoolMax {
		if d.memSpool == nil {
			d.memSpool, err = anonymousFile("spool", d.spoolDir, true)
		}
		return d.memSpool, err
	}
	if d.diskFile == nil {
		d.diskFile, err = anonymousFile("spool", d.spoolDir, false)
	}
	return d.diskFile, err
}

// resetOutput empties the file that catches the MDA's output.
func (d *mdaDest) resetOutput() error {
	if d.out == nil {
		var err error
		if d.out, err = anonymousFile("mda-output", d.spoolDir, true); err != nil {
			return fmt.Errorf("output file: %w", err)
		}
	}
	// The MDA appends at the shared offset: back to the start, emptied.
	if _, err := d.out.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("output file: %w", err)
	}
	return d.out.Truncate(0)
}

// anonymousFile returns a file without a name, so that nothing is left
// behind by a crash: in memory (memfd_create(2)) if inMemory and the
// kernel offers it, otherwise created in dir and unlinked at once.
func anonymousFile(name, dir string, inMemory bool) (*os.File, error) {
	if inMemory {
		if f := memoryFile(name); f != nil {
			return f, nil
		}
	}
	f, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// outputTail returns the last n octets the MDA wrote.
func (d *mdaDest) outputTail(n int64) string {
	st, err := d.out.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	k, _ := d.out.ReadAt(buf, off)
	s := string(buf[:k])
	if off > 0 {
		s = "..." + s
	}
	return s
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

func (d *mdaDest) commit(ctx context.Context) error { return nil }

func (d *mdaDest) recover(ctx context.Context, r *recovery) (map[string]bool, error) {
	return map[string]bool{}, nil
}

func (d *mdaDest) close() error {
	for _, f := range []*os.File{d.memSpool, d.diskFile, d.out} {
		if f != nil {
			f.Close()
		}
	}
	return nil
}
