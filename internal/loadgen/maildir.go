package loadgen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
)

// MaildirStats describes a generated Maildir.
type MaildirStats struct {
	Messages int   `json:"messages"`
	Octets   int64 `json:"octets"` // as stored, LF line ends
}

// GenerateMaildir writes messages 0..n-1 of seed (see Message) into
// dir/new, creating dir/new, dir/cur and dir/tmp. The files are named by
// FileName, with LF line ends and no size in the name, as many MDAs
// deliver: the maildrop every benchmark server starts from. dir/new must
// not hold files already.
func GenerateMaildir(dir string, n int, seed uint64) (MaildirStats, error) {
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return MaildirStats{}, err
		}
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "new")); err != nil {
		return MaildirStats{}, err
	} else if len(entries) > 0 {
		return MaildirStats{}, fmt.Errorf("%s/new is not empty", dir)
	}
	var (
		next   atomic.Int64
		octets atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				msg := Message(seed, i)
				if err := os.WriteFile(filepath.Join(dir, "new", FileName(i)), msg, 0o600); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					next.Store(int64(n)) // stop every worker
					return
				}
				octets.Add(int64(len(msg)))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return MaildirStats{}, err
	}
	return MaildirStats{Messages: n, Octets: octets.Load()}, nil
}
