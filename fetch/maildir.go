package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// maildirDest delivers into a Maildir the way store/maildir.Deliver
// does — a file in tmp/, fsync, rename into new/, fsync of new/ — with
// two differences that are why it does not call that function: the file
// name carries the message's tag (account and unique id), so that an
// interrupted run can tell which messages it already delivered, and the
// fsyncs of a batch of messages run together, so that their cost is
// shared (one directory fsync per batch, and the file fsyncs overlapping
// so that the file system can commit them in one journal transaction).
//
// Names: "<unix time>.F<tag>.<host>,S=<file size>,W=<CRLF size>", the
// form Dovecot and store/maildir read (the sizes spare them reading the
// file).
type maildirDest struct {
	dir     string
	host    string
	written []*maildirFile // written to tmp/, not yet committed
}

type maildirFile struct {
	f     *os.File
	tmp   string // path in tmp/
	final string // path in new/
}

const maildirBatch = 64

func newMaildirDest(dir string) (*maildirDest, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("maildir %s: %w", dir, err)
		}
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	// '/' would make a path, ':' start the info and ',' a field.
	host = strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`).Replace(host)
	return &maildirDest{dir: dir, host: host}, nil
}

func (d *maildirDest) String() string { return "maildir " + d.dir }

func (d *maildirDest) batchSize() int { return maildirBatch }

func (d *maildirDest) durableOnWrite() bool { return false }

func (d *maildirDest) write(ctx context.Context, m *message, body io.Reader) (err error) {
	base := strconv.FormatInt(now().Unix(), 10) + ".F" + messageTag(m.account, m.uid) + "." + d.host
	tmp := filepath.Join(d.dir, "tmp", base)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Left by an interrupted run in the same second: never renamed,
		// so never delivered.
		os.Remove(tmp)
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 64<<10)
	var size, lines int64
	var last byte
	buf := make([]byte, 32<<10)
	lf := newLFReader(body)
	for {
		n, rerr := lf.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			for _, c := range chunk {
				if c == '\n' {
					lines++
				}
			}
			last = chunk[n-1]
			size += int64(n)
			if _, err := w.Write(chunk); err != nil {
				return fmt.Errorf("%s: %w", d, err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	// W= is the size with CRLF line ends (what POP3 announces): one more
	// octet per LF, and a CRLF for an unfinished last line.
	vsize := size + lines
	if size > 0 && last != '\n' {
		vsize += 2
	}
	final := filepath.Join(d.dir, "new", base+",S="+strconv.FormatInt(size, 10)+",W="+strconv.FormatInt(vsize, 10))
	d.written = append(d.written, &maildirFile{f: f, tmp: tmp, final: final})
	return nil
}

// commit syncs the batch's files (concurrently: the file system commits
// overlapping fsyncs together), renames them into new/ and syncs new/.
func (d *maildirDest) commit(ctx context.Context) error {
	if len(d.written) == 0 {
		return nil
	}
	batch := d.written
	d.written = nil
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, mf := range batch {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = mf.f.Sync()
			if cerr := mf.f.Close(); errs[i] == nil {
				errs[i] = cerr
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		removeAll(batch, false)
		return fmt.Errorf("%s: sync: %w", d, err)
	}
	for i, mf := range batch {
		if err := os.Rename(mf.tmp, mf.final); err != nil {
			removeAll(batch[:i], true)
			removeAll(batch[i:], false)
			return fmt.Errorf("%s: %w", d, err)
		}
	}
	if err := syncDir(filepath.Join(d.dir, "new")); err != nil {
		// Not durable, so not delivered: the next run fetches them
		// again, and copies left here would make them appear twice.
		removeAll(batch, true)
		return fmt.Errorf("%s: sync new/: %w", d, err)
	}
	return nil
}

func removeAll(batch []*maildirFile, renamed bool) {
	for _, mf := range batch {
		mf.f.Close()
		if renamed {
			os.Remove(mf.final)
		} else {
			os.Remove(mf.tmp)
		}
	}
}

// recover finds the messages an interrupted run delivered: the tags in
// the names in new/ and cur/ (a mail reader may have moved them), and
// removes the files it left in tmp/.
func (d *maildirDest) recover(ctx context.Context, r *recovery) (map[string]bool, error) {
	want := make(map[string]string, len(r.unseen))
	for _, uid := range r.unseen {
		want[messageTag(r.account, uid)] = uid
	}
	found := make(map[string]bool)
	for _, sub := range []string{"new", "cur", "tmp"} {
		names, err := readNames(filepath.Join(d.dir, sub))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
		for _, name := range names {
			tag := nameTag(name)
			uid, ok := want[tag]
			if !ok {
				continue
			}
			if sub == "tmp" {
				os.Remove(filepath.Join(d.dir, sub, name))
				continue
			}
			found[uid] = true
		}
	}
	return found, nil
}

// nameTag extracts the tag from "<time>.F<tag>.<host>...".
func nameTag(name string) string {
	_, rest, ok := strings.Cut(name, ".F")
	if !ok || len(rest) < 17 || rest[16] != '.' {
		return ""
	}
	return rest[:16]
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (d *maildirDest) close() error {
	removeAll(d.written, false)
	d.written = nil
	return nil
}
